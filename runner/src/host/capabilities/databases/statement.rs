//! Whether a guest's statement is one read-only query, decided by the
//! database's own parser rather than by reading the text here: PostgreSQL's
//! grammar (libpg_query, through `pg_query`) and SQLite's `prepare` with
//! `sqlite3_stmt_readonly`.
//!
//! PostgreSQL rule: exactly one statement, a `SELECT` (which is also what
//! `WITH`, `VALUES` and `TABLE` parse to) with no data-modifying `WITH`
//! part, no `INTO` and no `FOR UPDATE`/`FOR SHARE`, calling none of the
//! functions in [`DENIED_FUNCTIONS`] anywhere (by name in any schema, also in
//! attribute notation `x.f`). Functions defined in the database run their own
//! bodies unchecked: that is the database owner's code, and it still runs in
//! the read-only transaction.

use std::ffi::{CStr, CString};

use serde_json::Value;
use sqlx::sqlite::SqliteConnection;

/// Why the host refuses a statement (shown to the guest).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("the statement does not parse: {0}")]
    Syntax(String),
    #[error("an empty statement\n  help: send one SELECT")]
    Empty,
    #[error("only one statement per query, got {0}\n  help: send them one by one")]
    Several(usize),
    #[error("only read-only statements (SELECT, WITH, VALUES, TABLE) are allowed, got `{0}`")]
    NotARead(String),
    #[error("{0} inside the statement would write; a check may only read")]
    WritesInside(&'static str),
    #[error(
        "function `{name}` is not allowed: {why}\n  help: the host refuses administrative and side-effecting functions in checks"
    )]
    DeniedFunction { name: String, why: &'static str },
    #[error("SQLite reports that this statement is not read-only")]
    SqliteWrites,
    #[error("the statement returns no rows (SQLite: `{0}`); only queries are allowed")]
    SqliteNoRows(String),
}

/// Functions (lower-case names; a trailing `*` is a prefix) a check may not
/// call, with the reason shown to the guest.
pub const DENIED_FUNCTIONS: &[(&[&str], &str)] = &[
    (
        &[
            "pg_terminate_backend",
            "pg_cancel_backend",
            "pg_signal_backend",
            "pg_log_backend_memory_contexts",
        ],
        "it acts on other sessions",
    ),
    (
        &[
            "pg_reload_conf",
            "pg_rotate_logfile*",
            "pg_switch_wal",
            "pg_promote",
            "pg_backup_*",
            "pg_start_backup",
            "pg_stop_backup",
            "pg_create_*",
            "pg_drop_replication_slot",
            "pg_copy_*_replication_slot",
            "pg_replication_*",
            "pg_logical_*",
            "pg_stat_reset*",
            "pg_stat_statements_reset",
            "pg_import_system_collations",
            "pg_wal_replay_*",
        ],
        "it administers the server",
    ),
    (
        &["lo_*", "loread", "lowrite"],
        "large objects are stored data (and files on the server)",
    ),
    (
        &[
            "pg_read_file",
            "pg_read_binary_file",
            "pg_ls_*",
            "pg_stat_file",
            "pg_file_*",
        ],
        "it reads or writes files on the server",
    ),
    (
        &["dblink*"],
        "it opens connections the host does not control",
    ),
    (
        &["query_to_xml*", "cursor_to_xml*", "ts_stat", "ts_rewrite"],
        "it runs SQL given as text, which the host cannot check",
    ),
    (&["set_config"], "it changes settings"),
    (
        &["nextval", "setval"],
        "sequences advance outside the transaction",
    ),
    (
        &["pg_advisory_*", "pg_try_advisory_*"],
        "advisory locks outlive the statement",
    ),
    (&["pg_notify"], "it signals other sessions"),
];

