//! The `kubernetes` capability and `deploy-kubernetes` against a real
//! Kubernetes API server (with controller-manager, scheduler and kwok's fake
//! nodes, so Deployments really roll out): `.ci/test-cluster up` starts one
//! and prints its kubeconfig, which `.ci/run` exports as
//! `VALERO_TEST_KUBECONFIG`. Without it these tests are listed as ignored,
//! with the reason; with it they run against that cluster (a team can point
//! them at its own cluster or kind the same way).
//!
//! Each test owns one namespace and deletes it first, so they run in
//! parallel and again on the same cluster. kwok never makes a pod of an
//! image containing `valero-test-fail` ready: that is the failing rollout.

mod common;

use std::time::Duration;

use common::{Project, stage};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

fn kubeconfig() -> String {
    std::env::var("VALERO_TEST_KUBECONFIG")
        .expect("VALERO_TEST_KUBECONFIG: the kubeconfig `.ci/test-cluster up` printed")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn client() -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// Deletes `ns` (if there) and waits until it is gone.
async fn fresh_namespace(ns: &str) {
    let api: Api<Namespace> = Api::all(client().await);
    let _ = api.delete(ns, &DeleteParams::foreground()).await;
    for _ in 0..240 {
        if api.get_opt(ns).await.unwrap().is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("namespace {ns} was not deleted within 2 minutes");
}

/// A pipeline deploying `services` (name -> `with.services` entry) to `ns`.
fn pipeline(ns: &str, services: &Value, extra_with: &str) -> String {
    let mut s = format!(
        r#"[pipeline]
name = "k8s-{ns}"
default_target = "staging"
timeout = "5m"

[targets.staging.kubernetes]
kubeconfig = {{ host_env = "KUBECONFIG" }}
namespace = "{ns}"

[stages.deploy]
plugin = "builtin:deploy-kubernetes"
timeout = "3m"
grants = {{ kubernetes = {{ namespaces = ["{ns}"], kinds = ["Namespace", "ConfigMap", "Service", "Deployment"] }} }}
[stages.deploy.with]
image = "registry.test/{{service}}:{{version}}"
replicas = 2
{extra_with}
"#
    );
    for (name, spec) in services.as_object().unwrap() {
        s.push_str(&format!("[stages.deploy.with.services.{name}]\n"));
        for (key, value) in spec.as_object().unwrap() {
            // Inline values: a table here would start a new section.
            let value = toml::Value::try_from(value).unwrap();
            s.push_str(&format!("{key} = {value}\n"));
        }
    }
    s
}

fn project(pipeline: &str) -> Project {
    Project::new(pipeline)
}

fn run(p: &Project, extra: &[&str]) -> (i32, Value, String) {
    let (code, report, out) = p.run_with_env(extra, &[("KUBECONFIG", &kubeconfig())]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (code, report, text)
}

fn plan(p: &Project, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["plan"];
    args.extend_from_slice(extra);
    let out = p
        .command(&args)
        .env("KUBECONFIG", kubeconfig())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `Kind/name` -> change of every object in the deploy stage's outputs.
fn changes(report: &Value, stage_name: &str) -> Vec<(String, String)> {
    stage(report, stage_name)["outputs"]["objects"]
        .as_array()
        .unwrap_or_else(|| panic!("no objects in {report:#}"))
        .iter()
        .map(|o| {
            (
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap(),
                    o["name"].as_str().unwrap()
                ),
                o["change"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn two_services(level: &str) -> Value {
    json!({
        "alpha": { "version": "1.0.0", "port": 8080, "env": { "LEVEL": level } },
        "beta": { "version": "2.1.0", "port": 8081, "env": { "LEVEL": "info" } },
    })
}

/// What an object is, without what the server keeps by itself.
fn content(v: &Value) -> Value {
    let mut v = v.clone();
    let o = v.as_object_mut().unwrap();
    o.remove("status");
    let meta = o["metadata"].as_object_mut().unwrap();
    for k in [
        "managedFields",
        "resourceVersion",
        "generation",
        "uid",
        "creationTimestamp",
    ] {
        meta.remove(k);
    }
    if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
        a.remove("deployment.kubernetes.io/revision");
    }
    v
}

async fn objects_of(ns: &str, names: &[&str]) -> Vec<Value> {
    let c = client().await;
    let mut out = Vec::new();
    for n in names {
        let d: Api<Deployment> = Api::namespaced(c.clone(), ns);
        let s: Api<Service> = Api::namespaced(c.clone(), ns);
        let m: Api<ConfigMap> = Api::namespaced(c.clone(), ns);
        out.push(content(
            &serde_json::to_value(d.get(n).await.unwrap()).unwrap(),
        ));
        out.push(content(
            &serde_json::to_value(s.get(n).await.unwrap()).unwrap(),
        ));
        out.push(content(
            &serde_json::to_value(m.get(&format!("{n}-config")).await.unwrap()).unwrap(),
        ));
    }
    out
}

#[test]
#[cfg_attr(
    not(valero_test_kubernetes),
    ignore = "needs a Kubernetes API server: set VALERO_TEST_KUBECONFIG (`.ci/test-cluster up` prints one; .ci/run does)"
)]
fn staging_deploys_the_seven_services_and_a_rerun_changes_nothing() {
    runtime().block_on(fresh_namespace("neuroerp-staging"));
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let p = project(&std::fs::read_to_string(root.join("pipeline.toml")).unwrap());
    // The stages read the sources the pipeline names (repo-check).
    for f in ["Cargo.toml", "README.md"] {
        std::fs::copy(root.join(f), p.path().join(f)).unwrap();
    }
    std::fs::create_dir_all(p.path().join("wit")).unwrap();
    std::fs::copy(root.join("wit/stage.wit"), p.path().join("wit/stage.wit")).unwrap();

    // The plan of an empty namespace: everything would be created, nothing is.
    let (code, text) = plan(&p, &["--target", "staging"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("+ Deployment/fibu-service"), "{text}");
    assert!(
        text.contains("would create 22, change 0, leave 0 unchanged"),
        "{text}"
    );

    let (code, report, text) = run(&p, &["--target", "staging"]);
    assert_eq!(code, 0, "{text}\n{report:#}");
    let first = changes(&report, "deploy-k8s");
    assert_eq!(first.len(), 22, "{first:?}");
    assert!(first.iter().all(|(_, c)| c == "created"), "{first:?}");

    let rt = runtime();
    let deployments: Vec<Deployment> = rt.block_on(async {
        let api: Api<Deployment> = Api::namespaced(client().await, "neuroerp-staging");
        api.list(&Default::default()).await.unwrap().items
    });
    let mut available: Vec<(String, String, i32)> = deployments
        .iter()
        .map(|d| {
            let labels = d.metadata.labels.clone().unwrap_or_default();
            (
                d.metadata.name.clone().unwrap(),
                labels["app.kubernetes.io/version"].clone(),
                d.status
                    .as_ref()
                    .and_then(|s| s.available_replicas)
                    .unwrap_or(0),
            )
        })
        .collect();
    available.sort();
    assert_eq!(
        available,
        [
            ("api-gateway".into(), "1.3.1".into(), 2),
            ("auth-service".into(), "1.2.0".into(), 2),
            ("bi-service".into(), "1.0.3".into(), 2),
            ("crm-service".into(), "1.1.2".into(), 2),
            ("event-bus".into(), "1.4.0".into(), 2),
            ("fibu-service".into(), "1.0.5".into(), 2),
            ("kasse-service".into(), "1.0.8".into(), 2),
        ]
    );
    // Secrets are references, never values.
    let fibu = deployments
        .iter()
        .find(|d| d.metadata.name.as_deref() == Some("fibu-service"))
        .unwrap();
    let fibu = serde_json::to_value(fibu).unwrap();
    assert_eq!(
        fibu.pointer("/spec/template/spec/containers/0/image")
            .unwrap(),
        "registry.neuroerp.example/neuroerp/fibu-service:1.0.5"
    );
    assert!(fibu.to_string().contains("secretKeyRef"), "{fibu:#}");

    let (code, report, text) = run(&p, &["--target", "staging"]);
    assert_eq!(code, 0, "{text}");
    let second = changes(&report, "deploy-k8s");
    assert!(
        second.iter().all(|(_, c)| c == "unchanged"),
        "a rerun changed something: {second:?}"
    );
    let (code, text) = plan(&p, &["--target", "staging"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("would create 0, change 0, leave 22 unchanged"),
        "{text}"
    );
}

#[test]
#[cfg_attr(
    not(valero_test_kubernetes),
    ignore = "needs a Kubernetes API server: set VALERO_TEST_KUBECONFIG (`.ci/test-cluster up` prints one; .ci/run does)"
)]
fn a_changed_config_value_changes_only_that_service_and_the_plan_shows_it_first() {
    let ns = "valero-test-config";
    runtime().block_on(fresh_namespace(ns));
    let p = project(&pipeline(ns, &two_services("info"), ""));
    let (code, report, text) = run(&p, &[]);
    assert_eq!(code, 0, "{text}\n{report:#}");

    std::fs::write(
        p.path().join("pipeline.toml"),
        pipeline(ns, &two_services("debug"), ""),
    )
    .unwrap();
    let before = runtime().block_on(objects_of(ns, &["alpha", "beta"]));
    let (code, text) = plan(&p, &[]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("~ ConfigMap/alpha-config: data.LEVEL"),
        "{text}"
    );
    assert!(text.contains("= ConfigMap/beta-config"), "{text}");
    assert!(text.contains("~ Deployment/alpha:"), "{text}");
    assert!(text.contains("= Deployment/beta"), "{text}");
    assert_eq!(
        runtime().block_on(objects_of(ns, &["alpha", "beta"])),
        before,
        "the plan changed the cluster"
    );

    let (code, report, text) = run(&p, &[]);
    assert_eq!(code, 0, "{text}");
    let mut changed: Vec<(String, String)> = changes(&report, "deploy")
        .into_iter()
        .filter(|(_, c)| c != "unchanged")
        .collect();
    changed.sort();
    assert_eq!(
        changed,
        [
            (
                "ConfigMap/alpha-config".to_string(),
                "configured".to_string()
            ),
            ("Deployment/alpha".to_string(), "configured".to_string()),
        ]
    );
}

#[test]
#[cfg_attr(
    not(valero_test_kubernetes),
    ignore = "needs a Kubernetes API server: set VALERO_TEST_KUBECONFIG (`.ci/test-cluster up` prints one; .ci/run does)"
)]
fn a_field_another_manager_owns_is_a_conflict_that_names_it_and_changes_nothing() {
    let ns = "valero-test-conflict";
    runtime().block_on(fresh_namespace(ns));
    let p = project(&pipeline(ns, &two_services("info"), ""));
    let (code, _, text) = run(&p, &[]);
    assert_eq!(code, 0, "{text}");
    // Another team scales alpha with its own field manager (taking the field over).
    runtime().block_on(async {
        let api: Api<Deployment> = Api::namespaced(client().await, ns);
        let patch = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "alpha"}, "spec": {"replicas": 3}});
        api.patch(
            "alpha",
            &PatchParams::apply("ops-team").force(),
            &Patch::Apply(&patch),
        )
        .await
        .unwrap();
    });
    let (code, report, text) = run(&p, &[]);
    assert_ne!(code, 0, "{text}");
    let deploy = stage(&report, "deploy");
    let all = deploy.to_string();
    assert!(all.contains("ops-team"), "{deploy:#}");
    assert!(all.contains("spec.replicas"), "{deploy:#}");
    assert!(all.contains("force_conflicts = true"), "{deploy:#}");
    let replicas = runtime().block_on(async {
        let api: Api<Deployment> = Api::namespaced(client().await, ns);
        api.get("alpha").await.unwrap().spec.unwrap().replicas
    });
    assert_eq!(
        replicas,
        Some(3),
        "the conflicting apply changed the object"
    );
}

