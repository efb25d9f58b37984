//! Stage plugin `deploy-local`: the `local` target's build, deploy and
//! cleanup, through the host's `processes` capability (which only ever runs
//! what the target declares in pipeline.toml).
//!
//! ```toml
//! with = { action = "deploy", ready_timeout_ms = 30000 }   # or "build", "stop"
//! [stages.deploy.grants]
//! processes = true
//! http = ["http://127.0.0.1:*"]    # readiness polling (deploy only)
//! ```
//!
//! - `build`: runs the target's jobs (all, or `jobs = [...]`), one check each.
//! - `deploy`: starts the services (all, or `services = [...]` plus what they
//!   need) in dependency order and waits for each one's readiness URL to
//!   answer 200 before starting the next. Stops at the first failure, with
//!   the service's status and the tail of its log. Outputs
//!   `{"services": {"<name>": {"pid", "port", "url", "ready_url", "ready_ms"}}}`.
//! - `stop`: stops the services in reverse dependency order.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Map, Value, json};
use valero_sdk::processes::{self, Service, ServiceStatus};
use valero_sdk::{Check, Plugin, Report, Verdict, http, log};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum Action {
    Build,
    Deploy,
    Stop,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    action: Action,
    #[serde(default)]
    services: Vec<String>,
    #[serde(default)]
    jobs: Vec<String>,
    #[serde(default = "default_ready_timeout")]
    ready_timeout_ms: u64,
    #[serde(default = "default_poll")]
    poll_ms: u64,
}

fn default_ready_timeout() -> u64 {
    30_000
}

fn default_poll() -> u64 {
    100
}

/// Lines of a failing service's log shown in its check.
const LOG_TAIL_BYTES: u32 = 2048;

struct DeployLocal;

impl Plugin for DeployLocal {
    fn run() -> Report {
        let config: Config = match valero_sdk::config() {
            Ok(config) => config,
            Err(e) => return Report::fail(e),
        };
        match config.action {
            Action::Build => build(&config),
            Action::Deploy => match ordered(&config.services) {
                Ok(services) => deploy(&config, &services),
                Err(e) => Report::fail(e),
            },
            Action::Stop => match ordered(&config.services) {
                Ok(services) => stop(&services),
                Err(e) => Report::fail(e),
            },
        }
    }
}

valero_sdk::export_plugin!(DeployLocal);

