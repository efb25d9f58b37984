//! A compile bomb (a small component that takes minutes to compile) is
//! stopped by the compile budget and reported as such, while `validate` and
//! `plugin inspect` never compile at all. The bomb is generated here, never
//! committed; its control is the same plugin without the bomb.

mod common;

use std::time::{Duration, Instant};

use common::wasm::{bomb_module, compile_bomb, with_extra_module};
use common::*;

/// Values on the bomb's operand stack: the report's 392 KB component had
/// 50,000 and took 73 s to compile.
const BOMB_VALUES: u32 = 50_000;

#[test]
fn a_compile_bomb_fails_its_stage_on_the_compile_budget_and_the_rest_runs() {
    let project = Project::new("");
    let testkit = std::fs::read(plugin("testkit")).unwrap();
    let bombed = with_extra_module(&testkit, &bomb_module(BOMB_VALUES));
    let bomb_path = project.path().join("bombed.wasm");
    std::fs::write(&bomb_path, &bombed).unwrap();
    let p = format!(
        "{}[stages.bomb]\nplugin = \"bombed.wasm\"\nsha256 = \"{}\"\nwith = {{ behavior = \"pass\" }}\n\
         [stages.control]\n{}with = {{ behavior = \"pass\" }}\n",
        header("bomb"),
        sha256_hex(&bomb_path),
        plugin_lines("testkit"),
    );
    std::fs::write(project.path().join("pipeline.toml"), p).unwrap();

    // The control compiles (into the cache) under the default budget first:
    // on a loaded machine even a normal plugin may take 2 s to compile.
    let (code, _, out) = project.run(&["--only", "control"]);
    assert_eq!(code, 0, "{}", stderr(&out));
    let started = Instant::now();
    let (code, report, out) = project.run(&["--compile-timeout", "2s"]);
    let took = started.elapsed();
    let log = stderr(&out);
    assert_eq!(code, 4, "{report:#}\n{log}");
    assert_eq!(stage(&report, "control")["status"], "passed", "{log}");
    let reason = stage(&report, "bomb")["reason"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        reason.contains("compile budget of 2s") && reason.contains("--compile-timeout"),
        "{reason}"
    );
    assert!(!reason.contains("deadline"), "{reason}");
    assert!(took < Duration::from_secs(30), "the run took {took:?}");
}

#[test]
fn validate_and_inspect_read_a_plugin_without_compiling_it() {
    // A bomb with no `run` export: not a stage plugin, and slow to compile.
    let project = Project::new("");
    let bomb_path = project.path().join("bomb.wasm");
    std::fs::write(&bomb_path, compile_bomb(BOMB_VALUES)).unwrap();
    std::fs::write(
        project.path().join("pipeline.toml"),
        format!(
            "{}[stages.bomb]\nplugin = \"bomb.wasm\"\nsha256 = \"{}\"\n",
            header("no-run"),
            sha256_hex(&bomb_path)
        ),
    )
    .unwrap();
    let started = Instant::now();
    let out = project.command(&["validate"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(
        text.contains("stage `bomb`") && text.contains("does not export `run`"),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "validate compiled"
    );

    // inspect of a bombed but otherwise valid plugin lists it at once.
    let testkit = std::fs::read(plugin("testkit")).unwrap();
    let bombed = project.path().join("bombed.wasm");
    std::fs::write(
        &bombed,
        with_extra_module(&testkit, &bomb_module(BOMB_VALUES)),
    )
    .unwrap();
    let started = Instant::now();
    let out = project
        .command(&["plugin", "inspect", bombed.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("func run"), "{text}");
    assert!(text.contains("valero:stage/log@0.1.0"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "inspect compiled"
    );
}
