//! Host capabilities (`processes`, `containers`, `kubernetes`, `databases`):
//! each is one unit in its own module — its run-scoped state, its
//! per-attempt session, and the WIT `Host` impl on that session — and this
//! module composes them:
//!
//! * [`Registry`] holds the run-scoped state, built once per run from the
//!   target ([`Registry::for_run`]), and shuts it down at the end;
//! * [`Registry::sessions`] gives one attempt the sessions of the
//!   capabilities its stage is granted ([`Sessions`]); a session masks its
//!   own errors and records its own effects;
//! * [`link`] links a granted capability's interface to its session.
//!
//! Adding a capability touches its WIT interface, its grant in the pipeline
//! model, its own module, and the lines here that name it. The sandbox, the
//! scheduler and the run know only [`Registry`] and [`Sessions`].

pub mod containers;
pub mod databases;
pub mod kubernetes;
pub mod processes;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use crate::effects::EffectLog;
use crate::host::bindings::valero::stage::{
    containers as containers_api, databases as databases_api, kubernetes as kubernetes_api,
    processes as processes_api,
};
use crate::host::log::StageLog;
use crate::pipeline::{Capability, Grants, Target};
use crate::secrets::Masker;

use containers::ContainerSession;
use databases::{DatabaseCatalog, DatabaseSession};
use kubernetes::{Cluster, KubernetesSession};
use processes::{ProcessSession, Supervisor};

/// What a run's capabilities are built from.
pub struct RunScope<'a> {
    pub target: &'a Target,
    /// The run's directory (service logs, `{run_dir}` in database URLs).
    pub run_dir: &'a Path,
    /// The pipeline's directory (relative paths in grants and specs).
    pub base_dir: &'a Path,
    /// Resolved secret values by name.
    pub secrets: &'a BTreeMap<String, String>,
    pub masker: Arc<Masker>,
    /// `valero plan`: capabilities change nothing (Kubernetes applies are dry runs).
    pub plan_only: bool,
}

/// The run-scoped state of every capability.
pub struct Registry {
    processes: Arc<Supervisor>,
    databases: Arc<DatabaseCatalog>,
    kubernetes: Arc<Cluster>,
    base_dir: PathBuf,
    masker: Arc<Masker>,
}

/// What a session may use of its attempt.
pub struct AttemptScope {
    /// The stage's log (build output of `containers` goes there).
    pub log: StageLog,
    /// What the attempt leaves behind, for resume and cleanup.
    pub effects: EffectLog,
}

/// One attempt's sessions: `Some` exactly for the capabilities its stage is
/// granted, which are the ones linked (see [`link`]).
#[derive(Default)]
pub struct Sessions {
    processes: Option<ProcessSession>,
    databases: Option<DatabaseSession>,
    containers: Option<ContainerSession>,
    kubernetes: Option<KubernetesSession>,
}

impl Registry {
    /// Values the target's capabilities hold that must be masked wherever
    /// they could appear (database credentials), known before the run's
    /// masker is built.
    pub fn credentials(target: &Target, secrets: &BTreeMap<String, String>) -> Vec<String> {
        DatabaseCatalog::resolve(target, secrets).credentials()
    }

    pub fn for_run(scope: RunScope<'_>) -> Registry {
        Registry {
            processes: Arc::new(Supervisor::new(
                scope.target,
                scope.run_dir,
                scope.base_dir,
                scope.secrets.clone(),
                scope.masker.clone(),
            )),
            databases: Arc::new(
                DatabaseCatalog::resolve(scope.target, scope.secrets).in_run_dir(scope.run_dir),
            ),
            kubernetes: Arc::new(Cluster::for_target(scope.target, scope.plan_only)),
            base_dir: scope.base_dir.to_path_buf(),
            masker: scope.masker,
        }
    }

    /// The sessions of one attempt of a stage with these grants.
    pub fn sessions(&self, grants: &Grants, attempt: AttemptScope) -> Sessions {
        let granted = |c| grants.capabilities.contains(&c);
        Sessions {
            processes: granted(Capability::Processes)
                .then(|| ProcessSession::new(self.processes.clone(), attempt.effects.clone())),
            databases: granted(Capability::Databases).then(|| {
                DatabaseSession::new(
                    self.databases.clone(),
                    grants.databases.clone(),
                    self.masker.clone(),
                )
            }),
            containers: grants
                .containers
                .clone()
                .filter(|_| granted(Capability::Containers))
                .map(|grant| {
                    ContainerSession::new(
                        grant,
                        self.base_dir.clone(),
                        attempt.log.clone(),
                        attempt.effects.clone(),
                    )
                }),
            kubernetes: grants
                .kubernetes
                .clone()
                .filter(|_| granted(Capability::Kubernetes))
                .map(|grant| {
                    KubernetesSession::new(
                        self.kubernetes.clone(),
                        grant,
                        attempt.log.stage.clone(),
                        self.masker.clone(),
                    )
                }),
        }
    }

    /// Ends what the run started (services still running).
    pub async fn shutdown(&self) {
        self.processes.stop_all().await;
    }
}

/// Store data that carries an attempt's [`Sessions`].
pub trait HasSessions: Send + 'static {
    fn sessions(&mut self) -> &mut Sessions;
}

/// The linker reaches a session only for a granted capability, and
/// [`Registry::sessions`] made one for every granted capability: the
/// `expect`s below state that pairing (both come from the same `Grants`).
const LINKED_ONLY_WHEN_GRANTED: &str =
    "a capability is linked only for stages granted it, and its session exists for every grant";

fn processes_of<T: HasSessions>(t: &mut T) -> &mut ProcessSession {
    t.sessions()
        .processes
        .as_mut()
        .expect(LINKED_ONLY_WHEN_GRANTED)
}

fn databases_of<T: HasSessions>(t: &mut T) -> &mut DatabaseSession {
    t.sessions()
        .databases
        .as_mut()
        .expect(LINKED_ONLY_WHEN_GRANTED)
}

fn containers_of<T: HasSessions>(t: &mut T) -> &mut ContainerSession {
    t.sessions()
        .containers
        .as_mut()
        .expect(LINKED_ONLY_WHEN_GRANTED)
}

fn kubernetes_of<T: HasSessions>(t: &mut T) -> &mut KubernetesSession {
    t.sessions()
        .kubernetes
        .as_mut()
        .expect(LINKED_ONLY_WHEN_GRANTED)
}

/// Links one capability interface into a stage's linker.
pub fn link<T: HasSessions>(cap: Capability, linker: &mut Linker<T>) -> wasmtime::Result<()> {
    match cap {
        Capability::Processes => {
            processes_api::add_to_linker::<T, HasSelf<ProcessSession>>(linker, processes_of::<T>)
        }
        Capability::Containers => containers_api::add_to_linker::<T, HasSelf<ContainerSession>>(
            linker,
            containers_of::<T>,
        ),
        Capability::Kubernetes => kubernetes_api::add_to_linker::<T, HasSelf<KubernetesSession>>(
            linker,
            kubernetes_of::<T>,
        ),
        Capability::Databases => {
            databases_api::add_to_linker::<T, HasSelf<DatabaseSession>>(linker, databases_of::<T>)
        }
    }
}
