//! The scheduler: runs a [`Plan`] as a DAG.
//!
//! Stages whose needs are met run concurrently (at most `jobs` at once).
//! Dependents of a stage that did not pass are skipped with the reason.
//! `always` stages run once their needs have finished, whatever the outcome,
//! also after the pipeline deadline or an interrupt. Retries back off
//! exponentially and never pass the pipeline deadline. On a resumed run a
//! stage that passed before is reused when its fingerprint is unchanged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

mod executor;
mod limit;
#[cfg(test)]
mod tests;

pub use executor::Executor;

use crate::engine::{AttemptOutcome, Runtime};
use crate::host::StageContext;
use crate::host::capabilities::Registry;
use crate::observer::Observer;
use crate::observer::StageIo;
use crate::pipeline::{Digest, Pipeline, PluginRef, Stage};
use crate::plan::Plan;
use crate::records::{Event, Recorder};
use crate::report::{
    AttemptEnd, AttemptReport, Excluded, InterruptCause, Interruption, LoadReport, OutputReport,
    ResumeNote, RunOutcome, RunReport, StageReport, StageStatus, Verdict, decode, ms, neutralize,
};
use crate::sandbox::{Captured, SandboxSpec};
use crate::secrets::Masker;
use limit::AttemptLimit;

/// How much captured output a report carries inline (the run records keep
/// everything up to the stage's output limit).
const OUTPUT_PREVIEW: usize = 4096;

/// Everything stage tasks share.
pub struct RunContext<E: Executor = Runtime> {
    /// Runs the attempts (the wasmtime runtime in a run).
    pub executor: Arc<E>,
    pub pipeline: Arc<Pipeline>,
    pub recorder: Arc<Recorder>,
    pub run_id: String,
    pub target: String,
    pub started: Instant,
    pub started_at: String,
    /// Time already spent in earlier sessions of this run (resume).
    pub time_offset: Duration,
    /// The pipeline deadline: no attempt or retry of a normal stage passes it.
    pub deadline: Instant,
    /// Resolved secret values by secret name.
    pub secrets: BTreeMap<String, String>,
    pub masker: Arc<Masker>,
    pub observer: Arc<dyn Observer>,
    /// The run's host capabilities (processes, databases, containers, …).
    pub capabilities: Arc<Registry>,
    /// Stage reports of the run being resumed (empty for a fresh run).
    pub previous: BTreeMap<String, StageReport>,
    /// Previously passed stages whose effects are gone, and why
    /// ([`crate::resume::check_effects`]).
    pub effects_gone: BTreeMap<String, String>,
    /// How many times this run has been resumed (0 for a fresh run).
    pub resumed: u32,
    /// Stages not in this run and why.
    pub excluded: Vec<Excluded>,
}

impl<E: Executor> RunContext<E> {
    /// Milliseconds since the run first started (across resumes).
    fn now_ms(&self) -> f64 {
        ms(self.time_offset + self.started.elapsed())
    }
}

