//! The verification stages (`health`, `db-check`, `api-test`, `e2e`) against
//! scripted HTTP servers and real databases (SQLite files made here;
//! PostgreSQL when `VALERO_TEST_POSTGRES_URL` is set, as .ci/run does), with
//! the faults they exist to catch.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::databases::*;
use common::*;
use serde_json::Value;

fn check<'a>(stage: &'a Value, name: &str) -> &'a Value {
    stage["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("check `{name}` not in stage: {stage:#}"))
}

fn evidence(check: &Value, key: &str) -> String {
    check["evidence"]
        .as_array()
        .and_then(|e| e.iter().find(|pair| pair[0] == key))
        .and_then(|pair| pair[1].as_str())
        .unwrap_or_else(|| panic!("no evidence `{key}` in {check:#}"))
        .to_string()
}

fn message(stage: &Value, name: &str) -> String {
    check(stage, name)["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

// ---------------------------------------------------------------- health

/// A `health` stage over `services` (name, port) with extra `with` keys.
fn health_pipeline(services: &[(&str, u16)], with: &str, http_grant: &str) -> String {
    let services: Vec<String> = services
        .iter()
        .map(|(name, port)| format!("{name:?} = \"http://127.0.0.1:{port}\""))
        .collect();
    format!(
        "{}[stages.health]\nplugin = \"builtin:health\"\ntimeout = \"30s\"\n\
         with = {{ services = {{ {} }}, {with} }}\ngrants = {{ http = [{http_grant:?}] }}\n",
        header("health"),
        services.join(", ")
    )
}

fn fleet_like_server(delay: Duration) -> u16 {
    scripted_server(move |_, path| match path {
        "/health" => Reply::new(200, r#"{"status":"ok"}"#).after(delay),
        "/ready" => Reply::new(200, r#"{"status":"ready"}"#).after(delay),
        _ => Reply::new(404, "{}"),
    })
}

#[test]
fn health_probes_every_endpoint_concurrently() {
    // 7 services x 2 endpoints, each answering after 300 ms.
    let names = ["fibu", "crm", "kasse", "bi", "auth", "gateway", "event-bus"];
    let services: Vec<(&str, u16)> = names
        .iter()
        .map(|n| (*n, fleet_like_server(Duration::from_millis(300))))
        .collect();
    let project = Project::new(&health_pipeline(
        &services,
        r#"endpoints = [{ path = "/health", json = { status = "ok" } }, { path = "/ready", json = { status = "ready" } }]"#,
        "http://127.0.0.1:*",
    ));
    let (code, report, out) = project.run(&[]);
    assert_eq!(code, 0, "{}", stderr(&out));
    let health = stage(&report, "health");
    assert_eq!(health["checks"].as_array().unwrap().len(), 14);
    let outputs = &health["outputs"];
    let total = outputs["total_ms"].as_f64().unwrap();
    let slowest = outputs["slowest_probe_ms"].as_f64().unwrap();
    let sum = outputs["sum_of_probes_ms"].as_f64().unwrap();
    eprintln!("14 probes of 300 ms: total {total:.1} ms, slowest {slowest:.1} ms, sum {sum:.1} ms");
    assert!(sum >= 14.0 * 290.0, "sum {sum}");
    // Concurrent: the whole stage takes about as long as its slowest probe.
    assert!(
        total < slowest + 150.0,
        "total {total} vs slowest {slowest}"
    );
    assert!(total < sum / 5.0, "total {total} vs sum {sum}");
    // The recorded timeline agrees: every probe started before the first one finished.
    let probes: Vec<&Value> = outputs["services"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|eps| eps.as_object().unwrap().values())
        .collect();
    let last_start = probes
        .iter()
        .map(|p| p["started_ms"].as_f64().unwrap())
        .fold(0.0, f64::max);
    let first_end = probes
        .iter()
        .map(|p| p["finished_ms"].as_f64().unwrap())
        .fold(f64::MAX, f64::min);
    assert!(
        last_start < first_end,
        "probes did not overlap: {outputs:#}"
    );
}

/// A stage timeout shorter than `deadline_ms` still ends in health's report
/// (every probe's last answer), not in a timeout without one.
#[test]
fn health_reports_before_its_stage_times_out() {
    let never = scripted_server(|_, path| match path {
        "/ready" => Reply::new(503, r#"{"status":"not ready","reason":"migrating"}"#),
        _ => Reply::new(200, r#"{"status":"ok"}"#),
    });
    let project = Project::new(
        &health_pipeline(
            &[("never", never)],
            "deadline_ms = 60000, initial_backoff_ms = 50, max_backoff_ms = 200",
            "http://127.0.0.1:*",
        )
        .replace("timeout = \"30s\"", "timeout = \"3s\""),
    );
    let (code, report, out) = project.run(&[]);
    assert_eq!(code, 1, "{}", stderr(&out));
    let health = stage(&report, "health");
    let attempt = &health["attempts"][0];
    assert_eq!(attempt["outcome"], "returned", "{health:#}");
    let ready = message(health, "never /ready");
    assert!(
        ready.contains("got 503") && ready.contains("migrating"),
        "{ready}"
    );
    assert_eq!(check(health, "never /health")["verdict"], "pass");
    let logs = attempt["logs"].to_string();
    assert!(logs.contains("longer than the stage has left"), "{logs}");
}

#[test]
fn a_service_that_never_becomes_ready_fails_with_its_last_response() {
    // Becomes ready 600 ms after the first probe (not after it started: on a
    // loaded machine the run may begin later than that), within the deadline.
    let first_probe = std::sync::OnceLock::new();
    let late = scripted_server(move |_, path| match path {
        "/ready"
            if first_probe.get_or_init(Instant::now).elapsed() > Duration::from_millis(600) =>
        {
            Reply::new(200, r#"{"status":"ready"}"#)
        }
        "/ready" => Reply::new(503, r#"{"status":"not ready","reason":"warming up"}"#),
        _ => Reply::new(200, r#"{"status":"ok"}"#),
    });
    let never = scripted_server(|_, path| match path {
        "/ready" => Reply::new(
            503,
            r#"{"status":"not ready","reason":"database unreachable"}"#,
        ),
        _ => Reply::new(200, r#"{"status":"ok"}"#),
    });
    let broken = scripted_server(|_, _| Reply::new(500, r#"{"error":"boom"}"#));
    let project = Project::new(&health_pipeline(
        &[("late", late), ("never", never), ("broken", broken)],
        "deadline_ms = 2000, initial_backoff_ms = 50, max_backoff_ms = 200",
        "http://127.0.0.1:*",
    ));
    let (code, report, out) = project.run(&[]);
    assert_eq!(code, 1, "{}", stderr(&out));
    let health = stage(&report, "health");
    assert_eq!(health["status"], "failed");

    let late_ready = check(health, "late /ready");
    assert_eq!(late_ready["verdict"], "pass", "{late_ready:#}");
    let attempts: u32 = evidence(late_ready, "attempts").parse().unwrap();
    assert!(attempts > 1, "{late_ready:#}");

    assert_eq!(check(health, "never /health")["verdict"], "pass");
    let never_ready = message(health, "never /ready");
    assert_eq!(check(health, "never /ready")["verdict"], "fail");
    assert!(
        never_ready.contains("expected status 200, got 503"),
        "{never_ready}"
    );
    assert!(
        never_ready.contains("database unreachable"),
        "{never_ready}"
    );

    let broken_health = message(health, "broken /health");
    assert!(broken_health.contains("got 500"), "{broken_health}");
    assert!(broken_health.contains("boom"), "{broken_health}");
}

#[test]
fn health_without_an_http_grant_for_a_port_cannot_reach_it() {
    let granted = fleet_like_server(Duration::ZERO);
    let other = fleet_like_server(Duration::ZERO);
    let project = Project::new(&health_pipeline(
        &[("granted", granted), ("other", other)],
        "deadline_ms = 10000",
        &format!("http://127.0.0.1:{granted}"),
    ));
    let started = Instant::now();
    let (code, report, _) = project.run(&[]);
    assert_eq!(code, 1);
    let health = stage(&report, "health");
    assert_eq!(check(health, "granted /ready")["verdict"], "pass");
    let denied = message(health, "other /ready");
    assert!(denied.contains("denied by the host"), "{denied}");
    assert!(
        denied.contains(&format!("http://127.0.0.1:{other}")),
        "{denied}"
    );
    // A denial is final: no polling until the 10 s deadline.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

// ------------------------------------------------------------- databases

#[test]
fn db_check_reports_health_migrations_and_outages() {
    let dir = tempfile::tempdir().unwrap();
    let current = sqlite_db(dir.path(), "current", 2);
    let behind = sqlite_db(dir.path(), "behind", 1);
    let gone = format!("sqlite://{}/missing.db", dir.path().display());
    let dbs = [
        ("current", current.as_str()),
        ("behind", behind.as_str()),
        ("gone", gone.as_str()),
        ("down", "postgres://valero:valero@127.0.0.1:1/nothing"),
    ];
    let project = Project::new(&db_pipeline(
        &dbs,
        "[stages.databases]\nplugin = \"builtin:db-check\"\n\
         with = { databases = { current = { migration = 2, min_version = \"3.0\" }, behind = { migration = 3 }, gone = {}, down = {} } }\n\
         grants = { databases = true }\n",
    ));
    let (code, report, out) = project.run(&[]);
    assert_eq!(code, 1, "{}", stderr(&out));
    let db = stage(&report, "databases");

    for name in ["connect", "version", "latency", "migrations"] {
        let c = check(db, &format!("current: {name}"));
        assert_eq!(c["verdict"], "pass", "{c:#}");
    }
    assert!(message(db, "current: migrations").contains("migration 2"));

    let behind = message(db, "behind: migrations");
    assert_eq!(check(db, "behind: migrations")["verdict"], "fail");
    assert!(
        behind.contains("schema at migration 1, expected 3"),
        "{behind}"
    );
    assert!(behind.contains("behind"), "{behind}");

    let gone = message(db, "gone: connect");
    assert!(gone.contains("cannot connect to database `gone`"), "{gone}");
    // The guest learns the name, not where the database is.
    assert!(!gone.contains("missing.db"), "{gone}");

    let down = message(db, "down: connect");
    assert_eq!(check(db, "down: connect")["verdict"], "fail");
    assert!(!down.contains("127.0.0.1:1/nothing"), "{down}");
    assert!(down.to_lowercase().contains("refused"), "{down}");
    assert!(!down.contains("valero:valero"), "credentials in: {down}");
}

#[test]
#[cfg_attr(
    not(valero_test_postgres),
    ignore = "needs PostgreSQL: set VALERO_TEST_POSTGRES_URL (.ci/run does)"
)]
fn db_check_reports_postgresql_health() {
    let pg = postgres_url();
    let project = Project::new(&db_pipeline(
        &[("pg", pg.as_str())],
        "[stages.databases]\nplugin = \"builtin:db-check\"\n\
         with = { databases = { pg = {} } }\ngrants = { databases = true }\n",
    ));
    // Its `migrations` check depends on what ran on the server before.
    let (_, report, _) = project.run(&[]);
    let db = stage(&report, "databases");
    for name in ["connect", "version", "latency", "connections"] {
        let c = check(db, &format!("pg: {name}"));
        assert_eq!(c["verdict"], "pass", "{c:#}");
    }
    assert!(message(db, "pg: version").starts_with("postgres "));
    assert!(message(db, "pg: connections").contains("connections in use"));
}

#[test]
#[cfg_attr(
    not(valero_test_postgres),
    ignore = "needs PostgreSQL: set VALERO_TEST_POSTGRES_URL (.ci/run does)"
)]
fn a_wrong_database_password_is_reported_without_the_password() {
    let url = postgres_url();
    let password = "Wr0ng-Passw0rd-4711";
    // postgres://valero:valero@… -> postgres://valero:<wrong>@…
    let (scheme_user, rest) = url
        .split_once(':')
        .and_then(|(s, r)| {
            let (user_part, host_part) = r.split_once('@')?;
            let user = user_part.split(':').next()?;
            Some((format!("{s}:{user}"), host_part.to_string()))
        })
        .expect("postgres URL with credentials");
    let wrong = format!("{scheme_user}:{password}@{rest}");
    let project = Project::new(&format!(
        "{}[secrets.pg_url]\nenv = \"TEST_PG_URL\"\n",
        db_pipeline(
            &[("pg", "{ secret = \"pg_url\" }")],
            "[stages.databases]\nplugin = \"builtin:db-check\"\n\
             with = { databases = { pg = {} } }\ngrants = { databases = [\"pg\"] }\n",
        )
    ));
    let out = project
        .command(&["run", "--progress", "plain", "--report", "json=report.json"])
        .env("TEST_PG_URL", &wrong)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(project.path().join("report.json")).unwrap())
            .unwrap();
    let db = stage(&report, "databases");
    let msg = message(db, "pg: connect");
    assert!(msg.contains("password authentication failed"), "{msg}");
    assert!(
        !msg.contains("for user"),
        "the role shown to the guest: {msg}"
    );
    // Nowhere: not in the report, the terminal, or any run record.
    let mut texts = vec![
        report.to_string(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr(&out),
    ];
    for entry in files_under(&project.path().join(".valero")) {
        texts.push(String::from_utf8_lossy(&std::fs::read(entry).unwrap()).into_owned());
    }
    for text in texts {
        assert!(!text.contains(password), "password leaked: {text}");
    }
}

// ------------------------------------------------------------ api and e2e

/// A small shop API: a token, an order with a total, and a flaky endpoint.
fn shop_server() -> u16 {
    let orders = Arc::new(AtomicU32::new(0));
    scripted_server(move |method, path| match (method, path) {
        ("POST", "/token") => Reply::new(200, r#"{"token":"t-123"}"#),
        ("POST", "/orders") => {
            let id = orders.fetch_add(1, Ordering::SeqCst) + 1;
            Reply::new(201, format!(r#"{{"id":{id},"total":41}}"#))
        }
        ("GET", p) if p.starts_with("/orders/") => Reply::new(200, r#"{"id":1,"total":41}"#),
        ("GET", "/broken") => Reply::new(500, r#"{"error":"database unavailable"}"#),
        _ => Reply::new(404, r#"{"error":"not found"}"#),
    })
}

fn hurl_project(kind: &str, key: &str, files: &[(&str, &str)], port: u16) -> Project {
    let project = Project::new(&format!(
        "{}[stages.{kind}]\nplugin = \"builtin:{kind}\"\n\
         with = {{ {key} = [\"suite\"], variables = {{ base = \"http://127.0.0.1:{port}\" }}, deadline_ms = 20000 }}\n\
         grants = {{ http = [\"http://127.0.0.1:{port}\"], fs = {{ read = [\"suite\"] }} }}\n",
        header(kind)
    ));
    let suite = project.path().join("suite");
    std::fs::create_dir(&suite).unwrap();
    for (name, text) in files {
        std::fs::write(suite.join(name), text).unwrap();
    }
    project
}

const ORDER_SUITE: &str = r#"# Create an order
POST {{base}}/orders
{"sku": "SAAT-25KG", "qty": 1}
HTTP 201
[Captures]
order_id: jsonpath "$.id"
[Asserts]
jsonpath "$.total" == 42
duration < 2000

# Fetch it
GET {{base}}/orders/{{order_id}}
HTTP 200
[Asserts]
jsonpath "$.id" == {{order_id}}
"#;

#[test]
fn a_failing_api_assertion_shows_expected_and_actual() {
    let port = shop_server();
    let project = hurl_project("api-test", "files", &[("orders.hurl", ORDER_SUITE)], port);
    let (code, report, out) = project.run(&[]);
    assert_eq!(code, 1, "{}", stderr(&out));
    let api = stage(&report, "api-test");
    let create = message(api, "orders.hurl:2 POST /orders");
    assert!(create.contains(r#"jsonpath "$.total" == 42"#), "{create}");
    assert!(create.contains("expected 42, actual 41"), "{create}");
    // api-test goes on: the capture was taken, so the next request ran and passed.
    let fetch = check(api, "orders.hurl:12 GET /orders/{{order_id}}");
    assert_eq!(fetch["verdict"], "pass", "{fetch:#}");
}

#[test]
fn an_api_file_with_unsupported_syntax_is_rejected_with_its_location() {
    let port = shop_server();
    let bad = "GET {{base}}/orders/1\nHTTP 200\n[Cookies]\nsession: abc\n";
    let project = hurl_project("api-test", "files", &[("bad.hurl", bad)], port);
    let (code, report, _) = project.run(&[]);
    assert_eq!(code, 1);
    let api = stage(&report, "api-test");
    let text = api.to_string();
    assert!(text.contains("bad.hurl:3:1"), "{api:#}");
    assert!(text.contains("[Cookies]"), "{api:#}");
}

#[test]
fn an_e2e_step_failing_mid_scenario_marks_later_steps_not_run() {
    let port = shop_server();
    let scenario = r#"# Log in
POST {{base}}/token
HTTP 200
[Captures]
token: jsonpath "$.token"

# Check the stock
GET {{base}}/broken
Authorization: Bearer {{token}}
HTTP 200

# Place the order
POST {{base}}/orders
{"sku": "SAAT-25KG"}
HTTP 201
"#;
    let project = hurl_project("e2e", "scenarios", &[("checkout.hurl", scenario)], port);
    let (code, report, out) = project.run(&[]);
    assert_eq!(code, 1, "{}", stderr(&out));
    let e2e = stage(&report, "e2e");
    let steps = e2e["checks"].as_array().unwrap();
    assert_eq!(steps.len(), 3, "{e2e:#}");
    assert_eq!(steps[0]["verdict"], "pass");
    assert_eq!(steps[1]["verdict"], "fail");
    let failed = steps[1]["message"].as_str().unwrap();
    assert!(failed.contains("500"), "{failed}");
    assert_eq!(steps[2]["verdict"], "inconclusive");
    assert!(
        steps[2]["message"]
            .as_str()
            .unwrap()
            .starts_with("not run: step 2 (Check the stock) failed"),
        "{:#}",
        steps[2]
    );
    let timeline = &e2e["outputs"]["scenarios"]["checkout"]["timeline"];
    assert_eq!(timeline[0]["state"], "passed");
    assert_eq!(timeline[1]["state"], "failed");
    assert_eq!(timeline[2]["state"], "not_run");
}
