//! The wasm engine: one wasmtime `Engine` per process with epoch
//! interruption, the compile cache, plugin loading and attempt execution.

pub mod budget;
pub mod cache;
#[cfg(test)]
#[path = "../../../tests/common/wasm.rs"]
mod hostile_wasm;
mod loader;
pub mod outcome;
pub mod shape;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::{Config, Engine, UpdateDeadline};

pub use budget::CompileBudget;
pub use cache::CompileCache;
pub use loader::{LoadError, LoadSource, LoadedPlugin};
pub use outcome::AttemptOutcome;
pub use shape::{Shape, ShapeError};

use crate::host::StageContext;
use crate::sandbox::{Capture, SandboxError, SandboxSpec};

/// How often the epoch advances. A CPU-bound guest is interrupted at most
/// one tick after its deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Extra time an attempt gets past its deadline before the outer timeout
/// drops it, for host calls that block instead of reaching an epoch check.
pub const HOST_CALL_GRACE: Duration = Duration::from_millis(500);

/// The engine plus its epoch ticker and compile cache. Cheap to share.
pub struct Runtime {
    engine: Engine,
    cache: Option<CompileCache>,
    compile: CompileBudget,
    ticker_stop: Arc<AtomicBool>,
}

impl Runtime {
    /// `cache_dir = None` disables the compile cache.
    pub fn new(cache_dir: Option<&std::path::Path>) -> anyhow::Result<Self> {
        Self::build(cache_dir, true)
    }

    /// A runtime whose stages cannot be interrupted at their timeout (no
    /// epoch checks compiled in). Only for measuring what interruption
    /// costs (benches/); `valero run` never uses it.
    #[doc(hidden)]
    pub fn uninterruptible(cache_dir: Option<&std::path::Path>) -> anyhow::Result<Self> {
        Self::build(cache_dir, false)
    }

    fn build(cache_dir: Option<&std::path::Path>, interruption: bool) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.epoch_interruption(interruption);
        config.wasm_component_model(true);
        // Bounded guest stacks; a deep recursion traps instead of exhausting the host.
        config.max_wasm_stack(1 << 20);
        let engine = Engine::new(&config)?;
        // A cache that cannot be opened costs compile time, not the run.
        let cache = cache_dir.and_then(|dir| match CompileCache::open(dir, &engine) {
            Ok(cache) => Some(cache),
            Err(e) => {
                tracing::warn!(
                    "cannot open compile cache {}: {e}; compiling every plugin in this run\n  help: fix or delete that directory, point --cache-dir elsewhere, or pass --no-cache",
                    dir.display()
                );
                None
            }
        });
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (e, stop) = (engine.clone(), ticker_stop.clone());
        std::thread::Builder::new()
            .name("valero-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    e.increment_epoch();
                }
            })?;
        Ok(Runtime {
            engine,
            cache,
            compile: CompileBudget::default(),
            ticker_stop,
        })
    }

    /// Replaces the default compile budget (`valero run --compile-timeout`).
    pub fn with_compile_budget(mut self, budget: CompileBudget) -> Self {
        self.compile = budget;
        self
    }

    pub fn compile_budget(&self) -> CompileBudget {
        self.compile
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn cache(&self) -> Option<&CompileCache> {
        self.cache.as_ref()
    }

    /// Runs one attempt of a loaded plugin in a fresh sandbox.
    pub async fn run_attempt(
        &self,
        plugin: &LoadedPlugin,
        spec: &SandboxSpec<'_>,
        context: StageContext,
        timeout: Duration,
    ) -> Result<(AttemptOutcome, Capture), SandboxError> {
        let (mut store, capture) = spec.build(&self.engine, context)?;
        let deadline = Instant::now() + timeout;
        // Every tick the guest yields to the executor (so other stages and the
        // outer timeout make progress); past the deadline it is interrupted.
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        store.set_epoch_deadline(1);
        let call = async {
            let instance = plugin.pre.instantiate_async(&mut store).await?;
            instance.call_run(&mut store).await
        };
        let result = tokio::time::timeout(timeout + HOST_CALL_GRACE, call).await;
        let outcome = match result {
            Err(_) => AttemptOutcome::TimedOut { timeout },
            Ok(Ok(report)) => AttemptOutcome::Returned(report.into()),
            Ok(Err(err)) => outcome::classify(
                err,
                timeout,
                store.data().limiter.refused,
                &capture.stderr.snapshot().bytes,
            ),
        };
        Ok((outcome, capture))
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}
