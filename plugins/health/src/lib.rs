//! Stage plugin `health` (being built).

use valero_sdk::{Plugin, Report};

struct Stage;

impl Plugin for Stage {
    fn run() -> Report {
        Report::fail("the health plugin is not implemented yet")
    }
}

valero_sdk::export_plugin!(Stage);
