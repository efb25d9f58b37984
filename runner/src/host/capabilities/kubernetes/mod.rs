//! The `kubernetes` capability: a stage applies, reads and deletes objects
//! in the cluster its target declares (`[targets.T.kubernetes]`), within the
//! namespaces and kinds of its grant. The host holds the kubeconfig; the
//! guest names objects and never sees credentials or Secret values.
//!
//! * [`Cluster`] is the run-scoped part: the target's cluster, connected on
//!   first use (a run that never deploys never reads the kubeconfig).
//! * [`KubernetesSession`] is one attempt's: it checks every request
//!   against the grant and the host's rules ([`policy`]) before anything is
//!   sent, computes what an apply changed ([`diff`]), reads answers into the
//!   WIT's words ([`status`]), and masks everything it returns.
//!
//! Applies are server-side (field manager `valero`), never forced unless
//! the stage asks; during `valero plan` ([`Cluster::plan_only`]) every apply
//! is a server-side dry run and nothing else may change the cluster.

pub mod diff;
pub mod policy;
pub mod status;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event as CoreEvent, Pod};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, LogParams, Patch,
    PatchParams, PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::host::bindings::valero::stage::kubernetes::{
    self, Applied, ApplyOptions, Change, Error, Event, ObjectRef, PodInfo, Refusal, Rollout,
};
use crate::pipeline::{ClusterSpec, KubeKind, KubeconfigSource, KubernetesGrant, Target};
use crate::secrets::{Maskable, Masker};
use policy::{Denial, Policy};

/// The field manager of every apply.
pub const FIELD_MANAGER: &str = "valero";
/// Most objects one `list` returns.
const MAX_LIST: u32 = 500;
/// Most pods one `pods` returns.
const MAX_PODS: usize = 200;
/// Most bytes of a pod log tail.
const MAX_LOG_BYTES: i64 = 64 * 1024;
/// Most events one `events` returns.
const MAX_EVENTS: usize = 100;
/// How often `wait-rollout` reads the Deployment.
const ROLLOUT_POLL: Duration = Duration::from_millis(250);

/// The target's cluster, for the whole run.
pub struct Cluster {
    target: String,
    spec: Option<ClusterSpec>,
    plan_only: bool,
    client: OnceCell<Result<kube::Client, String>>,
}

impl Cluster {
    pub fn for_target(target: &Target, plan_only: bool) -> Cluster {
        Cluster {
            target: target.name.clone(),
            spec: target.kubernetes.clone(),
            plan_only,
            client: OnceCell::new(),
        }
    }

    /// A cluster reached through `client` (tests feed a mock service here).
    pub fn connected(client: kube::Client, spec: ClusterSpec, plan_only: bool) -> Cluster {
        Cluster {
            target: "test".into(),
            spec: Some(spec),
            plan_only,
            client: OnceCell::new_with(Some(Ok(client))),
        }
    }

    /// During `valero plan`: applies are dry runs, and nothing else changes the cluster.
    pub fn plan_only(&self) -> bool {
        self.plan_only
    }

    fn namespace(&self) -> &str {
        self.spec
            .as_ref()
            .map_or("default", |s| s.namespace.as_str())
    }

    async fn client(&self) -> Result<kube::Client, Error> {
        let connected = self
            .client
            .get_or_init(|| async {
                let Some(spec) = &self.spec else {
                    return Err(format!(
                        "target `{}` declares no cluster\n  help: add [targets.{}.kubernetes] kubeconfig = {{ host_env = \"KUBECONFIG\" }}, namespace = \"…\"",
                        self.target, self.target
                    ));
                };
                connect(spec)
                    .await
                    .map_err(|e| format!("cannot connect to the cluster of target `{}`: {e}", self.target))
            })
            .await;
        connected.clone().map_err(Error::Failed)
    }
}

