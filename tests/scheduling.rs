//! The DAG scheduler: concurrency, skipping, `always` stages, interrupts,
//! retries and outputs flowing downstream.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn diamond_runs_its_middle_stages_concurrently_and_passes_outputs_down() {
    let tk = plugin_lines("testkit");
    let p = format!(
        "{}[stages.top]\n{tk}with = {{ behavior = \"pass\", outputs = {{ version = \"1.2.3\" }} }}\n\
         [stages.left]\n{tk}needs = [\"top\"]\nwith = {{ behavior = \"sleep\", ms = 800 }}\n\
         [stages.right]\n{tk}needs = [\"top\"]\nwith = {{ behavior = \"sleep\", ms = 800 }}\n\
         [stages.bottom]\n{tk}needs = [\"left\", \"right\", \"top\"]\nwith = {{ behavior = \"pass\", read_inputs = [\"top\", \"left\"] }}\n",
        header("diamond")
    );
    let project = Project::new(&p);
    let (code, report, out) = project.run(&["--jobs", "4"]);
    assert_eq!(code, 0, "{}", stderr(&out));
    let t = |s: &str, k: &str| stage(&report, s)[k].as_f64().unwrap();
    // Both middle stages start before either ends: they overlapped.
    assert!(t("left", "start_ms") < t("right", "end_ms"));
    assert!(t("right", "start_ms") < t("left", "end_ms"));
    // And the bottom starts only after both.
    assert!(t("bottom", "start_ms") >= t("left", "end_ms").max(t("right", "end_ms")));
    let whole = t("bottom", "end_ms") - t("top", "start_ms");
    assert!(
        whole < 1500.0,
        "two 800 ms stages took {whole} ms: not concurrent"
    );
    // Outputs of passed needs reach the dependent.
    let inputs = &stage(&report, "bottom")["outputs"]["inputs"];
    assert_eq!(inputs["top"]["version"], "1.2.3", "{inputs}");

    // With --jobs 1 the same stages run one after the other.
    let (code, report, _) = project.run(&["--jobs", "1"]);
    assert_eq!(code, 0);
    let t = |s: &str, k: &str| stage(&report, s)[k].as_f64().unwrap();
    assert!(
        t("left", "end_ms") <= t("right", "start_ms")
            || t("right", "end_ms") <= t("left", "start_ms")
    );
}

#[test]
fn a_failure_skips_dependents_and_always_stages_still_run() {
    let tk = plugin_lines("testkit");
    let p = format!(
        "{}[stages.build]\n{tk}with = {{ behavior = \"fail\", message = \"compiler exploded\" }}\n\
         [stages.deploy]\n{tk}needs = [\"build\"]\nwith = {{ behavior = \"pass\" }}\n\
         [stages.verify]\n{tk}needs = [\"deploy\"]\nwith = {{ behavior = \"pass\" }}\n\
         [stages.lint]\n{tk}with = {{ behavior = \"pass\" }}\n\
         [stages.cleanup]\n{tk}needs = [\"verify\"]\nalways = true\nwith = {{ behavior = \"pass\" }}\n",
        header("failing")
    );
    let project = Project::new(&p);
    let (code, report, out) = project.run(&[]);
    assert_eq!(code, 1, "{}", stderr(&out));
    assert_eq!(report["outcome"], "failed");
    assert_eq!(stage(&report, "build")["status"], "failed");
    assert!(
        stage(&report, "build")["checks"][0]["message"]
            .as_str()
            .unwrap()
            .contains("compiler exploded")
    );
    assert_eq!(stage(&report, "deploy")["status"], "skipped");
    assert_eq!(
        stage(&report, "deploy")["reason"],
        "needs `build`, which failed"
    );
    assert_eq!(stage(&report, "verify")["status"], "skipped");
    assert_eq!(
        stage(&report, "verify")["reason"],
        "needs `deploy`, which was skipped"
    );
    assert_eq!(stage(&report, "lint")["status"], "passed");
    assert_eq!(stage(&report, "cleanup")["status"], "passed");
}

