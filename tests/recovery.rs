//! Recovery after a crash: the runner is killed (SIGKILL) at every point of a
//! run and resumed; interrupted runs say so; a run that is still going is
//! not resumed twice; concurrent runs keep their records apart; a resumed
//! run keeps the pipeline deadline; a full disk fails the run clearly.
//!
//! The pipelines are small and real: test plugins, and the `processes`
//! capability with Python's http.server as the service whose life ends with
//! the run.

#![cfg(unix)]

mod common;

use std::net::TcpListener;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// The one run directory of a project.
fn run_dir(project: &Project) -> Option<PathBuf> {
    std::fs::read_dir(project.path().join(".valero/runs"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .next()
}

fn events(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn event_stage(e: &Value) -> &str {
    e["stage"]
        .as_str()
        .or(e["stage"]["name"].as_str())
        .unwrap_or_default()
}

/// A pipeline with every kind of stage resume must tell apart: stages with
/// no effects (`source`, `lint`), a job (`build`, its effect is done when it
/// ends), services that die with the run (`deploy`), stages that need them
/// (`probe`, `verify`) and an `always` cleanup.
fn pipeline(port: u16) -> String {
    let tk = plugin_lines("testkit");
    format!(
        "[pipeline]\nname = \"recovery\"\ndefault_target = \"local\"\ntimeout = \"2m\"\n\n\
         [targets.local.services.web]\nprogram = \"python3\"\nargs = [\"-m\", \"http.server\", \"{port}\", \"--bind\", \"127.0.0.1\"]\nport = {port}\nready = \"http://127.0.0.1:{port}/\"\n\n\
         [targets.local.jobs.compile]\nprogram = \"sh\"\nargs = [\"-c\", \"echo compiled\"]\n\n\
         [stages.source]\n{tk}with = {{ behavior = \"pass\", outputs = {{ revision = \"abc\" }} }}\n\
         [stages.lint]\n{tk}with = {{ behavior = \"pass\" }}\n\
         [stages.build]\nplugin = \"builtin:deploy-local\"\nneeds = [\"source\"]\nwith = {{ action = \"build\" }}\ngrants = {{ processes = true }}\n\
         [stages.deploy]\nplugin = \"builtin:deploy-local\"\nneeds = [\"build\"]\nwith = {{ action = \"deploy\", ready_timeout_ms = 15000 }}\ngrants = {{ processes = true, http = [\"http://127.0.0.1:*\"] }}\n\
         [stages.probe]\nplugin = \"builtin:http-probe\"\nneeds = [\"deploy\"]\nwith = {{ urls = [\"http://127.0.0.1:{port}/\"] }}\ngrants = {{ http = [\"http://127.0.0.1:{port}\"] }}\n\
         [stages.verify]\n{tk}needs = [\"probe\"]\nwith = {{ behavior = \"pass\", read_inputs = [\"probe\"] }}\n\
         [stages.cleanup]\nplugin = \"builtin:deploy-local\"\nneeds = [\"verify\"]\nalways = true\nwith = {{ action = \"stop\" }}\ngrants = {{ processes = true }}\n"
    )
}

/// Stages whose result outlives the run: reused on resume when they passed.
const PERSISTENT: [&str; 3] = ["source", "lint", "build"];
/// `deploy` started services (they end with the run); the others need it.
const RUN_SCOPED: [&str; 3] = ["deploy", "probe", "verify"];

/// Kills the runner after event `n` (torn: half-written), resumes, checks.
fn kill_and_resume(n: usize, torn: bool) -> Result<(), String> {
    let port = free_port();
    let project = Project::new(&pipeline(port));
    let mut first = project.command(&["run", "--progress", "plain"]);
    first
        .env("VALERO_TEST_KILL_AFTER_EVENT", n.to_string())
        .stderr(Stdio::null())
        .stdout(Stdio::null());
    if torn {
        first.env("VALERO_TEST_KILL_TORN", "1");
    }
    let status = first.status().unwrap();
    let at = format!("kill after event {n}{}", if torn { " (torn)" } else { "" });
    if status.signal() != Some(9) {
        return Err(format!("{at}: the runner was not killed: {status:?}"));
    }
    let dir = run_dir(&project).ok_or(format!("{at}: no run records"))?;
    let id = dir.file_name().unwrap().to_string_lossy().into_owned();
    let before = events(&dir);
    // The runner's services get SIGTERM when it dies; give them a moment.
    let wait = Instant::now() + Duration::from_secs(10);
    while !port_free(port) && Instant::now() < wait {
        std::thread::sleep(Duration::from_millis(20));
    }

    // `runs list` and `runs show` read the records of the killed run.
    let list = project.command(&["runs", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    if !list
        .lines()
        .any(|l| l.starts_with(&id) && l.contains(" interrupted "))
    {
        return Err(format!(
            "{at}: `runs list` does not say interrupted:\n{list}"
        ));
    }
    let show = project
        .command(&["runs", "show", &id, "--json"])
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&show.stdout).map_err(|e| {
        format!(
            "{at}: `runs show --json` is not JSON ({e}): {}",
            stderr(&show)
        )
    })?;
    if shown["outcome"] != "interrupted" || shown["interruption"]["cause"] != "lost" {
        return Err(format!("{at}: runs show: {shown:#}"));
    }
    if torn && !stderr(&show).contains("torn last line") {
        return Err(format!(
            "{at}: no warning about the torn line: {}",
            stderr(&show)
        ));
    }

    let (code, report, out) = project.run(&["--resume", &id]);
    if code != 0 {
        return Err(format!("{at}: resume exited {code}:\n{}", stderr(&out)));
    }
    if report["outcome"] != "passed" || report["stages"].as_array().map(Vec::len) != Some(7) {
        return Err(format!("{at}: resumed report: {report:#}"));
    }
    // No passed stage with persistent effects ran twice; run-scoped ones
    // (and what needs them) ran again.
    let after = events(&dir);
    let passed_before = |s: &str| {
        before.iter().any(|e| {
            e["event"] == "stage_finished"
                && event_stage(e) == s
                && e["stage"]["status"] == "passed"
        })
    };
    let started_after = |s: &str| {
        after[before.len()..]
            .iter()
            .filter(|e| e["event"] == "stage_started" && event_stage(e) == s)
            .count()
    };
    for s in PERSISTENT {
        if passed_before(s) && started_after(s) > 0 {
            return Err(format!("{at}: `{s}` passed before the kill and ran again"));
        }
    }
    for s in RUN_SCOPED {
        if started_after(s) != 1 {
            return Err(format!(
                "{at}: `{s}` did not run again on resume: {report:#}"
            ));
        }
    }
    if passed_before("deploy") {
        let why = stage(&report, "deploy")["resume"]["why"].clone();
        if !why
            .as_str()
            .unwrap_or_default()
            .contains("its services ended with the previous run")
        {
            return Err(format!("{at}: deploy's resume note: {why}"));
        }
    }
    Ok(())
}

#[test]
fn a_run_killed_at_any_of_its_events_resumes_green_without_redoing_persistent_work() {
    // A full run records 1 + 3 per stage + 1 events; kill after each but the
    // last (then the run is finished), and tear a few lines mid-write.
    let points: Vec<(usize, bool)> = (1..=22)
        .map(|n| (n, false))
        .chain([(3, true), (10, true), (16, true)])
        .collect();
    let started = Instant::now();
    let failures: Vec<String> = std::thread::scope(|scope| {
        let chunks: Vec<Vec<(usize, bool)>> = (0..3)
            .map(|i| points.iter().skip(i).step_by(3).copied().collect())
            .collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .into_iter()
                        .filter_map(|(n, torn)| kill_and_resume(n, torn).err())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    eprintln!("{} kill points in {:?}", points.len(), started.elapsed());
}

#[test]
fn a_resumed_run_keeps_what_is_left_of_the_pipeline_deadline() {
    let tk = plugin_lines("testkit");
    let p = format!(
        "[pipeline]\nname = \"deadline\"\ndefault_target = \"local\"\ntimeout = \"4s\"\n\n[targets.local]\n\n\
         [stages.first]\n{tk}with = {{ behavior = \"sleep\", ms = 2500 }}\n\
         [stages.second]\n{tk}needs = [\"first\"]\nwith = {{ behavior = \"sleep\", ms = 3000 }}\n"
    );
    let project = Project::new(&p);
    // Killed as `second` starts (event 5), 2.5 s of the 4 s spent.
    let status = project
        .command(&["run", "--progress", "plain"])
        .env("VALERO_TEST_KILL_AFTER_EVENT", "5")
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.signal(), Some(9));
    let id = run_dir(&project)
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let (code, report, out) = project.run(&["--resume", &id]);
    // A fresh 4 s deadline would let the 3 s stage pass.
    assert_eq!(code, 1, "{}", stderr(&out));
    let second = stage(&report, "second");
    assert_eq!(second["status"], "failed", "{report:#}");
    assert!(
        second["reason"].as_str().unwrap().contains("timed out"),
        "{second:#}"
    );
    assert_eq!(stage(&report, "first")["resume"]["reused"], true);
}

#[test]
fn a_run_that_is_still_going_is_not_resumed_and_shows_as_running_then_interrupted() {
    let tk = plugin_lines("testkit");
    let p = format!(
        "{}[stages.slow]\n{tk}with = {{ behavior = \"sleep\", ms = 30000 }}\n",
        header("busy")
    );
    let project = Project::new(&p);
    let mut child = project
        .command(&["run", "--progress", "plain"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let dir = loop {
        if let Some(dir) = run_dir(&project)
            && events(&dir).iter().any(|e| e["event"] == "stage_started")
        {
            break dir;
        }
        assert!(Instant::now() < deadline, "the run never started its stage");
        std::thread::sleep(Duration::from_millis(20));
    };
    let id = dir.file_name().unwrap().to_string_lossy().into_owned();
    let pid = child.id().to_string();

    let out = project.command(&["run", "--resume", &id]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("is still going"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("process {pid}")),
        "{}",
        stderr(&out)
    );
    let list = project.command(&["runs", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(list.contains(&format!("running (pid {pid})")), "{list}");

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let list = project.command(&["runs", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    let row = list
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_default();
    assert!(row.contains(" interrupted "), "{list}");
    assert!(row.contains("last event: stage `slow` started"), "{list}");
    let show = project.command(&["runs", "show", &id]).output().unwrap();
    let show = String::from_utf8_lossy(&show.stdout).into_owned();
    assert!(show.contains("interrupted"), "{show}");
    assert!(
        show.contains(&format!("valero run --resume {id}")),
        "{show}"
    );
}

#[test]
fn two_runs_of_one_pipeline_at_once_keep_their_records_apart() {
    let tk = plugin_lines("testkit");
    let p = format!(
        "{}[stages.a]\n{tk}with = {{ behavior = \"sleep\", ms = 300 }}\n\
         [stages.b]\n{tk}needs = [\"a\"]\nwith = {{ behavior = \"pass\" }}\n",
        header("twice")
    );
    let project = Project::new(&p);
    let children: Vec<_> = (0..2)
        .map(|_| {
            project
                .command(&["run", "--progress", "plain"])
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let runs: Vec<PathBuf> = std::fs::read_dir(project.path().join(".valero/runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(runs.len(), 2, "{runs:?}");
    for dir in runs {
        let id = dir.file_name().unwrap().to_string_lossy().into_owned();
        let events = events(&dir);
        let starts: Vec<&Value> = events
            .iter()
            .filter(|e| e["event"] == "run_started")
            .collect();
        assert_eq!(starts.len(), 1, "{events:#?}");
        assert_eq!(starts[0]["run_id"], id.as_str());
        assert_eq!(events.len(), 8, "one run's events only: {events:#?}");
    }
}

#[test]
fn a_full_disk_fails_the_run_clearly_and_keeps_earlier_records() {
    // A small tmpfs as the state directory, in a user and mount namespace of
    // the test's own (no root needed where unprivileged namespaces are on).
    if !std::process::Command::new("unshare")
        .args(["-Urm", "true"])
        .status()
        .is_ok_and(|s| s.success())
    {
        eprintln!("SKIPPED: unprivileged user namespaces are not available (`unshare -Urm`)");
        return;
    }
    let tk = plugin_lines("testkit");
    let p = format!(
        "{}[stages.first]\n{tk}with = {{ behavior = \"pass\" }}\n\
         [stages.noisy]\n{tk}needs = [\"first\"]\nwith = {{ behavior = \"flood\", bytes = 400000 }}\n\
         [stages.after]\n{tk}needs = [\"noisy\"]\nwith = {{ behavior = \"pass\" }}\n",
        header("full")
    );
    let project = Project::new(&p);
    let state = project.path().join("state");
    let kept = project.path().join("kept");
    std::fs::create_dir_all(&state).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=200k tmpfs {state} && {bin} run --progress plain --state-dir {state}; code=$?; cp -r {state}/runs {kept}; exit $code",
        state = state.display(),
        kept = kept.display(),
        bin = valero_bin(),
    );
    let out = std::process::Command::new("unshare")
        .args(["-Urm", "sh", "-c", &script])
        .current_dir(project.path())
        .env("VALERO_CACHE_DIR", &project.cache)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("cannot write the run records"), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    let dir = std::fs::read_dir(&kept)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let events = events(&dir);
    assert!(
        events.iter().any(|e| e["event"] == "stage_finished"
            && event_stage(e) == "first"
            && e["stage"]["status"] == "passed"),
        "the records of `first` were lost: {events:#?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| e["event"] == "stage_started" && event_stage(e) == "after"),
        "a stage started after the records failed: {events:#?}"
    );
}
