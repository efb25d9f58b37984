//! What CI systems rely on: reports (JSON against its schema, JUnit parsed
//! back, Markdown), GitHub annotations and step summary, exit codes, secret
//! masking everywhere, neutralised escapes, resume after SIGKILL, selection.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// `valero -v run` writing every report format (JSON, JUnit, Markdown).
const VERBOSE_RUN_WITH_ALL_REPORTS: &[&str] = &[
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
];

/// The project's `report.json`.
fn read_report(project: &Project) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(project.path().join("report.json")).unwrap())
        .unwrap()
}

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
        .command(VERBOSE_RUN_WITH_ALL_REPORTS)
        .env("TEST_DB_PASSWORD", secret)
        .output()
        .unwrap();
    let report: serde_json::Value = read_report(&project);
    // The plugin did see the secret (else this test could not fail).
    assert_eq!(
        stage(&report, "leaky")["status"],
        "passed",
        "{}",
        stderr(&out)
    );
    assert!(report.to_string().contains("***"));
    let texts = everything_written(&project, &[&out]);
    assert!(texts.len() >= 8, "{texts:?}");
    assert_nowhere(&texts, &[secret, b64.as_str(), url]);
}

/// Everything a run left behind: the stdout and stderr of the given
/// commands and every file under the project but pipeline.toml (reports,
/// run records, step summary).
fn everything_written(project: &Project, outs: &[&std::process::Output]) -> Vec<(String, String)> {
    let mut texts = Vec::new();
    for (i, out) in outs.iter().enumerate() {
        texts.push((
            format!("stdout of command {i}"),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ));
        texts.push((format!("stderr of command {i}"), stderr(out)));
    }
    for f in files_under(project.path()) {
        if f.file_name().is_some_and(|n| n == "pipeline.toml") {
            continue;
        }
        texts.push((
            f.display().to_string(),
            String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned(),
        ));
    }
    texts
}

fn assert_nowhere(texts: &[(String, String)], forms: &[&str]) {
    for (name, text) in texts {
        for form in forms {
            assert!(
                !text.contains(form),
                "{name} contains the secret as {form:?}:\n{text}"
            );
        }
    }
}

/// `valero runs show RUN_ID` (with `extra` flags) in the project.
fn runs_show(
    project: &Project,
    report: &serde_json::Value,
    extra: &[&str],
) -> std::process::Output {
    let run_id = report["run_id"].as_str().expect("run_id in report");
    let mut args = vec!["runs", "show", run_id];
    args.extend_from_slice(extra);
    project.command(&args).output().unwrap()
}

