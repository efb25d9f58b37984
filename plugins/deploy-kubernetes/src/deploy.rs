//! One attempt against the cluster: plan (server-side dry run), snapshot,
//! apply, wait for the rollouts, and roll back what was changed on failure.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use valero_sdk::kubernetes::{
    self as k8s, Applied, ApplyOptions, Change, Error, ObjectRef, Rollout,
};

use crate::cluster::{Cluster, Level};
use valero_sdk::{Check, Report, Verdict};

use crate::config::Config;
use crate::kerror::{bookkeeping_only, change_word, describe};
use crate::objects::{Object, ObjectId};

/// Events of a failing Deployment shown in its check.
const EVENTS: u32 = 10;
/// Events of its failing pod.
const POD_EVENTS: u32 = 5;
const LOG_TAIL: u32 = 20;
const MAX_PODS_SHOWN: usize = 5;
/// Time kept back from the rollout wait for diagnostics, rollback and the
/// report: a tenth of what is left, within these bounds.
const MIN_MARGIN: Duration = Duration::from_secs(2);
const MAX_MARGIN: Duration = Duration::from_secs(15);

/// What applying an object changes (or would change).
#[derive(Debug, Clone)]
struct Diff {
    change: Change,
    changed_fields: Vec<String>,
    /// Why the diff is less than the server's word (see [`Diff::unvalidated`]).
    note: Option<String>,
}

impl Diff {
    /// The server's word, except that a change of nothing but this run's
    /// annotation is no change: such an object is not applied at all.
    fn from_applied(applied: &Applied) -> Diff {
        if bookkeeping_only(applied.change, &applied.changed_fields) {
            return Diff {
                change: Change::Unchanged,
                changed_fields: Vec::new(),
                note: None,
            };
        }
        Diff {
            change: applied.change,
            changed_fields: applied.changed_fields.clone(),
            note: None,
        }
    }

    /// An object in a namespace this stage creates: the dry run cannot see
    /// the namespace, so the server checks the object only when it is applied.
    fn unvalidated(namespace: &str) -> Diff {
        Diff {
            change: Change::Created,
            changed_fields: Vec::new(),
            note: Some(format!(
                "namespace `{namespace}` does not exist yet (this stage creates it), so the server checks this object only when it is applied"
            )),
        }
    }

    /// `created`, `configured: spec.replicas, …`, `unchanged`; `would` for the plan.
    fn sentence(&self, would: bool) -> String {
        let text = match self.change {
            Change::Created if would => "would be created".to_string(),
            Change::Created => "created".to_string(),
            Change::Unchanged => "unchanged".to_string(),
            Change::Configured if self.changed_fields.is_empty() => {
                if would { "would change" } else { "changed" }.to_string()
            }
            Change::Configured => format!(
                "{}: {}",
                if would { "would change" } else { "changed" },
                self.changed_fields.join(", ")
            ),
        };
        match &self.note {
            Some(note) => format!("{text}; {note}"),
            None => text,
        }
    }

    fn check(&self, name: String, object: &Object, would: bool, from_files: bool) -> Check {
        let mut check = Check::pass(name)
            .message(format!("{} {}", object.id, self.sentence(would)))
            .evidence("change", change_word(self.change))
            .evidence("changed_fields", self.changed_fields.join(", "));
        if !object.id.namespace.is_empty() {
            check = check.evidence("namespace", &object.id.namespace);
        }
        if from_files {
            check = check.evidence("manifest", &object.origin);
        }
        check
    }

    fn json(&self, id: &ObjectId) -> Value {
        json!({
            "kind": id.kind,
            "name": id.name,
            "namespace": id.namespace,
            "change": change_word(self.change),
            "changed_fields": self.changed_fields,
        })
    }
}

/// `create 3, change 1, leave 17 unchanged` (or the past tense).
fn counts(diffs: &[&Diff], would: bool) -> String {
    let created = diffs.iter().filter(|d| d.change == Change::Created).count();
    let changed = diffs
        .iter()
        .filter(|d| d.change == Change::Configured)
        .count();
    let unchanged = diffs.len() - created - changed;
    if would {
        format!("would create {created}, change {changed}, leave {unchanged} unchanged")
    } else {
        format!("created {created}, changed {changed}, {unchanged} unchanged")
    }
}

