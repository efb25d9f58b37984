//! The `databases` capability against hostile statements: the host decides
//! what a statement does with the database's own parser, bounds results
//! while they stream (rows, bytes), stops a statement when its stage ends,
//! and tells the guest nothing about where a database is. SQLite files are
//! made here; the PostgreSQL tests run when `VALERO_TEST_POSTGRES_URL` is
//! set at build time (as .ci/run does) and are listed as ignored otherwise.

mod common;

use std::time::{Duration, Instant};

use common::databases::*;
use common::*;

#[test]
fn database_writes_are_refused_by_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_db(dir.path(), "app", 2);
    let answers = ask_host(
        &[("app", &url)],
        "app",
        "[\"app\"]",
        &[
            "DELETE FROM customers",
            "insert into customers (name) values ('x')",
            "SELECT 1; DELETE FROM customers",
            // Starts like a read: SQLite's own verdict refuses it.
            "WITH x AS (SELECT 1) DELETE FROM customers",
            "ATTACH DATABASE ':memory:' AS m",
            "PRAGMA query_only = OFF",
            "SELECT count(*) AS n FROM customers; -- a trailing comment",
        ],
    );
    for (ok, answer) in &answers[..6] {
        assert!(!ok, "the host ran a write: {answer}");
        assert!(answer.contains("refused by the host"), "{answer}");
    }
    for (_, answer) in [&answers[0], &answers[1], &answers[3]] {
        assert!(answer.contains("not read-only"), "{answer}");
    }
    assert!(answers[2].1.contains("one statement"), "{}", answers[2].1);
    assert_eq!(answers[6], (true, r#"[{"n":1}]"#.to_string()));
}

#[test]
#[cfg_attr(
    not(valero_test_postgres),
    ignore = "needs PostgreSQL: set VALERO_TEST_POSTGRES_URL (.ci/run does)"
)]
fn database_writes_are_refused_by_the_host_on_postgresql() {
    let pg = postgres_url();
    let answers = ask_host(
        &[("pg", &pg)],
        "pg",
        "true",
        &[
            "SELECT nextval('valero_ro_probe')",
            "WITH d AS (DELETE FROM pg_class RETURNING 1) SELECT * FROM d",
            "SELECT set_config('default_transaction_read_only', 'off', false)",
            "SELECT current_setting('default_transaction_read_only') AS ro",
            "SELECT 1 AS one",
        ],
    );
    assert!(
        answers[0].1.contains("function `nextval`"),
        "{}",
        answers[0].1
    );
    assert!(answers[1].1.contains("DELETE inside"), "{}", answers[1].1);
    assert!(
        answers[2].1.contains("function `set_config`"),
        "{}",
        answers[2].1
    );
    for (ok, answer) in &answers[..3] {
        assert!(!ok && answer.contains("refused by the host"), "{answer}");
    }
    assert_eq!(answers[3], (true, r#"[{"ro":"on"}]"#.to_string()));
    assert_eq!(answers[4], (true, r#"[{"one":1}]"#.to_string()));
}

#[test]
fn databases_are_opened_only_when_granted_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let a = sqlite_db(dir.path(), "a", 1);
    let b = sqlite_db(dir.path(), "b", 1);
    let dbs = [("a", a.as_str()), ("b", b.as_str())];
    let answers = ask_host(&dbs, "b", "[\"a\"]", &["SELECT 1 AS one"]);
    assert!(!answers[0].0);
    assert!(
        answers[0].1.contains("database `b` is not granted"),
        "{}",
        answers[0].1
    );

    // Without the grant the component does not even load.
    let project = Project::new(&db_pipeline(
        &dbs,
        &format!(
            "[stages.ask]\n{}with = {{ database = \"a\", sql = [] }}\n",
            plugin_lines("wants-databases")
        ),
    ));
    let (code, report, _) = project.run(&[]);
    assert_eq!(code, 4, "{report:#}");
    let reason = stage(&report, "ask")["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(reason.contains("databases"), "{reason}");
}

/// 23.4: the row limit is not a text wrapper a statement can close.
#[test]
#[cfg_attr(
    not(valero_test_postgres),
    ignore = "needs PostgreSQL: set VALERO_TEST_POSTGRES_URL (.ci/run does)"
)]
fn the_row_limit_holds_against_a_statement_that_closes_a_wrapper() {
    let pg = postgres_url();
    let answers = ask_host(
        &[("pg", &pg)],
        "pg",
        "true",
        &[
            // Granted control: exactly the limit.
            "SELECT g FROM generate_series(1, 10000) AS g",
            // Closes `SELECT … FROM ({sql}) AS q LIMIT …` and returns 50 000 values.
            "SELECT 1) AS q LIMIT 1) AS q HAVING false UNION ALL \
             SELECT (SELECT json_agg(g) FROM generate_series(1, 50000) AS g)::text, 1::bigint --",
            // One past the limit, streamed: stops at row 10 001.
            "SELECT g FROM generate_series(1, 50000) AS g",
        ],
    );
    assert!(answers[0].0, "{}", answers[0].1);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&answers[0].1).unwrap();
    assert_eq!(rows.len(), 10_000);
    assert!(
        !answers[1].0,
        "the wrapper was closed: {} bytes back",
        answers[1].1.len()
    );
    assert!(answers[1].1.contains("does not parse"), "{}", answers[1].1);
    assert!(!answers[2].0, "{} bytes back", answers[2].1.len());
    assert!(
        answers[2].1.contains("more than 10000 rows"),
        "{}",
        answers[2].1
    );
}

/// `valero run` of `project`, with the peak RSS of the valero process (bytes).
// The child is reaped by wait4 (which also reports its rusage), not by `wait`.
#[allow(clippy::zombie_processes)]
fn run_measured(project: &Project) -> (serde_json::Value, u64) {
    use std::process::Stdio;
    let child = project
        .command(&["run", "--progress", "plain", "--report", "json=report.json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run valero");
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 reaps our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4");
    let report = std::fs::read_to_string(project.path().join("report.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(serde_json::Value::Null);
    (report, usage.ru_maxrss as u64 * 1024)
}

/// 23.5: results are capped in bytes while they stream, so ten 50 MB rows
/// never sit in host memory; the message names the limit.
#[test]
#[cfg_attr(
    not(valero_test_postgres),
    ignore = "needs PostgreSQL: set VALERO_TEST_POSTGRES_URL (.ci/run does)"
)]
fn a_result_over_the_byte_limit_is_refused_without_holding_it() {
    let pg = postgres_url();
    let project = ask_project(
        &[("pg", &pg)],
        "pg",
        "true",
        &[
            // Granted control: 10 rows of 50 kB come back (kept under the
            // host's 1 MiB cap on a stage's outputs, where the plugin puts them).
            "SELECT repeat('x', 50000) AS big FROM generate_series(1, 10)",
            "SELECT repeat('x', 50000000) AS big FROM generate_series(1, 10)",
        ],
        "",
    );
    let (report, peak) = run_measured(&project);
    let answers = answers(&report, "");
    assert!(
        answers[0].0,
        "{}",
        &answers[0].1[..200.min(answers[0].1.len())]
    );
    // [{"big":"x…"}, …]: 10 rows of 50 kB + 10 bytes, 9 commas, 2 brackets.
    assert_eq!(answers[0].1.len(), 10 * (50_000 + 10) + 9 + 2);
    assert!(!answers[1].0);
    assert!(
        answers[1].1.contains("larger than 16 MiB"),
        "{}",
        answers[1].1
    );
    eprintln!("peak RSS of valero: {} MiB", peak >> 20);
    // Before: 1.49 GB. One 50 MB row is held by the driver at a time.
    assert!(peak < 400 << 20, "peak RSS {} MiB", peak >> 20);
}

#[test]
fn a_result_over_the_byte_limit_is_refused_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_db(dir.path(), "app", 1);
    let answers = ask_host(
        &[("app", &url)],
        "app",
        "true",
        &[
            "SELECT hex(zeroblob(1000)) AS small FROM (VALUES (1), (2))",
            "SELECT hex(zeroblob(10000000)) AS big FROM (VALUES (1), (2), (3))",
        ],
    );
    assert!(answers[0].0, "{}", answers[0].1);
    assert!(!answers[1].0);
    assert!(
        answers[1].1.contains("larger than 16 MiB"),
        "{}",
        answers[1].1
    );
}

/// 23.6: a read-only check cannot end other sessions of its role nor create
/// large objects; reading pg_stat_activity still works.
#[test]
#[cfg_attr(
    not(valero_test_postgres),
    ignore = "needs PostgreSQL: set VALERO_TEST_POSTGRES_URL (.ci/run does)"
)]
fn a_check_cannot_terminate_sessions_or_create_large_objects() {
    let pg = postgres_url();
    block_on(async {
        use sqlx::Connection;
        // A service's connection, same role as the stage's.
        let mut victim = pg_connect(&pg, "valero-victim").await;
        let pg = pg.clone();
        let answers = tokio::task::spawn_blocking(move || {
            ask_host(
                &[("pg", &pg)],
                "pg",
                "true",
                &[
                    "SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity \
                     WHERE application_name = 'valero-victim'",
                    "SELECT lo_create(0) AS lo",
                    "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'valero-victim'",
                ],
            )
        })
        .await
        .unwrap();
        assert!(!answers[0].0, "{}", answers[0].1);
        assert!(
            answers[0]
                .1
                .contains("function `pg_terminate_backend` is not allowed"),
            "{}",
            answers[0].1
        );
        assert!(!answers[1].0, "{}", answers[1].1);
        assert!(
            answers[1].1.contains("function `lo_create`"),
            "{}",
            answers[1].1
        );
        assert_eq!(answers[2], (true, r#"[{"n":1}]"#.to_string()));
        victim
            .ping()
            .await
            .expect("the service's connection was terminated");
    });
}

/// 23.7: when a stage times out in `pg_sleep`, its statement is cancelled,
/// not left running until `statement_timeout`.
#[test]
#[cfg_attr(
    not(valero_test_postgres),
    ignore = "needs PostgreSQL: set VALERO_TEST_POSTGRES_URL (.ci/run does)"
)]
fn a_timed_out_stage_leaves_no_statement_running() {
    let pg = postgres_url();
    let marker = format!("wait_{}", std::process::id());
    let sleep = format!("SELECT pg_sleep(30) AS {marker}");
    let project = ask_project(
        &[("pg", &pg)],
        "pg",
        "true",
        &[&sleep],
        "timeout = \"2s\"\n",
    );
    let (_, report, out) = project.run(&[]);
    let attempt = &stage(&report, "ask")["attempts"][0];
    assert_eq!(
        attempt["outcome"],
        "timed_out",
        "{report:#}\n{}",
        stderr(&out)
    );
    let running = || {
        pg_strings(
            &pg,
            &format!(
                "SELECT pid::text FROM pg_stat_activity WHERE query LIKE '%{marker}%' \
                 AND pid <> pg_backend_pid()"
            ),
        )
    };
    let ended = Instant::now();
    while !running().is_empty() && ended.elapsed() < Duration::from_millis(1500) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        running(),
        Vec::<String>::new(),
        "still running after {:?}",
        ended.elapsed()
    );

    // Granted control: a short sleep within the stage's time completes.
    let answers = ask_host(
        &[("pg", &pg)],
        "pg",
        "true",
        &["SELECT 1 AS slept FROM pg_sleep(0.2)"],
    );
    assert_eq!(answers[0], (true, r#"[{"slept":1}]"#.to_string()));
}

/// 23.10: the guest learns a database's name and what went wrong, never its
/// host, port, database or user; errors speak of the guest's own statement.
#[test]
fn errors_name_the_database_but_not_where_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let gone = format!("sqlite://{}/missing.db", dir.path().display());
    connect_error_names_the_database_only(
        "down",
        "postgres://valero:valero@127.0.0.1:1/nothing_here",
    );
    connect_error_names_the_database_only("gone", &gone);
}

