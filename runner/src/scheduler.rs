//! The scheduler: runs a [`Plan`] as a DAG.
//!
//! Stages whose needs are met run concurrently (at most `jobs` at once).
//! Dependents of a stage that did not pass are skipped with the reason.
//! `always` stages run once their needs have finished, whatever the outcome,
//! also after the pipeline deadline or an interrupt. Retries back off
//! exponentially and never pass the pipeline deadline.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::engine::{AttemptOutcome, LoadedPlugin, Runtime};
use crate::host::{StageContext, Verdict};
use crate::pipeline::{Pipeline, Stage};
use crate::plan::Plan;
use crate::records::{Event, Recorder};
use crate::report::{
    AttemptReport, CheckReport, LoadReport, OutputReport, RunOutcome, RunReport, StageReport,
    StageStatus, ms, neutralize, verdict_str,
};
use crate::sandbox::{Captured, SandboxSpec};

/// How much captured output a report carries inline (the run records keep
/// everything up to the stage's output limit).
const OUTPUT_PREVIEW: usize = 4096;

/// Everything stage tasks share.
pub struct RunContext {
    pub runtime: Arc<Runtime>,
    pub pipeline: Arc<Pipeline>,
    pub recorder: Arc<Recorder>,
    pub run_id: String,
    pub target: String,
    pub started: Instant,
    pub started_at: String,
    /// The pipeline deadline: no attempt or retry of a normal stage passes it.
    pub deadline: Instant,
    /// Resolved secret values by secret name.
    pub secrets: BTreeMap<String, String>,
}

/// A stage's plugin, loaded before the run starts, or why it could not be.
pub enum PluginSlot {
    Loaded(Arc<LoadedPlugin>, LoadReport),
    Failed(String),
}

/// Interrupt signals: the first asks to stop (always-stages still run), the
/// second stops everything.
#[derive(Clone)]
pub struct Interrupt {
    pub soft: watch::Receiver<bool>,
    pub hard: watch::Receiver<bool>,
}

impl Interrupt {
    /// An interrupt that never fires.
    pub fn never() -> (Interrupt, InterruptSender) {
        let (soft_tx, soft) = watch::channel(false);
        let (hard_tx, hard) = watch::channel(false);
        (
            Interrupt { soft, hard },
            InterruptSender { soft_tx, hard_tx },
        )
    }
}

pub struct InterruptSender {
    soft_tx: watch::Sender<bool>,
    hard_tx: watch::Sender<bool>,
}

impl InterruptSender {
    /// First call: soft interrupt. Later calls: hard.
    pub fn interrupt(&self) {
        if *self.soft_tx.borrow() {
            let _ = self.hard_tx.send(true);
        } else {
            let _ = self.soft_tx.send(true);
        }
    }
}

enum Slot {
    Pending,
    Running,
    Done(StageStatus),
}

