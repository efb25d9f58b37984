//! The validated pipeline: plain data, produced once by [`super::load`].
//!
//! Everything downstream (planner, scheduler, sandbox) works on these types and
//! never re-reads TOML, so every check on user input lives in `validate.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

/// A whole pipeline.toml after validation.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// `[pipeline] name`.
    pub name: String,
    pub description: String,
    /// The file it was read from.
    pub path: PathBuf,
    /// Directory relative paths are resolved against (the file's parent).
    pub base_dir: PathBuf,
    /// `[pipeline] default_target`; always a key of `targets`.
    pub default_target: String,
    /// `[pipeline] timeout`: deadline for the whole run (retries never pass it).
    pub timeout: Duration,
    pub targets: BTreeMap<String, Target>,
    /// `[secrets.NAME]`: where each secret comes from (values are read at run time).
    pub secrets: BTreeMap<String, SecretSource>,
    /// Stages in file order. Names are unique; `needs` all resolve; the graph is acyclic.
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, Default)]
pub struct Target {
    pub name: String,
    pub description: String,
    /// Free-form settings handed to stages as part of their context (`[targets.X.settings]`).
    pub settings: serde_json::Value,
    /// `[targets.X.services.NAME]`: long-running processes a stage granted
    /// `processes` may start and stop — and nothing else.
    pub services: BTreeMap<String, ProcessSpec>,
    /// `[targets.X.jobs.NAME]`: one-shot commands (e.g. a build) such a stage may run.
    pub jobs: BTreeMap<String, ProcessSpec>,
    /// `[targets.X.databases.NAME]`: databases a stage granted `databases`
    /// may open by name; the host holds the URL and its credentials.
    pub databases: BTreeMap<String, DatabaseSpec>,
    /// `[targets.X.kubernetes]`: the cluster a stage granted `kubernetes`
    /// talks to; the host holds its kubeconfig.
    pub kubernetes: Option<ClusterSpec>,
}

/// A Kubernetes cluster declared by a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    pub kubeconfig: KubeconfigSource,
    /// The kubeconfig context (default: its current context).
    pub context: Option<String>,
    /// Namespace of objects that name none.
    pub namespace: String,
}

/// Where the host reads the cluster's credentials from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeconfigSource {
    /// `kubeconfig = "path"` (absolute after validation).
    File(PathBuf),
    /// `kubeconfig = { host_env = "KUBECONFIG" }`: a path in the runner's environment.
    HostEnv(String),
    /// `kubeconfig = { in_cluster = true }`: the pod's service account.
    InCluster,
}

/// `grants.kubernetes = { namespaces = […], kinds = […] }`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubernetesGrant {
    /// Namespaces the stage may change objects in (and create, as `Namespace` objects).
    pub namespaces: BTreeSet<String>,
    /// Kinds (from [`KUBE_KINDS`]) the stage may apply, read and delete.
    pub kinds: BTreeSet<String>,
}

impl KubernetesGrant {
    /// `Namespace` objects count as cluster-scoped; everything else needs a namespace.
    pub fn allows_namespace(&self, ns: &str) -> bool {
        self.namespaces.contains(ns)
    }
    pub fn allows_kind(&self, kind: &str) -> bool {
        self.kinds.contains(kind)
    }
}

/// A kind the `kubernetes` capability knows without asking the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KubeKind {
    pub kind: &'static str,
    /// `v1`, `apps/v1`, …
    pub api_version: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
}

const fn kk(kind: &'static str, api_version: &'static str, plural: &'static str) -> KubeKind {
    KubeKind {
        kind,
        api_version,
        plural,
        namespaced: true,
    }
}

