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
    events: Mutex<EventLog>,
    last_report: Mutex<Option<Instant>>,
    /// Held for the run's life: another `valero run --resume` of this run
    /// is refused while it is (the kernel drops it when the process dies).
    _lock: File,
    kill_hook: Option<KillHook>,
}

struct EventLog {
    file: File,
    written: u64,
    /// The last event, described (for an interrupted run's report).
    last: String,
    /// The first write that failed; later records are not attempted.
    failure: Option<String>,
}

/// Test hook (`VALERO_TEST_KILL_AFTER_EVENT=N`, optionally with
/// `VALERO_TEST_KILL_TORN=1`): SIGKILL the runner right after its Nth event
/// of this session is written (or half-written), so crash consistency can be
/// tested at every point of a run.
#[derive(Clone, Copy)]
struct KillHook {
    after: u64,
    torn: bool,
}

impl KillHook {
    fn from_env() -> Option<KillHook> {
        let after = std::env::var("VALERO_TEST_KILL_AFTER_EVENT")
            .ok()?
            .parse()
            .ok()?;
        let torn = std::env::var_os("VALERO_TEST_KILL_TORN").is_some();
        Some(KillHook { after, torn })
    }
}

/// Why the records of a run cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error(
        "run `{run_id}` is still going: process {pid} holds its records ({dir})\n  help: wait for it to end, or stop it (`kill {pid}`) and resume again"
    )]
    Busy {
        run_id: String,
        pid: String,
        dir: String,
    },
    #[error(
        "run records {dir} already exist\n  help: two runs were given the same id; start the run again"
    )]
    Exists { dir: String },
    #[error("cannot write run records in {dir}: {source}")]
    Io { dir: String, source: std::io::Error },
}

#[derive(Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event<'a> {
    RunStarted {
        run_id: &'a str,
        pipeline: &'a str,
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

impl Event<'_> {
    /// In words, as [`describe_event`] says it of the recorded line.
    fn describe(&self) -> String {
        match self {
            Event::RunStarted { .. } => "run started".into(),
            Event::RunResumed { session, .. } => format!("resumed (session {})", session + 1),
            Event::StageStarted { stage, at_ms } => {
                format!("stage `{stage}` started at {:.1} s", at_ms / 1000.0)
            }
            Event::AttemptFinished { stage, attempt } => format!(
                "attempt {} of stage `{stage}` ended ({})",
                attempt.attempt, attempt.outcome
            ),
            Event::StageFinished { stage } => {
                format!("stage `{}` {}", stage.name, stage.status.as_str())
            }
            Event::RunFinished { outcome, .. } => format!("run {}", outcome.as_str()),
        }
    }
}

/// One event of events.jsonl in words: `stage `deploy` started at 1.2 s`.
fn describe_event(e: &serde_json::Value) -> String {
    let stage = e["stage"].as_str().or(e["stage"]["name"].as_str());
    let stage = stage.unwrap_or("?");
    match e["event"].as_str().unwrap_or_default() {
        "run_started" => "run started".into(),
        "run_resumed" => format!(
            "resumed (session {})",
            e["session"].as_u64().unwrap_or(0) + 1
        ),
        "stage_started" => format!(
            "stage `{stage}` started at {:.1} s",
            e["at_ms"].as_f64().unwrap_or(0.0) / 1000.0
        ),
        "attempt_finished" => format!(
            "attempt {} of stage `{stage}` ended ({})",
            e["attempt"]["attempt"].as_u64().unwrap_or(0),
            e["attempt"]["outcome"].as_str().unwrap_or("?")
        ),
        "stage_finished" => format!(
            "stage `{stage}` {}",
            e["stage"]["status"].as_str().unwrap_or("finished")
        ),
        "run_finished" => format!("run {}", e["outcome"].as_str().unwrap_or("finished")),
        other => format!("event `{other}`"),
    }
}

fn io_error(dir: &Path) -> impl FnOnce(std::io::Error) -> RecordsError + '_ {
    move |source| RecordsError::Io {
        dir: dir.display().to_string(),
        source,
    }
}

