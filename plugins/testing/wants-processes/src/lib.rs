//! Test plugin that calls the `processes` capability, so its component imports
//! `valero:stage/processes@0.1.0`. The host must refuse it unless the stage is
//! granted `processes`.
//!
//! `with.start = "NAME"` asks the host to start that process (declared or
//! not) and reports the host's answer; without it, it queries `status("x")`.

use valero_sdk::{Check, Plugin, Report, processes};

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct With {
    start: Option<String>,
}

struct WantsProcesses;

impl Plugin for WantsProcesses {
    fn run() -> Report {
        let with: With = valero_sdk::config().unwrap_or_default();
        let check = match with.start {
            Some(name) => match processes::start(&name) {
                Ok(pid) => Check::pass("processes.start").evidence("pid", pid),
                Err(e) => Check::fail("processes.start").message(format!("host refused: {e}")),
            },
            None => match processes::status("x") {
                Ok(status) => {
                    Check::pass("processes.status").evidence("status", format!("{status:?}"))
                }
                Err(e) => Check::pass("processes.status").message(format!("host answered: {e}")),
            },
        };
        Report::from_checks("called the processes capability", vec![check])
    }
}

valero_sdk::export_plugin!(WantsProcesses);