/// A non-finite measurement used to make masking fall back to the raw
/// report (it went through JSON, where NaN does not survive).
#[test]
fn a_nan_measurement_does_not_switch_masking_off() {
    use base64::Engine as _;
    let secret = "n4n-s3cr3t/value";
    let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
    let url = "n4n-s3cr3t%2Fvalue";
    let tk = plugin_lines("testkit");
    let p = format!(
        "{}[secrets.token]\nenv = \"TEST_NAN_TOKEN\"\n\n\
         [stages.nan]\n{tk}with = {{ behavior = \"secret-echo\", var = \"token\", measurement = \"NaN\", fail = true }}\ngrants = {{ secrets = [\"token\"] }}\n\
         [stages.inf]\n{tk}with = {{ behavior = \"secret-echo\", var = \"token\", measurement = \"-inf\" }}\ngrants = {{ secrets = [\"token\"] }}\n",
        header("nan-masking")
    );
    let project = Project::new(&p);
    let summary = project.path().join("step-summary.md");
    let out = project
        .command(VERBOSE_RUN_WITH_ALL_REPORTS)
        .env("TEST_NAN_TOKEN", secret)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    let report: serde_json::Value = read_report(&project);
    // The plugins saw the secret and reported it (else this could not fail).
    assert_eq!(
        stage(&report, "nan")["status"],
        "failed",
        "{}",
        stderr(&out)
    );
    assert_eq!(
        stage(&report, "inf")["status"],
        "passed",
        "{}",
        stderr(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("::error title=nan"),
        "no annotation: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let show = runs_show(&project, &report, &[]);
    let show_json = runs_show(&project, &report, &["--json"]);
    let texts = everything_written(&project, &[&out, &show, &show_json]);
    assert!(texts.len() >= 12, "{texts:?}");
    assert_nowhere(&texts, &[secret, b64.as_str(), url]);
    assert!(report.to_string().contains("secret-echo ***"), "{report:#}");
}

/// A NaN or infinite measurement is recorded in the schema's form (null):
/// the records stay readable and a resumed run reuses the stage.
#[test]
fn a_nan_measurement_keeps_run_records_readable_and_resumable() {
    let tk = plugin_lines("testkit");
    let p = format!(
        "{}[stages.nan]\n{tk}with = {{ behavior = \"pass\", measurement = \"NaN\" }}\n\
         [stages.inf]\n{tk}with = {{ behavior = \"pass\", measurement = \"inf\" }}\n\
         [stages.finite]\n{tk}needs = [\"nan\"]\nwith = {{ behavior = \"pass\", measurement = \"2.5\" }}\n",
        header("nan-records")
    );
    let project = Project::new(&p);
    let (code, report, out) = project.run(&[]);
    assert_eq!(code, 0, "{}", stderr(&out));
    let validator = jsonschema::validator_for(&schema()).unwrap();
    let records = std::fs::read_dir(project.path().join(".valero/runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let recorded: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(records.join("report.json")).unwrap())
            .unwrap();
    for doc in [&report, &recorded] {
        let errors: Vec<String> = validator.iter_errors(doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:#?}");
    }
    let value =
        |name: &str| stage(&recorded, name)["checks"][0]["measurements"][0]["value"].clone();
    assert_eq!(value("nan"), serde_json::Value::Null);
    assert_eq!(value("inf"), serde_json::Value::Null);
    assert_eq!(value("finite"), 2.5);

    let show = runs_show(&project, &report, &[]);
    assert_eq!(show.status.code(), Some(0), "{}", stderr(&show));
    let list = project.command(&["runs", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(
        list.contains("passed") && !list.contains("unfinished"),
        "{list}"
    );

    let run_id = report["run_id"].as_str().unwrap().to_string();
    let (code, resumed, out) = project.run(&["--resume", &run_id]);
    assert_eq!(code, 0, "{}", stderr(&out));
    for name in ["nan", "inf", "finite"] {
        assert_eq!(
            stage(&resumed, name)["resume"]["reused"],
            true,
            "{name} ran again: {resumed:#}"
        );
    }
}

/// With `GITHUB_ACTIONS` set, the runner reads every line of the job's
/// output for workflow commands: `::cmd` at the start (after whitespace)
/// and `##[cmd]` anywhere. No plugin text may form one, on any path: plain
/// and JSON log lines, output tails, multi-line reasons in the summary,
/// annotations, `runs show`.
#[test]
fn github_workflow_commands_in_plugin_text_are_neutralised() {
    let tk = plugin_lines("testkit");
    let p = format!(
        "{}[stages.commands]\n{tk}with = {{ behavior = \"workflow-commands\" }}\n\
         [stages.control]\n{tk}with = {{ behavior = \"fail\", message = \"plain failure\" }}\n",
        header("workflow-commands")
    );
    let project = Project::new(&p);
    let mut outs = Vec::new();
    for extra in [&["-v"][..], &[], &["-v", "--log-format", "json"], &["-q"]] {
        let mut args = extra.to_vec();
        args.extend(["run", "--progress", "plain", "--report", "json=report.json"]);
        let out = project
            .command(&args)
            .env("GITHUB_ACTIONS", "true")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        outs.push(out);
    }
    let report: serde_json::Value = read_report(&project);
    outs.push(runs_show(&project, &report, &[]));
    outs.push(runs_show(&project, &report, &["--json"]));

    let mut annotations = 0;
    for (i, out) in outs.iter().enumerate() {
        for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            let text = String::from_utf8_lossy(bytes);
            for line in text.lines() {
                assert!(
                    !line.contains("##["),
                    "output {i} {stream}: {line:?}\n{text}"
                );
                if !line.trim_start().starts_with("::") {
                    continue;
                }
                // Only the runner's own annotations, on stdout, start with `::`.
                assert!(
                    stream == "stdout"
                        && (line.starts_with("::error title=")
                            || line.starts_with("::warning title=")),
                    "output {i} {stream}: {line:?}\n{text}"
                );
                annotations += 1;
            }
        }
    }
    // Control: the annotations are there, and so is the plugin's text, visibly.
    assert!(annotations >= 8, "{annotations} annotations");
    let log = stderr(&outs[0]);
    assert!(log.contains("set-output name=owned"), "{log}");
    assert!(log.contains("plain failure"), "{log}");
    let summary = stage(&report, "commands")["summary"].as_str().unwrap();
    assert!(summary.contains("set-output name=legacy"), "{summary}");
}

/// `outputs` is plugin-provided text too: control characters in its keys
/// and strings are neutralised before anything stores or passes them on.
#[test]
fn outputs_are_neutralised() {
    let tk = plugin_lines("testkit");
    let p = format!(
        "{}[stages.ansi]\n{tk}with = {{ behavior = \"pass\", outputs = {{ \"k\\u001b\" = \"\\u001b[31mred\\u0007\", list = [\"\\u001b]0;title\\u0007\", 3] }} }}\n\
         [stages.reader]\n{tk}needs = [\"ansi\"]\nwith = {{ behavior = \"pass\", read_inputs = [\"ansi\"] }}\n",
        header("outputs")
    );
    let project = Project::new(&p);
    let (code, report, out) = project.run(&[]);
    assert_eq!(code, 0, "{}", stderr(&out));
    let outputs = &stage(&report, "ansi")["outputs"];
    assert_eq!(outputs["k\\x1b"], "\\x1b[31mred\\x07", "{outputs:#}");
    assert_eq!(outputs["list"][0], "\\x1b]0;title\\x07", "{outputs:#}");
    assert_eq!(outputs["list"][1], 3);
    // The downstream stage got the neutralised value.
    assert_eq!(
        stage(&report, "reader")["outputs"]["inputs"]["ansi"],
        *outputs
    );
    for (name, text) in everything_written(&project, &[&out]) {
        assert!(
            !text.contains('\x1b')
                && !text.contains('\x07')
                && !text.contains("\\u001b")
                && !text.contains("\\u0007"),
            "{name} has a raw control character:\n{text}"
        );
    }
}

/// A secret logged (or printed) in two halves on consecutive lines is
/// masked as a whole: each half becomes `***`.
#[test]
fn a_secret_split_across_lines_is_masked() {
    let secret = "s3cr3t-Pw";
    let tk = plugin_lines("testkit");
    let p = format!(
        "{}[secrets.pw]\nenv = \"TEST_SPLIT_PW\"\n\n\
         [stages.split]\n{tk}with = {{ behavior = \"secret-split\", var = \"pw\" }}\ngrants = {{ secrets = [\"pw\"] }}\n",
        header("split")
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
        ])
        .env("TEST_SPLIT_PW", secret)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = read_report(&project);
    let logs: Vec<&str> = stage(&report, "split")["attempts"][0]["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = (1..secret.len())
        .flat_map(|_| ["part: ***", "*** :rest"])
        .collect();
    assert_eq!(logs, expected);
    for (name, text) in everything_written(&project, &[&out]) {
        for (at, _) in text.match_indices("part: ") {
            assert!(
                text[at..].starts_with("part: ***"),
                "{name}: {}",
                &text[at..]
            );
        }
        for (at, _) in text.match_indices(" :rest") {
            assert!(text[..at].ends_with("***"), "{name}: {}", &text[..at]);
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
         [stages.deploy]\n{tk}needs = [\"build\"]\nwith = {{ behavior = \"sleep\", ms = 5000 }}\n\
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
        // `lint` runs beside `build` → `deploy`; on a loaded machine it can
        // still be running when `deploy` starts, so wait for both.
        let lint_finished = events.lines().any(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .is_ok_and(|e| e["event"] == "stage_finished" && e["stage"]["name"] == "lint")
        });
        if lint_finished && events.contains("\"stage_started\",\"stage\":\"deploy\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "deploy never started while lint had finished"
        );
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
