//! A subset of the [Docker Compose](https://compose-spec.io) file format,
//! parsed into a typed model for Valero's deploy stages.
//!
//! Everything outside the subset is **rejected** with the offending node's
//! `file:line:col` — a key that is silently ignored would deploy something
//! other than what the file says. See `README.md` for the subset.
//!
//! Pure Rust with no I/O: the caller reads the file and supplies variables, so
//! the same code runs in the wasm32-wasip2 guest and in native unit tests.
//!
//! ```ignore
//! let compose = valero_compose::parse(&text, "compose.yaml", &|name| env.get(name).cloned())?;
//! for service in compose.start_order() { /* dependencies first */ }
//! ```

mod interp;
mod parse;
mod yaml;

use std::fmt;

pub use parse::parse;

/// A 1-based position in the compose file, for messages that point at the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A parsed compose file. Lists keep file order so that output and start
/// order are reproducible.
#[derive(Debug, Clone, PartialEq)]
pub struct Compose {
    /// Top-level `name`; the runner chooses a project name when absent.
    pub name: Option<String>,
    /// In file order.
    pub services: Vec<Service>,
    /// Declared top-level networks (a service may also use the implicit `default`).
    pub networks: Vec<String>,
    /// Declared top-level named volumes.
    pub volumes: Vec<String>,
}

impl Compose {
    /// Services with every service before the ones that depend on it; among
    /// services whose dependencies are met, file order decides, so the order
    /// is stable. `parse` rejects cycles; for a hand-built model with a cycle,
    /// the services left over are appended in file order.
    pub fn start_order(&self) -> Vec<&Service> {
        let mut placed = vec![false; self.services.len()];
        let mut order = Vec::with_capacity(self.services.len());
        let index_of = |name: &str| self.services.iter().position(|s| s.name == name);
        while order.len() < self.services.len() {
            let next = self.services.iter().enumerate().position(|(i, s)| {
                !placed[i]
                    && s.depends_on
                        .iter()
                        .all(|d| index_of(&d.service).is_none_or(|j| placed[j]))
            });
            let Some(i) = next.or_else(|| placed.iter().position(|p| !p)) else {
                break;
            };
            placed[i] = true;
            order.push(&self.services[i]);
        }
        order
    }

    /// The service called `name`, if any.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    /// Where the service's name is written.
    pub at: Pos,
    pub image: String,
    /// Empty: the image's default command.
    pub command: Vec<String>,
    /// In file order; values are interpolated text (numbers and bools as
    /// written, null as the empty string).
    pub environment: Vec<(String, String)>,
    pub ports: Vec<Port>,
    pub depends_on: Vec<Dependency>,
    pub healthcheck: Option<Healthcheck>,
    /// Empty: the project's default network.
    pub networks: Vec<ServiceNetwork>,
    pub volumes: Vec<Mount>,
    pub restart: Restart,
    /// Parsed (not refused) so the host can refuse it with its own policy message.
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub network_mode: Option<String>,
    pub pid: Option<String>,
    /// Every key written under the service and where, so the host can point
    /// at e.g. `privileged` when its policy refuses it (see [`Service::key_at`]).
    pub keys: Vec<(String, Pos)>,
}

impl Service {
    /// Where `key` (e.g. `"privileged"`) is written under this service.
    pub fn key_at(&self, key: &str) -> Option<Pos> {
        self.keys.iter().find(|(k, _)| k == key).map(|(_, at)| *at)
    }
}

/// A published port (TCP only: UDP is rejected by the parser).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub host_ip: Option<String>,
    /// `None`: the container port is not bound to a fixed host port.
    pub host_port: Option<u16>,
    pub container_port: u16,
    pub at: Pos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// `service_started` (also what the short list form means).
    Started,
    /// `service_healthy`: wait for the dependency's healthcheck to pass.
    Healthy,
    /// `service_completed_successfully`: wait for it to exit with status 0.
    CompletedSuccessfully,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub service: String,
    pub condition: Condition,
    pub at: Pos,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthcheck {
    /// With its compose prefix: `["CMD", prog, args…]`, `["CMD-SHELL", script]`,
    /// or `["NONE"]` (disabled: also what `disable: true` gives).
    pub test: Vec<String>,
    /// Compose's defaults when absent: 30s, 30s, 3 retries, 0s start period.
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub retries: u32,
    pub start_period_ms: u64,
}

impl Healthcheck {
    /// `test: ["NONE"]` or `disable: true`.
    pub fn is_disabled(&self) -> bool {
        self.test.first().is_some_and(|t| t == "NONE")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceNetwork {
    pub name: String,
    pub aliases: Vec<String>,
    pub at: Pos,
}

/// A service volume. Bind mounts are parsed, not refused: the deployer decides
/// whether host paths are allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// A named volume declared under top-level `volumes`.
    Volume {
        name: String,
        target: String,
        read_only: bool,
        at: Pos,
    },
    /// A host path as written (`/abs`, `./rel`, `~/home`): relative paths are
    /// the deployer's to resolve against the compose file's directory.
    Bind {
        source: String,
        target: String,
        read_only: bool,
        at: Pos,
    },
}

impl Mount {
    pub fn at(&self) -> Pos {
        match self {
            Mount::Volume { at, .. } | Mount::Bind { at, .. } => *at,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Restart {
    /// `no`, also when `restart` is absent (compose's default).
    #[default]
    No,
    Always,
    UnlessStopped,
    OnFailure,
}

/// A compose file outside the subset, invalid, or referring to something
/// undeclared. `Display`: `file:line:col: message` and an indented hint line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub file: String,
    /// `None` only for errors about the whole file (e.g. it is empty).
    pub at: Option<Pos>,
    pub message: String,
    pub hint: Option<String>,
}

impl Error {
    pub(crate) fn new(file: &str, at: Option<Pos>, message: String, hint: Option<&str>) -> Error {
        Error {
            file: file.to_owned(),
            at,
            message,
            hint: hint.map(str::to_owned),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some(at) => write!(f, "{}:{}:{}: {}", self.file, at.line, at.col, self.message)?,
            None => write!(f, "{}: {}", self.file, self.message)?,
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests;
