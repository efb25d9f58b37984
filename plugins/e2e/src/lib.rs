//! Stage plugin `e2e`: multi-step end-to-end business scenarios in a subset of the
//! Hurl file format (see `plugins/hurl/README.md`).
//!
//! ```toml
//! [stages.e2e]
//! plugin = "builtin:e2e"
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

use serde_json::{Map, Value, json};
use valero_hurl::stage::{Kind, Suite, entry_check};
use valero_hurl::{EntryResult, EntryState};
use valero_sdk::{Check, Plugin, Report, log};

fn title(e: &EntryResult) -> String {
    e.title.clone().unwrap_or_else(|| e.short_target())
}

fn step_check(scenario: &str, file_name: &str, e: &EntryResult) -> Check {
    let name = format!("{scenario} step {}: {}", e.index, title(e));
    let passed = format!(
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
    );
    let mut check = entry_check(name, passed, file_name, e)
        .evidence("scenario", scenario)
        .evidence("step", e.index)
        .evidence("state", e.state.as_str());
    if e.state != EntryState::NotRun {
        check = check
            .measure("started", e.started_ms as f64, "ms")
            .measure("duration", e.elapsed_ms as f64, "ms")
            .measure("attempts", f64::from(e.attempts), "count");
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
        let mut suite = match Suite::load(Kind {
            key: "scenarios",
            noun: "scenario files",
            stop_on_failure: true,
        }) {
            Ok(suite) => suite,
            Err(report) => return report,
        };
        let count = suite.files.len();
        let mut checks = Vec::new();
        let mut scenarios = Map::new();
        let mut green = 0usize;
        let mut steps = 0usize;
        for i in 0..count {
            let l = &suite.files[i];
            let scenario = l
                .file_name
                .strip_suffix(".hurl")
                .unwrap_or(&l.file_name)
                .to_string();
            log::progress(i as u64, count as u64, &scenario);
            log::info(format!(
                "scenario {scenario}: {} steps",
                l.file.entries.len()
            ));
            let (file_name, path) = (l.file_name.clone(), l.path.display().to_string());
            let result = suite.run(i);
            steps += result.entries.len();
            for e in &result.entries {
                let check = step_check(&scenario, &file_name, e);
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
                    "file": path,
                    "passed": result.passed,
                    "duration_ms": result.duration_ms,
                    "timeline": timeline(&result.entries),
                    "steps": result.entries,
                }),
            );
        }
        log::progress(count as u64, count as u64, "done");
        let summary = format!("{green}/{count} scenarios passed ({steps} steps)");
        Report::from_checks(summary, checks).outputs(json!({ "scenarios": scenarios }))
    }
}

valero_sdk::export_plugin!(E2e);