impl Recorder {
    /// Creates (or, for a resumed session, reopens) `<state_dir>/runs/<run_id>/`,
    /// takes the run's lock, and copies the pipeline source into it
    /// (`pipeline.toml`, then `pipeline.resume-N.toml` for session N, so every
    /// version is kept). A fresh run gets a directory of its own, so two runs
    /// at once never write into the same records.
    pub fn create(
        state_dir: &Path,
        run_id: &str,
        pipeline_source: &str,
        session: u32,
    ) -> Result<Self, RecordsError> {
        let dir = run_dir(state_dir, run_id);
        if session == 0 {
            std::fs::create_dir_all(state_dir.join("runs")).map_err(io_error(&dir))?;
            std::fs::create_dir(&dir).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => RecordsError::Exists {
                    dir: dir.display().to_string(),
                },
                _ => io_error(&dir)(e),
            })?;
        }
        let lock = lock(&dir, run_id)?;
        std::fs::create_dir_all(dir.join("stages")).map_err(io_error(&dir))?;
        let copy = if session == 0 {
            "pipeline.toml".to_string()
        } else {
            format!("pipeline.resume-{session}.toml")
        };
        std::fs::write(dir.join(copy), pipeline_source).map_err(io_error(&dir))?;
        let path = dir.join("events.jsonl");
        drop_torn_tail(&path).map_err(io_error(&dir))?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_error(&dir))?;
        Ok(Recorder {
            dir,
            events: Mutex::new(EventLog {
                file,
                written: 0,
                last: String::new(),
                failure: None,
            }),
            last_report: Mutex::new(None),
            _lock: lock,
            kill_hook: KillHook::from_env(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one event line and flushes it (the journal `--resume` reads).
    /// A write that fails (a full disk) is kept as the run's records failure:
    /// the scheduler then starts nothing new, and the run fails saying so;
    /// what was written before stays intact.
    pub fn event(&self, event: &Event<'_>) {
        let mut line = match serde_json::to_vec(event) {
            Ok(l) => l,
            Err(e) => return tracing::warn!("cannot encode run event: {e}"),
        };
        line.push(b'\n');
        let mut log = self.events.lock().unwrap_or_else(|e| e.into_inner());
        log.last = event.describe();
        if log.failure.is_some() {
            return;
        }
        log.written += 1;
        if let Some(hook) = self.kill_hook.filter(|h| h.after == log.written) {
            let part = if hook.torn {
                line.len() / 2
            } else {
                line.len()
            };
            let _ = log.file.write_all(&line[..part]);
            kill_self();
        }
        if let Err(e) = log.file.write_all(&line).and_then(|_| log.file.flush()) {
            self.fail(
                &mut log,
                format!("{}: {e}", self.dir.join("events.jsonl").display()),
            );
        }
    }

    fn fail(&self, log: &mut EventLog, what: String) {
        tracing::error!("cannot write the run records: {what}");
        log.failure.get_or_insert(what);
    }

    /// The first records write that failed, if any.
    pub fn failure(&self) -> Option<String> {
        let log = self.events.lock().unwrap_or_else(|e| e.into_inner());
        log.failure.clone()
    }

    /// The last event recorded, in words.
    pub fn last_event(&self) -> String {
        let log = self.events.lock().unwrap_or_else(|e| e.into_inner());
        log.last.clone()
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
            let mut log = self.events.lock().unwrap_or_else(|e| e.into_inner());
            self.fail(&mut log, format!("{}: {e}", dir.display()));
        }
        self.event(&Event::AttemptFinished { stage, attempt });
        dir
    }

    /// Writes report.json now.
    pub fn report(&self, report: &RunReport) {
        *self.last_report.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        if let Err(e) = write_json(&self.dir.join("report.json"), report) {
            let mut log = self.events.lock().unwrap_or_else(|e| e.into_inner());
            self.fail(
                &mut log,
                format!("{}: {e}", self.dir.join("report.json").display()),
            );
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

/// SIGKILL of this process (the test hook): no destructor, no flush, no
/// cleanup runs, exactly as with `kill -9` from outside.
fn kill_self() -> ! {
    #[cfg(unix)]
    // SAFETY: kill(2) on our own pid.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    std::process::abort()
}

/// Takes the run's lock (`lock`, holding the owner's pid).
fn lock(dir: &Path, run_id: &str) -> Result<File, RecordsError> {
    let path = dir.join("lock");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io_error(dir))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(RecordsError::Busy {
                run_id: run_id.to_string(),
                pid: std::fs::read_to_string(&path)
                    .map(|p| p.trim().to_string())
                    .unwrap_or_else(|_| "?".into()),
                dir: dir.display().to_string(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io_error(dir)(e)),
    }
    file.set_len(0)
        .and_then(|_| writeln!(file, "{}", std::process::id()))
        .map_err(io_error(dir))?;
    Ok(file)
}

/// The pid of the process running `run_id` now, if one is.
pub fn lock_holder(state_dir: &Path, run_id: &str) -> Option<String> {
    let dir = run_dir(state_dir, run_id);
    let file = File::open(dir.join("lock")).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(_) => Some(
            std::fs::read_to_string(dir.join("lock"))
                .map(|p| p.trim().to_string())
                .unwrap_or_else(|_| "?".into()),
        ),
    }
}

/// A kill while an event was being written leaves a line without its
/// newline: cut it off before appending, so the next event starts a line.
fn drop_torn_tail(path: &Path) -> std::io::Result<()> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if bytes.last().is_none_or(|b| *b == b'\n') {
        return Ok(());
    }
    let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    tracing::warn!(
        "{}: dropping a torn last line ({} bytes) left by a runner that was stopped while writing it",
        path.display(),
        bytes.len() - keep
    );
    OpenOptions::new()
        .write(true)
        .open(path)?
        .set_len(keep as u64)
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
    pub pipeline: String,
    pub started_at: String,
    /// Sessions so far (1 = the original run only).
    pub sessions: u32,
    /// Final reports of the stages that finished, by name.
    pub stages: BTreeMap<String, StageReport>,
    /// Stage names in the order they first finished.
    pub order: Vec<String>,
    /// Run time covered so far (the latest time any event names), ms: a
    /// resumed run has what is left of the pipeline deadline, not a new one.
    pub elapsed_ms: f64,
    /// The outcome of the last session, if it finished.
    pub finished: Option<crate::report::RunOutcome>,
    /// The last event, in words.
    pub last_event: String,
    /// What was wrong with the records (torn or unreadable lines), to warn about.
    pub warnings: Vec<String>,
}

/// Reads a run's event journal. A kill can leave a torn last line: it is
/// ignored with a warning (as is any other line that does not parse).
fn scan(dir: &Path, text: &str) -> Previous {
    let mut prev = Previous::default();
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            let what = if i + 1 == lines.len() && !text.ends_with('\n') {
                "its torn last line (the runner was stopped while writing it) is ignored"
            } else {
                "a line that is not an event is ignored"
            };
            prev.warnings.push(format!(
                "{}, line {}: {what}",
                dir.join("events.jsonl").display(),
                i + 1
            ));
            continue;
        };
        prev.last_event = describe_event(&event);
        let at = [
            &event["at_ms"],
            &event["stage"]["end_ms"],
            &event["attempt"]["end_ms"],
            &event["duration_ms"],
        ]
        .into_iter()
        .filter_map(serde_json::Value::as_f64)
        .fold(0.0, f64::max);
        prev.elapsed_ms = prev.elapsed_ms.max(at);
        match event["event"].as_str() {
            Some("run_started") => {
                prev.target = event["target"].as_str().unwrap_or_default().to_string();
                prev.pipeline = event["pipeline"].as_str().unwrap_or_default().to_string();
                prev.started_at = event["at"].as_str().unwrap_or_default().to_string();
                prev.sessions = 1;
                prev.finished = None;
            }
            Some("run_resumed") => {
                prev.sessions += 1;
                prev.finished = None;
            }
            Some("stage_finished") => {
                if let Ok(stage) = serde_json::from_value::<StageReport>(event["stage"].clone()) {
                    if !prev.stages.contains_key(&stage.name) {
                        prev.order.push(stage.name.clone());
                    }
                    prev.stages.insert(stage.name.clone(), stage);
                }
            }
            Some("run_finished") => {
                prev.finished = serde_json::from_value(event["outcome"].clone()).ok();
            }
            _ => {}
        }
    }
    prev
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
    let prev = scan(&dir, &text);
    if prev.sessions == 0 {
        return Err(format!(
            "the records of run `{run_id}` have no start event: {}",
            dir.display()
        ));
    }
    for w in &prev.warnings {
        tracing::warn!("{w}");
    }
    Ok(prev)
}

