//! Storage: one `AnyPool` over SQLite (default) or PostgreSQL (`postgres://…`),
//! plus ordered schema migrations recorded in `schema_migrations`.

use anyhow::{Context, bail};
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use std::time::{Duration, Instant};

/// Which database the pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// Column definition of an auto-incrementing 64-bit primary key.
    fn id_column(self) -> &'static str {
        match self {
            Backend::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
            Backend::Postgres => "BIGSERIAL PRIMARY KEY",
        }
    }
}

/// One schema migration. `sql` holds `;`-separated statements; `{ID}` becomes the
/// backend's auto-increment primary key column definition.
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// A connection pool and its backend.
#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
}

impl Db {
    /// Connect, retrying for up to `wait` (the database may start after us).
    pub async fn connect(url: &str, wait: Duration) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            bail!("unsupported database URL (use sqlite://… or postgres://…)");
        };
        let max = match backend {
            Backend::Sqlite => 4,
            Backend::Postgres => 8,
        };
        let deadline = Instant::now() + wait;
        loop {
            let attempt = AnyPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await;
            match attempt {
                Ok(pool) => return Ok(Db { pool, backend }),
                Err(e) if Instant::now() < deadline => {
                    tracing::warn!(error = %e, "database not reachable yet; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("connecting to the {} database", backend.name()));
                }
            }
        }
    }

    /// A database round trip.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        let one: i64 = sqlx::query_scalar("SELECT CAST(1 AS BIGINT)")
            .fetch_one(&self.pool)
            .await?;
        debug_assert_eq!(one, 1);
        Ok(())
    }

    /// Highest applied migration version (0 when none).
    pub async fn schema_version(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM schema_migrations",
        )
        .fetch_one(&self.pool)
        .await
    }

    /// Apply pending migrations in order, each in its own transaction, and
    /// record each in `schema_migrations`. Returns the resulting schema version.
    pub async fn migrate(&self, migrations: &[Migration]) -> anyhow::Result<i64> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
        )
        .execute(&self.pool)
        .await
        .context("creating schema_migrations")?;
        let applied = self.schema_version().await?;
        let mut current = applied;
        let mut sorted: Vec<&Migration> = migrations.iter().collect();
        sorted.sort_by_key(|m| m.version);
        for m in sorted.into_iter().filter(|m| m.version > applied) {
            let mut tx = self.pool.begin().await?;
            for stmt in m.sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                let stmt = stmt.replace("{ID}", self.backend.id_column());
                sqlx::query(&stmt)
                    .execute(&mut *tx)
                    .await
                    .with_context(|| format!("migration {} ({}): {stmt}", m.version, m.name))?;
            }
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(m.version)
                .bind(crate::util::now_rfc3339())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(version = m.version, name = m.name, "migration applied");
            current = m.version;
        }
        Ok(current)
    }
}
