//! Run records: `.valero/runs/<run-id>/`, written as the run goes so a crash
//! or kill loses nothing already done.
//!
//! Layout:
//!   pipeline.toml                      the file as it was read
//!   events.jsonl                       one JSON object per event, appended and flushed
//!   report.json                        the run report, rewritten atomically as stages finish
//!                                      (at most every REPORT_INTERVAL) and at the end
//!   stages/<stage>/attempt-<n>/        attempt.json; stdout.log, stderr.log when not empty

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::report::{AttemptReport, RunReport, StageReport};
use crate::sandbox::Captured;

/// While a run goes, report.json is rewritten at most this often: it is a
/// convenience view (events.jsonl, flushed per event, is what resume reads),
/// and rewriting it after every one of many short stages costs more than the
/// stages (file creation dominates a no-op stage).
pub const REPORT_INTERVAL: Duration = Duration::from_millis(250);

pub struct Recorder {
    dir: PathBuf,
    events: Mutex<File>,
    last_report: Mutex<Option<Instant>>,
}

#[derive(Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event<'a> {
    RunStarted {
        run_id: &'a str,
        target: &'a str,
        at: &'a str,
    },
    /// `valero run --resume`: a new session of an earlier run.
    RunResumed {
        run_id: &'a str,
        session: u32,
        at: &'a str,
    },
    StageStarted {
        stage: &'a str,
        at_ms: f64,
    },
    AttemptFinished {
        stage: &'a str,
        attempt: &'a AttemptReport,
    },
    StageFinished {
        stage: &'a StageReport,
    },
    RunFinished {
        outcome: crate::report::RunOutcome,
        duration_ms: u64,
    },
}

