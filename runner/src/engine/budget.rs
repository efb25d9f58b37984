//! The compile budget: compiling a component is not covered by a stage's
//! timeout or memory limit (it happens before any stage runs), and Cranelift's
//! time grows faster than linearly with the size of a function — a 392 KB
//! component with 50,000 values on one operand stack took 73 s. So a plugin
//! must be at most [`CompileBudget::max_bytes`] long and compile within
//! [`CompileBudget::time`], or its stages fail with a message that says so.
//!
//! Cranelift cannot be interrupted: a compile past its budget is abandoned on
//! its thread (it ends with the process) and the run goes on without it.

use std::time::Duration;

use wasmtime::component::Component;

/// Limits on compiling one plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileBudget {
    /// Wall time for one compile (`valero run --compile-timeout`).
    pub time: Duration,
    /// Size of a plugin file; larger ones are refused before compiling.
    pub max_bytes: usize,
}

/// Default compile time: the largest first-party plugin compiles in a few
/// seconds on one core; this leaves room for a slow, shared CI machine.
pub const DEFAULT_COMPILE_TIME: Duration = Duration::from_secs(120);

/// Default largest plugin: first-party ones are 0.1–5 MB.
pub const DEFAULT_MAX_PLUGIN_BYTES: usize = 64 * 1024 * 1024;

impl Default for CompileBudget {
    fn default() -> Self {
        CompileBudget {
            time: DEFAULT_COMPILE_TIME,
            max_bytes: DEFAULT_MAX_PLUGIN_BYTES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error(
        "plugin is {size} bytes, over the {max} byte limit for a plugin; refused before compiling"
    )]
    TooLarge { size: usize, max: usize },
    #[error(
        "compiling the plugin took longer than its compile budget of {}; it was abandoned\n  help: a plugin this slow to compile is unusual (very large functions); if it is trusted, raise the budget with `valero run --compile-timeout`",
        humantime::format_duration(*budget)
    )]
    TimedOut { budget: Duration },
    #[error("{0:#}")]
    Invalid(wasmtime::Error),
}

impl CompileBudget {
    /// Compiles `bytes` on a thread of its own, waiting at most `self.time`.
    pub fn compile(
        &self,
        engine: &wasmtime::Engine,
        bytes: &[u8],
    ) -> Result<Component, CompileError> {
        if bytes.len() > self.max_bytes {
            return Err(CompileError::TooLarge {
                size: bytes.len(),
                max: self.max_bytes,
            });
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let (engine, owned) = (engine.clone(), bytes.to_vec());
        std::thread::Builder::new()
            .name("valero-compile".into())
            .spawn(move || {
                // The receiver is gone when the budget ran out: nothing to do.
                let _ = tx.send(Component::new(&engine, &owned));
            })
            .map_err(|e| CompileError::Invalid(wasmtime::Error::msg(e.to_string())))?;
        match rx.recv_timeout(self.time) {
            Ok(result) => result.map_err(CompileError::Invalid),
            Err(_) => Err(CompileError::TimedOut { budget: self.time }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_over_the_size_limit_is_refused_before_compiling() {
        let budget = CompileBudget {
            max_bytes: 8,
            ..CompileBudget::default()
        };
        let err = budget
            .compile(&wasmtime::Engine::default(), &[0; 9])
            .unwrap_err();
        assert!(
            matches!(err, CompileError::TooLarge { size: 9, max: 8 }),
            "{err}"
        );
    }

    #[test]
    fn a_compile_past_its_time_is_reported_as_the_compile_budget() {
        let budget = CompileBudget {
            time: Duration::from_millis(50),
            ..CompileBudget::default()
        };
        let err = budget
            .compile(
                &wasmtime::Engine::default(),
                &crate::engine::hostile_wasm::compile_bomb(20_000),
            )
            .unwrap_err();
        assert!(matches!(err, CompileError::TimedOut { .. }), "{err}");
        assert!(err.to_string().contains("compile budget of 50ms"), "{err}");
    }

    #[test]
    fn a_small_component_compiles_within_the_default_budget() {
        let bytes = wasm_encoder::Component::new().finish();
        CompileBudget::default()
            .compile(&wasmtime::Engine::default(), &bytes)
            .expect("an empty component compiles");
    }
}
