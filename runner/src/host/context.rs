//! `valero:stage/context`: read-only facts about the run, the stage's `with`
//! table and the outputs of the stages it needs.

use std::collections::BTreeMap;

use crate::host::bindings::valero::stage::context::Host;

/// What a stage may learn about its run. Built by the scheduler per attempt.
#[derive(Debug, Clone, Default)]
pub struct StageContext {
    pub run_id: String,
    pub stage: String,
    pub target: String,
    pub attempt: u32,
    /// The `with` table, serialised as JSON once.
    pub config: String,
    /// Outputs (JSON) of the stages this stage directly `needs`.
    pub inputs: BTreeMap<String, String>,
    /// When the attempt will be stopped (`None`: no limit known).
    pub ends_at: Option<std::time::Instant>,
}

impl Host for StageContext {
    async fn run_id(&mut self) -> wasmtime::Result<String> {
        Ok(self.run_id.clone())
    }
    async fn stage(&mut self) -> wasmtime::Result<String> {
        Ok(self.stage.clone())
    }
    async fn target(&mut self) -> wasmtime::Result<String> {
        Ok(self.target.clone())
    }
    async fn attempt(&mut self) -> wasmtime::Result<u32> {
        Ok(self.attempt)
    }
    async fn config(&mut self) -> wasmtime::Result<String> {
        Ok(self.config.clone())
    }
    async fn input(&mut self, stage: String) -> wasmtime::Result<Option<String>> {
        Ok(self.inputs.get(&stage).cloned())
    }
    async fn remaining_ms(&mut self) -> wasmtime::Result<u64> {
        Ok(self.ends_at.map_or(u64::MAX, |end| {
            let left = end.saturating_duration_since(std::time::Instant::now());
            u64::try_from(left.as_millis()).unwrap_or(u64::MAX)
        }))
    }
}

/// `valero:stage/types` has no functions; its host side is empty.
impl crate::host::bindings::valero::stage::types::Host for StageContext {}