/// The selected services plus everything they need, dependencies first.
fn ordered(selected: &[String]) -> Result<Vec<Service>, String> {
    let all: BTreeMap<String, Service> = processes::services()
        .into_iter()
        .map(|s| (s.name.clone(), s))
        .collect();
    for name in selected {
        if !all.contains_key(name) {
            return Err(format!(
                "`{name}` is not a service of this target; declared: {}",
                all.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let roots: Vec<&String> = if selected.is_empty() {
        all.keys().collect()
    } else {
        selected.iter().collect()
    };
    let mut order = Vec::new();
    let mut done = BTreeSet::new();
    let mut visiting = BTreeSet::new();
    fn visit(
        name: &str,
        all: &BTreeMap<String, Service>,
        done: &mut BTreeSet<String>,
        visiting: &mut BTreeSet<String>,
        order: &mut Vec<Service>,
    ) -> Result<(), String> {
        if done.contains(name) {
            return Ok(());
        }
        if !visiting.insert(name.to_string()) {
            return Err(format!(
                "services need each other in a cycle through `{name}`"
            ));
        }
        let service = all
            .get(name)
            .ok_or_else(|| format!("a service needs `{name}`, which is not declared"))?;
        for need in &service.needs {
            visit(need, all, done, visiting, order)?;
        }
        visiting.remove(name);
        done.insert(name.to_string());
        order.push(service.clone());
        Ok(())
    }
    for root in roots {
        visit(root, &all, &mut done, &mut visiting, &mut order)?;
    }
    Ok(order)
}

fn build(config: &Config) -> Report {
    let jobs = if config.jobs.is_empty() {
        processes::jobs()
    } else {
        config.jobs.clone()
    };
    let mut checks = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        log::progress(i as u64, jobs.len() as u64, format!("job {job}"));
        log::info(format!("running job {job}"));
        let check = match processes::run_job(job) {
            Ok(r) if r.exit_code == 0 => Check::pass(format!("job {job}"))
                .message(format!("exit 0 in {} ms", r.duration_ms))
                .duration(Duration::from_millis(r.duration_ms)),
            Ok(r) => Check::fail(format!("job {job}"))
                .message(format!(
                    "exit code {}; last output:\n{}",
                    r.exit_code, r.output_tail
                ))
                .evidence("exit_code", r.exit_code)
                .duration(Duration::from_millis(r.duration_ms)),
            Err(e) => Check::fail(format!("job {job}")).message(e),
        };
        let failed = check.verdict() == Verdict::Fail;
        checks.push(check);
        if failed {
            break;
        }
    }
    let ok = checks
        .iter()
        .filter(|c| c.verdict() == Verdict::Pass)
        .count();
    Report::from_checks(format!("{ok}/{} jobs succeeded", jobs.len()), checks)
}

fn deploy(config: &Config, services: &[Service]) -> Report {
    let timeout = Duration::from_millis(config.ready_timeout_ms);
    let poll = Duration::from_millis(config.poll_ms);
    let mut checks = Vec::new();
    let mut outputs = Map::new();
    let total = services.len() as u64;
    for (i, service) in services.iter().enumerate() {
        let name = &service.name;
        log::progress(i as u64, total, format!("starting {name}"));
        let started = Instant::now();
        let pid = match processes::start(name) {
            Ok(pid) => pid,
            Err(e) => {
                checks.push(Check::fail(format!("start {name}")).message(e));
                not_attempted(&mut checks, &services[i + 1..]);
                break;
            }
        };
        let ready = wait_ready(service, timeout, poll);
        let ready_ms = started.elapsed().as_secs_f64() * 1000.0;
        let mut check = match &ready {
            Ok(()) => Check::pass(format!("start {name}"))
                .message(format!("ready after {ready_ms:.0} ms")),
            Err(why) => Check::fail(format!("start {name}")).message(format!(
                "{why}; {}; last log lines:\n{}",
                describe_status(name),
                processes::log_tail(name, LOG_TAIL_BYTES).unwrap_or_default()
            )),
        }
        .evidence("pid", pid)
        .measure("ready", ready_ms, "ms")
        .duration(started.elapsed());
        if let Some(port) = service.port {
            check = check.evidence("port", port);
        }
        checks.push(check);
        outputs.insert(
            name.clone(),
            json!({
                "pid": pid,
                "port": service.port,
                "url": service.port.map(|p| format!("http://127.0.0.1:{p}")),
                "ready_url": service.ready_url,
                "ready_ms": ready_ms,
            }),
        );
        if ready.is_err() {
            not_attempted(&mut checks, &services[i + 1..]);
            break;
        }
    }
    log::progress(total, total, "done");
    let ok = checks
        .iter()
        .filter(|c| c.verdict() == Verdict::Pass)
        .count();
    Report::from_checks(format!("{ok}/{total} services ready"), checks)
        .outputs(json!({ "services": Value::Object(outputs) }))
}

fn not_attempted(checks: &mut Vec<Check>, rest: &[Service]) {
    for s in rest {
        checks.push(
            Check::fail(format!("start {}", s.name))
                .message("not started: a service before it failed"),
        );
    }
}

/// Polls the readiness URL until it answers 200, the process exits, or the deadline.
fn wait_ready(service: &Service, timeout: Duration, poll: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let Some(url) = &service.ready_url else {
        // Nothing to poll: running a moment after start is all we can know.
        std::thread::sleep(poll);
        return match processes::status(&service.name) {
            Ok(ServiceStatus::Running(_)) => Ok(()),
            _ => Err("exited right after start".into()),
        };
    };
    loop {
        let last = match http::get(url, poll.max(Duration::from_millis(500))) {
            Ok(r) if r.status == 200 => return Ok(()),
            Ok(r) => format!("{url} answered {}: {}", r.status, truncate(&r.text(), 200)),
            Err(e) => e,
        };
        if let Ok(ServiceStatus::Exited(code)) = processes::status(&service.name) {
            return Err(format!(
                "the process exited with code {code} before it was ready"
            ));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "not ready within {} ms (last: {last})",
                timeout.as_millis()
            ));
        }
        std::thread::sleep(poll);
    }
}

fn describe_status(name: &str) -> String {
    match processes::status(name) {
        Ok(ServiceStatus::Running(pid)) => format!("still running as pid {pid}"),
        Ok(ServiceStatus::Exited(code)) => format!("exited with code {code}"),
        Ok(ServiceStatus::NotStarted) => "not started".into(),
        Err(e) => e,
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn stop(services: &[Service]) -> Report {
    let mut checks = Vec::new();
    for service in services.iter().rev() {
        let name = &service.name;
        let check = match processes::stop(name) {
            Ok(()) => match processes::status(name) {
                Ok(ServiceStatus::Running(pid)) => Check::fail(format!("stop {name}"))
                    .message(format!("still running as pid {pid}")),
                Ok(ServiceStatus::Exited(code)) => {
                    Check::pass(format!("stop {name}")).message(format!("stopped (exit {code})"))
                }
                Ok(ServiceStatus::NotStarted) => {
                    Check::pass(format!("stop {name}")).message("was not running")
                }
                Err(e) => Check::fail(format!("stop {name}")).message(e),
            },
            Err(e) => Check::fail(format!("stop {name}")).message(e),
        };
        checks.push(check);
    }
    let ok = checks
        .iter()
        .filter(|c| c.verdict() == Verdict::Pass)
        .count();
    Report::from_checks(format!("{ok}/{} services stopped", services.len()), checks)
}
