//! The stage's `with` table and its validation. No host calls, so it is
//! unit-tested natively.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

/// `spec.progressDeadlineSeconds` of rendered Deployments when `with` sets none.
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: u32 = 120;
pub const DEFAULT_REPLICAS: u32 = 1;
/// The placeholders an `image` template may use.
const IMAGE_PLACEHOLDERS: &[&str] = &["service", "version"];

/// The stage's `with` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Namespace of namespaced objects that name none (default: the target's).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Image template with `{service}` and `{version}` (rendering only).
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub replicas: Option<u32>,
    #[serde(default)]
    pub progress_deadline_seconds: Option<u32>,
    /// Cap on the wait for all rollouts (always also bounded by the attempt's remaining time).
    #[serde(default)]
    pub rollout_timeout_ms: Option<u64>,
    #[serde(default)]
    pub force_conflicts: bool,
    #[serde(default = "default_rollback")]
    pub rollback: bool,
    #[serde(default)]
    pub resources: Option<Resources>,
    /// YAML files or directories applied instead of rendering `services`.
    #[serde(default)]
    pub manifests: Option<Vec<String>>,
    #[serde(default)]
    pub services: BTreeMap<String, ServiceConfig>,
}

fn default_rollback() -> bool {
    true
}

/// `resources`: the same requests and limits for every rendered container.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default)]
    pub requests: BTreeMap<String, Scalar>,
    #[serde(default)]
    pub limits: BTreeMap<String, Scalar>,
}

/// `[services.<name>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub version: String,
    pub port: u16,
    /// Plain configuration: the service's ConfigMap.
    #[serde(default)]
    pub env: BTreeMap<String, Scalar>,
    /// `NAME = "secret-name/key"`: references only, never values.
    #[serde(default)]
    pub secret_env: BTreeMap<String, String>,
}

/// A TOML scalar where Kubernetes wants a string (`PORT = 8101`, `cpu = 1`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Text(String),
    Number(serde_json::Number),
    Bool(bool),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Text(s) => f.write_str(s),
            Scalar::Number(n) => write!(f, "{n}"),
            Scalar::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// A `secret_env` value split into the Secret's name and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub secret: String,
    pub key: String,
}

impl SecretRef {
    pub fn parse(value: &str) -> Option<SecretRef> {
        let (secret, key) = value.split_once('/')?;
        (valid_subdomain(secret) && valid_config_key(key)).then(|| SecretRef {
            secret: secret.to_string(),
            key: key.to_string(),
        })
    }
}

impl Config {
    pub fn replicas(&self) -> u32 {
        self.replicas.unwrap_or(DEFAULT_REPLICAS)
    }

