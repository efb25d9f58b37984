//! What a person (or a CI log) sees while a run goes: live progress on a
//! terminal, line-oriented log events otherwise, and the end-of-run summary.
//!
//! Two [`Observer`]s:
//!
//! * [`PlainObserver`] turns every observation into a `tracing` event, so the
//!   subscriber set up by the CLI decides the format (`--log-format text`
//!   prints lines, `json` prints structured records with `stage`, `attempt`,
//!   `status` and `duration_ms` fields) and the level filter (`-q`, `-v`).
//!   Each message also names its stage in brackets (`[health] …`), so text
//!   output stays readable when tracing fields are hidden.
//! * [`TtyObserver`] draws one live line per running stage with `indicatif`,
//!   a `3/12 stages` line at the bottom, and prints a final line per stage
//!   above them.
//!
//! # TTY mode and tracing
//!
//! `indicatif` redraws the bottom of the terminal; anything else written to
//! stderr while bars are shown would be overwritten or would leave stale
//! bars behind. The CLI therefore installs [`tracing_writer`] as the tracing
//! subscriber's writer: while a [`TtyObserver`] is active, each formatted
//! event is written inside `MultiProgress::suspend` (bars cleared, line
//! written, bars redrawn); otherwise it goes straight to stderr. In TTY mode
//! the CLI also raises the default level of our crate to `warn` (unless
//! `-v`), since the bars already show what the info lines would say.
//!
//! All plugin text reaching an observer is already neutralised (see
//! [`crate::report::neutralize`]); colour is only ever applied to our own
//! symbols, only on a terminal, and never when `NO_COLOR` is set.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::observer::Observer;
use crate::report::{LoadSource, LogLevel, RunReport, StageReport, StageStatus, Verdict};

/// How progress is shown (`--progress`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// Live progress when stderr is a terminal (and `TERM` is not `dumb`
    /// and `CI` is unset); plain lines otherwise.
    Auto,
    /// Always live progress on stderr.
    Tty,
    /// Always plain log lines.
    Plain,
}

impl ProgressMode {
    /// Whether this mode means live terminal progress in the current
    /// environment (stderr, `TERM`, `CI`).
    pub fn is_tty(self) -> bool {
        let term = std::env::var("TERM").ok();
        resolve(
            self,
            std::io::stderr().is_terminal(),
            term.as_deref(),
            std::env::var_os("CI").is_some(),
        )
    }
}

/// The decision behind [`ProgressMode::is_tty`], from explicit inputs.
fn resolve(mode: ProgressMode, is_tty: bool, term: Option<&str>, ci: bool) -> bool {
    match mode {
        ProgressMode::Tty => true,
        ProgressMode::Plain => false,
        ProgressMode::Auto => is_tty && term != Some("dumb") && !ci,
    }
}

/// `-q` / `-v` as given on the command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verbosity {
    pub quiet: bool,
    pub verbose: u8,
}

/// The observer for `mode` in the current environment.
pub fn observer(mode: ProgressMode, verbosity: Verbosity) -> Arc<dyn Observer> {
    if mode.is_tty() {
        Arc::new(TtyObserver::new(verbosity))
    } else {
        Arc::new(PlainObserver::new(verbosity))
    }
}

/// How many trailing lines of a failed stage's stdout and of its stderr are
/// shown when it finishes.
const OUTPUT_TAIL: usize = 20;
/// How many lines of a multi-line reason are shown.
const REASON_LINES: usize = 6;

// ---------------------------------------------------------------------------
// Plain: tracing events
// ---------------------------------------------------------------------------

/// Emits a tracing event at a level chosen at run time.
macro_rules! event_at {
    ($level:expr, $($rest:tt)+) => {
        match $level {
            LogLevel::Trace => tracing::trace!($($rest)+),
            LogLevel::Debug => tracing::debug!($($rest)+),
            LogLevel::Info => tracing::info!($($rest)+),
            LogLevel::Warn => tracing::warn!($($rest)+),
            LogLevel::Error => tracing::error!($($rest)+),
        }
    };
}

