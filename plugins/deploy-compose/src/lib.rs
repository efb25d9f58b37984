//! Stage plugin `deploy-compose`: brings a compose project up (or down)
//! through the `containers` capability, never through a `docker` binary.
//!
//! ```toml
//! [stages.deploy-compose]
//! plugin = "builtin:deploy-compose"
//! with = { file = "examples/neuroerp/compose.yaml", action = "up", health_timeout_ms = 120000,
//!          variables = { NEUROERP_LOG = "info" } }
//! grants = { containers = { project = "neuroerp-dev" }, fs = { read = ["examples/neuroerp"] } }
//! ```
//!
//! - `up`: parses the file (valero's compose subset; anything else is an
//!   error at its line:col), creates the project's networks and volumes,
//!   then goes through the services in dependency order. Before a service
//!   starts, its `depends_on` conditions must hold (`service_healthy`,
//!   `service_started`, `service_completed_successfully`). A service's
//!   container is kept when it was created from the same spec (the host's
//!   config hash) and the same image id, and recreated otherwise; so a re-run
//!   with nothing changed changes nothing. At the end every service with a
//!   healthcheck must be healthy. A service that exits, turns unhealthy or
//!   misses the deadline fails the stage with its last log lines. Containers
//!   of the project that the file no longer names are removed.
//! - `down`: removes everything of the project (containers, networks,
//!   volumes; with `images = true` its images too).
//!
//! `${VAR}` in the file is looked up in `variables`. Ports without a host IP
//! are published on 127.0.0.1 (host policy refuses any other address).
//! Outputs (up): `{"project", "services": {"<name>": {"id", "action", "health"}}}`.

mod up;

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::json;
use valero_sdk::containers;
use valero_sdk::{Check, Plugin, Report};

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Action {
    Up,
    Down,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    action: Action,
    /// The compose file (needed for `up`), relative to pipeline.toml.
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    /// Deadline for the whole `up`, from the first container on.
    #[serde(default = "default_health_timeout_ms")]
    health_timeout_ms: u64,
    /// Log lines shown for a failing service.
    #[serde(default = "default_log_tail")]
    log_tail: u32,
    /// `down`: also remove the project's images.
    #[serde(default)]
    images: bool,
}

fn default_health_timeout_ms() -> u64 {
    120_000
}

fn default_log_tail() -> u32 {
    20
}

struct DeployCompose;

impl Plugin for DeployCompose {
    fn run() -> Report {
        let config: Config = match valero_sdk::config() {
            Ok(config) => config,
            Err(e) => return Report::fail(e),
        };
        match config.action {
            Action::Up => up::run(&config),
            Action::Down => down(&config),
        }
    }
}

fn down(config: &Config) -> Report {
    let project = containers::project();
    match containers::remove_project(config.images) {
        Ok(removed) => {
            let summary = format!(
                "project {project} removed: {} containers, {} networks, {} volumes, {} images",
                removed.containers.len(),
                removed.networks.len(),
                removed.volumes.len(),
                removed.images.len()
            );
            let check = Check::pass(format!("remove project {project}"))
                .message(summary.clone())
                .evidence("containers", removed.containers.join(", "))
                .evidence("networks", removed.networks.join(", "))
                .evidence("volumes", removed.volumes.join(", "))
                .evidence("images", removed.images.join(", "));
            Report::from_checks(summary, vec![check]).outputs(json!({
                "project": project,
                "removed": {
                    "containers": removed.containers,
                    "networks": removed.networks,
                    "volumes": removed.volumes,
                    "images": removed.images,
                }
            }))
        }
        Err(e) => Report::fail(format!("removing project {project}: {e}")),
    }
}

valero_sdk::export_plugin!(DeployCompose);
