//! Test plugin that calls the `containers` capability the way a deploy stage
//! (or a hostile one) would. `with = { steps = [ { op = "…", … }, … ] }`; each
//! step becomes a check named `N:op` that passes when the host did it and
//! fails with the host's answer (e.g. a policy refusal). Steps:
//!
//! - `build`: `context`, `dockerfile`, `tag`, `args` {…}, `labels` {…}
//! - `network` / `volume`: `name`
//! - `create`: `spec` (the WIT `container-spec`, snake_case keys, all optional
//!   but `name` and `image`; `ports` as `[{container_port, host_port, host_ip}]`)
//! - `start`, `inspect`, `logs` (`tail`), `remove` (`force`), `stop`: `name`
//! - `wait`: `name`, `state` and/or `health`, `timeout_ms`: polls `inspect`
//! - `list`, `remove-project` (`force`: also the images)
//!
//! Outputs `{"project": …, "results": [{"op", "ok", "answer"}]}`; `answer`
//! is the host's error text or the result as JSON.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use valero_sdk::container_words as words;
use valero_sdk::containers::{
    self as c, BindMount, ContainerInfo, ContainerSpec, Healthcheck, PortBinding, RestartPolicy,
    VolumeMount,
};
use valero_sdk::{Check, Plugin, Report};

#[derive(Deserialize, Default)]
#[serde(default)]
struct With {
    steps: Vec<Step>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Step {
    op: String,
    name: String,
    context: String,
    dockerfile: String,
    tag: String,
    args: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
    spec: Spec,
    tail: u32,
    force: bool,
    state: Option<String>,
    health: Option<String>,
    timeout_ms: u64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Spec {
    name: String,
    image: String,
    command: Vec<String>,
    env: BTreeMap<String, String>,
    ports: Vec<Port>,
    volumes: Vec<Mount>,
    binds: Vec<Mount>,
    network: Option<String>,
    aliases: Vec<String>,
    labels: BTreeMap<String, String>,
    healthcheck: Option<Health>,
    restart: String,
    privileged: bool,
    cap_add: Vec<String>,
    network_mode: String,
    pid_mode: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Port {
    container_port: u16,
    host_port: u16,
    host_ip: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Mount {
    source: String,
    target: String,
    read_only: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Health {
    test: Vec<String>,
    interval_ms: u64,
    timeout_ms: u64,
    retries: u32,
    start_period_ms: u64,
}

fn pairs(m: &BTreeMap<String, String>) -> Vec<(String, String)> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

impl Spec {
    fn to_wit(&self) -> ContainerSpec {
        ContainerSpec {
            name: self.name.clone(),
            image: self.image.clone(),
            command: self.command.clone(),
            env: pairs(&self.env),
            ports: self
                .ports
                .iter()
                .map(|p| PortBinding {
                    container_port: p.container_port,
                    host_port: p.host_port,
                    host_ip: p.host_ip.clone(),
                })
                .collect(),
            volumes: self
                .volumes
                .iter()
                .map(|m| VolumeMount {
                    volume: m.source.clone(),
                    container_path: m.target.clone(),
                    read_only: m.read_only,
                })
                .collect(),
            binds: self
                .binds
                .iter()
                .map(|m| BindMount {
                    host_path: m.source.clone(),
                    container_path: m.target.clone(),
                    read_only: m.read_only,
                })
                .collect(),
            network: self.network.clone(),
            aliases: self.aliases.clone(),
            labels: pairs(&self.labels),
            healthcheck: self.healthcheck.as_ref().map(|h| Healthcheck {
                test: h.test.clone(),
                interval_ms: h.interval_ms,
                timeout_ms: h.timeout_ms,
                retries: h.retries,
                start_period_ms: h.start_period_ms,
            }),
            restart: match self.restart.as_str() {
                "always" => RestartPolicy::Always,
                "unless-stopped" => RestartPolicy::UnlessStopped,
                "on-failure" => RestartPolicy::OnFailure,
                _ => RestartPolicy::No,
            },
            privileged: self.privileged,
            cap_add: self.cap_add.clone(),
            network_mode: self.network_mode.clone(),
            pid_mode: self.pid_mode.clone(),
        }
    }
}

fn info_json(i: &ContainerInfo) -> Value {
    json!({
        "id": i.id,
        "name": i.name,
        "image": i.image,
        "image_id": i.image_id,
        "state": words::state(i.state),
        "exit_code": i.exit_code,
        "health": words::health(i.health),
        "labels": i.labels.iter().cloned().collect::<BTreeMap<_, _>>(),
        "config_hash": i.config_hash,
    })
}

fn wait(step: &Step) -> Result<Value, String> {
    let deadline = Instant::now() + Duration::from_millis(step.timeout_ms.max(1000));
    loop {
        let info = info_json(&c::inspect_container(&step.name)?);
        let state_ok = step.state.as_ref().is_none_or(|s| info["state"] == *s);
        let health_ok = step.health.as_ref().is_none_or(|h| info["health"] == *h);
        if state_ok && health_ok {
            return Ok(info);
        }
        if Instant::now() > deadline {
            return Err(format!("gave up waiting; last seen {info}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn run_step(step: &Step) -> Result<Value, String> {
    match step.op.as_str() {
        "build" => c::build_image(
            &step.context,
            &step.dockerfile,
            &step.tag,
            &pairs(&step.args),
            &pairs(&step.labels),
        )
        .map(Value::from),
        "network" => c::create_network(&step.name).map(Value::from),
        "volume" => c::create_volume(&step.name).map(Value::from),
        "create" => c::create_container(&step.spec.to_wit()).map(Value::from),
        "start" => c::start(&step.name).map(|()| Value::Null),
        "stop" => c::stop(&step.name, 2).map(|()| Value::Null),
        "remove" => c::remove_container(&step.name, step.force).map(|()| Value::Null),
        "inspect" => c::inspect_container(&step.name).map(|i| info_json(&i)),
        "logs" => c::container_logs(&step.name, step.tail).map(Value::from),
        "list" => c::list_containers().map(|l| l.iter().map(info_json).collect()),
        "wait" => wait(step),
        "config-hash" => Ok(Value::from(c::config_hash(&step.spec.to_wit()))),
        "remove-project" => c::remove_project(step.force).map(
            |r| json!({ "containers": r.containers, "networks": r.networks, "volumes": r.volumes, "images": r.images }),
        ),
        other => Err(format!("wants-containers: unknown op `{other}`")),
    }
}

struct WantsContainers;

impl Plugin for WantsContainers {
    fn run() -> Report {
        let with: With = match valero_sdk::config() {
            Ok(w) => w,
            Err(e) => return Report::fail(e),
        };
        let mut checks = Vec::new();
        let mut results = Vec::new();
        for (i, step) in with.steps.iter().enumerate() {
            let name = format!("{i}:{}", step.op);
            let (ok, answer) = match run_step(step) {
                Ok(v) => (true, v),
                Err(e) => (false, Value::from(e)),
            };
            let text = match &answer {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            checks.push(if ok {
                Check::pass(name).message(text)
            } else {
                Check::fail(name).message(text)
            });
            results.push(json!({ "op": step.op, "ok": ok, "answer": answer }));
        }
        Report::from_checks("asked the host", checks)
            .outputs(json!({ "project": c::project(), "results": results }))
    }
}

valero_sdk::export_plugin!(WantsContainers);
