//! The `databases` capability: a stage opens a database the target declares
//! (`[targets.T.databases.NAME]`) by name and runs read-only statements on
//! it. The host holds the URL and its credentials; neither reaches the guest
//! (errors are masked before they cross the boundary).
//!
//! Read-only is enforced three ways, so no single one has to be perfect:
//! a statement must start with SELECT, WITH, VALUES or TABLE and be a single
//! statement; on PostgreSQL it runs inside `BEGIN READ ONLY … ROLLBACK` on a
//! session whose `default_transaction_read_only` is on; SQLite files are
//! opened with `SQLITE_OPEN_READONLY` and `PRAGMA query_only`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{Column, ConnectOptions, Row};

use crate::host::bindings::valero::stage::databases::{self, ConnectionInfo, Engine};
use crate::pipeline::{DatabaseScope, EnvValue, Target};
use crate::sandbox::StoreState;

/// Rows one query may return; more is an error (add a LIMIT).
pub const MAX_ROWS: usize = 10_000;
/// Server-side bound on one statement (PostgreSQL `statement_timeout`).
const STATEMENT_TIMEOUT: &str = "30s";
/// Statement kinds a guest may run.
const READ_ONLY_KEYWORDS: &[&str] = &["SELECT", "WITH", "VALUES", "TABLE"];

/// The target's databases with their URLs resolved (secrets, host env).
#[derive(Debug, Default)]
pub struct DatabaseCatalog {
    target: String,
    run_dir: PathBuf,
    /// name -> URL, or why it could not be resolved.
    urls: BTreeMap<String, Result<String, String>>,
    /// Databases whose URL is a secret as a whole.
    from_secret: BTreeSet<String>,
}

impl DatabaseCatalog {
    pub fn resolve(target: &Target, secrets: &BTreeMap<String, String>) -> Self {
        let urls = target
            .databases
            .values()
            .map(|db| {
                let url = db
                    .url
                    .resolve(secrets)
                    .map(|u| u.replace("{service}", &db.name))
                    .map_err(|e| {
                        format!(
                            "the url of database `{}` cannot be resolved: {e}\n  help: see [targets.{}.databases.{}]",
                            db.name, target.name, db.name
                        )
                    });
                (db.name.clone(), url)
            })
            .collect();
        let from_secret = target
            .databases
            .values()
            .filter(|db| matches!(db.url, EnvValue::Secret(_)))
            .map(|db| db.name.clone())
            .collect();
        DatabaseCatalog {
            target: target.name.clone(),
            run_dir: PathBuf::new(),
            urls,
            from_secret,
        }
    }

    /// `{run_dir}` in URLs becomes `dir` (SQLite files next to the services').
    pub fn in_run_dir(mut self, dir: &Path) -> Self {
        self.run_dir = dir.to_path_buf();
        self
    }

    /// Everything in the URLs that must never be shown: passwords (decoded;
    /// the masker also covers the encoded forms), and whole URLs that come
    /// from a secret.
    pub fn credentials(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, url) in &self.urls {
            let Ok(url) = url else { continue };
            if self.from_secret.contains(name) {
                out.push(url.clone());
            }
            if let Some(pw) = password(url) {
                out.push(pw);
            }
        }
        out
    }

    fn url(&self, name: &str) -> Result<String, String> {
        match self.urls.get(name) {
            Some(Ok(url)) => Ok(url.replace("{run_dir}", &self.run_dir.display().to_string())),
            Some(Err(e)) => Err(e.clone()),
            None => Err(format!(
                "`{name}` is not a database of target `{}`; declared: {}",
                self.target,
                self.names().join(", ")
            )),
        }
    }

    fn names(&self) -> Vec<String> {
        self.urls.keys().cloned().collect()
    }
}

/// One stage attempt's view of the catalog: its grant and its open connections
/// (closed when the attempt's store is dropped).
pub struct DatabaseSession {
    catalog: Arc<DatabaseCatalog>,
    scope: DatabaseScope,
    open: HashMap<String, Conn>,
}

enum Conn {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

impl DatabaseSession {
    pub fn new(catalog: Arc<DatabaseCatalog>, scope: DatabaseScope) -> Self {
        DatabaseSession {
            catalog,
            scope,
            open: HashMap::new(),
        }
    }

