//! The objects rendered from `services`: a Namespace, and per service a
//! ConfigMap, a Service and a Deployment. No host calls, so it is unit-tested
//! natively.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::config::{Config, SecretRef, ServiceConfig, expand_image};

pub const PART_OF: &str = "neuroerp";
pub const MANAGED_BY: &str = "valero";
/// On Deployment metadata only: a new run id must not change the pod template
/// (that would roll every pod on every run).
pub const RUN_ID_ANNOTATION: &str = "valero.dev/run-id";
/// On the pod template: a changed ConfigMap value rolls that service's pods,
/// which `envFrom` alone would not.
pub const CONFIG_HASH_ANNOTATION: &str = "valero.dev/config-hash";

/// Every object, in apply order: Namespace, ConfigMaps, Services, Deployments.
pub fn render(config: &Config, namespace: &str, run_id: &str) -> Result<Vec<Value>, String> {
    let image = config.image.as_deref().unwrap_or_default();
    let mut config_maps = Vec::new();
    let mut services = Vec::new();
    let mut deployments = Vec::new();
    for (name, svc) in &config.services {
        let data = config_data(svc);
        let image = expand_image(image, name, &svc.version).map_err(|e| format!("`image`: {e}"))?;
        config_maps.push(config_map(name, svc, namespace, &data));
        services.push(service(name, svc, namespace));
        deployments.push(deployment(
            name,
            svc,
            &Rendering {
                config,
                namespace,
                run_id,
                image: &image,
                config_hash: &config_hash(&data),
            },
        ));
    }
    let mut objects = vec![json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": namespace,
            "labels": {
                "app.kubernetes.io/part-of": PART_OF,
                "app.kubernetes.io/managed-by": MANAGED_BY,
            },
        },
    })];
    objects.extend(config_maps);
    objects.extend(services);
    objects.extend(deployments);
    Ok(objects)
}

struct Rendering<'a> {
    config: &'a Config,
    namespace: &'a str,
    run_id: &'a str,
    image: &'a str,
    config_hash: &'a str,
}

/// The ConfigMap's data: `env` as strings (`secret_env` never goes here).
pub fn config_data(svc: &ServiceConfig) -> BTreeMap<String, String> {
    svc.env
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect()
}

/// sha256 (hex) of the ConfigMap data, keys sorted.
pub fn config_hash(data: &BTreeMap<String, String>) -> String {
    // A BTreeMap serialises with sorted keys: the same data, the same hash.
    let canonical = serde_json::to_string(data).unwrap_or_default();
    Sha256::digest(canonical.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn config_map_name(service: &str) -> String {
    format!("{service}-config")
}

/// The labels a Deployment selects its pods by (immutable once created, so
/// the version is not among them).
fn selector(name: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("app.kubernetes.io/name".into(), name.into());
    m.insert("app.kubernetes.io/instance".into(), name.into());
    m
}

fn labels(name: &str, svc: &ServiceConfig) -> Map<String, Value> {
    let mut m = selector(name);
    m.insert(
        "app.kubernetes.io/version".into(),
        svc.version.as_str().into(),
    );
    m.insert("app.kubernetes.io/part-of".into(), PART_OF.into());
    m.insert("app.kubernetes.io/managed-by".into(), MANAGED_BY.into());
    m
}

fn config_map(
    name: &str,
    svc: &ServiceConfig,
    namespace: &str,
    data: &BTreeMap<String, String>,
) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": config_map_name(name),
            "namespace": namespace,
            "labels": labels(name, svc),
        },
        "data": data,
    })
}

fn service(name: &str, svc: &ServiceConfig, namespace: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels(name, svc),
        },
        "spec": {
            "type": "ClusterIP",
            "selector": selector(name),
            "ports": [{
                "name": "http",
                "protocol": "TCP",
                "port": svc.port,
                "targetPort": svc.port,
            }],
        },
    })
}

