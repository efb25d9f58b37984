//! Scheduling under a paused clock: a scripted executor stands in for the
//! wasmtime runtime (see [`Executor`]), so concurrency, `--jobs`, skips,
//! `always`, retries against the deadline, timeouts and interrupts are
//! checked in virtual time — no plugin, no real sleeping.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::effects::EffectLog;
use crate::host::capabilities::{Registry, RunScope};
use crate::host::log::LogBuffer;
use crate::pipeline::{Digest, LoadOptions, Target};
use crate::report::decode::Report;
use crate::sandbox::{CappedPipe, Capture, SandboxError};

/// Runs each attempt as its stage's `with` says: `ms` of (virtual) work,
/// then `verdict` (default pass); the first `fail_times` attempts fail.
struct Scripted {
    t0: Instant,
    /// (stage, attempt, start, end) of every attempt, in virtual time from `t0`.
    attempts: Mutex<Vec<(String, u32, Duration, Duration)>>,
}

impl Executor for Scripted {
    type Plugin = Digest;

    fn digest(plugin: &Digest) -> &Digest {
        plugin
    }

    async fn attempt(
        &self,
        _plugin: &Digest,
        _spec: &SandboxSpec<'_>,
        context: StageContext,
        timeout: Duration,
    ) -> Result<(AttemptOutcome, Capture), SandboxError> {
        let with: serde_json::Value = serde_json::from_str(&context.config).unwrap();
        let work = Duration::from_millis(with["ms"].as_u64().unwrap_or(0));
        let fail_times = with["fail_times"].as_u64().unwrap_or(0);
        let start = self.t0.elapsed();
        let done = tokio::time::timeout(timeout, tokio::time::sleep(work)).await;
        self.attempts.lock().unwrap().push((
            context.stage.clone(),
            context.attempt,
            start,
            self.t0.elapsed(),
        ));
        let verdict = if with["verdict"] == "fail" || u64::from(context.attempt) <= fail_times {
            crate::report::Verdict::Fail
        } else {
            crate::report::Verdict::Pass
        };
        let outcome = match done {
            Err(_) => AttemptOutcome::TimedOut { timeout },
            Ok(()) => AttemptOutcome::Returned(Report {
                verdict,
                summary: format!("scripted {verdict}"),
                checks: Vec::new(),
                outputs: "null".into(),
            }),
        };
        let capture = Capture {
            stdout: CappedPipe::new(1024),
            stderr: CappedPipe::new(1024),
            logs: LogBuffer::new(1024),
            effects: EffectLog::default(),
        };
        Ok((outcome, capture))
    }
}

struct Quiet;
impl Observer for Quiet {}

struct Run {
    report: RunReport,
    attempts: Vec<(String, u32, Duration, Duration)>,
    took: Duration,
}

impl Run {
    fn stage(&self, name: &str) -> &StageReport {
        self.report.stage(name).unwrap()
    }

    fn starts(&self, stage: &str) -> Vec<Duration> {
        self.attempts
            .iter()
            .filter(|a| a.0 == stage)
            .map(|a| a.2)
            .collect()
    }
}