/// The kinds a stage can be granted: workloads and their configuration.
/// Cluster-wide kinds other than `Namespace` (roles, CRDs, nodes) are not
/// grantable, so a deploy stage can never widen its own reach.
pub const KUBE_KINDS: &[KubeKind] = &[
    KubeKind {
        kind: "Namespace",
        api_version: "v1",
        plural: "namespaces",
        namespaced: false,
    },
    kk("ConfigMap", "v1", "configmaps"),
    kk("Secret", "v1", "secrets"),
    kk("Service", "v1", "services"),
    kk("ServiceAccount", "v1", "serviceaccounts"),
    kk("PersistentVolumeClaim", "v1", "persistentvolumeclaims"),
    kk("Deployment", "apps/v1", "deployments"),
    kk("StatefulSet", "apps/v1", "statefulsets"),
    kk("DaemonSet", "apps/v1", "daemonsets"),
    kk("Job", "batch/v1", "jobs"),
    kk("CronJob", "batch/v1", "cronjobs"),
    kk("Ingress", "networking.k8s.io/v1", "ingresses"),
    kk("NetworkPolicy", "networking.k8s.io/v1", "networkpolicies"),
    kk(
        "HorizontalPodAutoscaler",
        "autoscaling/v2",
        "horizontalpodautoscalers",
    ),
    kk("PodDisruptionBudget", "policy/v1", "poddisruptionbudgets"),
    kk("Role", "rbac.authorization.k8s.io/v1", "roles"),
    kk(
        "RoleBinding",
        "rbac.authorization.k8s.io/v1",
        "rolebindings",
    ),
];

/// The grantable kind named `kind`.
pub fn kube_kind(kind: &str) -> Option<&'static KubeKind> {
    KUBE_KINDS.iter().find(|k| k.kind == kind)
}

/// A database declared by a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSpec {
    pub name: String,
    /// `postgres://…` or `sqlite://…`; usually `{ secret = "…" }`.
    /// `{run_dir}` and `{service}` (the database's name) are substituted.
    pub url: EnvValue,
}

/// A process declared by a target. The host starts exactly this; a plugin
/// only names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    pub name: String,
    /// A path (containing `/`, resolved against the pipeline directory) or a
    /// program name looked up on PATH.
    pub program: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, EnvValue>,
    /// Working directory (absolute); default the pipeline directory.
    pub cwd: PathBuf,
    /// The port the service listens on (127.0.0.1); checked free before start.
    pub port: Option<u16>,
    /// Readiness URL (plugins poll it; `health` stages use it).
    pub ready: Option<String>,
    /// Services that must be started first.
    pub needs: Vec<String>,
    /// Jobs: wall-time limit.
    pub timeout: Duration,
}

/// An environment value for a declared process, resolved by the host at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    /// A literal; `{run_dir}`, `{service}` and `{port}` are substituted.
    Literal(String),
    /// `{ secret = "NAME" }`: the value of a pipeline secret (never seen by plugins).
    Secret(String),
    /// `{ host_env = "VAR", default = "…" }`: the runner's own environment.
    HostEnv {
        var: String,
        default: Option<String>,
    },
}

