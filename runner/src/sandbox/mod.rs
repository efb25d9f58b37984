//! The sandbox: turns a stage's grants into a fresh wasmtime `Store`.
//!
//! Default deny. Nothing reaches the guest unless pipeline.toml grants it:
//! no environment, no preopened directories, no sockets, no outgoing HTTP
//! (every WASI interface is linked, because guests import interfaces they
//! never use, and denied here at call time). Limits: wall time (epochs, see
//! [`crate::engine`]), total linear memory and tables, host resources
//! ([`host_limits`]), captured output size.

mod grant_paths;
pub mod host_limits;
mod limiter;
pub mod net;
mod output;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::Store;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

pub use limiter::TotalMemoryLimiter;
pub use output::{CappedPipe, Captured};

use crate::effects::EffectLog;
use crate::host::StageContext;
use crate::host::capabilities::{AttemptScope, HasSessions, Registry, Sessions};
use crate::host::log::{LogBuffer, StageLog};
use crate::observer::StageIo;
use crate::pipeline::{Capability, Grants, Limits};

/// Per-attempt store data. One is built for every attempt and dropped after;
/// a store that trapped or timed out is never reused.
pub struct StoreState {
    pub context: StageContext,
    pub log: StageLog,
    /// The sessions of the capabilities the stage is granted.
    caps: Sessions,
    pub limiter: TotalMemoryLimiter,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: net::HttpHooks,
    table: ResourceTable,
}

/// Handles that outlive the store, so output survives a timeout or trap.
#[derive(Clone)]
pub struct Capture {
    pub stdout: CappedPipe,
    pub stderr: CappedPipe,
    pub logs: LogBuffer,
    pub effects: EffectLog,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(transparent)]
    GrantPath(#[from] grant_paths::GrantPathError),
    #[error("granted directory `{path}` cannot be preopened: {message}")]
    Preopen { path: String, message: String },
}

/// Everything needed to build one attempt's store.
pub struct SandboxSpec<'a> {
    pub grants: &'a Grants,
    pub limits: Limits,
    /// Resolved secret values granted to the stage, exposed as env vars.
    pub secrets: &'a [(String, String)],
    pub io: StageIo,
    /// The run's capabilities: the attempt gets sessions of the granted ones.
    pub capabilities: &'a Registry,
    /// The pipeline's directory. A granted directory inside it is also
    /// visible at its path relative to it (`.` for itself), so relative paths
    /// in `with` tables mean what they mean to the user. Grants nothing more.
    pub base_dir: &'a Path,
}

impl SandboxSpec<'_> {
    pub fn build(
        &self,
        engine: &wasmtime::Engine,
        context: StageContext,
    ) -> Result<(Store<StoreState>, Capture), SandboxError> {
        let output_cap = usize::try_from(self.limits.output).unwrap_or(usize::MAX);
        let capture = Capture {
            stdout: CappedPipe::new(output_cap),
            stderr: CappedPipe::new(output_cap),
            logs: LogBuffer::new(output_cap),
            effects: EffectLog::default(),
        };
        let policy = Arc::new(net::NetPolicy::from_grants(self.grants));

        let mut b = WasiCtxBuilder::new();
        b.stdout(capture.stdout.clone())
            .stderr(capture.stderr.clone())
            .arg(&context.stage)
            .allow_udp(false)
            .allow_tcp(policy.allows_tcp())
            .allow_ip_name_lookup(policy.allows_any_lookup());
        let check = policy.clone();
        b.socket_addr_check(move |addr, usage| {
            let ok = check.check_socket(addr, usage);
            Box::pin(async move { ok })
        });
        for name in &self.grants.env {
            if let Ok(value) = std::env::var(name) {
                b.env(name, value);
            }
        }
        for (name, value) in self.secrets {
            b.env(name, value);
        }
        // Read-write grants first: a directory granted both ways is writable.
        for dir in &self.grants.fs_write {
            self.preopen(&mut b, dir, FsPerms::ReadWrite)?;
        }
        for dir in &self.grants.fs_read {
            if !self.grants.fs_write.contains(dir) {
                self.preopen(&mut b, dir, FsPerms::ReadOnly)?;
            }
        }

        let log = StageLog {
            io: self.io.clone(),
            logs: capture.logs.clone(),
            stage: context.stage.clone(),
            started: Instant::now(),
        };
        let caps = self.capabilities.sessions(
            self.grants,
            AttemptScope {
                log: log.clone(),
                effects: capture.effects.clone(),
            },
        );
        let state = StoreState {
            log,
            caps,
            limiter: TotalMemoryLimiter::new(self.limits.memory),
            wasi: b.build(),
            http: {
                let mut http = WasiHttpCtx::new();
                http.set_field_size_limit(host_limits::MAX_FIELDS_BYTES);
                http
            },
            hooks: net::HttpHooks { policy },
            table: ResourceTable::new(),
            context,
        };
        let mut store = Store::new(engine, state);
        store
            .data_mut()
            .table
            .set_max_capacity(host_limits::MAX_TABLE_ENTRIES);
        store.limiter(|s| &mut s.limiter);
        Ok((store, capture))
    }
}

impl SandboxSpec<'_> {
    /// Preopens the real location of `dir` (see [`grant_paths`]) at the
    /// path the grant names, and at its path relative to the pipeline
    /// directory when it lies inside it.
    fn preopen(
        &self,
        b: &mut WasiCtxBuilder,
        dir: &Path,
        perms: FsPerms,
    ) -> Result<(), SandboxError> {
        let mut guest_paths = vec![dir.to_string_lossy().into_owned()];
        if let Ok(rel) = dir.strip_prefix(self.base_dir) {
            let rel = rel.to_string_lossy();
            guest_paths.push(if rel.is_empty() {
                ".".into()
            } else {
                rel.into_owned()
            });
        }
        let real = grant_paths::resolve(dir)?;
        for guest in guest_paths {
            b.preopened_dir(&real, &guest, perms)
                .map_err(|e| SandboxError::Preopen {
                    path: dir.display().to_string(),
                    message: e.to_string(),
                })?;
        }
        Ok(())
    }
}

impl StoreState {
    /// The stage's network policy (for the name-lookup gate).
    pub(crate) fn net_policy(&self) -> Arc<net::NetPolicy> {
        self.hooks.policy.clone()
    }
}

impl HasSessions for StoreState {
    fn sessions(&mut self) -> &mut Sessions {
        &mut self.caps
    }
}

/// Builds the linker for a stage with the given capability grants:
/// WASI 0.2 (denied at call time unless granted), wasi:http, the always-on
/// valero interfaces, and the granted capabilities.
pub fn linker(
    engine: &wasmtime::Engine,
    granted: &std::collections::BTreeSet<Capability>,
) -> wasmtime::Result<Linker<StoreState>> {
    use crate::host::bindings::valero::stage as wit;
    let mut linker = Linker::<StoreState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    // Name lookups only for granted names (see `net`).
    linker.allow_shadowing(true);
    net::add_lookup_to_linker(&mut linker)?;
    linker.allow_shadowing(false);
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    wit::types::add_to_linker::<StoreState, HasSelf<StageContext>>(&mut linker, |s| {
        &mut s.context
    })?;
    wit::context::add_to_linker::<StoreState, HasSelf<StageContext>>(&mut linker, |s| {
        &mut s.context
    })?;
    wit::log::add_to_linker::<StoreState, HasSelf<StageLog>>(&mut linker, |s| &mut s.log)?;
    for cap in granted {
        crate::host::capabilities::link(*cap, &mut linker)?;
    }
    Ok(linker)
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for StoreState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}