/// Line-oriented observer: every observation becomes a `tracing` event
/// (target `valero::terminal`) whose message starts with `[stage]`.
///
/// Levels: stage start and passed/skipped at INFO, inconclusive/cancelled
/// at WARN, failed at ERROR (followed by the tail of its last attempt's
/// output at WARN, unless DEBUG is enabled and the output was already shown
/// line by line); plugin log lines at their own level; progress and output
/// lines at DEBUG. Quiet: only failed and inconclusive stages.
pub struct PlainObserver {
    verbosity: Verbosity,
}

impl PlainObserver {
    pub fn new(verbosity: Verbosity) -> Self {
        PlainObserver { verbosity }
    }
}

impl Observer for PlainObserver {
    fn run_started(&self, run_id: &str, pipeline: &str, target: &str, stages: &[String]) {
        if self.verbosity.quiet {
            return;
        }
        tracing::info!(
            run_id,
            pipeline,
            target,
            stages = stages.len(),
            "run {run_id} of `{pipeline}` on `{target}`: {} stages",
            stages.len()
        );
    }

    fn stage_started(&self, stage: &str, attempt: u32) {
        if self.verbosity.quiet {
            return;
        }
        if attempt <= 1 {
            tracing::info!(stage = %stage, attempt, "[{stage}] started");
        } else {
            tracing::info!(stage = %stage, attempt, "[{stage}] retrying (attempt {attempt})");
        }
    }

    fn stage_log(&self, stage: &str, level: LogLevel, message: &str) {
        if self.verbosity.quiet {
            return;
        }
        let message = prefix_lines(stage, message);
        event_at!(level, stage = %stage, "{message}");
    }

    fn stage_progress(&self, stage: &str, done: u64, total: u64, label: &str) {
        if self.verbosity.quiet {
            return;
        }
        if total > 0 {
            tracing::debug!(stage = %stage, done, total, "[{stage}] {label} {done}/{total}");
        } else {
            tracing::debug!(stage = %stage, done, "[{stage}] {label} {done}");
        }
    }

    fn stage_output(&self, stage: &str, stream: &str, text: &str) {
        if self.verbosity.quiet {
            return;
        }
        for line in text.lines() {
            tracing::debug!(stage = %stage, stream, "[{stage}] | {line}");
        }
    }