#[test]
fn continue_on_error_lets_dependents_run() {
    let tk = plugin_lines("testkit");
    let p = format!(
        "{}[stages.flaky]\n{tk}continue_on_error = true\nwith = {{ behavior = \"fail\" }}\n\
         [stages.next]\n{tk}needs = [\"flaky\"]\nwith = {{ behavior = \"pass\" }}\n",
        header("coe")
    );
    let (code, report, _) = Project::new(&p).run(&[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(stage(&report, "flaky")["status"], "failed");
    assert_eq!(stage(&report, "next")["status"], "passed");
}

#[test]
fn retries_back_off_and_never_pass_the_pipeline_deadline() {
    let tk = plugin_lines("testkit");
    let p = format!(
        "[pipeline]\nname = \"retry\"\ndefault_target = \"local\"\ntimeout = \"3s\"\n[targets.local]\n\
         [stages.flaky]\n{tk}retries = {{ attempts = 5, backoff = \"500ms\" }}\nwith = {{ behavior = \"fail\" }}\n"
    );
    let started = Instant::now();
    let (code, report, _) = Project::new(&p).run(&[]);
    let took = started.elapsed();
    assert_eq!(code, 1);
    let s = stage(&report, "flaky");
    let attempts = s["attempts"].as_array().unwrap();
    // Backoffs double (0.5 s, 1 s, 2 s, …): within the 3 s deadline (which
    // also covers plugin loading, slower on a cold cache) at most 3 attempts
    // fit, at least 2; the one that would pass the deadline is not started.
    assert!((2..=3).contains(&attempts.len()), "{s:#}");
    for a in attempts {
        assert!(
            a["end_ms"].as_f64().unwrap() <= 3100.0,
            "an attempt ran past the deadline: {s:#}"
        );
    }
    let gap = attempts[1]["start_ms"].as_f64().unwrap() - attempts[0]["end_ms"].as_f64().unwrap();
    assert!(gap >= 500.0, "first backoff was {gap} ms");
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("would pass the pipeline deadline"),
        "{s:#}"
    );
    assert!(took < Duration::from_secs(10));
}

/// A plugin learns how long its attempt has left: the stage's timeout, or
/// what is left of the pipeline deadline when that ends first.
#[test]
fn a_plugin_sees_the_time_its_attempt_has_left() {
    let tk = plugin_lines("testkit");
    let p = format!(
        "[pipeline]\nname = \"left\"\ndefault_target = \"local\"\ntimeout = \"1m\"\n[targets.local]\n\
         [stages.short]\n{tk}timeout = \"20s\"\nwith = {{ behavior = \"remaining\" }}\n\
         [stages.long]\n{tk}timeout = \"10m\"\nwith = {{ behavior = \"remaining\" }}\n"
    );
    let (code, report, out) = Project::new(&p).run(&[]);
    assert_eq!(code, 0, "{}", stderr(&out));
    let left = |s: &str| {
        stage(&report, s)["outputs"]["remaining_ms"]
            .as_u64()
            .unwrap()
    };
    // Loading and starting the plugin take some of it; never more than the limit.
    assert!(
        (10_000..=20_000).contains(&left("short")),
        "{}",
        left("short")
    );
    assert!(
        (30_000..=60_000).contains(&left("long")),
        "{}",
        left("long")
    );
}

/// A timed-out attempt says which limit ended it and where to raise it.
#[test]
fn a_timeout_names_the_limit_that_fired() {
    let tk = plugin_lines("testkit");
    let p = format!(
        "[pipeline]\nname = \"limits\"\ndefault_target = \"local\"\ntimeout = \"4s\"\n[targets.local]\n\
         [stages.own]\n{tk}timeout = \"1s\"\nwith = {{ behavior = \"sleep\", ms = 30000 }}\n\
         [stages.late]\n{tk}timeout = \"1m\"\nwith = {{ behavior = \"sleep\", ms = 30000 }}\n"
    );
    let (code, report, _) = Project::new(&p).run(&[]);
    assert_eq!(code, 1);
    let own = stage(&report, "own")["attempts"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        own.starts_with("timed out after 1s: the stage's timeout"),
        "{own}"
    );
    assert!(
        own.contains("raise `timeout` in [stages.own] (now 1s)"),
        "{own}"
    );
    let late = stage(&report, "late")["attempts"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        late.contains(": the pipeline deadline was reached (the stage's own timeout is 1m)"),
        "{late}"
    );
    assert!(
        late.contains("raise `timeout` in [pipeline] (now 4s)"),
        "{late}"
    );
}

#[cfg(unix)]
#[test]
fn always_stages_run_after_an_interrupt() {
    let tk = plugin_lines("testkit");
    let p = format!(
        "{}[stages.deploy]\n{tk}with = {{ behavior = \"sleep\", ms = 30000 }}\n\
         [stages.verify]\n{tk}needs = [\"deploy\"]\nwith = {{ behavior = \"pass\" }}\n\
         [stages.cleanup]\n{tk}needs = [\"verify\"]\nalways = true\nwith = {{ behavior = \"pass\" }}\n",
        header("interrupted")
    );
    let project = Project::new(&p);
    let mut child = project
        .command(&["run", "--progress", "plain", "--report", "json=report.json"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the deploy stage is running, then Ctrl-C.
    let events = || {
        std::fs::read_dir(project.path().join(".valero/runs"))
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .and_then(|e| std::fs::read_to_string(e.path().join("events.jsonl")).ok())
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !events().contains("\"stage_started\",\"stage\":\"deploy\"") {
        assert!(Instant::now() < deadline, "deploy never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    let sent = Instant::now();
    unsafe_kill(child.id(), 2);
    let status = child.wait().unwrap();
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "interrupt took {:?}",
        sent.elapsed()
    );
    assert_eq!(status.code(), Some(130));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["outcome"], "interrupted");
    assert_eq!(report["interruption"]["cause"], "signal");
    assert_eq!(stage(&report, "deploy")["status"], "cancelled");
    assert_eq!(stage(&report, "verify")["status"], "cancelled");
    assert_eq!(stage(&report, "cleanup")["status"], "passed");
    // `runs list` calls a Ctrl-C'd run interrupted, not failed.
    let list = project.command(&["runs", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    let row = list.lines().nth(1).unwrap_or_default();
    assert!(row.contains(" interrupted "), "{list}");
}

#[cfg(unix)]
fn unsafe_kill(pid: u32, signal: i32) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}
