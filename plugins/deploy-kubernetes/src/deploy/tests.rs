//! The deploy flow against a fake cluster: a store of objects with
//! server-side-apply-like change detection and scripted failures.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use valero_sdk::bindings::valero::stage::types::{Report as WitReport, Verdict};
use valero_sdk::kubernetes::{
    Applied, ApplyOptions, Change, Error, Event, FieldConflict, ObjectRef, PodInfo, Rollout,
};

use super::Deploy;
use crate::cluster::{Cluster, Level};
use crate::config::Config;
use crate::objects::{self, Object};
use crate::render;

type Key = (String, String, String);

#[derive(Default)]
struct Fake {
    store: RefCell<BTreeMap<Key, Value>>,
    calls: RefCell<Vec<String>>,
    logs: RefCell<Vec<String>>,
    plan_only: bool,
    remaining: Option<Duration>,
    /// `Kind/name` → error of its real apply.
    fail_apply: BTreeMap<String, Error>,
    /// `Kind/name` → error of its dry run.
    fail_dry_run: BTreeMap<String, Error>,
    /// Deployment name → what waiting for its rollout returns (default: complete).
    rollouts: BTreeMap<String, Rollout>,
    wait_timeouts: RefCell<Vec<u32>>,
}

fn key(v: &Value) -> Key {
    let s = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (s("/kind"), s("/metadata/namespace"), s("/metadata/name"))
}

fn id(k: &Key) -> String {
    format!("{}/{}", k.0, k.2)
}

fn reference(k: &Key, api_version: &str) -> ObjectRef {
    ObjectRef {
        api_version: api_version.into(),
        kind: k.0.clone(),
        namespace: k.1.clone(),
        name: k.2.clone(),
    }
}

/// Dotted paths whose values differ (`metadata.annotations.valero.dev/run-id`).
fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for k in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                diff(
                    &p,
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        _ if a != b => out.push(path.to_string()),
        _ => {}
    }
}

fn complete(desired: i32) -> Rollout {
    Rollout {
        generation: 2,
        observed_generation: 2,
        desired,
        updated: desired,
        ready: desired,
        available: desired,
        complete: true,
        failure: None,
    }
}

fn stuck(failure: Option<&str>) -> Rollout {
    Rollout {
        generation: 3,
        observed_generation: 3,
        desired: 2,
        updated: 1,
        ready: 0,
        available: 0,
        complete: false,
        failure: failure.map(str::to_string),
    }
}

impl Fake {
    fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }

    fn has(&self, kind: &str, name: &str) -> bool {
        self.store
            .borrow()
            .keys()
            .any(|k| k.0 == kind && k.2 == name)
    }

    fn object(&self, kind: &str, name: &str) -> Value {
        self.store
            .borrow()
            .iter()
            .find(|(k, _)| k.0 == kind && k.2 == name)
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Null)
    }
}

