//! `valero run`: load, plan, prepare plugins, execute, record.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::engine::Runtime;
use crate::exit::Exit;
use crate::host::capabilities::{Registry, RunScope};
use crate::observer::Observer;
use crate::pipeline::{self, Capability, Pipeline, PluginRef, SecretSource};
use crate::plan::{self, Plan, Selection};
use crate::records::{self, Recorder};
use crate::report::{Excluded, LoadReport, RunOutcome, RunReport, ms};
use crate::scheduler::{self, Interrupt, PluginSlot, RunContext};
use crate::secrets::Masker;

/// Options of one run (from the CLI or a test).
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub pipeline: PathBuf,
    pub target: Option<String>,
    pub jobs: usize,
    /// `None`: no compile cache.
    pub cache_dir: Option<PathBuf>,
    /// Where `runs/<id>/` go; default `<pipeline dir>/.valero`.
    pub state_dir: Option<PathBuf>,
    /// `--only` / `--skip`.
    pub selection: Selection,
    /// `--resume <run-id>`: continue that run.
    pub resume: Option<String>,
    /// `--compile-timeout`: wall time for compiling one plugin.
    pub compile_timeout: Duration,
    pub observer: Arc<dyn Observer>,
    /// `valero plan`: capabilities change nothing (Kubernetes applies are
    /// server-side dry runs; deletes and replaces are refused).
    pub plan_only: bool,
}

/// A run that could not start, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RunError {
    pub exit: Exit,
    pub message: String,
}

impl RunError {
    fn new(exit: Exit, message: impl Into<String>) -> Self {
        RunError {
            exit,
            message: message.into(),
        }
    }
}

/// The load options every command uses: builtins known, files checked.
pub fn load_options() -> pipeline::LoadOptions {
    pipeline::LoadOptions {
        builtin_plugins: crate::builtins::digests(),
        check_plugin_files: true,
    }
}

pub fn load_pipeline(path: &Path) -> Result<Pipeline, RunError> {
    pipeline::load(path, &load_options()).map_err(|d| RunError::new(Exit::Invalid, d.to_string()))
}

pub fn plan_for(p: &Pipeline, target: Option<&str>) -> Result<Plan, RunError> {
    let target = target.unwrap_or(&p.default_target);
    plan::plan(p, target).map_err(|e| {
        RunError::new(
            Exit::Invalid,
            format!(
                "{e}\n  help: pass one of them with --target, or add [targets.{target}] to {}",
                p.path.display()
            ),
        )
    })
}

/// The state directory of a run: `--state-dir`, else `.valero` next to the pipeline.
pub fn state_dir(opts_dir: Option<&Path>, pipeline: &Pipeline) -> PathBuf {
    opts_dir.map_or_else(|| pipeline.base_dir.join(".valero"), Path::to_path_buf)
}

