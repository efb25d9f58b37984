//! Whether a guest's statement is one read-only query. PostgreSQL
//! statements are read with `sqlparser` (PostgreSQL dialect: `E'…'` escape
//! strings, nested comments, dollar quotes); SQLite decides its own with
//! `prepare` and `sqlite3_stmt_readonly`.
//!
//! PostgreSQL rule: exactly one statement, a query (`SELECT`, `WITH`,
//! `VALUES`, `TABLE`) with no data-modifying `WITH` part, no `INTO` and no
//! `FOR UPDATE`/`FOR SHARE`, calling none of the functions in
//! [`DENIED_FUNCTIONS`] anywhere (by name in any schema, also in attribute
//! notation `x.f`). What the parser cannot read is refused. Functions defined
//! in the database run their own bodies unchecked: that is the database
//! owner's code, and it still runs in the read-only transaction (the second
//! layer, which also covers any place where this reading and the server's
//! disagree).

use std::ffi::{CStr, CString};
use std::ops::ControlFlow;

use sqlparser::ast::{Query, Select, Statement, Visit, Visitor};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};
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
    #[error(
        "a Unicode-escaped identifier (U&\"…\") is not allowed\n  help: write the name plainly, e.g. \"name\" or name"
    )]
    UnicodeIdentifier,
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

