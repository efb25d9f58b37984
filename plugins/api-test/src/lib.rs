//! Stage plugin `api-test`: declarative API tests in a subset of the Hurl file format
//! (see `plugins/hurl/README.md`).
//!
//! ```toml
//! [stages.api]
//! plugin = "builtin:api-test"
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

use serde_json::{Map, Value, json};
use valero_hurl::stage::{Kind, Suite, entry_check};
use valero_hurl::{EntryResult, EntryState};
use valero_sdk::{Check, Plugin, Report, log};

fn check_for(file_name: &str, e: &EntryResult) -> Check {
    let name = format!("{file_name}:{} {}", e.line, e.short_target());
    let asserts = e.asserts.len();
    let passed = format!(
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
    );
    entry_check(name, passed, file_name, e)
}

struct ApiTest;

impl Plugin for ApiTest {
    fn run() -> Report {
        let mut suite = match Suite::load(Kind {
            key: "files",
            noun: "API test files",
            stop_on_failure: false,
        }) {
            Ok(suite) => suite,
            Err(report) => return report,
        };
        let total: usize = suite.files.iter().map(|l| l.file.entries.len()).sum();
        let mut checks = Vec::new();
        let mut outputs = Map::new();
        let (mut passed, mut failed) = (0usize, 0usize);
        for i in 0..suite.files.len() {
            let result = suite.run(i);
            let l = &suite.files[i];
            log::progress(checks.len() as u64, total as u64, &l.file_name);
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
            suite.files.len()
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
