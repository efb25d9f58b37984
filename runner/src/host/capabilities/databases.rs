//! The `databases` capability: a stage opens a database the target declares
//! (`[targets.T.databases.NAME]`) by name and runs read-only statements on
//! it. The host holds the URL and its credentials; neither reaches the guest
//! (errors name the database, never where it is, and are masked before they
//! cross the boundary).
//!
//! Read-only is enforced in layers, so no single one has to be perfect: the
//! database's own parser decides what a statement does ([`statement`]:
//! PostgreSQL's grammar plus a deny-list of functions, SQLite's
//! `sqlite3_stmt_readonly`); on PostgreSQL it runs inside `BEGIN READ ONLY …
//! ROLLBACK` on a session whose `default_transaction_read_only` is on; SQLite
//! files are opened with `SQLITE_OPEN_READONLY` and `PRAGMA query_only`.
//! Results stream and stop at the limits of [`results`]; the guest's text is
//! never rewritten.

mod results;
pub mod statement;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use serde_json::{Map, Value};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{Column, ConnectOptions, Connection, Row, TypeInfo, ValueRef};

use crate::host::bindings::valero::stage::databases::{self, ConnectionInfo, Engine};
use crate::pipeline::{DatabaseScope, EnvValue, Target};
use crate::secrets::Masker;
use results::{LimitError, RowsJson};
use statement::Refusal;

pub use results::{MAX_BYTES, MAX_ROWS};

/// Server-side bound on one statement (PostgreSQL `statement_timeout`).
const STATEMENT_TIMEOUT: &str = "30s";
/// How long the host tries to cancel the statement of an ended attempt.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(2);
/// SQLite rows its worker may compute ahead of the host reading them.
const SQLITE_ROWS_AHEAD: usize = 2;

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
/// (closed when the attempt's store is dropped, cancelling a statement still
/// running).
pub struct DatabaseSession {
    catalog: Arc<DatabaseCatalog>,
    scope: DatabaseScope,
    open: HashMap<String, Conn>,
    masker: Arc<Masker>,
}

enum Conn {
    // Boxed: the session keeps its connect options for the cancel.
    Postgres(Box<PgSession>),
    Sqlite(SqliteConnection),
}