/// Runs `stages` (pipeline.toml text, `plugin = "builtin:fake"` added to
/// each) with `jobs` at once; `interrupt_at` fires a soft interrupt then.
async fn run(timeout: &str, stages: &str, jobs: usize, interrupt_at: Option<Duration>) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[pipeline]\nname = \"sched\"\ndefault_target = \"local\"\ntimeout = \"{timeout}\"\n[targets.local]\n\n{}",
        stages
            .lines()
            .map(|l| if l.starts_with("[stages.") {
                format!("{l}\nplugin = \"builtin:fake\"\n")
            } else {
                format!("{l}\n")
            })
            .collect::<String>()
    );
    let digest = Digest::of(b"fake");
    let opts = LoadOptions {
        builtin_plugins: BTreeMap::from([("fake".to_string(), digest)]),
        check_plugin_files: false,
    };
    let pipeline = Arc::new(
        crate::pipeline::parse_str(&text, &dir.path().join("pipeline.toml"), &opts)
            .unwrap_or_else(|d| panic!("{d:?}")),
    );
    let plan = crate::plan::plan(&pipeline, "local").unwrap();
    let recorder = Recorder::create(&dir.path().join(".valero"), "run-1", &text, 0).unwrap();
    let masker = Arc::new(Masker::default());
    let capabilities = Arc::new(Registry::for_run(RunScope {
        target: &Target::default(),
        run_dir: dir.path(),
        base_dir: dir.path(),
        secrets: &BTreeMap::new(),
        masker: masker.clone(),
        plan_only: false,
    }));
    let t0 = Instant::now();
    let executor = Arc::new(Scripted {
        t0,
        attempts: Mutex::default(),
    });
    let ctx = Arc::new(RunContext {
        executor: executor.clone(),
        pipeline: pipeline.clone(),
        recorder: Arc::new(recorder),
        run_id: "run-1".into(),
        target: "local".into(),
        started: t0,
        started_at: String::new(),
        time_offset: Duration::ZERO,
        deadline: t0 + pipeline.timeout,
        secrets: BTreeMap::new(),
        masker,
        observer: Arc::new(Quiet),
        capabilities,
        previous: BTreeMap::new(),
        effects_gone: BTreeMap::new(),
        resumed: 0,
        excluded: Vec::new(),
    });
    let plugins = pipeline
        .stages
        .iter()
        .map(|s| {
            let load = LoadReport {
                source: crate::report::LoadSource::Cache,
                ms: 0.0,
            };
            (s.name.clone(), PluginSlot::Loaded(digest, load))
        })
        .collect();
    let (interrupt, sender) = Interrupt::channel();
    if let Some(at) = interrupt_at {
        tokio::spawn(async move {
            tokio::time::sleep(at).await;
            sender.interrupt();
            // Keep the sender: dropping it would read as "never interrupted again".
            std::future::pending::<()>().await;
        });
    }
    let report = execute(ctx, &plan, plugins, jobs, interrupt).await;
    let took = t0.elapsed();
    let attempts = executor.attempts.lock().unwrap().clone();
    Run {
        report,
        attempts,
        took,
    }
}

const S: fn(u64) -> Duration = Duration::from_secs;

#[tokio::test(start_paused = true)]
async fn independent_stages_run_together_up_to_jobs() {
    let stages = "[stages.a]\nwith = { ms = 1000 }\n[stages.b]\nwith = { ms = 1000 }\n\
                  [stages.c]\nwith = { ms = 1000 }\n";
    let all = run("1m", stages, 8, None).await;
    assert_eq!(all.report.outcome, RunOutcome::Passed);
    assert_eq!(all.took, S(1), "three 1 s stages at once");
    for s in ["a", "b", "c"] {
        assert_eq!(all.starts(s), [S(0)]);
    }
    let two = run("1m", stages, 2, None).await;
    assert_eq!(two.took, S(2), "--jobs 2: the third waits for a slot");
    let mut starts: Vec<Duration> = two.attempts.iter().map(|a| a.2).collect();
    starts.sort();
    assert_eq!(starts, [S(0), S(0), S(1)]);
}

#[tokio::test(start_paused = true)]
async fn a_stage_starts_when_its_needs_passed_and_is_skipped_when_one_failed() {
    let stages = "[stages.build]\nwith = { ms = 2000 }\n\
                  [stages.deploy]\nneeds = [\"build\"]\nwith = { ms = 1000, verdict = \"fail\" }\n\
                  [stages.verify]\nneeds = [\"deploy\"]\nwith = { ms = 1000 }\n\
                  [stages.cleanup]\nneeds = [\"verify\"]\nalways = true\nwith = { ms = 500 }\n";
    let r = run("1m", stages, 4, None).await;
    assert_eq!(r.starts("deploy"), [S(2)], "after build's 2 s");
    assert_eq!(r.stage("deploy").status, StageStatus::Failed);
    let verify = r.stage("verify");
    assert_eq!(verify.status, StageStatus::Skipped);
    assert_eq!(
        verify.reason.as_deref(),
        Some("needs `deploy`, which failed")
    );
    assert!(r.starts("verify").is_empty());
    assert_eq!(
        r.stage("cleanup").status,
        StageStatus::Passed,
        "always runs"
    );
    assert_eq!(r.starts("cleanup"), [S(3)]);
    assert_eq!(r.report.outcome, RunOutcome::Failed);
}

