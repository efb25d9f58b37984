//! `action = "up"`: reconcile the project with the compose file.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use valero_compose::{Compose, Condition, Mount, Restart, Service};
use valero_sdk::container_words as words;
use valero_sdk::containers::{
    self as c, BindMount, ContainerInfo, ContainerSpec, ContainerState, HealthStatus, Healthcheck,
    PortBinding, RestartPolicy, VolumeMount,
};
use valero_sdk::{Check, Report, log};

use crate::Config;

/// The network services join when the file names none (as compose does).
const DEFAULT_NETWORK: &str = "default";
const POLL: Duration = Duration::from_millis(250);
/// SIGTERM grace before SIGKILL when a container is replaced.
const STOP_TIMEOUT_SECS: u32 = 10;

pub fn run(config: &Config) -> Report {
    let Some(file) = config.file.as_deref() else {
        return Report::fail("`file` is required with action = \"up\": the compose file to deploy");
    };
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => {
            return Report::fail(format!(
                "reading {file}: {e}\n  help: grant its directory with fs = {{ read = [\"…\"] }}"
            ));
        }
    };
    let lookup = |name: &str| config.variables.get(name).cloned();
    let compose = match valero_compose::parse(&text, file, &lookup) {
        Ok(compose) => compose,
        Err(e) => return Report::fail(e.to_string()),
    };
    let project = c::project();
    if let Some(name) = compose.name.as_deref()
        && name != project
    {
        return Report::fail(format!(
            "{file}: the file names project `{name}`, but the stage is granted project `{project}`\n  help: make `name:` and the grant's `project` the same"
        ));
    }
    let deploy = Deploy {
        config,
        file,
        project,
        deadline: Instant::now() + Duration::from_millis(config.health_timeout_ms),
        started: Instant::now(),
    };
    match deploy.run(&compose) {
        Ok(report) | Err(report) => report,
    }
}

struct Deploy<'a> {
    config: &'a Config,
    file: &'a str,
    project: String,
    deadline: Instant,
    started: Instant,
}

/// What happened to one service's container.
struct Outcome {
    id: String,
    action: String,
}