/// Runs the plan to completion (or interruption) and returns the report.
pub async fn execute(
    ctx: Arc<RunContext>,
    plan: &Plan,
    mut plugins: BTreeMap<String, PluginSlot>,
    jobs: usize,
    mut interrupt: Interrupt,
) -> RunReport {
    let jobs = jobs.max(1);
    let mut slots: BTreeMap<&str, Slot> = plan
        .stages
        .iter()
        .map(|s| (s.name.as_str(), Slot::Pending))
        .collect();
    let mut reports: BTreeMap<String, StageReport> = BTreeMap::new();
    let mut running: JoinSet<StageReport> = JoinSet::new();
    let mut interrupted = *interrupt.soft.borrow();

    loop {
        // Start (or settle) every stage whose needs have all finished.
        for planned in &plan.stages {
            if !matches!(slots[planned.name.as_str()], Slot::Pending) {
                continue;
            }
            let stage = &ctx.pipeline.stages[planned.index];
            let mut blocked_by = None;
            let mut all_done = true;
            for need in &planned.needs {
                match &slots[need.as_str()] {
                    Slot::Done(status) => {
                        let ok = *status == StageStatus::Passed
                            || (reports[need].continue_on_error
                                && matches!(
                                    status,
                                    StageStatus::Failed | StageStatus::Inconclusive
                                ));
                        if !ok && blocked_by.is_none() {
                            blocked_by = Some((need.clone(), *status));
                        }
                    }
                    _ => all_done = false,
                }
            }
            if !all_done {
                continue;
            }
            let settle = if stage.always {
                None
            } else if interrupted {
                Some((
                    StageStatus::Cancelled,
                    "the run was interrupted before it started".to_string(),
                ))
            } else if let Some((need, status)) = blocked_by {
                Some((
                    StageStatus::Skipped,
                    format!("needs `{need}`, which {}", describe(status)),
                ))
            } else if Instant::now() >= ctx.deadline {
                Some((
                    StageStatus::Skipped,
                    "the pipeline deadline was reached".to_string(),
                ))
            } else {
                None
            };
            if let Some((status, reason)) = settle {
                tracing::info!(stage = %stage.name, "{}: {reason}", describe(status));
                let report = not_run(stage, status, reason);
                ctx.recorder.event(&Event::StageFinished { stage: &report });
                slots.insert(planned.name.as_str(), Slot::Done(status));
                reports.insert(planned.name.clone(), report);
                continue;
            }
            if running.len() >= jobs {
                continue;
            }
            let inputs = planned
                .needs
                .iter()
                .filter(|n| reports[*n].status == StageStatus::Passed)
                .map(|n| (n.clone(), reports[n].outputs.to_string()))
                .collect();
            let slot = plugins.remove(&planned.name);
            let cancel = if stage.always {
                interrupt.hard.clone()
            } else {
                interrupt.soft.clone()
            };
            slots.insert(planned.name.as_str(), Slot::Running);
            let ctx = ctx.clone();
            let index = planned.index;
            running.spawn(async move { run_stage(ctx, index, slot, inputs, cancel).await });
        }

        if running.is_empty() {
            // Everything pending is blocked on nothing runnable: done.
            break;
        }
        tokio::select! {
            joined = running.join_next() => {
                if let Some(Ok(report)) = joined {
                    ctx.recorder.event(&Event::StageFinished { stage: &report });
                    slots.insert(
                        plan.stage(&report.name).map(|s| s.name.as_str()).unwrap_or_default(),
                        Slot::Done(report.status),
                    );
                    reports.insert(report.name.clone(), report);
                    ctx.recorder.report(&assemble(&ctx, plan, &reports, interrupted));
                } else if let Some(Err(e)) = joined {
                    // A stage task panicked: a bug in valero, not the plugin.
                    tracing::error!("internal error in a stage task: {e}");
                }
            }
            _ = interrupt.soft.changed(), if !interrupted => {
                interrupted = true;
                tracing::warn!("interrupted: stopping running stages; `always` stages still run (interrupt again to stop them too)");
            }
        }
    }
    let report = assemble(&ctx, plan, &reports, interrupted);
    ctx.recorder.report(&report);
    ctx.recorder.event(&Event::RunFinished {
        outcome: report.outcome,
        duration_ms: report.duration_ms,
    });
    report
}

fn describe(status: StageStatus) -> &'static str {
    match status {
        StageStatus::Passed => "passed",
        StageStatus::Failed => "failed",
        StageStatus::Inconclusive => "was inconclusive",
        StageStatus::Skipped => "was skipped",
        StageStatus::Cancelled => "was cancelled",
    }
}

/// The run report from the stage reports so far, in plan order.
fn assemble(
    ctx: &RunContext,
    plan: &Plan,
    reports: &BTreeMap<String, StageReport>,
    interrupted: bool,
) -> RunReport {
    let stages: Vec<StageReport> = plan
        .stages
        .iter()
        .filter_map(|s| reports.get(&s.name).cloned())
        .collect();
    let counts = |st: StageStatus| {
        stages
            .iter()
            .filter(|s| s.status == st && !(s.continue_on_error && st != StageStatus::Skipped))
            .count()
    };
    let outcome = if interrupted {
        RunOutcome::Cancelled
    } else if counts(StageStatus::Failed) > 0
        || counts(StageStatus::Skipped) > 0
        || counts(StageStatus::Cancelled) > 0
        || stages.len() < plan.stages.len()
    {
        RunOutcome::Failed
    } else if counts(StageStatus::Inconclusive) > 0 {
        RunOutcome::Inconclusive
    } else {
        RunOutcome::Passed
    };
    RunReport {
        schema_version: crate::report::SCHEMA_VERSION,
        run_id: ctx.run_id.clone(),
        pipeline: ctx.pipeline.name.clone(),
        pipeline_file: ctx.pipeline.path.display().to_string(),
        target: ctx.target.clone(),
        started_at: ctx.started_at.clone(),
        duration_ms: ctx.started.elapsed().as_millis() as u64,
        outcome,
        stages,
    }
}

