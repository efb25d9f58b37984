//! Reading the cluster's answers into the WIT's words: API errors into the
//! typed `error`, Deployments into a `rollout`, pods and events into what a
//! failing deploy shows. Pure functions over JSON and kube's error.

use serde_json::Value;

use crate::host::bindings::valero::stage::kubernetes::{
    Error, Event, FieldConflict, ObjectRef, PodInfo, Rollout,
};

/// An API error as the guest sees it (not yet masked).
pub fn api_error(e: kube::Error, object: &ObjectRef) -> Error {
    let kube::Error::Api(status) = e else {
        return Error::Failed(format!("the cluster could not be reached: {e}"));
    };
    let causes = status
        .details
        .as_ref()
        .map(|d| d.causes.as_slice())
        .unwrap_or_default();
    match status.code {
        404 => Error::NotFound(object.clone()),
        409 if causes.iter().any(|c| c.reason == "FieldManagerConflict") => Error::Conflict(
            causes
                .iter()
                .filter(|c| c.reason == "FieldManagerConflict")
                .map(|c| FieldConflict {
                    manager: manager_of(&c.message),
                    field: c.field.trim_start_matches('.').to_string(),
                })
                .collect(),
        ),
        422 | 400 if !causes.is_empty() => Error::Invalid(
            causes
                .iter()
                .map(|c| match c.field.as_str() {
                    "" => c.message.clone(),
                    f => format!("{f}: {}", c.message),
                })
                .collect(),
        ),
        422 | 400 => Error::Invalid(vec![status.message.clone()]),
        403 => Error::Failed(format!(
            "the cluster refused the request ({}); the kubeconfig's account lacks the permission",
            status.message
        )),
        code => Error::Failed(format!(
            "the API server answered {code} {}: {}",
            status.reason, status.message
        )),
    }
}

/// `conflict with "kubectl-client-side-apply" using apps/v1` → the manager.
fn manager_of(message: &str) -> String {
    message.split('"').nth(1).unwrap_or(message).to_string()
}

fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn i32_at(v: &Value, pointer: &str) -> i32 {
    i32::try_from(int(v, pointer)).unwrap_or(i32::MAX)
}

fn conditions(v: &Value) -> impl Iterator<Item = &Value> {
    v.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn text<'v>(v: &'v Value, key: &str) -> &'v str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// A Deployment's rollout, the way `kubectl rollout status` decides it.
pub fn rollout(deploy: &Value) -> Rollout {
    let desired = deploy
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .map_or(1, |n| i32::try_from(n).unwrap_or(i32::MAX));
    let r = Rollout {
        generation: int(deploy, "/metadata/generation"),
        observed_generation: int(deploy, "/status/observedGeneration"),
        desired,
        updated: i32_at(deploy, "/status/updatedReplicas"),
        ready: i32_at(deploy, "/status/readyReplicas"),
        available: i32_at(deploy, "/status/availableReplicas"),
        complete: false,
        failure: None,
    };
    let total = i32_at(deploy, "/status/replicas");
    let failure = conditions(deploy).find_map(|c| {
        let failed = (text(c, "type") == "Progressing"
            && text(c, "reason") == "ProgressDeadlineExceeded")
            || (text(c, "type") == "ReplicaFailure" && text(c, "status") == "True");
        failed.then(|| format!("{}: {}", text(c, "reason"), text(c, "message")))
    });
    let complete = r.observed_generation >= r.generation
        && r.updated == desired
        && r.ready == desired
        && r.available == desired
        // Old pods gone as well.
        && total == desired;
    Rollout {
        complete,
        failure: if complete { None } else { failure },
        ..r
    }
}

/// A pod, as much of it as tells why it is not ready.
pub fn pod(p: &Value) -> PodInfo {
    let not_true = conditions(p)
        .filter(|c| text(c, "status") != "True")
        .map(|c| {
            let why = [text(c, "reason"), text(c, "message")]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(": ");
            format!("{}={} ({why})", text(c, "type"), text(c, "status"))
        })
        .collect();
    let statuses: Vec<&Value> = p
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let containers = statuses
        .iter()
        .map(|c| {
            let state = c.get("state").and_then(Value::as_object);
            let (name, detail) = state
                .and_then(|s| s.iter().next())
                .map(|(k, v)| {
                    let why = [text(v, "reason"), text(v, "message")]
                        .into_iter()
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join(": ");
                    (k.as_str(), why)
                })
                .unwrap_or(("unknown", String::new()));
            if detail.is_empty() {
                format!("{}: {name}", text(c, "name"))
            } else {
                format!("{}: {name} ({detail})", text(c, "name"))
            }
        })
        .collect();
    let restarts = statuses
        .iter()
        .map(|c| i32_at(c, "/restartCount"))
        .fold(0i32, i32::saturating_add);
    PodInfo {
        name: p
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        phase: p
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("Unknown")
            .to_string(),
        ready: conditions(p).any(|c| text(c, "type") == "Ready" && text(c, "status") == "True"),
        conditions: not_true,
        containers,
        restarts,
    }
}

