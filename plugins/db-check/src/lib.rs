//! Stage plugin `db-check`: the databases a release depends on are reachable,
//! fast enough, at the expected schema migration, and not out of connections.
//!
//! ```toml
//! [targets.local.databases.crm-service]
//! url = { secret = "crm_db_url" }        # the host holds it; this plugin sees only the name
//!
//! [stages.databases]
//! plugin = "builtin:db-check"
//! with = { connect_budget_ms = 1000, latency_budget_ms = 50, max_connection_use = 0.8,
//!          databases = { crm-service = { migration = 2 } } }
//! grants = { databases = ["crm-service"] }
//! ```
//!
//! Per database, one check each (named `<db>: <check>`):
//! - `connect`: a connection opens within `connect_budget_ms` (it is abandoned
//!   after `connect_timeout_ms`); evidence: engine;
//! - `version`: the server version, at least `min_version` when given;
//! - `latency`: median of `latency_samples` round trips (`SELECT 1`) within
//!   `latency_budget_ms`;
//! - `migrations`: `max(version)` of `migrations_table` equals `migration`
//!   (behind or ahead both fail; without `migration` the version is reported);
//! - `connections` (PostgreSQL): client connections in use vs. `max_connections`
//!   minus the reserved ones, at most `max_connection_use` of them.
//!
//! When a database cannot be connected to, its other checks are not run.
//! Outputs: `{"databases": {"<db>": {"engine", "server_version", "connect_ms",
//! "latency_ms", "migration", "connections_in_use", "connections_max"}}}`.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use valero_sdk::databases::{self, Engine};
use valero_sdk::{Check, Plugin, Report, Verdict, log};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Databases to check (names the target declares) and what to expect of each.
    databases: BTreeMap<String, Expect>,
    #[serde(default = "default_connect_timeout")]
    connect_timeout_ms: u32,
    #[serde(default = "default_connect_budget")]
    connect_budget_ms: f64,
    #[serde(default = "default_latency_budget")]
    latency_budget_ms: f64,
    #[serde(default = "default_samples")]
    latency_samples: usize,
    #[serde(default = "default_max_use")]
    max_connection_use: f64,
    #[serde(default = "default_migrations_table")]
    migrations_table: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// The schema migration this release expects.
    migration: Option<i64>,
    /// Lowest acceptable server version, e.g. "14" or "3.35".
    min_version: Option<String>,
}

fn default_connect_timeout() -> u32 {
    5000
}
fn default_connect_budget() -> f64 {
    1000.0
}
fn default_latency_budget() -> f64 {
    50.0
}
fn default_samples() -> usize {
    5
}
fn default_max_use() -> f64 {
    0.8
}
fn default_migrations_table() -> String {
    "schema_migrations".into()
}

struct DbCheck;

impl Plugin for DbCheck {
    fn run() -> Report {
        let config: Config = match valero_sdk::config() {
            Ok(config) => config,
            Err(e) => return Report::fail(e),
        };
        if config.databases.is_empty() {
            return Report::fail("`databases` is empty: name the databases to check");
        }
        if !config
            .migrations_table
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Report::fail(format!(
                "migrations_table {:?} is not a plain table name",
                config.migrations_table
            ));
        }
        let total = config.databases.len() as u64;
        let mut checks = Vec::new();
        let mut outputs = Map::new();
        for (i, (name, expect)) in config.databases.iter().enumerate() {
            log::progress(i as u64, total, name);
            let (db_checks, facts) = check_database(name, expect, &config);
            checks.extend(db_checks);
            outputs.insert(name.clone(), Value::Object(facts));
        }
        log::progress(total, total, "done");
        let failed: Vec<&str> = config
            .databases
            .keys()
            .filter(|db| {
                checks.iter().any(|c| {
                    c.verdict() == Verdict::Fail && c.name().starts_with(&format!("{db}: "))
                })
            })
            .map(String::as_str)
            .collect();
        let summary = if failed.is_empty() {
            format!("{total}/{total} databases healthy")
        } else {
            format!(
                "{}/{total} databases healthy; failing: {}",
                total - failed.len() as u64,
                failed.join(", ")
            )
        };
        Report::from_checks(summary, checks).outputs(json!({ "databases": outputs }))
    }
}

