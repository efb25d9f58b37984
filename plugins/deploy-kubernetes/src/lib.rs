//! Stage plugin `deploy-kubernetes`: deploys services to a Kubernetes cluster
//! through the `kubernetes` capability (server-side apply with field manager
//! `valero`), never through `kubectl`.
//!
//! ```toml
//! [stages.deploy-k8s]
//! plugin = "builtin:deploy-kubernetes"
//! when = ["staging", "production"]
//! timeout = "10m"                   # bounds the rollout wait too
//! grants = { kubernetes = { namespaces = ["neuroerp-staging"],
//!                           kinds = ["Namespace", "ConfigMap", "Service", "Deployment"] } }
//! [stages.deploy-k8s.with]
//! namespace = "neuroerp-staging"
//! image = "registry.neuroerp.example/neuroerp/{service}:{version}"
//! replicas = 2
//! resources = { requests = { cpu = "50m", memory = "64Mi" }, limits = { memory = "256Mi" } }
//! [stages.deploy-k8s.with.services.fibu-service]
//! version = "1.0.5"
//! port = 8101
//! env = { LOG_LEVEL = "info" }
//! secret_env = { DATABASE_URL = "neuroerp-db/fibu-service-url" }
//! ```
//!
//! `with` keys:
//!
//! | key | default | |
//! |---|---|---|
//! | `namespace` | the target's (`[targets.T.kubernetes] namespace`) | namespace of every namespaced object that names none |
//! | `image` | required to render | image template; `{service}` and `{version}` are replaced |
//! | `replicas` | 1 | `spec.replicas` of every rendered Deployment |
//! | `progress_deadline_seconds` | 120 | `spec.progressDeadlineSeconds`: after it the rollout counts as failed |
//! | `rollout_timeout_ms` | none | cap on the wait for all rollouts; the wait also ends before the stage's remaining time does (less a margin, 2–15 s, for diagnostics and rollback) |
//! | `force_conflicts` | false | take over fields other field managers own (else such a conflict fails the stage, changing nothing) |
//! | `rollback` | true | on failure, put back what this attempt changed |
//! | `resources` | none | `{ requests = {…}, limits = {…} }` of every rendered container; quantities as strings (`"50m"`, `"64Mi"`) or numbers |
//! | `manifests` | none | YAML files, or directories of `*.yaml` / `*.yml` (name order, not recursive), applied instead of rendering; multi-document files split on lines `---`; `kind: List` is expanded. Needs an `fs` read grant. Excludes `services`, `image`, `replicas`, `progress_deadline_seconds` and `resources` |
//! | `services.<name>.version` | required | image `{version}` and label `app.kubernetes.io/version` |
//! | `services.<name>.port` | required | container port, Service port and target port, env `PORT` |
//! | `services.<name>.env` | `{}` | plain configuration: ConfigMap `<name>-config`, used through `envFrom` |
//! | `services.<name>.secret_env` | `{}` | `VAR = "secret-name/key"`: env `valueFrom.secretKeyRef` (references only; no values pass through valero) |
//!
//! Rendered (without `manifests`): Namespace `<namespace>`; per service
//! ConfigMap `<name>-config`, Service `<name>` (ClusterIP) and Deployment
//! `<name>` (labels `app.kubernetes.io/{name,instance,version,part-of=neuroerp,managed-by=valero}`,
//! selector on `name` and `instance`, probes `GET /ready` and `/health` on the
//! port, annotation `valero.dev/run-id` on the Deployment only, and
//! `valero.dev/config-hash` (sha256 of the ConfigMap data) on the pod
//! template, so a changed value rolls exactly that service's pods and an
//! unchanged rerun rolls none).
//!
//! Flow: objects in apply order (Namespace, …, ConfigMaps, Services,
//! Deployments, …); a server-side dry run of each (check `plan Kind/name`) —
//! any error fails the stage before anything changes, and under `valero plan`
//! the stage stops there; a snapshot (`get`) of each; apply in order (check
//! `apply Kind/name`); wait for every Deployment's rollout on one deadline
//! (check `rollout <name>`, with pods, events and log tail when it fails). On
//! a failed apply or rollout, with `rollback`, the changed objects are put
//! back in reverse order — created ones deleted, changed ones replaced by
//! their snapshot — and listed in check `rollback`; the stage fails either way.
//!
//! Outputs:
//!
//! ```json
//! {"namespace": "neuroerp-staging", "plan_only": false,
//!  "objects": [{"kind": "Deployment", "name": "fibu-service", "namespace": "neuroerp-staging",
//!               "change": "configured", "changed_fields": ["spec.template.spec.containers[0].image"]}],
//!  "rolled_out": [{"name": "fibu-service", "namespace": "neuroerp-staging",
//!                  "ready": 2, "desired": 2, "duration_ms": 8123}],
//!  "rollback": {"deleted": ["Service/x"], "restored": ["Deployment/fibu-service"], "failed": []}}
//! ```
//!
//! (`objects`: the plan under `valero plan`, else what was applied; `change`
//! is `created`, `configured` or `unchanged`; `rollback` only after one.)

mod cluster;
mod config;
mod deploy;
mod kerror;
mod objects;
mod render;

use valero_sdk::kubernetes as k8s;
use valero_sdk::{Plugin, Report};

use config::Config;
use objects::Object;

struct DeployKubernetes;

impl Plugin for DeployKubernetes {
    fn run() -> Report {
        let config: Config = match valero_sdk::config() {
            Ok(config) => config,
            Err(e) => return Report::fail(e),
        };
        let problems = config.problems();
        if !problems.is_empty() {
            return Report::fail(format!(
                "invalid `with` config:\n  - {}",
                problems.join("\n  - ")
            ));
        }
        let namespace = config
            .namespace
            .clone()
            .unwrap_or_else(k8s::default_namespace);
        match load_objects(&config, &namespace) {
            Ok(objects) => deploy::Deploy::new(&cluster::Host, &config, namespace, objects).run(),
            Err(e) => Report::fail(e),
        }
    }
}

/// The objects to apply, rendered or read, in apply order.
fn load_objects(config: &Config, namespace: &str) -> Result<Vec<Object>, String> {
    let mut objects = match &config.manifests {
        Some(paths) => objects::read_manifests(paths, namespace)?,
        None => render::render(config, namespace, &valero_sdk::run_id())?
            .into_iter()
            .map(|manifest| objects::prepare(manifest, namespace, "rendered from `services`"))
            .collect::<Result<_, _>>()?,
    };
    objects::order(&mut objects)?;
    Ok(objects)
}

valero_sdk::export_plugin!(DeployKubernetes);
