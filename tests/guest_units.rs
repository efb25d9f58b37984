//! The guest crates' own unit tests (the Hurl subset's parser and runner, the
//! health plugin's probe logic, the compose subset's parser, the Kubernetes
//! deploy's rendering and its flow against a fake cluster) run natively here, so the one test command
//! covers them too. They live in the `plugins/` workspace (target
//! wasm32-wasip2), which the runner's workspace cannot include.

use std::path::Path;
use std::process::Command;

#[test]
fn guest_crates_pass_their_unit_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "test",
        "--locked",
        "-p",
        "valero-hurl",
        "-p",
        "health",
        "-p",
        "valero-compose",
        "-p",
        "deploy-kubernetes",
        "--manifest-path",
    ])
    .arg(root.join("plugins/Cargo.toml"))
    .arg("--target-dir")
    .arg(root.join("target/plugins-native"));
    // The outer cargo's settings must not leak into this build (as in runner/build.rs).
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if (key.starts_with("CARGO_") && key != "CARGO_HOME")
            || key.starts_with("RUSTC")
            || key == "RUSTFLAGS"
        {
            cmd.env_remove(key.as_ref());
        }
    }
    let out = cmd.output().expect("run cargo test for the guest crates");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "guest unit tests failed:\n{text}");
    // All crates ran tests (a filter or a missing crate would pass vacuously).
    let ran: usize = text
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert!(ran >= 90, "only {ran} guest unit tests ran:\n{text}");
}
