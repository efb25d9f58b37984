//! GitHub Actions support: workflow-command annotations for what blocked the
//! run, and the Markdown summary appended to the job's step summary.
//!
//! Annotation lines, one per line of output:
//!
//! * a check with verdict `fail`:
//!   `::error title=<stage>: <check>::<message>`
//! * a check with verdict `inconclusive`:
//!   `::warning title=<stage>: <check>::<message>`
//! * a stage that failed (or was inconclusive) without a non-passing check
//!   saying why — a trap, a timeout, a load error…:
//!   `::error title=<stage>::<reason>` (`::warning` when inconclusive).
//!
//! The check's evidence follows its message as `key=value` lines. A stage
//! with `continue_on_error` does not fail the run, so its annotations are
//! downgraded from `error` to `warning`. Skipped and cancelled stages get no
//! annotation: they are the consequence of another stage's failure, of the
//! deadline, or of an interruption, all shown in the summary.
//!
//! Escaping follows GitHub's rules: in the message, `%` → `%25`, `\r` →
//! `%0D`, `\n` → `%0A`; in the `title` value additionally `:` → `%3A` and
//! `,` → `%2C`. So plugin text can never end the line and start a command of
//! its own.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;

use super::{RunReport, StageReport, StageStatus, Verdict, markdown};

/// The annotation workflow commands for the run, one per line (each ending
/// in `\n`); empty when nothing failed.
pub fn annotations(report: &RunReport) -> String {
    let mut out = String::new();
    for stage in &report.stages {
        stage_annotations(&mut out, stage);
    }
    out
}

fn stage_annotations(out: &mut String, stage: &StageReport) {
    let level = |blocking: bool| {
        if blocking && !stage.continue_on_error {
            "error"
        } else {
            "warning"
        }
    };
    let mut explained = false;
    for check in stage.checks.iter().filter(|c| c.verdict != Verdict::Pass) {
        explained = true;
        let mut message = if check.message.is_empty() {
            format!("check {}", check.verdict)
        } else {
            check.message.clone()
        };
        for (k, v) in &check.evidence {
            message.push_str(&format!("\n{k}={v}"));
        }
        push_command(
            out,
            level(check.verdict != Verdict::Inconclusive),
            &format!("{}: {}", stage.name, check.name),
            &message,
        );
    }
    let blocking = match stage.status {
        StageStatus::Failed => true,
        StageStatus::Inconclusive => false,
        StageStatus::Passed | StageStatus::Skipped | StageStatus::Cancelled => return,
    };
    if !explained {
        let reason = match stage.reason.as_deref() {
            Some(r) if !r.is_empty() => r.to_string(),
            _ if blocking => "stage failed".to_string(),
            _ => "stage inconclusive".to_string(),
        };
        push_command(out, level(blocking), &stage.name, &reason);
    }
}

fn push_command(out: &mut String, command: &str, title: &str, message: &str) {
    out.push_str(&format!(
        "::{command} title={}::{}\n",
        escape_property(title),
        escape_data(message)
    ));
}