fn object_ref(id: &ObjectId) -> ObjectRef {
    ObjectRef {
        api_version: id.api_version.clone(),
        kind: id.kind.clone(),
        namespace: id.namespace.clone(),
        name: id.name.clone(),
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn millis_u32(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// What was done to put things back.
#[derive(Default)]
struct Rollback {
    deleted: Vec<String>,
    restored: Vec<String>,
    failed: Vec<String>,
}

/// How the attempt ended, for the report.
#[derive(Default)]
struct Outcome {
    summary: String,
    /// Per object: kind, name, namespace, change, changed_fields.
    objects: Vec<Value>,
    rolled_out: Vec<Value>,
    rollback: Option<Rollback>,
    plan_only: bool,
    failed: bool,
}

impl Outcome {
    fn failed(summary: String) -> Outcome {
        Outcome {
            summary,
            failed: true,
            ..Outcome::default()
        }
    }
}

pub struct Deploy<'a, C: Cluster> {
    cluster: &'a C,
    config: &'a Config,
    namespace: String,
    objects: Vec<Object>,
    checks: Vec<Check>,
}

impl<'a, C: Cluster> Deploy<'a, C> {
    pub fn new(
        cluster: &'a C,
        config: &'a Config,
        namespace: String,
        objects: Vec<Object>,
    ) -> Self {
        Deploy {
            cluster,
            config,
            namespace,
            objects,
            checks: Vec::new(),
        }
    }

    fn info(&self, message: impl AsRef<str>) {
        self.cluster.log(Level::Info, message.as_ref());
    }

    fn warn(&self, message: impl AsRef<str>) {
        self.cluster.log(Level::Warn, message.as_ref());
    }

    fn error(&self, message: impl AsRef<str>) {
        self.cluster.log(Level::Error, message.as_ref());
    }

    fn progress(&self, done: u64, total: u64, label: impl AsRef<str>) {
        self.cluster.progress(done, total, label.as_ref());
    }

    fn options(&self, dry_run: bool) -> ApplyOptions {
        ApplyOptions {
            dry_run,
            force_conflicts: self.config.force_conflicts,
        }
    }

    fn uses_manifests(&self) -> bool {
        self.config.manifests.is_some()
    }

    pub fn run(mut self) -> Report {
        let total = self.objects.len();
        self.info(format!(
            "{total} objects for namespace {}; planning (server-side dry run)",
            self.namespace
        ));
        let plan = self.plan();
        let failed_plans = plan.iter().filter(|p| p.is_err()).count();
        if failed_plans > 0 {
            let summary = format!(
                "plan failed: {failed_plans} of {total} objects cannot be applied (see the failing `plan` checks); nothing was changed"
            );
            let plan_only = self.cluster.plan_only();
            return self.report(Outcome {
                plan_only,
                ..Outcome::failed(summary)
            });
        }
        let diffs: Vec<Diff> = plan.into_iter().flatten().collect();
        let planned = counts(&diffs.iter().collect::<Vec<_>>(), true);
        self.info(format!("plan: {planned}"));
        if self.cluster.plan_only() {
            let objects = self.objects_json(diffs.iter().enumerate());
            let summary = format!("plan for namespace {}: {planned}", self.namespace);
            return self.report(Outcome {
                summary,
                objects,
                plan_only: true,
                ..Outcome::default()
            });
        }

        let snapshots = match self.snapshots() {
            Ok(snapshots) => snapshots,
            Err(summary) => return self.report(Outcome::failed(summary)),
        };

        // Apply in order; stop at the first error (what follows may depend on it).
        let mut applied: Vec<(usize, Diff)> = Vec::new();
        let mut apply_failure = None;
        for (i, planned) in diffs.iter().enumerate() {
            let object = &self.objects[i];
            self.progress(i as u64, total as u64, format!("apply {}", object.id));
            let started = Instant::now();
            // Nothing (or nothing but this run's annotation) would change:
            // leave the object alone, so a rerun writes nothing (the
            // annotation names the last run that changed the object).
            let answer = if planned.change == Change::Unchanged {
                Ok(None)
            } else {
                self.cluster
                    .apply(&object.manifest.to_string(), self.options(false))
                    .map(Some)
            };
            match answer {
                Ok(result) => {
                    let diff = match &result {
                        Some(applied) => Diff::from_applied(applied),
                        None => Diff {
                            change: Change::Unchanged,
                            changed_fields: Vec::new(),
                            note: None,
                        },
                    };
                    let how = if result.is_some() {
                        ""
                    } else {
                        " (not applied)"
                    };
                    self.info(format!("{} {}{how}", object.id, diff.sentence(false)));
                    let check = diff
                        .check(
                            format!("apply {}", object.id),
                            object,
                            false,
                            self.uses_manifests(),
                        )
                        .duration(started.elapsed());
                    self.checks.push(check);
                    applied.push((i, diff));
                }
                Err(e) => {
                    let message = format!(
                        "applying {} ({}): {}",
                        object.id,
                        object.origin,
                        describe(&e)
                    );
                    self.error(&message);
                    self.checks.push(
                        Check::fail(format!("apply {}", object.id))
                            .message(message)
                            .duration(started.elapsed()),
                    );
                    apply_failure = Some(format!("applying {} failed", object.id));
                    break;
                }
            }
        }
        self.progress(total as u64, total as u64, "applied");
        let applied_at = Instant::now();
        let objects = self.objects_json(applied.iter().map(|(i, d)| (*i, d)));

        let (rolled_out, rollout_failure) = if apply_failure.is_none() {
            self.rollouts(applied_at)
        } else {
            (Vec::new(), None)
        };
        let Some(failure) = apply_failure.or(rollout_failure) else {
            let applied_diffs: Vec<&Diff> = applied.iter().map(|(_, d)| d).collect();
            let summary = format!(
                "namespace {}: {}; {} Deployments rolled out",
                self.namespace,
                counts(&applied_diffs, false),
                rolled_out.len()
            );
            return self.report(Outcome {
                summary,
                objects,
                rolled_out,
                ..Outcome::default()
            });
        };

        let rollback = if self.config.rollback {
            let touched: Vec<(usize, Option<String>)> = applied
                .iter()
                .filter(|(_, d)| d.change != Change::Unchanged)
                .map(|(i, _)| (*i, snapshots[*i].clone()))
                .collect();
            Some(self.rollback(&touched))
        } else {
            None
        };
        let after = match &rollback {
            None => "left as applied (rollback = false)".to_string(),
            Some(r) if r.deleted.is_empty() && r.restored.is_empty() && r.failed.is_empty() => {
                "nothing was changed, so nothing was rolled back".to_string()
            }
            Some(r) if r.failed.is_empty() => format!(
                "rolled back: deleted {}, restored {}",
                r.deleted.len(),
                r.restored.len()
            ),
            Some(r) => format!(
                "rollback incomplete: deleted {}, restored {}, {} could not be put back",
                r.deleted.len(),
                r.restored.len(),
                r.failed.len()
            ),
        };
        let summary = format!("namespace {}: {failure}; {after}", self.namespace);
        self.report(Outcome {
            summary,
            objects,
            rolled_out,
            rollback,
            failed: true,
            ..Outcome::default()
        })
    }

    /// Dry-runs every object; a check per object, in order.
    fn plan(&mut self) -> Vec<Result<Diff, String>> {
        // Namespaces the plan creates: objects in them cannot be dry-run yet.
        let mut new_namespaces: Vec<String> = Vec::new();
        let mut failed_namespaces: Vec<String> = Vec::new();
        let mut plan = Vec::new();
        // A failure of the cluster itself (unreachable, no credentials) is
        // the same for every object: said once, the rest are not tried.
        let mut cluster_failed = false;
        for object in &self.objects {
            let started = Instant::now();
            let answer = if cluster_failed {
                Err(Error::Failed(
                    "not tried: the cluster failed on an earlier object (see the first failing `plan` check)"
                        .into(),
                ))
            } else {
                self.cluster
                    .apply(&object.manifest.to_string(), self.options(true))
            };
            let result = match answer {
                Ok(applied) => {
                    let diff = Diff::from_applied(&applied);
                    if object.id.kind == "Namespace" && diff.change == Change::Created {
                        new_namespaces.push(object.id.name.clone());
                    }
                    Ok(diff)
                }
                Err(Error::NotFound(_)) if new_namespaces.contains(&object.id.namespace) => {
                    Ok(Diff::unvalidated(&object.id.namespace))
                }
                Err(Error::NotFound(_)) if failed_namespaces.contains(&object.id.namespace) => {
                    Err(format!(
                        "{}: not checked: its namespace failed to plan (see check `plan Namespace/{}`)",
                        object.id, object.id.namespace
                    ))
                }
                Err(e) => {
                    cluster_failed |= matches!(e, Error::Failed(_));
                    Err(format!(
                        "{} ({}): {}",
                        object.id,
                        object.origin,
                        describe(&e)
                    ))
                }
            };
            if object.id.kind == "Namespace" && result.is_err() {
                failed_namespaces.push(object.id.name.clone());
            }
            let name = format!("plan {}", object.id);
            let check = match &result {
                Ok(diff) => {
                    self.info(format!("plan: {} {}", object.id, diff.sentence(true)));
                    diff.check(name, object, true, self.uses_manifests())
                }
                Err(e) => {
                    self.error(format!("plan: {e}"));
                    Check::fail(name).message(e.clone())
                }
            };
            self.checks.push(check.duration(started.elapsed()));
            plan.push(result);
        }
        plan
    }

    /// Every object as it is before this run changes it (`None`: it does not exist).
    fn snapshots(&mut self) -> Result<Vec<Option<String>>, String> {
        let mut snapshots = Vec::with_capacity(self.objects.len());
        for object in &self.objects {
            match self.cluster.get(&object_ref(&object.id)) {
                Ok(snapshot) => snapshots.push(snapshot),
                // Its namespace does not exist yet: neither does the object.
                Err(Error::NotFound(_)) => snapshots.push(None),
                Err(e) => {
                    let message = format!(
                        "reading {} before changing anything (to roll back to it): {}",
                        object.id,
                        describe(&e)
                    );
                    self.checks
                        .push(Check::fail(format!("snapshot {}", object.id)).message(message));
                    return Err(format!(
                        "could not read {} before applying; nothing was changed",
                        object.id
                    ));
                }
            }
        }
        Ok(snapshots)
    }

    /// Waits for every Deployment's rollout on one shared deadline (they roll
    /// out in parallel on the server). Returns the rolled-out ones and the
    /// first failure.
    fn rollouts(&mut self, applied_at: Instant) -> (Vec<Value>, Option<String>) {
        let deployments: Vec<usize> = (0..self.objects.len())
            .filter(|&i| self.objects[i].id.kind == "Deployment")
            .collect();
        if deployments.is_empty() {
            return (Vec::new(), None);
        }
        let remaining = self.cluster.remaining();
        let margin = (remaining / 10).clamp(MIN_MARGIN, MAX_MARGIN);
        let left = remaining.saturating_sub(margin);
        let (budget, bound) = match self.config.rollout_timeout_ms.map(Duration::from_millis) {
            Some(cap) if cap <= left => (cap, "rollout_timeout_ms".to_string()),
            _ => (
                left,
                format!(
                    "the stage's remaining time less {} for diagnostics and rollback; raise the stage's `timeout`",
                    secs(margin)
                ),
            ),
        };
        let deadline = Instant::now() + budget;
        self.info(format!(
            "waiting up to {} for {} rollouts",
            secs(budget),
            deployments.len()
        ));
        let total = deployments.len() as u64;
        let mut rolled_out = Vec::new();
        let mut failed: Option<String> = None;
        for (n, &i) in deployments.iter().enumerate() {
            let object = &self.objects[i];
            let (ns, name) = (&object.id.namespace, &object.id.name);
            self.progress(n as u64, total, format!("rollout {name}"));
            let check_name = format!("rollout {name}");
            let left = deadline.saturating_duration_since(Instant::now());
            // After a failure the rest is rolled back anyway: report, do not wait.
            let status = if failed.is_some() || left.is_zero() {
                self.cluster.rollout_status(ns, name)
            } else {
                self.cluster.wait_rollout(ns, name, millis_u32(left).max(1))
            };
            let took = applied_at.elapsed();
            let check = match status {
                Err(e) => {
                    failed.get_or_insert_with(|| format!("reading the rollout of {name} failed"));
                    Check::fail(check_name).message(format!(
                        "reading the rollout of Deployment {name}: {}",
                        describe(&e)
                    ))
                }
                Ok(r) if r.complete => {
                    self.info(format!(
                        "{name} rolled out: {}/{} ready after {}",
                        r.ready,
                        r.desired,
                        secs(took)
                    ));
                    rolled_out.push(json!({
                        "name": name,
                        "namespace": ns,
                        "ready": r.ready,
                        "desired": r.desired,
                        "duration_ms": u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
                    }));
                    measured(Check::pass(check_name), &r, took).message(format!(
                        "Deployment {name} rolled out: {}/{} ready after {}",
                        r.ready,
                        r.desired,
                        secs(took)
                    ))
                }
                Ok(r) if failed.is_some() => {
                    let first = failed.as_deref().unwrap_or_default();
                    measured(Check::inconclusive(check_name), &r, took)
                        .message(format!("not waited for ({first}): {}", progress_words(&r)))
                }
                Ok(r) => {
                    let why = match &r.failure {
                        Some(failure) => format!("failed: {failure}"),
                        None => format!(
                            "not rolled out within {} (bounded by {bound})",
                            secs(budget)
                        ),
                    };
                    self.error(format!("Deployment {name} {why}"));
                    failed = Some(format!(
                        "rollout of {name} {}",
                        if r.failure.is_some() {
                            "failed"
                        } else {
                            "timed out"
                        }
                    ));
                    let (diagnostics, evidence) = self.diagnose(object);
                    let mut check = measured(Check::fail(check_name), &r, took).message(format!(
                        "Deployment {name} {why}\n  {}{diagnostics}",
                        progress_words(&r)
                    ));
                    for (key, value) in evidence {
                        check = check.evidence(key, value);
                    }
                    check
                }
            };
            self.checks.push(check.duration(took));
        }
        self.progress(total, total, "rollouts");
        (rolled_out, failed)
    }

    /// Why a Deployment's pods are not ready: its pods, recent events, and the
    /// log tail of a failing pod. Errors only lose a section (a fake-node
    /// cluster has no logs).
    fn diagnose(&self, deployment: &Object) -> (String, Vec<(&'static str, String)>) {
        let ns = &deployment.id.namespace;
        let selector = pod_selector(&deployment.manifest)
            .unwrap_or_else(|| format!("app.kubernetes.io/name={}", deployment.id.name));
        let mut text = String::new();
        let mut evidence = Vec::new();
        let mut failing_pod = None;
        match self.cluster.pods(ns, &selector) {
            Ok(mut pods) => {
                // Not ready first, then the most restarted: the likeliest culprit leads.
                pods.sort_by_key(|p| (p.ready, -p.restarts));
                failing_pod = pods.iter().find(|p| !p.ready).map(|p| p.name.clone());
                let lines: Vec<String> = pods
                    .iter()
                    .take(MAX_PODS_SHOWN)
                    .map(|p| {
                        let mut line = format!(
                            "{}: {}, {}, {} restarts",
                            p.name,
                            p.phase,
                            if p.ready { "ready" } else { "not ready" },
                            p.restarts
                        );
                        for part in p.containers.iter().chain(&p.conditions) {
                            line.push_str("; ");
                            line.push_str(part);
                        }
                        line
                    })
                    .collect();
                let more = pods.len().saturating_sub(MAX_PODS_SHOWN);
                let mut section = if lines.is_empty() {
                    "none".to_string()
                } else {
                    lines.join("\n    ")
                };
                if more > 0 {
                    section.push_str(&format!("\n    … and {more} more"));
                }
                text.push_str(&format!("\n  pods ({selector}):\n    {section}"));
                evidence.push(("pods", lines.join("\n")));
            }
            Err(e) => text.push_str(&format!("\n  pods: not listed: {}", describe(&e))),
        }
        match self.cluster.events(&object_ref(&deployment.id), EVENTS) {
            Ok(events) if !events.is_empty() => {
                let lines = event_lines(&events);
                text.push_str(&format!(
                    "\n  events of Deployment {}:\n    {}",
                    deployment.id.name,
                    lines.join("\n    ")
                ));
                evidence.push(("events", lines.join("\n")));
            }
            Ok(_) => {}
            Err(e) => text.push_str(&format!("\n  events: not read: {}", describe(&e))),
        }
        if let Some(pod) = failing_pod {
            let pod_ref = ObjectRef {
                api_version: "v1".into(),
                kind: "Pod".into(),
                namespace: ns.clone(),
                name: pod.clone(),
            };
            // Pod events say why a pod is not ready (probe failures, pulls);
            // a grant may not cover them, which only loses this section.
            if let Ok(events) = self.cluster.events(&pod_ref, POD_EVENTS)
                && !events.is_empty()
            {
                let lines = event_lines(&events);
                text.push_str(&format!(
                    "\n  events of pod {pod}:\n    {}",
                    lines.join("\n    ")
                ));
                evidence.push(("pod_events", lines.join("\n")));
            }
            if let Ok(logs) = self.cluster.pod_logs(ns, &pod, LOG_TAIL)
                && !logs.trim().is_empty()
            {
                let lines: Vec<&str> = logs.lines().collect();
                let shown = &lines[lines.len().saturating_sub(LOG_TAIL as usize)..];
                text.push_str(&format!(
                    "\n  last {} log lines of pod {pod}:\n    {}",
                    shown.len(),
                    shown.join("\n    ")
                ));
                evidence.push(("logs", shown.join("\n")));
            }
        }
        (text, evidence)
    }

    /// Puts every touched object back, in reverse order: deletes what this
    /// run created, replaces the rest with its snapshot.
    fn rollback(&mut self, touched: &[(usize, Option<String>)]) -> Rollback {
        let mut done = Rollback::default();
        // Every step in the order taken, for the check's message.
        let mut steps: Vec<String> = Vec::new();
        let started = Instant::now();
        for (i, snapshot) in touched.iter().rev() {
            let id = &self.objects[*i].id;
            let (list, step) = match snapshot {
                None => match self.cluster.delete(&object_ref(id)) {
                    Ok(true) => (&mut done.deleted, format!("deleted {id}")),
                    Ok(false) => (&mut done.deleted, format!("deleted {id} (already gone)")),
                    Err(e) => (
                        &mut done.failed,
                        format!("could not delete {id}: {}", describe(&e)),
                    ),
                },
                Some(snapshot) => match self.cluster.replace(&replaceable_snapshot(snapshot)) {
                    Ok(_) => (&mut done.restored, format!("restored {id}")),
                    Err(e) => (
                        &mut done.failed,
                        format!("could not restore {id}: {}", describe(&e)),
                    ),
                },
            };
            list.push(step.clone());
            steps.push(step);
        }
        for step in &steps {
            if step.starts_with("could not") {
                self.error(format!("rollback: {step}"));
            } else {
                self.warn(format!("rollback: {step}"));
            }
        }
        let mut message = if steps.is_empty() {
            "nothing to roll back: no object was changed".to_string()
        } else {
            steps.join("\n")
        };
        if done.restored.iter().any(|l| l.contains("Deployment/")) {
            message.push_str("\n(a restored Deployment's pods roll back to its previous template in the background)");
        }
        if !done.failed.is_empty() {
            message.push_str("\nput the objects that could not be restored back by hand");
        }
        let check = if done.failed.is_empty() {
            Check::pass("rollback")
        } else {
            Check::fail("rollback")
        };
        self.checks.push(
            check
                .message(message)
                .evidence("deleted", strip_verbs(&done.deleted))
                .evidence("restored", strip_verbs(&done.restored))
                .evidence("failed", done.failed.join("\n"))
                .duration(started.elapsed()),
        );
        done
    }

    fn objects_json<'d>(&self, diffs: impl Iterator<Item = (usize, &'d Diff)>) -> Vec<Value> {
        diffs.map(|(i, d)| d.json(&self.objects[i].id)).collect()
    }

    fn report(self, outcome: Outcome) -> Report {
        let Outcome {
            summary,
            objects,
            rolled_out,
            rollback,
            plan_only,
            failed,
        } = outcome;
        let mut outputs = json!({
            "namespace": self.namespace,
            "plan_only": plan_only,
            "objects": objects,
            "rolled_out": rolled_out,
        });
        if let Some(r) = rollback {
            outputs["rollback"] = json!({
                "deleted": strip_verbs_list(&r.deleted),
                "restored": strip_verbs_list(&r.restored),
                "failed": r.failed,
            });
        }
        let mut checks = self.checks;
        // Every failure path leaves a failing check; this keeps it so if one does not.
        if failed && !checks.iter().any(|c| c.verdict() == Verdict::Fail) {
            checks.push(Check::fail("deploy").message(summary.clone()));
        }
        let report = Report::from_checks(summary, checks);
        report.outputs(outputs)
    }
}

/// The snapshot as sent to `replace`. Nothing is stripped: the host handles
/// `resourceVersion`, the API server ignores `status` on replace, and the
/// snapshot's `managedFields` put field ownership back as it was.
fn replaceable_snapshot(snapshot: &str) -> String {
    snapshot.to_string()
}

/// `Kind/name, …` from `deleted Kind/name` lines.
fn strip_verbs(lines: &[String]) -> String {
    strip_verbs_list(lines).join(", ")
}

fn strip_verbs_list(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            l.split_once(' ')
                .map_or(l.as_str(), |(_, rest)| rest)
                .trim_end_matches(" (already gone)")
                .to_string()
        })
        .collect()
}