impl Cluster for Fake {
    fn plan_only(&self) -> bool {
        self.plan_only
    }
    fn remaining(&self) -> Duration {
        self.remaining.unwrap_or(Duration::from_secs(600))
    }
    fn apply(&self, manifest: &str, options: ApplyOptions) -> Result<Applied, Error> {
        let value: Value = serde_json::from_str(manifest).expect("the flow sends JSON");
        let k = key(&value);
        let verb = if options.dry_run { "dry-run" } else { "apply" };
        self.calls.borrow_mut().push(format!("{verb} {}", id(&k)));
        let scripted = if options.dry_run {
            &self.fail_dry_run
        } else {
            &self.fail_apply
        };
        if let Some(e) = scripted.get(&id(&k)) {
            return Err(e.clone());
        }
        let ns_key = ("Namespace".to_string(), String::new(), k.1.clone());
        if !k.1.is_empty() && !self.store.borrow().contains_key(&ns_key) {
            return Err(Error::NotFound(reference(&ns_key, "v1")));
        }
        let (change, changed_fields) = match self.store.borrow().get(&k) {
            None => (Change::Created, Vec::new()),
            Some(old) if *old == value => (Change::Unchanged, Vec::new()),
            Some(old) => {
                let mut fields = Vec::new();
                diff("", old, &value, &mut fields);
                (Change::Configured, fields)
            }
        };
        if !options.dry_run {
            self.store.borrow_mut().insert(k.clone(), value.clone());
        }
        Ok(Applied {
            object: reference(&k, value["apiVersion"].as_str().unwrap_or_default()),
            change,
            changed_fields,
            result: manifest.to_string(),
        })
    }
    fn get(&self, object: &ObjectRef) -> Result<Option<String>, Error> {
        let k = (
            object.kind.clone(),
            object.namespace.clone(),
            object.name.clone(),
        );
        self.calls.borrow_mut().push(format!("get {}", id(&k)));
        Ok(self.store.borrow().get(&k).map(Value::to_string))
    }
    fn delete(&self, object: &ObjectRef) -> Result<bool, Error> {
        let k = (
            object.kind.clone(),
            object.namespace.clone(),
            object.name.clone(),
        );
        self.calls.borrow_mut().push(format!("delete {}", id(&k)));
        Ok(self.store.borrow_mut().remove(&k).is_some())
    }
    fn replace(&self, manifest: &str) -> Result<String, Error> {
        let value: Value = serde_json::from_str(manifest).expect("snapshots are JSON");
        let k = key(&value);
        self.calls.borrow_mut().push(format!("replace {}", id(&k)));
        self.store.borrow_mut().insert(k, value);
        Ok(manifest.to_string())
    }
    fn rollout_status(&self, _: &str, name: &str) -> Result<Rollout, Error> {
        self.calls.borrow_mut().push(format!("status {name}"));
        Ok(self
            .rollouts
            .get(name)
            .cloned()
            .unwrap_or_else(|| complete(2)))
    }
    fn wait_rollout(&self, _: &str, name: &str, timeout_ms: u32) -> Result<Rollout, Error> {
        self.calls.borrow_mut().push(format!("wait {name}"));
        self.wait_timeouts.borrow_mut().push(timeout_ms);
        Ok(self
            .rollouts
            .get(name)
            .cloned()
            .unwrap_or_else(|| complete(2)))
    }
    fn events(&self, object: &ObjectRef, _: u32) -> Result<Vec<Event>, Error> {
        if object.kind == "Pod" {
            return Err(Error::NotGranted(valero_sdk::kubernetes::Refusal {
                rule: "kind".into(),
                detail: "Pod is not granted".into(),
            }));
        }
        Ok(vec![Event {
            kind: "Warning".into(),
            reason: "ProgressDeadlineExceeded".into(),
            message: format!(
                "ReplicaSet \"{}-7f9\" has timed out progressing",
                object.name
            ),
            object: format!("Deployment/{}", object.name),
            count: 1,
            last_seen: "2026-12-02T17:00:00Z".into(),
        }])
    }
    fn pods(&self, _: &str, selector: &str) -> Result<Vec<PodInfo>, Error> {
        self.calls.borrow_mut().push(format!("pods {selector}"));
        Ok(vec![
            PodInfo {
                name: "fibu-service-7f9-abc".into(),
                phase: "Running".into(),
                ready: false,
                conditions: vec!["Ready=False (ContainersNotReady: containers with unready status: [fibu-service])".into()],
                containers: vec!["fibu-service: waiting (CrashLoopBackOff: back-off 10s)".into()],
                restarts: 3,
            },
            PodInfo {
                name: "fibu-service-5d1-old".into(),
                phase: "Running".into(),
                ready: true,
                conditions: vec![],
                containers: vec!["fibu-service: running".into()],
                restarts: 0,
            },
        ])
    }
    fn pod_logs(&self, _: &str, _: &str, _: u32) -> Result<String, Error> {
        Err(Error::Failed("the node has no logs".into()))
    }
    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push(format!("{level:?}: {message}"));
    }
    fn progress(&self, _: u64, _: u64, _: &str) {}
}

fn config(value: Value) -> Config {
    let config: Config = serde_json::from_value(value).expect("config parses");
    assert!(config.problems().is_empty(), "{:?}", config.problems());
    config
}

