//! Helpers for the tests of the `databases` capability and `db-check`:
//! SQLite files made here, PostgreSQL when `VALERO_TEST_POSTGRES_URL` is set
//! (as .ci/run does), and the `wants-databases` test plugin.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::*;

/// A SQLite file with `schema_migrations` at `version` (and one data table).
pub fn sqlite_db(dir: &Path, name: &str, version: u32) -> String {
    let path = dir.join(format!("{name}.db"));
    let script = format!(
        "import sqlite3\nc = sqlite3.connect({:?})\n\
         c.execute('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)')\n\
         c.execute('CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)')\n\
         c.execute(\"INSERT INTO customers (name) VALUES ('Landhandel')\")\n\
         [c.execute('INSERT INTO schema_migrations VALUES (?, ?)', (v, 'now')) for v in range(1, {})]\n\
         c.commit()\n",
        path.display().to_string(),
        version + 1
    );
    let ok = Command::new("python3").args(["-c", &script]).status();
    assert!(
        ok.is_ok_and(|s| s.success()),
        "python3 could not make {name}.db"
    );
    format!("sqlite://{}", path.display())
}

/// The PostgreSQL database of the tests. Only tests marked to need it call
/// this: without `VALERO_TEST_POSTGRES_URL` they are ignored (and listed as
/// such), never passed silently.
pub fn postgres_url() -> String {
    std::env::var("VALERO_TEST_POSTGRES_URL")
        .map(|url| url.replace("{service}", "test"))
        .expect("VALERO_TEST_POSTGRES_URL is set when this test is enabled (runner/build.rs)")
}

/// A pipeline whose `local` target declares `dbs` (name, url literal or `{ secret = … }`).
pub fn db_pipeline(dbs: &[(&str, &str)], stage: &str) -> String {
    let mut text = header("databases").replace("[targets.local]\n", "");
    text.push_str("[targets.local]\n");
    for (name, url) in dbs {
        let url = if url.starts_with('{') {
            url.to_string()
        } else {
            format!("{url:?}")
        };
        text.push_str(&format!("[targets.local.databases.{name}]\nurl = {url}\n"));
    }
    text.push_str(stage);
    text
}

/// `wants-databases` runs each statement; returns (ok, answer) per statement.
pub fn ask_host(
    dbs: &[(&str, &str)],
    database: &str,
    grant: &str,
    sql: &[&str],
) -> Vec<(bool, String)> {
    let project = ask_project(dbs, database, grant, sql, "");
    let (_, report, out) = project.run(&[]);
    answers(&report, &stderr(&out))
}

/// The `ask` stage of `wants-databases` (plus `stage_lines`, e.g. a timeout).
pub fn ask_project(
    dbs: &[(&str, &str)],
    database: &str,
    grant: &str,
    sql: &[&str],
    stage_lines: &str,
) -> Project {
    Project::new(&db_pipeline(
        dbs,
        &format!(
            "[stages.ask]\n{}with = {{ database = {database:?}, sql = {sql:?} }}\ngrants = {{ databases = {grant} }}\n{stage_lines}",
            plugin_lines("wants-databases")
        ),
    ))
}

/// (ok, answer) per statement of the `ask` stage.
pub fn answers(report: &Value, log: &str) -> Vec<(bool, String)> {
    let results = stage(report, "ask")["outputs"]["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results: {report:#}\n{log}"))
        .clone();
    results
        .iter()
        .map(|r| {
            (
                r["ok"].as_bool().unwrap(),
                r["answer"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Runs `sql` on PostgreSQL from the test itself (not through valero) and
/// returns its first column as text.
pub fn pg_strings(url: &str, sql: &str) -> Vec<String> {
    block_on(async {
        let mut conn = pg_connect(url, "valero-test").await;
        sqlx::query_scalar::<_, String>(sql)
            .fetch_all(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    })
}

/// A connection of the test's own (as a service's would be), named `application_name`.
pub async fn pg_connect(url: &str, application_name: &str) -> sqlx::PgConnection {
    use sqlx::ConnectOptions;
    let opts: sqlx::postgres::PgConnectOptions = url.parse().expect("postgres URL");
    opts.application_name(application_name)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("the test cannot connect to PostgreSQL: {e}"))
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}