/// Runs a pipeline to the end. `interrupt` stops it early (Ctrl-C).
pub async fn run(
    opts: &RunOptions,
    interrupt: Interrupt,
) -> Result<(RunReport, Exit, PathBuf), RunError> {
    let pipeline = Arc::new(load_pipeline(&opts.pipeline)?);
    let state_dir = state_dir(opts.state_dir.as_deref(), &pipeline);
    let previous = match &opts.resume {
        Some(id) => {
            // Refused before anything else: two sessions of one run would
            // interleave their records and fight over its resources.
            if let Some(pid) = records::lock_holder(&state_dir, id) {
                return Err(RunError::new(
                    Exit::Invalid,
                    format!(
                        "run `{id}` is still going: process {pid} holds its records\n  help: wait for it to end, or stop it (`kill {pid}`) and resume again"
                    ),
                ));
            }
            Some(
                records::load_previous(&state_dir, id)
                    .map_err(|e| RunError::new(Exit::Invalid, e))?,
            )
        }
        None => None,
    };
    // A resumed run keeps its target; naming another one is a mistake.
    let target = match (&previous, opts.target.as_deref()) {
        (Some(p), Some(t)) if t != p.target => {
            return Err(RunError::new(
                Exit::Invalid,
                format!(
                    "run `{}` was on target `{}`, not `{t}`\n  help: drop --target when resuming",
                    opts.resume.as_deref().unwrap_or_default(),
                    p.target
                ),
            ));
        }
        (Some(p), _) => Some(p.target.as_str()),
        (None, t) => t,
    };
    let plan = plan_for(&pipeline, target)?
        .select(&opts.selection)
        .map_err(|e| RunError::new(Exit::Invalid, e.to_string()))?;
    let secrets = resolve_secrets(&pipeline, &plan)?;
    let db_credentials = Registry::credentials(&pipeline.targets[&plan.target], &secrets);
    let masker = Arc::new(Masker::new(
        secrets.values().chain(&db_credentials).map(String::as_str),
    ));
    for (name, value) in &secrets {
        if value.len() < crate::secrets::MIN_MASKED_LEN {
            tracing::warn!("secret `{name}` is too short to be masked reliably in output");
        }
    }
    let runtime = Arc::new(
        Runtime::new(opts.cache_dir.as_deref())
            .map_err(|e| RunError::new(Exit::Internal, format!("{e:#}")))?
            .with_compile_budget(crate::engine::CompileBudget {
                time: opts.compile_timeout,
                ..Default::default()
            }),
    );

    // The scheduler's clock (tokio's, so its unit tests can pause it).
    let started = tokio::time::Instant::now();
    let now = time::OffsetDateTime::now_utc();
    let now_text = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let run_id = opts.resume.clone().unwrap_or_else(|| run_id(now));
    let session = previous.as_ref().map_or(0, |p| p.sessions);
    let source = std::fs::read_to_string(&pipeline.path).unwrap_or_default();
    if previous.is_none()
        && let Some(left) = crate::resume::leftovers(&state_dir, &pipeline.name).await
    {
        let what: Vec<String> = left.effects.iter().map(|e| e.describe()).collect();
        tracing::warn!(
            "the previous run of this pipeline, {}, was interrupted and left {}\n  help: `valero cleanup {}` removes them (a deploy stage of this run may also reuse them)",
            left.run_id,
            what.join(", "),
            left.run_id
        );
    }
    let recorder = Recorder::create(&state_dir, &run_id, &source, session).map_err(|e| {
        let exit = match e {
            records::RecordsError::Busy { .. } => Exit::Invalid,
            _ => Exit::Internal,
        };
        RunError::new(exit, e.to_string())
    })?;
    match &previous {
        None => recorder.event(&records::Event::RunStarted {
            run_id: &run_id,
            pipeline: &pipeline.name,
            target: &plan.target,
            at: &now_text,
        }),
        Some(_) => recorder.event(&records::Event::RunResumed {
            run_id: &run_id,
            session,
            at: &now_text,
        }),
    }
    tracing::info!(
        run = %run_id,
        target = %plan.target,
        "run {}; records in {}",
        if previous.is_some() { "resumed" } else { "started" },
        recorder.dir().display()
    );

    let (plugins, load_failed) = prepare_plugins(&runtime, &pipeline, &plan).await;
    let excluded = plan
        .excluded
        .iter()
        .map(|(stage, reason)| Excluded {
            stage: stage.clone(),
            reason: reason.clone(),
        })
        .collect();
    let previous = previous.unwrap_or_default();
    let effects_gone = crate::resume::check_effects(&previous.stages).await;
    let time_offset = std::time::Duration::from_secs_f64(previous.elapsed_ms / 1000.0);
    let capabilities = Arc::new(Registry::for_run(RunScope {
        target: &pipeline.targets[&plan.target],
        run_dir: recorder.dir(),
        base_dir: &pipeline.base_dir,
        secrets: &secrets,
        masker: masker.clone(),
        plan_only: opts.plan_only,
    }));
    let ctx = Arc::new(RunContext {
        executor: runtime,
        pipeline: pipeline.clone(),
        recorder: Arc::new(recorder),
        run_id,
        target: plan.target.clone(),
        started,
        started_at: if previous.started_at.is_empty() {
            now_text
        } else {
            previous.started_at
        },
        time_offset,
        deadline: pipeline_deadline(started, pipeline.timeout, time_offset),
        secrets,
        masker,
        observer: opts.observer.clone(),
        capabilities: capabilities.clone(),
        resumed: session,
        previous: previous.stages,
        effects_gone,
        excluded,
    });
    let report = scheduler::execute(ctx.clone(), &plan, plugins, opts.jobs, interrupt).await;
    // Whatever happened, nothing the run started outlives it.
    capabilities.shutdown().await;
    let exit = match report.outcome {
        // The run stopped because its records could not be written.
        _ if ctx.recorder.failure().is_some() => Exit::Internal,
        RunOutcome::Passed => Exit::Success,
        RunOutcome::Inconclusive => Exit::Inconclusive,
        RunOutcome::Interrupted => Exit::Interrupted,
        RunOutcome::Running => Exit::Internal,
        RunOutcome::Failed if !load_failed.is_empty() => Exit::PluginLoad,
        RunOutcome::Failed => Exit::StageFailed,
    };
    Ok((report, exit, ctx.recorder.dir().to_path_buf()))
}