#[test]
#[cfg_attr(
    not(valero_test_kubernetes),
    ignore = "needs a Kubernetes API server: set VALERO_TEST_KUBECONFIG (`.ci/test-cluster up` prints one; .ci/run does)"
)]
fn a_failing_rollout_is_rolled_back_to_the_snapshot() {
    let ns = "valero-test-rollback";
    runtime().block_on(fresh_namespace(ns));
    let with = "progress_deadline_seconds = 8\n";
    let p = project(&pipeline(ns, &two_services("info"), with));
    let (code, _, text) = run(&p, &[]);
    assert_eq!(code, 0, "{text}");
    let snapshot = runtime().block_on(objects_of(ns, &["alpha", "beta"]));

    // alpha's new version is an image kwok never makes ready, with new config.
    let mut broken = two_services("debug");
    broken["alpha"]["version"] = json!("9.9.9-valero-test-fail");
    std::fs::write(p.path().join("pipeline.toml"), pipeline(ns, &broken, with)).unwrap();
    let (code, report, text) = run(&p, &[]);
    assert_ne!(code, 0, "{text}");
    let deploy = stage(&report, "deploy");
    let rollout = deploy["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "rollout alpha")
        .unwrap_or_else(|| panic!("{deploy:#}"));
    assert_eq!(rollout["verdict"], "fail", "{rollout:#}");
    assert!(
        rollout["message"]
            .as_str()
            .unwrap()
            .contains("ProgressDeadlineExceeded"),
        "{rollout:#}"
    );
    let restored = deploy["outputs"]["rollback"]["restored"].to_string();
    assert!(restored.contains("Deployment/alpha"), "{deploy:#}");
    assert!(restored.contains("ConfigMap/alpha-config"), "{deploy:#}");

    let after = runtime().block_on(objects_of(ns, &["alpha", "beta"]));
    assert_eq!(after, snapshot, "the objects differ from the snapshot");
}

#[test]
#[cfg_attr(
    not(valero_test_kubernetes),
    ignore = "needs a Kubernetes API server: set VALERO_TEST_KUBECONFIG (`.ci/test-cluster up` prints one; .ci/run does)"
)]
fn a_namespace_outside_the_grant_is_refused_with_the_rule() {
    let ns = "valero-test-grant";
    // The target's namespace is not the granted one.
    let text = pipeline(ns, &two_services("info"), "namespace = \"kube-system\"\n");
    let p = project(&text);
    let (code, report, out) = run(&p, &[]);
    assert_ne!(code, 0, "{out}");
    let deploy = stage(&report, "deploy").to_string();
    assert!(
        deploy.contains("namespace `kube-system` is not granted"),
        "{deploy}"
    );
    assert!(deploy.contains("grants.kubernetes.namespaces"), "{deploy}");
}
