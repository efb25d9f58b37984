//! JUnit XML from a [`RunReport`], for CI systems that show test results
//! (GitLab, Jenkins, Azure, GitHub test-reporter actions…).
//!
//! The mapping:
//!
//! * one `<testsuites>` named after the pipeline, timed with the run;
//! * one `<testsuite>` per stage (name = stage name), carrying the run id,
//!   target, pipeline file and plugin as `<property>`s, and the last
//!   attempt's captured stdout / stderr as `<system-out>` / `<system-err>`;
//! * one `<testcase>` per check (classname = stage name, name = check name,
//!   time = the check's `duration_ms`):
//!   * `pass` → success;
//!   * `fail` → `<failure type="fail">` with the check message as `message`
//!     and the evidence (`key=value` lines) and measurements as its text;
//!   * `inconclusive` → also a `<failure>`, of type `inconclusive`: an
//!     inconclusive check blocks a gate just as a failing one does, and a
//!     `skipped` would let JUnit consumers show the run as green;
//! * one extra `<testcase>` named after the stage (classname = stage name)
//!   when the stage has no checks, or when its status is not explained by
//!   its checks (say, a stage that trapped after its checks passed):
//!   passed → success; failed → failure of type `failed` with the stage's
//!   `reason`; inconclusive → failure of type `inconclusive`; skipped and
//!   cancelled → skipped, with the reason as message.
//!
//! All text in the model is already neutralised; it goes through
//! [`neutralize`] again here (idempotent on neutralised text) and the XML
//! non-characters U+FFFE / U+FFFF are escaped too, so no plugin text can make
//! the file invalid XML. quick-junit escapes `<`, `>`, `&` and quotes.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::{CheckReport, RunReport, StageReport, StageStatus, Verdict, neutralize};

/// Renders the run as a JUnit XML document.
pub fn render(report: &RunReport) -> Result<String, quick_junit::SerializeError> {
    let mut junit = Report::new(xml(&report.pipeline));
    junit.set_time(Duration::from_millis(report.duration_ms));
    for stage in &report.stages {
        junit.add_test_suite(suite(report, stage));
    }
    junit.to_string()
}

fn suite(report: &RunReport, stage: &StageReport) -> TestSuite {
    let mut suite = TestSuite::new(xml(&stage.name));
    if let (Some(start), Some(end)) = (stage.start_ms, stage.end_ms) {
        suite.set_time(millis(end - start));
    }
    suite.add_properties([
        Property::new("run_id", xml(&report.run_id)),
        Property::new("target", xml(&report.target)),
        Property::new("pipeline_file", xml(&report.pipeline_file)),
        Property::new("plugin", xml(&stage.plugin)),
        Property::new("status", stage.status.as_str()),
    ]);
    for check in &stage.checks {
        suite.add_test_case(check_case(stage, check));
    }
    if needs_stage_case(stage) {
        suite.add_test_case(stage_case(stage));
    }
    if let Some(last) = stage.attempts.last() {
        if !last.stdout.text.is_empty() {
            suite.set_system_out(xml(&last.stdout.text));
        }
        if !last.stderr.text.is_empty() {
            suite.set_system_err(xml(&last.stderr.text));
        }
    }
    suite
}

/// Whether the stage gets a test case of its own: when it has no checks, or
/// when it did not pass and none of its checks says why.
fn needs_stage_case(stage: &StageReport) -> bool {
    stage.checks.is_empty()
        || (stage.status != StageStatus::Passed
            && stage.checks.iter().all(|c| c.verdict == Verdict::Pass))
}

fn check_case(stage: &StageReport, check: &CheckReport) -> TestCase {
    let status = match check.verdict.as_str() {
        "pass" => TestCaseStatus::success(),
        verdict => {
            // `fail`, `inconclusive`, or anything newer: all block a gate.
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
            st.set_type(xml(verdict));
            if !check.message.is_empty() {
                st.set_message(attr(&check.message));
            }
            let text = failure_text(check);
            if !text.is_empty() {
                st.set_description(xml(&text));
            }
            st
        }
    };
    let mut case = TestCase::new(xml(&check.name), status);
    case.set_classname(xml(&stage.name));
    case.set_time(Duration::from_millis(check.duration_ms));
    case
}

/// The check message, then its evidence as `key=value` lines and its
/// measurements as `name=value unit` lines.
fn failure_text(check: &CheckReport) -> String {
    let mut lines: Vec<String> = Vec::new();
    if !check.message.is_empty() {
        lines.push(check.message.clone());
    }
    lines.extend(check.evidence.iter().map(|(k, v)| format!("{k}={v}")));
    lines.extend(check.measurements.iter().map(|m| {
        if m.unit.is_empty() {
            format!("{}={}", m.name, m.value_text())
        } else {
            format!("{}={} {}", m.name, m.value_text(), m.unit)
        }
    }));
    lines.join("\n")
}