    fn names(&self) -> Vec<String> {
        self.catalog
            .names()
            .into_iter()
            .filter(|n| self.scope.allows(n))
            .collect()
    }

    fn granted_url(&self, name: &str) -> Result<String, String> {
        if !self.scope.allows(name) {
            return Err(format!(
                "database `{name}` is not granted to this stage\n  help: add it to `grants.databases`"
            ));
        }
        self.catalog.url(name)
    }

    async fn connect(&mut self, name: &str, timeout: Duration) -> Result<ConnectionInfo, String> {
        let url = self.granted_url(name)?;
        self.open.remove(name);
        let started = Instant::now();
        let opened = tokio::time::timeout(timeout, open(&url)).await;
        let connect_ms = started.elapsed().as_secs_f64() * 1000.0;
        let where_ = location(&url);
        let (mut conn, engine) = match opened {
            Err(_) => {
                return Err(format!(
                    "cannot connect to database `{name}` ({where_}): no connection within {} ms",
                    timeout.as_millis()
                ));
            }
            Ok(Err(e)) => {
                return Err(format!(
                    "cannot connect to database `{name}` ({where_}): {e}"
                ));
            }
            Ok(Ok(c)) => c,
        };
        let version = match &mut conn {
            Conn::Postgres(c) => {
                sqlx::query_scalar::<_, String>("SHOW server_version")
                    .fetch_one(c)
                    .await
            }
            Conn::Sqlite(c) => {
                sqlx::query_scalar::<_, String>("SELECT sqlite_version()")
                    .fetch_one(c)
                    .await
            }
        }
        .map_err(|e| format!("database `{name}` ({where_}): reading the server version: {e}"))?;
        self.open.insert(name.to_string(), conn);
        Ok(ConnectionInfo {
            engine,
            server_version: version,
            connect_ms,
        })
    }

    async fn query(&mut self, name: &str, sql: &str) -> Result<String, String> {
        self.granted_url(name)?;
        let sql = read_only_statement(sql)
            .map_err(|e| format!("query on database `{name}` refused by the host: {e}"))?;
        let conn = self.open.get_mut(name).ok_or_else(|| {
            format!("database `{name}` is not connected\n  help: call `connect` first")
        })?;
        let rows = match conn {
            Conn::Postgres(c) => query_postgres(c, sql).await,
            Conn::Sqlite(c) => query_sqlite(c, sql).await,
        };
        rows.map_err(|e| format!("query on database `{name}` failed: {e}"))
    }
}

async fn open(url: &str) -> Result<(Conn, Engine), sqlx::Error> {
    if url.starts_with("sqlite:") {
        let opts = SqliteConnectOptions::from_str(url)?
            .read_only(true)
            .create_if_missing(false)
            .pragma("query_only", "ON")
            .disable_statement_logging();
        Ok((Conn::Sqlite(opts.connect().await?), Engine::Sqlite))
    } else {
        let opts = PgConnectOptions::from_str(url)?
            .application_name("valero")
            .options([
                ("default_transaction_read_only", "on"),
                ("statement_timeout", STATEMENT_TIMEOUT),
            ])
            .disable_statement_logging();
        Ok((Conn::Postgres(opts.connect().await?), Engine::Postgres))
    }
}

/// PostgreSQL turns the rows into JSON itself (every type, no decoding here),
/// inside a read-only transaction that is always rolled back.
async fn query_postgres(conn: &mut PgConnection, sql: &str) -> Result<String, String> {
    let wrapped = format!(
        "SELECT coalesce(json_agg(q), '[]'::json)::text, count(*) FROM \
         (SELECT * FROM ({sql}) AS q LIMIT {}) AS q",
        MAX_ROWS + 1
    );
    sqlx::query("BEGIN READ ONLY")
        .execute(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;
    let result = sqlx::query_as::<_, (String, i64)>(&wrapped)
        .fetch_one(&mut *conn)
        .await;
    // Undo anything the statement changed in the session (set_config, …).
    let rolled_back = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    let (json, count) = result.map_err(|e| e.to_string())?;
    rolled_back.map_err(|e| e.to_string())?;
    if count > MAX_ROWS as i64 {
        return Err(too_many_rows());
    }
    Ok(json)
}

async fn query_sqlite(conn: &mut SqliteConnection, sql: &str) -> Result<String, String> {
    let mut rows = Vec::new();
    let mut stream = sqlx::query(sql).fetch(&mut *conn);
    while let Some(row) = stream.try_next().await.map_err(|e| e.to_string())? {
        if rows.len() == MAX_ROWS {
            return Err(too_many_rows());
        }
        rows.push(sqlite_row(&row));
    }
    Ok(serde_json::Value::Array(rows).to_string())
}

fn sqlite_row(row: &SqliteRow) -> serde_json::Value {
    use serde_json::Value;
    let mut obj = serde_json::Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        // SQLite values carry their own storage class; try them in turn.
        let value = if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
            v.map_or(Value::Null, Value::from)
        } else if let Ok(v) = row.try_get::<Option<f64>, _>(i) {
            v.map_or(Value::Null, Value::from)
        } else if let Ok(v) = row.try_get::<Option<String>, _>(i) {
            v.map_or(Value::Null, Value::from)
        } else if let Ok(v) = row.try_get::<Option<Vec<u8>>, _>(i) {
            v.map_or(Value::Null, |b| Value::from(hex::encode(b)))
        } else {
            Value::Null
        };
        obj.insert(col.name().to_string(), value);
    }
    Value::Object(obj)
}

