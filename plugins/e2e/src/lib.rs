//! Stage plugin `e2e`: multi-step end-to-end business scenarios in a subset of the
//! Hurl file format (see `plugins/hurl/README.md`).
//!
//! ```toml
//! [stages.e2e]
//! plugin = "target/plugins/wasm32-wasip2/release/e2e.wasm"
//! with = { scenarios = ["examples/neuroerp/e2e"], variables = { gateway = "http://127.0.0.1:8106" }, request_timeout_ms = 5000 }
//! grants = { http = ["http://127.0.0.1:*"], fs = { read = ["examples/neuroerp/e2e"] } }
//! ```
//!
//! Each `.hurl` file is a scenario (named after the file), each entry a step; the
//! comment line(s) directly above a request line are the step's title. A scenario
//! stops at its first failing step; the later steps are reported as `inconclusive`
//! checks (`not run: step N (<title>) failed`, evidence `state=not_run`).
//! Outputs: `{"scenarios": {"<name>": {"file", "passed", "duration_ms", "timeline": [{"step",
//! "title", "line", "started_ms", "duration_ms", "latency_ms", "attempts", "state", "status"}], "steps": [...]}}}`.

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
    /// Scenario `.hurl` files or directories (their `*.hurl` files, sorted), read through the fs grant.
    scenarios: Vec<String>,
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

fn title(e: &EntryResult) -> String {
    e.title.clone().unwrap_or_else(|| e.short_target())
}

fn step_check(scenario: &str, file_name: &str, e: &EntryResult) -> Check {
    let name = format!("{scenario} step {}: {}", e.index, title(e));
    let check = match e.state {
        EntryState::Passed => Check::pass(name).message(format!(
            "{} {} → {} at +{} ms, took {} ms{}",
            e.method,
            e.url,
            e.status.map_or("-".to_string(), |s| s.to_string()),
            e.started_ms,
            e.elapsed_ms,
            if e.attempts > 1 {
                format!(" ({} attempts)", e.attempts)
            } else {
                String::new()
            }
        )),
        EntryState::Failed => Check::fail(name).message(e.failure_message()),
        EntryState::NotRun => {
            Check::inconclusive(name).message(e.error.clone().unwrap_or_default())
        }
    };
    let mut check = check
        .evidence("scenario", scenario)
        .evidence("step", e.index)
        .evidence("line", format!("{file_name}:{}", e.line))
        .evidence("url", &e.url)
        .evidence(
            "status",
            e.status.map_or("-".to_string(), |s| s.to_string()),
        )
        .evidence("attempts", e.attempts)
        .evidence("state", e.state.as_str())
        .duration(Duration::from_millis(e.elapsed_ms));
    if e.state != EntryState::NotRun {
        check = check
            .measure("started", e.started_ms as f64, "ms")
            .measure("duration", e.elapsed_ms as f64, "ms")
            .measure("attempts", f64::from(e.attempts), "count");
        if let Some(ms) = e.duration_ms {
            check = check.measure("latency", ms as f64, "ms");
        }
    }
    check
}

fn timeline(entries: &[EntryResult]) -> Vec<Value> {
    entries
        .iter()
        .map(|e| {
            json!({
                "step": e.index,
                "title": title(e),
                "line": e.line,
                "started_ms": e.started_ms,
                "duration_ms": e.elapsed_ms,
                "latency_ms": e.duration_ms,
                "attempts": e.attempts,
                "status": e.status,
                "state": e.state.as_str(),
            })
        })
        .collect()
}

struct E2e;

impl Plugin for E2e {
    fn run() -> Report {
        let config: Config = match valero_sdk::config() {
            Ok(c) => c,
            Err(e) => return Report::fail(e),
        };
        if config.scenarios.is_empty() {
            return Report::fail(
                "invalid `with` config: `scenarios` is empty: give .hurl files or directories",
            );
        }
        let loaded = match load(&config.scenarios) {
            Ok(l) => l,
            Err(errors) => {
                for e in &errors {
                    log::error(e);
                }
                let checks = errors
                    .iter()
                    .map(|e| {
                        let file = e.split(':').next().unwrap_or("scenarios");
                        Check::fail(format!("parse {file}")).message(e)
                    })
                    .collect();
                let summary = format!(
                    "{} problem(s) in the scenario files, nothing was run: {}",
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
            stop_on_failure: true,
            request_timeout_ms: config.request_timeout_ms,
            deadline_ms: Some(config.deadline_ms),
            ..RunOptions::default()
        };
        let mut checks = Vec::new();
        let mut scenarios = Map::new();
        let mut green = 0usize;
        let mut steps = 0usize;
        for (i, l) in loaded.iter().enumerate() {
            let scenario = l
                .file_name
                .strip_suffix(".hurl")
                .unwrap_or(&l.file_name)
                .to_string();
            log::progress(i as u64, loaded.len() as u64, &scenario);
            log::info(format!(
                "scenario {scenario}: {} steps",
                l.file.entries.len()
            ));
            let result = valero_hurl::run_file(&l.file, &options, &mut SdkTransport, &mut clock);
            steps += result.entries.len();
            for e in &result.entries {
                let check = step_check(&scenario, &l.file_name, e);
                match e.state {
                    EntryState::Passed => log::info(format!(
                        "{}: passed at +{} ms in {} ms ({} attempt(s))",
                        check.name(),
                        e.started_ms,
                        e.elapsed_ms,
                        e.attempts
                    )),
                    EntryState::Failed => {
                        log::error(format!("{}: {}", check.name(), e.failure_message()))
                    }
                    EntryState::NotRun => {}
                }
                checks.push(check);
            }
            if result.passed {
                green += 1;
            }
            scenarios.insert(
                scenario,
                json!({
                    "file": l.path.display().to_string(),
                    "passed": result.passed,
                    "duration_ms": result.duration_ms,
                    "timeline": timeline(&result.entries),
                    "steps": result.entries,
                }),
            );
        }
        log::progress(loaded.len() as u64, loaded.len() as u64, "done");
        let summary = format!("{green}/{} scenarios passed ({steps} steps)", loaded.len());
        Report::from_checks(summary, checks).outputs(json!({ "scenarios": scenarios }))
    }
}

valero_sdk::export_plugin!(E2e);