/// The pipeline deadline of a session: the pipeline's timeout bounds the
/// whole run, so a resumed session has what the earlier ones left of it.
fn pipeline_deadline(
    started: tokio::time::Instant,
    timeout: Duration,
    spent: Duration,
) -> tokio::time::Instant {
    started + timeout.saturating_sub(spent)
}

/// `20261127T193301Z-1a2b`: sortable by time, unique enough per machine.
fn run_id(now: time::OffsetDateTime) -> String {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let stamp = now.format(&fmt).unwrap_or_default();
    let mut rnd = [0u8; 3];
    let _ = getrandom::fill(&mut rnd);
    format!("{stamp}-{}", hex::encode(rnd))
}

/// Reads the values of the secrets the planned stages are granted.
fn resolve_secrets(p: &Pipeline, plan: &Plan) -> Result<BTreeMap<String, String>, RunError> {
    // Secrets granted to planned stages, and those the target's processes
    // and databases use (resolved here so they are masked too).
    let target = &p.targets[&plan.target];
    let process_secrets = target
        .services
        .values()
        .chain(target.jobs.values())
        .flat_map(|s| s.env.values())
        .chain(target.databases.values().map(|d| &d.url))
        .filter_map(|v| match v {
            pipeline::EnvValue::Secret(name) => Some(name),
            _ => None,
        });
    let wanted: BTreeSet<&String> = plan
        .stages
        .iter()
        .flat_map(|s| p.stages[s.index].grants.secrets.iter())
        .chain(process_secrets)
        .collect();
    let mut out = BTreeMap::new();
    for name in wanted {
        let value = match p.secrets.get(name) {
            Some(SecretSource::Env(var)) => std::env::var(var).map_err(|_| {
                RunError::new(
                    Exit::Invalid,
                    format!("secret `{name}` comes from environment variable {var}, which is not set\n  help: export {var}=… before running, or change [secrets.{name}]"),
                )
            })?,
            Some(SecretSource::File(path)) => std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| {
                    RunError::new(
                        Exit::Invalid,
                        format!("secret `{name}` comes from file {}, which cannot be read: {e}", path.display()),
                    )
                })?,
            None => continue, // validation already reported it
        };
        out.insert(name.clone(), value);
    }
    Ok(out)
}