/// Why `name` (any case, any schema) may not be called, if it may not.
pub fn denied_function(name: &str) -> Option<&'static str> {
    let name = name.to_ascii_lowercase();
    DENIED_FUNCTIONS.iter().find_map(|(names, why)| {
        names
            .iter()
            .any(|pattern| match pattern.split_once('*') {
                Some((head, tail)) => {
                    name.len() >= head.len() + tail.len()
                        && name.starts_with(head)
                        && name.ends_with(tail)
                }
                None => name == *pattern,
            })
            .then_some(*why)
    })
}

/// Checks a PostgreSQL statement with PostgreSQL's parser.
pub fn check_postgres(sql: &str) -> Result<(), Refusal> {
    let parsed = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT)
        .map_err(|e| Refusal::Syntax(parse_message(e)))?;
    let stmts = &parsed.protobuf.stmts;
    match stmts.len() {
        0 => return Err(Refusal::Empty),
        1 => {}
        n => return Err(Refusal::Several(n)),
    }
    let kind = stmts[0]
        .stmt
        .as_ref()
        .and_then(|n| n.node.as_ref())
        .map(|n| matches!(n, pg_query::NodeEnum::SelectStmt(_)));
    if kind != Some(true) {
        return Err(Refusal::NotARead(first_keyword(sql)));
    }
    // The whole tree, generically: every node kind is seen, whatever a
    // walker written against a list of kinds would miss.
    let tree = serde_json::to_value(&parsed.protobuf)
        .map_err(|e| Refusal::Syntax(format!("the parse tree cannot be read: {e}")))?;
    walk(&tree)
}

fn parse_message(e: pg_query::Error) -> String {
    match e {
        pg_query::Error::Parse(m) => m,
        other => other.to_string(),
    }
}

/// The statement's first word (after comments), for the refusal message.
fn first_keyword(sql: &str) -> String {
    use pg_query::protobuf::Token;
    let comment = |t: &&pg_query::protobuf::ScanToken| {
        t.token == Token::SqlComment as i32 || t.token == Token::CComment as i32
    };
    pg_query::scan(sql)
        .ok()
        .and_then(|s| s.tokens.iter().find(|t| !comment(t)).cloned())
        .and_then(|t| sql.get(t.start as usize..t.end as usize).map(str::to_owned))
        .unwrap_or_default()
        .to_ascii_uppercase()
}