/// When an event last happened, for sorting (RFC 3339 sorts as text).
pub fn event_time(e: &Value) -> String {
    ["lastTimestamp", "eventTime", "firstTimestamp"]
        .iter()
        .find_map(|k| e.get(*k).and_then(Value::as_str))
        .unwrap_or_default()
        .to_string()
}

pub fn event(e: &Value) -> Event {
    let involved = e.get("involvedObject").unwrap_or(&Value::Null);
    Event {
        kind: text(e, "type").to_string(),
        reason: text(e, "reason").to_string(),
        message: text(e, "message").to_string(),
        object: format!("{}/{}", text(involved, "kind"), text(involved, "name")),
        count: e
            .get("count")
            .and_then(Value::as_i64)
            .map_or(1, |n| i32::try_from(n).unwrap_or(i32::MAX)),
        last_seen: event_time(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;
    use serde_json::json;

    fn status(v: Value) -> kube::Error {
        kube::Error::Api(Box::new(serde_json::from_value::<Status>(v).unwrap()))
    }

    fn object() -> ObjectRef {
        ObjectRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: "ns".into(),
            name: "fibu".into(),
        }
    }

    #[test]
    fn an_apply_conflict_names_each_manager_and_field() {
        let e = api_error(
            status(
                json!({"code": 409, "reason": "Conflict", "message": "Apply failed with 1 conflict",
                "details": {"causes": [{"reason": "FieldManagerConflict",
                    "message": "conflict with \"kubectl-client-side-apply\" using apps/v1", "field": ".spec.replicas"}]}}),
            ),
            &object(),
        );
        let Error::Conflict(c) = e else {
            panic!("{e:?}")
        };
        assert_eq!(c[0].manager, "kubectl-client-side-apply");
        assert_eq!(c[0].field, "spec.replicas");
    }

    #[test]
    fn a_rejected_object_lists_its_causes() {
        let e = api_error(
            status(
                json!({"code": 422, "reason": "Invalid", "message": "Deployment is invalid",
                "details": {"causes": [{"reason": "FieldValueRequired", "message": "Required value", "field": "spec.selector"}]}}),
            ),
            &object(),
        );
        assert!(matches!(e, Error::Invalid(c) if c == ["spec.selector: Required value"]));
        let e = api_error(
            status(json!({"code": 404, "reason": "NotFound", "message": "x"})),
            &object(),
        );
        assert!(matches!(e, Error::NotFound(r) if r.name == "fibu"));
    }

    #[test]
    fn a_rollout_completes_only_when_every_count_matches_the_new_generation() {
        let d = |observed: i64, ready: i64, total: i64| {
            json!({"metadata": {"generation": 2}, "spec": {"replicas": 2},
                "status": {"observedGeneration": observed, "replicas": total, "updatedReplicas": 2,
                    "readyReplicas": ready, "availableReplicas": ready}})
        };
        assert!(rollout(&d(2, 2, 2)).complete);
        assert!(
            !rollout(&d(1, 2, 2)).complete,
            "status of the old generation"
        );
        assert!(!rollout(&d(2, 1, 2)).complete);
        assert!(!rollout(&d(2, 2, 3)).complete, "an old pod still there");
    }

    #[test]
    fn a_progress_deadline_is_a_failure() {
        let d = json!({"metadata": {"generation": 1}, "spec": {"replicas": 1},
            "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "conditions": [
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                 "message": "ReplicaSet \"fibu-1\" has timed out progressing."}]}});
        let r = rollout(&d);
        assert!(!r.complete);
        assert!(r.failure.unwrap().starts_with("ProgressDeadlineExceeded"));
    }

    #[test]
    fn a_pod_says_why_it_is_not_ready() {
        let p = pod(
            &json!({"metadata": {"name": "fibu-1"}, "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady", "message": "not ready"}],
            "containerStatuses": [{"name": "fibu", "restartCount": 3,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}}]}}),
        );
        assert!(!p.ready);
        assert_eq!(
            p.conditions,
            ["Ready=False (ContainersNotReady: not ready)"]
        );
        assert_eq!(p.containers, ["fibu: waiting (CrashLoopBackOff: back-off)"]);
        assert_eq!(p.restarts, 3);
    }
}