fn deployment(name: &str, svc: &ServiceConfig, r: &Rendering<'_>) -> Value {
    let mut env = vec![json!({ "name": "PORT", "value": svc.port.to_string() })];
    for (var, reference) in &svc.secret_env {
        // Validated before rendering; an unparsable one is skipped rather than
        // rendered half-way.
        if let Some(SecretRef { secret, key }) = SecretRef::parse(reference) {
            env.push(json!({
                "name": var,
                "valueFrom": { "secretKeyRef": { "name": secret, "key": key } },
            }));
        }
    }
    let mut container = json!({
        "name": name,
        "image": r.image,
        "ports": [{ "name": "http", "containerPort": svc.port, "protocol": "TCP" }],
        "env": env,
        "envFrom": [{ "configMapRef": { "name": config_map_name(name) } }],
        "readinessProbe": {
            "httpGet": { "path": "/ready", "port": svc.port },
            "periodSeconds": 5,
        },
        "livenessProbe": {
            "httpGet": { "path": "/health", "port": svc.port },
            "periodSeconds": 10,
        },
    });
    if let Some(resources) = &r.config.resources {
        let quantities = |m: &BTreeMap<String, crate::config::Scalar>| -> Map<String, Value> {
            m.iter()
                .map(|(k, v)| (k.clone(), Value::String(v.to_string())))
                .collect()
        };
        let mut res = Map::new();
        if !resources.requests.is_empty() {
            res.insert("requests".into(), quantities(&resources.requests).into());
        }
        if !resources.limits.is_empty() {
            res.insert("limits".into(), quantities(&resources.limits).into());
        }
        if !res.is_empty() {
            container["resources"] = res.into();
        }
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": r.namespace,
            "labels": labels(name, svc),
            "annotations": { RUN_ID_ANNOTATION: r.run_id },
        },
        "spec": {
            "replicas": r.config.replicas(),
            "progressDeadlineSeconds": r.config.progress_deadline_seconds(),
            "selector": { "matchLabels": selector(name) },
            "template": {
                "metadata": {
                    "labels": labels(name, svc),
                    "annotations": { CONFIG_HASH_ANNOTATION: r.config_hash },
                },
                "spec": { "containers": [container] },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(value: Value) -> Config {
        let config: Config = serde_json::from_value(value).unwrap();
        assert!(config.problems().is_empty(), "{:?}", config.problems());
        config
    }

    fn two_services() -> Value {
        json!({
            "image": "registry.neuroerp.example/neuroerp/{service}:{version}",
            "replicas": 2,
            "progress_deadline_seconds": 60,
            "resources": { "requests": { "cpu": "50m", "memory": "64Mi" }, "limits": { "memory": "256Mi" } },
            "services": {
                "fibu-service": {
                    "version": "1.0.5", "port": 8101,
                    "env": { "LOG_LEVEL": "info", "PUBLIC_URL": "http://fibu-service:8101" },
                    "secret_env": { "DATABASE_URL": "neuroerp-db/fibu-service-url" },
                },
                "crm-service": { "version": "1.0.4", "port": 8102 },
            }
        })
    }

    fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
        objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{kind}/{name} not rendered"))
    }

    #[test]
    fn renders_namespace_then_config_maps_services_deployments() {
        let objects = render(&config(two_services()), "neuroerp-staging", "run-1").unwrap();
        let ids: Vec<String> = objects
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            ids,
            [
                "Namespace/neuroerp-staging",
                "ConfigMap/crm-service-config",
                "ConfigMap/fibu-service-config",
                "Service/crm-service",
                "Service/fibu-service",
                "Deployment/crm-service",
                "Deployment/fibu-service",
            ]
        );
        for o in &objects[1..] {
            assert_eq!(o["metadata"]["namespace"], "neuroerp-staging");
        }
        assert!(objects[0]["metadata"].get("namespace").is_none());
    }

    #[test]
    fn deployment_shape() {
        let objects = render(&config(two_services()), "ns", "run-1").unwrap();
        let d = find(&objects, "Deployment", "fibu-service");
        assert_eq!(d["apiVersion"], "apps/v1");
        assert_eq!(d["metadata"]["annotations"][RUN_ID_ANNOTATION], "run-1");
        assert_eq!(
            d["metadata"]["labels"]["app.kubernetes.io/version"],
            "1.0.5"
        );
        assert_eq!(
            d["metadata"]["labels"]["app.kubernetes.io/part-of"],
            "neuroerp"
        );
        assert_eq!(
            d["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "valero"
        );
        assert_eq!(d["spec"]["replicas"], 2);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 60);
        assert_eq!(
            d["spec"]["selector"]["matchLabels"],
            json!({ "app.kubernetes.io/name": "fibu-service", "app.kubernetes.io/instance": "fibu-service" })
        );
        let template = &d["spec"]["template"];
        assert!(
            template["metadata"]["annotations"]
                .get(RUN_ID_ANNOTATION)
                .is_none()
        );
        assert_eq!(
            template["metadata"]["labels"]["app.kubernetes.io/name"],
            "fibu-service"
        );
        let c = &template["spec"]["containers"][0];
        assert_eq!(c["name"], "fibu-service");
        assert_eq!(
            c["image"],
            "registry.neuroerp.example/neuroerp/fibu-service:1.0.5"
        );
        assert_eq!(c["ports"][0]["containerPort"], 8101);
        assert_eq!(
            c["env"],
            json!([
                { "name": "PORT", "value": "8101" },
                { "name": "DATABASE_URL", "valueFrom": { "secretKeyRef": { "name": "neuroerp-db", "key": "fibu-service-url" } } },
            ])
        );
        assert_eq!(
            c["envFrom"][0]["configMapRef"]["name"],
            "fibu-service-config"
        );
        assert_eq!(
            c["readinessProbe"]["httpGet"],
            json!({ "path": "/ready", "port": 8101 })
        );
        assert_eq!(
            c["livenessProbe"]["httpGet"],
            json!({ "path": "/health", "port": 8101 })
        );
        assert_eq!(
            c["resources"],
            json!({ "requests": { "cpu": "50m", "memory": "64Mi" }, "limits": { "memory": "256Mi" } })
        );
        let no_resources = render(
            &config(json!({ "image": "r/{service}", "services": { "a": { "version": "1", "port": 1 } } })),
            "ns",
            "r",
        )
        .unwrap();
        let d = find(&no_resources, "Deployment", "a");
        assert!(
            d["spec"]["template"]["spec"]["containers"][0]
                .get("resources")
                .is_none()
        );
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 120);
    }

    #[test]
    fn config_map_and_service_shape() {
        let objects = render(&config(two_services()), "ns", "run-1").unwrap();
        let cm = find(&objects, "ConfigMap", "fibu-service-config");
        assert_eq!(
            cm["data"],
            json!({ "LOG_LEVEL": "info", "PUBLIC_URL": "http://fibu-service:8101" })
        );
        assert!(
            !cm.to_string().contains("neuroerp-db"),
            "no secret refs in the ConfigMap"
        );
        assert_eq!(
            find(&objects, "ConfigMap", "crm-service-config")["data"],
            json!({})
        );
        let s = find(&objects, "Service", "fibu-service");
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(
            s["spec"]["ports"],
            json!([{ "name": "http", "protocol": "TCP", "port": 8101, "targetPort": 8101 }])
        );
        assert_eq!(
            s["spec"]["selector"],
            json!({ "app.kubernetes.io/name": "fibu-service", "app.kubernetes.io/instance": "fibu-service" })
        );
    }

    #[test]
    fn only_a_changed_config_value_changes_that_pod_template() {
        let hash = |objects: &[Value], svc: &str| {
            find(objects, "Deployment", svc)["spec"]["template"].clone()
        };
        let before = render(&config(two_services()), "ns", "run-1").unwrap();
        let rerun = render(&config(two_services()), "ns", "run-2").unwrap();
        assert_eq!(hash(&before, "fibu-service"), hash(&rerun, "fibu-service"));
        let mut changed = two_services();
        changed["services"]["fibu-service"]["env"]["LOG_LEVEL"] = json!("debug");
        let after = render(&config(changed), "ns", "run-3").unwrap();
        assert_ne!(hash(&before, "fibu-service"), hash(&after, "fibu-service"));
        assert_eq!(hash(&before, "crm-service"), hash(&after, "crm-service"));
    }

    #[test]
    fn config_hash_is_sha256_of_sorted_data() {
        let data: BTreeMap<String, String> = [
            ("B".to_string(), "2".to_string()),
            ("A".to_string(), "1".to_string()),
        ]
        .into();
        // sha256 of `{"A":"1","B":"2"}`
        assert_eq!(config_hash(&data).len(), 64);
        assert_eq!(config_hash(&data), config_hash(&data.clone()));
        assert_eq!(
            config_hash(&BTreeMap::new()),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn numbers_in_env_become_strings() {
        let objects = render(
            &config(json!({ "image": "r/{service}", "services": { "a": { "version": "1", "port": 1, "env": { "WORKERS": 4, "DEBUG": false } } } })),
            "ns",
            "r",
        )
        .unwrap();
        assert_eq!(
            find(&objects, "ConfigMap", "a-config")["data"],
            json!({ "DEBUG": "false", "WORKERS": "4" })
        );
    }
}