impl Recorder {
    /// Creates (or, for a resumed session, reopens) `<state_dir>/runs/<run_id>/`
    /// and copies the pipeline source into it (`pipeline.toml`, then
    /// `pipeline.resume-N.toml` for session N, so every version is kept).
    pub fn create(
        state_dir: &Path,
        run_id: &str,
        pipeline_source: &str,
        session: u32,
    ) -> std::io::Result<Self> {
        let dir = run_dir(state_dir, run_id);
        std::fs::create_dir_all(dir.join("stages"))?;
        let copy = if session == 0 {
            "pipeline.toml".to_string()
        } else {
            format!("pipeline.resume-{session}.toml")
        };
        std::fs::write(dir.join(copy), pipeline_source)?;
        let events = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("events.jsonl"))?;
        Ok(Recorder {
            dir,
            events: Mutex::new(events),
            last_report: Mutex::new(None),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one event line. Records are best effort: a full disk must not
    /// fail the deployment, but it is logged.
    pub fn event(&self, event: &Event<'_>) {
        let mut line = match serde_json::to_vec(event) {
            Ok(l) => l,
            Err(e) => return tracing::warn!("cannot encode run event: {e}"),
        };
        line.push(b'\n');
        let mut f = self.events.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = f.write_all(&line).and_then(|_| f.flush()) {
            tracing::warn!("cannot write run record {}: {e}", self.dir.display());
        }
    }

    /// Writes an attempt's captured output and its report; returns the directory.
    pub fn attempt(
        &self,
        stage: &str,
        attempt: &AttemptReport,
        stdout: &Captured,
        stderr: &Captured,
    ) -> PathBuf {
        let dir = self
            .dir
            .join("stages")
            .join(stage)
            .join(format!("attempt-{}", attempt.attempt));
        // Written once, so no temp file and rename; empty output is not written.
        let write_log = |name: &str, captured: &Captured| match captured.bytes.is_empty() {
            true => Ok(()),
            false => std::fs::write(dir.join(name), &captured.bytes),
        };
        let result = std::fs::create_dir_all(&dir)
            .and_then(|_| write_log("stdout.log", stdout))
            .and_then(|_| write_log("stderr.log", stderr))
            .and_then(|_| std::fs::write(dir.join("attempt.json"), json_bytes(attempt)?));
        if let Err(e) = result {
            tracing::warn!("cannot write run record {}: {e}", dir.display());
        }
        self.event(&Event::AttemptFinished { stage, attempt });
        dir
    }

    /// Writes report.json now.
    pub fn report(&self, report: &RunReport) {
        *self.last_report.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        if let Err(e) = write_json(&self.dir.join("report.json"), report) {
            tracing::warn!("cannot write run report: {e}");
        }
    }

    /// Writes report.json (built by `report` only then) unless it was written
    /// less than [`REPORT_INTERVAL`] ago.
    pub fn report_soon(&self, report: impl FnOnce() -> RunReport) {
        let due = self
            .last_report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none_or(|at| at.elapsed() >= REPORT_INTERVAL);
        if due {
            self.report(&report());
        }
    }
}

/// Pretty JSON with a final newline, serialised in memory: written to an
/// unbuffered file directly, a report would be one `write` per token.
fn json_bytes(value: &impl Serialize) -> std::io::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Writes JSON atomically (temp file + rename).
pub fn write_json(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let bytes = json_bytes(value)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(&bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

pub fn run_dir(state_dir: &Path, run_id: &str) -> PathBuf {
    state_dir.join("runs").join(run_id)
}

/// What an earlier session of a run left in its records.
#[derive(Debug, Clone, Default)]
pub struct Previous {
    pub target: String,
    pub started_at: String,
    /// Sessions so far (1 = the original run only).
    pub sessions: u32,
    /// Final reports of the stages that finished, by name.
    pub stages: BTreeMap<String, StageReport>,
    /// Time covered so far (end of the last finished stage), ms.
    pub elapsed_ms: f64,
}

/// Reads a run's records for `--resume`. The event log is the source of
/// truth: it is appended and flushed as the run goes, so it survives a kill.
pub fn load_previous(state_dir: &Path, run_id: &str) -> Result<Previous, String> {
    let dir = run_dir(state_dir, run_id);
    let text = std::fs::read_to_string(dir.join("events.jsonl")).map_err(|e| {
        format!(
            "no records of run `{run_id}` in {}: {e}\n  help: `valero runs list` shows the runs recorded there",
            dir.display()
        )
    })?;
    let mut prev = Previous::default();
    for line in text.lines() {
        // A kill can leave a torn last line: skip what does not parse.
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        match event["event"].as_str() {
            Some("run_started") => {
                prev.target = event["target"].as_str().unwrap_or_default().to_string();
                prev.started_at = event["at"].as_str().unwrap_or_default().to_string();
                prev.sessions = 1;
            }
            Some("run_resumed") => prev.sessions += 1,
            Some("stage_finished") => {
                if let Ok(stage) = serde_json::from_value::<StageReport>(event["stage"].clone()) {
                    prev.elapsed_ms = prev.elapsed_ms.max(stage.end_ms.unwrap_or(0.0));
                    prev.stages.insert(stage.name.clone(), stage);
                }
            }
            _ => {}
        }
    }
    if prev.sessions == 0 {
        return Err(format!(
            "the records of run `{run_id}` have no start event: {}",
            dir.display()
        ));
    }
    Ok(prev)
}

/// The runs recorded under a state directory, newest first, with their
/// reports when they have one.
pub fn list_runs(state_dir: &Path) -> Vec<(String, Option<RunReport>)> {
    let Ok(entries) = std::fs::read_dir(state_dir.join("runs")) else {
        return Vec::new();
    };
    let mut runs: Vec<(String, Option<RunReport>)> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| {
            let id = e.file_name().to_string_lossy().into_owned();
            let report = std::fs::read_to_string(e.path().join("report.json"))
                .ok()
                .and_then(|s| serde_json::from_str(&s).ok());
            (id, report)
        })
        .collect();
    runs.sort_by(|a, b| b.0.cmp(&a.0));
    runs
}