fn check_database(
    name: &str,
    expect: &Expect,
    config: &Config,
) -> (Vec<Check>, Map<String, Value>) {
    let mut checks = Vec::new();
    let mut facts = Map::new();
    let label = |check: &str| format!("{name}: {check}");

    let started = Instant::now();
    let info = match databases::connect(name, config.connect_timeout_ms) {
        Ok(info) => info,
        Err(e) => {
            checks.push(
                Check::fail(label("connect"))
                    .message(format!("{e} (its other checks were not run)"))
                    .duration(started.elapsed()),
            );
            return (checks, facts);
        }
    };
    let engine = match info.engine {
        Engine::Postgres => "postgres",
        Engine::Sqlite => "sqlite",
    };
    facts.insert("engine".into(), json!(engine));
    facts.insert("server_version".into(), json!(info.server_version));
    facts.insert("connect_ms".into(), json!(info.connect_ms));
    let connect = if info.connect_ms <= config.connect_budget_ms {
        Check::pass(label("connect")).message(format!("connected in {:.1} ms", info.connect_ms))
    } else {
        Check::fail(label("connect")).message(format!(
            "connected in {:.1} ms, budget {} ms",
            info.connect_ms, config.connect_budget_ms
        ))
    };
    checks.push(
        connect
            .evidence("engine", engine)
            .measure("connect", info.connect_ms, "ms")
            .duration(started.elapsed()),
    );

    checks.push(version_check(
        label("version"),
        engine,
        &info.server_version,
        expect,
    ));

    let (latency, median) = latency_check(label("latency"), name, config);
    checks.push(latency);
    if let Some(ms) = median {
        facts.insert("latency_ms".into(), json!(ms));
    }

    let (migrations, version) = migration_check(label("migrations"), name, expect, config);
    checks.push(migrations);
    facts.insert("migration".into(), json!(version));

    if info.engine == Engine::Postgres {
        let (connections, in_use, max) = connections_check(label("connections"), name, config);
        checks.push(connections);
        facts.insert("connections_in_use".into(), json!(in_use));
        facts.insert("connections_max".into(), json!(max));
    }
    (checks, facts)
}

fn version_check(label: String, engine: &str, version: &str, expect: &Expect) -> Check {
    let check = match &expect.min_version {
        Some(min) if compare_versions(version, min) == std::cmp::Ordering::Less => {
            Check::fail(label).message(format!("{engine} {version}, expected at least {min}"))
        }
        Some(min) => Check::pass(label).message(format!("{engine} {version} (at least {min})")),
        None => Check::pass(label).message(format!("{engine} {version}")),
    };
    check.evidence("server_version", version)
}

/// Compares dotted numeric prefixes: "16.4 (Debian …)" vs "14".
fn compare_versions(actual: &str, min: &str) -> std::cmp::Ordering {
    let parts = |s: &str| -> Vec<u64> {
        s.split(|c: char| !c.is_ascii_digit() && c != '.')
            .next()
            .unwrap_or_default()
            .split('.')
            .filter_map(|p| p.parse().ok())
            .collect()
    };
    parts(actual).cmp(&parts(min))
}

