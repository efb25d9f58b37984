//! What a stage may touch: every object reference and manifest is checked
//! against the stage's grant and the host's own rules before a request is
//! built, and what comes back is stripped of Secret values. Pure functions,
//! so each rule is tested without a cluster.

use serde_json::Value;

use crate::pipeline::{KubeKind, KubernetesGrant, kube_kind};

/// Why a request is not sent: `granted = false` is a host rule no grant lifts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub rule: &'static str,
    pub detail: String,
    pub grantable: bool,
}

/// What replaces a Secret's values in anything handed to a guest.
pub const REDACTED: &str = "<redacted by valero>";

/// A checked object reference: the kind is known and granted, the namespace
/// (empty for cluster-scoped kinds) is granted, the name is a valid name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: &'static KubeKind,
    pub namespace: String,
    pub name: String,
}

pub struct Policy<'a> {
    pub stage: &'a str,
    pub grant: &'a KubernetesGrant,
    pub default_namespace: &'a str,
}

fn denied(rule: &'static str, detail: String) -> Denial {
    Denial {
        rule,
        detail,
        grantable: true,
    }
}

fn refused(rule: &'static str, detail: String) -> Denial {
    Denial {
        rule,
        detail,
        grantable: false,
    }
}

/// A DNS-1123 subdomain: what Kubernetes accepts as an object name, and
/// what keeps a name from changing the request path (no `/`, no `..`).
pub fn valid_name(name: &str) -> bool {
    (1..=253).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name
            .split('.')
            .all(|part| !part.is_empty() && !part.starts_with('-') && !part.ends_with('-'))
}

impl Policy<'_> {
    /// The kind of `api_version`/`kind`, if it exists, matches and is granted.
    pub fn kind(&self, api_version: &str, kind: &str) -> Result<&'static KubeKind, Denial> {
        let Some(k) = kube_kind(kind) else {
            return Err(refused(
                "kind",
                format!(
                    "kind `{kind}` is not one a stage can be granted (cluster-wide kinds other than Namespace never are)"
                ),
            ));
        };
        if !self.grant.allows_kind(kind) {
            return Err(denied(
                "kind",
                format!(
                    "kind `{kind}` is not granted to stage `{}`; add \"{kind}\" to its `grants.kubernetes.kinds`",
                    self.stage
                ),
            ));
        }
        if !api_version.is_empty() && api_version != k.api_version {
            return Err(refused(
                "api-version",
                format!(
                    "`{kind}` is served as apiVersion `{}` here, not `{api_version}`",
                    k.api_version
                ),
            ));
        }
        Ok(k)
    }

    /// The namespace a request about `kind` goes to (the target's default
    /// when empty), if granted.
    pub fn namespace(&self, kind: &KubeKind, namespace: &str) -> Result<String, Denial> {
        if !kind.namespaced {
            return Ok(String::new());
        }
        self.granted_namespace(namespace)
    }

    /// `namespace` (the target's default when empty), if granted: also the
    /// scope of the diagnostic reads (pods, their logs, events).
    pub fn granted_namespace(&self, namespace: &str) -> Result<String, Denial> {
        let ns = if namespace.is_empty() {
            self.default_namespace
        } else {
            namespace
        };
        if !self.grant.allows_namespace(ns) {
            return Err(denied(
                "namespace",
                format!(
                    "namespace `{ns}` is not granted to stage `{}`; add \"{ns}\" to its `grants.kubernetes.namespaces`",
                    self.stage
                ),
            ));
        }
        Ok(ns.to_string())
    }

    /// The object events are read about: any kind (pods included), a valid
    /// name; both go into a field selector.
    pub fn involved(&self, kind: &str, name: &str) -> Result<(), Denial> {
        if valid_name(name) && !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(())
        } else {
            Err(refused(
                "name",
                format!("`{kind}/{name}` is not a valid object"),
            ))
        }
    }

    /// A whole reference: kind, namespace, name.
    pub fn target(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Target, Denial> {
        let k = self.kind(api_version, kind)?;
        let namespace = self.namespace(k, namespace)?;
        if !valid_name(name) {
            return Err(refused(
                "name",
                format!(
                    "`{name}` is not a valid object name: use lower-case letters, digits, `-` and `.`"
                ),
            ));
        }
        if !k.namespaced && !self.grant.allows_namespace(name) {
            // A Namespace object is the namespace itself.
            return Err(denied(
                "namespace",
                format!(
                    "namespace `{name}` is not granted to stage `{}`; add \"{name}\" to its `grants.kubernetes.namespaces`",
                    self.stage
                ),
            ));
        }
        Ok(Target {
            kind: k,
            namespace,
            name: name.to_string(),
        })
    }

    /// A manifest about to be applied or restored: its identity is checked
    /// as a reference, its namespace filled in, and its pod template held to
    /// the host's rules. Returns the checked target.
    pub fn manifest(&self, obj: &mut Value) -> Result<Target, Denial> {
        let field = |obj: &Value, path: &[&str]| -> String {
            let mut v = obj;
            for p in path {
                v = &v[*p];
            }
            v.as_str().unwrap_or_default().to_string()
        };
        if !obj.is_object() {
            return Err(refused(
                "manifest",
                "a manifest is one object (a JSON or YAML mapping)".into(),
            ));
        }
        let api_version = field(obj, &["apiVersion"]);
        let kind = field(obj, &["kind"]);
        if api_version.is_empty() || kind.is_empty() {
            return Err(refused(
                "manifest",
                "the manifest has no `apiVersion` or `kind`".into(),
            ));
        }
        let target = self.target(
            &api_version,
            &kind,
            &field(obj, &["metadata", "namespace"]),
            &field(obj, &["metadata", "name"]),
        )?;
        if target.kind.namespaced {
            obj["metadata"]["namespace"] = Value::String(target.namespace.clone());
        } else if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        if kind == "Secret" && secret_values(obj).any(|v| v == REDACTED) {
            return Err(refused(
                "secret-values",
                "this Secret carries values valero redacted; a Secret cannot be written back from what a stage read".into(),
            ));
        }
        pod_security(obj)?;
        Ok(target)
    }
}

