//! Test plugin that calls the `databases` capability the way a hostile or
//! careless check would: `with = { database = "NAME", sql = ["…", …] }`
//! connects to NAME, runs each statement and reports every host answer as a
//! check (`sql[i]` passes when the host ran it, fails with the host's refusal).
//! Outputs `{"names": [...], "results": [{"sql", "ok", "answer"}]}`.

use serde_json::json;
use valero_sdk::{Check, Plugin, Report, databases};

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct With {
    database: String,
    sql: Vec<String>,
}

struct WantsDatabases;

impl Plugin for WantsDatabases {
    fn run() -> Report {
        let with: With = valero_sdk::config().unwrap_or_default();
        let names = databases::names();
        let mut checks = Vec::new();
        let mut results = Vec::new();
        match databases::connect(&with.database, 5000) {
            Ok(info) => {
                checks.push(Check::pass("connect").evidence("version", info.server_version))
            }
            Err(e) => checks.push(Check::fail("connect").message(e)),
        }
        for (i, sql) in with.sql.iter().enumerate() {
            let answer = databases::query(&with.database, sql);
            let (ok, text) = match answer {
                Ok(rows) => (true, rows),
                Err(e) => (false, e),
            };
            let name = format!("sql[{i}]");
            checks.push(if ok {
                Check::pass(name).message(text.clone())
            } else {
                Check::fail(name).message(text.clone())
            });
            results.push(json!({ "sql": sql, "ok": ok, "answer": text }));
        }
        Report::from_checks("asked the host", checks)
            .outputs(json!({ "names": names, "results": results }))
    }
}

valero_sdk::export_plugin!(WantsDatabases);