/// `k=v,k2=v2` from the Deployment's `spec.selector.matchLabels`.
fn pod_selector(manifest: &Value) -> Option<String> {
    let labels = manifest
        .pointer("/spec/selector/matchLabels")?
        .as_object()?;
    let pairs: Vec<String> = labels
        .iter()
        .filter_map(|(k, v)| Some(format!("{k}={}", v.as_str()?)))
        .collect();
    (!pairs.is_empty()).then(|| pairs.join(","))
}

fn event_lines(events: &[k8s::Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let count = if e.count > 1 {
                format!(" ×{}", e.count)
            } else {
                String::new()
            };
            let when = if e.last_seen.is_empty() {
                String::new()
            } else {
                format!(" at {}", e.last_seen)
            };
            format!("{} {}{count}{when}: {}", e.kind, e.reason, e.message)
        })
        .collect()
}

fn progress_words(r: &Rollout) -> String {
    format!(
        "{}/{} ready, {} updated, {} available (generation {}, observed {})",
        r.ready, r.desired, r.updated, r.available, r.generation, r.observed_generation
    )
}

fn measured(check: Check, r: &Rollout, took: Duration) -> Check {
    check
        .measure("ready", f64::from(r.ready), "replicas")
        .measure("desired", f64::from(r.desired), "replicas")
        .measure("updated", f64::from(r.updated), "replicas")
        .measure("available", f64::from(r.available), "replicas")
        .measure("duration", took.as_secs_f64() * 1000.0, "ms")
}

#[cfg(test)]
mod tests;