fn stage_case(stage: &StageReport) -> TestCase {
    let reason = stage.reason.as_deref().unwrap_or_default();
    let status = match stage.status {
        StageStatus::Passed => TestCaseStatus::success(),
        StageStatus::Failed | StageStatus::Inconclusive => {
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
            st.set_type(stage.status.as_str());
            let message = if reason.is_empty() {
                format!("stage {}", stage.status.as_str())
            } else {
                reason.to_string()
            };
            st.set_message(attr(&message));
            let mut text = message;
            if let Some(last) = stage.attempts.last() {
                text.push_str(&format!(
                    "\nlast attempt ({} of {}): {}",
                    last.attempt,
                    stage.attempts.len(),
                    last.outcome
                ));
                if !last.message.is_empty() && last.message != reason {
                    text.push_str(&format!(": {}", last.message));
                }
            }
            st.set_description(xml(&text));
            st
        }
        StageStatus::Skipped | StageStatus::Cancelled => {
            let mut st = TestCaseStatus::skipped();
            st.set_type(stage.status.as_str());
            if !reason.is_empty() {
                st.set_message(attr(reason));
            }
            st
        }
    };
    let mut case = TestCase::new(xml(&stage.name), status);
    case.set_classname(xml(&stage.name));
    if let (Some(start), Some(end)) = (stage.start_ms, stage.end_ms) {
        case.set_time(millis(end - start));
    }
    case
}

fn millis(ms: f64) -> Duration {
    Duration::try_from_secs_f64(ms / 1000.0).unwrap_or_default()
}

/// Text that is valid in an XML document whatever it held: controls become
/// visible escapes, and so do the XML non-characters U+FFFE and U+FFFF.
fn xml(s: &str) -> String {
    neutralize(s)
        .replace('\u{fffe}', "\\u{fffe}")
        .replace('\u{ffff}', "\\u{ffff}")
}