fn neuroerp(version: &str, log_level: &str) -> Value {
    json!({
        "image": "registry.neuroerp.example/neuroerp/{service}:{version}",
        "replicas": 2,
        "services": {
            "fibu-service": { "version": version, "port": 8101, "env": { "LOG_LEVEL": log_level },
                              "secret_env": { "DATABASE_URL": "neuroerp-db/fibu-service-url" } },
            "crm-service": { "version": "1.0.4", "port": 8102 },
        }
    })
}

fn rendered(config: &Config, run_id: &str) -> Vec<Object> {
    let mut objects: Vec<Object> = render::render(config, "neuroerp-staging", run_id)
        .unwrap()
        .into_iter()
        .map(|m| objects::prepare(m, "neuroerp-staging", "rendered").unwrap())
        .collect();
    objects::order(&mut objects).unwrap();
    objects
}

fn run(fake: &Fake, config: &Config, run_id: &str) -> WitReport {
    let objects = rendered(config, run_id);
    Deploy::new(fake, config, "neuroerp-staging".into(), objects)
        .run()
        .into()
}

fn check<'r>(
    report: &'r WitReport,
    name: &str,
) -> &'r valero_sdk::bindings::valero::stage::types::Check {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| {
            panic!(
                "no check `{name}` in {:#?}",
                report.checks.iter().map(|c| &c.name).collect::<Vec<_>>()
            )
        })
}

fn evidence<'c>(
    check: &'c valero_sdk::bindings::valero::stage::types::Check,
    key: &str,
) -> &'c str {
    check
        .evidence
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no evidence `{key}` in check `{}`", check.name))
}

fn outputs(report: &WitReport) -> Value {
    serde_json::from_str(&report.outputs).unwrap()
}

#[test]
fn first_deploy_creates_everything_and_waits_for_every_rollout() {
    let fake = Fake::default();
    let cfg = config(neuroerp("1.0.5", "info"));
    let report = run(&fake, &cfg, "run-1");
    assert_eq!(report.verdict, Verdict::Pass, "{}", report.summary);
    assert_eq!(
        report.summary,
        "namespace neuroerp-staging: created 7, changed 0, 0 unchanged; 2 Deployments rolled out"
    );
    // The namespace does not exist during the plan: what is in it is not dry-run-able.
    let plan = check(&report, "plan ConfigMap/fibu-service-config");
    assert_eq!(evidence(plan, "change"), "created");
    assert!(
        plan.message.contains("does not exist yet"),
        "{}",
        plan.message
    );
    let apply = check(&report, "apply Deployment/fibu-service");
    assert_eq!(evidence(apply, "change"), "created");
    let rollout = check(&report, "rollout fibu-service");
    assert_eq!(rollout.verdict, Verdict::Pass);
    assert!(
        rollout
            .measurements
            .iter()
            .any(|m| m.name == "ready" && m.value == 2.0)
    );
    let applies: Vec<String> = fake
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("apply "))
        .collect();
    assert_eq!(
        applies,
        [
            "apply Namespace/neuroerp-staging",
            "apply ConfigMap/crm-service-config",
            "apply ConfigMap/fibu-service-config",
            "apply Service/crm-service",
            "apply Service/fibu-service",
            "apply Deployment/crm-service",
            "apply Deployment/fibu-service",
        ]
    );
    let out = outputs(&report);
    assert_eq!(out["namespace"], "neuroerp-staging");
    assert_eq!(out["plan_only"], false);
    assert_eq!(out["objects"].as_array().unwrap().len(), 7);
    assert_eq!(
        out["objects"][6],
        json!({ "kind": "Deployment", "name": "fibu-service", "namespace": "neuroerp-staging",
                "change": "created", "changed_fields": [] })
    );
    assert_eq!(out["rolled_out"][1]["name"], "fibu-service");
    assert_eq!(out["rolled_out"][1]["ready"], 2);
    assert!(out.get("rollback").is_none());
}