fn walk(node: &Value) -> Result<(), Refusal> {
    match node {
        Value::Object(fields) => {
            for (key, child) in fields {
                check_node(key, child)?;
                walk(child)?;
            }
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(walk),
        _ => Ok(()),
    }
}

/// One node of the parse tree (`key` is its kind).
fn check_node(key: &str, node: &Value) -> Result<(), Refusal> {
    match key {
        "InsertStmt" => Err(Refusal::WritesInside("INSERT")),
        "UpdateStmt" => Err(Refusal::WritesInside("UPDATE")),
        "DeleteStmt" => Err(Refusal::WritesInside("DELETE")),
        "MergeStmt" => Err(Refusal::WritesInside("MERGE")),
        "SelectStmt" if !node["into_clause"].is_null() => {
            Err(Refusal::WritesInside("SELECT … INTO (a new table)"))
        }
        "SelectStmt"
            if node["locking_clause"]
                .as_array()
                .is_some_and(|l| !l.is_empty()) =>
        {
            Err(Refusal::WritesInside("FOR UPDATE/SHARE (row locks)"))
        }
        "FuncCall" => denied_name(&node["funcname"]),
        // `x.f` is `f(x)` for a composite x.
        "ColumnRef" => denied_name(&node["fields"]),
        _ => Ok(()),
    }
}

/// A qualified name (a list of `String` nodes): refused if its last part is denied.
fn denied_name(parts: &Value) -> Result<(), Refusal> {
    let last = parts
        .as_array()
        .and_then(|p| p.last())
        .and_then(|n| n["node"]["String"]["sval"].as_str());
    match last.and_then(|name| denied_function(name).map(|why| (name, why))) {
        Some((name, why)) => Err(Refusal::DeniedFunction {
            name: name.to_string(),
            why,
        }),
        None => Ok(()),
    }
}

/// Asks SQLite, on the connection that will run it, whether `sql` is one
/// read-only statement that returns rows.
pub async fn check_sqlite(conn: &mut SqliteConnection, sql: &str) -> Result<(), Refusal> {
    let text = CString::new(sql)
        .map_err(|_| Refusal::Syntax("the statement contains a NUL character".into()))?;
    let mut handle = conn
        .lock_handle()
        .await
        .map_err(|e| Refusal::Syntax(format!("the SQLite connection is not usable: {e}")))?;
    let db = handle.as_raw_handle().as_ptr();
    let first = Prepared::new(db, text.as_ptr())?;
    let Some(stmt) = first.stmt else {
        return Err(Refusal::Empty);
    };
    // Anything after the first statement must prepare to nothing (comments).
    let rest = Prepared::new(db, first.tail)?;
    if rest.stmt.is_some() {
        return Err(Refusal::Several(2));
    }
    // SAFETY: `stmt` is a live statement of `db`, finalized when `first` drops.
    let (read_only, columns) = unsafe {
        (
            libsqlite3_sys::sqlite3_stmt_readonly(stmt) != 0,
            libsqlite3_sys::sqlite3_column_count(stmt),
        )
    };
    if !read_only {
        return Err(Refusal::SqliteWrites);
    }
    // BEGIN, ATTACH and setting PRAGMAs count as read-only to SQLite but
    // change the connection; queries return columns.
    if columns == 0 {
        return Err(Refusal::SqliteNoRows(sql.trim().chars().take(40).collect()));
    }
    Ok(())
}

/// A prepared (never stepped) SQLite statement, finalized on drop.
struct Prepared {
    stmt: Option<*mut libsqlite3_sys::sqlite3_stmt>,
    tail: *const std::os::raw::c_char,
}

impl Prepared {
    fn new(
        db: *mut libsqlite3_sys::sqlite3,
        sql: *const std::os::raw::c_char,
    ) -> Result<Prepared, Refusal> {
        let mut stmt = std::ptr::null_mut();
        let mut tail = std::ptr::null();
        // SAFETY: `db` is held locked by the caller; `sql` is NUL-terminated
        // and outlives this call (it is the caller's CString or a tail in it).
        let rc = unsafe { libsqlite3_sys::sqlite3_prepare_v2(db, sql, -1, &mut stmt, &mut tail) };
        if rc != libsqlite3_sys::SQLITE_OK {
            // SAFETY: sqlite3_errmsg returns a NUL-terminated string owned by `db`.
            let message = unsafe { CStr::from_ptr(libsqlite3_sys::sqlite3_errmsg(db)) };
            return Err(Refusal::Syntax(message.to_string_lossy().into_owned()));
        }
        Ok(Prepared {
            stmt: (!stmt.is_null()).then_some(stmt),
            tail,
        })
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if let Some(stmt) = self.stmt {
            // SAFETY: prepared by sqlite3_prepare_v2 and finalized once.
            unsafe { libsqlite3_sys::sqlite3_finalize(stmt) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(sql: &str) -> String {
        match check_postgres(sql) {
            Ok(()) => panic!("accepted: {sql}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn reads_in_every_spelling_pass() {
        for sql in [
            "SELECT 1",
            "  select 1;",
            "-- comment\nSELECT ';' AS x; -- trailing",
            "/* c */ WITH a AS (SELECT 1) SELECT * FROM a",
            "VALUES (1)",
            "TABLE pg_class",
            "(SELECT 1)",
            "SELECT count(*) FROM pg_stat_activity WHERE usename = current_user",
            "SELECT pg_sleep(0.1), now(), version(), current_setting('max_connections')",
            "SELECT CAST(max(version) AS BIGINT) AS version FROM schema_migrations",
        ] {
            assert!(
                check_postgres(sql).is_ok(),
                "{sql}: {:?}",
                check_postgres(sql)
            );
        }
    }

    #[test]
    fn writes_and_stacked_statements_are_refused() {
        for (sql, want) in [
            ("DELETE FROM t", "got `DELETE`"),
            ("insert into t values (1)", "got `INSERT`"),
            ("SELECT 1; DROP TABLE t", "one statement per query, got 2"),
            ("/* x */ UPDATE t SET a = 1", "got `UPDATE`"),
            ("", "empty statement"),
            ("  ; -- nothing", "empty statement"),
            ("SELECT 'unterminated", "does not parse"),
            ("SET default_transaction_read_only = off", "got `SET`"),
            ("COMMIT", "got `COMMIT`"),
            (
                "WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d",
                "DELETE inside",
            ),
            ("SELECT * INTO copy FROM t", "INTO"),
            ("SELECT * FROM t FOR UPDATE", "FOR UPDATE"),
            ("COPY t TO STDOUT", "got `COPY`"),
        ] {
            let e = refusal(sql);
            assert!(e.contains(want), "{sql}: {e}");
        }
    }

    #[test]
    fn administrative_and_side_effecting_functions_are_refused_anywhere() {
        for (sql, name) in [
            (
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = current_user",
                "pg_terminate_backend",
            ),
            (
                "SELECT PG_CATALOG.PG_CANCEL_BACKEND(1)",
                "pg_cancel_backend",
            ),
            ("SELECT \"pg_terminate_backend\"(1)", "pg_terminate_backend"),
            ("SELECT lo_create(0)", "lo_create"),
            ("SELECT * FROM lo_import('/etc/passwd')", "lo_import"),
            (
                "SELECT 1 WHERE EXISTS (SELECT set_config('a.b', 'c', false))",
                "set_config",
            ),
            ("SELECT CASE WHEN true THEN nextval('s') END", "nextval"),
            (
                "SELECT query_to_xml('DELETE FROM t', true, true, '')",
                "query_to_xml",
            ),
            ("SELECT pg_read_file('/etc/passwd')", "pg_read_file"),
            (
                "SELECT * FROM dblink('host=x', 'SELECT 1') AS t(a int)",
                "dblink",
            ),
            ("SELECT pg_advisory_lock(1)", "pg_advisory_lock"),
            ("VALUES ((SELECT pg_reload_conf()))", "pg_reload_conf"),
            ("SELECT ARRAY[lo_unlink(1)]", "lo_unlink"),
            (
                "SELECT x.pg_terminate_backend FROM (SELECT 1) AS x",
                "pg_terminate_backend",
            ),
        ] {
            let e = refusal(sql);
            assert!(
                e.contains(&format!("function `{}`", name.to_ascii_lowercase()))
                    || e.contains(&format!("function `{name}`")),
                "{sql}: {e}"
            );
        }
    }

    /// Where the old hand-written lexer disagreed with PostgreSQL.
    #[test]
    fn escape_strings_and_nested_comments_parse_as_postgresql_does() {
        // E'\'' is one quote inside an escape string: the `;` after it ends
        // the statement, and the DELETE is a second one.
        let e = refusal(r"SELECT E'\'' ; DELETE FROM t");
        assert!(e.contains("one statement per query, got 2"), "{e}");
        // Comments nest in PostgreSQL: the first `*/` does not end this one.
        let e = refusal("SELECT 1 /* a /* b */ ; DELETE FROM t; */ ; DELETE FROM t");
        assert!(e.contains("one statement per query, got 2"), "{e}");
        assert!(check_postgres("SELECT 1 /* a /* b */ ; DELETE FROM t; */").is_ok());
        assert!(check_postgres(r"SELECT E'it\'s' AS s").is_ok());
    }

    #[test]
    fn denied_names_match_exactly_or_by_prefix() {
        assert!(denied_function("LO_FROM_BYTEA").is_some());
        assert!(denied_function("pg_copy_logical_replication_slot").is_some());
        assert!(denied_function("dblink_exec").is_some());
        assert!(denied_function("lower").is_none());
        assert!(denied_function("pg_sleep").is_none());
        assert!(denied_function("currval").is_none());
        assert!(denied_function("pg_backend_pid").is_none());
    }
}
