//! Run records: `.valero/runs/<run-id>/`, written as the run goes so a crash
//! or kill loses nothing already done.
//!
//! Layout:
//!   pipeline.toml                      the file as it was read
//!   events.jsonl                       one JSON object per event, appended and flushed
//!   report.json                        the run report, rewritten atomically after every stage
//!   stages/<stage>/attempt-<n>/        stdout.log, stderr.log, attempt.json

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use crate::report::{AttemptReport, RunReport, StageReport};
use crate::sandbox::Captured;

pub struct Recorder {
    dir: PathBuf,
    events: Mutex<File>,
}

#[derive(Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event<'a> {
    RunStarted {
        run_id: &'a str,
        target: &'a str,
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
    /// Creates `<state_dir>/runs/<run_id>/` and copies the pipeline source into it.
    pub fn create(state_dir: &Path, run_id: &str, pipeline_source: &str) -> std::io::Result<Self> {
        let dir = state_dir.join("runs").join(run_id);
        std::fs::create_dir_all(dir.join("stages"))?;
        std::fs::write(dir.join("pipeline.toml"), pipeline_source)?;
        let events = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("events.jsonl"))?;
        Ok(Recorder {
            dir,
            events: Mutex::new(events),
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
        let result = std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::write(dir.join("stdout.log"), &stdout.bytes))
            .and_then(|_| std::fs::write(dir.join("stderr.log"), &stderr.bytes))
            .and_then(|_| write_json(&dir.join("attempt.json"), attempt));
        if let Err(e) = result {
            tracing::warn!("cannot write run record {}: {e}", dir.display());
        }
        self.event(&Event::AttemptFinished { stage, attempt });
        dir
    }

    pub fn report(&self, report: &RunReport) {
        if let Err(e) = write_json(&self.dir.join("report.json"), report) {
            tracing::warn!("cannot write run report: {e}");
        }
    }
}

/// Writes JSON atomically (temp file + rename).
pub fn write_json(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    serde_json::to_writer_pretty(&mut tmp, value)?;
    tmp.write_all(b"\n")?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