/// What went wrong with one statement (the guest sees it after
/// `query on database `NAME``).
#[derive(Debug, thiserror::Error)]
enum QueryError {
    #[error("refused by the host: {0}")]
    Refused(#[from] Refusal),
    #[error("stopped by the host: {0}")]
    Limit(#[from] LimitError),
    #[error("failed: {0}")]
    Database(#[from] sqlx::Error),
}

impl DatabaseSession {
    pub fn new(catalog: Arc<DatabaseCatalog>, scope: DatabaseScope, masker: Arc<Masker>) -> Self {
        DatabaseSession {
            catalog,
            scope,
            open: HashMap::new(),
            masker,
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
        let (mut conn, engine) = match opened {
            Err(_) => {
                let reason = format!("no connection within {} ms", timeout.as_millis());
                return Err(self.connect_failure(name, &url, &reason, None));
            }
            Ok(Err(e)) => {
                let reason = guest_reason(&e, url.starts_with("sqlite:"));
                return Err(self.connect_failure(name, &url, &reason, Some(&e)));
            }
            Ok(Ok(c)) => c,
        };
        let version = match &mut conn {
            Conn::Postgres(pg) => pg_scalar::<String>(&mut pg.conn, "SHOW server_version").await,
            Conn::Sqlite(c) => {
                sqlx::query_scalar::<_, String>("SELECT sqlite_version()")
                    .fetch_one(c)
                    .await
            }
        }
        .map_err(|e| format!("database `{name}`: reading the server version failed: {e}"))?;
        self.open.insert(name.to_string(), conn);
        Ok(ConnectionInfo {
            engine,
            server_version: version,
            connect_ms,
        })
    }

    /// The guest learns the database's name and what went wrong; where the
    /// database is (host, port, database, user, file) goes to the host log.
    fn connect_failure(
        &self,
        name: &str,
        url: &str,
        reason: &str,
        error: Option<&sqlx::Error>,
    ) -> String {
        let shown = if self.catalog.from_secret.contains(name) {
            "(from a secret)".to_string()
        } else {
            location(url)
        };
        let detail = error.map(ToString::to_string).unwrap_or_default();
        tracing::warn!(database = name, location = %shown, error = %detail, "{reason}");
        format!(
            "cannot connect to database `{name}`: {reason}\n  help: check the url in [targets.{}.databases.{name}] (the host's log says where it points)",
            self.catalog.target
        )
    }

    async fn query(&mut self, name: &str, sql: &str) -> Result<String, String> {
        self.granted_url(name)?;
        let conn = self.open.get_mut(name).ok_or_else(|| {
            format!("database `{name}` is not connected\n  help: call `connect` first")
        })?;
        let (result, postgres) = match conn {
            Conn::Postgres(pg) => (pg.query(sql).await, true),
            Conn::Sqlite(c) => (query_sqlite(c, sql).await, false),
        };
        result.map_err(|e| {
            if postgres && connection_lost(&e) {
                self.open.remove(name);
                return format!(
                    "query on database `{name}` failed: the connection to the database was lost (the server closed it, or the network between failed)\n  the connection was closed: call `connect` again"
                );
            }
            let mut message = format!("query on database `{name}` {e}");
            if postgres && matches!(e, QueryError::Limit(_)) {
                // Closing is how the rest of the result is not read (and the
                // statement is cancelled on the server).
                self.open.remove(name);
                message.push_str("\n  the connection was closed: call `connect` again");
            }
            message
        })
    }
}

async fn open(url: &str) -> Result<(Conn, Engine), sqlx::Error> {
    if url.starts_with("sqlite:") {
        let opts = SqliteConnectOptions::from_str(url)?
            .read_only(true)
            .create_if_missing(false)
            .pragma("query_only", "ON")
            // Rows computed ahead of the host's limits are held in memory.
            .row_buffer_size(SQLITE_ROWS_AHEAD)
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
        let mut conn = opts.connect().await?;
        let pid = pg_scalar::<i32>(&mut conn, "SELECT pg_backend_pid()").await?;
        // PostgreSQL 14+: the server itself ends a statement whose client is
        // gone (the runner exiting before it could cancel). Older servers
        // lack the setting; the cancel on drop still covers them.
        let _ = pg_execute(&mut conn, "SET client_connection_check_interval = '1s'").await;
        let session = PgSession {
            conn,
            pid,
            cancel_via: opts,
            busy: false,
        };
        Ok((Conn::Postgres(Box::new(session)), Engine::Postgres))
    }
}

/// A guest's PostgreSQL connection. A statement still running when it is
/// dropped (the attempt timed out, or a result broke a limit) is cancelled
/// from a connection of the host's.
struct PgSession {
    conn: PgConnection,
    pid: i32,
    cancel_via: PgConnectOptions,
    /// A statement was sent and its transaction not yet rolled back.
    busy: bool,
}

impl PgSession {
    /// One checked statement inside a read-only transaction that is always
    /// rolled back; rows stream in and stop at the host's limits.
    async fn query(&mut self, sql: &str) -> Result<String, QueryError> {
        statement::check_postgres(sql)?;
        self.busy = true;
        pg_execute(&mut self.conn, "BEGIN READ ONLY").await?;
        let rows = collect_postgres(&mut self.conn, sql).await;
        if let Err(QueryError::Limit(_)) = rows {
            // Still busy: the caller drops the connection, which cancels.
            return rows;
        }
        // Undo anything the statement changed in the session (set_config, …).
        pg_execute(&mut self.conn, "ROLLBACK").await?;
        self.busy = false;
        rows
    }
}

impl Drop for PgSession {
    fn drop(&mut self) {
        if !self.busy {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let cancel = cancel_backend(self.cancel_via.clone(), self.pid);
        match runtime.runtime_flavor() {
            // Wait (at most CANCEL_TIMEOUT) so that when the attempt has
            // ended, its statement has too.
            tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| runtime.block_on(cancel))
            }
            _ => drop(runtime.spawn(cancel)),
        }
    }
}

/// `pg_cancel_backend(pid)` from a fresh connection (same role: allowed).
async fn cancel_backend(opts: PgConnectOptions, pid: i32) {
    let cancel = async {
        let mut conn = opts.connect().await?;
        sqlx::query("SELECT pg_cancel_backend($1)")
            .bind(pid)
            .execute(&mut conn)
            .await?;
        conn.close().await
    };
    match tokio::time::timeout(CANCEL_TIMEOUT, cancel).await {
        Ok(Ok(())) => tracing::debug!(pid, "cancelled the statement of an ended stage"),
        Ok(Err(e)) => {
            tracing::warn!(pid, error = %e, "cannot cancel the statement of an ended stage")
        }
        Err(_) => tracing::warn!(
            pid,
            "cannot cancel the statement of an ended stage within {CANCEL_TIMEOUT:?}"
        ),
    }
}

/// The statement as the guest wrote it, never rewritten: the simple query
/// protocol gives every value in its text form, typed here from the column.
fn collect_postgres<'a>(
    conn: &'a mut PgConnection,
    sql: &'a str,
) -> BoxFuture<'a, Result<String, QueryError>> {
    Box::pin(collect(sqlx::raw_sql(sql).fetch(conn), postgres_row))
}

// The PostgreSQL calls are boxed as `Send` futures where their lifetimes are
// concrete: proven `Send` later, inside the bindings' futures, sqlx's
// `Executor<'c>` for `&'c mut PgConnection` is "not general enough" (a rustc
// limit with higher-ranked lifetimes, seen with the whole workspace's sqlx
// features).

fn pg_execute<'a>(
    conn: &'a mut PgConnection,
    sql: &'static str,
) -> BoxFuture<'a, Result<sqlx::postgres::PgQueryResult, sqlx::Error>> {
    // `Executor::execute` (a boxed future already), not `RawSql::execute`,
    // whose `async fn` future rustc cannot prove `Send` for every lifetime.
    sqlx::Executor::execute(conn, sqlx::raw_sql(sql))
}

