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