#[tokio::test(start_paused = true)]
async fn retries_back_off_exponentially_and_stop_before_the_deadline() {
    let stages = "[stages.flaky]\nretries = { attempts = 6, backoff = \"1s\" }\n\
                  with = { verdict = \"fail\" }\n\
                  [stages.steady]\nretries = { attempts = 3, backoff = \"1s\" }\n\
                  with = { fail_times = 2 }\n";
    let r = run("10s", stages, 4, None).await;
    // Backoffs 1, 2, 4 s; the next (8 s, at 7 s) would pass the 10 s deadline.
    assert_eq!(r.starts("flaky"), [S(0), S(1), S(3), S(7)]);
    let flaky = r.stage("flaky");
    assert!(
        flaky
            .reason
            .as_deref()
            .unwrap()
            .contains("not retried: the next attempt (after 8s) would pass the pipeline deadline"),
        "{:?}",
        flaky.reason
    );
    // The granted control: fails twice, passes on the third attempt.
    assert_eq!(r.starts("steady"), [S(0), S(1), S(3)]);
    assert_eq!(r.stage("steady").status, StageStatus::Passed);
}

#[tokio::test(start_paused = true)]
async fn a_timeout_names_the_limit_that_fired_and_the_deadline_skips_the_rest() {
    let stages = "[stages.own]\ntimeout = \"2s\"\ncontinue_on_error = true\nwith = { ms = 60000 }\n\
                  [stages.long]\ntimeout = \"1m\"\ncontinue_on_error = true\nwith = { ms = 60000 }\n\
                  [stages.post]\nneeds = [\"long\"]\nwith = { ms = 1000 }\n\
                  [stages.after]\nneeds = [\"own\"]\nwith = { ms = 1000 }\n\
                  [stages.late]\nneeds = [\"after\"]\nwith = { ms = 5000 }\n";
    let r = run("5s", stages, 4, None).await;
    let own = &r.stage("own").attempts[0];
    assert_eq!(own.outcome, AttemptEnd::TimedOut);
    assert!(
        own.message
            .starts_with("timed out after 2s: the stage's timeout"),
        "{}",
        own.message
    );
    let long = &r.stage("long").attempts[0];
    assert_eq!(long.outcome, AttemptEnd::TimedOut);
    assert!(
        long.message
            .starts_with("timed out after 5s: the pipeline deadline was reached"),
        "{}",
        long.message
    );
    // `after` starts at 2 s (its need failed, but may: continue_on_error);
    // `late` gets what is left of the deadline after it, and times out on it.
    assert_eq!(r.starts("after"), [S(2)]);
    assert_eq!(r.starts("late"), [S(3)]);
    assert_eq!(r.stage("late").attempts[0].outcome, AttemptEnd::TimedOut);
    // `post` is ready only at the deadline: skipped, not started.
    let post = r.stage("post");
    assert_eq!(post.status, StageStatus::Skipped);
    assert_eq!(
        post.reason.as_deref(),
        Some("the pipeline deadline was reached")
    );
    assert!(r.starts("post").is_empty());
    assert_eq!(r.took, S(5));
}

#[tokio::test(start_paused = true)]
async fn an_interrupt_cancels_what_runs_and_always_stages_still_run() {
    let stages = "[stages.deploy]\nwith = { ms = 30000 }\n\
                  [stages.verify]\nneeds = [\"deploy\"]\nwith = { ms = 1000 }\n\
                  [stages.cleanup]\nneeds = [\"verify\"]\nalways = true\nwith = { ms = 500 }\n";
    let r = run("1m", stages, 4, Some(S(3))).await;
    assert_eq!(r.report.outcome, RunOutcome::Interrupted);
    let deploy = r.stage("deploy");
    assert_eq!(deploy.status, StageStatus::Cancelled);
    assert_eq!(deploy.attempts[0].outcome, AttemptEnd::Cancelled);
    assert_eq!(r.stage("verify").status, StageStatus::Cancelled);
    assert_eq!(r.stage("cleanup").status, StageStatus::Passed);
    assert_eq!(r.starts("cleanup"), [S(3)]);
    assert!(r.took < S(4), "{:?}", r.took);
}
