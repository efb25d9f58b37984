//! `valero validate` reports broken pipelines with file:line:col and exits 3;
//! the root pipeline.toml passes.

mod common;

use std::path::Path;
use std::process::Command;

fn validate(path: &Path) -> (i32, String) {
    let out = Command::new(common::valero_bin())
        .arg("validate")
        .arg(path)
        .output()
        .expect("run valero");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/invalid")
}

#[test]
fn broken_pipelines_are_reported_with_line_and_column() {
    let cases = [
        (
            "unknown_key.toml",
            "unknown_key.toml:9:1",
            "did you mean `timeout`?",
        ),
        ("cycle.toml", "cycle.toml:13:10", "cycle: a -> c -> b -> a"),
        (
            "missing_need.toml",
            "missing_need.toml:12:20",
            "unknown stage `deplyo`",
        ),
        (
            "wrong_digest.toml",
            "wrong_digest.toml:9:10",
            "does not match the pin",
        ),
        (
            "bad_duration.toml",
            "bad_duration.toml:9:11",
            "invalid duration",
        ),
        (
            "unknown_target.toml",
            "unknown_target.toml:10:20",
            "unknown target `prodution`",
        ),
        (
            "missing_plugin.toml",
            "missing_plugin.toml:8:10",
            "plugin file not found",
        ),
    ];
    for (file, location, message) in cases {
        let (code, text) = validate(&fixtures().join(file));
        assert_eq!(code, 3, "{file}: {text}");
        assert!(
            text.contains(location),
            "{file}: expected {location} in\n{text}"
        );
        assert!(
            text.contains(message),
            "{file}: expected {message:?} in\n{text}"
        );
        assert!(text.contains('^'), "{file}: no caret in\n{text}");
    }
}

#[test]
fn all_problems_are_reported_at_once() {
    let (code, text) = validate(&fixtures().join("multiple_errors.toml"));
    assert_eq!(code, 3);
    assert!(text.contains("18 problems found"), "{text}");
}

#[test]
fn the_root_pipeline_is_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipeline.toml");
    let (code, text) = validate(&root);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(": ok"), "{text}");
}

#[test]
fn an_unknown_target_is_a_usage_error() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipeline.toml");
    let out = Command::new(common::valero_bin())
        .args(["plan", "--target", "prod"])
        .arg(&root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown target `prod`"));
}

/// Every ungranted capability import is reported by `validate` (no compile),
/// each with a grant line that `validate` then accepts.
#[test]
fn validate_reports_every_ungranted_capability_with_a_grant_line_it_accepts() {
    use common::{Project, header, plugin_lines, stderr};
    let stages = |p: &str, c: &str| {
        format!(
            "{}[stages.p]\n{}{p}\n[stages.c]\n{}{c}\n",
            header("caps"),
            plugin_lines("wants-processes"),
            plugin_lines("wants-containers"),
        )
    };
    let project = Project::new(&stages("", ""));
    let out = project.command(&["validate"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{text}");
    for want in [
        "stage `p`: plugin imports `valero:stage/processes@0.1.0`",
        "add under [stages.p.grants]: processes = true",
        "stage `c`: plugin imports `valero:stage/containers@0.1.0`",
        "add under [stages.c.grants]: containers = { project = \"…\" }",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // The suggested lines, filled in, pass.
    let project = Project::new(&stages(
        "grants = { processes = true }",
        "grants = { containers = { project = \"demo\" } }",
    ));
    let out = project.command(&["validate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn plan_shows_each_stages_limits() {
    use common::{Project, header, plugin_lines};
    let project = Project::new(&format!(
        "{}[stages.small]\n{}limits = {{ memory = \"64MiB\", output = \"2MiB\" }}\n[stages.default]\n{}",
        header("limits"),
        plugin_lines("testkit"),
        plugin_lines("testkit"),
    ));
    let out = project.command(&["plan"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("limits:  memory 64 MiB (linear memories and tables), output 2 MiB"),
        "{text}"
    );
    assert!(text.contains("limits:  memory 256 MiB"), "{text}");
}