    pub fn progress_deadline_seconds(&self) -> u32 {
        self.progress_deadline_seconds
            .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS)
    }

    /// Everything wrong with the table, each naming the key and what to write.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if let Some(ns) = &self.namespace
            && !valid_label(ns)
        {
            p.push(format!(
                "`namespace`: `{ns}` is not a namespace name; use 1 to 63 lower-case letters, digits and `-`, starting and ending with a letter or digit, e.g. namespace = \"neuroerp-staging\""
            ));
        }
        if self.rollout_timeout_ms == Some(0) {
            p.push("`rollout_timeout_ms`: must be more than 0, e.g. rollout_timeout_ms = 120000 (or leave it out: the stage's remaining time bounds the wait)".into());
        }
        match &self.manifests {
            Some(manifests) => self.manifest_problems(manifests, &mut p),
            None => self.render_problems(&mut p),
        }
        p
    }

    fn manifest_problems(&self, manifests: &[String], p: &mut Vec<String>) {
        if manifests.is_empty() {
            p.push("`manifests`: empty; list YAML files or directories, e.g. manifests = [\"deploy/k8s\"], or leave it out to render `services`".into());
        }
        for (i, path) in manifests.iter().enumerate() {
            if path.trim().is_empty() {
                p.push(format!(
                    "`manifests[{i}]`: empty path; write a YAML file or a directory of *.yaml / *.yml files"
                ));
            }
        }
        // Keys that only shape rendered objects would be silently ignored with `manifests`.
        let rendering_only = [
            ("services", !self.services.is_empty()),
            ("image", self.image.is_some()),
            ("replicas", self.replicas.is_some()),
            (
                "progress_deadline_seconds",
                self.progress_deadline_seconds.is_some(),
            ),
            ("resources", self.resources.is_some()),
        ];
        for (key, set) in rendering_only {
            if set {
                p.push(format!(
                    "`{key}`: only used when rendering `services`; with `manifests` write it in the manifests, or remove `manifests` to render"
                ));
            }
        }
    }

    fn render_problems(&self, p: &mut Vec<String>) {
        if self.services.is_empty() {
            p.push("`services`: missing; add one table per service, e.g. services = { fibu-service = { version = \"1.0.5\", port = 8101 } }, or list YAML files in `manifests`".into());
        }
        match &self.image {
            None => p.push("`image`: missing; the image template of every service, e.g. image = \"registry.example/neuroerp/{service}:{version}\"".into()),
            Some(image) => {
                if let Err(e) = expand_image(image, "service", "1.0.0") {
                    p.push(format!("`image`: {e}"));
                }
            }
        }
        if self.replicas.is_some_and(|r| r > i32::MAX as u32) {
            p.push(format!(
                "`replicas`: at most {}, e.g. replicas = 2",
                i32::MAX
            ));
        }
        match self.progress_deadline_seconds {
            Some(0) => p.push("`progress_deadline_seconds`: must be more than 0, e.g. progress_deadline_seconds = 120".into()),
            Some(s) if s > i32::MAX as u32 => p.push(format!(
                "`progress_deadline_seconds`: at most {}, e.g. progress_deadline_seconds = 120",
                i32::MAX
            )),
            _ => {}
        }
        if let Some(resources) = &self.resources {
            for (what, map) in [
                ("requests", &resources.requests),
                ("limits", &resources.limits),
            ] {
                for (name, quantity) in map {
                    if name.is_empty() || name.chars().any(char::is_whitespace) {
                        p.push(format!(
                            "`resources.{what}`: `{name}` is not a resource name; write e.g. cpu, memory or ephemeral-storage"
                        ));
                    }
                    let q = quantity.to_string();
                    if matches!(quantity, Scalar::Bool(_)) || !valid_quantity(&q) {
                        p.push(format!(
                            "`resources.{what}.{name}`: `{q}` is not a quantity; write e.g. \"50m\" (cpu) or \"64Mi\" (memory)"
                        ));
                    }
                }
            }
        }
        for (name, svc) in &self.services {
            let at = format!("services.{name}");
            if !valid_service_name(name) {
                p.push(format!(
                    "`{at}`: `{name}` is not a valid service name; use 1 to 63 lower-case letters, digits and `-`, starting with a letter and ending with a letter or digit"
                ));
            }
            if !valid_label_value(&svc.version) || svc.version.is_empty() {
                p.push(format!(
                    "`{at}.version`: `{}` cannot be a label value; use 1 to 63 letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit, e.g. version = \"1.0.5\"",
                    svc.version
                ));
            }
            if svc.port == 0 {
                p.push(format!("`{at}.port`: must be 1 to 65535, e.g. port = 8101"));
            }
            for (key, value) in &svc.env {
                if !valid_env_name(key) {
                    p.push(format!(
                        "`{at}.env.{key}`: not a valid environment variable name; use letters, digits, `_`, `-` and `.`, not starting with a digit"
                    ));
                }
                if key == "PORT" && value.to_string() != svc.port.to_string() {
                    p.push(format!(
                        "`{at}.env.PORT`: PORT is set from `{at}.port` ({}); remove it from `env`",
                        svc.port
                    ));
                }
            }
            for (key, value) in &svc.secret_env {
                if !valid_env_name(key) {
                    p.push(format!(
                        "`{at}.secret_env.{key}`: not a valid environment variable name; use letters, digits, `_`, `-` and `.`, not starting with a digit"
                    ));
                }
                if key == "PORT" {
                    p.push(format!(
                        "`{at}.secret_env.PORT`: PORT is set from `{at}.port`; remove it"
                    ));
                }
                if svc.env.contains_key(key) {
                    p.push(format!(
                        "`{at}.secret_env.{key}`: also set in `{at}.env`; keep it in one of them"
                    ));
                }
                if SecretRef::parse(value).is_none() {
                    p.push(format!(
                        "`{at}.secret_env.{key}`: `{value}` is not \"secret-name/key\"; write the Secret's name and the key in it, e.g. {key} = \"neuroerp-db/{name}-url\""
                    ));
                }
            }
        }
    }
}

