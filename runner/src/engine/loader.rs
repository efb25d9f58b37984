//! Loading a plugin: verify its digest, check its shape (a component that
//! exports `run`) and its imports against the stage's grants — all before
//! compiling —, then compile within the budget or load from the cache, and
//! pre-instantiate once.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use wasmtime::component::Component;

use super::Runtime;
use super::budget::CompileError;
use super::cache::Lookup;
use super::shape::{Shape, ShapeError, grant_example};
use crate::host::bindings::StageFullPre;
use crate::pipeline::{Capability, Digest};
use crate::sandbox::StoreState;

/// A plugin ready to instantiate: one `InstancePre` reused by every attempt.
pub struct LoadedPlugin {
    pub digest: Digest,
    pub pre: StageFullPre<StoreState>,
    pub source: LoadSource,
    pub load_time: Duration,
}

/// Compiled from the `.wasm` in this run (and written to the cache), or
/// deserialized from a verified compile-cache entry.
pub use crate::report::LoadSource;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "stage `{stage}`: plugin digest mismatch: pinned {expected}, file has {actual}\n  help: if the plugin was rebuilt on purpose, pin it: sha256 = \"{}\"",
        actual.hex()
    )]
    DigestMismatch {
        stage: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("stage `{stage}`: plugin is not a valid WebAssembly component: {reason}")]
    Invalid { stage: String, reason: String },
    #[error("stage `{stage}`: {source}")]
    NotAStagePlugin { stage: String, source: ShapeError },
    #[error("stage `{stage}`: {source}")]
    Compile { stage: String, source: CompileError },
    #[error(
        "stage `{stage}`: plugin imports {}, which this stage is not granted\n  help: if the stage should have {}, add under [stages.{stage}.grants]: {}",
        list(interfaces),
        if interfaces.len() == 1 { "it" } else { "them" },
        grants.join("; ")
    )]
    UngrantedCapability {
        stage: String,
        /// Every ungranted capability import, in import order.
        interfaces: Vec<String>,
        /// The grant lines that would link them, as `validate` accepts them.
        grants: Vec<&'static str>,
    },
    #[error(
        "stage `{stage}`: plugin cannot be linked: {reason}\n  help: stage plugins must target the `valero:stage/stage` world (see wit/stage.wit); `valero plugin inspect` lists what it imports"
    )]
    Link { stage: String, reason: String },
}

fn list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl LoadError {
    /// The error for the ungranted capability imports of `shape`, if any.
    pub fn ungranted(
        stage: &str,
        shape: &Shape,
        granted: &BTreeSet<Capability>,
    ) -> Option<LoadError> {
        let missing: Vec<(&str, Capability)> = shape.ungranted(granted).collect();
        if missing.is_empty() {
            return None;
        }
        let mut grants: Vec<&'static str> =
            missing.iter().map(|(_, c)| grant_example(*c)).collect();
        grants.dedup();
        Some(LoadError::UngrantedCapability {
            stage: stage.to_string(),
            interfaces: missing.iter().map(|(i, _)| i.to_string()).collect(),
            grants,
        })
    }
}

impl Runtime {
    /// Compiles `bytes` within the compile budget (or loads them from the
    /// cache), without shape or grant checks.
    pub fn component(
        &self,
        bytes: &[u8],
        digest: &Digest,
    ) -> Result<(Component, LoadSource), CompileError> {
        if let Some(cache) = self.cache() {
            match cache.get(digest) {
                Lookup::Hit(serialized) => {
                    // SAFETY: the bytes carry a valid HMAC under this cache's
                    // key, so they were produced by `Component::serialize` in
                    // this program with the same engine settings.
                    let loaded = unsafe { Component::deserialize(self.engine(), &serialized) };
                    match loaded {
                        Ok(c) => return Ok((c, LoadSource::Cache)),
                        Err(e) => tracing::warn!(
                            "ignoring unusable compile cache entry {}: {e}; recompiling and replacing it",
                            cache.entry_path(digest).display()
                        ),
                    }
                }
                Lookup::Rejected(why) => tracing::warn!(
                    "ignoring compile cache entry: {why}; recompiling and replacing it"
                ),
                Lookup::Miss => {}
            }
        }
        let component = self.compile_budget().compile(self.engine(), bytes)?;
        if let Some(cache) = self.cache() {
            match component.serialize() {
                Ok(ser) => {
                    if let Err(e) = cache.put(digest, &ser) {
                        tracing::warn!("could not write compile cache entry: {e}");
                    }
                }
                Err(e) => tracing::warn!("could not serialize component: {e}"),
            }
        }
        Ok((component, LoadSource::Compiled))
    }

    /// Loads a stage's plugin: digest pin first, then its shape and the
    /// capability check (without compiling), then compile/cache, then
    /// pre-instantiation against the stage's linker.
    pub fn load(
        &self,
        stage: &str,
        bytes: &[u8],
        pinned: Option<&Digest>,
        granted: &BTreeSet<Capability>,
    ) -> Result<LoadedPlugin, LoadError> {
        let started = Instant::now();
        let digest = Digest::of(bytes);
        if let Some(expected) = pinned
            && *expected != digest
        {
            return Err(LoadError::DigestMismatch {
                stage: stage.to_string(),
                expected: *expected,
                actual: digest,
            });
        }
        let shape = Shape::of_stage_plugin(bytes).map_err(|source| LoadError::NotAStagePlugin {
            stage: stage.to_string(),
            source,
        })?;
        if let Some(e) = LoadError::ungranted(stage, &shape, granted) {
            return Err(e);
        }
        let (component, source) = self.component(bytes, &digest).map_err(|e| match e {
            CompileError::Invalid(e) => LoadError::Invalid {
                stage: stage.to_string(),
                reason: format!("{e:#}"),
            },
            source => LoadError::Compile {
                stage: stage.to_string(),
                source,
            },
        })?;
        let link = |e: wasmtime::Error| LoadError::Link {
            stage: stage.to_string(),
            reason: format!("{e:#}"),
        };
        let linker = crate::sandbox::linker(self.engine(), granted).map_err(link)?;
        let instance_pre = linker.instantiate_pre(&component).map_err(link)?;
        let pre = StageFullPre::new(instance_pre).map_err(link)?;
        Ok(LoadedPlugin {
            digest,
            pre,
            source,
            load_time: started.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ungranted_capability_is_reported_at_once() {
        let shape = Shape {
            imports: vec![
                "valero:stage/log@0.1.0".into(),
                "valero:stage/processes@0.1.0".into(),
                "wasi:http/types@0.2.6".into(),
                "valero:stage/containers@0.1.0".into(),
            ],
            exports: Vec::new(),
        };
        let granted = BTreeSet::from([Capability::Processes]);
        assert!(
            LoadError::ungranted(
                "s",
                &shape,
                &BTreeSet::from([Capability::Processes, Capability::Containers])
            )
            .is_none()
        );
        let text = LoadError::ungranted("s", &shape, &BTreeSet::new())
            .expect("two ungranted")
            .to_string();
        assert_eq!(
            text,
            "stage `s`: plugin imports `valero:stage/processes@0.1.0`, `valero:stage/containers@0.1.0`, which this stage is not granted\n  help: if the stage should have them, add under [stages.s.grants]: processes = true; containers = { project = \"…\" }"
        );
        let text = LoadError::ungranted("s", &shape, &granted)
            .unwrap()
            .to_string();
        assert!(
            text.contains("imports `valero:stage/containers@0.1.0`, which"),
            "{text}"
        );
        assert!(text.contains("have it, add"), "{text}");
    }
}