fn secret_values(obj: &Value) -> impl Iterator<Item = &str> {
    ["data", "stringData"]
        .into_iter()
        .filter_map(|k| obj.get(k).and_then(Value::as_object))
        .flat_map(|m| m.values().filter_map(Value::as_str))
}

/// The pod spec of a workload object, wherever its kind keeps it.
fn pod_spec(obj: &Value) -> Option<&Value> {
    let spec = obj.get("spec")?;
    spec.pointer("/template/spec")
        .or_else(|| spec.pointer("/jobTemplate/spec/template/spec"))
}

/// A deploy stage runs workloads, not node access: no host namespaces,
/// host paths or privileged containers, whatever its grant says.
fn pod_security(obj: &Value) -> Result<(), Denial> {
    let Some(spec) = pod_spec(obj) else {
        return Ok(());
    };
    for key in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec.get(key).and_then(Value::as_bool) == Some(true) {
            return Err(refused(
                "pod-security",
                format!("`{key}: true` gives a pod the node's namespaces; remove it"),
            ));
        }
    }
    if let Some(vols) = spec.get("volumes").and_then(Value::as_array)
        && vols.iter().any(|v| v.get("hostPath").is_some())
    {
        return Err(refused(
            "pod-security",
            "`hostPath` volumes reach the node's files; use a ConfigMap, Secret or PersistentVolumeClaim".into(),
        ));
    }
    let containers = ["containers", "initContainers", "ephemeralContainers"]
        .into_iter()
        .filter_map(|k| spec.get(k).and_then(Value::as_array))
        .flatten();
    for c in containers {
        let sc = c.get("securityContext");
        let flag = |k: &str| sc.and_then(|s| s.get(k)).and_then(Value::as_bool) == Some(true);
        if flag("privileged") || flag("allowPrivilegeEscalation") {
            return Err(refused(
                "pod-security",
                format!(
                    "container `{}` asks for privileges (`privileged` or `allowPrivilegeEscalation`); remove them",
                    c.get("name").and_then(Value::as_str).unwrap_or("?")
                ),
            ));
        }
        if sc
            .and_then(|s| s.pointer("/capabilities/add"))
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
        {
            return Err(refused(
                "pod-security",
                "adding Linux capabilities (`securityContext.capabilities.add`) is refused".into(),
            ));
        }
    }
    Ok(())
}

