//! `valero:stage/log`: leveled log lines and progress from a plugin.
//!
//! Lines are shown and kept for the run records while they stay within the
//! stage's output limit; past it they are counted, and a marker says how
//! many were not shown.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::host::bindings::valero::stage::log::{Host, Level};
use crate::observer::StageIo;
use crate::report::{LogLevel, LogLine, neutralize};
use crate::secrets::HeldLines;

impl From<Level> for LogLevel {
    fn from(l: Level) -> Self {
        match l {
            Level::Trace => LogLevel::Trace,
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        }
    }
}

/// What each log line counts towards the output limit besides its text:
/// its framing on a terminal, in a CI log and in the records (level, time,
/// stage name), so a flood of empty lines is bounded too.
pub const LINE_BYTES: usize = 64;
/// Progress is shown at most this often per stage; the rest is not shown
/// (a progress label is a live status, not a record).
pub const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(100);
/// Longest progress label shown (bytes).
pub const PROGRESS_LABEL_MAX: usize = 256;

/// The log stream of one attempt, shared by the plugin's `log` calls and the
/// host's lines on its behalf (e.g. build output); survives the store when
/// an attempt is cancelled or times out.
///
/// Each line is neutralised and masked (also across lines, see
/// [`HeldLines`]), then shown and kept while the attempt's lines stay within
/// the stage's output limit (text plus [`LINE_BYTES`] per line). Past it,
/// lines are counted, not shown or kept, and [`LogBuffer::finish`] says how
/// many were left out.
#[derive(Debug, Clone)]
pub struct LogBuffer {
    inner: Arc<Mutex<LogInner>>,
    cap_bytes: usize,
}

#[derive(Debug, Default)]
struct LogInner {
    held: HeldLines<(f64, LogLevel)>,
    lines: Vec<LogLine>,
    bytes: usize,
    /// The limit was reached: later lines are only counted.
    full: bool,
    dropped: u64,
    dropped_bytes: u64,
    last_progress: Option<Instant>,
}