impl Deploy<'_> {
    fn run(&self, compose: &Compose) -> Result<Report, Report> {
        self.networks_and_volumes(compose)?;
        let existing: BTreeMap<String, ContainerInfo> = c::list_containers()
            .map_err(|e| Report::fail(format!("listing the project's containers: {e}")))?
            .into_iter()
            .map(|info| (info.name.clone(), info))
            .collect();

        let order = compose.start_order();
        let total = order.len() as u64;
        let mut checks = Vec::new();
        let mut outcomes: BTreeMap<&str, Outcome> = BTreeMap::new();
        let mut failed: Option<String> = None;
        for (i, svc) in order.iter().enumerate() {
            log::progress(i as u64, total, format!("service {}", svc.name));
            let name = format!("service {}", svc.name);
            if let Some(first) = &failed {
                checks.push(
                    Check::inconclusive(name)
                        .message(format!("not deployed: service {first} failed")),
                );
                continue;
            }
            let start = Instant::now();
            match self.deploy_service(svc, &existing) {
                Ok(outcome) => {
                    outcomes.insert(svc.name.as_str(), outcome);
                }
                Err(e) => {
                    checks.push(Check::fail(name).message(e).duration(start.elapsed()));
                    failed = Some(svc.name.clone());
                }
            }
        }

        // Every service must end up running, and healthy when it has a healthcheck.
        let mut services = Map::new();
        for svc in &order {
            let Some(outcome) = outcomes.get(svc.name.as_str()) else {
                continue;
            };
            let name = format!("service {}", svc.name);
            let condition = if svc.healthcheck.as_ref().is_some_and(|h| !h.is_disabled()) {
                Condition::Healthy
            } else {
                Condition::Started
            };
            match self.wait(&svc.name, condition) {
                Ok(info) => {
                    let health = words::health(info.health);
                    let message = format!(
                        "{} ({}), {} after {} ms",
                        outcome.action,
                        short_id(&outcome.id),
                        if condition == Condition::Healthy {
                            "healthy"
                        } else {
                            "running"
                        },
                        self.started.elapsed().as_millis()
                    );
                    checks.push(
                        Check::pass(name)
                            .message(message)
                            .evidence("container", &info.name)
                            .evidence("id", &outcome.id)
                            .evidence("action", &outcome.action)
                            .evidence("image", &info.image),
                    );
                    services.insert(
                        svc.name.clone(),
                        json!({ "id": outcome.id, "action": outcome.action, "health": health }),
                    );
                }
                Err(e) => {
                    checks.push(Check::fail(name).message(e));
                    failed.get_or_insert_with(|| svc.name.clone());
                }
            }
        }
        let orphans = if failed.is_none() {
            self.remove_orphans(compose, &existing)
        } else {
            Vec::new()
        };
        log::progress(total, total, "done");

        let changed = outcomes
            .values()
            .filter(|o| o.action != "unchanged")
            .count();
        let summary = match &failed {
            None => format!(
                "project {}: {} services up ({changed} created or recreated, {} unchanged)",
                self.project,
                outcomes.len(),
                outcomes.len() - changed
            ),
            Some(first) => format!("project {}: service {first} failed", self.project),
        };
        Ok(Report::from_checks(summary, checks).outputs(json!({
            "project": self.project,
            "services": services,
            "removed_orphans": orphans,
        })))
    }

    fn networks_and_volumes(&self, compose: &Compose) -> Result<(), Report> {
        let mut networks = compose.networks.clone();
        if compose.services.iter().any(uses_default_network) {
            networks.push(DEFAULT_NETWORK.to_string());
        }
        for network in &networks {
            c::create_network(network)
                .map_err(|e| Report::fail(format!("creating network {network}: {e}")))?;
        }
        for volume in &compose.volumes {
            c::create_volume(volume)
                .map_err(|e| Report::fail(format!("creating volume {volume}: {e}")))?;
        }
        Ok(())
    }

    /// Waits for the service's dependencies, then keeps, recreates or
    /// creates its container and starts it.
    fn deploy_service(
        &self,
        svc: &Service,
        existing: &BTreeMap<String, ContainerInfo>,
    ) -> Result<Outcome, String> {
        for dep in &svc.depends_on {
            self.wait(&dep.service, dep.condition).map_err(|e| {
                format!(
                    "dependency {} ({}) not met: {e}",
                    dep.service,
                    condition_word(dep.condition)
                )
            })?;
        }
        let spec = spec(svc)?;
        let hash = c::config_hash(&spec);
        let image_id = c::image_id(&svc.image)?;
        let action = match existing.get(&self.scoped(&svc.name)) {
            Some(info)
                if info.config_hash.as_deref() == Some(hash.as_str())
                    && info.image_id == image_id =>
            {
                if info.state != ContainerState::Running {
                    c::start(&svc.name)?;
                    return Ok(Outcome {
                        id: info.id.clone(),
                        action: "started".into(),
                    });
                }
                return Ok(Outcome {
                    id: info.id.clone(),
                    action: "unchanged".into(),
                });
            }
            Some(info) => {
                let why = if info.image_id != image_id {
                    "image changed"
                } else {
                    "configuration changed"
                };
                log::info(format!("{}: {why}, recreating", svc.name));
                c::stop(&svc.name, STOP_TIMEOUT_SECS)?;
                c::remove_container(&svc.name, true)?;
                format!("recreated ({why})")
            }
            None => "created".to_string(),
        };
        let id = c::create_container(&spec).map_err(|e| self.locate(svc, e))?;
        c::start(&svc.name)?;
        log::info(format!("{}: {action} {}", svc.name, short_id(&id)));
        Ok(Outcome { id, action })
    }

    /// Polls `service` until `condition` holds; fails at once when it cannot
    /// hold any more (exited, unhealthy, restarting), with its last log lines.
    fn wait(&self, service: &str, condition: Condition) -> Result<ContainerInfo, String> {
        loop {
            let info = c::inspect_container(service)?;
            let exited = matches!(info.state, ContainerState::Exited | ContainerState::Dead);
            let code = info
                .exit_code
                .map_or_else(|| "?".to_string(), |c| c.to_string());
            let verdict = match condition {
                Condition::Healthy => match info.health {
                    HealthStatus::Healthy => Some(Ok(())),
                    HealthStatus::Unhealthy => {
                        Some(Err("its healthcheck failed: unhealthy".into()))
                    }
                    HealthStatus::None => Some(Err(
                        "it has no healthcheck, which `condition: service_healthy` needs".into(),
                    )),
                    HealthStatus::Starting if exited => {
                        Some(Err(format!("it exited with code {code}")))
                    }
                    HealthStatus::Starting => None,
                },
                Condition::Started => match info.state {
                    ContainerState::Running => Some(Ok(())),
                    _ if exited => Some(Err(format!("it exited with code {code}"))),
                    _ => None,
                },
                Condition::CompletedSuccessfully => match (exited, info.exit_code) {
                    (true, Some(0)) => Some(Ok(())),
                    (true, _) => Some(Err(format!("it exited with code {code}"))),
                    _ => None,
                },
            };
            let verdict = verdict.or_else(|| {
                (info.state == ContainerState::Restarting)
                    .then(|| Err(format!("it keeps restarting (last exit code {code})")))
            });
            match verdict {
                Some(Ok(())) => return Ok(info),
                Some(Err(why)) => return Err(self.failure(service, &why)),
                None if Instant::now() >= self.deadline => {
                    let why = format!(
                        "not {} within {} ms (state {}, health {})",
                        condition_word(condition),
                        self.config.health_timeout_ms,
                        words::state(info.state),
                        words::health(info.health)
                    );
                    return Err(self.failure(service, &why));
                }
                None => std::thread::sleep(POLL),
            }
        }
    }

    /// The container name the host gives a service (as `container-info.name`).
    fn scoped(&self, service: &str) -> String {
        format!("{}-{service}", self.project)
    }

    /// A host-policy refusal, prefixed with where the file asked for it.
    fn locate(&self, svc: &Service, error: String) -> String {
        if !error.starts_with("refused by host policy") {
            return error;
        }
        let key = [
            ("privileged", "privileged"),
            ("capabilities", "cap_add"),
            ("network", "network_mode"),
            ("PID", "pid"),
            ("ports", "ports"),
            ("bind", "volumes"),
            ("Docker socket", "volumes"),
        ]
        .iter()
        .find(|(word, _)| error.contains(word))
        .and_then(|(_, key)| svc.key_at(key));
        let at = key.unwrap_or(svc.at);
        format!("{}:{}:{}: {error}", self.file, at.line, at.col)
    }

    /// `why`, followed by the container's last log lines.
    fn failure(&self, service: &str, why: &str) -> String {
        let tail = self.config.log_tail;
        match c::container_logs(service, tail) {
            Ok(logs) if logs.trim().is_empty() => format!("{service}: {why}; it logged nothing"),
            Ok(logs) => {
                let lines: Vec<&str> = logs.lines().collect();
                let shown = &lines[lines.len().saturating_sub(tail as usize)..];
                format!(
                    "{service}: {why}\n  last {} log lines of {service}:\n    {}",
                    shown.len(),
                    shown.join("\n    ")
                )
            }
            Err(e) => format!("{service}: {why} (its logs could not be read: {e})"),
        }
    }

    /// Removes the project's containers the file does not name (any more).
    fn remove_orphans(
        &self,
        compose: &Compose,
        existing: &BTreeMap<String, ContainerInfo>,
    ) -> Vec<Value> {
        let wanted: Vec<String> = compose
            .services
            .iter()
            .map(|s| self.scoped(&s.name))
            .collect();
        let mut removed = Vec::new();
        for (name, info) in existing {
            if wanted.contains(name) {
                continue;
            }
            match c::remove_container(&info.id, true) {
                Ok(()) => {
                    log::info(format!("removed orphan container {name}"));
                    removed.push(Value::from(name.as_str()));
                }
                Err(e) => log::warn(format!("removing orphan container {name}: {e}")),
            }
        }
        removed
    }
}