/// The image of `service` at `version` from a template with `{service}` and
/// `{version}`; an error says what is wrong with the template.
pub fn expand_image(template: &str, service: &str, version: &str) -> Result<String, String> {
    if template.trim().is_empty() {
        return Err("empty; write e.g. \"registry.example/neuroerp/{service}:{version}\"".into());
    }
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        out.push_str(&rest[..open]);
        if rest[open..].starts_with('}') {
            return Err(format!(
                "`}}` without `{{` in `{template}`; placeholders are {{service}} and {{version}}"
            ));
        }
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err(format!(
                "`{{` without `}}` in `{template}`; placeholders are {{service}} and {{version}}"
            ));
        };
        match &after[..close] {
            "service" => out.push_str(service),
            "version" => out.push_str(version),
            other => {
                return Err(format!(
                    "unknown placeholder `{{{other}}}` in `{template}`; the placeholders are {}",
                    IMAGE_PLACEHOLDERS
                        .iter()
                        .map(|p| format!("{{{p}}}"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ));
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    if out.chars().any(char::is_whitespace) {
        return Err(format!(
            "`{template}` contains whitespace; an image reference has none"
        ));
    }
    Ok(out)
}

/// DNS-1123 label: namespace names.
pub fn valid_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// DNS-1035 label: Service names (a DNS-1123 label starting with a letter).
pub fn valid_service_name(s: &str) -> bool {
    valid_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase())
}

/// DNS-1123 subdomain: Secret names.
fn valid_subdomain(s: &str) -> bool {
    (1..=253).contains(&s.len()) && s.split('.').all(valid_label)
}

/// ConfigMap and Secret keys.
fn valid_config_key(s: &str) -> bool {
    (1..=253).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Environment variable names every Kubernetes version accepts (and that
/// `envFrom` does not skip).
fn valid_env_name(s: &str) -> bool {
    valid_config_key(s) && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// A label value: at most 63 characters, alphanumerics at both ends.
pub fn valid_label_value(s: &str) -> bool {
    s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && (s.is_empty()
            || (s.starts_with(|c: char| c.is_ascii_alphanumeric())
                && s.ends_with(|c: char| c.is_ascii_alphanumeric())))
}

/// A resource quantity (`50m`, `64Mi`, `1.5`, `1e3`), as the API server parses it.
pub fn valid_quantity(q: &str) -> bool {
    let s = q.strip_prefix(['+', '-']).unwrap_or(q);
    let digits = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits);
    let number_ok = number.bytes().any(|b| b.is_ascii_digit())
        && number.bytes().filter(|&b| b == b'.').count() <= 1;
    let suffix_ok = matches!(
        suffix,
        "" | "n"
            | "u"
            | "m"
            | "k"
            | "M"
            | "G"
            | "T"
            | "P"
            | "E"
            | "Ki"
            | "Mi"
            | "Gi"
            | "Ti"
            | "Pi"
            | "Ei"
    ) || suffix
        .strip_prefix(['e', 'E'])
        .map(|exp| exp.strip_prefix(['+', '-']).unwrap_or(exp))
        .is_some_and(|exp| !exp.is_empty() && exp.bytes().all(|b| b.is_ascii_digit()));
    number_ok && suffix_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: serde_json::Value) -> Config {
        serde_json::from_value(value).expect("config parses")
    }

    fn minimal() -> serde_json::Value {
        json!({
            "image": "registry.example/neuroerp/{service}:{version}",
            "services": { "fibu-service": { "version": "1.0.5", "port": 8101 } }
        })
    }

    #[test]
    fn a_minimal_rendering_config_is_valid_with_defaults() {
        let config = parse(minimal());
        assert!(config.problems().is_empty(), "{:?}", config.problems());
        assert_eq!(config.replicas(), 1);
        assert_eq!(config.progress_deadline_seconds(), 120);
        assert!(config.rollback);
        assert!(!config.force_conflicts);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = serde_json::from_value::<Config>(json!({ "replica": 2 })).unwrap_err();
        assert!(err.to_string().contains("unknown field `replica`"), "{err}");
        let err = serde_json::from_value::<Config>(json!({
            "services": { "a": { "version": "1", "port": 1, "ports": 2 } }
        }))
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `ports`"), "{err}");
    }

    #[test]
    fn missing_services_and_image_name_the_keys() {
        let problems = parse(json!({})).problems();
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("`services`: missing"))
        );
        assert!(problems.iter().any(|p| p.starts_with("`image`: missing")));
    }

    #[test]
    fn manifests_exclude_the_rendering_keys() {
        let mut value = minimal();
        value["manifests"] = json!(["deploy/k8s"]);
        value["replicas"] = json!(2);
        let problems = parse(value).problems();
        for key in ["services", "image", "replicas"] {
            assert!(
                problems
                    .iter()
                    .any(|p| p.starts_with(&format!("`{key}`: only used"))),
                "{key}: {problems:?}"
            );
        }
        let ok = parse(json!({ "manifests": ["deploy/k8s"], "rollback": false }));
        assert!(ok.problems().is_empty(), "{:?}", ok.problems());
        assert!(!parse(json!({ "manifests": [] })).problems().is_empty());
    }

    #[test]
    fn service_fields_are_checked() {
        let problems = parse(json!({
            "image": "r/{service}:{version}",
            "namespace": "Bad_NS",
            "progress_deadline_seconds": 0,
            "services": { "Fibu": { "version": "1.0.5+", "port": 0,
                "env": { "1X": "a", "PORT": 9 },
                "secret_env": { "DB": "no-slash", "X": "s/k" },
            } }
        }))
        .problems();
        for needle in [
            "`namespace`",
            "`progress_deadline_seconds`",
            "`services.Fibu`: `Fibu`",
            "`services.Fibu.version`",
            "`services.Fibu.port`",
            "`services.Fibu.env.1X`",
            "`services.Fibu.env.PORT`",
            "`services.Fibu.secret_env.DB`",
        ] {
            assert!(
                problems.iter().any(|p| p.starts_with(needle)),
                "{needle}: {problems:#?}"
            );
        }
        assert!(!problems.iter().any(|p| p.contains("secret_env.X")));
    }

    #[test]
    fn env_port_equal_to_port_is_tolerated() {
        let mut value = minimal();
        value["services"]["fibu-service"]["env"] = json!({ "PORT": 8101, "LOG": "info" });
        assert!(parse(value).problems().is_empty());
    }

    #[test]
    fn image_templates() {
        assert_eq!(
            expand_image("r.example/n/{service}:{version}", "fibu", "1.0.5").unwrap(),
            "r.example/n/fibu:1.0.5"
        );
        assert_eq!(expand_image("r/app:1", "a", "b").unwrap(), "r/app:1");
        assert!(
            expand_image("r/{name}:1", "a", "b")
                .unwrap_err()
                .contains("unknown placeholder `{name}`")
        );
        assert!(
            expand_image("r/{service:1", "a", "b")
                .unwrap_err()
                .contains("without")
        );
        assert!(
            expand_image("r/service}:1", "a", "b")
                .unwrap_err()
                .contains("without")
        );
        assert!(expand_image(" ", "a", "b").is_err());
    }

    #[test]
    fn quantities() {
        for ok in [
            "50m", "64Mi", "1", "1.5", "0.5Gi", "1e3", "2E-2", "+1k", ".5",
        ] {
            assert!(valid_quantity(ok), "{ok}");
        }
        for bad in ["", "m", "64MB", "1..5", "1e", "abc", "1 Mi"] {
            assert!(!valid_quantity(bad), "{bad}");
        }
        let problems = parse(json!({
            "image": "r/{service}", "services": { "a": { "version": "1", "port": 1 } },
            "resources": { "requests": { "cpu": 1, "memory": "64MB" }, "limits": { "memory": true } }
        }))
        .problems();
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(problems[0].starts_with("`resources.requests.memory`"));
        assert!(problems[1].starts_with("`resources.limits.memory`"));
    }

    #[test]
    fn secret_refs() {
        assert_eq!(
            SecretRef::parse("neuroerp-db/fibu-service-url"),
            Some(SecretRef {
                secret: "neuroerp-db".into(),
                key: "fibu-service-url".into()
            })
        );
        assert_eq!(SecretRef::parse("db"), None);
        assert_eq!(SecretRef::parse("Db/key"), None);
        assert_eq!(SecretRef::parse("db/a/b"), None);
        assert_eq!(SecretRef::parse("db/"), None);
    }
}
