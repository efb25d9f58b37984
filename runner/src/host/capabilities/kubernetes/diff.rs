//! What an apply changes: the object before against the object the server
//! returned (or would store, on a dry run), as paths of changed values.
//! Bookkeeping the server keeps by itself (resource versions, managed
//! fields, status, the rollout revision) is not a change.

use serde_json::{Map, Value};

/// Paths under `metadata` the server maintains (a restore sends none of them).
pub const SERVER_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "generation",
    "uid",
    "creationTimestamp",
    "selfLink",
];
/// Annotations the server (controllers) maintain.
const SERVER_ANNOTATIONS: &[&str] = &["deployment.kubernetes.io/revision"];

/// A copy of `obj` without what the server maintains.
pub fn normalize(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("status");
    }
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in SERVER_METADATA {
            meta.remove(*k);
        }
        if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            for k in SERVER_ANNOTATIONS {
                a.remove(*k);
            }
            if a.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    v
}

/// Paths whose values differ between `before` and `after`, after
/// [`normalize`]: `spec.replicas`, `data.LOG_LEVEL`,
/// `metadata.annotations["valero.dev/run-id"]`, `spec.template.spec.containers[0].image`.
pub fn changed_paths(before: &Value, after: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(
        &normalize(before),
        &normalize(after),
        String::new(),
        &mut out,
    );
    out
}

fn key_path(prefix: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match (prefix.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{prefix}.{key}"),
        (_, false) => format!("{prefix}[{}]", Value::String(key.to_string())),
    }
}

fn walk(a: &Value, b: &Value, path: String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => walk_maps(x, y, &path, out),
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                walk(p, q, format!("{path}[{i}]"), out);
            }
        }
        _ if a == b => {}
        _ => out.push(if path.is_empty() { ".".into() } else { path }),
    }
}

fn walk_maps(x: &Map<String, Value>, y: &Map<String, Value>, path: &str, out: &mut Vec<String>) {
    let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let p = key_path(path, k);
        match (x.get(k), y.get(k)) {
            (Some(a), Some(b)) => walk(a, b, p, out),
            _ => out.push(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_bookkeeping_is_not_a_change() {
        let before = json!({"metadata": {"name": "a", "resourceVersion": "1", "generation": 1,
            "annotations": {"deployment.kubernetes.io/revision": "1"}}, "spec": {"replicas": 2}, "status": {"readyReplicas": 1}});
        let after = json!({"metadata": {"name": "a", "resourceVersion": "7", "generation": 3,
            "managedFields": [{}], "annotations": {"deployment.kubernetes.io/revision": "3"}}, "spec": {"replicas": 2}, "status": {}});
        assert!(changed_paths(&before, &after).is_empty());
    }

    #[test]
    fn changed_added_and_removed_values_are_named_by_path() {
        let before = json!({"metadata": {"annotations": {"valero.dev/run-id": "r1"}}, "data": {"LOG_LEVEL": "info", "OLD": "x"},
            "spec": {"template": {"spec": {"containers": [{"image": "a:1"}]}}}});
        let after = json!({"metadata": {"annotations": {"valero.dev/run-id": "r2"}}, "data": {"LOG_LEVEL": "debug", "NEW": "y"},
            "spec": {"template": {"spec": {"containers": [{"image": "a:2"}]}}}});
        assert_eq!(
            changed_paths(&before, &after),
            [
                "data.LOG_LEVEL",
                "data.NEW",
                "data.OLD",
                "metadata.annotations[\"valero.dev/run-id\"]",
                "spec.template.spec.containers[0].image",
            ]
        );
    }

    #[test]
    fn a_list_of_another_length_is_one_change() {
        let a = json!({"spec": {"ports": [1]}});
        let b = json!({"spec": {"ports": [1, 2]}});
        assert_eq!(changed_paths(&a, &b), ["spec.ports"]);
    }
}
