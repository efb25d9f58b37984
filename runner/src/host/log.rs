//! `valero:stage/log`: leveled log lines and progress from a plugin.
//!
//! Lines are kept (bounded by the stage's output limit) for the run records
//! and emitted as tracing events carrying the stage name.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::host::bindings::valero::stage::log::{Host, Level};
use crate::report::neutralize;
use crate::sandbox::{StageIo, StoreState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogLine {
    /// Milliseconds since the attempt started.
    pub at_ms: f64,
    pub level: LogLevel,
    pub message: String,
}

/// A bounded, shared log buffer: survives the store when an attempt is
/// cancelled or times out.
#[derive(Debug, Clone)]
pub struct LogBuffer {
    inner: Arc<Mutex<LogInner>>,
    cap_bytes: usize,
}

#[derive(Debug, Default)]
struct LogInner {
    lines: Vec<LogLine>,
    bytes: usize,
    dropped: u64,
}

impl LogBuffer {
    pub fn new(cap_bytes: usize) -> Self {
        LogBuffer {
            inner: Arc::default(),
            cap_bytes,
        }
    }

    pub fn push(&self, line: LogLine) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.bytes + line.message.len() > self.cap_bytes {
            inner.dropped += 1;
            return;
        }
        inner.bytes += line.message.len();
        inner.lines.push(line);
    }

    /// The kept lines and how many were dropped over the cap.
    pub fn take(&self) -> (Vec<LogLine>, u64) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (std::mem::take(&mut inner.lines), inner.dropped)
    }
}

/// One log line of a stage, from the plugin or from the host on its behalf
/// (e.g. build output): neutralised, masked, shown and kept.
pub fn emit(
    io: &StageIo,
    logs: &LogBuffer,
    stage: &str,
    started: Instant,
    level: LogLevel,
    message: &str,
) {
    let message = io.masker.mask(&neutralize(message)).into_owned();
    io.observer.stage_log(stage, level, &message);
    logs.push(LogLine {
        at_ms: crate::report::ms(started.elapsed()),
        level,
        message,
    });
}

impl Host for StoreState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        emit(
            &self.io,
            &self.logs,
            &self.context.stage,
            self.started,
            LogLevel::from(level),
            &message,
        );
        Ok(())
    }

    async fn progress(&mut self, done: u64, total: u64, label: String) -> wasmtime::Result<()> {
        let label = self.io.masker.mask(&neutralize(&label)).into_owned();
        self.io
            .observer
            .stage_progress(&self.context.stage, done, total, &label);
        Ok(())
    }
}
