//! What the host holds on a stage's behalf is bounded, and a guest that
//! hits a bound — or traps, or exits — gets a reason that says so first.
//! The attacks are real guest programs (`hostile-host`, `testkit`); each
//! has a bounded control that a real plugin resembles and that still passes.

mod common;

use std::process::Stdio;

use common::*;
use valero::sandbox::host_limits::{HOST_RESOURCE_BYTES, MAX_TABLE_ENTRIES};

/// Runs `valero run --jobs 1` in `project` and returns (exit code, report,
/// stderr, peak RSS of the runner in bytes), the RSS from the kernel's
/// accounting of that one child process.
// The child is reaped by wait4 (which also reports its rusage), not by wait().
#[allow(clippy::zombie_processes)]
fn run_measured(project: &Project) -> (i32, serde_json::Value, String, u64) {
    let errors = project.path().join("stderr.txt");
    let child = project
        .command(&[
            "run",
            "--progress",
            "plain",
            "--jobs",
            "1",
            "--report",
            "json=report.json",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&errors).unwrap())
        .spawn()
        .expect("run valero");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not yet waited for; the pointers are valid.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4: {}", std::io::Error::last_os_error());
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    let report = std::fs::read_to_string(project.path().join("report.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(serde_json::Value::Null);
    let stderr = std::fs::read_to_string(&errors).unwrap_or_default();
    // ru_maxrss is in KiB on Linux.
    (code, report, stderr, usage.ru_maxrss as u64 * 1024)
}

fn add(p: &mut String, name: &str, plugin: &str, body: &str) {
    p.push_str(&format!("[stages.{name}]\n{plugin}{body}\n"));
}

#[test]
fn host_memory_for_http_fields_and_resources_stays_within_the_stage_limit_plus_the_host_cap() {
    let hh = plugin_lines("hostile-host");
    const STAGE_MEMORY: u64 = 64 << 20;
    let limits = "limits = { memory = \"64MiB\" }";

    // The runner's own footprint: the same plugin, doing nothing hostile.
    let mut base = header("host-memory-base");
    add(
        &mut base,
        "fields-control",
        &hh,
        &format!("with = {{ behavior = \"fields\", n = 100, value_bytes = 1000 }}\n{limits}"),
    );
    add(
        &mut base,
        "resources-control",
        &hh,
        &format!("with = {{ behavior = \"resources\", n = 100 }}\n{limits}"),
    );
    let base = Project::new(&base);
    let (code, report, log, base_rss) = run_measured(&base);
    assert_eq!(code, 0, "{report:#}\n{log}");
    assert_eq!(stage(&report, "fields-control")["status"], "passed");
    assert_eq!(stage(&report, "resources-control")["status"], "passed");

    let mut p = header("host-memory");
    // The attack of the report: ~9,000 fields of 100 kB each (910 MB before).
    add(
        &mut p,
        "fields-100k",
        &hh,
        &format!("with = {{ behavior = \"fields\", n = 9000, value_bytes = 100000 }}\n{limits}"),
    );
    // Fields just under the per-fields cap, until the table is full.
    add(
        &mut p,
        "fields-flood",
        &hh,
        &format!("with = {{ behavior = \"fields\", n = 0, value_bytes = 16000 }}\n{limits}"),
    );
    add(
        &mut p,
        "resources-flood",
        &hh,
        &format!("with = {{ behavior = \"resources\", n = 0 }}\n{limits}"),
    );
    let project = Project::new(&p);
    let (code, report, log, rss) = run_measured(&project);
    assert_eq!(code, 1, "{report:#}\n{log}");
    let reason = |name: &str| {
        stage(&report, name)["reason"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let outcome = |name: &str| stage(&report, name)["attempts"][0]["outcome"].clone();

    // A 100 kB header value is over the per-fields cap: refused by the host
    // (wasi-http ends the call with "total size of fields exceeds limit").
    assert_eq!(stage(&report, "fields-100k")["status"], "failed");
    assert!(
        reason("fields-100k").contains("refused fields number 1 ")
            || reason("fields-100k").contains("total size of fields exceeds limit"),
        "{}",
        reason("fields-100k")
    );

    // Floods end at the resource-table cap, and the reason names it first.
    for name in ["fields-flood", "resources-flood"] {
        assert_eq!(outcome(name), "resource_limit", "{name}: {}", reason(name));
        let first = reason(name).lines().next().unwrap_or("").to_string();
        assert!(
            first.starts_with("resource limit reached")
                && first.contains(&format!("{MAX_TABLE_ENTRIES} host resources")),
            "{name}: {first}"
        );
        assert!(
            reason(name).contains("help: the plugin must drop"),
            "{}",
            reason(name)
        );
    }

    // Peak RSS: the runner's own, the stage's memory, and the host cap.
    let bound = base_rss + STAGE_MEMORY + HOST_RESOURCE_BYTES as u64;
    eprintln!(
        "peak RSS: base {} MiB, attacked {} MiB, bound {} MiB",
        base_rss >> 20,
        rss >> 20,
        bound >> 20
    );
    assert!(
        rss <= bound,
        "runner peaked at {} MiB, over base {} MiB + stage 64 MiB + host cap {} MiB",
        rss >> 20,
        base_rss >> 20,
        HOST_RESOURCE_BYTES >> 20
    );
}

#[test]
fn floods_of_host_calls_exits_and_traps_end_with_their_cause_first() {
    let hh = plugin_lines("hostile-host");
    let tk = plugin_lines("testkit");
    let mut p = header("causes");
    add(
        &mut p,
        "host-calls-flood",
        &hh,
        "timeout = \"2s\"\nwith = { behavior = \"host-calls\", n = 0 }",
    );
    add(
        &mut p,
        "host-calls-control",
        &hh,
        "with = { behavior = \"host-calls\", n = 10000 }",
    );
    add(
        &mut p,
        "exit-0",
        &hh,
        "with = { behavior = \"exit\", code = 0 }",
    );
    add(
        &mut p,
        "exit-3",
        &hh,
        "with = { behavior = \"exit\", code = 3 }",
    );
    add(&mut p, "recurse", &hh, "with = { behavior = \"recurse\" }");
    add(
        &mut p,
        "panic",
        &tk,
        "with = { behavior = \"panic\", message = \"boom-42\" }",
    );
    let project = Project::new(&p);
    let (code, report, out) = project.run(&["--jobs", "8"]);
    let log = stderr(&out);
    assert_eq!(code, 1, "{report:#}\n{log}");
    let reason = |name: &str| {
        stage(&report, name)["reason"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let first = |name: &str| reason(name).lines().next().unwrap_or("").to_string();
    let attempt = |name: &str| stage(&report, name)["attempts"][0].clone();

    // A guest that only calls the host is still stopped at its timeout.
    let a = attempt("host-calls-flood");
    assert_eq!(a["outcome"], "timed_out", "{a:#}");
    let took = a["end_ms"].as_f64().unwrap() - a["start_ms"].as_f64().unwrap();
    assert!(took < 3000.0, "host-call flood took {took} ms");
    assert_eq!(
        stage(&report, "host-calls-control")["status"],
        "passed",
        "{}",
        reason("host-calls-control")
    );

    // exit(0) is an exit, not a trap: no wasm frames, and it says what to do.
    // WASI 0.2's `exit` carries only success or failure: std's exit(3)
    // reaches the host as exit(1).
    for (name, code) in [("exit-0", 0), ("exit-3", 1)] {
        assert_eq!(attempt(name)["outcome"], "exited", "{}", reason(name));
        assert!(
            first(name).contains(&format!(
                "called exit({code}) instead of returning a report"
            )),
            "{}",
            reason(name)
        );
        assert!(!reason(name).contains("wasm backtrace"), "{}", reason(name));
        assert!(!reason(name).contains("trapped"), "{}", reason(name));
    }

    // A trap's cause is on the first line, before the wasm frames.
    assert_eq!(attempt("recurse")["outcome"], "trapped");
    assert!(
        first("recurse").contains("call stack exhausted"),
        "{}",
        reason("recurse")
    );
    assert!(
        first("panic").contains("panicked at") && first("panic").contains("boom-42"),
        "{}",
        reason("panic")
    );
    // The terminal summary shows the same first lines.
    let summary = log.rsplit("\n\n").next().unwrap_or(&log);
    assert!(
        log.contains("call stack exhausted") && log.contains("boom-42"),
        "{summary}"
    );
}