impl LogBuffer {
    pub fn new(cap_bytes: usize) -> Self {
        LogBuffer {
            inner: Arc::default(),
            cap_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One line of the stream (see the type's docs).
    fn line(&self, io: &StageIo, stage: &str, at_ms: f64, level: LogLevel, message: &str) {
        let mut inner = self.lock();
        if inner.full && inner.held.is_empty() {
            // Nothing held could pair with it, and it would not be shown:
            // count it without the cost of neutralising and masking.
            inner.dropped += 1;
            inner.dropped_bytes += message.len() as u64;
            return;
        }
        let ready = inner
            .held
            .push(&io.masker, (at_ms, level), neutralize(message));
        for ((at_ms, level), message) in ready {
            inner.show(io, stage, self.cap_bytes, at_ms, level, message);
        }
    }

    /// A progress report: neutralised, masked, clipped and shown at most
    /// every [`PROGRESS_EVERY`].
    fn progress(&self, io: &StageIo, stage: &str, done: u64, total: u64, label: &str) {
        self.progress_at(Instant::now(), io, stage, done, total, label);
    }

    fn progress_at(
        &self,
        now: Instant,
        io: &StageIo,
        stage: &str,
        done: u64,
        total: u64,
        label: &str,
    ) {
        {
            let mut inner = self.lock();
            if inner
                .last_progress
                .is_some_and(|last| now.duration_since(last) < PROGRESS_EVERY)
            {
                return;
            }
            inner.last_progress = Some(now);
        }
        let mut end = label.len().min(PROGRESS_LABEL_MAX);
        while !label.is_char_boundary(end) {
            end -= 1;
        }
        let label = io.masker.mask(&neutralize(&label[..end])).into_owned();
        io.observer.stage_progress(stage, done, total, &label);
    }

    /// Ends the attempt's stream: shows the lines held back for masking,
    /// says how many lines were not shown, and returns the kept lines and
    /// how many were dropped over the limit.
    pub fn finish(&self, io: &StageIo, stage: &str) -> (Vec<LogLine>, u64) {
        let mut inner = self.lock();
        for ((at_ms, level), message) in inner.held.finish(&io.masker) {
            inner.show(io, stage, self.cap_bytes, at_ms, level, message);
        }
        if inner.dropped > 0 {
            io.observer.stage_log(
                stage,
                LogLevel::Warn,
                &format!(
                    "… {} log lines ({} bytes) not shown: over the stage's output limit of {} bytes (limits.output, counting {LINE_BYTES} bytes per line)",
                    inner.dropped, inner.dropped_bytes, self.cap_bytes
                ),
            );
        }
        (std::mem::take(&mut inner.lines), inner.dropped)
    }
}

impl LogInner {
    /// Shows and keeps a ready (neutralised, masked) line, or counts it
    /// once the limit is reached.
    fn show(
        &mut self,
        io: &StageIo,
        stage: &str,
        cap: usize,
        at_ms: f64,
        level: LogLevel,
        message: String,
    ) {
        let cost = message.len() + LINE_BYTES;
        if self.full || self.bytes + cost > cap {
            self.full = true;
            self.dropped += 1;
            self.dropped_bytes += message.len() as u64;
            return;
        }
        self.bytes += cost;
        io.observer.stage_log(stage, level, &message);
        self.lines.push(LogLine {
            at_ms,
            level,
            message,
        });
    }
}

/// The log of one attempt: the plugin's lines (`valero:stage/log`) and the
/// host's on its behalf (e.g. build output), neutralised, masked, shown and
/// kept (see [`LogBuffer`]).
#[derive(Clone)]
pub struct StageLog {
    pub io: StageIo,
    pub logs: LogBuffer,
    pub stage: String,
    /// When the attempt started: lines carry their offset from it.
    pub started: Instant,
}

impl StageLog {
    pub fn line(&self, level: LogLevel, message: &str) {
        self.logs.line(
            &self.io,
            &self.stage,
            crate::report::ms(self.started.elapsed()),
            level,
            message,
        );
    }
}

impl Host for StageLog {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        self.line(LogLevel::from(level), &message);
        Ok(())
    }

    async fn progress(&mut self, done: u64, total: u64, label: String) -> wasmtime::Result<()> {
        self.logs
            .progress(&self.io, &self.stage, done, total, &label);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::observer::Observer;
    use crate::secrets::Masker;

    /// Records what would be shown.
    #[derive(Default)]
    struct Shown(Mutex<Vec<String>>);

    impl Observer for Shown {
        fn stage_log(&self, stage: &str, _: LogLevel, message: &str) {
            self.0.lock().unwrap().push(format!("[{stage}] {message}"));
        }
        fn stage_progress(&self, stage: &str, done: u64, _: u64, label: &str) {
            self.0
                .lock()
                .unwrap()
                .push(format!("[{stage}] {label} {done}"));
        }
    }

    fn io(secrets: &[&str]) -> (StageIo, Arc<Shown>) {
        let shown = Arc::new(Shown::default());
        let io = StageIo {
            masker: Arc::new(Masker::new(secrets.iter().copied())),
            observer: shown.clone(),
        };
        (io, shown)
    }

    fn shown(s: &Shown) -> Vec<String> {
        s.0.lock().unwrap().clone()
    }

    #[test]
    fn a_flood_is_shown_up_to_the_limit_then_counted_with_a_marker() {
        let (io, seen) = io(&[]);
        let logs = LogBuffer::new(10_000);
        let line = "x".repeat(100);
        for _ in 0..100_000 {
            logs.line(&io, "s", 0.0, LogLevel::Info, &line);
        }
        // Empty lines count too (their framing).
        for _ in 0..100_000 {
            logs.line(&io, "s", 0.0, LogLevel::Info, "");
        }
        let (kept, dropped) = logs.finish(&io, "s");
        let seen = shown(&seen);
        assert_eq!(kept.len(), 10_000 / (100 + LINE_BYTES));
        assert_eq!(dropped as usize, 200_000 - kept.len());
        assert_eq!(seen.len(), kept.len() + 1);
        assert_eq!(
            seen.last().unwrap(),
            &format!(
                "[s] … {dropped} log lines ({} bytes) not shown: over the stage's output limit of 10000 bytes (limits.output, counting 64 bytes per line)",
                (100_000 - kept.len()) * 100
            )
        );
    }

    #[test]
    fn within_the_limit_nothing_is_dropped_or_marked() {
        let (io, seen) = io(&[]);
        let logs = LogBuffer::new(1 << 20);
        logs.line(&io, "s", 1.0, LogLevel::Warn, "\x1b[2Jhello");
        let (kept, dropped) = logs.finish(&io, "s");
        assert_eq!((kept.len(), dropped), (1, 0));
        assert_eq!(shown(&seen), ["[s] \\x1b[2Jhello"]);
    }

    #[test]
    fn a_secret_split_across_log_lines_is_masked_and_held_lines_are_released() {
        let (io, seen) = io(&["hunter2-pw"]);
        let logs = LogBuffer::new(1 << 20);
        logs.line(&io, "s", 1.0, LogLevel::Info, "password: hunt");
        assert!(shown(&seen).is_empty(), "the first half was shown");
        logs.line(&io, "s", 2.0, LogLevel::Info, "er2-pw and more");
        logs.line(&io, "s", 3.0, LogLevel::Info, "ends with hu");
        let (kept, _) = logs.finish(&io, "s");
        let messages: Vec<&str> = kept.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(messages, ["password: ***", "*** and more", "ends with hu"]);
        assert_eq!(kept[1].at_ms, 2.0);
        assert_eq!(shown(&seen).len(), 3);
    }

    #[test]
    fn progress_is_shown_at_most_every_interval_and_clipped() {
        let (io, seen) = io(&[]);
        let logs = LogBuffer::new(1 << 20);
        let start = Instant::now();
        let label = "é".repeat(PROGRESS_LABEL_MAX);
        for ms in 0..1000 {
            let at = start + Duration::from_millis(ms);
            logs.progress_at(at, &io, "s", ms, 0, &label);
        }
        let seen = shown(&seen);
        assert_eq!(seen.len(), 10, "{seen:?}");
        assert_eq!(
            seen[1],
            format!("[s] {} 100", "é".repeat(PROGRESS_LABEL_MAX / 2))
        );
    }
}
