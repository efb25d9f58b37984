//! Test plugin that calls the `processes` capability, so its component imports
//! `valero:stage/processes@0.1.0`. The host must refuse it unless the stage is
//! granted `processes`.

use valero_sdk::{Check, Plugin, Report, processes};

struct WantsProcesses;

impl Plugin for WantsProcesses {
    fn run() -> Report {
        let check = match processes::running("x") {
            Ok(running) => Check::pass("processes.running").evidence("running", running),
            Err(e) => Check::pass("processes.running").message(format!("host answered: {e}")),
        };
        Report::from_checks("called processes.running(\"x\")", vec![check])
    }
}

valero_sdk::export_plugin!(WantsProcesses);