fn plugin_label(stage: &Stage) -> String {
    match &stage.plugin {
        crate::pipeline::PluginRef::Builtin(n) => format!("builtin:{n}"),
        crate::pipeline::PluginRef::Path(p) => p.display().to_string(),
    }
}

fn not_run(stage: &Stage, status: StageStatus, reason: String) -> StageReport {
    StageReport {
        name: stage.name.clone(),
        status,
        reason: Some(reason),
        plugin: plugin_label(stage),
        digest: None,
        load: None,
        start_ms: None,
        end_ms: None,
        continue_on_error: stage.continue_on_error,
        summary: String::new(),
        checks: Vec::new(),
        outputs: serde_json::Value::Null,
        attempts: Vec::new(),
    }
}

/// One stage: attempts with retries, bounded by its timeout and the pipeline deadline.
async fn run_stage(
    ctx: Arc<RunContext>,
    index: usize,
    slot: Option<PluginSlot>,
    inputs: BTreeMap<String, String>,
    mut cancel: watch::Receiver<bool>,
) -> StageReport {
    let stage = &ctx.pipeline.stages[index];
    let start = ctx.started.elapsed();
    ctx.recorder.event(&Event::StageStarted {
        stage: &stage.name,
        at_ms: ms(start),
    });
    tracing::info!(stage = %stage.name, "started");
    let mut report = not_run(stage, StageStatus::Failed, String::new());
    report.reason = None;
    report.start_ms = Some(ms(start));

    let plugin = match slot {
        Some(PluginSlot::Loaded(p, load)) => {
            report.digest = Some(p.digest.to_string());
            report.load = Some(load);
            p
        }
        Some(PluginSlot::Failed(why)) => {
            report.reason = Some(why);
            report.end_ms = Some(ms(ctx.started.elapsed()));
            return report;
        }
        None => {
            report.reason = Some("internal error: plugin was not prepared".into());
            return report;
        }
    };

    let secrets: Vec<(String, String)> = stage
        .grants
        .secrets
        .iter()
        .filter_map(|n| ctx.secrets.get(n).map(|v| (n.clone(), v.clone())))
        .collect();
    let spec = SandboxSpec {
        grants: &stage.grants,
        limits: stage.limits,
        secrets: &secrets,
        base_dir: &ctx.pipeline.base_dir,
    };
    let config = stage.with.to_string();

    let mut attempt = 1;
    loop {
        let remaining = if stage.always {
            stage.timeout
        } else {
            ctx.deadline.saturating_duration_since(Instant::now())
        };
        let timeout = stage.timeout.min(remaining);
        let context = StageContext {
            run_id: ctx.run_id.clone(),
            stage: stage.name.clone(),
            target: ctx.target.clone(),
            attempt,
            config: config.clone(),
            inputs: inputs.clone(),
        };
        let a_start = ctx.started.elapsed();
        let run = ctx.runtime.run_attempt(&plugin, &spec, context, timeout);
        let (outcome, capture) = tokio::select! {
            r = run => match r {
                Ok(x) => (Some(x.0), Some(x.1)),
                Err(e) => {
                    report.reason = Some(format!("sandbox could not be set up: {e}"));
                    (None, None)
                }
            },
            _ = wait_true(&mut cancel) => (None, None),
        };
        let a_end = ctx.started.elapsed();
        let cancelled = outcome.is_none() && report.reason.is_none();
        let (att, status) =
            attempt_report(attempt, a_start, a_end, outcome, cancelled, &mut report);
        let (stdout, stderr) = capture
            .as_ref()
            .map(|c| (c.stdout.snapshot(), c.stderr.snapshot()))
            .unwrap_or_default();
        let mut att = att;
        if let Some(c) = &capture {
            let (logs, dropped) = c.logs.take();
            att.logs = logs
                .into_iter()
                .map(|mut l| {
                    l.message = neutralize(&l.message);
                    l
                })
                .collect();
            att.logs_dropped = dropped;
        }
        att.stdout = output_report(&stdout);
        att.stderr = output_report(&stderr);
        ctx.recorder.attempt(&stage.name, &att, &stdout, &stderr);
        log_attempt(stage, &att);
        report.attempts.push(att);
        report.status = status;

        let retryable = matches!(status, StageStatus::Failed) && !cancelled;
        if !retryable || attempt >= stage.retries.attempts {
            break;
        }
        let backoff = stage.retries.backoff * 2u32.saturating_pow(attempt - 1);
        if !stage.always && Instant::now() + backoff >= ctx.deadline {
            report.reason = Some(format!(
                "{}; not retried: the next attempt (after {}) would pass the pipeline deadline",
                report.reason.clone().unwrap_or_default(),
                humantime::format_duration(backoff)
            ));
            break;
        }
        tracing::info!(stage = %stage.name, "attempt {attempt} failed; retrying in {}", humantime::format_duration(backoff));
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = wait_true(&mut cancel) => {
                report.status = StageStatus::Cancelled;
                report.reason = Some("the run was interrupted while waiting to retry".into());
                break;
            }
        }
        attempt += 1;
    }
    report.end_ms = Some(ms(ctx.started.elapsed()));
    report
}