/// Where a recorded run stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    /// Its last session finished (whatever the outcome).
    Finished,
    /// A live process holds its lock.
    Running { pid: String },
    /// Its last session never finished and nobody holds it: interrupted.
    Interrupted,
}

/// A run as its records show it now.
#[derive(Debug, Clone)]
pub struct RecordedRun {
    pub id: String,
    pub state: RunState,
    /// The report: report.json brought up to date with the journal; for an
    /// interrupted run, outcome `interrupted` with the last event seen.
    pub report: RunReport,
    pub warnings: Vec<String>,
}

/// Reads one run's records: report.json (rewritten at most every
/// [`REPORT_INTERVAL`], so it may lag) completed from events.jsonl (the
/// journal), and the lock to tell a running run from an interrupted one.
pub fn read_run(state_dir: &Path, run_id: &str) -> Result<RecordedRun, String> {
    let dir = run_dir(state_dir, run_id);
    let text = std::fs::read_to_string(dir.join("events.jsonl")).map_err(|e| {
        format!(
            "no records of run `{run_id}` in {}: {e}\n  help: `valero runs list` shows the recorded runs",
            dir.display()
        )
    })?;
    let prev = scan(&dir, &text);
    let mut warnings = prev.warnings.clone();
    let report = match std::fs::read_to_string(dir.join("report.json")) {
        Ok(text) => match serde_json::from_str::<RunReport>(&text) {
            Ok(r) => Some(r),
            Err(e) => {
                warnings.push(format!(
                    "{} is not a valero report ({e}); shown from events.jsonl",
                    dir.join("report.json").display()
                ));
                None
            }
        },
        Err(_) => None,
    };
    let state = match (&prev.finished, lock_holder(state_dir, run_id)) {
        (_, Some(pid)) => RunState::Running { pid },
        (Some(_), None) => RunState::Finished,
        (None, None) => RunState::Interrupted,
    };
    let report = match (report, &state) {
        // Finished: report.json was written last, after the final event.
        (Some(r), RunState::Finished) => r,
        (r, _) => {
            let mut r = r.unwrap_or_else(|| RunReport {
                schema_version: crate::report::SCHEMA_VERSION,
                run_id: run_id.to_string(),
                pipeline: prev.pipeline.clone(),
                pipeline_file: String::new(),
                target: prev.target.clone(),
                started_at: prev.started_at.clone(),
                duration_ms: 0,
                outcome: crate::report::RunOutcome::Running,
                resumed: 0,
                interruption: None,
                stages: Vec::new(),
                excluded: Vec::new(),
            });
            complete(&mut r, &prev);
            match (&state, prev.finished) {
                (RunState::Interrupted, _) => {
                    r.outcome = crate::report::RunOutcome::Interrupted;
                    r.interruption = Some(crate::report::Interruption {
                        cause: crate::report::InterruptCause::Lost,
                        last_event: prev.last_event.clone(),
                    });
                }
                (RunState::Running { .. }, _) => r.outcome = crate::report::RunOutcome::Running,
                (RunState::Finished, Some(outcome)) => r.outcome = outcome,
                (RunState::Finished, None) => {}
            }
            r
        }
    };
    Ok(RecordedRun {
        id: run_id.to_string(),
        state,
        report,
        warnings,
    })
}