/// Checks a PostgreSQL statement.
pub fn check_postgres(sql: &str) -> Result<(), Refusal> {
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| Refusal::Syntax(e.to_string()))?;
    let code: Vec<&Token> = tokens
        .iter()
        .map(|t| &t.token)
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    check_calls(&code, &tokens)?;
    let first = first_keyword(&code);
    let statements =
        parse(tokens, first == "TABLE").map_err(|e| Refusal::Syntax(parse_message(e)))?;
    let query = match statements.as_slice() {
        [] => return Err(Refusal::Empty),
        [Statement::Query(query)] => query,
        [_] => return Err(Refusal::NotARead(first)),
        several => return Err(Refusal::Several(several.len())),
    };
    // Every query, SELECT and statement nested anywhere in the tree (CTEs,
    // subqueries, set operations) passes through the visitor.
    match query.visit(&mut Writes) {
        ControlFlow::Break(refusal) => Err(refusal),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// Refuses calls of denied functions, on the tokens rather than the tree so
/// that no AST node kind can hide one: PostgreSQL calls a function by name
/// only as `name (` (any schema, quoted or not, in any clause) or in
/// attribute notation `x.name`, and whitespace and comments between the
/// tokens are already dropped from `code`.
fn check_calls(code: &[&Token], tokens: &[TokenWithSpan]) -> Result<(), Refusal> {
    for (i, token) in code.iter().enumerate() {
        let Token::Word(word) = token else { continue };
        let called = matches!(code.get(i + 1), Some(Token::LParen));
        let attribute = i > 0 && matches!(code[i - 1], Token::Period);
        if let Some(why) = denied_function(&word.value).filter(|_| called || attribute) {
            return Err(Refusal::DeniedFunction {
                name: word.value.to_ascii_lowercase(),
                why,
            });
        }
    }
    // PostgreSQL decodes U&"d\0061ta" to an identifier; the tokenizer here
    // reads a word `U`, `&` and a quoted word it does not decode, so a
    // denied name could hide in the escapes.
    let unicode_identifier = tokens.windows(3).any(|w| {
        matches!(&w[0].token, Token::Word(u) if u.quote_style.is_none() && u.value.eq_ignore_ascii_case("u"))
            && w[1].token == Token::Ampersand
            && matches!(&w[2].token, Token::Word(q) if q.quote_style == Some('"'))
            && w[0].span.end == w[1].span.start
            && w[1].span.end == w[2].span.start
    });
    if unicode_identifier {
        return Err(Refusal::UnicodeIdentifier);
    }
    Ok(())
}

/// Finds what would write inside a query.
struct Writes;

impl Visitor for Writes {
    type Break = Refusal;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Refusal> {
        if query.locks.is_empty() {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(Refusal::WritesInside("FOR UPDATE/SHARE (row locks)"))
        }
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<Refusal> {
        match select.into {
            None => ControlFlow::Continue(()),
            Some(_) => ControlFlow::Break(Refusal::WritesInside("SELECT … INTO (a new table)")),
        }
    }

    /// Only nested statements reach here (the visit starts at the query):
    /// data-modifying `WITH` parts and anything else that is not a query.
    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<Refusal> {
        ControlFlow::Break(Refusal::WritesInside(match statement {
            Statement::Insert { .. } => "INSERT",
            Statement::Update { .. } => "UPDATE",
            Statement::Delete { .. } => "DELETE",
            Statement::Merge { .. } => "MERGE",
            _ => "a statement that is not a query",
        }))
    }
}

/// The statements in `tokens`. sqlparser reads PostgreSQL's `TABLE name`
/// as a query only inside one (`… UNION TABLE t`, `(TABLE t)`), so a
/// statement that starts with it is read as a query first.
fn parse(
    tokens: Vec<TokenWithSpan>,
    starts_with_table: bool,
) -> Result<Vec<Statement>, ParserError> {
    let dialect = PostgreSqlDialect {};
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens);
    let mut statements = Vec::new();
    if starts_with_table {
        statements.push(Statement::Query(parser.parse_query()?));
    }
    statements.extend(parser.parse_statements()?);
    Ok(statements)
}

fn parse_message(e: ParserError) -> String {
    match e {
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => {
            m.replace("found: EOF", "found: the end of the statement")
        }
        ParserError::RecursionLimitExceeded => {
            "it is nested too deeply\n  help: flatten the expression or subqueries".into()
        }
    }
}

/// The statement's first word (after comments), for the refusal message.
fn first_keyword(code: &[&Token]) -> String {
    match code.first() {
        Some(Token::Word(word)) => word.value.to_ascii_uppercase(),
        Some(other) => other.to_string(),
        None => String::new(),
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
            "table pg_class ORDER BY oid LIMIT 1;",
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
            ("SELECT 1 LIMIT", "found: the end of the statement"),
            ("SET default_transaction_read_only = off", "got `SET`"),
            ("COMMIT", "got `COMMIT`"),
            (
                "WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d",
                "DELETE inside",
            ),
            ("SELECT * INTO copy FROM t", "INTO"),
            ("SELECT * FROM t FOR UPDATE", "FOR UPDATE"),
            ("COPY t TO STDOUT", "got `COPY`"),
            ("TABLE t; DELETE FROM t", "one statement per query, got 2"),
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

    /// Where this tokenizer and PostgreSQL's could disagree about which
    /// words are code.
    #[test]
    fn denied_calls_cannot_hide_from_the_tokenizer() {
        // `$` continues an identifier in PostgreSQL: `a$$` is a name, not
        // the start of a dollar-quoted string.
        let e = refusal("SELECT 1 AS a$$, pg_terminate_backend(1) --$$");
        assert!(e.contains("function `pg_terminate_backend`"), "{e}");
        // Backslashes do not escape in standard strings (PostgreSQL's
        // standard_conforming_strings, on since 9.1): the string ends at `\'`.
        let e = refusal(r"SELECT '\', pg_terminate_backend(1) --'");
        assert!(e.contains("function `pg_terminate_backend`"), "{e}");
        let e = refusal("SELECT $q$ x $q$, pg_catalog . pg_cancel_backend /* c */ (1)");
        assert!(e.contains("function `pg_cancel_backend`"), "{e}");
        // PostgreSQL decodes Unicode escapes in identifiers.
        let e = refusal(r#"SELECT U&"pg\0074erminate_backend"(1)"#);
        assert!(e.contains("Unicode-escaped identifier"), "{e}");
        let e = refusal(r#"SELECT u&"pg!0074erminate_backend"(1) UESCAPE '!'"#);
        assert!(e.contains("Unicode-escaped identifier"), "{e}");
        // Controls: Unicode strings, dollar quotes and a column that is only
        // named like a denied function are reads.
        for sql in [
            r"SELECT U&'d\0061t\+000061' AS s",
            "SELECT $$pg_terminate_backend(1)$$ AS s",
            "SELECT 'x' AS nextval",
            "SELECT u & 1 FROM (SELECT 3 AS u) AS t",
        ] {
            assert!(
                check_postgres(sql).is_ok(),
                "{sql}: {:?}",
                check_postgres(sql)
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_exhausting_the_stack() {
        let depth = 100_000;
        let sql = format!("SELECT {}1{}", "(".repeat(depth), ")".repeat(depth));
        let e = refusal(&sql);
        assert!(e.contains("does not parse"), "{e}");
        let sql = format!("SELECT {}1{}", "(".repeat(20), ")".repeat(20));
        assert!(check_postgres(&sql).is_ok());
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
