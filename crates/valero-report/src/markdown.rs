//! A GitHub-flavoured Markdown summary of a run (for a pull-request comment
//! or a GitHub Actions step summary).
//!
//! Every piece of text from the report goes through [`escape`] (or
//! [`cell`] inside tables): `&`, `<`, `>` and backticks become HTML entities
//! and Markdown punctuation is backslash-escaped, so neither a plugin nor a
//! pipeline file can inject HTML, links, images or formatting; newlines
//! become `<br>` so text cannot start new blocks or break a table row.

use super::{RunOutcome, RunReport, StageReport, StageStatus, Verdict};

/// Renders the run summary as GitHub-flavoured Markdown.
pub fn render(report: &RunReport) -> String {
    let mut md = String::new();
    md.push_str(&format!(
        "## Valero run {}\n\n",
        outcome_word(report.outcome)
    ));
    md.push_str(&format!(
        "**Pipeline:** {} · **Target:** {} · **Run:** {} · **Duration:** {} ms\n\n",
        escape(&report.pipeline),
        escape(&report.target),
        escape(&report.run_id),
        report.duration_ms
    ));

    if report.resumed > 0 {
        md.push_str(&format!("Resumed {} time(s).\n\n", report.resumed));
    }
    if !report.excluded.is_empty() {
        let list: Vec<String> = report
            .excluded
            .iter()
            .map(|e| format!("{} ({})", escape(&e.stage), escape(&e.reason)))
            .collect();
        md.push_str(&format!("Not in this run: {}\n\n", list.join(", ")));
    }
    if report.stages.is_empty() {
        md.push_str("No stages ran.\n");
        return md;
    }
    md.push_str("| Stage | Status | Duration (ms) | Attempts | Load | Reason |\n");
    md.push_str("| --- | --- | ---: | ---: | --- | --- |\n");
    for s in &report.stages {
        let duration = match (s.start_ms, s.end_ms) {
            (Some(start), Some(end)) => format!("{:.0}", (end - start).max(0.0)),
            _ => "-".to_string(),
        };
        let load = s
            .load
            .as_ref()
            .map_or("-".to_string(), |l| cell(l.source.as_str()));
        let mut status = s.status.as_str().to_string();
        if s.continue_on_error
            && matches!(s.status, StageStatus::Failed | StageStatus::Inconclusive)
        {
            status.push_str(" (allowed)");
        }
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            cell(&s.name),
            status,
            duration,
            s.attempts.len(),
            load,
            cell(s.reason.as_deref().unwrap_or_default()),
        ));
    }

    for s in report
        .stages
        .iter()
        .filter(|s| s.status != StageStatus::Passed)
    {
        stage_section(&mut md, s);
    }
    md
}

fn stage_section(md: &mut String, s: &StageReport) {
    md.push_str(&format!(
        "\n### Stage {}: {}\n\n",
        escape(&s.name),
        s.status.as_str()
    ));
    if let Some(reason) = s.reason.as_deref().filter(|r| !r.is_empty()) {
        md.push_str(&format!("{}\n\n", escape(reason)));
    }
    if let Some(last) = s.attempts.last() {
        md.push_str(&format!(
            "Last attempt: {} of {}, {}\n\n",
            last.attempt,
            s.attempts.len(),
            escape(last.outcome.as_str())
        ));
    }
    let failing: Vec<_> = s
        .checks
        .iter()
        .filter(|c| c.verdict != Verdict::Pass)
        .collect();
    if failing.is_empty() {
        if !s.checks.is_empty() {
            md.push_str("All of its checks passed.\n");
        }
        return;
    }
    for c in failing {
        md.push_str(&format!(
            "- **{}** ({})",
            escape(&c.name),
            escape(c.verdict.as_str())
        ));
        if !c.message.is_empty() {
            md.push_str(&format!(": {}", escape(&c.message)));
        }
        md.push('\n');
        for (k, v) in &c.evidence {
            md.push_str(&format!("  - {}: {}\n", escape(k), escape(v)));
        }
        for m in &c.measurements {
            md.push_str(&format!(
                "  - {} = {} {}\n",
                escape(&m.name),
                escape(&m.value_text()),
                escape(&m.unit)
            ));
        }
    }
}