async fn wait_true(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|v| *v).await.is_err() {
        // Sender gone: never fires.
        std::future::pending::<()>().await;
    }
}

/// Turns an attempt outcome into its report and updates the stage report's
/// summary, checks, outputs and reason from it.
fn attempt_report(
    attempt: u32,
    start: Duration,
    end: Duration,
    outcome: Option<AttemptOutcome>,
    cancelled: bool,
    stage: &mut StageReport,
) -> (AttemptReport, StageStatus) {
    let mut verdict = None;
    let (kind, message, status) = match outcome {
        None if cancelled => (
            "cancelled",
            "the run was interrupted".to_string(),
            StageStatus::Cancelled,
        ),
        None => (
            "sandbox_error",
            stage.reason.clone().unwrap_or_default(),
            StageStatus::Failed,
        ),
        Some(AttemptOutcome::Returned(r)) => {
            verdict = Some(verdict_str(r.verdict).to_string());
            stage.summary = neutralize(&r.summary);
            stage.checks = r.checks.into_iter().map(CheckReport::from).collect();
            let status = match r.verdict {
                Verdict::Pass => StageStatus::Passed,
                Verdict::Fail => StageStatus::Failed,
                Verdict::Inconclusive => StageStatus::Inconclusive,
            };
            match serde_json::from_str::<serde_json::Value>(&r.outputs) {
                Ok(v) => {
                    stage.outputs = v;
                    ("returned", stage.summary.clone(), status)
                }
                Err(e) => (
                    "returned",
                    format!("the plugin's outputs are not valid JSON: {e}"),
                    StageStatus::Failed,
                ),
            }
        }
        Some(AttemptOutcome::TimedOut { timeout }) => (
            "timed_out",
            format!(
                "timed out after {} (stage timeout or pipeline deadline)",
                humantime::format_duration(timeout)
            ),
            StageStatus::Failed,
        ),
        Some(AttemptOutcome::MemoryLimit { requested, message }) => (
            "memory_limit",
            format!(
                "memory limit reached: the plugin asked for {} bytes in total; raise [stages.<name>.limits] memory if this is expected\n{}",
                requested,
                neutralize(&message)
            ),
            StageStatus::Failed,
        ),
        Some(AttemptOutcome::Trapped { message }) => (
            "trapped",
            format!("the plugin trapped: {}", neutralize(&message)),
            StageStatus::Failed,
        ),
    };
    stage.reason = match status {
        StageStatus::Passed => None,
        _ if message.is_empty() => Some(format!("the plugin reported {}", describe(status))),
        _ => Some(message.clone()),
    };
    let att = AttemptReport {
        attempt,
        start_ms: ms(start),
        end_ms: ms(end),
        outcome: kind.to_string(),
        verdict,
        message,
        stdout: OutputReport::default(),
        stderr: OutputReport::default(),
        logs: Vec::new(),
        logs_dropped: 0,
    };
    (att, status)
}

fn output_report(c: &Captured) -> OutputReport {
    let text = String::from_utf8_lossy(&c.bytes);
    let mut preview: String = text.chars().take(OUTPUT_PREVIEW).collect();
    if preview.len() < text.len() {
        preview.push_str("\n… (truncated; full output in the run records)");
    }
    OutputReport {
        bytes: c.bytes.len() as u64,
        dropped: c.dropped,
        text: neutralize(&preview),
    }
}

fn log_attempt(stage: &Stage, att: &AttemptReport) {
    for line in att.stdout.text.lines().chain(att.stderr.text.lines()) {
        tracing::debug!(stage = %stage.name, "| {line}");
    }
    if att.stdout.dropped > 0 || att.stderr.dropped > 0 {
        tracing::warn!(
            stage = %stage.name,
            "output over the limit was dropped: {} bytes of stdout, {} of stderr",
            att.stdout.dropped,
            att.stderr.dropped
        );
    }
}