#[test]
fn a_rerun_with_the_same_spec_writes_nothing() {
    let fake = Fake::default();
    let cfg = config(neuroerp("1.0.5", "info"));
    run(&fake, &cfg, "run-1");
    let first_run = fake.calls().len();
    let report = run(&fake, &cfg, "run-2");
    assert_eq!(report.verdict, Verdict::Pass, "{}", report.summary);
    assert!(
        report
            .summary
            .contains("created 0, changed 0, 7 unchanged;"),
        "{}",
        report.summary
    );
    // The server saw only the new run id on the Deployments; that alone is
    // no change and is not applied, so the second run sends no change at all.
    let plan = check(&report, "plan Deployment/fibu-service");
    assert_eq!(evidence(plan, "change"), "unchanged");
    let d = check(&report, "apply Deployment/fibu-service");
    assert_eq!(evidence(d, "change"), "unchanged");
    let calls = fake.calls();
    let second_run = &calls[first_run..];
    assert!(
        second_run.iter().all(|c| !c.starts_with("apply ")),
        "{second_run:?}"
    );
}

#[test]
fn plan_only_dry_runs_and_changes_nothing() {
    let fake = Fake::default();
    let cfg = config(neuroerp("1.0.5", "info"));
    run(&fake, &cfg, "run-1");
    let before = fake.store.borrow().clone();
    let plan_fake = Fake {
        plan_only: true,
        store: RefCell::new(before.clone()),
        ..Fake::default()
    };
    let report = run(&plan_fake, &config(neuroerp("1.0.6", "debug")), "run-2");
    assert_eq!(report.verdict, Verdict::Pass, "{}", report.summary);
    assert_eq!(
        report.summary,
        "plan for namespace neuroerp-staging: would create 0, change 3, leave 4 unchanged"
    );
    assert!(
        plan_fake.calls().iter().all(|c| c.starts_with("dry-run ")),
        "{:?}",
        plan_fake.calls()
    );
    assert_eq!(*plan_fake.store.borrow(), before);
    let cm = check(&report, "plan ConfigMap/fibu-service-config");
    assert_eq!(
        evidence(cm, "changed_fields"),
        "data.LOG_LEVEL, metadata.labels.app.kubernetes.io/version"
    );
    let out = outputs(&report);
    assert_eq!(out["plan_only"], true);
    assert_eq!(out["objects"].as_array().unwrap().len(), 7);
    assert_eq!(out["rolled_out"], json!([]));
}

#[test]
fn a_conflict_in_the_plan_changes_nothing_and_says_how_to_take_over() {
    let fake = Fake {
        fail_dry_run: [(
            "Deployment/fibu-service".to_string(),
            Error::Conflict(vec![FieldConflict {
                manager: "kubectl-scale".into(),
                field: "spec.replicas".into(),
            }]),
        )]
        .into(),
        ..Fake::default()
    };
    let report = run(&fake, &config(neuroerp("1.0.5", "info")), "run-1");
    assert_eq!(report.verdict, Verdict::Fail);
    assert!(
        report.summary.contains("plan failed: 1 of 7 objects"),
        "{}",
        report.summary
    );
    assert!(report.summary.contains("nothing was changed"));
    let c = check(&report, "plan Deployment/fibu-service");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(
        c.message
            .contains("manager `kubectl-scale` owns spec.replicas"),
        "{}",
        c.message
    );
    assert!(
        c.message.contains("force_conflicts = true"),
        "{}",
        c.message
    );
    assert!(fake.calls().iter().all(|c| c.starts_with("dry-run ")));
}

