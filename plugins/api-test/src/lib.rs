//! Stage plugin `api-test`: declarative API tests in a subset of the Hurl file format
//! (see `plugins/hurl/README.md`).
//!
//! ```toml
//! [stages.api]
//! plugin = "target/plugins/wasm32-wasip2/release/api_test.wasm"
//! with = { files = ["examples/neuroerp/api"], variables = { gateway = "http://127.0.0.1:8106" }, request_timeout_ms = 5000 }
//! grants = { http = ["http://127.0.0.1:*"], fs = { read = ["examples/neuroerp/api"] } }
//! ```
//!
//! Every `*.hurl` file (directories: their `*.hurl` files, sorted) is parsed first; a
//! syntax error fails the stage with `file:line:col` and nothing is sent. Then each
//! file runs on its own (variables: `with.variables`, the built-ins `run_id`, `stage`,
//! `attempt`, and the file's captures); a failing entry does not stop its file.
//! One check per entry, e.g. `crm.hurl:12 POST /api/crm/customers`.
//! Outputs: `{"files": {"crm.hurl": {file, passed, duration_ms, entries: [...]}}, "requests": N, "passed": N, "failed": N}`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Map, Value, json};
use valero_hurl::files::load;
use valero_hurl::{Clock, EntryResult, EntryState, Request, Response, RunOptions, Transport};
use valero_sdk::{Check, Plugin, Report, log};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `.hurl` files or directories (their `*.hurl` files, sorted), read through the fs grant.
    files: Vec<String>,
    /// Initial variables, e.g. `{ gateway = "http://127.0.0.1:8106" }`.
    #[serde(default)]
    variables: BTreeMap<String, Value>,
    /// Timeout of one request.
    #[serde(default = "default_request_timeout")]
    request_timeout_ms: u64,
    /// No retry starts after this much time (bounds `retry: -1`); keep it below the stage timeout.
    #[serde(default = "default_deadline")]
    deadline_ms: u64,
}

fn default_request_timeout() -> u64 {
    5000
}

fn default_deadline() -> u64 {
    240_000
}

struct SdkTransport;

impl Transport for SdkTransport {
    fn send(&mut self, r: &Request, timeout_ms: u64) -> Result<Response, String> {
        let headers: Vec<(&str, &str)> = r
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let start = Instant::now();
        let resp = valero_sdk::http::request(
            &r.method,
            &r.url,
            &headers,
            r.body.as_deref(),
            Duration::from_millis(timeout_ms),
        )?;
        Ok(Response {
            status: resp.status,
            headers: resp.headers,
            body: resp.body,
            duration_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }
}

struct RealClock(Instant);

impl Clock for RealClock {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
    fn sleep_ms(&mut self, ms: u64) {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

fn check_for(file_name: &str, e: &EntryResult) -> Check {
    let name = format!("{file_name}:{} {}", e.line, e.short_target());
    let check = match e.state {
        EntryState::Passed => {
            let asserts = e.asserts.len();
            Check::pass(name).message(format!(
                "{} {} → {} in {} ms ({asserts} assert{}{})",
                e.method,
                e.url,
                e.status.map_or("-".to_string(), |s| s.to_string()),
                e.duration_ms.unwrap_or(0),
                if asserts == 1 { "" } else { "s" },
                if e.attempts > 1 {
                    format!(", {} attempts", e.attempts)
                } else {
                    String::new()
                }
            ))
        }
        EntryState::Failed => Check::fail(name).message(e.failure_message()),
        EntryState::NotRun => {
            Check::inconclusive(name).message(e.error.clone().unwrap_or_default())
        }
    };
    let mut check = check
        .evidence("url", &e.url)
        .evidence(
            "status",
            e.status.map_or("-".to_string(), |s| s.to_string()),
        )
        .evidence("line", format!("{file_name}:{}", e.line))
        .evidence("attempts", e.attempts)
        .duration(Duration::from_millis(e.elapsed_ms));
    if let Some(ms) = e.duration_ms {
        check = check.measure("latency", ms as f64, "ms");
    }
    check
}

struct ApiTest;

impl Plugin for ApiTest {
    fn run() -> Report {
        let config: Config = match valero_sdk::config() {
            Ok(c) => c,
            Err(e) => return Report::fail(e),
        };
        if config.files.is_empty() {
            return Report::fail(
                "invalid `with` config: `files` is empty: give .hurl files or directories",
            );
        }
        let loaded = match load(&config.files) {
            Ok(l) => l,
            Err(errors) => {
                for e in &errors {
                    log::error(e);
                }
                let checks = errors
                    .iter()
                    .map(|e| {
                        let file = e.split(':').next().unwrap_or("files");
                        Check::fail(format!("parse {file}")).message(e)
                    })
                    .collect();
                let summary = format!(
                    "{} problem(s) in the .hurl files, nothing was run: {}",
                    errors.len(),
                    errors[0]
                );
                return Report::from_checks(summary, checks);
            }
        };

        let mut variables = valero_hurl::Variables::new();
        variables.insert("run_id".into(), Value::String(valero_sdk::run_id()));
        variables.insert("stage".into(), Value::String(valero_sdk::stage_name()));
        variables.insert("attempt".into(), Value::from(valero_sdk::attempt()));
        variables.extend(config.variables);

        let mut clock = RealClock(Instant::now());
        let options = RunOptions {
            variables,
            stop_on_failure: false,
            request_timeout_ms: config.request_timeout_ms,
            deadline_ms: Some(config.deadline_ms),
            ..RunOptions::default()
        };
        let total: usize = loaded.iter().map(|l| l.file.entries.len()).sum();
        let mut checks = Vec::new();
        let mut outputs = Map::new();
        let (mut passed, mut failed) = (0usize, 0usize);
        for l in &loaded {
            log::progress(checks.len() as u64, total as u64, &l.file_name);
            let result = valero_hurl::run_file(&l.file, &options, &mut SdkTransport, &mut clock);
            for e in &result.entries {
                match e.state {
                    EntryState::Passed => passed += 1,
                    _ => failed += 1,
                }
                let check = check_for(&l.file_name, e);
                if e.state == EntryState::Failed {
                    log::warn(format!("{}: {}", check.name(), e.failure_message()));
                }
                checks.push(check);
            }
            log::info(format!(
                "{}: {}/{} entries passed in {} ms",
                l.file_name,
                result
                    .entries
                    .iter()
                    .filter(|e| e.state == EntryState::Passed)
                    .count(),
                result.entries.len(),
                result.duration_ms
            ));
            outputs.insert(
                l.file_name.clone(),
                serde_json::to_value(&result).unwrap_or(Value::Null),
            );
        }
        log::progress(total as u64, total as u64, "done");
        let files_passed = outputs
            .values()
            .filter(|f| f["passed"] == Value::Bool(true))
            .count();
        let summary = format!(
            "{passed}/{total} requests passed in {} file(s) ({files_passed} file(s) fully green)",
            loaded.len()
        );
        Report::from_checks(summary, checks).outputs(json!({
            "files": outputs,
            "requests": total,
            "passed": passed,
            "failed": failed,
        }))
    }
}

valero_sdk::export_plugin!(ApiTest);
