//! The main job: the root pipeline.toml deploys the seven NeuroERP services
//! on the `local` target, verifies them and stops them again — on SQLite,
//! and on PostgreSQL when `VALERO_TEST_POSTGRES_URL` is set (.ci/run starts
//! one), and once killed mid-run and resumed. The fleet binary is the one
//! `cargo test` builds for the workspace.

mod common;

use std::path::{Path, PathBuf};

use common::*;

const PORTS: std::ops::RangeInclusive<u16> = 8101..=8107;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// target/debug/neuroerp, next to the test's own deps directory.
fn fleet_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("neuroerp");
    assert!(
        bin.exists(),
        "{} is missing: run the workspace tests (`cargo test`), which build the fleet",
        bin.display()
    );
    bin
}

/// The root pipeline, run from a temporary copy that uses the test build of
/// the fleet (the release build is the `build` stage's job, skipped here).
fn root_pipeline() -> Project {
    let text = std::fs::read_to_string(repo().join("pipeline.toml")).unwrap();
    let text = text.replace(
        "\"target/release/neuroerp\"",
        &format!("{:?}", fleet_binary().display().to_string()),
    );
    assert!(!text.contains("target/release/neuroerp"));
    let project = Project::new(&text);
    // The API suites and scenarios the pipeline reads, next to it as in the repo.
    for dir in ["examples/neuroerp/api", "examples/neuroerp/e2e"] {
        copy_dir(&repo(), project.path(), dir);
    }
    project
}

fn any_listening() -> Vec<u16> {
    PORTS
        .filter(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok())
        .collect()
}

fn run_main_job(extra_env: &[(&str, &str)]) {
    assert_eq!(
        any_listening(),
        Vec::<u16>::new(),
        "fleet ports busy before the run"
    );
    let project = root_pipeline();
    let report_path = project.path().join("report.json");
    let mut cmd = project.command(&[
        "run",
        "--progress",
        "plain",
        "--skip",
        "source,build",
        "--report",
        &format!("json={}", report_path.display()),
    ]);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap_or_default())
            .unwrap_or_default();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let deploy = stage(&report, "deploy");
    assert_eq!(deploy["checks"].as_array().unwrap().len(), 7, "{deploy:#}");
    let health = stage(&report, "health");
    assert_eq!(health["checks"].as_array().unwrap().len(), 14);
    for name in ["health", "databases", "api", "e2e"] {
        assert_eq!(
            stage(&report, name)["status"],
            "passed",
            "{:#}",
            stage(&report, name)
        );
    }
    // 7 databases x (connect, version, latency, migrations [, connections on PostgreSQL]).
    let databases = stage(&report, "databases")["checks"]
        .as_array()
        .unwrap()
        .len();
    assert!(
        databases == 28 || databases == 35,
        "{databases} database checks"
    );
    assert!(stage(&report, "api")["checks"].as_array().unwrap().len() >= 40);
    assert_eq!(stage(&report, "e2e")["checks"].as_array().unwrap().len(), 8);
    assert_eq!(stage(&report, "cleanup")["status"], "passed");
    assert_eq!(
        any_listening(),
        Vec::<u16>::new(),
        "services left running after the run"
    );
}

/// The main job killed (SIGKILL) as `api` starts, then resumed: the
/// services died with the runner, so `deploy` runs again (its effects were
/// run-scoped) and everything after it; `runs list` says interrupted.
#[cfg(unix)]
fn kill_then_resume() {
    use std::os::unix::process::ExitStatusExt;
    let project = root_pipeline();
    let skip = ["--skip", "source,build"];
    // run_started, then started/attempt/finished of deploy, health and
    // databases: event 11 is `api` starting.
    let status = project
        .command(&["run", "--progress", "plain", skip[0], skip[1]])
        .env("VALERO_TEST_KILL_AFTER_EVENT", "11")
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.signal(), Some(9), "{status:?}");
    let id = std::fs::read_dir(project.path().join(".valero/runs"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .file_name()
        .to_string_lossy()
        .into_owned();
    // The services end with the runner.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !any_listening().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        any_listening(),
        Vec::<u16>::new(),
        "services outlived the killed runner"
    );
    let list = project.command(&["runs", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(
        list.lines()
            .any(|l| l.starts_with(&id) && l.contains(" interrupted ")),
        "{list}"
    );

    let (code, report, out) = project.run(&["--resume", &id, skip[0], skip[1]]);
    assert_eq!(code, 0, "{report:#}\n{}", stderr(&out));
    let deploy = stage(&report, "deploy");
    assert_eq!(deploy["resume"]["reused"], false, "{deploy:#}");
    assert!(
        deploy["resume"]["why"]
            .as_str()
            .unwrap()
            .contains("its services ended with the previous run"),
        "{deploy:#}"
    );
    assert_eq!(deploy["effects"].as_array().unwrap().len(), 7, "{deploy:#}");
    for name in ["health", "databases", "api", "e2e", "cleanup"] {
        let s = stage(&report, name);
        assert_eq!(s["status"], "passed", "{s:#}");
        assert_eq!(s["resume"]["reused"], false, "{s:#}");
    }
    assert_eq!(
        any_listening(),
        Vec::<u16>::new(),
        "services left running after the resumed run"
    );
}

/// The fleet listens on fixed ports: its tests take turns.
static FLEET_PORTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn the_root_pipeline_deploys_verifies_and_stops_the_fleet() {
    let _turn = FLEET_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    run_main_job(&[]);
    #[cfg(unix)]
    kill_then_resume();
}

#[test]
#[cfg_attr(
    not(valero_test_postgres),
    ignore = "needs PostgreSQL: set VALERO_TEST_POSTGRES_URL (.ci/run does)"
)]
fn the_root_pipeline_runs_the_fleet_on_postgresql() {
    let _turn = FLEET_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    // e.g. postgres://valero:valero@127.0.0.1:5432/neuroerp_{service}
    let url = std::env::var("VALERO_TEST_POSTGRES_URL")
        .expect("VALERO_TEST_POSTGRES_URL is set when this test is enabled (runner/build.rs)");
    run_main_job(&[("NEUROERP_DATABASE_URL", url.as_str())]);
}