    fn stage_finished(&self, report: &StageReport) {
        let name = report.name.as_str();
        let status = report.status.as_str();
        let quiet = self.verbosity.quiet;
        if quiet
            && !matches!(
                report.status,
                StageStatus::Failed | StageStatus::Inconclusive
            )
        {
            return;
        }
        let level = match report.status {
            StageStatus::Passed | StageStatus::Skipped => LogLevel::Info,
            StageStatus::Inconclusive | StageStatus::Cancelled => LogLevel::Warn,
            StageStatus::Failed => LogLevel::Error,
        };
        let attempts = report.attempts.len() as u32;
        let mut reason = report.reason.as_deref().unwrap_or("").lines();
        let first = reason.next().map(|r| format!(": {r}")).unwrap_or_default();
        let tries = if attempts > 1 {
            format!(" after {attempts} attempts")
        } else {
            String::new()
        };
        match stage_ms(report) {
            Some(ms) => {
                let d = human_duration(ms);
                event_at!(level, stage = %name, status, attempt = attempts, duration_ms = ms.round() as u64,
                    "[{name}] {status} in {d}{tries}{first}");
            }
            None => {
                event_at!(level, stage = %name, status, attempt = attempts, "[{name}] {status}{tries}{first}");
            }
        }
        for line in reason.take(REASON_LINES - 1) {
            event_at!(level, stage = %name, status, "[{name}]   {line}");
        }

        // A failed stage's output explains it in CI logs; skip it when it
        // was already printed line by line at DEBUG.
        if report.status == StageStatus::Failed
            && !tracing::enabled!(target: "valero::terminal", tracing::Level::DEBUG)
            && let Some(last) = report.attempts.last()
        {
            for (stream, out) in [("stdout", &last.stdout), ("stderr", &last.stderr)] {
                let (skipped, lines) = tail(&out.text, OUTPUT_TAIL);
                if lines.is_empty() {
                    continue;
                }
                if skipped > 0 {
                    tracing::warn!(stage = %name, stream, "[{name}] last {} lines of {stream} ({skipped} more before):", lines.len());
                } else {
                    tracing::warn!(stage = %name, stream, "[{name}] {stream}:");
                }
                for line in lines {
                    tracing::warn!(stage = %name, stream, "[{name}] | {line}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// TTY: indicatif
// ---------------------------------------------------------------------------

/// The bars of the active [`TtyObserver`], for [`tracing_writer`].
/// Tagged with the observer's id, so an observer only unregisters itself.
static ACTIVE: Mutex<Option<(u64, MultiProgress)>> = Mutex::new(None);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A writer for the tracing subscriber (`.with_writer(terminal::tracing_writer)`):
/// stderr, but while a [`TtyObserver`] shows bars each event is written
/// with the bars suspended, so log lines land above them cleanly.
pub fn tracing_writer() -> SuspendingStderr {
    SuspendingStderr { buf: Vec::new() }
}

/// See [`tracing_writer`]. Buffers one formatted event; writes it on flush
/// or drop.
pub struct SuspendingStderr {
    buf: Vec<u8>,
}

impl Write for SuspendingStderr {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        let mp = lock(&ACTIVE).as_ref().map(|(_, mp)| mp.clone());
        let write = || {
            let mut err = std::io::stderr().lock();
            err.write_all(&buf).and_then(|()| err.flush())
        };
        match mp {
            Some(mp) => mp.suspend(write),
            None => write(),
        }
    }
}

impl Drop for SuspendingStderr {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Live terminal progress: one line per running stage, a final line per
/// finished stage printed above them, an overall `n/m stages` line at the
/// bottom. Plugin WARN/ERROR lines are printed above the bars (others only
/// update the stage's line; with `-v` all plugin lines are printed).
/// Quiet: no bars, only failed/inconclusive stages with their reason.
pub struct TtyObserver {
    id: u64,
    mp: MultiProgress,
    overall: ProgressBar,
    verbosity: Verbosity,
    color: bool,
    state: Mutex<TtyState>,
}

#[derive(Default)]
struct TtyState {
    /// Width of the stage-name column.
    width: usize,
    bars: HashMap<String, StageLine>,
}

struct StageLine {
    bar: ProgressBar,
    attempt: u32,
    /// (done, total, label) of the latest progress report.
    progress: Option<(u64, u64, String)>,
    last_log: Option<String>,
    has_bar: bool,
}

const TICK: &[&str] = &["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏", " "];
/// Longest plugin text kept for a live line (the terminal width truncates
/// further).
const LIVE_TEXT_MAX: usize = 200;

impl TtyObserver {
    pub fn new(verbosity: Verbosity) -> Self {
        let target = if verbosity.quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let mp = MultiProgress::with_draw_target(target);
        let overall = mp.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template("{pos}/{len} stages  {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        if !verbosity.quiet {
            *lock(&ACTIVE) = Some((id, mp.clone()));
        }
        TtyObserver {
            id,
            mp,
            overall,
            verbosity,
            color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            state: Mutex::new(TtyState {
                width: 8,
                ..TtyState::default()
            }),
        }
    }

    /// Prints a line above the bars (or plainly, when quiet: no bars).
    fn println(&self, line: &str) {
        if self.verbosity.quiet {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{line}");
        } else {
            let _ = self.mp.println(line);
        }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    /// Stops routing tracing output through our bars (if still ours).
    fn deactivate(&self) {
        let mut active = lock(&ACTIVE);
        if active.as_ref().is_some_and(|(id, _)| *id == self.id) {
            *active = None;
        }
    }

    fn spinner_style(with_bar: bool) -> ProgressStyle {
        let template = if with_bar {
            "{spinner:.cyan} {prefix}  {bar:20.cyan/blue} {wide_msg}"
        } else {
            "{spinner:.cyan} {prefix}  {wide_msg}"
        };
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
            .tick_strings(TICK)
            .progress_chars("━╸─")
    }

    fn refresh(line: &StageLine) {
        let mut msg = format!("attempt {}", line.attempt);
        if let Some((done, total, label)) = &line.progress {
            let label = clip(label, LIVE_TEXT_MAX);
            if *total > 0 {
                msg.push_str(&format!("  {label}… {done}/{total}"));
            } else {
                msg.push_str(&format!("  {label}… {done}"));
            }
        }
        if let Some(log) = &line.last_log {
            msg.push_str("  ");
            msg.push_str(log);
        }
        line.bar.set_message(msg);
    }
}

impl Drop for TtyObserver {
    fn drop(&mut self) {
        self.deactivate();
    }
}

impl Observer for TtyObserver {
    fn run_started(&self, _run_id: &str, _pipeline: &str, _target: &str, stages: &[String]) {
        let width = stages
            .iter()
            .map(|s| s.chars().count())
            .max()
            .unwrap_or(8)
            .clamp(4, 24);
        lock(&self.state).width = width;
        self.overall.set_length(stages.len() as u64);
        self.overall.reset_elapsed();
        if !self.verbosity.quiet {
            self.overall.enable_steady_tick(Duration::from_millis(500));
        }
    }

    fn stage_started(&self, stage: &str, attempt: u32) {
        if self.verbosity.quiet {
            return;
        }
        let mut state = lock(&self.state);
        let width = state.width;
        if let Some(line) = state.bars.get_mut(stage) {
            // A retry: same line, fresh progress.
            line.attempt = attempt;
            line.progress = None;
            line.last_log = None;
            if line.has_bar {
                line.has_bar = false;
                line.bar.set_style(Self::spinner_style(false));
            }
            Self::refresh(line);
            return;
        }
        let bar = self
            .mp
            .insert_before(&self.overall, ProgressBar::new_spinner());
        bar.set_style(Self::spinner_style(false));
        bar.set_prefix(format!("{:<width$}", clip(stage, width)));
        bar.enable_steady_tick(Duration::from_millis(100));
        let line = StageLine {
            bar,
            attempt,
            progress: None,
            last_log: None,
            has_bar: false,
        };
        Self::refresh(&line);
        state.bars.insert(stage.to_string(), line);
    }

    fn stage_log(&self, stage: &str, level: LogLevel, message: &str) {
        if self.verbosity.quiet {
            return;
        }
        let loud = matches!(level, LogLevel::Warn | LogLevel::Error);
        let shown = match level {
            LogLevel::Trace => self.verbosity.verbose >= 2,
            LogLevel::Debug => self.verbosity.verbose >= 1,
            LogLevel::Info => true,
            LogLevel::Warn | LogLevel::Error => true,
        };
        if !shown {
            return;
        }
        if loud || self.verbosity.verbose >= 1 {
            let tag = match level {
                LogLevel::Error => self.paint("31", "error"),
                LogLevel::Warn => self.paint("33", "warn"),
                LogLevel::Info => "info".to_string(),
                LogLevel::Debug => "debug".to_string(),
                LogLevel::Trace => "trace".to_string(),
            };
            self.println(&format!("{tag} {}", prefix_lines(stage, message)));
        }
        let mut state = lock(&self.state);
        if let Some(line) = state.bars.get_mut(stage) {
            let first = message.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            line.last_log = Some(clip(first.trim(), LIVE_TEXT_MAX));
            Self::refresh(line);
        }
    }

    fn stage_progress(&self, stage: &str, done: u64, total: u64, label: &str) {
        if self.verbosity.quiet {
            return;
        }
        let mut state = lock(&self.state);
        let Some(line) = state.bars.get_mut(stage) else {
            return;
        };
        if total > 0 {
            if !line.has_bar {
                line.has_bar = true;
                line.bar.set_style(Self::spinner_style(true));
            }
            line.bar.set_length(total);
            line.bar.set_position(done.min(total));
        } else if line.has_bar {
            line.has_bar = false;
            line.bar.set_style(Self::spinner_style(false));
        }
        let label = label.lines().next().unwrap_or("").trim();
        let label = if label.is_empty() { "progress" } else { label };
        line.progress = Some((done, total, label.to_string()));
        Self::refresh(line);
    }

    fn stage_output(&self, stage: &str, stream: &str, text: &str) {
        // Output is shown live only with -v (as in plain mode).
        if self.verbosity.quiet || self.verbosity.verbose == 0 {
            return;
        }
        for line in text.lines() {
            self.println(&format!("[{stage}] {stream} | {line}"));
        }
    }

    fn stage_finished(&self, report: &StageReport) {
        let name = report.name.as_str();
        let line = lock(&self.state).bars.remove(name);
        if let Some(line) = &line {
            line.bar.finish_and_clear();
            self.mp.remove(&line.bar);
        }
        self.overall.inc(1);
        if self.verbosity.quiet
            && !matches!(
                report.status,
                StageStatus::Failed | StageStatus::Inconclusive
            )
        {
            return;
        }
        let mut reason = report.reason.as_deref().unwrap_or("").lines();
        let first = reason.next().unwrap_or("");
        let time = stage_ms(report)
            .map(|ms| format!("  {}", human_duration(ms)))
            .unwrap_or_default();
        let tries = if report.attempts.len() > 1 {
            format!("  ({} attempts)", report.attempts.len())
        } else {
            String::new()
        };
        let width = lock(&self.state).width;
        let padded = format!("{name:<width$}");
        let text = match report.status {
            StageStatus::Passed => format!("{} {padded}{time}{tries}", self.paint("32", "✔")),
            StageStatus::Failed => {
                format!("{} {padded}{time}{tries}  {first}", self.paint("31", "✘"))
            }
            StageStatus::Inconclusive => format!(
                "{} {padded}{time}{tries}  inconclusive: {first}",
                self.paint("33", "?")
            ),
            StageStatus::Skipped if first.is_empty() => {
                format!("{} {name} skipped", self.paint("2", "-"))
            }
            StageStatus::Skipped => format!("{} {name} skipped: {first}", self.paint("2", "-")),
            StageStatus::Cancelled => format!(
                "{} {name} cancelled{}",
                self.paint("33", "■"),
                if first.is_empty() {
                    String::new()
                } else {
                    format!(": {first}")
                }
            ),
        };
        self.println(text.trim_end());
        if self.verbosity.verbose >= 1 && report.status == StageStatus::Failed {
            for rest in reason.take(REASON_LINES - 1) {
                self.println(&format!("    {rest}"));
            }
        }
    }

    fn run_finished(&self, _report: &RunReport) {
        let bars: Vec<StageLine> = lock(&self.state).bars.drain().map(|(_, l)| l).collect();
        for line in bars {
            line.bar.finish_and_clear();
            self.mp.remove(&line.bar);
        }
        self.overall.finish_and_clear();
        let _ = self.mp.clear();
        self.deactivate();
    }
}

// ---------------------------------------------------------------------------
// Summary
// ---------------------------------------------------------------------------

/// The end-of-run summary (printed to stderr by the CLI): the outcome, then
/// one aligned row per stage with its time, compile-cache use and attempts,
/// followed by its reason and any further non-passing checks.
pub fn summary(report: &RunReport) -> String {
    let outcome = report.outcome.as_str();
    let resumed = match report.resumed {
        0 => String::new(),
        1 => " (resumed)".to_string(),
        n => format!(" (resumed {n} times)"),
    };
    let mut out = format!(
        "\nrun {} of `{}` on `{}`{resumed}: {outcome} in {}\n",
        report.run_id,
        report.pipeline,
        report.target,
        human_duration(report.duration_ms as f64)
    );
    if let Some(i) = &report.interruption {
        let how = match i.cause {
            crate::report::InterruptCause::Signal => "stopped by a signal",
            crate::report::InterruptCause::Lost => {
                "the runner stopped without finishing (killed, crashed or the machine was lost)"
            }
        };
        out.push_str(&format!(
            "  {how}; last event: {}\n  continue it with `valero run --resume {}`\n",
            i.last_event, report.run_id
        ));
    }
    let width = report
        .stages
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(4, 32);
    for s in &report.stages {
        let mark = match s.status {
            StageStatus::Passed => "ok  ",
            StageStatus::Failed => "FAIL",
            StageStatus::Inconclusive => "??  ",
            StageStatus::Skipped => "skip",
            StageStatus::Cancelled => "stop",
        };
        let time = match stage_ms(s) {
            Some(ms) => format!("{ms:>9.1} ms"),
            None => format!("{:>9}   ", "-"),
        };
        let mut notes = Vec::new();
        if s.resume.as_ref().is_some_and(|r| r.reused) {
            notes.push("reused".to_string());
        }
        if let Some(load) = &s.load {
            notes.push(match load.source {
                LoadSource::Cache => "cached".to_string(),
                LoadSource::Compiled => "compiled".to_string(),
            });
        }
        if s.attempts.len() > 1 {
            notes.push(format!("{} attempts", s.attempts.len()));
        }
        if s.continue_on_error && s.status != StageStatus::Passed {
            notes.push("continue_on_error".to_string());
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!("  [{}]", notes.join(", "))
        };
        let row = format!("  {mark} {:<width$} {time}{notes}", s.name);
        out.push_str(row.trim_end());
        out.push('\n');
        if let Some(reason) = &s.reason {
            for line in reason.lines().take(REASON_LINES) {
                out.push_str(&format!("       {line}\n"));
            }
        }
        // The first failing check is already part of the reason.
        for c in s
            .checks
            .iter()
            .filter(|c| c.verdict != Verdict::Pass)
            .skip(1)
        {
            out.push_str(&format!(
                "       check `{}` {}: {}\n",
                c.name, c.verdict, c.message
            ));
        }
    }
    if !report.excluded.is_empty() {
        out.push_str("  not in this run:\n");
        for e in &report.excluded {
            out.push_str(&format!("       {:<width$} {}\n", e.stage, e.reason));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Wall time of a stage, from its run-relative offsets.
fn stage_ms(s: &StageReport) -> Option<f64> {
    match (s.start_ms, s.end_ms) {
        (Some(a), Some(b)) => Some((b - a).max(0.0)),
        _ => None,
    }
}

/// `0.4s`, `12.3s`, `2m05s`.
fn human_duration(ms: f64) -> String {
    let secs = ms / 1000.0;
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = secs.round() as u64;
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

/// `[stage] ` before every line of `text` (one event, every line visibly
/// attributed).
fn prefix_lines(stage: &str, text: &str) -> String {
    let mut out = String::with_capacity(text.len() + stage.len() + 3);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push('[');
        out.push_str(stage);
        out.push_str("] ");
        out.push_str(line);
    }
    out
}

/// The last `n` lines of `text`, and how many lines came before them.
fn tail(text: &str, n: usize) -> (usize, Vec<&str>) {
    let lines: Vec<&str> = text.trim_end_matches('\n').lines().collect();
    if lines.len() == 1 && lines[0].is_empty() {
        return (0, Vec::new());
    }
    let skip = lines.len().saturating_sub(n);
    (skip, lines[skip..].to_vec())
}

/// At most `max` characters of `s`, with `…` when cut.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{AttemptReport, CheckReport, LoadReport, OutputReport, RunOutcome};

    #[test]
    fn auto_resolves_from_terminal_term_and_ci() {
        use ProgressMode::*;
        assert!(resolve(Auto, true, Some("xterm-256color"), false));
        assert!(resolve(Auto, true, None, false));
        assert!(!resolve(Auto, false, Some("xterm"), false));
        assert!(!resolve(Auto, true, Some("dumb"), false));
        assert!(!resolve(Auto, true, Some("xterm"), true));
        assert!(resolve(Tty, false, Some("dumb"), true));
        assert!(!resolve(Plain, true, Some("xterm"), false));
    }

    fn attempt(n: u32, stdout: &str, stderr: &str) -> AttemptReport {
        AttemptReport {
            attempt: n,
            start_ms: 0.0,
            end_ms: 1.0,
            outcome: crate::report::AttemptEnd::Returned,
            verdict: None,
            message: String::new(),
            stdout: OutputReport {
                bytes: stdout.len() as u64,
                dropped: 0,
                text: stdout.into(),
            },
            stderr: OutputReport {
                bytes: stderr.len() as u64,
                dropped: 0,
                text: stderr.into(),
            },
            logs: Vec::new(),
            logs_dropped: 0,
        }
    }

    fn stage(name: &str, status: StageStatus) -> StageReport {
        StageReport::not_run(name, "builtin:test".into(), status, None)
    }

    fn report() -> RunReport {
        let mut health = stage("health", StageStatus::Passed);
        health.start_ms = Some(10.0);
        health.end_ms = Some(1210.5);
        health.load = Some(LoadReport {
            source: LoadSource::Cache,
            ms: 1.0,
        });
        health.attempts = vec![attempt(1, "", "")];
        health.resume = Some(crate::report::ResumeNote {
            reused: true,
            why: "unchanged".into(),
        });

        let mut deploy = stage("deploy-service", StageStatus::Failed);
        deploy.start_ms = Some(1210.5);
        deploy.end_ms = Some(1620.5);
        deploy.reason = Some("check `rollout` failed: 2 pods crashlooping\nsee pod logs".into());
        deploy.attempts = vec![attempt(1, "", ""), attempt(2, "", "")];
        let check = |name: &str, verdict: Verdict, message: &str| CheckReport {
            name: name.into(),
            verdict,
            message: message.into(),
            duration_ms: 1,
            evidence: Vec::new(),
            measurements: Vec::new(),
        };
        deploy.checks = vec![
            check("image", Verdict::Pass, "ok"),
            check("rollout", Verdict::Fail, "2 pods crashlooping"),
            check("quota", Verdict::Inconclusive, "no metrics"),
        ];

        let mut verify = stage("verify", StageStatus::Skipped);
        verify.reason = Some("needs `deploy-service`, which failed".into());

        RunReport {
            schema_version: crate::report::SCHEMA_VERSION,
            run_id: "r-123".into(),
            pipeline: "shop".into(),
            pipeline_file: "pipeline.toml".into(),
            target: "staging".into(),
            started_at: "2025-01-01T00:00:00Z".into(),
            duration_ms: 1650,
            outcome: RunOutcome::Failed,
            resumed: 1,
            interruption: None,
            stages: vec![health, deploy, verify],
            excluded: vec![crate::report::Excluded {
                stage: "smoke".into(),
                reason: "--skip".into(),
            }],
        }
    }

    #[test]
    fn summary_lists_stages_aligned_with_reasons() {
        let s = summary(&report());
        assert!(
            s.starts_with("\nrun r-123 of `shop` on `staging` (resumed): failed in 1.6s\n"),
            "{s}"
        );
        assert!(
            s.contains("\n  ok   health            1200.5 ms  [reused, cached]\n"),
            "{s}"
        );
        assert!(
            s.contains("\n  FAIL deploy-service     410.0 ms  [2 attempts]\n"),
            "{s}"
        );
        assert!(
            s.contains(
                "\n       check `rollout` failed: 2 pods crashlooping\n       see pod logs\n"
            ),
            "{s}"
        );
        // The first failing check is in the reason; later ones are listed.
        assert!(
            s.contains("\n       check `quota` inconclusive: no metrics\n"),
            "{s}"
        );
        assert!(!s.contains("check `rollout` fail:"), "{s}");
        assert!(
            s.contains(
                "\n  skip verify                 -\n       needs `deploy-service`, which failed\n"
            ),
            "{s}"
        );
    }

    /// A `MakeWriter` into a shared buffer.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture(max: tracing::Level, f: impl FnOnce()) -> String {
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(max)
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        String::from_utf8(lock(&buf.0).clone()).unwrap()
    }

    fn failed_stage() -> StageReport {
        let stdout: String = (1..=25).map(|i| format!("out {i}\n")).collect();
        let mut s = stage("deploy", StageStatus::Failed);
        s.start_ms = Some(0.0);
        s.end_ms = Some(400.0);
        s.reason = Some("exit status 3".into());
        s.attempts = vec![
            attempt(1, "first attempt output\n", ""),
            attempt(2, &stdout, "fatal: no route to host\n"),
        ];
        s
    }

    #[test]
    fn plain_observer_shows_failed_stage_output_tail() {
        let obs = PlainObserver::new(Verbosity::default());
        let out = capture(tracing::Level::INFO, || {
            obs.stage_started("deploy", 2);
            obs.stage_log("deploy", LogLevel::Info, "rolling out\nstep two");
            obs.stage_output("deploy", "stdout", "hidden at info");
            obs.stage_finished(&failed_stage());
        });
        assert!(out.contains("[deploy] retrying (attempt 2)"), "{out}");
        assert!(
            out.contains("[deploy] rolling out\n[deploy] step two"),
            "{out}"
        );
        assert!(!out.contains("hidden at info"), "{out}");
        assert!(
            out.contains("ERROR [deploy] failed in 0.4s after 2 attempts: exit status 3"),
            "{out}"
        );
        assert!(out.contains("status=\"failed\""), "{out}");
        assert!(out.contains("duration_ms=400"), "{out}");
        // Last 20 of 25 stdout lines, from the last attempt only.
        assert!(
            out.contains("WARN [deploy] last 20 lines of stdout (5 more before):"),
            "{out}"
        );
        assert!(out.contains("WARN [deploy] | out 6 "), "{out}");
        assert!(out.contains("WARN [deploy] | out 25 "), "{out}");
        assert!(!out.contains("| out 5 "), "{out}");
        assert!(!out.contains("first attempt output"), "{out}");
        assert!(out.contains("WARN [deploy] stderr:"), "{out}");
        assert!(
            out.contains("WARN [deploy] | fatal: no route to host"),
            "{out}"
        );
    }

    #[test]
    fn plain_observer_levels_and_quiet() {
        let mut passed = stage("health", StageStatus::Passed);
        passed.attempts = vec![attempt(1, "fine\n", "")];
        let obs = PlainObserver::new(Verbosity::default());
        let out = capture(tracing::Level::DEBUG, || {
            obs.stage_progress("health", 3, 14, "probing");
            obs.stage_output("health", "stdout", "line a\nline b");
            obs.stage_finished(&passed);
            obs.stage_finished(&failed_stage());
        });
        assert!(out.contains("DEBUG [health] probing 3/14"), "{out}");
        assert!(out.contains("DEBUG [health] | line b"), "{out}");
        assert!(out.contains("INFO [health] passed"), "{out}");
        // At DEBUG the output was already shown line by line: no tail.
        assert!(!out.contains("WARN [deploy]"), "{out}");

        let quiet = PlainObserver::new(Verbosity {
            quiet: true,
            verbose: 0,
        });
        let out = capture(tracing::Level::TRACE, || {
            quiet.stage_started("health", 1);
            quiet.stage_log("health", LogLevel::Warn, "slow");
            quiet.stage_finished(&passed);
            quiet.stage_finished(&failed_stage());
        });
        assert!(!out.contains("[health]"), "{out}");
        assert!(out.contains("[deploy] failed in 0.4s"), "{out}");
    }

    #[test]
    fn tty_observer_lifecycle_does_not_panic_and_unregisters() {
        // stderr is not a terminal under `cargo test`: indicatif draws nothing.
        let obs = TtyObserver::new(Verbosity::default());
        let stages = [
            "health".to_string(),
            "deploy".to_string(),
            "verify".to_string(),
        ];
        obs.run_started("r-1", "shop", "staging", &stages);
        obs.stage_started("health", 1);
        obs.stage_progress("health", 3, 14, "probing");
        obs.stage_log("health", LogLevel::Info, "probing 7 services");
        obs.stage_progress("health", 5, 0, "waiting");
        obs.stage_started("health", 2);
        let mut passed = stage("health", StageStatus::Passed);
        passed.start_ms = Some(0.0);
        passed.end_ms = Some(1200.0);
        obs.stage_finished(&passed);
        obs.stage_started("deploy", 1);
        obs.stage_log("deploy", LogLevel::Error, "boom");
        obs.stage_finished(&failed_stage());
        obs.stage_finished(&stage("verify", StageStatus::Skipped));
        assert_eq!(obs.overall.position(), 3);
        assert!(lock(&obs.state).bars.is_empty());
        obs.run_finished(&report());
        assert!(lock(&ACTIVE).as_ref().is_none_or(|(id, _)| *id != obs.id));
    }

    #[test]
    fn helpers() {
        assert_eq!(human_duration(400.0), "0.4s");
        assert_eq!(human_duration(125_000.0), "2m05s");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
        assert_eq!(tail("", 20), (0, Vec::<&str>::new()));
        assert_eq!(tail("a\nb\nc\n", 2), (1, vec!["b", "c"]));
    }
}