/// Escapes the message part of a workflow command.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a property value (`title=…`) of a workflow command.
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Appends the Markdown summary of the run to `path` (the file named by
/// `GITHUB_STEP_SUMMARY`), creating it if missing.
pub fn write_step_summary(report: &RunReport, path: &Path) -> io::Result<()> {
    let mut md = markdown::render(report);
    if !md.ends_with('\n') {
        md.push('\n');
    }
    let mut f = OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(md.as_bytes())?;
    f.flush()
}

/// When running in GitHub Actions (`GITHUB_ACTIONS=true`), prints the
/// annotations to stdout and, if `GITHUB_STEP_SUMMARY` is set, appends the
/// summary to that file. Does nothing elsewhere.
pub fn from_env(report: &RunReport) -> io::Result<()> {
    emit(
        report,
        std::env::var_os("GITHUB_ACTIONS"),
        std::env::var_os("GITHUB_STEP_SUMMARY"),
        &mut io::stdout().lock(),
    )
}

fn emit(
    report: &RunReport,
    github_actions: Option<OsString>,
    step_summary: Option<OsString>,
    out: &mut dyn Write,
) -> io::Result<()> {
    if github_actions.as_deref() != Some("true".as_ref()) {
        return Ok(());
    }
    out.write_all(annotations(report).as_bytes())?;
    out.flush()?;
    match step_summary {
        Some(path) if !path.is_empty() => write_step_summary(report, Path::new(&path)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::junit::tests::sample;

    #[test]
    fn annotations_are_exactly_escaped() {
        assert_eq!(
            annotations(&sample()),
            "::error title=deploy%3A health::50%25 of pods: not ready,%0Asee <script>alert(1)</script>%0Apods=3/6%0Aurl=http://svc:8080/a,b\n\
             ::warning title=deploy%3A latency::no samples\n\
             ::error title=migrate::the plugin trapped: wasm trap: unreachable\n"
        );
    }

    #[test]
    fn escaping_rules() {
        assert_eq!(escape_data("100%\r\nx:y,z"), "100%25%0D%0Ax:y,z");
        assert_eq!(escape_property("a: b, c%\n"), "a%3A b%2C c%25%0A");
        // Already-escaped-looking text is escaped again, not decoded.
        assert_eq!(escape_data("%0A"), "%250A");
    }

    #[test]
    fn plugin_text_cannot_start_a_command() {
        let mut r = sample();
        r.stages[1].name = "x::stop-commands::t".into();
        r.stages[1].checks[0].message = "ok\n::add-mask::secret\r::error::fake".into();
        r.stages[1].checks[0].evidence.clear();
        let a = annotations(&r);
        assert_eq!(a.lines().count(), 3);
        assert!(
            a.lines()
                .all(|l| l.starts_with("::error title=") || l.starts_with("::warning title="))
        );
        assert_eq!(
            a.lines().next().unwrap(),
            "::error title=x%3A%3Astop-commands%3A%3At%3A health::ok%0A::add-mask::secret%0D::error::fake"
        );
    }

    #[test]
    fn continue_on_error_and_inconclusive_stages_warn() {
        let mut r = sample();
        r.stages[1].continue_on_error = true;
        r.stages[3].status = StageStatus::Inconclusive;
        r.stages[3].reason = None;
        let a = annotations(&r);
        let starts: Vec<_> = a.lines().map(|l| l.split("::").nth(1).unwrap()).collect();
        assert_eq!(
            starts,
            [
                "warning title=deploy%3A health",
                "warning title=deploy%3A latency",
                "warning title=migrate"
            ]
        );
        assert!(a.ends_with("::warning title=migrate::stage inconclusive\n"));
    }

    #[test]
    fn passing_run_has_no_annotations() {
        let mut r = sample();
        r.stages.truncate(1);
        assert_eq!(annotations(&r), "");
    }

    #[test]
    fn failed_stage_with_passing_checks_is_annotated() {
        let mut r = sample();
        r.stages[0].status = StageStatus::Failed;
        r.stages[0].reason = Some("outputs are not valid JSON".into());
        assert!(annotations(&r).starts_with("::error title=build::outputs are not valid JSON\n"));
    }

    #[test]
    fn step_summary_is_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.md");
        let r = sample();
        write_step_summary(&r, &path).unwrap();
        let once = std::fs::read_to_string(&path).unwrap();
        assert_eq!(once, markdown::render(&r));
        write_step_summary(&r, &path).unwrap();
        let twice = std::fs::read_to_string(&path).unwrap();
        assert_eq!(twice, format!("{once}{once}"));
    }

    #[test]
    fn emit_only_in_github_actions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.md");
        let r = sample();

        let mut out = Vec::new();
        emit(&r, None, Some(path.clone().into()), &mut out).unwrap();
        emit(
            &r,
            Some("false".into()),
            Some(path.clone().into()),
            &mut out,
        )
        .unwrap();
        assert!(out.is_empty());
        assert!(!path.exists());

        emit(&r, Some("true".into()), None, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), annotations(&r));
        assert!(!path.exists());

        let mut out = Vec::new();
        emit(&r, Some("true".into()), Some(path.clone().into()), &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), annotations(&r));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            markdown::render(&r)
        );
    }
}