fn outcome_word(o: RunOutcome) -> &'static str {
    match o {
        RunOutcome::Passed => "PASSED",
        RunOutcome::Failed => "FAILED",
        RunOutcome::Inconclusive => "INCONCLUSIVE",
        RunOutcome::Interrupted => "INTERRUPTED",
        RunOutcome::Running => "RUNNING",
    }
}

/// Text made inert for Markdown and HTML, kept on one line.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 4);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '`' => out.push_str("&#96;"),
            '"' => out.push_str("&quot;"),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => out.push_str("<br>"),
            '\\' | '*' | '_' | '[' | ']' | '(' | ')' | '#' | '+' | '-' | '.' | '!' | '|' | '~'
            | '=' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// A table cell: [`escape`] already escapes `|` and turns newlines into
/// `<br>`, so a cell cannot end early or break its row.
fn cell(s: &str) -> String {
    escape(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::junit::tests::sample;

    #[test]
    fn heading_and_table() {
        let md = render(&sample());
        assert!(md.starts_with("## Valero run FAILED\n\n"), "{md}");
        assert!(md.contains(
            "**Pipeline:** release · **Target:** prod · **Run:** 20250101T000000Z\\-a1b2c3 · **Duration:** 1200 ms"
        ));
        assert!(md.contains(
            "| Stage | Status | Duration (ms) | Attempts | Load | Reason |\n| --- | --- | ---: | ---: | --- | --- |\n"
        ));
        assert!(
            md.contains("| build | passed | 120 | 1 | cache |  |\n"),
            "{md}"
        );
        assert!(md.contains(
            "| deploy | failed | 1000 | 2 | compiled | rollout failed: check &#96;health&#96; fail |\n"
        ), "{md}");
        assert!(
            md.contains(
                "| notify | skipped | - | 0 | - | needs &#96;deploy&#96;, which failed |\n"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "| migrate | failed | 9 | 1 | - | the plugin trapped: wasm trap: unreachable |\n"
            ),
            "{md}"
        );
        // Every table row has the same number of unescaped pipes.
        for line in md.lines().filter(|l| l.starts_with('|')) {
            let pipes = line.replace("\\|", "").matches('|').count();
            assert_eq!(pipes, 7, "{line}");
        }
    }

    #[test]
    fn sections_for_stages_that_did_not_pass() {
        let md = render(&sample());
        assert!(!md.contains("### Stage build"));
        assert!(md.contains("### Stage deploy: failed\n"));
        assert!(md.contains("### Stage notify: skipped\n"));
        assert!(md.contains("### Stage migrate: failed\n"));
        assert!(md.contains("Last attempt: 1 of 1, trapped"));
        assert!(md.contains(
            "- **health** (fail): 50% of pods: not ready,<br>see &lt;script&gt;alert\\(1\\)&lt;/script&gt;\n  - pods: 3/6\n  - url: http://svc:8080/a,b\n"
        ), "{md}");
        assert!(md.contains("- **latency** (inconclusive): no samples\n"));
        assert!(!md.contains("- **compiles**"));
        assert!(!md.contains("Not in this run"));
    }

    #[test]
    fn excluded_and_resumed() {
        let mut r = sample();
        r.resumed = 1;
        r.excluded.push(crate::Excluded {
            stage: "docs".into(),
            reason: "`when` excludes <prod>".into(),
        });
        let md = render(&r);
        assert!(md.contains("Resumed 1 time(s).\n"));
        assert!(
            md.contains("Not in this run: docs (&#96;when&#96; excludes &lt;prod&gt;)\n"),
            "{md}"
        );
    }

    #[test]
    fn plugin_text_cannot_inject_html_or_break_the_table() {
        let mut r = sample();
        r.stages[1].checks[0].message =
            "<script>alert(1)</script> <img src=x onerror=alert(1)> [x](javascript:alert(1)) ```"
                .into();
        r.stages[3].reason = Some("a | b\n| c | d |\r\n<script>".into());
        let md = render(&r);
        assert!(!md.contains("<script>"), "{md}");
        assert!(!md.contains("<img"), "{md}");
        assert!(!md.contains("](javascript"), "{md}");
        assert!(!md.contains('`'), "{md}");
        assert!(md.contains("&lt;script&gt;"));
        assert!(
            md.contains("a \\| b<br>\\| c \\| d \\|<br>&lt;script&gt;"),
            "{md}"
        );
        for line in md.lines().filter(|l| l.starts_with('|')) {
            let pipes = line.replace("\\|", "").matches('|').count();
            assert_eq!(pipes, 7, "{line}");
        }
        // The only raw HTML is the `<br>` this module writes.
        assert_eq!(md.replace("<br>", "").matches('<').count(), 0, "{md}");
    }

    #[test]
    fn escape_examples() {
        assert_eq!(escape("a*b_c`d"), "a\\*b\\_c&#96;d");
        assert_eq!(escape("x & <y>"), "x &amp; &lt;y&gt;");
        assert_eq!(escape("l1\r\nl2\nl3"), "l1<br>l2<br>l3");
        assert_eq!(escape("# h"), "\\# h");
        assert_eq!(escape("back\\slash"), "back\\\\slash");
    }

    // The JSON report against docs/report.schema.json.

    const SCHEMA: &str = include_str!("../../../docs/report.schema.json");

    fn validator() -> jsonschema::Validator {
        let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
        jsonschema::draft202012::meta::validate(&schema).unwrap();
        jsonschema::validator_for(&schema).unwrap()
    }

    fn errors(v: &jsonschema::Validator, doc: &serde_json::Value) -> Vec<String> {
        v.iter_errors(doc).map(|e| e.to_string()).collect()
    }

    #[test]
    fn json_report_matches_the_schema() {
        let v = validator();
        let doc: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&sample()).unwrap()).unwrap();
        assert_eq!(errors(&v, &doc), Vec::<String>::new());

        // Every status, outcome and log level, and a non-finite measurement.
        let mut r = sample();
        r.outcome = RunOutcome::Interrupted;
        r.interruption = Some(crate::Interruption {
            cause: crate::InterruptCause::Lost,
            last_event: "stage `deploy` started".into(),
        });
        r.stages[1].effects = vec![
            crate::effects::Effect::Service { name: "web".into() }.into(),
            crate::effects::Effect::Container {
                project: "p".into(),
                name: "p-web".into(),
                id: "c0ffee".into(),
                config_hash: Some("sha256:1".into()),
            }
            .into(),
            crate::effects::Effect::Image {
                project: "p".into(),
                tag: "p/web:1".into(),
                id: "sha256:2".into(),
            }
            .into(),
        ];
        r.stages[0].status = StageStatus::Cancelled;
        r.stages[2].status = StageStatus::Inconclusive;
        r.stages[0].checks[0].measurements[0].value = None;
        r.stages[0].attempts[0].logs[0].level = crate::LogLevel::Trace;
        r.resumed = 2;
        r.excluded.push(crate::Excluded {
            stage: "docs".into(),
            reason: "--skip".into(),
        });
        r.stages[0].fingerprint = Some("sha256:feed".into());
        r.stages[0].resume = Some(crate::ResumeNote {
            reused: true,
            why: "fingerprint unchanged".into(),
        });
        let doc = serde_json::to_value(&r).unwrap();
        assert_eq!(errors(&v, &doc), Vec::<String>::new());
    }

    #[test]
    fn schema_rejects_broken_reports() {
        let v = validator();
        let good = serde_json::to_value(sample()).unwrap();

        let mut doc = good.clone();
        doc.as_object_mut().unwrap().remove("run_id");
        assert!(!v.is_valid(&doc), "missing run_id accepted");

        let mut doc = good.clone();
        doc["stages"][0].as_object_mut().unwrap().remove("checks");
        assert!(!v.is_valid(&doc), "missing stage checks accepted");

        let mut doc = good.clone();
        doc["schema_version"] = 1.into();
        assert!(!v.is_valid(&doc), "schema_version 1 accepted");

        let mut doc = good.clone();
        doc["stages"][1]["status"] = "Failed".into();
        assert!(!v.is_valid(&doc), "non-snake_case status accepted");

        let mut doc = good.clone();
        doc["stages"][1]["checks"][0]["evidence"][0] = serde_json::json!(["only-key"]);
        assert!(!v.is_valid(&doc), "one-element evidence pair accepted");

        let mut doc = good.clone();
        doc["stages"][0]["surprise"] = true.into();
        assert!(!v.is_valid(&doc), "unknown stage field accepted");

        let mut doc = good;
        doc["stages"][0]["reason"] = serde_json::Value::Null;
        assert!(
            !v.is_valid(&doc),
            "null reason accepted (it is omitted, not null)"
        );
    }
}