async fn connect(spec: &ClusterSpec) -> Result<kube::Client, String> {
    let from_file = |paths: Vec<String>| async move {
        let mut merged: Option<Kubeconfig> = None;
        for p in paths.iter().filter(|p| !p.is_empty()) {
            let kc =
                Kubeconfig::read_from(p).map_err(|e| format!("cannot read kubeconfig {p}: {e}"))?;
            merged = Some(match merged {
                None => kc,
                Some(m) => m.merge(kc).map_err(|e| e.to_string())?,
            });
        }
        let kc = merged.ok_or("the kubeconfig path is empty")?;
        let options = KubeConfigOptions {
            context: spec.context.clone(),
            ..Default::default()
        };
        kube::Config::from_custom_kubeconfig(kc, &options)
            .await
            .map_err(|e| format!("invalid kubeconfig: {e}"))
    };
    let mut config = match &spec.kubeconfig {
        KubeconfigSource::InCluster => {
            kube::Config::incluster().map_err(|e| format!("not running in a cluster: {e}"))?
        }
        KubeconfigSource::File(path) => from_file(vec![path.display().to_string()]).await?,
        KubeconfigSource::HostEnv(var) => {
            let value = std::env::var(var).map_err(|_| {
                format!("`{var}` is not set\n  help: export {var}=/path/to/kubeconfig (the cluster's credentials stay on the host)")
            })?;
            from_file(value.split(':').map(str::to_string).collect()).await?
        }
    };
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(Duration::from_secs(60));
    kube::Client::try_from(config).map_err(|e| e.to_string())
}

/// One attempt's use of the cluster.
pub struct KubernetesSession {
    cluster: Arc<Cluster>,
    grant: KubernetesGrant,
    stage: String,
    masker: Arc<Masker>,
}

fn api_resource(k: &KubeKind) -> ApiResource {
    let (group, version) = k.api_version.split_once('/').unwrap_or(("", k.api_version));
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, k.kind), k.plural)
}

fn object_ref(t: &policy::Target) -> ObjectRef {
    ObjectRef {
        api_version: t.kind.api_version.into(),
        kind: t.kind.kind.into(),
        namespace: t.namespace.clone(),
        name: t.name.clone(),
    }
}