/// Text for a `message` attribute. XML parsers normalise a newline in an
/// attribute value to a space (and quick-junit writes it raw), so make that
/// explicit; the full text, newlines kept, is in the element's text.
fn attr(s: &str) -> String {
    xml(s).replace("\r\n", " ").replace(['\n', '\r'], " ")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{
        AttemptReport, LoadReport, LoadSource, MeasurementReport, OutputReport, RunOutcome,
        SCHEMA_VERSION,
    };
    use crate::{LogLevel, LogLine};

    fn check(name: &str, verdict: &str, message: &str, evidence: &[(&str, &str)]) -> CheckReport {
        CheckReport {
            name: name.into(),
            verdict: word(verdict),
            message: message.into(),
            duration_ms: 7,
            evidence: evidence
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            measurements: Vec::new(),
        }
    }

    fn attempt(outcome: &str, verdict: Option<&str>, message: &str) -> AttemptReport {
        AttemptReport {
            attempt: 1,
            start_ms: 1.0,
            end_ms: 101.5,
            outcome: word(outcome),
            verdict: verdict.map(word),
            message: message.into(),
            stdout: OutputReport::default(),
            stderr: OutputReport::default(),
            logs: Vec::new(),
            logs_dropped: 0,
        }
    }

    /// A report word (`pass`, `timed_out`) as its type.
    fn word<T: serde::de::DeserializeOwned>(w: &str) -> T {
        serde_json::from_value(serde_json::Value::from(w)).unwrap()
    }

    fn stage(name: &str, status: StageStatus, reason: Option<&str>) -> StageReport {
        StageReport::not_run(
            name,
            format!("builtin:{name}"),
            status,
            reason.map(str::to_string),
        )
    }

    /// The shared fixture: `build` passed with two checks; `deploy` failed on
    /// a check whose message holds `%`, a newline, `:` and `,` (and HTML),
    /// next to an inconclusive one; `notify` was skipped; `migrate` trapped
    /// without reporting any check.
    pub(crate) fn sample() -> RunReport {
        let mut build = stage("build", StageStatus::Passed, None);
        build.digest = Some("sha256:abcd".into());
        build.load = Some(LoadReport {
            source: LoadSource::Cache,
            ms: 3.25,
        });
        build.start_ms = Some(0.5);
        build.end_ms = Some(120.5);
        build.summary = "built".into();
        build.checks = vec![
            check("compiles", "pass", "ok", &[]),
            check("lint", "pass", "", &[("warnings", "0")]),
        ];
        build.checks[0].measurements.push(MeasurementReport {
            name: "size".into(),
            value: Some(1.5),
            unit: "MiB".into(),
        });
        build.outputs = serde_json::json!({"artifact": "app.tar"});
        let mut a = attempt("returned", Some("pass"), "built");
        a.stdout = OutputReport {
            bytes: 40,
            dropped: 0,
            text: "compiled <ok> & ]]> \\x1b[31mred\n".into(),
        };
        a.stderr = OutputReport {
            bytes: 5,
            dropped: 2,
            text: "warn\n".into(),
        };
        a.logs.push(LogLine {
            at_ms: 2.5,
            level: LogLevel::Info,
            message: "starting".into(),
        });
        build.attempts.push(a);

        let mut deploy = stage(
            "deploy",
            StageStatus::Failed,
            Some("rollout failed: check `health` fail"),
        );
        deploy.load = Some(LoadReport {
            source: LoadSource::Compiled,
            ms: 80.0,
        });
        deploy.start_ms = Some(121.0);
        deploy.end_ms = Some(1121.0);
        deploy.continue_on_error = false;
        deploy.checks = vec![
            check(
                "health",
                "fail",
                "50% of pods: not ready,\nsee <script>alert(1)</script>",
                &[("pods", "3/6"), ("url", "http://svc:8080/a,b")],
            ),
            check("latency", "inconclusive", "no samples", &[]),
        ];
        let mut a1 = attempt("returned", Some("fail"), "rollout failed");
        a1.attempt = 1;
        let mut a2 = attempt("returned", Some("fail"), "rollout failed");
        a2.attempt = 2;
        a2.stdout.text = "second try".into();
        deploy.attempts = vec![a1, a2];

        let notify = stage(
            "notify",
            StageStatus::Skipped,
            Some("needs `deploy`, which failed"),
        );

        let mut migrate = stage(
            "migrate",
            StageStatus::Failed,
            Some("the plugin trapped: wasm trap: unreachable"),
        );
        migrate.start_ms = Some(121.0);
        migrate.end_ms = Some(130.0);
        migrate.attempts.push(attempt(
            "trapped",
            None,
            "the plugin trapped: wasm trap: unreachable",
        ));

        RunReport {
            schema_version: SCHEMA_VERSION,
            run_id: "20250101T000000Z-a1b2c3".into(),
            pipeline: "release".into(),
            pipeline_file: "valero.toml".into(),
            target: "prod".into(),
            started_at: "2025-01-01T00:00:00Z".into(),
            duration_ms: 1200,
            outcome: RunOutcome::Failed,
            resumed: 0,
            interruption: None,
            stages: vec![build, deploy, notify, migrate],
            excluded: Vec::new(),
        }
    }

    fn count(doc: &roxmltree::Document, tag: &str) -> usize {
        doc.descendants().filter(|n| n.has_tag_name(tag)).count()
    }

    #[test]
    fn counts_suites_cases_failures_and_skips() {
        let xml = render(&sample()).unwrap();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "testsuites");
        assert_eq!(root.attribute("name"), Some("release"));
        assert_eq!(root.attribute("tests"), Some("6"));
        assert_eq!(root.attribute("failures"), Some("3"));
        assert_eq!(root.attribute("skipped"), Some("1"));
        assert_eq!(count(&doc, "testsuite"), 4);
        assert_eq!(count(&doc, "testcase"), 6);
        assert_eq!(count(&doc, "failure"), 3);
        assert_eq!(count(&doc, "skipped"), 1);

        let suites: Vec<_> = root.children().filter(|n| n.is_element()).collect();
        let names: Vec<_> = suites
            .iter()
            .map(|s| s.attribute("name").unwrap())
            .collect();
        assert_eq!(names, ["build", "deploy", "notify", "migrate"]);
        let counts = |i: usize| {
            let s = suites[i];
            (
                s.attribute("tests").unwrap(),
                s.attribute("failures").unwrap(),
                s.attribute("skipped").unwrap(),
            )
        };
        assert_eq!(counts(0), ("2", "0", "0"));
        assert_eq!(counts(1), ("2", "2", "0"));
        assert_eq!(counts(2), ("1", "0", "1"));
        assert_eq!(counts(3), ("1", "1", "0"));

        // Run id as a suite property.
        let run_id = suites[0]
            .descendants()
            .find(|n| n.has_tag_name("property") && n.attribute("name") == Some("run_id"))
            .unwrap();
        assert_eq!(run_id.attribute("value"), Some("20250101T000000Z-a1b2c3"));
    }

    #[test]
    fn failures_carry_message_type_and_evidence() {
        let xml = render(&sample()).unwrap();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let case = |name: &str| {
            doc.descendants()
                .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some(name))
                .unwrap()
        };
        let health = case("health");
        assert_eq!(health.attribute("classname"), Some("deploy"));
        assert_eq!(health.attribute("time"), Some("0.007"));
        let f = health.first_element_child().unwrap();
        assert!(f.has_tag_name("failure"));
        assert_eq!(f.attribute("type"), Some("fail"));
        assert_eq!(
            f.attribute("message"),
            Some("50% of pods: not ready, see <script>alert(1)</script>")
        );
        assert_eq!(
            f.text(),
            Some(
                "50% of pods: not ready,\nsee <script>alert(1)</script>\npods=3/6\nurl=http://svc:8080/a,b"
            )
        );

        let latency = case("latency").first_element_child().unwrap();
        assert!(latency.has_tag_name("failure"));
        assert_eq!(latency.attribute("type"), Some("inconclusive"));

        let migrate = case("migrate").first_element_child().unwrap();
        assert!(migrate.has_tag_name("failure"));
        assert_eq!(migrate.attribute("type"), Some("failed"));
        assert_eq!(
            migrate.attribute("message"),
            Some("the plugin trapped: wasm trap: unreachable")
        );

        let notify = case("notify").first_element_child().unwrap();
        assert!(notify.has_tag_name("skipped"));
        assert_eq!(
            notify.attribute("message"),
            Some("needs `deploy`, which failed")
        );
        assert!(case("compiles").first_element_child().is_none());
    }

    #[test]
    fn last_attempt_output_goes_to_the_suite() {
        let xml = render(&sample()).unwrap();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let suite = |name: &str| {
            doc.descendants()
                .find(|n| n.has_tag_name("testsuite") && n.attribute("name") == Some(name))
                .unwrap()
        };
        let out = |s: roxmltree::Node, tag: &str| {
            s.children()
                .find(|n| n.has_tag_name(tag))
                .and_then(|n| n.text())
                .map(str::to_string)
        };
        let build = suite("build");
        assert_eq!(
            out(build, "system-out").as_deref(),
            Some("compiled <ok> & ]]> \\x1b[31mred\n")
        );
        assert_eq!(out(build, "system-err").as_deref(), Some("warn\n"));
        assert_eq!(
            out(suite("deploy"), "system-out").as_deref(),
            Some("second try")
        );
        assert_eq!(out(suite("notify"), "system-out"), None);
    }

    #[test]
    fn hostile_text_cannot_break_the_xml() {
        let mut r = sample();
        let nasty = "\x1b[2J<b>&amp;</b> ]]> \"q\" 'a' \u{0}\u{7}\u{fffe}\u{ffff}\r\n<![CDATA[x]]>";
        r.pipeline = nasty.into();
        r.stages[1].name = nasty.into();
        r.stages[1].checks[0].name = nasty.into();
        r.stages[1].checks[0].message = nasty.into();
        r.stages[1].checks[0].evidence = vec![(nasty.into(), nasty.into())];
        r.stages[1].attempts[1].stdout.text = nasty.into();
        r.stages[1].attempts[1].stderr.text = nasty.into();
        r.stages[3].reason = Some(nasty.into());
        let xml = render(&r).unwrap();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        assert_eq!(count(&doc, "testsuite"), 4);
        assert_eq!(count(&doc, "testcase"), 6);
        let expected =
            "\\x1b[2J<b>&amp;</b> ]]> \"q\" 'a' \\x00\\x07\\u{fffe}\\u{ffff}\\x0d\n<![CDATA[x]]>";
        // In attributes, XML turns the newline into a space.
        let in_attr = expected.replace('\n', " ");
        assert_eq!(doc.root_element().attribute("name"), Some(&*in_attr));
        let f = doc
            .descendants()
            .find(|n| n.has_tag_name("failure") && n.attribute("type") == Some("fail"))
            .unwrap();
        assert_eq!(f.attribute("message"), Some(&*in_attr));
        assert_eq!(
            f.text(),
            Some(&*format!("{expected}\n{expected}={expected}"))
        );
        let out = doc
            .descendants()
            .find(|n| n.has_tag_name("system-out") && n.text() == Some(expected));
        assert!(out.is_some(), "{xml}");
    }

    #[test]
    fn stage_failing_despite_passing_checks_gets_its_own_case() {
        let mut r = sample();
        r.stages[0].status = StageStatus::Failed;
        r.stages[0].reason = Some("the plugin's outputs are not valid JSON".into());
        let xml = render(&r).unwrap();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        assert_eq!(count(&doc, "testcase"), 7);
        assert_eq!(count(&doc, "failure"), 4);
    }
}