fn pg_scalar<'a, T>(
    conn: &'a mut PgConnection,
    sql: &'static str,
) -> BoxFuture<'a, Result<T, sqlx::Error>>
where
    T: Send + Unpin + for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + 'a,
{
    Box::pin(sqlx::query_scalar::<_, T>(sql).fetch_one(conn))
}

/// Rows into JSON as they stream in, stopping at the first limit broken
/// (dropping the stream stops reading).
async fn collect<R>(
    mut stream: BoxStream<'_, Result<R, sqlx::Error>>,
    to_json: impl Fn(&R, &RowsJson) -> Result<Map<String, Value>, QueryError>,
) -> Result<String, QueryError> {
    let mut rows = RowsJson::default();
    while let Some(row) = stream.try_next().await? {
        rows.check_row()?;
        let row = to_json(&row, &rows)?;
        rows.push(row)?;
    }
    Ok(rows.finish())
}

fn postgres_row(row: &PgRow, rows: &RowsJson) -> Result<Map<String, Value>, QueryError> {
    let mut obj = Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i)?;
        let value = if raw.is_null() {
            Value::Null
        } else {
            let bytes = raw.as_bytes().map_err(sqlx::Error::Decode)?;
            rows.check_value(bytes.len())?;
            match std::str::from_utf8(bytes) {
                Ok(text) => postgres_value(col.type_info().name(), text),
                Err(_) => Value::from(hex::encode(bytes)),
            }
        };
        obj.insert(col.name().to_string(), value);
    }
    Ok(obj)
}

/// A value's text form as JSON: booleans, numbers and json as themselves,
/// everything else as PostgreSQL writes it.
fn postgres_value(type_name: &str, text: &str) -> Value {
    let parsed = match type_name {
        "BOOL" => Some(Value::Bool(text == "t")),
        "INT2" | "INT4" | "INT8" | "OID" => text.parse::<i64>().ok().map(Value::from),
        "FLOAT4" | "FLOAT8" | "NUMERIC" => serde_json::from_str::<serde_json::Number>(text)
            .ok()
            .map(Value::Number),
        "JSON" | "JSONB" => serde_json::from_str(text).ok(),
        _ => None,
    };
    parsed.unwrap_or_else(|| Value::from(text))
}

async fn query_sqlite(conn: &mut SqliteConnection, sql: &str) -> Result<String, QueryError> {
    statement::check_sqlite(conn, sql).await?;
    collect(sqlx::query(sql).fetch(&mut *conn), sqlite_row).await
}