impl From<Denial> for Error {
    fn from(d: Denial) -> Error {
        let r = Refusal {
            rule: d.rule.into(),
            detail: d.detail,
        };
        if d.grantable {
            Error::NotGranted(r)
        } else {
            Error::Refused(r)
        }
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, Error> {
    serde_json::to_value(v).map_err(|e| Error::Failed(format!("unreadable answer: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, Error> {
    serde_json::from_value(v).map_err(|e| Error::Invalid(vec![e.to_string()]))
}

/// One JSON or YAML document.
fn parse_manifest(text: &str) -> Result<Value, Error> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Ok(v);
    }
    serde_yaml_ng::from_str::<Value>(text)
        .map_err(|e| Error::Invalid(vec![format!("the manifest is neither JSON nor YAML: {e}")]))
}

/// Fields of a snapshot the server sets; a restore sends the rest.
fn strip_server_fields(obj: &mut Value) {
    if let Some(m) = obj.as_object_mut() {
        m.remove("status");
    }
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in diff::SERVER_METADATA {
            meta.remove(*k);
        }
    }
}

impl KubernetesSession {
    pub fn new(
        cluster: Arc<Cluster>,
        grant: KubernetesGrant,
        stage: String,
        masker: Arc<Masker>,
    ) -> Self {
        KubernetesSession {
            cluster,
            grant,
            stage,
            masker,
        }
    }

    fn policy(&self) -> Policy<'_> {
        Policy {
            stage: &self.stage,
            grant: &self.grant,
            default_namespace: self.cluster.namespace(),
        }
    }

    fn masked<T: Maskable>(&self, r: Result<T, Error>) -> Result<T, Error> {
        r.map(|v| self.masker.masked(v))
            .map_err(|e| self.masker.masked(e))
    }

    fn plan_refusal(&self, what: &str) -> Error {
        Error::Refused(Refusal {
            rule: "plan".into(),
            detail: format!(
                "`valero plan` changes nothing in the cluster: `{what}` is refused while planning"
            ),
        })
    }

    async fn api(&self, t: &policy::Target) -> Result<Api<DynamicObject>, Error> {
        let client = self.cluster.client().await?;
        let ar = api_resource(t.kind);
        Ok(if t.kind.namespaced {
            Api::namespaced_with(client, &t.namespace, &ar)
        } else {
            Api::all_with(client, &ar)
        })
    }

    /// The namespace a read of pods or events goes to, if granted.
    fn read_namespace(&self, namespace: &str) -> Result<String, Error> {
        Ok(self.policy().granted_namespace(namespace)?)
    }

    async fn apply(&self, manifest: &str, options: ApplyOptions) -> Result<Applied, Error> {
        let mut obj = parse_manifest(manifest)?;
        let t = self.policy().manifest(&mut obj)?;
        let object = object_ref(&t);
        let api = self.api(&t).await?;
        let before = api
            .get_opt(&t.name)
            .await
            .map_err(|e| status::api_error(e, &object))?;
        let mut params = PatchParams::apply(FIELD_MANAGER);
        params.dry_run = options.dry_run || self.cluster.plan_only;
        params.force = options.force_conflicts;
        let after = api
            .patch(&t.name, &params, &Patch::Apply(&obj))
            .await
            .map_err(|e| status::api_error(e, &object))?;
        let mut after = to_json(&after)?;
        let (change, changed_fields) = match before {
            None => (Change::Created, Vec::new()),
            Some(b) => {
                let fields = diff::changed_paths(&to_json(&b)?, &after);
                if fields.is_empty() {
                    (Change::Unchanged, fields)
                } else {
                    (Change::Configured, fields)
                }
            }
        };
        policy::redact(&mut after);
        Ok(Applied {
            object,
            change,
            changed_fields,
            result: after.to_string(),
        })
    }

    async fn get(&self, r: &ObjectRef) -> Result<Option<String>, Error> {
        let t = self
            .policy()
            .target(&r.api_version, &r.kind, &r.namespace, &r.name)?;
        let found = self
            .api(&t)
            .await?
            .get_opt(&t.name)
            .await
            .map_err(|e| status::api_error(e, r))?;
        found
            .map(|o| {
                let mut v = to_json(&o)?;
                policy::redact(&mut v);
                Ok(v.to_string())
            })
            .transpose()
    }

    async fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        selector: &str,
    ) -> Result<Vec<String>, Error> {
        let policy = self.policy();
        let k = policy.kind(api_version, kind)?;
        let t = policy::Target {
            kind: k,
            namespace: policy.namespace(k, namespace)?,
            name: String::new(),
        };
        let object = object_ref(&t);
        let mut params = ListParams::default().limit(MAX_LIST);
        if !selector.is_empty() {
            params = params.labels(selector);
        }
        let list = self
            .api(&t)
            .await?
            .list(&params)
            .await
            .map_err(|e| status::api_error(e, &object))?;
        if list
            .metadata
            .continue_
            .as_deref()
            .is_some_and(|c| !c.is_empty())
        {
            return Err(Error::Failed(format!(
                "more than {MAX_LIST} {kind} objects match; narrow the label selector"
            )));
        }
        list.items
            .iter()
            .map(|o| {
                let mut v = to_json(o)?;
                v["apiVersion"] = k.api_version.into();
                v["kind"] = k.kind.into();
                policy::redact(&mut v);
                Ok(v.to_string())
            })
            .collect()
    }