/// A service without `networks` or `network_mode` joins the default network.
fn uses_default_network(svc: &Service) -> bool {
    svc.networks.is_empty() && svc.network_mode.is_none()
}

/// The container spec of a compose service.
fn spec(svc: &Service) -> Result<ContainerSpec, String> {
    if svc.networks.len() > 1 {
        return Err(format!(
            "{} joins {} networks; valero joins a service to one network",
            svc.name,
            svc.networks.len()
        ));
    }
    let network = match svc.networks.first() {
        Some(n) if svc.network_mode.is_none() => Some(n.name.clone()),
        None if uses_default_network(svc) => Some(DEFAULT_NETWORK.to_string()),
        _ => None,
    };
    let mut aliases = vec![svc.name.clone()];
    if let Some(n) = svc.networks.first() {
        aliases.extend(n.aliases.iter().cloned());
    }
    let (mut volumes, mut binds) = (Vec::new(), Vec::new());
    for mount in &svc.volumes {
        match mount {
            Mount::Volume {
                name,
                target,
                read_only,
                ..
            } => volumes.push(VolumeMount {
                volume: name.clone(),
                container_path: target.clone(),
                read_only: *read_only,
            }),
            Mount::Bind {
                source,
                target,
                read_only,
                ..
            } => binds.push(BindMount {
                host_path: source.clone(),
                container_path: target.clone(),
                read_only: *read_only,
            }),
        }
    }
    Ok(ContainerSpec {
        name: svc.name.clone(),
        image: svc.image.clone(),
        command: svc.command.clone(),
        env: svc.environment.clone(),
        ports: svc
            .ports
            .iter()
            .map(|p| PortBinding {
                container_port: p.container_port,
                host_port: p.host_port.unwrap_or(0),
                host_ip: p.host_ip.clone().unwrap_or_default(),
            })
            .collect(),
        volumes,
        binds,
        network,
        aliases,
        labels: Vec::new(),
        healthcheck: svc.healthcheck.as_ref().map(|h| Healthcheck {
            test: h.test.clone(),
            interval_ms: h.interval_ms,
            timeout_ms: h.timeout_ms,
            retries: h.retries,
            start_period_ms: h.start_period_ms,
        }),
        restart: match svc.restart {
            Restart::No => RestartPolicy::No,
            Restart::Always => RestartPolicy::Always,
            Restart::UnlessStopped => RestartPolicy::UnlessStopped,
            Restart::OnFailure => RestartPolicy::OnFailure,
        },
        privileged: svc.privileged,
        cap_add: svc.cap_add.clone(),
        network_mode: svc.network_mode.clone().unwrap_or_default(),
        pid_mode: svc.pid.clone().unwrap_or_default(),
    })
}

fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}

fn condition_word(condition: Condition) -> &'static str {
    match condition {
        Condition::Healthy => "healthy",
        Condition::Started => "started",
        Condition::CompletedSuccessfully => "completed successfully",
    }
}
