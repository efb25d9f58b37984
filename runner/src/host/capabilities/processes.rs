//! The `processes` capability: start, watch and stop the services — and run
//! the jobs — that the target declares in pipeline.toml. A plugin only ever
//! names a declared process; program, arguments and environment come from
//! the pipeline, never from the guest.
//!
//! Services bind 127.0.0.1 on their declared port (checked free first), log
//! to `<run dir>/services/<name>.log`, run in their own process group, die
//! with the runner (PR_SET_PDEATHSIG), and are all stopped when the run
//! ends — after success, failure or Ctrl-C.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use crate::effects::{Effect, EffectLog};
use crate::host::bindings::valero::stage::processes::{
    self, JobResult, Service, ServiceStatus as Status,
};
use crate::pipeline::{ProcessSpec, Target};
use crate::secrets::Masker;

/// How long a service gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Output returned with a job result.
const JOB_TAIL: usize = 4096;

/// Owns every process a run started.
pub struct Supervisor {
    target: String,
    services: BTreeMap<String, ProcessSpec>,
    jobs: BTreeMap<String, ProcessSpec>,
    log_dir: PathBuf,
    base_dir: PathBuf,
    secrets: BTreeMap<String, String>,
    masker: Arc<Masker>,
    running: Mutex<BTreeMap<String, Child>>,
    exited: std::sync::Mutex<BTreeMap<String, i32>>,
}

impl Supervisor {
    pub fn new(
        target: &Target,
        run_dir: &Path,
        base_dir: &Path,
        secrets: BTreeMap<String, String>,
        masker: Arc<Masker>,
    ) -> Self {
        Supervisor {
            target: target.name.clone(),
            services: target.services.clone(),
            jobs: target.jobs.clone(),
            log_dir: run_dir.to_path_buf(),
            base_dir: base_dir.to_path_buf(),
            secrets,
            masker,
            running: Mutex::default(),
            exited: std::sync::Mutex::default(),
        }
    }

    fn service(&self, name: &str) -> Result<&ProcessSpec, String> {
        self.services.get(name).ok_or_else(|| {
            format!(
                "`{name}` is not a service of target `{}`; declared: {}",
                self.target,
                list(self.services.keys())
            )
        })
    }

    fn log_path(&self, kind: &str, name: &str) -> PathBuf {
        self.log_dir.join(kind).join(format!("{name}.log"))
    }

    fn command(&self, spec: &ProcessSpec, log: &Path) -> Result<Command, String> {
        let program = if spec.program.contains('/') {
            crate::pipeline::resolve_path(&self.base_dir, &spec.program)
        } else {
            PathBuf::from(&spec.program)
        };
        let mut cmd = Command::new(&program);
        cmd.args(&spec.args).current_dir(&spec.cwd).env_clear();
        // A minimal, predictable environment: what a program needs to run,
        // plus what the pipeline declares.
        for var in [
            "PATH",
            "HOME",
            "LANG",
            "TZ",
            "CARGO_HOME",
            "RUSTUP_HOME",
            "RUSTUP_TOOLCHAIN",
        ] {
            if let Some(v) = std::env::var_os(var) {
                cmd.env(var, v);
            }
        }
        let run_dir = self.log_dir.display().to_string();
        let port = spec.port.map(|p| p.to_string()).unwrap_or_default();
        for (key, value) in &spec.env {
            let value = value
                .resolve(&self.secrets)
                .map_err(|e| format!("env {key} of `{}`: {e}", spec.name))?;
            let value = value
                .replace("{run_dir}", &run_dir)
                .replace("{service}", &spec.name)
                .replace("{port}", &port);
            cmd.env(key, value);
        }
        if let Some(parent) = log.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("cannot open log {}: {e}", log.display()))?;
        let err = file.try_clone().map_err(|e| e.to_string())?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .kill_on_drop(true);
        #[cfg(unix)]
        {
            // Own process group, so stop() reaches the whole tree.
            cmd.process_group(0);
            #[cfg(target_os = "linux")]
            // SAFETY: prctl is async-signal-safe; runs in the child before exec.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        Ok(cmd)
    }