#[test]
fn a_failed_rollout_restores_changed_objects_in_reverse_order() {
    let fake = Fake::default();
    run(&fake, &config(neuroerp("1.0.5", "info")), "run-1");
    let v1 = fake.store.borrow().clone();
    let fake = Fake {
        store: RefCell::new(v1.clone()),
        rollouts: [(
            "fibu-service".to_string(),
            stuck(Some("ProgressDeadlineExceeded: ReplicaSet \"fibu-service-7f9\" has timed out progressing")),
        )]
        .into(),
        ..Fake::default()
    };
    let report = run(&fake, &config(neuroerp("1.0.6", "debug")), "run-2");
    assert_eq!(report.verdict, Verdict::Fail);
    assert_eq!(
        report.summary,
        "namespace neuroerp-staging: rollout of fibu-service failed; rolled back: deleted 0, restored 3"
    );
    let rollout = check(&report, "rollout fibu-service");
    assert_eq!(rollout.verdict, Verdict::Fail);
    for needle in [
        "ProgressDeadlineExceeded",
        "0/2 ready, 1 updated",
        "pods (app.kubernetes.io/instance=fibu-service,app.kubernetes.io/name=fibu-service)",
        "fibu-service-7f9-abc: Running, not ready, 3 restarts; fibu-service: waiting (CrashLoopBackOff",
        "events of Deployment fibu-service:\n    Warning ProgressDeadlineExceeded at 2026-12-02T17:00:00Z",
    ] {
        assert!(
            rollout.message.contains(needle),
            "{needle}\n{}",
            rollout.message
        );
    }
    // Pod events are not granted and there are no logs: both sections are left out.
    assert!(
        !rollout.message.contains("log lines"),
        "{}",
        rollout.message
    );
    assert!(
        !rollout.message.contains("events of pod"),
        "{}",
        rollout.message
    );
    assert!(evidence(rollout, "pods").starts_with("fibu-service-7f9-abc"));
    // crm-service would only have got the new run id: it was left alone,
    // so there is nothing of it to restore.
    let restores: Vec<String> = fake
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("replace ") || c.starts_with("delete "))
        .collect();
    assert_eq!(
        restores,
        [
            "replace Deployment/fibu-service",
            "replace Service/fibu-service",
            "replace ConfigMap/fibu-service-config",
        ]
    );
    assert_eq!(*fake.store.borrow(), v1, "back to the state before the run");
    let rollback = check(&report, "rollback");
    assert_eq!(rollback.verdict, Verdict::Pass);
    assert!(
        rollback
            .message
            .starts_with("restored Deployment/fibu-service\n"),
        "{}",
        rollback.message
    );
    assert_eq!(
        evidence(rollback, "restored"),
        "Deployment/fibu-service, Service/fibu-service, ConfigMap/fibu-service-config"
    );
    let out = outputs(&report);
    assert_eq!(out["rollback"]["restored"][0], "Deployment/fibu-service");
    assert_eq!(out["rollback"]["deleted"], json!([]));
}

#[test]
fn a_failed_first_rollout_deletes_what_it_created_namespace_last() {
    let fake = Fake {
        rollouts: [
            ("crm-service".to_string(), stuck(None)),
            ("fibu-service".to_string(), stuck(None)),
        ]
        .into(),
        remaining: Some(Duration::from_secs(100)),
        ..Fake::default()
    };
    let cfg = config(json!({
        "image": "r/{service}:{version}", "rollout_timeout_ms": 30000,
        "services": { "crm-service": { "version": "1", "port": 8102 }, "fibu-service": { "version": "1", "port": 8101 } }
    }));
    let report = run(&fake, &cfg, "run-1");
    assert_eq!(report.verdict, Verdict::Fail);
    assert!(
        report
            .summary
            .contains("rollout of crm-service timed out; rolled back: deleted 7, restored 0"),
        "{}",
        report.summary
    );
    let rollout = check(&report, "rollout crm-service");
    assert!(
        rollout
            .message
            .contains("not rolled out within 30.0 s (bounded by rollout_timeout_ms)"),
        "{}",
        rollout.message
    );
    // After the failure fibu-service is only looked at, not waited for.
    let fibu = check(&report, "rollout fibu-service");
    assert_eq!(fibu.verdict, Verdict::Inconclusive);
    assert!(
        fibu.message
            .starts_with("not waited for (rollout of crm-service timed out)"),
        "{}",
        fibu.message
    );
    assert!(fake.calls().contains(&"status fibu-service".to_string()));
    assert!(!fake.calls().contains(&"wait fibu-service".to_string()));
    let deletes: Vec<String> = fake
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("delete "))
        .collect();
    assert_eq!(
        deletes.first().map(String::as_str),
        Some("delete Deployment/fibu-service")
    );
    assert_eq!(
        deletes.last().map(String::as_str),
        Some("delete Namespace/neuroerp-staging")
    );
    assert!(fake.store.borrow().is_empty());
}

