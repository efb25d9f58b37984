//! The result vocabulary of Valero: the model of a run that the JSON
//! report, the run records and the terminal summary are all made from, and
//! everything that turns what a guest returned into it.
//!
//! It depends on nothing of the WebAssembly runtime, so it can be fuzzed and
//! read by tools on its own:
//!
//! * the model ([`RunReport`] → [`StageReport`] → [`AttemptReport`] /
//!   [`CheckReport`]), with typed words ([`Verdict`], [`StageStatus`],
//!   [`AttemptEnd`], [`LoadSource`], [`LogLevel`]) that serialise to the
//!   values `docs/report.schema.json` allows;
//! * the edge where a guest's report enters the host ([`decode`]), what
//!   plugin text may contain ([`neutralize`]), and secret masking
//!   ([`secrets`]);
//! * what stages leave behind ([`effects`]);
//! * the renderings: [`junit`], [`markdown`], [`github`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod decode;
pub mod effects;
pub mod github;
pub mod junit;
mod log;
pub mod markdown;
mod neutralize;
pub mod secrets;

pub use log::{LogLevel, LogLine};
pub use neutralize::{neutralize, neutralize_json};

/// Version of the JSON report schema (`schema_version`); bumped on any
/// incompatible change.
pub const SCHEMA_VERSION: u32 = 2;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub schema_version: u32,
    pub run_id: String,
    pub pipeline: String,
    pub pipeline_file: String,
    pub target: String,
    /// RFC 3339.
    pub started_at: String,
    pub duration_ms: u64,
    pub outcome: RunOutcome,
    /// Set when the run was resumed (`valero run --resume`): how many times.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resumed: u32,
    /// Set when `outcome` is `interrupted`: how, and the last thing recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interruption: Option<Interruption>,
    pub stages: Vec<StageReport>,
    /// Stages of the pipeline that were not part of this run, and why
    /// (`when` excludes the target, `--only`, `--skip`).
    #[serde(default)]
    pub excluded: Vec<Excluded>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Excluded {
    pub stage: String,
    pub reason: String,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Passed,
    Failed,
    Inconclusive,
    /// Ended by a signal (Ctrl-C, SIGTERM), or the runner stopped without
    /// finishing (killed, crashed, machine lost). Not a verdict on the
    /// deployment: `valero run --resume` continues it.
    // Schema 1 called a signalled run `cancelled`.
    #[serde(alias = "cancelled")]
    Interrupted,
    /// Still going: the report is an intermediate one (run records only).
    Running,
}

/// How a run was interrupted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interruption {
    pub cause: InterruptCause,
    /// The last event in the run's records (`stage `deploy` started`).
    pub last_event: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InterruptCause {
    /// Ctrl-C or SIGTERM: the runner stopped the run and ran its `always` stages.
    Signal,
    /// The runner stopped without finishing its records: killed (SIGKILL),
    /// crashed, or the machine was lost. Nothing ran after the last event.
    Lost,
}

impl RunOutcome {
    /// The word used in reports (the JSON value).
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Passed => "passed",
            RunOutcome::Failed => "failed",
            RunOutcome::Inconclusive => "inconclusive",
            RunOutcome::Interrupted => "interrupted",
            RunOutcome::Running => "running",
        }
    }
}

impl StageStatus {
    /// The word used in reports (the JSON value).
    pub fn as_str(self) -> &'static str {
        match self {
            StageStatus::Passed => "passed",
            StageStatus::Failed => "failed",
            StageStatus::Inconclusive => "inconclusive",
            StageStatus::Skipped => "skipped",
            StageStatus::Cancelled => "cancelled",
        }
    }
}