/// Replaces every value of a Secret (in `data` and `stringData`) before an
/// object is handed to a guest; other kinds pass unchanged.
pub fn redact(obj: &mut Value) {
    if obj.get("kind").and_then(Value::as_str) != Some("Secret") {
        return;
    }
    for key in ["data", "stringData"] {
        if let Some(m) = obj.get_mut(key).and_then(Value::as_object_mut) {
            for v in m.values_mut() {
                *v = Value::String(REDACTED.into());
            }
        }
    }
    // The last-applied annotation of client-side apply repeats the values.
    if let Some(a) = obj
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn grant() -> KubernetesGrant {
        KubernetesGrant {
            namespaces: ["neuroerp-staging".to_string()].into(),
            kinds: ["Deployment", "ConfigMap", "Namespace", "Secret"]
                .map(String::from)
                .into(),
        }
    }

    fn check(obj: Value) -> Result<Target, Denial> {
        let g = grant();
        let p = Policy {
            stage: "deploy",
            grant: &g,
            default_namespace: "neuroerp-staging",
        };
        let mut obj = obj;
        p.manifest(&mut obj)
    }

    #[test]
    fn a_granted_deployment_gets_the_default_namespace() {
        let t = check(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "fibu"}}),
        )
        .unwrap();
        assert_eq!(t.namespace, "neuroerp-staging");
    }

    #[test]
    fn another_namespace_is_not_granted_and_names_the_grant_to_add() {
        let d = check(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "namespace": "kube-system"}}))
            .unwrap_err();
        assert_eq!((d.rule, d.grantable), ("namespace", true));
        assert!(
            d.detail.contains("grants.kubernetes.namespaces"),
            "{}",
            d.detail
        );
    }

    #[test]
    fn an_ungranted_kind_and_an_ungrantable_kind_are_told_apart() {
        let d = check(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}}))
            .unwrap_err();
        assert_eq!((d.rule, d.grantable), ("kind", true));
        let d = check(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "x"}}))
            .unwrap_err();
        assert_eq!((d.rule, d.grantable), ("kind", false));
    }

    #[test]
    fn a_namespace_object_must_be_a_granted_namespace() {
        assert!(check(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "neuroerp-staging"}})).is_ok());
        let d = check(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}),
        )
        .unwrap_err();
        assert_eq!(d.rule, "namespace");
    }

    #[test]
    fn names_that_would_change_the_request_path_are_refused() {
        for name in ["../secrets", "a/b", "", "UPPER", "x?watch=1"] {
            let d =
                check(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}))
                    .unwrap_err();
            assert_eq!(d.rule, "name", "{name}");
        }
    }

    #[test]
    fn pods_with_node_access_are_refused_whatever_the_grant() {
        let with = |spec: Value| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
                   "spec": {"template": {"spec": spec}}})
        };
        for spec in [
            json!({"hostNetwork": true, "containers": []}),
            json!({"volumes": [{"name": "root", "hostPath": {"path": "/"}}], "containers": []}),
            json!({"containers": [{"name": "c", "securityContext": {"privileged": true}}]}),
            json!({"initContainers": [{"name": "c", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}]}),
        ] {
            let d = check(with(spec.clone())).unwrap_err();
            assert_eq!((d.rule, d.grantable), ("pod-security", false), "{spec}");
        }
        assert!(check(with(json!({"containers": [{"name": "c", "image": "x"}]}))).is_ok());
    }

    #[test]
    fn secret_values_are_redacted_and_cannot_be_written_back() {
        let mut s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"url\":\"cG9zdGdyZXM=\"}}"}},
            "data": {"url": "cG9zdGdyZXM="}, "stringData": {"pw": "hunter2"}});
        redact(&mut s);
        let text = s.to_string();
        assert!(
            !text.contains("cG9zdGdyZXM=") && !text.contains("hunter2"),
            "{text}"
        );
        let d = check(s).unwrap_err();
        assert_eq!(d.rule, "secret-values");
    }
}