fn too_many_rows() -> String {
    format!("the statement returned more than {MAX_ROWS} rows\n  help: add a LIMIT or aggregate")
}

/// The statement without a trailing `;`, if it is one read-only statement.
fn read_only_statement(sql: &str) -> Result<&str, String> {
    let mut chars = sql.char_indices().peekable();
    let mut first_word: Option<(usize, usize)> = None;
    let mut end = sql.len();
    let mut in_word: Option<usize> = None;
    while let Some((i, c)) = chars.next() {
        // Comments and quoted text are skipped whole: a `;` inside them is not an end.
        let skip_to = match c {
            '-' if sql[i..].starts_with("--") => sql[i..].find('\n').map_or(sql.len(), |n| i + n),
            '/' if sql[i..].starts_with("/*") => match sql[i + 2..].find("*/") {
                Some(n) => i + 2 + n + 2,
                None => return Err("unterminated /* comment".into()),
            },
            '\'' | '"' => match sql[i + 1..].find(c) {
                Some(n) => i + 1 + n + 1,
                None => return Err(format!("unterminated {c} quote")),
            },
            _ => i,
        };
        if skip_to > i {
            if let Some(start) = in_word.take() {
                first_word.get_or_insert((start, i));
            }
            while chars.peek().is_some_and(|(j, _)| *j < skip_to) {
                chars.next();
            }
            continue;
        }
        if c == ';' {
            end = i;
            let rest = &sql[i + 1..];
            if !only_trivia(rest) {
                return Err("only one statement per query".into());
            }
            break;
        }
        if c.is_alphabetic() && first_word.is_none() {
            in_word.get_or_insert(i);
        } else if let Some(start) = in_word.take() {
            first_word.get_or_insert((start, i));
        }
    }
    if let Some(start) = in_word {
        first_word.get_or_insert((start, end));
    }
    let keyword = first_word
        .map(|(s, e)| sql[s..e].to_ascii_uppercase())
        .unwrap_or_default();
    if !READ_ONLY_KEYWORDS.contains(&keyword.as_str()) {
        let shown = if keyword.is_empty() {
            "an empty statement".to_string()
        } else {
            format!("`{keyword}`")
        };
        return Err(format!(
            "only read-only statements ({}) are allowed, got {shown}",
            READ_ONLY_KEYWORDS.join(", ")
        ));
    }
    Ok(sql[..end].trim())
}

/// Whitespace and comments only.
fn only_trivia(mut s: &str) -> bool {
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix("--") {
            s = rest.find('\n').map_or("", |n| &rest[n..]);
        } else if let Some(rest) = s.strip_prefix("/*") {
            match rest.find("*/") {
                Some(n) => s = &rest[n + 2..],
                None => return false,
            }
        } else {
            return s.is_empty();
        }
    }
}