impl StageReport {
    /// A stage that has not run (yet): no attempts, checks or outputs.
    pub fn not_run(
        name: &str,
        plugin: String,
        status: StageStatus,
        reason: Option<String>,
    ) -> Self {
        StageReport {
            name: name.to_string(),
            status,
            reason,
            plugin,
            digest: None,
            load: None,
            start_ms: None,
            end_ms: None,
            continue_on_error: false,
            fingerprint: None,
            resume: None,
            effects: Vec::new(),
            summary: String::new(),
            checks: Vec::new(),
            outputs: serde_json::Value::Null,
            attempts: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    Passed,
    Failed,
    Inconclusive,
    /// Not run because of its needs (or the pipeline deadline); see `reason`.
    Skipped,
    /// Stopped or never started because the run was interrupted.
    Cancelled,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageReport {
    pub name: String,
    pub status: StageStatus,
    /// Why the stage has this status, when it is not self-evident.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub plugin: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadReport>,
    /// Offsets from the start of the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_ms: Option<f64>,
    pub continue_on_error: bool,
    /// Digest of what determines the stage's result: plugin digest, `with`,
    /// grants, limits, target and inputs. A resumed run reuses a passed
    /// stage only when this is unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// On a resumed run: whether this stage's result was reused, or why it ran again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<ResumeNote>,
    /// What the stage did through host capabilities that outlasts it
    /// (services started, containers deployed, images built), each with its
    /// lifetime: a resumed run re-runs a stage whose effects are gone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub effects: Vec<effects::RecordedEffect>,
    pub summary: String,
    pub checks: Vec<CheckReport>,
    pub outputs: serde_json::Value,
    pub attempts: Vec<AttemptReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ResumeNote {
    pub reused: bool,
    pub why: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadReport {
    pub source: LoadSource,
    pub ms: f64,
}

/// Where a stage's plugin came from when it was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadSource {
    /// Compiled from its `.wasm` in this run.
    Compiled,
    /// Read from the compile cache.
    Cache,
}

impl LoadSource {
    /// The word used in reports (the JSON value).
    pub fn as_str(self) -> &'static str {
        match self {
            LoadSource::Compiled => "compiled",
            LoadSource::Cache => "cache",
        }
    }
}

/// A plugin's verdict on a check or on its whole stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    Inconclusive,
}

impl Verdict {
    /// The word used in reports (the JSON value).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// How one attempt of a stage ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptEnd {
    /// The plugin returned a report (whatever its verdict).
    Returned,
    /// The stage timeout or the pipeline deadline was reached.
    TimedOut,
    /// The memory limit refused a growth.
    MemoryLimit,
    /// The plugin held more host resources than a stage may.
    ResourceLimit,
    /// The plugin called `exit` instead of returning a report.
    Exited,
    /// The plugin trapped (a panic, a failed host call, a wasm fault).
    Trapped,
    /// The host could not run the plugin (load, link, instantiate).
    SandboxError,
    /// The run was interrupted while the attempt ran.
    Cancelled,
}

impl AttemptEnd {
    /// The word used in reports (the JSON value).
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptEnd::Returned => "returned",
            AttemptEnd::TimedOut => "timed_out",
            AttemptEnd::MemoryLimit => "memory_limit",
            AttemptEnd::ResourceLimit => "resource_limit",
            AttemptEnd::Exited => "exited",
            AttemptEnd::Trapped => "trapped",
            AttemptEnd::SandboxError => "sandbox_error",
            AttemptEnd::Cancelled => "cancelled",
        }
    }
}

/// The typed words print as the report writes them.
macro_rules! display_as_word {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}

display_as_word!(RunOutcome, StageStatus, LoadSource, Verdict, AttemptEnd);

/// A typed word of the report: all its values, for the test that holds the
/// types and `docs/report.schema.json` together (tests/schema.rs).
pub trait Word: Sized + Copy + Serialize + serde::de::DeserializeOwned + 'static {
    const ALL: &'static [Self];
}

impl Word for RunOutcome {
    const ALL: &'static [Self] = &[
        RunOutcome::Passed,
        RunOutcome::Failed,
        RunOutcome::Inconclusive,
        RunOutcome::Interrupted,
        RunOutcome::Running,
    ];
}

impl Word for InterruptCause {
    const ALL: &'static [Self] = &[InterruptCause::Signal, InterruptCause::Lost];
}

impl Word for StageStatus {
    const ALL: &'static [Self] = &[
        StageStatus::Passed,
        StageStatus::Failed,
        StageStatus::Inconclusive,
        StageStatus::Skipped,
        StageStatus::Cancelled,
    ];
}

impl Word for LoadSource {
    const ALL: &'static [Self] = &[LoadSource::Compiled, LoadSource::Cache];
}

impl Word for Verdict {
    const ALL: &'static [Self] = &[Verdict::Pass, Verdict::Fail, Verdict::Inconclusive];
}

impl Word for AttemptEnd {
    const ALL: &'static [Self] = &[
        AttemptEnd::Returned,
        AttemptEnd::TimedOut,
        AttemptEnd::MemoryLimit,
        AttemptEnd::ResourceLimit,
        AttemptEnd::Exited,
        AttemptEnd::Trapped,
        AttemptEnd::SandboxError,
        AttemptEnd::Cancelled,
    ];
}

impl Word for LogLevel {
    const ALL: &'static [Self] = &[
        LogLevel::Trace,
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warn,
        LogLevel::Error,
    ];
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttemptReport {
    pub attempt: u32,
    pub start_ms: f64,
    pub end_ms: f64,
    pub outcome: AttemptEnd,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    pub message: String,
    pub stdout: OutputReport,
    pub stderr: OutputReport,
    pub logs: Vec<LogLine>,
    pub logs_dropped: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OutputReport {
    /// Bytes kept (and written to the run records).
    pub bytes: u64,
    /// Bytes dropped over the stage's output limit.
    pub dropped: u64,
    /// The kept text, neutralised; truncated to a preview in reports.
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckReport {
    pub name: String,
    pub verdict: Verdict,
    pub message: String,
    pub duration_ms: u64,
    pub evidence: Vec<(String, String)>,
    pub measurements: Vec<MeasurementReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MeasurementReport {
    pub name: String,
    /// `None` (JSON `null`) when the plugin reported NaN or an infinity.
    pub value: Option<f64>,
    pub unit: String,
}

impl MeasurementReport {
    /// The value as shown in reports.
    pub fn value_text(&self) -> String {
        self.value
            .map_or_else(|| "non-finite".to_string(), |v| v.to_string())
    }
}

impl RunReport {
    pub fn stage(&self, name: &str) -> Option<&StageReport> {
        self.stages.iter().find(|s| s.name == name)
    }
}

pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}
