//! Leveled logging and progress, recorded by the host with the stage's name.
//!
//! Prefer these over `println!`: stdout/stderr are captured too, but capped.

use crate::bindings::valero::stage::log::{self as host, Level};

fn log(level: Level, message: impl AsRef<str>) {
    host::log(level, message.as_ref());
}

/// Logs at trace level.
pub fn trace(message: impl AsRef<str>) {
    log(Level::Trace, message);
}

/// Logs at debug level.
pub fn debug(message: impl AsRef<str>) {
    log(Level::Debug, message);
}

/// Logs at info level.
pub fn info(message: impl AsRef<str>) {
    log(Level::Info, message);
}

/// Logs at warn level.
pub fn warn(message: impl AsRef<str>) {
    log(Level::Warn, message);
}

/// Logs at error level.
pub fn error(message: impl AsRef<str>) {
    log(Level::Error, message);
}

/// Reports progress: `done` of `total` units, with a short label.
pub fn progress(done: u64, total: u64, label: impl AsRef<str>) {
    host::progress(done, total, label.as_ref());
}