#[test]
fn the_rollout_wait_is_bounded_by_the_remaining_time() {
    let fake = Fake {
        remaining: Some(Duration::from_secs(60)),
        ..Fake::default()
    };
    let cfg = config(json!({
        "image": "r/{service}", "rollout_timeout_ms": 600000,
        "services": { "a": { "version": "1", "port": 1 } }
    }));
    let report = run(&fake, &cfg, "run-1");
    assert_eq!(report.verdict, Verdict::Pass, "{}", report.summary);
    let waited = fake.wait_timeouts.borrow()[0];
    // 60 s less a margin of a tenth (6 s).
    assert!((53_000..=54_000).contains(&waited), "{waited}");
}

#[test]
fn rollback_false_leaves_the_objects_and_says_so() {
    let fake = Fake {
        rollouts: [(
            "a".to_string(),
            stuck(Some("ReplicaSet \"a-1\" has timed out progressing")),
        )]
        .into(),
        ..Fake::default()
    };
    let cfg = config(json!({
        "image": "r/{service}", "rollback": false,
        "services": { "a": { "version": "1", "port": 1 } }
    }));
    let report = run(&fake, &cfg, "run-1");
    assert_eq!(report.verdict, Verdict::Fail);
    assert!(
        report
            .summary
            .ends_with("rollout of a failed; left as applied (rollback = false)"),
        "{}",
        report.summary
    );
    assert!(fake.has("Deployment", "a"));
    assert!(
        !fake
            .calls()
            .iter()
            .any(|c| c.starts_with("delete ") || c.starts_with("replace "))
    );
    assert!(report.checks.iter().all(|c| c.name != "rollback"));
}

#[test]
fn an_apply_error_midway_stops_and_rolls_back_what_was_applied() {
    let fake = Fake::default();
    run(&fake, &config(neuroerp("1.0.5", "info")), "run-1");
    let v1 = fake.store.borrow().clone();
    let fake = Fake {
        store: RefCell::new(v1.clone()),
        fail_apply: [(
            "Service/fibu-service".to_string(),
            Error::Invalid(vec!["spec.ports[0].port: Invalid value: 0".into()]),
        )]
        .into(),
        ..Fake::default()
    };
    let report = run(&fake, &config(neuroerp("1.0.6", "debug")), "run-2");
    assert_eq!(report.verdict, Verdict::Fail);
    assert!(
        report
            .summary
            .contains("applying Service/fibu-service failed; rolled back: deleted 0, restored 1"),
        "{}",
        report.summary
    );
    let c = check(&report, "apply Service/fibu-service");
    assert!(
        c.message
            .contains("rejected by the API server:\n  - spec.ports[0].port: Invalid value: 0"),
        "{}",
        c.message
    );
    assert!(
        !fake
            .calls()
            .iter()
            .any(|c| c.starts_with("apply Deployment/") || c.starts_with("wait "))
    );
    assert_eq!(*fake.store.borrow(), v1);
    assert_eq!(
        fake.object("ConfigMap", "fibu-service-config")["data"]["LOG_LEVEL"],
        "info"
    );
}

#[test]
fn a_refusal_names_the_rule() {
    let fake = Fake {
        fail_dry_run: [(
            "Namespace/neuroerp-staging".to_string(),
            Error::NotGranted(valero_sdk::kubernetes::Refusal {
                rule: "namespace".into(),
                detail: "namespace `neuroerp-staging` is not granted to stage `deploy-k8s`; add it to grants.kubernetes.namespaces".into(),
            }),
        )]
        .into(),
        ..Fake::default()
    };
    let report = run(&fake, &config(neuroerp("1.0.5", "info")), "run-1");
    assert_eq!(report.verdict, Verdict::Fail);
    let c = check(&report, "plan Namespace/neuroerp-staging");
    assert!(
        c.message
            .contains("not granted (namespace): namespace `neuroerp-staging` is not granted"),
        "{}",
        c.message
    );
}