impl EnvValue {
    /// The value before placeholder substitution. The error says what is
    /// missing; the caller adds where it was needed.
    pub fn resolve(&self, secrets: &BTreeMap<String, String>) -> Result<String, String> {
        match self {
            EnvValue::Literal(s) => Ok(s.clone()),
            EnvValue::Secret(name) => secrets
                .get(name)
                .cloned()
                .ok_or_else(|| format!("secret `{name}` is not available")),
            EnvValue::HostEnv { var, default } => match (std::env::var(var), default) {
                (Ok(v), _) if !v.is_empty() => Ok(v),
                (_, Some(d)) => Ok(d.clone()),
                _ => Err(format!(
                    "it comes from the runner's {var}, which is not set"
                )),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    pub plugin: PluginRef,
    /// Required for `Path` plugins; optional for builtins (the binary pins those).
    pub sha256: Option<Digest>,
    pub needs: Vec<String>,
    /// Targets this stage runs on; `None` = every target.
    pub when: Option<BTreeSet<String>>,
    /// Runs even when an upstream stage failed or the run was cancelled (cleanup).
    pub always: bool,
    pub timeout: Duration,
    pub retries: Retries,
    pub continue_on_error: bool,
    /// The `with` table as JSON (handed to the plugin by `context.config`).
    pub with: serde_json::Value,
    pub grants: Grants,
    pub limits: Limits,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PluginRef {
    /// A `.wasm` component on disk (absolute after validation).
    Path(PathBuf),
    /// `builtin:NAME`: a first-party plugin embedded in the `valero` binary.
    Builtin(String),
}

/// A sha256 digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    pub fn of(bytes: &[u8]) -> Digest {
        use sha2::Digest as _;
        Digest(sha2::Sha256::digest(bytes).into())
    }
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
    /// Parses 64 hex digits, optionally prefixed with `sha256:`.
    pub fn parse(s: &str) -> Option<Digest> {
        let s = s.strip_prefix("sha256:").unwrap_or(s);
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Digest(out))
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retries {
    /// Total attempts, >= 1.
    pub attempts: u32,
    /// Delay before the 2nd attempt; doubles each further attempt.
    pub backoff: Duration,
}

/// What a stage may touch. Everything is denied unless listed here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Host environment variables passed through by name.
    pub env: Vec<String>,
    /// Secrets (names from `[secrets]`) exposed to the stage as environment variables.
    pub secrets: Vec<String>,
    /// Directories preopened read-only / read-write (absolute after validation).
    pub fs_read: Vec<PathBuf>,
    pub fs_write: Vec<PathBuf>,
    /// Outgoing HTTP (wasi:http) destinations.
    pub http: Vec<HttpGrant>,
    /// Outgoing TCP (wasi:sockets) destinations.
    pub tcp: Vec<TcpGrant>,
    /// Host names the stage may resolve itself (wasi:sockets ip-name-lookup):
    /// lower-case, no trailing dot, exact (no wildcards).
    pub lookup: Vec<String>,
    /// Address ranges any connection may reach after name resolution.
    /// Defaults to loopback (127.0.0.0/8, ::1) when not given.
    pub addresses: Vec<IpNet>,
    /// Host capability interfaces linked for this stage.
    pub capabilities: BTreeSet<Capability>,
    /// With `databases`: which of the target's databases may be opened.
    pub databases: DatabaseScope,
    /// With `containers`: the Docker project and the host paths it may use.
    pub containers: Option<ContainerGrant>,
    /// With `kubernetes`: the namespaces and kinds the stage may touch.
    pub kubernetes: Option<KubernetesGrant>,
}

/// `grants.containers = { project = "…", build_contexts = […], bind_mounts = […] }`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerGrant {
    /// Label value `valero.project=<project>` and name scope of everything the stage creates.
    pub project: String,
    /// Directories (absolute) images may be built from.
    pub build_contexts: Vec<PathBuf>,
    /// Directories (absolute) whose contents may be bind-mounted into containers.
    pub bind_mounts: Vec<PathBuf>,
}

/// `grants.databases = true` (every database of the target) or a list of names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DatabaseScope {
    #[default]
    All,
    Only(BTreeSet<String>),
}

impl DatabaseScope {
    pub fn allows(&self, name: &str) -> bool {
        match self {
            DatabaseScope::All => true,
            DatabaseScope::Only(names) => names.contains(name),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpGrant {
    /// `http` or `https`.
    pub scheme: String,
    /// Lower-cased host name or IP literal (no brackets); `*` = any host.
    pub host: String,
    pub port: PortPattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpGrant {
    pub host: TcpHost,
    pub port: PortPattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpHost {
    Net(IpNet),
    /// `localhost`: 127.0.0.1 and ::1.
    Localhost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortPattern {
    Any,
    Exact(u16),
}

impl PortPattern {
    pub fn matches(&self, port: u16) -> bool {
        match self {
            PortPattern::Any => true,
            PortPattern::Exact(p) => *p == port,
        }
    }
}

impl TcpHost {
    pub fn matches(&self, ip: IpAddr) -> bool {
        match self {
            TcpHost::Net(net) => net.contains(&ip),
            TcpHost::Localhost => ip.is_loopback(),
        }
    }
}

/// Host capability interfaces of the `valero:stage` package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    Processes,
    Containers,
    Kubernetes,
    Databases,
}

impl Capability {
    pub const ALL: [Capability; 4] = [
        Capability::Processes,
        Capability::Containers,
        Capability::Kubernetes,
        Capability::Databases,
    ];
    /// The grant key in pipeline.toml (`grants.processes = true`) and the WIT interface name.
    pub fn name(self) -> &'static str {
        match self {
            Capability::Processes => "processes",
            Capability::Containers => "containers",
            Capability::Kubernetes => "kubernetes",
            Capability::Databases => "databases",
        }
    }
    /// Fully qualified interface name as it appears in a component's imports.
    pub fn interface(self) -> String {
        format!("valero:stage/{}@0.1.0", self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Cap on the total of all linear memories and tables, bytes.
    pub memory: u64,
    /// Cap on captured stdout and stderr, each, bytes.
    pub output: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: 256 * 1024 * 1024,
            output: 1024 * 1024,
        }
    }
}

/// Defaults used when pipeline.toml does not say.
pub const DEFAULT_STAGE_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_PIPELINE_TIMEOUT: Duration = Duration::from_secs(3600);
