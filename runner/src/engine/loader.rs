//! Loading a plugin: verify its digest, compile or load from the cache,
//! check its imports against the stage's grants, pre-instantiate once.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, types::ComponentItem};

use super::Runtime;
use super::cache::Lookup;
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadSource {
    /// Compiled from the `.wasm` in this run (and written to the cache).
    Compiled,
    /// Deserialized from a verified compile-cache entry.
    Cache,
}

/// One import of a component, as `valero plugin inspect` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginImport {
    pub name: String,
    /// The grant that links it, when it is a valero capability.
    pub capability: Option<&'static str>,
}

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
    #[error(
        "stage `{stage}`: plugin imports `{interface}`, which this stage is not granted\n  help: add `{grant} = true` under [stages.{stage}.grants] if the stage should have it"
    )]
    UngrantedCapability {
        stage: String,
        interface: String,
        grant: &'static str,
    },
    #[error(
        "stage `{stage}`: plugin cannot be linked: {reason}\n  help: stage plugins must target the `valero:stage/stage` world (see wit/stage.wit); `valero plugin inspect` lists what it imports"
    )]
    Link { stage: String, reason: String },
}

impl Runtime {
    /// Compiles `bytes` (or loads them from the cache), without grant checks.
    pub fn component(
        &self,
        bytes: &[u8],
        digest: &Digest,
    ) -> anyhow::Result<(Component, LoadSource)> {
        if let Some(cache) = self.cache() {
            match cache.get(digest) {
                Lookup::Hit(serialized) => {
                    // SAFETY: the bytes carry a valid HMAC under this cache's
                    // key, so they were produced by `Component::serialize` in
                    // this program with the same engine settings.
                    let loaded = unsafe { Component::deserialize(self.engine(), &serialized) };
                    match loaded {
                        Ok(c) => return Ok((c, LoadSource::Cache)),
                        Err(e) => tracing::warn!("ignoring unusable cache entry: {e}"),
                    }
                }
                Lookup::Rejected(why) => tracing::warn!("ignoring compile cache entry: {why}"),
                Lookup::Miss => {}
            }
        }
        let component = Component::new(self.engine(), bytes)?;
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

    /// Loads a stage's plugin: digest pin first, then compile/cache, then the
    /// capability check, then pre-instantiation against the stage's linker.
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
        let invalid = |e: anyhow::Error| LoadError::Invalid {
            stage: stage.to_string(),
            reason: format!("{e:#}"),
        };
        let (component, source) = self.component(bytes, &digest).map_err(invalid)?;
        for import in imports(self.engine(), &component) {
            if let Some(cap) = import.capability
                && !granted.iter().any(|g| g.name() == cap)
            {
                return Err(LoadError::UngrantedCapability {
                    stage: stage.to_string(),
                    interface: import.name,
                    grant: cap,
                });
            }
        }
        let link = |e: wasmtime::Error| LoadError::Link {
            stage: stage.to_string(),
            reason: format!("{e:#}"),
        };
        let linker = crate::host::linker(self.engine(), granted).map_err(link)?;
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

/// The imports of a component, with the capability grant each one needs.
pub fn imports(engine: &wasmtime::Engine, component: &Component) -> Vec<PluginImport> {
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| PluginImport {
            name: name.to_string(),
            capability: capability_of(name).map(Capability::name),
        })
        .collect()
}

/// The exports of a component (names and whether each is a function).
pub fn exports(engine: &wasmtime::Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .exports(engine)
        .map(|(name, item)| match item.ty {
            ComponentItem::ComponentFunc(_) => format!("func {name}"),
            ComponentItem::ComponentInstance(_) => format!("instance {name}"),
            _ => name.to_string(),
        })
        .collect()
}

/// `valero:stage/processes@0.1.x` → `Capability::Processes`.
fn capability_of(import: &str) -> Option<Capability> {
    let rest = import.strip_prefix("valero:stage/")?;
    let iface = rest.split('@').next().unwrap_or(rest);
    Capability::ALL.into_iter().find(|c| c.name() == iface)
}
