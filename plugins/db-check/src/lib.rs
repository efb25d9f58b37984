//! Stage plugin `db-check` (being built).

use valero_sdk::{Plugin, Report};

struct Stage;

impl Plugin for Stage {
    fn run() -> Report {
        Report::fail("the db-check plugin is not implemented yet")
    }
}

valero_sdk::export_plugin!(Stage);