    pub fn list_services(&self) -> Vec<&ProcessSpec> {
        self.services.values().collect()
    }

    pub async fn start(&self, name: &str) -> Result<u32, String> {
        let spec = self.service(name)?;
        let mut running = self.running.lock().await;
        if let Some(child) = running.get_mut(name)
            && matches!(child.try_wait(), Ok(None))
        {
            return child
                .id()
                .ok_or_else(|| format!("service `{name}` has no pid"));
        }
        if let Some(port) = spec.port
            && let Err(e) = std::net::TcpListener::bind(("127.0.0.1", port))
        {
            return Err(format!(
                "service `{name}` cannot start: port {port} on 127.0.0.1 is already in use ({e})\n  help: stop what listens there (`ss -ltnp 'sport = :{port}'`) or change `port` in [targets.{}.services.{name}]",
                self.target
            ));
        }
        let log = self.log_path("services", name);
        let mut cmd = self.command(spec, &log)?;
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start service `{name}` ({}): {e}", spec.program))?;
        let pid = child.id().unwrap_or_default();
        tracing::info!(
            service = name,
            pid,
            "service started; log {}",
            log.display()
        );
        running.insert(name.to_string(), child);
        Ok(pid)
    }

    pub async fn stop(&self, name: &str) -> Result<(), String> {
        self.service(name)?;
        let child = self.running.lock().await.remove(name);
        if let Some(child) = child {
            let code = terminate(child).await;
            tracing::info!(service = name, code, "service stopped");
            self.exited
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name.to_string(), code);
        }
        Ok(())
    }

    pub async fn status(&self, name: &str) -> Result<Status, String> {
        self.service(name)?;
        let mut running = self.running.lock().await;
        if let Some(child) = running.get_mut(name) {
            match child.try_wait() {
                Ok(None) => return Ok(Status::Running(child.id().unwrap_or_default())),
                Ok(Some(status)) => {
                    let code = status.code().unwrap_or(-1);
                    running.remove(name);
                    self.exited
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(name.to_string(), code);
                    return Ok(Status::Exited(code));
                }
                Err(e) => return Err(format!("cannot query `{name}`: {e}")),
            }
        }
        let exited = self.exited.lock().unwrap_or_else(|e| e.into_inner());
        Ok(exited
            .get(name)
            .map_or(Status::NotStarted, |c| Status::Exited(*c)))
    }

    pub fn log_tail(&self, name: &str, max: usize) -> Result<String, String> {
        let kind = if self.services.contains_key(name) {
            "services"
        } else if self.jobs.contains_key(name) {
            "jobs"
        } else {
            return Err(format!(
                "`{name}` is not a service or job of target `{}`",
                self.target
            ));
        };
        let bytes = std::fs::read(self.log_path(kind, name)).unwrap_or_default();
        let start = bytes.len().saturating_sub(max);
        Ok(self
            .masker
            .mask(&String::from_utf8_lossy(&bytes[start..]))
            .into_owned())
    }

    pub async fn run_job(&self, name: &str) -> Result<JobResult, String> {
        let spec = self.jobs.get(name).ok_or_else(|| {
            format!(
                "`{name}` is not a job of target `{}`; declared: {}",
                self.target,
                list(self.jobs.keys())
            )
        })?;
        let log = self.log_path("jobs", name);
        let mut cmd = self.command(spec, &log)?;
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run job `{name}` ({}): {e}", spec.program))?;
        // The stage can end under the job (its timeout, an interrupt) and drop
        // this future: then the job's whole group goes, not only its process.
        let group = GroupGuard::of(&child);
        let code = match tokio::time::timeout(spec.timeout, child.wait()).await {
            Ok(Ok(status)) => {
                group.disarm();
                status.code().unwrap_or(-1)
            }
            Ok(Err(e)) => return Err(format!("job `{name}` could not be awaited: {e}")),
            Err(_) => {
                terminate(child).await;
                return Err(format!(
                    "job `{name}` timed out after {}",
                    humantime::format_duration(spec.timeout)
                ));
            }
        };
        Ok(JobResult {
            exit_code: code,
            duration_ms: started.elapsed().as_millis() as u64,
            output_tail: self.log_tail(name, JOB_TAIL)?,
        })
    }

    /// Stops everything still running (end of run).
    pub async fn stop_all(&self) {
        let children: Vec<(String, Child)> = std::mem::take(&mut *self.running.lock().await)
            .into_iter()
            .collect();
        for (name, child) in children {
            let code = terminate(child).await;
            tracing::info!(service = %name, code, "stopped at the end of the run");
        }
    }
}

