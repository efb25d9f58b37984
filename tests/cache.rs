//! The compile cache: a second run loads every plugin from it, and a
//! tampered entry is never loaded.

mod common;

use common::*;

fn sources(report: &serde_json::Value) -> Vec<String> {
    report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["load"]["source"].as_str().unwrap_or("none").to_string())
        .collect()
}

#[test]
fn second_run_loads_from_cache_and_tampered_entries_are_rejected() {
    let tk = plugin_lines("testkit");
    let p = format!(
        "{}[stages.a]\n{tk}with = {{ behavior = \"pass\" }}\n\
         [stages.b]\nplugin = \"builtin:repo-check\"\nwith = {{ require = [\"pipeline.toml\"] }}\ngrants = {{ fs = {{ read = [\".\"] }} }}\n",
        header("cache")
    );
    let mut project = Project::new(&p);
    let cache = tempfile::tempdir().unwrap();
    project.cache = cache.path().to_path_buf();

    let (code, first, out) = project.run(&[]);
    assert_eq!(code, 0, "{}", stderr(&out));
    assert_eq!(sources(&first), ["compiled", "compiled"]);

    let (code, second, _) = project.run(&[]);
    assert_eq!(code, 0);
    assert_eq!(sources(&second), ["cache", "cache"]);

    // Flip one byte in every entry: each must be rejected and recompiled.
    let mut tampered = 0;
    for entry in std::fs::read_dir(cache.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            let mut bytes = std::fs::read(&path).unwrap();
            let i = bytes.len() / 2;
            bytes[i] ^= 0x40;
            std::fs::write(&path, bytes).unwrap();
            tampered += 1;
        }
    }
    assert_eq!(tampered, 2);
    let (code, third, out) = project.run(&[]);
    assert_eq!(code, 0, "{}", stderr(&out));
    assert_eq!(sources(&third), ["compiled", "compiled"]);
    assert!(
        stderr(&out).contains("integrity tag does not verify"),
        "{}",
        stderr(&out)
    );

    // --no-cache never touches it.
    let (code, fourth, _) = project.run(&["--no-cache"]);
    assert_eq!(code, 0);
    assert_eq!(sources(&fourth), ["compiled", "compiled"]);
}

#[test]
fn stages_with_the_same_plugin_and_capabilities_share_one_load() {
    let tk = plugin_lines("testkit");
    let mut p = header("shared");
    for name in ["a", "b", "c"] {
        p.push_str(&format!(
            "[stages.{name}]\n{tk}with = {{ behavior = \"print\", text = \"{name}\" }}\n"
        ));
    }
    // Same plugin, other capabilities: a load of its own (it is linked differently).
    p.push_str(&format!(
        "[stages.d]\n{tk}with = {{ behavior = \"pass\" }}\ngrants = {{ processes = true }}\n"
    ));
    let mut project = Project::new(&p);
    let cache = tempfile::tempdir().unwrap();
    project.cache = cache.path().to_path_buf();
    let out = project
        .command(&["run", "--progress", "plain", "-v", "--log-format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let loads = stderr(&out)
        .lines()
        .filter(|l| l.contains("\"plugin loaded\""))
        .count();
    assert_eq!(loads, 2, "{}", stderr(&out));
    // One compiled artifact in the cache, not four.
    let entries = std::fs::read_dir(cache.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "cwasm")
        })
        .count();
    assert_eq!(entries, 1);
    // Records keep output that exists, and write no empty logs.
    let runs = project.path().join(".valero/runs");
    let run = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let a = run.join("stages/a/attempt-1");
    assert_eq!(
        std::fs::read_to_string(a.join("stdout.log")).unwrap(),
        "a\n"
    );
    let d = run.join("stages/d/attempt-1");
    assert!(d.join("attempt.json").exists());
    assert!(!d.join("stdout.log").exists());
}

/// A corrupt cache key does not stop the run: it is replaced (with a
/// warning), and every plugin is compiled again.
#[test]
fn a_corrupt_cache_key_is_replaced_and_the_run_goes_on() {
    let tk = plugin_lines("testkit");
    let p = format!(
        "{}[stages.a]\n{tk}with = {{ behavior = \"pass\" }}\n",
        header("corrupt-key")
    );
    let mut project = Project::new(&p);
    let cache = tempfile::tempdir().unwrap();
    project.cache = cache.path().to_path_buf();
    let (code, _, out) = project.run(&[]);
    assert_eq!(code, 0, "{}", stderr(&out));

    std::fs::write(cache.path().join("key"), b"not a key").unwrap();
    let (code, report, out) = project.run(&[]);
    assert_eq!(code, 0, "{}", stderr(&out));
    assert_eq!(sources(&report), ["compiled"]);
    assert!(
        stderr(&out).contains("compile cache key") && stderr(&out).contains("corrupt"),
        "{}",
        stderr(&out)
    );
    let (code, report, _) = project.run(&[]);
    assert_eq!(code, 0);
    assert_eq!(sources(&report), ["cache"]);
}
