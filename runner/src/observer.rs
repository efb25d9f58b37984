//! What a run reports while it goes, for display (terminal progress, plain
//! log lines, structured logs). The scheduler calls these; implementations
//! must be cheap and must not block. All text passed here is already
//! neutralised (no control sequences) and secret-masked.

use std::sync::Arc;

use crate::report::LogLevel;
use crate::report::{RunReport, StageReport};
use crate::secrets::Masker;

/// Where text from a stage goes on its way out of the sandbox: secrets are
/// masked, then the observer (terminal, logs) sees it.
#[derive(Clone)]
pub struct StageIo {
    pub masker: Arc<Masker>,
    pub observer: Arc<dyn Observer>,
}

pub trait Observer: Send + Sync {
    /// The run is about to start the given stages (plan order).
    fn run_started(&self, _run_id: &str, _pipeline: &str, _target: &str, _stages: &[String]) {}
    /// An attempt of a stage starts (attempt is 1-based).
    fn stage_started(&self, _stage: &str, _attempt: u32) {}
    /// A log line from a plugin (`valero:stage/log`).
    fn stage_log(&self, _stage: &str, _level: LogLevel, _message: &str) {}
    /// A progress report from a plugin.
    fn stage_progress(&self, _stage: &str, _done: u64, _total: u64, _label: &str) {}
    /// Captured stdout/stderr of a finished attempt (`stream` = "stdout" | "stderr").
    fn stage_output(&self, _stage: &str, _stream: &str, _text: &str) {}
    /// A stage reached its final status (passed, failed, skipped, …).
    fn stage_finished(&self, _report: &StageReport) {}
    /// The run ended.
    fn run_finished(&self, _report: &RunReport) {}
}

// So structs holding an observer (e.g. run options) can derive Debug.
impl std::fmt::Debug for dyn Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer")
    }
}

/// Observes nothing (library use, tests).
pub struct Silent;

impl Observer for Silent {}