/// The parts of `scheme://[userinfo@]host[/path][?query]`: (scheme, userinfo,
/// host, path). None without `://`.
fn url_parts(url: &str) -> Option<(&str, Option<&str>, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let rest = rest.split('?').next().unwrap_or_default();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    Some(match authority.rsplit_once('@') {
        Some((userinfo, host)) => (scheme, Some(userinfo), host, path),
        None => (scheme, None, authority, path),
    })
}

/// `postgres://user:pw@host:5432/db?x` -> `postgres://host:5432/db`;
/// `sqlite://path?mode=rwc` -> `sqlite://path`.
fn location(url: &str) -> String {
    match url_parts(url) {
        Some((scheme, _, host, path)) => format!("{scheme}://{host}{path}"),
        None => url.split('?').next().unwrap_or_default().to_string(),
    }
}

/// The decoded password of a `scheme://user:password@host/…` URL.
fn password(url: &str) -> Option<String> {
    let (_, userinfo, _, _) = url_parts(url)?;
    let pw = userinfo?.split_once(':')?.1;
    (!pw.is_empty()).then(|| {
        percent_encoding::percent_decode_str(pw)
            .decode_utf8_lossy()
            .into_owned()
    })
}

impl StoreState {
    fn database_session(&mut self) -> Result<&mut DatabaseSession, String> {
        self.databases
            .as_mut()
            .ok_or_else(|| "the `databases` capability is not granted to this stage".to_string())
    }

    /// Errors cross into the guest masked: a driver message must not hand it a credential.
    pub(crate) fn masked<T>(&self, r: Result<T, String>) -> Result<T, String> {
        r.map_err(|e| self.io.masker.mask(&e).into_owned())
    }
}

impl databases::Host for StoreState {
    async fn names(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self
            .database_session()
            .map(|s| s.names())
            .unwrap_or_default())
    }

    async fn connect(
        &mut self,
        name: String,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<ConnectionInfo, String>> {
        let timeout = Duration::from_millis(u64::from(timeout_ms));
        let r = match self.database_session() {
            Ok(s) => s.connect(&name, timeout).await,
            Err(e) => Err(e),
        };
        Ok(self.masked(r))
    }

    async fn query(
        &mut self,
        name: String,
        sql: String,
    ) -> wasmtime::Result<Result<String, String>> {
        let r = match self.database_session() {
            Ok(s) => s.query(&name, &sql).await,
            Err(e) => Err(e),
        };
        Ok(self.masked(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_statements_pass() {
        for sql in [
            "SELECT 1",
            "  select 1;",
            "-- comment\nSELECT ';' AS x; -- trailing",
            "/* c */ WITH a AS (SELECT 1) SELECT * FROM a",
            "VALUES (1)",
            "(SELECT 1)",
        ] {
            let r = read_only_statement(sql);
            assert!(r.is_ok(), "{sql}: {r:?}");
        }
        assert_eq!(read_only_statement("SELECT 1; ").unwrap(), "SELECT 1");
    }

    #[test]
    fn writes_and_stacked_statements_are_refused() {
        for (sql, want) in [
            ("DELETE FROM t", "got `DELETE`"),
            ("insert into t values (1)", "got `INSERT`"),
            ("SELECT 1; DROP TABLE t", "one statement"),
            ("/* x */ UPDATE t SET a = 1", "got `UPDATE`"),
            ("", "empty statement"),
            ("SELECT 'unterminated", "unterminated"),
            ("SET default_transaction_read_only = off", "got `SET`"),
            ("COMMIT", "got `COMMIT`"),
        ] {
            let e = read_only_statement(sql).unwrap_err();
            assert!(e.contains(want), "{sql}: {e}");
        }
    }

    #[test]
    fn locations_and_passwords() {
        let url = "postgres://valero:s%40cret@127.0.0.1:5432/neuroerp?sslmode=disable";
        assert_eq!(location(url), "postgres://127.0.0.1:5432/neuroerp");
        assert_eq!(password(url).as_deref(), Some("s@cret"));
        assert_eq!(
            location("sqlite:///tmp/a.db?mode=rwc"),
            "sqlite:///tmp/a.db"
        );
        assert_eq!(password("sqlite:///tmp/a.db"), None);
        assert_eq!(password("postgres://user@host/db"), None);
    }
}
