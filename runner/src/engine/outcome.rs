//! How an attempt ended, and — when the guest did not return a report — why,
//! said cause first: the trap (`call stack exhausted`), the guest's panic
//! text or the host limit it hit come before the wasm frames, so the first
//! line of a reason (all the terminal summary has room for) explains it.

use std::time::Duration;

use wasmtime_wasi::{I32Exit, ResourceTableError};

use crate::report::decode::Report;
use crate::sandbox::host_limits;

/// How one attempt ended.
#[derive(Debug)]
pub enum AttemptOutcome {
    /// The plugin returned a report (whatever its verdict).
    Returned(Report),
    /// The wall-time limit was hit.
    TimedOut { timeout: Duration },
    /// The memory cap refused a growth and the guest then trapped.
    MemoryLimit { requested: usize, message: String },
    /// The guest held more host resources than the per-stage cap.
    ResourceLimit { message: String },
    /// The guest called `exit` (WASI `exit`) instead of returning a report.
    Exited { code: i32 },
    /// The guest trapped or panicked; `message` starts with the cause.
    Trapped { message: String },
}

/// Classifies the error a guest call ended with. `stderr` is what the guest
/// wrote there (a Rust guest's panic message is its last lines).
pub fn classify(
    err: wasmtime::Error,
    timeout: Duration,
    refused: Option<usize>,
    stderr: &[u8],
) -> AttemptOutcome {
    if matches!(
        err.downcast_ref::<wasmtime::Trap>(),
        Some(wasmtime::Trap::Interrupt)
    ) {
        return AttemptOutcome::TimedOut { timeout };
    }
    if let Some(exit) = err.downcast_ref::<I32Exit>() {
        return AttemptOutcome::Exited { code: exit.0 };
    }
    let message = cause_first(&err, stderr);
    if err.chain().any(|e| {
        matches!(
            e.downcast_ref::<ResourceTableError>(),
            Some(ResourceTableError::Full)
        )
    }) {
        return AttemptOutcome::ResourceLimit {
            message: format!("{}\n{message}", host_limits::table_full_message()),
        };
    }
    match refused {
        Some(requested) => AttemptOutcome::MemoryLimit { requested, message },
        None => AttemptOutcome::Trapped { message },
    }
}

/// `cause` first, then the guest's panic text (if any), then the frames.
fn cause_first(err: &wasmtime::Error, stderr: &[u8]) -> String {
    let cause = err.root_cause().to_string();
    let mut out = match panic_text(stderr) {
        Some(panic) => format!("{panic}\n({cause})"),
        None => cause,
    };
    if let Some(trace) = err.downcast_ref::<wasmtime::WasmBacktrace>() {
        out.push('\n');
        out.push_str(trace.to_string().trim_end());
    }
    // Context the host added between the trap and the top, if any (the
    // frames and the cause are already in).
    for e in err.chain().skip(1) {
        let line = e.to_string();
        if !out.contains(line.trim_end()) {
            out.push_str("\n  ");
            out.push_str(&line);
        }
    }
    out
}

/// The message of the last Rust panic in `stderr`: `panicked at FILE:LINE:`
/// and the text after it, up to the backtrace note.
pub fn panic_text(stderr: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stderr);
    let start = text.rfind("panicked at ")?;
    let rest = &text[start..];
    let end = rest
        .find("\nnote: run with `RUST_BACKTRACE")
        .unwrap_or(rest.len());
    let panic = rest[..end].trim().replace('\n', " ");
    Some(panic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_message_is_found_in_stderr() {
        let stderr = b"working\n\nthread '<unnamed>' panicked at src/lib.rs:9:5:\ntestkit panic: boom-42\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(
            panic_text(stderr).as_deref(),
            Some("panicked at src/lib.rs:9:5: testkit panic: boom-42")
        );
        assert_eq!(panic_text(b"no panic here"), None);
    }

    #[test]
    fn exit_is_not_a_trap() {
        let err = wasmtime::Error::new(I32Exit(0));
        assert!(matches!(
            classify(err, Duration::from_secs(1), None, b""),
            AttemptOutcome::Exited { code: 0 }
        ));
    }

    #[test]
    fn a_full_resource_table_names_the_limit() {
        let err = wasmtime::Error::new(ResourceTableError::Full).context("calling fields.new");
        let AttemptOutcome::ResourceLimit { message } =
            classify(err, Duration::from_secs(1), None, b"")
        else {
            panic!("not a resource limit");
        };
        assert!(message.starts_with("resource limit reached"), "{message}");
        assert!(message.contains("4096"), "{message}");
    }
}