fn sqlite_row(row: &SqliteRow, rows: &RowsJson) -> Result<Map<String, Value>, QueryError> {
    let mut obj = Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        // SQLite values carry their own storage class; try them in turn.
        let value = if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
            v.map_or(Value::Null, Value::from)
        } else if let Ok(v) = row.try_get::<Option<f64>, _>(i) {
            v.map_or(Value::Null, Value::from)
        } else if let Ok(v) = row.try_get::<Option<String>, _>(i) {
            if let Some(s) = &v {
                rows.check_value(s.len())?;
            }
            v.map_or(Value::Null, Value::from)
        } else if let Ok(v) = row.try_get::<Option<Vec<u8>>, _>(i) {
            if let Some(b) = &v {
                rows.check_value(2 * b.len())?;
            }
            v.map_or(Value::Null, |b| Value::from(hex::encode(b)))
        } else {
            Value::Null
        };
        obj.insert(col.name().to_string(), value);
    }
    Ok(obj)
}

/// The server or the network went away under a statement: the connection
/// cannot be used again.
fn connection_lost(e: &QueryError) -> bool {
    matches!(
        e,
        QueryError::Database(
            sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed
        )
    )
}

/// What the guest is told about a failed connection: the kind of failure,
/// without the driver's words (PostgreSQL's name the user and database).
fn guest_reason(e: &sqlx::Error, sqlite: bool) -> String {
    match e {
        // SQLite's messages name no file ("unable to open database file").
        sqlx::Error::Database(db) if sqlite => db.message().to_string(),
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("28P01") => "password authentication failed".into(),
            Some("28000") => "the server rejected the login (role or pg_hba.conf)".into(),
            Some("3D000") => "the database does not exist on the server".into(),
            Some("53300") => "the server has no free connection".into(),
            Some("57P03") => "the server is starting up or shutting down".into(),
            Some(code) => format!("the server refused the connection (SQLSTATE {code})"),
            None => "the server refused the connection".into(),
        },
        sqlx::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::Other => "the server cannot be reached".into(),
            kind => kind.to_string(),
        },
        sqlx::Error::Tls(_) => "the TLS handshake failed".into(),
        sqlx::Error::Configuration(_) => "the database URL is not valid".into(),
        _ => "the connection failed".into(),
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

impl DatabaseSession {
    /// Errors cross into the guest masked: a driver message must not hand it a credential.
    fn masked<T>(&self, r: Result<T, String>) -> Result<T, String> {
        r.map_err(|e| self.masker.mask(&e).into_owned())
    }
}

impl databases::Host for DatabaseSession {
    async fn names(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(DatabaseSession::names(self))
    }

    async fn connect(
        &mut self,
        name: String,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<ConnectionInfo, String>> {
        let timeout = Duration::from_millis(u64::from(timeout_ms));
        let r = DatabaseSession::connect(self, &name, timeout).await;
        Ok(self.masked(r))
    }

    async fn query(
        &mut self,
        name: String,
        sql: String,
    ) -> wasmtime::Result<Result<String, String>> {
        let r = DatabaseSession::query(self, &name, &sql).await;
        Ok(self.masked(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_text_values_become_typed_json() {
        assert_eq!(postgres_value("BOOL", "t"), Value::Bool(true));
        assert_eq!(postgres_value("INT8", "10001"), Value::from(10001));
        assert_eq!(postgres_value("NUMERIC", "3.25"), Value::from(3.25));
        assert_eq!(postgres_value("NUMERIC", "NaN"), Value::from("NaN"));
        assert_eq!(
            postgres_value("JSONB", r#"{"a": [1]}"#),
            serde_json::json!({"a": [1]})
        );
        assert_eq!(
            postgres_value("TIMESTAMPTZ", "2026-12-02 07:00:00+00"),
            Value::from("2026-12-02 07:00:00+00")
        );
    }

    #[test]
    fn connection_failures_do_not_repeat_the_drivers_words() {
        let refused = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(guest_reason(&refused, false), "connection refused");
        let bad_url = sqlx::Error::Configuration("postgres://u:pw@h/db is invalid".into());
        assert_eq!(
            guest_reason(&bad_url, false),
            "the database URL is not valid"
        );
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
