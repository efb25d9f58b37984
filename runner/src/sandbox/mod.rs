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
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

pub use limiter::TotalMemoryLimiter;
pub use output::{CappedPipe, Captured};

use crate::effects::EffectLog;
use crate::host::StageContext;
use crate::host::capabilities::containers::{ContainerSession, LogSink};
use crate::host::capabilities::databases::{DatabaseCatalog, DatabaseSession};
use crate::host::capabilities::processes::Supervisor;
use crate::host::log::LogBuffer;
use crate::observer::Observer;
use crate::pipeline::{Grants, Limits};
use crate::secrets::Masker;

/// Per-attempt store data. One is built for every attempt and dropped after;
/// a store that trapped or timed out is never reused.
pub struct StoreState {
    pub context: StageContext,
    pub logs: LogBuffer,
    pub io: StageIo,
    /// The run's process supervisor, when the stage is granted `processes`.
    pub processes: Option<Arc<Supervisor>>,
    /// The stage's database connections, when it is granted `databases`.
    pub databases: Option<DatabaseSession>,
    /// The stage's Docker access, when it is granted `containers`.
    pub containers: Option<ContainerSession>,
    /// What the attempt did through its capabilities that outlasts it.
    pub effects: EffectLog,
    pub started: Instant,
    pub limiter: TotalMemoryLimiter,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: net::HttpHooks,
    table: ResourceTable,
}

/// Where text from a stage goes on its way out of the sandbox: secrets are
/// masked, then the observer (terminal, logs) sees it.
#[derive(Clone)]
pub struct StageIo {
    pub masker: Arc<Masker>,
    pub observer: Arc<dyn Observer>,
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
    /// Set only for stages granted `processes`.
    pub processes: Option<Arc<Supervisor>>,
    /// Set only for stages granted `databases`.
    pub databases: Option<Arc<DatabaseCatalog>>,
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

        let started = Instant::now();
        let containers = self.grants.containers.clone().map(|grant| {
            let log = LogSink {
                io: self.io.clone(),
                logs: capture.logs.clone(),
                stage: context.stage.clone(),
                started,
            };
            ContainerSession::new(
                grant,
                self.base_dir.to_path_buf(),
                log,
                capture.effects.clone(),
            )
        });
        let state = StoreState {
            logs: capture.logs.clone(),
            io: self.io.clone(),
            processes: self.processes.clone(),
            databases: self
                .databases
                .clone()
                .map(|c| DatabaseSession::new(c, self.grants.databases.clone())),
            containers,
            effects: capture.effects.clone(),
            started,
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