/// Brings a report up to date with the journal: every stage's latest
/// finished report, the run time covered, the sessions.
fn complete(r: &mut RunReport, prev: &Previous) {
    for name in &prev.order {
        let stage = prev.stages[name].clone();
        match r.stages.iter_mut().find(|s| s.name == *name) {
            Some(s) => *s = stage,
            None => r.stages.push(stage),
        }
    }
    r.duration_ms = r.duration_ms.max(prev.elapsed_ms as u64);
    r.resumed = prev.sessions.saturating_sub(1);
}

/// The ids of the runs recorded under a state directory, newest first.
pub fn run_ids(state_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(state_dir.join("runs")) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    ids.sort_by(|a, b| b.cmp(a));
    ids
}

/// The runs recorded under a state directory, newest first.
pub fn list_runs(state_dir: &Path) -> Vec<Result<RecordedRun, String>> {
    run_ids(state_dir)
        .iter()
        .map(|id| read_run(state_dir, id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage_line(name: &str, status: &str, end_ms: f64) -> String {
        let mut s =
            StageReport::not_run(name, "p".into(), crate::report::StageStatus::Passed, None);
        s.end_ms = Some(end_ms);
        let mut v = serde_json::to_value(&s).unwrap();
        v["status"] = status.into();
        serde_json::json!({ "event": "stage_finished", "stage": v }).to_string()
    }

    #[test]
    fn a_torn_last_line_is_ignored_with_a_warning() {
        let text = format!(
            "{}\n{}\n{}",
            r#"{"event":"run_started","run_id":"r","pipeline":"p","target":"local","at":"t"}"#,
            stage_line("build", "passed", 1200.0),
            &stage_line("deploy", "passed", 2500.0)[..40],
        );
        let prev = scan(Path::new("/records"), &text);
        assert_eq!(prev.sessions, 1);
        assert_eq!(prev.stages.keys().collect::<Vec<_>>(), ["build"]);
        assert_eq!(prev.elapsed_ms, 1200.0);
        assert_eq!(prev.warnings.len(), 1, "{:?}", prev.warnings);
        assert!(
            prev.warnings[0].contains("torn last line"),
            "{:?}",
            prev.warnings
        );
        assert_eq!(prev.last_event, "stage `build` passed");
        assert_eq!(prev.finished, None);
    }

    #[test]
    fn elapsed_time_counts_up_to_the_last_event_not_the_last_finished_stage() {
        let text = format!(
            "{}\n{}\n{}\n",
            r#"{"event":"run_started","run_id":"r","pipeline":"p","target":"local","at":"t"}"#,
            stage_line("build", "passed", 1200.0),
            r#"{"event":"stage_started","stage":"deploy","at_ms":1300.5}"#,
        );
        let prev = scan(Path::new("/records"), &text);
        assert_eq!(prev.elapsed_ms, 1300.5);
        assert_eq!(prev.last_event, "stage `deploy` started at 1.3 s");
    }

    #[test]
    fn appending_after_a_torn_line_starts_a_new_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, "{\"event\":\"run_started\"}\n{\"event\":\"sta").unwrap();
        drop_torn_tail(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"event\":\"run_started\"}\n"
        );
    }

    #[test]
    fn a_run_whose_lock_is_held_cannot_be_opened_again() {
        let state = tempfile::tempdir().unwrap();
        let first = Recorder::create(state.path(), "r1", "", 0).unwrap();
        first.event(&Event::RunStarted {
            run_id: "r1",
            pipeline: "p",
            target: "local",
            at: "t",
        });
        let pid = std::process::id().to_string();
        assert_eq!(
            lock_holder(state.path(), "r1").as_deref(),
            Some(pid.as_str())
        );
        match Recorder::create(state.path(), "r1", "", 1) {
            Err(RecordsError::Busy { pid: p, .. }) => assert_eq!(p, pid),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a second recorder of a held run was opened"),
        }
        assert_eq!(
            read_run(state.path(), "r1").unwrap().state,
            RunState::Running { pid }
        );
        // A fresh run never reuses another run's directory.
        assert!(matches!(
            Recorder::create(state.path(), "r1", "", 0),
            Err(RecordsError::Exists { .. })
        ));
        drop(first);
        assert_eq!(lock_holder(state.path(), "r1"), None);
        let run = read_run(state.path(), "r1").unwrap();
        assert_eq!(run.state, RunState::Interrupted);
        assert_eq!(run.report.outcome, crate::report::RunOutcome::Interrupted);
        assert_eq!(run.report.interruption.unwrap().last_event, "run started");
    }
}
