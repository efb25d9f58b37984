//! The `kubernetes` parts of pipeline.toml: a target's cluster
//! (`[targets.T.kubernetes]`) and a stage's grant
//! (`grants.kubernetes = { namespaces = […], kinds = […] }`), with their keys
//! next to their parsers.

use std::collections::BTreeSet;

use toml::de::DeTable;

use super::{Val, Validator};
use crate::model::{ClusterSpec, KUBE_KINDS, KubeconfigSource, KubernetesGrant, Pipeline};
use crate::values;

const CLUSTER_KEYS: &[&str] = &["kubeconfig", "context", "namespace"];
const KUBECONFIG_KEYS: &[&str] = &["host_env", "in_cluster"];
const GRANT_KEYS: &[&str] = &["namespaces", "kinds"];
pub(super) const GRANT_HELP: &str = "e.g. kubernetes = { namespaces = [\"neuroerp-staging\"], kinds = [\"Deployment\", \"Service\", \"ConfigMap\"] }";
const CLUSTER_HELP: &str = "e.g. [targets.staging.kubernetes] kubeconfig = { host_env = \"KUBECONFIG\" }, namespace = \"neuroerp-staging\"";

/// A DNS-1123 label: what Kubernetes accepts as a namespace name.
pub(crate) fn valid_namespace(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

impl Validator<'_> {
    /// `[targets.T.kubernetes]`.
    pub(super) fn cluster(&mut self, target: &str, v: &Val<'_>) -> Option<ClusterSpec> {
        self.clusters_written.insert(target.to_string());
        let t = self.table(v)?;
        let context = format!("in [targets.{target}.kubernetes]");
        self.check_keys(t, CLUSTER_KEYS, &context);
        let kubeconfig = match t.get("kubeconfig") {
            None => {
                self.error(
                    v.span(),
                    format!("missing `kubeconfig` {context}"),
                    Some(CLUSTER_HELP.into()),
                );
                None
            }
            Some(k) => self.kubeconfig(k, &context),
        };
        let namespace = match t.get("namespace") {
            None => {
                self.error(
                    v.span(),
                    format!("missing `namespace` {context}"),
                    Some("the namespace of objects that name none, e.g. namespace = \"neuroerp-staging\"".into()),
                );
                None
            }
            Some(n) => self.namespace_name(n),
        };
        let cluster_context = t
            .get("context")
            .and_then(|c| self.non_empty_string(c, "`context`"))
            .map(str::to_string);
        Some(ClusterSpec {
            kubeconfig: kubeconfig?,
            context: cluster_context,
            namespace: namespace?,
        })
    }

    fn kubeconfig(&mut self, v: &Val<'_>, context: &str) -> Option<KubeconfigSource> {
        if let Some(path) = v.get_ref().as_str() {
            if path.is_empty() {
                self.error(v.span(), "empty kubeconfig path", Some(CLUSTER_HELP.into()));
                return None;
            }
            return Some(KubeconfigSource::File(values::resolve(
                &self.base_dir,
                path,
            )));
        }
        let t = self.table(v)?;
        self.check_keys(t, KUBECONFIG_KEYS, &format!("in `kubeconfig` {context}"));
        match (t.get("host_env"), t.get("in_cluster")) {
            (Some(h), None) => self
                .non_empty_string(h, "`host_env`")
                .map(|var| KubeconfigSource::HostEnv(var.to_string())),
            (None, Some(b)) if self.boolean(b) == Some(true) => Some(KubeconfigSource::InCluster),
            _ => {
                self.error(
                    v.span(),
                    format!("`kubeconfig` {context} needs a path, `host_env` or `in_cluster = true`"),
                    Some("e.g. kubeconfig = { host_env = \"KUBECONFIG\" }, kubeconfig = \"deploy/kubeconfig\" or kubeconfig = { in_cluster = true }".into()),
                );
                None
            }
        }
    }

    fn namespace_name(&mut self, v: &Val<'_>) -> Option<String> {
        let name = self.string(v)?;
        if valid_namespace(name) {
            Some(name.to_string())
        } else {
            self.error(
                v.span(),
                format!("invalid namespace name `{name}`"),
                Some("use 1 to 63 lower-case letters, digits and `-`, starting and ending with a letter or digit".into()),
            );
            None
        }
    }

    /// `grants.kubernetes = { namespaces = […], kinds = […] }`, and every
    /// target the stage runs on declares a cluster.
    pub(super) fn kubernetes_grant(
        &mut self,
        stage: &str,
        whole: &Val<'_>,
        t: &DeTable<'_>,
        p: &Pipeline,
        when: Option<&BTreeSet<String>>,
    ) -> Option<KubernetesGrant> {
        self.check_keys(
            t,
            GRANT_KEYS,
            &format!("in `grants.kubernetes` of stage `{stage}`"),
        );
        let mut ok = true;
        let mut grant = KubernetesGrant::default();
        for (key, what) in [("namespaces", "namespace"), ("kinds", "kind")] {
            let Some(v) = t.get(key) else {
                self.error(
                    whole.span(),
                    format!("`grants.kubernetes` of stage `{stage}` has no `{key}`"),
                    Some(GRANT_HELP.into()),
                );
                ok = false;
                continue;
            };
            for (item, span) in self.strings(v).unwrap_or_default() {
                if what == "namespace" {
                    if valid_namespace(item) {
                        grant.namespaces.insert(item.to_string());
                    } else {
                        self.error(
                            span,
                            format!("invalid namespace name `{item}`"),
                            Some("use 1 to 63 lower-case letters, digits and `-`".into()),
                        );
                        ok = false;
                    }
                } else if KUBE_KINDS.iter().any(|k| k.kind == item) {
                    grant.kinds.insert(item.to_string());
                } else {
                    self.error(
                        span,
                        format!("kind `{item}` cannot be granted"),
                        values::suggestion(
                            item,
                            KUBE_KINDS.iter().map(|k| k.kind),
                            "grantable kinds are",
                        ),
                    );
                    ok = false;
                }
            }
        }
        let runs_on: Vec<&String> = match when {
            Some(w) => w.iter().collect(),
            None => p.targets.keys().collect(),
        };
        for target in runs_on {
            if !self.clusters_written.contains(target.as_str()) {
                self.error(
                    whole.span(),
                    format!(
                        "stage `{stage}` is granted `kubernetes` and runs on target `{target}`, which declares no cluster"
                    ),
                    Some(format!(
                        "declare [targets.{target}.kubernetes], or limit the stage with `when = [\"staging\", …]`"
                    )),
                );
                ok = false;
            }
        }
        ok.then_some(grant)
    }
}