/// Loads every planned stage's plugin before any stage runs (compiling in
/// parallel, off the async executor). A plugin that cannot be loaded fails
/// its stage only; the others carry on.
async fn prepare_plugins(
    runtime: &Arc<Runtime>,
    p: &Pipeline,
    plan: &Plan,
) -> (BTreeMap<String, PluginSlot>, BTreeSet<String>) {
    // Stages with the same plugin, pin and capabilities share one loaded
    // plugin (one compile or cache load, one InstancePre).
    type Key = (PluginRef, Option<pipeline::Digest>, BTreeSet<Capability>);
    let mut groups: BTreeMap<Key, Vec<pipeline::Stage>> = BTreeMap::new();
    for planned in &plan.stages {
        let stage = p.stages[planned.index].clone();
        let key = (
            stage.plugin.clone(),
            stage.sha256,
            stage.grants.capabilities.clone(),
        );
        groups.entry(key).or_default().push(stage);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for stages in groups.into_values() {
        let runtime = runtime.clone();
        tasks.spawn_blocking(move || {
            let shared = load_stage_plugin(&runtime, &stages[0]);
            stages
                .iter()
                .enumerate()
                .map(|(i, stage)| {
                    let slot = match &shared {
                        // A failure names its stage: say it for each one.
                        PluginSlot::Failed(_) if i > 0 => load_stage_plugin(&runtime, stage),
                        slot => slot.clone(),
                    };
                    (stage.name.clone(), slot)
                })
                .collect::<Vec<_>>()
        });
    }
    let mut slots = BTreeMap::new();
    let mut failed = BTreeSet::new();
    while let Some(joined) = tasks.join_next().await {
        let loaded = match joined {
            Ok(x) => x,
            Err(e) => {
                tracing::error!("plugin loader panicked: {e}");
                continue;
            }
        };
        for (name, slot) in loaded {
            if let PluginSlot::Failed(why) = &slot {
                tracing::error!(stage = %name, "{why}");
                failed.insert(name.clone());
            }
            slots.insert(name, slot);
        }
    }
    (slots, failed)
}

/// The bytes of a stage's plugin (embedded or read from its file).
fn plugin_bytes(stage: &pipeline::Stage) -> Result<std::borrow::Cow<'static, [u8]>, String> {
    match &stage.plugin {
        PluginRef::Builtin(name) => crate::builtins::get(name)
            .map(Into::into)
            .ok_or_else(|| format!("no builtin plugin `{name}`")),
        PluginRef::Path(path) => std::fs::read(path)
            .map(Into::into)
            .map_err(|e| format!("cannot read plugin {}: {e}", path.display())),
    }
}

/// `valero validate`'s plugin checks, made without compiling anything: each
/// stage's plugin is a component that exports `run`, and every capability
/// it imports is granted. Returns every problem found, one per stage.
pub fn check_plugins(p: &Pipeline) -> Result<(), RunError> {
    let mut problems = Vec::new();
    for stage in &p.stages {
        let bytes = match plugin_bytes(stage) {
            Ok(b) => b,
            Err(e) => {
                problems.push(format!("stage `{}`: {e}", stage.name));
                continue;
            }
        };
        match crate::engine::Shape::of_stage_plugin(&bytes) {
            Err(source) => problems.push(
                crate::engine::LoadError::NotAStagePlugin {
                    stage: stage.name.clone(),
                    source,
                }
                .to_string(),
            ),
            Ok(shape) => {
                let granted = &stage.grants.capabilities;
                if let Some(e) = crate::engine::LoadError::ungranted(&stage.name, &shape, granted) {
                    problems.push(e.to_string());
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(RunError::new(Exit::PluginLoad, problems.join("\n")))
    }
}

fn load_stage_plugin(runtime: &Runtime, stage: &pipeline::Stage) -> PluginSlot {
    let bytes = match plugin_bytes(stage) {
        Ok(b) => b,
        Err(e) => return PluginSlot::Failed(e),
    };
    let pinned = match (&stage.plugin, stage.sha256) {
        (_, Some(d)) => Some(d),
        (PluginRef::Builtin(name), None) => {
            crate::builtins::all().get(name.as_str()).map(|(_, d)| *d)
        }
        (PluginRef::Path(_), None) => None,
    };
    let caps: BTreeSet<Capability> = stage.grants.capabilities.clone();
    match runtime.load(&stage.name, &bytes, pinned.as_ref(), &caps) {
        Ok(loaded) => {
            let load = LoadReport {
                source: loaded.source,
                ms: ms(loaded.load_time),
            };
            tracing::debug!(stage = %stage.name, source = %load.source, ms = load.ms, "plugin loaded");
            PluginSlot::Loaded(Arc::new(loaded), load)
        }
        Err(e) => PluginSlot::Failed(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_session_gets_what_is_left_of_the_pipeline_deadline() {
        let start = tokio::time::Instant::now();
        let timeout = Duration::from_secs(60);
        assert_eq!(
            pipeline_deadline(start, timeout, Duration::ZERO),
            start + timeout
        );
        assert_eq!(
            pipeline_deadline(start, timeout, Duration::from_secs(45)),
            start + Duration::from_secs(15)
        );
        // Spent more than the timeout: the deadline has passed already.
        assert_eq!(
            pipeline_deadline(start, timeout, Duration::from_secs(90)),
            start
        );
    }
}
