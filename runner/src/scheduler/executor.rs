//! The seam under the scheduler: what runs one attempt of a stage.
//!
//! In a run it is the wasmtime [`Runtime`]; the scheduler's unit tests put a
//! scripted executor here, so scheduling (concurrency, `--jobs`, skips,
//! `always`, retries against the deadline, interrupts) is tested under a
//! paused clock, without plugins or real time.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::{AttemptOutcome, LoadedPlugin, Runtime};
use crate::host::StageContext;
use crate::pipeline::Digest;
use crate::sandbox::{Capture, SandboxError, SandboxSpec};

pub trait Executor: Send + Sync + 'static {
    /// A stage's plugin, loaded before the run starts.
    type Plugin: Send + Sync + 'static;

    /// The plugin's digest (part of a stage's fingerprint).
    fn digest(plugin: &Self::Plugin) -> &Digest;

    /// Runs one attempt within `timeout`, in a sandbox built from `spec`.
    fn attempt(
        &self,
        plugin: &Self::Plugin,
        spec: &SandboxSpec<'_>,
        context: StageContext,
        timeout: Duration,
    ) -> impl Future<Output = Result<(AttemptOutcome, Capture), SandboxError>> + Send;
}

impl Executor for Runtime {
    type Plugin = Arc<LoadedPlugin>;

    fn digest(plugin: &Self::Plugin) -> &Digest {
        &plugin.digest
    }

    fn attempt(
        &self,
        plugin: &Self::Plugin,
        spec: &SandboxSpec<'_>,
        context: StageContext,
        timeout: Duration,
    ) -> impl Future<Output = Result<(AttemptOutcome, Capture), SandboxError>> + Send {
        self.run_attempt(plugin, spec, context, timeout)
    }
}