    async fn delete(&self, r: &ObjectRef) -> Result<bool, Error> {
        if self.cluster.plan_only {
            return Err(self.plan_refusal("delete"));
        }
        let t = self
            .policy()
            .target(&r.api_version, &r.kind, &r.namespace, &r.name)?;
        match self
            .api(&t)
            .await?
            .delete(&t.name, &DeleteParams::foreground())
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(status::api_error(e, r)),
        }
    }

    async fn replace(&self, manifest: &str) -> Result<String, Error> {
        if self.cluster.plan_only {
            return Err(self.plan_refusal("replace"));
        }
        let mut obj = parse_manifest(manifest)?;
        let t = self.policy().manifest(&mut obj)?;
        let object = object_ref(&t);
        strip_server_fields(&mut obj);
        let api = self.api(&t).await?;
        let err = |e| status::api_error(e, &object);
        let current = api.get_opt(&t.name).await.map_err(err)?;
        let restored = match current {
            Some(cur) => {
                // The snapshot's content at the current version: a full
                // replace, so fields added since are gone again.
                obj["metadata"]["resourceVersion"] = cur.metadata.resource_version.clone().into();
                let o: DynamicObject = from_json(obj)?;
                api.replace(&t.name, &PostParams::default(), &o)
                    .await
                    .map_err(err)?
            }
            None => {
                let o: DynamicObject = from_json(obj)?;
                api.create(&PostParams::default(), &o).await.map_err(err)?
            }
        };
        let mut v = to_json(&restored)?;
        policy::redact(&mut v);
        Ok(v.to_string())
    }

    async fn rollout_status(&self, namespace: &str, name: &str) -> Result<Rollout, Error> {
        let t = self
            .policy()
            .target("apps/v1", "Deployment", namespace, name)?;
        let object = object_ref(&t);
        let d = self
            .api(&t)
            .await?
            .get(&t.name)
            .await
            .map_err(|e| status::api_error(e, &object))?;
        Ok(status::rollout(&to_json(&d)?))
    }

    async fn wait_rollout(
        &self,
        namespace: &str,
        name: &str,
        timeout_ms: u32,
    ) -> Result<Rollout, Error> {
        let until = tokio::time::Instant::now() + Duration::from_millis(timeout_ms.into());
        loop {
            let r = self.rollout_status(namespace, name).await?;
            if r.complete || r.failure.is_some() || tokio::time::Instant::now() >= until {
                return Ok(r);
            }
            tokio::time::sleep_until((tokio::time::Instant::now() + ROLLOUT_POLL).min(until)).await;
        }
    }

    async fn events(&self, r: &ObjectRef, limit: u32) -> Result<Vec<Event>, Error> {
        let ns = self.read_namespace(&r.namespace)?;
        self.policy().involved(&r.kind, &r.name)?;
        let client = self.cluster.client().await?;
        let api: Api<CoreEvent> = Api::namespaced(client, &ns);
        let params = ListParams::default().fields(&format!(
            "involvedObject.name={},involvedObject.kind={}",
            r.name, r.kind
        ));
        let list = api
            .list(&params)
            .await
            .map_err(|e| status::api_error(e, r))?;
        let mut events: Vec<Value> = list.items.iter().map(to_json).collect::<Result<_, _>>()?;
        events.sort_by_key(|e| std::cmp::Reverse(status::event_time(e)));
        let limit = (limit as usize).min(MAX_EVENTS);
        Ok(events.iter().take(limit).map(status::event).collect())
    }

    async fn pods(&self, namespace: &str, selector: &str) -> Result<Vec<PodInfo>, Error> {
        let ns = self.read_namespace(namespace)?;
        let client = self.cluster.client().await?;
        let api: Api<Pod> = Api::namespaced(client, &ns);
        let mut params = ListParams::default();
        if !selector.is_empty() {
            params = params.labels(selector);
        }
        let object = ObjectRef {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: ns.clone(),
            name: String::new(),
        };
        let list = api
            .list(&params)
            .await
            .map_err(|e| status::api_error(e, &object))?;
        list.items
            .iter()
            .take(MAX_PODS)
            .map(|p| Ok(status::pod(&to_json(p)?)))
            .collect()
    }

    async fn pod_logs(&self, namespace: &str, pod: &str, tail: u32) -> Result<String, Error> {
        let ns = self.read_namespace(namespace)?;
        let object = ObjectRef {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: ns.clone(),
            name: pod.into(),
        };
        if !policy::valid_name(pod) {
            return Err(Error::NotFound(object));
        }
        let client = self.cluster.client().await?;
        let api: Api<Pod> = Api::namespaced(client, &ns);
        let params = LogParams {
            tail_lines: Some(tail.into()),
            limit_bytes: Some(MAX_LOG_BYTES),
            ..Default::default()
        };
        api.logs(pod, &params)
            .await
            .map_err(|e| status::api_error(e, &object))
    }
}

