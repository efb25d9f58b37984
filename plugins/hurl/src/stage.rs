//! What the `api-test` and `e2e` stage plugins share (feature `stage`):
//! their `with` config, loading `.hurl` files through the fs grant (a parse
//! error fails the stage before anything is sent), the built-in variables,
//! and running files over the SDK's HTTP client with a real clock.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;
use valero_sdk::{Check, Report, log};

use crate::files::{Loaded, load};
use crate::{
    Clock, EntryResult, EntryState, FileResult, Request, Response, RunOptions, Transport, Variables,
};

/// The `with` table of both plugins. Each takes its list of paths under its
/// own key (`files` for api-test, `scenarios` for e2e).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `.hurl` files or directories (their `*.hurl` files, sorted), read through the fs grant.
    files: Option<Vec<String>>,
    scenarios: Option<Vec<String>>,
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

/// Which plugin is asking: the key of its paths and how it runs them.
#[derive(Clone, Copy)]
pub struct Kind {
    /// `files` or `scenarios`.
    pub key: &'static str,
    /// What the files are called in messages ("API test files", "scenario files").
    pub noun: &'static str,
    /// e2e: after a failing entry, the rest of its file is not run.
    pub stop_on_failure: bool,
}

/// Parsed files, ready to run in order.
pub struct Suite {
    pub files: Vec<Loaded>,
    options: RunOptions,
    clock: RealClock,
}

impl Suite {
    /// Reads `with`, loads and parses every file. On a bad config or any parse
    /// error: the failing report (one check per problem, with file:line:col).
    pub fn load(kind: Kind) -> Result<Suite, Report> {
        let config: Config = valero_sdk::config().map_err(Report::fail)?;
        let (paths, other) = match kind.key {
            "files" => (config.files, config.scenarios.as_ref().map(|_| "scenarios")),
            _ => (config.scenarios, config.files.as_ref().map(|_| "files")),
        };
        if let Some(other) = other {
            return Err(Report::fail(format!(
                "invalid `with` config: this plugin takes `{}`, not `{other}`",
                kind.key
            )));
        }
        let paths = paths.unwrap_or_default();
        if paths.is_empty() {
            return Err(Report::fail(format!(
                "invalid `with` config: `{}` is empty: give .hurl files or directories",
                kind.key
            )));
        }
        let files = load(&paths).map_err(|errors| {
            for e in &errors {
                log::error(e);
            }
            let checks = errors
                .iter()
                .map(|e| {
                    let file = e.split(':').next().unwrap_or(kind.key);
                    Check::fail(format!("parse {file}")).message(e)
                })
                .collect();
            let summary = format!(
                "{} problem(s) in the {}, nothing was run: {}",
                errors.len(),
                kind.noun,
                errors[0]
            );
            Report::from_checks(summary, checks)
        })?;

        let mut variables = Variables::new();
        variables.insert("run_id".into(), Value::String(valero_sdk::run_id()));
        variables.insert("stage".into(), Value::String(valero_sdk::stage_name()));
        variables.insert("attempt".into(), Value::from(valero_sdk::attempt()));
        variables.extend(config.variables);
        Ok(Suite {
            files,
            options: RunOptions {
                variables,
                stop_on_failure: kind.stop_on_failure,
                request_timeout_ms: config.request_timeout_ms,
                deadline_ms: Some(config.deadline_ms),
                ..RunOptions::default()
            },
            clock: RealClock(Instant::now()),
        })
    }

    /// Runs file `i` (deadlines count from when the suite was loaded).
    pub fn run(&mut self, i: usize) -> FileResult {
        crate::run_file(
            &self.files[i].file,
            &self.options,
            &mut SdkTransport,
            &mut self.clock,
        )
    }
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

/// The check for one entry: its verdict (failure message, or why it was not
/// run), evidence `url`, `status`, `line`, `attempts`, and its `latency`.
/// `passed` is the message when it passed.
pub fn entry_check(name: String, passed: String, file_name: &str, e: &EntryResult) -> Check {
    let check = match e.state {
        EntryState::Passed => Check::pass(name).message(passed),
        EntryState::Failed => Check::fail(name).message(e.failure_message()),
        EntryState::NotRun => {
            Check::inconclusive(name).message(e.error.clone().unwrap_or_default())
        }
    };
    let check = check
        .evidence("url", &e.url)
        .evidence(
            "status",
            e.status.map_or("-".to_string(), |s| s.to_string()),
        )
        .evidence("line", format!("{file_name}:{}", e.line))
        .evidence("attempts", e.attempts)
        .duration(Duration::from_millis(e.elapsed_ms));
    match e.duration_ms {
        Some(ms) => check.measure("latency", ms as f64, "ms"),
        None => check,
    }
}