/// Kills a child's process group (it leads its own, see `command`) when
/// dropped armed. `kill_on_drop` reaches only the child itself; what it
/// started would live on. After a timeout it also sweeps what outlived the
/// graceful stop: while any member lives, Linux does not hand the group's id
/// to another process.
struct GroupGuard(Option<u32>);

impl GroupGuard {
    fn of(child: &Child) -> GroupGuard {
        GroupGuard(child.id())
    }

    /// The child was reaped: its group is no longer ours to kill.
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            signal_group(pid, libc::SIGKILL);
        }
    }
}

/// Sends `signal` to the process group a child leads (see `command`).
fn signal_group(pid: u32, signal: libc::c_int) {
    #[cfg(unix)]
    // SAFETY: plain kill(2) on the group we created for this child.
    unsafe {
        libc::kill(-(pid as i32), signal);
    }
}

/// SIGTERM to the process group, SIGKILL after the grace period; the exit code.
async fn terminate(mut child: Child) -> i32 {
    if let Some(pid) = child.id() {
        signal_group(pid, libc::SIGTERM);
    }
    match tokio::time::timeout(STOP_GRACE, child.wait()).await {
        Ok(Ok(status)) => status.code().unwrap_or(-1),
        _ => {
            if let Some(pid) = child.id() {
                signal_group(pid, libc::SIGKILL);
            }
            let _ = child.kill().await;
            -1
        }
    }
}

fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = names.map(String::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// One attempt's use of the run's supervisor: what it starts is recorded
/// as the stage's effects.
pub struct ProcessSession {
    supervisor: Arc<Supervisor>,
    effects: EffectLog,
}

impl ProcessSession {
    pub fn new(supervisor: Arc<Supervisor>, effects: EffectLog) -> Self {
        ProcessSession {
            supervisor,
            effects,
        }
    }
}

impl processes::Host for ProcessSession {
    async fn services(&mut self) -> wasmtime::Result<Vec<Service>> {
        Ok(self
            .supervisor
            .list_services()
            .into_iter()
            .map(|s| Service {
                name: s.name.clone(),
                port: s.port,
                ready_url: s.ready.clone(),
                needs: s.needs.clone(),
            })
            .collect())
    }
    async fn jobs(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.supervisor.jobs.keys().cloned().collect())
    }
    async fn start(&mut self, name: String) -> wasmtime::Result<Result<u32, String>> {
        let started = self.supervisor.start(&name).await;
        if started.is_ok() {
            // A service lives in the runner's process tree: it ends with the run.
            self.effects.record(Effect::Service { name });
        }
        Ok(started)
    }
    async fn stop(&mut self, name: String) -> wasmtime::Result<Result<(), String>> {
        Ok(self.supervisor.stop(&name).await)
    }
    async fn status(&mut self, name: String) -> wasmtime::Result<Result<Status, String>> {
        Ok(self.supervisor.status(&name).await)
    }
    async fn log_tail(
        &mut self,
        name: String,
        max: u32,
    ) -> wasmtime::Result<Result<String, String>> {
        Ok(self.supervisor.log_tail(&name, max as usize))
    }
    async fn run_job(&mut self, name: String) -> wasmtime::Result<Result<JobResult, String>> {
        Ok(self.supervisor.run_job(&name).await)
    }
}