impl Maskable for Error {
    fn mask_with(&mut self, m: &Masker) {
        match self {
            Error::NotGranted(r) | Error::Refused(r) => r.detail.mask_with(m),
            Error::Conflict(c) => c.iter_mut().for_each(|c| {
                c.manager.mask_with(m);
                c.field.mask_with(m);
            }),
            Error::NotFound(r) => r.name.mask_with(m),
            Error::Invalid(causes) => causes.mask_with(m),
            Error::Failed(msg) => msg.mask_with(m),
        }
    }
}

impl Maskable for Applied {
    fn mask_with(&mut self, m: &Masker) {
        self.changed_fields.mask_with(m);
        self.result.mask_with(m);
    }
}

impl Maskable for Rollout {
    fn mask_with(&mut self, m: &Masker) {
        self.failure.mask_with(m);
    }
}

impl Maskable for Event {
    fn mask_with(&mut self, m: &Masker) {
        self.message.mask_with(m);
        self.object.mask_with(m);
    }
}

impl Maskable for PodInfo {
    fn mask_with(&mut self, m: &Masker) {
        self.conditions.mask_with(m);
        self.containers.mask_with(m);
    }
}

impl kubernetes::Host for KubernetesSession {
    async fn default_namespace(&mut self) -> wasmtime::Result<String> {
        Ok(self.cluster.namespace().to_string())
    }

    async fn plan_only(&mut self) -> wasmtime::Result<bool> {
        Ok(self.cluster.plan_only)
    }

    async fn apply(
        &mut self,
        manifest: String,
        options: ApplyOptions,
    ) -> wasmtime::Result<Result<Applied, Error>> {
        Ok(self.masked(KubernetesSession::apply(self, &manifest, options).await))
    }

    async fn get(&mut self, object: ObjectRef) -> wasmtime::Result<Result<Option<String>, Error>> {
        Ok(self.masked(KubernetesSession::get(self, &object).await))
    }

    async fn list(
        &mut self,
        api_version: String,
        kind: String,
        namespace: String,
        label_selector: String,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let r =
            KubernetesSession::list(self, &api_version, &kind, &namespace, &label_selector).await;
        Ok(self.masked(r))
    }

    async fn delete(&mut self, object: ObjectRef) -> wasmtime::Result<Result<bool, Error>> {
        Ok(self.masked(KubernetesSession::delete(self, &object).await))
    }

    async fn replace(&mut self, manifest: String) -> wasmtime::Result<Result<String, Error>> {
        Ok(self.masked(KubernetesSession::replace(self, &manifest).await))
    }

    async fn rollout_status(
        &mut self,
        namespace: String,
        name: String,
    ) -> wasmtime::Result<Result<Rollout, Error>> {
        Ok(self.masked(KubernetesSession::rollout_status(self, &namespace, &name).await))
    }

    async fn wait_rollout(
        &mut self,
        namespace: String,
        name: String,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<Rollout, Error>> {
        Ok(self.masked(KubernetesSession::wait_rollout(self, &namespace, &name, timeout_ms).await))
    }

    async fn events(
        &mut self,
        object: ObjectRef,
        limit: u32,
    ) -> wasmtime::Result<Result<Vec<Event>, Error>> {
        Ok(self.masked(KubernetesSession::events(self, &object, limit).await))
    }

    async fn pods(
        &mut self,
        namespace: String,
        label_selector: String,
    ) -> wasmtime::Result<Result<Vec<PodInfo>, Error>> {
        Ok(self.masked(KubernetesSession::pods(self, &namespace, &label_selector).await))
    }

    async fn pod_logs(
        &mut self,
        namespace: String,
        pod: String,
        tail: u32,
    ) -> wasmtime::Result<Result<String, Error>> {
        Ok(self.masked(KubernetesSession::pod_logs(self, &namespace, &pod, tail).await))
    }
}