/// `connect` to `url` (as database `name`) fails with a message that names
/// the database and the cause, not where it is.
fn connect_error_names_the_database_only(name: &str, url: &str) {
    let project = ask_project(&[(name, url)], name, "true", &[], "");
    let (_, report, out) = project.run(&[]);
    let connect = &stage(&report, "ask")["checks"][0];
    let msg = connect["message"].as_str().unwrap_or_default();
    assert_eq!(connect["verdict"], "fail", "{report:#}\n{}", stderr(&out));
    assert!(
        msg.contains(&format!("cannot connect to database `{name}`")),
        "{msg}"
    );
    for hidden in [
        "127.0.0.1",
        "5432",
        ":1/",
        "valero",
        "nothing_here",
        "missing.db",
        "no_such",
    ] {
        assert!(
            !msg.contains(hidden),
            "`{hidden}` shown to the guest: {msg}"
        );
    }
    assert!(
        msg.contains(&format!("[targets.local.databases.{name}]")),
        "{msg}"
    );
    let reason = match name {
        "down" => "connection refused",
        "gone" => "unable to open database file",
        _ => "does not exist",
    };
    assert!(msg.to_lowercase().contains(reason), "{msg}");
}

#[test]
#[cfg_attr(
    not(valero_test_postgres),
    ignore = "needs PostgreSQL: set VALERO_TEST_POSTGRES_URL (.ci/run does)"
)]
fn errors_on_postgresql_speak_of_the_guest_statement_not_of_the_server() {
    let pg = postgres_url();
    // The real server, a database that does not exist on it.
    let (base, _) = pg.rsplit_once('/').expect("postgres URL with a database");
    connect_error_names_the_database_only("nodb", &format!("{base}/valero_no_such_database"));
    let answers = ask_host(
        &[("pg", &pg)],
        "pg",
        "true",
        &[
            "SELECT 1 LIMIT",
            "SELECT * FROM no_such_table_4711",
            "SELECT 1 AS one",
        ],
    );
    // Words about the guest's own text (the host's parser's, then
    // PostgreSQL's), not about a wrapper.
    assert!(
        answers[0]
            .1
            .contains("does not parse: Expected: an expression, found: the end of the statement"),
        "{}",
        answers[0].1
    );
    assert!(
        answers[1]
            .1
            .contains("\"no_such_table_4711\" does not exist"),
        "{}",
        answers[1].1
    );
    for (_, answer) in &answers[..2] {
        for wrapper in ["json_agg", "AS q", "10001"] {
            assert!(!answer.contains(wrapper), "{answer}");
        }
    }
    assert_eq!(answers[2], (true, r#"[{"one":1}]"#.to_string()));
}
