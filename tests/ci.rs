//! What CI systems rely on: reports (JSON against its schema, JUnit parsed
//! back, Markdown), GitHub annotations and step summary, exit codes, secret
//! masking everywhere, neutralised escapes, resume after SIGKILL, selection.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

fn schema() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/report.schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn pass_fail_skip_reports_parse_and_validate() {
    let tk = plugin_lines("testkit");
    let message = "100% broken:\nline two, with a comma";
    let p = format!(
        "{}[stages.good]\n{tk}with = {{ behavior = \"pass\" }}\n\
         [stages.bad]\n{tk}with = {{ behavior = \"fail\", message = {message:?} }}\n\
         [stages.after]\n{tk}needs = [\"bad\"]\nwith = {{ behavior = \"pass\" }}\n",
        header("reports")
    );
    let project = Project::new(&p);
    let summary = project.path().join("step-summary.md");
    std::fs::write(&summary, "# earlier step\n").unwrap();
    let out = project
        .command(&[
            "run",
            "--progress",
            "plain",
            "--report",
            "json=out/report.json",
            "--report",
            "junit=junit.xml",
            "--report",
            "markdown=summary.md",
        ])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    // Exit code 1: a stage failed (documented in README and --help).
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    // JSON: validates against the documented schema.
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(project.path().join("out/report.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema()).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&report)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "report does not match docs/report.schema.json: {errors:#?}"
    );
    assert_eq!(report["outcome"], "failed");
    assert_eq!(stage(&report, "after")["status"], "skipped");

    // JUnit: a parser reads it with the right counts.
    let xml = std::fs::read_to_string(project.path().join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suites: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), 3, "{xml}");
    let cases = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .count();
    let failures = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .count();
    let skipped = doc
        .descendants()
        .filter(|n| n.has_tag_name("skipped"))
        .count();
    assert_eq!((cases, failures, skipped), (3, 1, 1), "{xml}");
    let failure = doc
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .unwrap();
    assert!(
        failure
            .attribute("message")
            .unwrap_or_default()
            .contains("100% broken"),
        "{xml}"
    );

    // Markdown report written.
    let md = std::fs::read_to_string(project.path().join("summary.md")).unwrap();
    assert!(md.contains("| bad"), "{md}");

    // GitHub: annotations on stdout, escaped; summary appended, not overwritten.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("::error"))
        .unwrap_or_else(|| panic!("no annotation in {stdout}"));
    assert!(
        line.contains("100%25 broken:%0Aline two, with a comma"),
        "{line}"
    );
    assert!(!line.contains('\n'));
    let step = std::fs::read_to_string(&summary).unwrap();
    assert!(step.starts_with("# earlier step\n"), "{step}");
    assert!(step.contains("| bad"), "{step}");
}

#[test]
fn secrets_never_reach_any_output() {
    use base64::Engine as _;
    let secret = "hunter2:s3cr3t/with spaces&more";
    let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
    let url = "hunter2%3As3cr3t%2Fwith%20spaces%26more";
    let tk = plugin_lines("testkit");
    let p = format!(
        "{}[secrets.db_password]\nenv = \"TEST_DB_PASSWORD\"\n\n\
         [stages.leaky]\n{tk}with = {{ behavior = \"secret-echo\", var = \"db_password\" }}\ngrants = {{ secrets = [\"db_password\"] }}\n\
         [stages.fails-loudly]\n{tk}with = {{ behavior = \"fail\", message = \"the password is {secret}\" }}\n",
        header("secrets")
    );
    let project = Project::new(&p);
    let out = project
        .command(&[
            "-v",
            "run",
            "--progress",
            "plain",
            "--report",
            "json=report.json",
            "--report",
            "junit=junit.xml",
            "--report",
            "markdown=summary.md",
        ])
        .env("TEST_DB_PASSWORD", secret)
        .output()
        .unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.path().join("report.json")).unwrap())
            .unwrap();
    // The plugin did see the secret (else this test could not fail).
    assert_eq!(
        stage(&report, "leaky")["status"],
        "passed",
        "{}",
        stderr(&out)
    );
    assert!(report.to_string().contains("***"));
    let mut texts = vec![
        (
            "stdout".to_string(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ),
        ("stderr".to_string(), stderr(&out)),
    ];
    for f in files_under(project.path()) {
        if f.file_name().is_some_and(|n| n == "pipeline.toml") {
            continue;
        }
        texts.push((
            f.display().to_string(),
            String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned(),
        ));
    }
    assert!(texts.len() >= 8, "{texts:?}");
    for (name, text) in texts {
        for form in [secret, b64.as_str(), url] {
            assert!(
                !text.contains(form),
                "{name} contains the secret as {form:?}:\n{text}"
            );
        }
    }
}