fn latency_check(label: String, name: &str, config: &Config) -> (Check, Option<f64>) {
    let started = Instant::now();
    let mut samples = Vec::new();
    for _ in 0..config.latency_samples.max(1) {
        let t = Instant::now();
        if let Err(e) = databases::query(name, "SELECT 1 AS one") {
            return (
                Check::fail(label).message(format!("round trip failed: {e}")),
                None,
            );
        }
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    samples.sort_by(f64::total_cmp);
    let median = samples[samples.len() / 2];
    let max = samples[samples.len() - 1];
    let message = format!(
        "median {median:.2} ms, max {max:.2} ms over {} round trips",
        samples.len()
    );
    let check = if median <= config.latency_budget_ms {
        Check::pass(label).message(message)
    } else {
        Check::fail(label).message(format!("{message}; budget {} ms", config.latency_budget_ms))
    };
    let check = check
        .measure("latency", median, "ms")
        .measure("latency_max", max, "ms")
        .duration(started.elapsed());
    (check, Some(median))
}

fn migration_check(
    label: String,
    name: &str,
    expect: &Expect,
    config: &Config,
) -> (Check, Option<i64>) {
    let sql = format!(
        "SELECT CAST(max(version) AS BIGINT) AS version, count(*) AS applied FROM {}",
        config.migrations_table
    );
    let row = match databases::query(name, &sql).map(|rows| first_row(&rows)) {
        Ok(Some(row)) => row,
        Ok(None) => {
            return (
                Check::fail(label).message("no answer to the migration query"),
                None,
            );
        }
        Err(e) => {
            return (
                Check::fail(label).message(format!(
                    "cannot read table `{}`: {e} (have the migrations ever run?)",
                    config.migrations_table
                )),
                None,
            );
        }
    };
    let version = row.get("version").and_then(Value::as_i64);
    let applied = row.get("applied").and_then(Value::as_i64).unwrap_or(0);
    let check = match (version, expect.migration) {
        (None, Some(want)) => Check::fail(label).message(format!(
            "no migration applied, expected migration {want}"
        )),
        (Some(v), Some(want)) if v < want => Check::fail(label).message(format!(
            "schema at migration {v}, expected {want}: migrations are behind (run the service's migrations before releasing)"
        )),
        (Some(v), Some(want)) if v > want => Check::fail(label).message(format!(
            "schema at migration {v}, expected {want}: the database is ahead of this release"
        )),
        (Some(v), _) => Check::pass(label).message(format!("schema at migration {v} ({applied} applied)")),
        (None, None) => Check::pass(label).message("no migration applied (none expected)"),
    };
    let check = match version {
        Some(v) => check
            .evidence("migration", v)
            .measure("migration", v as f64, ""),
        None => check,
    };
    (check, version)
}

fn connections_check(
    label: String,
    name: &str,
    config: &Config,
) -> (Check, Option<i64>, Option<i64>) {
    let sql = "SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS in_use, \
               current_setting('max_connections')::bigint AS max, \
               current_setting('superuser_reserved_connections')::bigint AS reserved";
    let row = match databases::query(name, sql).map(|rows| first_row(&rows)) {
        Ok(Some(row)) => row,
        Ok(None) => {
            return (
                Check::fail(label).message("no answer to the connection query"),
                None,
                None,
            );
        }
        Err(e) => {
            return (
                Check::fail(label).message(format!("cannot read connection use: {e}")),
                None,
                None,
            );
        }
    };
    let get = |k: &str| row.get(k).and_then(Value::as_i64).unwrap_or(0);
    let (in_use, max, reserved) = (get("in_use"), get("max"), get("reserved"));
    let usable = (max - reserved).max(1);
    let share = in_use as f64 / usable as f64;
    let message = format!(
        "{in_use} of {usable} connections in use ({:.0}%; max_connections {max}, {reserved} reserved)",
        share * 100.0
    );
    let check = if share <= config.max_connection_use {
        Check::pass(label).message(message)
    } else {
        Check::fail(label).message(format!(
            "{message}; more than {:.0}% leaves no headroom",
            config.max_connection_use * 100.0
        ))
    };
    let check = check
        .measure("connections_in_use", in_use as f64, "")
        .measure("connections_usable", usable as f64, "");
    (check, Some(in_use), Some(max))
}

fn first_row(rows: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str::<Value>(rows).ok()? {
        Value::Array(mut rows) if !rows.is_empty() => match rows.swap_remove(0) {
            Value::Object(row) => Some(row),
            _ => None,
        },
        _ => None,
    }
}

valero_sdk::export_plugin!(DbCheck);