/// A stage's plugin, loaded before the run starts, or why it could not be.
#[derive(Clone)]
pub enum PluginSlot<P = <Runtime as Executor>::Plugin> {
    Loaded(P, LoadReport),
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
    /// A pair of an interrupt and the sender that fires it.
    pub fn channel() -> (Interrupt, InterruptSender) {
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
pub async fn execute<E: Executor>(
    ctx: Arc<RunContext<E>>,
    plan: &Plan,
    mut plugins: BTreeMap<String, PluginSlot<E::Plugin>>,
    jobs: usize,
    mut interrupt: Interrupt,
) -> RunReport {
    let jobs = jobs.max(1);
    let names: Vec<String> = plan.stages.iter().map(|s| s.name.clone()).collect();
    ctx.observer
        .run_started(&ctx.run_id, &ctx.pipeline.name, &ctx.target, &names);
    let mut slots: BTreeMap<&str, Slot> = plan
        .stages
        .iter()
        .map(|s| (s.name.as_str(), Slot::Pending))
        .collect();
    let mut reports: BTreeMap<String, StageReport> = BTreeMap::new();
    let mut running: JoinSet<StageReport> = JoinSet::new();
    let mut interrupted = *interrupt.soft.borrow();
    // Set when the run records cannot be written (a full disk): nothing new
    // starts, so nothing runs that the records would not show.
    let mut records_failed: Option<String> = None;
    // report.json exists from the start, saying the run is going.
    ctx.recorder
        .report(&in_progress(assemble(&ctx, plan, &reports, false, None)));

    loop {
        if records_failed.is_none()
            && let Some(what) = ctx.recorder.failure()
        {
            tracing::error!(
                "the run records cannot be written ({what}): starting no further stages; the records written so far are intact"
            );
            records_failed = Some(what);
        }
        // A stage task may notice the interrupt (and finish as cancelled)
        // before this loop's select does: read the flag itself each round.
        if !interrupted && *interrupt.soft.borrow() {
            interrupted = true;
            tracing::warn!(
                "interrupted: stopping running stages; `always` stages still run (interrupt again to stop them too)"
            );
        }
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
            } else if let Some(what) = &records_failed {
                Some((
                    StageStatus::Cancelled,
                    format!("not started: the run records cannot be written ({what})"),
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
                let mut report = not_run(stage, status, reason);
                report.resume = ctx.previous.contains_key(&stage.name).then(|| ResumeNote {
                    reused: false,
                    why: "not run again: see reason".into(),
                });
                finish(
                    &ctx,
                    &mut slots,
                    &mut reports,
                    planned.name.as_str(),
                    report,
                );
                continue;
            }
            if running.len() >= jobs {
                continue;
            }
            let inputs: BTreeMap<String, String> = planned
                .needs
                .iter()
                .filter(|n| reports[*n].status == StageStatus::Passed)
                .map(|n| (n.clone(), reports[n].outputs.to_string()))
                .collect();
            let slot = plugins.remove(&planned.name);
            let fingerprint = match &slot {
                Some(PluginSlot::Loaded(p, _)) => {
                    Some(fingerprint(stage, E::digest(p), &ctx.target, &inputs))
                }
                _ => None,
            };
            let (reused, note) = resume_decision(
                &ctx,
                stage,
                &planned.needs,
                &reports,
                fingerprint.as_deref(),
            );
            if let Some(report) = reused {
                finish(
                    &ctx,
                    &mut slots,
                    &mut reports,
                    planned.name.as_str(),
                    report,
                );
                continue;
            }
            let cancel = if stage.always {
                interrupt.hard.clone()
            } else {
                interrupt.soft.clone()
            };
            slots.insert(planned.name.as_str(), Slot::Running);
            let ctx = ctx.clone();
            let index = planned.index;
            running.spawn(async move {
                let mut report = run_stage(ctx.clone(), index, slot, inputs, cancel).await;
                report.fingerprint = fingerprint;
                report.resume = note;
                ctx.masker.masked(report)
            });
        }

        if running.is_empty() {
            // Nothing running and nothing could start: done.
            break;
        }
        tokio::select! {
            joined = running.join_next() => {
                match joined {
                    Some(Ok(report)) => {
                        let name = plan.stage(&report.name).map(|s| s.name.as_str()).unwrap_or_default();
                        finish(&ctx, &mut slots, &mut reports, name, report);
                        ctx.recorder.report_soon(|| in_progress(assemble(
                            &ctx,
                            plan,
                            &reports,
                            interrupted,
                            records_failed.as_deref(),
                        )));
                    }
                    // A stage task panicked: a bug in valero, not the plugin.
                    Some(Err(e)) => tracing::error!("internal error in a stage task: {e}"),
                    None => {}
                }
            }
            // Wakes the loop, which then reads the flag.
            _ = interrupt.soft.changed(), if !interrupted => {}
        }
    }
    let report = assemble(&ctx, plan, &reports, interrupted, records_failed.as_deref());
    ctx.recorder.report(&report);
    ctx.recorder.event(&Event::RunFinished {
        outcome: report.outcome,
        duration_ms: report.duration_ms,
    });
    ctx.observer.run_finished(&report);
    report
}

/// Records a stage's final report and tells the observer.
fn finish<'p>(
    ctx: &RunContext<impl Executor>,
    slots: &mut BTreeMap<&'p str, Slot>,
    reports: &mut BTreeMap<String, StageReport>,
    name: &'p str,
    report: StageReport,
) {
    ctx.recorder.event(&Event::StageFinished { stage: &report });
    ctx.observer.stage_finished(&report);
    slots.insert(name, Slot::Done(report.status));
    reports.insert(report.name.clone(), report);
}

/// On a resumed run: the previous report to reuse, or a note saying why the
/// stage runs again (see [`crate::resume`]).
fn resume_decision(
    ctx: &RunContext<impl Executor>,
    stage: &Stage,
    needs: &[String],
    reports: &BTreeMap<String, StageReport>,
    fingerprint: Option<&str>,
) -> (Option<StageReport>, Option<ResumeNote>) {
    if ctx.resumed == 0 {
        return (None, None);
    }
    // A need that was not reused ran again (or did not run): what this
    // stage did on top of it may be gone with it.
    let need_ran = needs.iter().find(|n| {
        reports
            .get(n.as_str())
            .and_then(|r| r.resume.as_ref())
            .is_none_or(|r| !r.reused)
    });
    match crate::resume::decide(
        ctx.previous.get(&stage.name),
        fingerprint,
        ctx.effects_gone.get(&stage.name).map(String::as_str),
        need_ran.map(String::as_str),
    ) {
        Decision::Reuse(report) => (Some(*report), None),
        Decision::Run(note) => (None, Some(note)),
    }
}

/// What determines a stage's result, hashed.
fn fingerprint(
    stage: &Stage,
    digest: &Digest,
    target: &str,
    inputs: &BTreeMap<String, String>,
) -> String {
    let mut h = Sha256::new();
    for part in [
        digest.hex(),
        stage.with.to_string(),
        format!("{:?}", stage.grants),
        format!("{:?}", stage.limits),
        target.to_string(),
        serde_json::to_string(inputs).unwrap_or_default(),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

use crate::resume::{Decision, describe};

/// An intermediate report: the run is still going.
fn in_progress(mut report: RunReport) -> RunReport {
    report.outcome = RunOutcome::Running;
    report.interruption = None;
    report
}

/// The run report from the stage reports so far, in plan order.
fn assemble(
    ctx: &RunContext<impl Executor>,
    plan: &Plan,
    reports: &BTreeMap<String, StageReport>,
    interrupted: bool,
    records_failed: Option<&str>,
) -> RunReport {
    let stages: Vec<StageReport> = plan
        .stages
        .iter()
        .filter_map(|s| reports.get(&s.name).cloned())
        .collect();
    let count = |st: StageStatus| {
        stages
            .iter()
            .filter(|s| s.status == st && !(s.continue_on_error && st != StageStatus::Skipped))
            .count()
    };
    let outcome = if interrupted {
        RunOutcome::Interrupted
    } else if records_failed.is_some()
        || count(StageStatus::Failed) > 0
        || count(StageStatus::Skipped) > 0
        || count(StageStatus::Cancelled) > 0
        || stages.len() < plan.stages.len()
    {
        RunOutcome::Failed
    } else if count(StageStatus::Inconclusive) > 0 {
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
        duration_ms: ctx.now_ms() as u64,
        outcome,
        resumed: ctx.resumed,
        interruption: interrupted.then(|| Interruption {
            cause: InterruptCause::Signal,
            last_event: ctx.recorder.last_event(),
        }),
        stages,
        excluded: ctx.excluded.clone(),
    }
}

fn plugin_label(stage: &Stage) -> String {
    match &stage.plugin {
        PluginRef::Builtin(n) => format!("builtin:{n}"),
        PluginRef::Path(p) => p.display().to_string(),
    }
}

fn not_run(stage: &Stage, status: StageStatus, reason: String) -> StageReport {
    let mut report = StageReport::not_run(
        &stage.name,
        plugin_label(stage),
        status,
        (!reason.is_empty()).then_some(reason),
    );
    report.continue_on_error = stage.continue_on_error;
    report
}

/// One stage: attempts with retries, bounded by its timeout and the pipeline deadline.
async fn run_stage<E: Executor>(
    ctx: Arc<RunContext<E>>,
    index: usize,
    slot: Option<PluginSlot<E::Plugin>>,
    inputs: BTreeMap<String, String>,
    mut cancel: watch::Receiver<bool>,
) -> StageReport {
    let stage = &ctx.pipeline.stages[index];
    let start = ctx.now_ms();
    ctx.recorder.event(&Event::StageStarted {
        stage: &stage.name,
        at_ms: start,
    });
    let mut report = not_run(stage, StageStatus::Failed, String::new());
    report.start_ms = Some(start);
    // Attempt numbers continue those of earlier sessions (resume), so run
    // records never overwrite an earlier attempt.
    let first_attempt = ctx
        .previous
        .get(&stage.name)
        .map_or(0, |p| p.attempts.len() as u32);

    let plugin = match slot {
        Some(PluginSlot::Loaded(p, load)) => {
            report.digest = Some(E::digest(&p).to_string());
            report.load = Some(load);
            p
        }
        Some(PluginSlot::Failed(why)) => {
            ctx.observer.stage_started(&stage.name, first_attempt + 1);
            report.reason = Some(why);
            report.end_ms = Some(ctx.now_ms());
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
        io: StageIo {
            masker: ctx.masker.clone(),
            observer: ctx.observer.clone(),
        },
        capabilities: &ctx.capabilities,
        base_dir: &ctx.pipeline.base_dir,
    };
    let config = stage.with.to_string();

    let mut n = 1;
    loop {
        let attempt = first_attempt + n;
        ctx.observer.stage_started(&stage.name, attempt);
        let limit = AttemptLimit::new(
            stage.timeout,
            (!stage.always).then(|| ctx.deadline.saturating_duration_since(Instant::now())),
        );
        let context = StageContext {
            run_id: ctx.run_id.clone(),
            stage: stage.name.clone(),
            target: ctx.target.clone(),
            attempt,
            config: config.clone(),
            inputs: inputs.clone(),
            // Real time: the guest's clock, not the scheduler's.
            ends_at: Some(std::time::Instant::now() + limit.duration()),
        };
        let a_start = ctx.now_ms();
        let run = ctx
            .executor
            .attempt(&plugin, &spec, context, limit.duration());
        let (outcome, capture) = tokio::select! {
            r = run => match r {
                Ok((outcome, capture)) => (Ended::Ran(outcome), Some(capture)),
                Err(e) => (Ended::Sandbox(format!("sandbox could not be set up: {e}")), None),
            },
            _ = wait_true(&mut cancel) => (Ended::Cancelled, None),
        };
        let a_end = ctx.now_ms();
        let (mut att, status) = attempt_report(
            attempt,
            a_start,
            a_end,
            outcome,
            &mut report,
            &limit,
            ctx.pipeline.timeout,
        );
        let (stdout, stderr) = capture
            .as_ref()
            .map(|c| (c.stdout.snapshot(), c.stderr.snapshot()))
            .unwrap_or_default();
        let stdout = mask_captured(&ctx.masker, stdout);
        let stderr = mask_captured(&ctx.masker, stderr);
        if let Some(c) = &capture {
            // Log lines were neutralised and masked as they arrived; this
            // releases those held back to mask a secret split across lines.
            (att.logs, att.logs_dropped) = c.logs.finish(&spec.io, &stage.name);
            crate::effects::merge(&mut report.effects, c.effects.take());
        }
        att.stdout = output_report(&stdout);
        att.stderr = output_report(&stderr);
        let att = ctx.masker.masked(att);
        ctx.recorder.attempt(&stage.name, &att, &stdout, &stderr);
        for (stream, out) in [("stdout", &att.stdout), ("stderr", &att.stderr)] {
            if !out.text.is_empty() {
                ctx.observer.stage_output(&stage.name, stream, &out.text);
            }
            if out.dropped > 0 {
                tracing::warn!(stage = %stage.name, "{stream} over the output limit: {} bytes dropped", out.dropped);
            }
        }
        let cancelled = att.outcome == AttemptEnd::Cancelled;
        report.attempts.push(att);
        report.status = status;

        let retryable = status == StageStatus::Failed && !cancelled;
        if !retryable || n >= stage.retries.attempts {
            break;
        }
        let backoff = stage.retries.backoff * 2u32.saturating_pow(n - 1);
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
        n += 1;
    }
    report.end_ms = Some(ctx.now_ms());
    report
}

/// How an attempt ended, from the scheduler's point of view.
enum Ended {
    Ran(AttemptOutcome),
    Sandbox(String),
    Cancelled,
}

async fn wait_true(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|v| *v).await.is_err() {
        // Sender gone: never fires.
        std::future::pending::<()>().await;
    }
}

fn mask_captured(masker: &Masker, c: Captured) -> Captured {
    if masker.is_empty() {
        return c;
    }
    Captured {
        bytes: masker.mask_lines(&c.bytes, c.dropped > 0),
        dropped: c.dropped,
    }
}

/// Turns an attempt outcome into its report and updates the stage report's
/// summary, checks, outputs and reason from it.
fn attempt_report(
    attempt: u32,
    start_ms: f64,
    end_ms: f64,
    ended: Ended,
    stage: &mut StageReport,
    limit: &AttemptLimit,
    pipeline_timeout: Duration,
) -> (AttemptReport, StageStatus) {
    let mut verdict = None;
    let (kind, message, status) = match ended {
        Ended::Cancelled => (
            AttemptEnd::Cancelled,
            "the run was interrupted".to_string(),
            StageStatus::Cancelled,
        ),
        Ended::Sandbox(message) => (AttemptEnd::SandboxError, message, StageStatus::Failed),
        Ended::Ran(AttemptOutcome::Returned(r)) => {
            let r = decode::decode(r);
            verdict = Some(r.verdict);
            stage.summary = r.summary;
            stage.checks = r.checks;
            stage.outputs = r.outputs;
            let status = match r.verdict {
                Verdict::Pass => StageStatus::Passed,
                Verdict::Fail => StageStatus::Failed,
                Verdict::Inconclusive => StageStatus::Inconclusive,
            };
            // The first check that did not pass says why better than the summary alone.
            let mut message = stage.summary.clone();
            if let Some(c) = stage.checks.iter().find(|c| c.verdict != Verdict::Pass) {
                message = format!("{message}: check `{}` {}: {}", c.name, c.verdict, c.message);
            }
            match r.problem {
                None => (AttemptEnd::Returned, message, status),
                // Over a host cap, or outputs that are not JSON.
                Some(problem) => (AttemptEnd::Returned, problem, StageStatus::Failed),
            }
        }
        Ended::Ran(AttemptOutcome::TimedOut { .. }) => (
            AttemptEnd::TimedOut,
            limit.timed_out(&stage.name, pipeline_timeout),
            StageStatus::Failed,
        ),
        Ended::Ran(AttemptOutcome::MemoryLimit { requested, message }) => (
            AttemptEnd::MemoryLimit,
            format!(
                "memory limit reached: the plugin asked for {requested} bytes in total; raise [stages.{}.limits] memory if this is expected\n{}",
                stage.name,
                neutralize(&message)
            ),
            StageStatus::Failed,
        ),
        Ended::Ran(AttemptOutcome::ResourceLimit { message }) => (
            AttemptEnd::ResourceLimit,
            neutralize(&message),
            StageStatus::Failed,
        ),
        Ended::Ran(AttemptOutcome::Exited { code }) => (
            AttemptEnd::Exited,
            format!(
                "the plugin called exit({code}) instead of returning a report, so the stage has no verdict\n  help: return the report from `run` (valero_sdk::Plugin) rather than exiting the process"
            ),
            StageStatus::Failed,
        ),
        Ended::Ran(AttemptOutcome::Trapped { message }) => (
            AttemptEnd::Trapped,
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
        start_ms,
        end_ms,
        outcome: kind,
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