#[test]
fn escape_sequences_are_neutralised_in_log_and_reports() {
    let tk = plugin_lines("testkit");
    let p = format!(
        "{}[stages.ansi]\n{tk}with = {{ behavior = \"escapes\" }}\n",
        header("escapes")
    );
    let project = Project::new(&p);
    let out = project
        .command(&[
            "-v",
            "run",
            "--progress",
            "plain",
            "--report",
            "json=r.json",
            "--report",
            "junit=j.xml",
            "--report",
            "markdown=m.md",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = stderr(&out);
    assert!(
        log.contains("\\x1b[31mred"),
        "plugin text not shown neutralised:\n{log}"
    );
    assert!(
        !log.contains('\x1b') && !log.contains('\x07'),
        "raw escape reached the terminal log"
    );
    for f in ["r.json", "j.xml", "m.md"] {
        let text = std::fs::read_to_string(project.path().join(f)).unwrap();
        assert!(
            !text.contains('\x1b') && !text.contains('\x07'),
            "{f} has a raw escape"
        );
        assert!(!text.contains("\\u001b"), "{f} has an escaped-but-live ESC");
    }
}

#[cfg(unix)]
#[test]
fn a_killed_run_resumes_without_rerunning_passed_stages() {
    let tk = plugin_lines("testkit");
    let p = format!(
        "{}[stages.build]\n{tk}with = {{ behavior = \"pass\", outputs = {{ image = \"fibu:1.0.5\" }} }}\n\
         [stages.lint]\n{tk}with = {{ behavior = \"pass\" }}\n\
         [stages.deploy]\n{tk}needs = [\"build\"]\nwith = {{ behavior = \"sleep\", ms = 3000 }}\n\
         [stages.verify]\n{tk}needs = [\"deploy\"]\nwith = {{ behavior = \"pass\", read_inputs = [\"deploy\"] }}\n",
        header("resume")
    );
    let project = Project::new(&p);
    let mut child = project
        .command(&["run", "--progress", "plain"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let run_dir = || {
        std::fs::read_dir(project.path().join(".valero/runs"))
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| e.path())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let events = run_dir()
            .and_then(|d| std::fs::read_to_string(d.join("events.jsonl")).ok())
            .unwrap_or_default();
        if events.contains("\"stage_started\",\"stage\":\"deploy\"") {
            break;
        }
        assert!(Instant::now() < deadline, "deploy never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let dir = run_dir().unwrap();
    let run_id = dir.file_name().unwrap().to_string_lossy().into_owned();

    let (code, report, out) = project.run(&["--resume", &run_id]);
    assert_eq!(code, 0, "{}", stderr(&out));
    assert_eq!(report["run_id"], run_id.as_str());
    assert_eq!(report["resumed"], 1);
    let names: Vec<&str> = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["build", "lint", "deploy", "verify"],
        "the report covers the whole run"
    );
    for reused in ["build", "lint"] {
        let s = stage(&report, reused);
        assert_eq!(s["status"], "passed");
        assert_eq!(s["resume"]["reused"], true, "{s:#}");
        assert_eq!(
            s["attempts"].as_array().unwrap().len(),
            1,
            "{reused} ran again"
        );
    }
    let deploy = stage(&report, "deploy");
    assert_eq!(deploy["resume"]["reused"], false);
    assert!(
        deploy["resume"]["why"]
            .as_str()
            .unwrap()
            .contains("never finished"),
        "{deploy:#}"
    );
    // Passed stages ran exactly once across both sessions.
    let events = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    for s in ["build", "lint"] {
        let starts = events
            .matches(&format!("\"stage_started\",\"stage\":\"{s}\""))
            .count();
        assert_eq!(starts, 1, "{s} started {starts} times");
    }
    // `valero runs list` and `runs show` see it.
    let list = project.command(&["runs", "list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains(&run_id));
    let show = project
        .command(&["runs", "show", &run_id])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&show.stdout).contains("verify"),
        "{}",
        String::from_utf8_lossy(&show.stdout)
    );

    // Resuming again reuses everything; a changed config re-runs that stage and its dependents.
    let (code, report, _) = project.run(&["--resume", &run_id]);
    assert_eq!(code, 0);
    assert!(
        report["stages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["resume"]["reused"] == true),
        "{report:#}"
    );
    std::fs::write(
        project.path().join("pipeline.toml"),
        p.replace("fibu:1.0.5", "fibu:1.0.6"),
    )
    .unwrap();
    let (code, report, _) = project.run(&["--resume", &run_id]);
    assert_eq!(code, 0);
    assert_eq!(stage(&report, "build")["resume"]["reused"], false);
    assert_eq!(stage(&report, "lint")["resume"]["reused"], true);
    assert!(
        stage(&report, "build")["resume"]["why"]
            .as_str()
            .unwrap()
            .contains("changed")
    );
}

#[test]
fn only_and_skip_select_stages_and_explain_dropped_needs() {
    let tk = plugin_lines("testkit");
    let p = format!(
        "{}[stages.source]\n{tk}with = {{ behavior = \"fail\" }}\n\
         [stages.deploy]\n{tk}needs = [\"source\"]\nwith = {{ behavior = \"pass\" }}\n\
         [stages.health]\n{tk}needs = [\"deploy\"]\nwith = {{ behavior = \"pass\" }}\n",
        header("selection")
    );
    let project = Project::new(&p);
    let (code, report, out) = project.run(&["--skip", "source"]);
    assert_eq!(code, 0, "{}", stderr(&out));
    assert_eq!(report["excluded"][0]["stage"], "source");
    assert_eq!(report["excluded"][0]["reason"], "deselected with --skip");
    assert_eq!(stage(&report, "deploy")["status"], "passed");

    let (code, report, _) = project.run(&["--only", "health"]);
    assert_eq!(code, 0);
    assert_eq!(report["stages"].as_array().unwrap().len(), 1);
    let plan = project
        .command(&["plan", "pipeline.toml"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&plan.stdout).contains("needs:   source"));

    let out = project
        .command(&["run", "--only", "helth"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("did you mean `health`"),
        "{}",
        stderr(&out)
    );
}
