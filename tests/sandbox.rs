//! Hostile plugins are contained, each with a clear per-stage verdict, while
//! the runner and the other stages carry on. Every attack has a control
//! stage beside it that does the same thing with the grant, so a test cannot
//! pass just because the feature is broken.

mod common;

use common::*;

#[test]
fn hostile_plugins_are_contained() {
    let tk = plugin_lines("testkit");
    let wants = plugin_lines("wants-processes");
    let http_port = http_server();
    let tcp_port = tcp_listener();
    let other_port = tcp_listener();
    let scratch = tempfile::tempdir().unwrap();
    let granted = scratch.path().join("granted");
    let readonly = scratch.path().join("readonly");
    std::fs::create_dir_all(&granted).unwrap();
    std::fs::create_dir_all(&readonly).unwrap();
    std::fs::write(granted.join("ok.txt"), "inside").unwrap();
    std::fs::write(scratch.path().join("secret.txt"), "outside").unwrap();
    let g = granted.display();
    let ro = readonly.display();

    let mut p = header("hostile");
    let mut add = |name: &str, body: &str| {
        p.push_str(&format!("[stages.{name}]\n{body}\n"));
    };
    add(
        "spin",
        &format!("{tk}timeout = \"2s\"\nwith = {{ behavior = \"spin\" }}"),
    );
    add(
        "membomb",
        &format!("{tk}with = {{ behavior = \"membomb\" }}\nlimits = {{ memory = \"64MiB\" }}"),
    );
    add(
        "flood",
        &format!(
            "{tk}with = {{ behavior = \"flood\", bytes = 100000000 }}\nlimits = {{ output = \"1MiB\" }}"
        ),
    );
    add(
        "read-passwd",
        &format!(
            "{tk}with = {{ behavior = \"read-file\", path = \"/etc/passwd\" }}\ngrants = {{ fs = {{ read = [\"{g}\"] }} }}"
        ),
    );
    add(
        "read-escape",
        &format!(
            "{tk}with = {{ behavior = \"read-file\", path = \"{g}/../secret.txt\" }}\ngrants = {{ fs = {{ read = [\"{g}\"] }} }}"
        ),
    );
    add(
        "read-granted",
        &format!(
            "{tk}with = {{ behavior = \"read-file\", path = \"{g}/ok.txt\" }}\ngrants = {{ fs = {{ read = [\"{g}\"] }} }}"
        ),
    );
    add(
        "write-readonly",
        &format!(
            "{tk}with = {{ behavior = \"write-file\", path = \"{ro}/x.txt\", text = \"x\" }}\ngrants = {{ fs = {{ read = [\"{ro}\"] }} }}"
        ),
    );
    add(
        "write-granted",
        &format!(
            "{tk}with = {{ behavior = \"write-file\", path = \"{g}/new.txt\", text = \"x\" }}\ngrants = {{ fs = {{ write = [\"{g}\"] }} }}"
        ),
    );
    add(
        "tcp-ungranted",
        &format!(
            "{tk}with = {{ behavior = \"tcp\", addr = \"127.0.0.1:{other_port}\" }}\ngrants = {{ tcp = [\"127.0.0.1:{tcp_port}\"] }}"
        ),
    );
    add(
        "tcp-granted",
        &format!(
            "{tk}with = {{ behavior = \"tcp\", addr = \"127.0.0.1:{tcp_port}\" }}\ngrants = {{ tcp = [\"127.0.0.1:{tcp_port}\"] }}"
        ),
    );
    add(
        "http-ungranted-port",
        &format!(
            "{tk}with = {{ behavior = \"http\", url = \"http://127.0.0.1:{http_port}/\" }}\ngrants = {{ http = [\"http://127.0.0.1:{other_port}\"] }}"
        ),
    );
    add(
        "http-no-grant",
        &format!("{tk}with = {{ behavior = \"http\", url = \"http://127.0.0.1:{http_port}/\" }}"),
    );
    add(
        "http-name-bad-address",
        &format!(
            "{tk}with = {{ behavior = \"http\", url = \"http://localhost:{http_port}/\" }}\ngrants = {{ http = [\"http://localhost:{http_port}\"], addresses = [\"10.0.0.0/8\"] }}"
        ),
    );
    add(
        "http-granted",
        &format!(
            "{tk}with = {{ behavior = \"http\", url = \"http://localhost:{http_port}/\" }}\ngrants = {{ http = [\"http://localhost:{http_port}\"] }}"
        ),
    );
    add(
        "env-denied",
        &format!("{tk}with = {{ behavior = \"env\" }}"),
    );
    add("capability", &wants);
    add(
        "panic",
        &format!("{tk}with = {{ behavior = \"panic\", message = \"boom-42\" }}"),
    );
    add("trap", &format!("{tk}with = {{ behavior = \"trap\" }}"));
    add(
        "blocked",
        &format!("{tk}timeout = \"1s\"\nwith = {{ behavior = \"sleep\", ms = 60000 }}"),
    );
    add(
        "bystander",
        &format!("{tk}with = {{ behavior = \"sleep\", ms = 100 }}"),
    );

    let project = Project::new(&p);
    let (code, report, out) = project.run(&["--jobs", "32"]);
    let log = stderr(&out);
    let status = |name: &str| {
        stage(&report, name)["status"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let reason = |name: &str| {
        stage(&report, name)["reason"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let outputs = |name: &str| stage(&report, name)["outputs"].clone();

    // A refused plugin load decides the exit code (4), the rest still ran.
    assert_eq!(code, 4, "{log}");
    assert_eq!(status("bystander"), "passed", "{log}");

    // Infinite loop: stopped by the 2 s timeout, within timeout + 1 s.
    assert_eq!(status("spin"), "failed");
    assert!(
        reason("spin").contains("timed out after 2s"),
        "{}",
        reason("spin")
    );
    let a = &stage(&report, "spin")["attempts"][0];
    let took = a["end_ms"].as_f64().unwrap() - a["start_ms"].as_f64().unwrap();
    assert!(took < 3000.0, "spin took {took} ms");
    assert_eq!(a["outcome"], "timed_out");

    // A host call that blocks (a 60 s sleep): the outer timeout stops it too.
    let a = &stage(&report, "blocked")["attempts"][0];
    let took = a["end_ms"].as_f64().unwrap() - a["start_ms"].as_f64().unwrap();
    assert_eq!(a["outcome"], "timed_out", "{a:#}");
    assert!(took < 2000.0, "blocked took {took} ms");

    // Memory bomb: stopped at the cap.
    assert_eq!(status("membomb"), "failed");
    assert_eq!(
        stage(&report, "membomb")["attempts"][0]["outcome"],
        "memory_limit",
        "{}",
        reason("membomb")
    );
    assert!(reason("membomb").contains("memory limit reached"));

    // 100 MB of stdout: capped at 1 MiB, the rest counted, the stage still passes.
    let flood = &stage(&report, "flood")["attempts"][0]["stdout"];
    assert_eq!(status("flood"), "passed", "{}", reason("flood"));
    assert_eq!(flood["bytes"], 1024 * 1024);
    assert_eq!(flood["dropped"], 100_000_000 - 1024 * 1024);
    let records = std::fs::read_dir(project.path().join(".valero/runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let kept = std::fs::metadata(records.join("stages/flood/attempt-1/stdout.log"))
        .unwrap()
        .len();
    assert_eq!(kept, 1024 * 1024);

    // Filesystem: nothing outside the preopens, no writes to read-only ones.
    assert_eq!(status("read-passwd"), "failed");
    assert_eq!(status("read-escape"), "failed");
    assert!(!outputs("read-escape").to_string().contains("outside"));
    assert_eq!(
        status("read-granted"),
        "passed",
        "{}",
        reason("read-granted")
    );
    assert_eq!(outputs("read-granted")["content"], "inside");
    assert_eq!(status("write-readonly"), "failed");
    assert!(!readonly.join("x.txt").exists());
    assert_eq!(
        status("write-granted"),
        "passed",
        "{}",
        reason("write-granted")
    );
    assert!(granted.join("new.txt").exists());

    // Network: only granted ports, only granted resolved addresses.
    assert_eq!(status("tcp-ungranted"), "failed");
    assert_eq!(status("tcp-granted"), "passed", "{}", reason("tcp-granted"));
    assert_eq!(status("http-ungranted-port"), "failed");
    assert!(
        reason("http-ungranted-port").contains("denied"),
        "{}",
        reason("http-ungranted-port")
    );
    assert_eq!(status("http-no-grant"), "failed");
    assert!(reason("http-no-grant").contains("denied"));
    assert_eq!(status("http-name-bad-address"), "failed");
    assert!(reason("http-name-bad-address").contains("denied"));
    assert_eq!(
        status("http-granted"),
        "passed",
        "{}",
        reason("http-granted")
    );

    // Environment: nothing of the host's leaks in.
    assert_eq!(status("env-denied"), "passed");
    let env = outputs("env-denied");
    assert!(
        env.get("PATH").is_none() && env.get("HOME").is_none(),
        "{env}"
    );

    // Ungranted capability: refused at load, with stage, interface and grant named.
    assert_eq!(status("capability"), "failed");
    let r = reason("capability");
    assert!(
        r.contains("stage `capability`")
            && r.contains("valero:stage/processes@0.1.0")
            && r.contains("processes = true"),
        "{r}"
    );
    assert!(
        stage(&report, "capability")["attempts"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Panics and traps: fail, the message kept.
    assert_eq!(status("panic"), "failed");
    let panic_attempt = stage(&report, "panic")["attempts"][0].to_string();
    assert!(panic_attempt.contains("boom-42"), "{panic_attempt}");
    assert_eq!(status("trap"), "failed");
    assert!(reason("trap").contains("trapped"), "{}", reason("trap"));
}

/// A granted directory an earlier stage creates passes validation; if it is
/// still missing when its stage starts, that stage fails and says why.
#[test]
fn a_granted_directory_may_appear_during_the_run_and_must_exist_at_stage_start() {
    let tk = plugin_lines("testkit");
    let project = Project::new(&format!(
        "{}[stages.read]\n{tk}with = {{ behavior = \"read-file\", path = \"out/later.txt\" }}\ngrants = {{ fs = {{ read = [\"out\"] }} }}\n",
        header("late-dir")
    ));
    let out = project.command(&["validate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (code, report, out) = project.run(&[]);
    assert_eq!(code, 1, "{report:#}\n{}", stderr(&out));
    let text = format!("{report}{}", stderr(&out));
    assert!(
        text.contains("granted directory") && text.contains("out"),
        "{text}"
    );
    std::fs::create_dir_all(project.path().join("out")).unwrap();
    std::fs::write(project.path().join("out/later.txt"), "here").unwrap();
    let (code, report, out) = project.run(&[]);
    assert_eq!(code, 0, "{report:#}\n{}", stderr(&out));
}

/// The last `n` characters of `s` (for failure messages).
fn last_chars(s: &str, n: usize) -> String {
    let count = s.chars().count();
    s.chars().skip(count.saturating_sub(n)).collect()
}

/// The runner's peak resident memory (VmHWM) while `cmd` runs, and its output.
#[cfg(target_os = "linux")]
fn peak_rss(mut cmd: std::process::Command) -> (u64, std::process::Output) {
    use std::io::Read;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Drain the pipes while polling, so a chatty runner does not block.
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let output = std::process::Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    };
    (peak_kib * 1024, output)
}

/// A plugin logging and reporting progress as fast as it can: what reaches
/// the terminal or CI log is bounded by the output limit, and a marker says
/// how much was not shown. The control stage's line is still shown.
#[cfg(target_os = "linux")]
#[test]
fn a_log_flood_is_bounded_on_the_terminal_and_says_what_was_not_shown() {
    let tk = plugin_lines("testkit");
    let p = format!(
        "{}[stages.flood]\n{tk}with = {{ behavior = \"log-flood\", ms = 2000 }}\nlimits = {{ output = \"1MiB\" }}\n\
         [stages.progress]\n{tk}with = {{ behavior = \"progress-flood\", ms = 2000 }}\nlimits = {{ output = \"1MiB\" }}\n\
         [stages.control]\n{tk}with = {{ behavior = \"print\", text = \"control-line-shown\" }}\n",
        header("log-flood")
    );
    let project = Project::new(&p);
    // -v: plugin progress is shown too (at DEBUG).
    let cmd = project.command(&[
        "-v",
        "run",
        "--progress",
        "plain",
        "--report",
        "json=report.json",
    ]);
    let (peak, out) = peak_rss(cmd);
    let log = stderr(&out);
    eprintln!(
        "log flood: {} bytes on stderr, {} on stdout, runner peak RSS {} MiB",
        out.stderr.len(),
        out.stdout.len(),
        peak >> 20
    );
    assert_eq!(out.status.code(), Some(0), "{}", last_chars(&log, 4000));
    assert!(
        out.stderr.len() < 3 << 20,
        "{} bytes on stderr under a 1 MiB output limit",
        out.stderr.len()
    );
    assert!(
        log.contains("[control] control-line-shown"),
        "{}",
        last_chars(&log, 4000)
    );
    let marker = log
        .lines()
        .find(|l| l.contains("[flood] …") && l.contains("log lines") && l.contains("not shown"))
        .unwrap_or_else(|| panic!("no marker in {}", last_chars(&log, 4000)));
    eprintln!("{marker}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.path().join("report.json")).unwrap())
            .unwrap();
    let flood = &stage(&report, "flood")["attempts"][0];
    assert!(
        flood["logs_dropped"].as_u64().unwrap() > 0,
        "{}",
        flood["logs_dropped"]
    );
}

/// A report the host cannot hold: a million checks fails its stage with a
/// message naming the cap; a 100 MB summary is cut visibly; a report
/// within the caps (the control) passes whole. Reports and records stay small.
#[cfg(target_os = "linux")]
#[test]
fn oversized_reports_are_capped_while_decoding() {
    let tk = plugin_lines("testkit");
    let p = format!(
        "{}[stages.checks]\n{tk}with = {{ behavior = \"big-report\", n = 1000000 }}\nlimits = {{ memory = \"1GiB\" }}\n\
         [stages.summary]\n{tk}with = {{ behavior = \"big-report\", n = 1, bytes = 100000000 }}\nlimits = {{ memory = \"1GiB\" }}\n\
         [stages.control]\n{tk}with = {{ behavior = \"big-report\", n = 500, bytes = 1000 }}\n",
        header("big-report")
    );
    let project = Project::new(&p);
    let cmd = project.command(&["run", "--progress", "plain", "--report", "json=report.json"]);
    let (peak, out) = peak_rss(cmd);
    let report_text = std::fs::read_to_string(project.path().join("report.json")).unwrap();
    let records: u64 = files_under(&project.path().join(".valero"))
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    eprintln!(
        "big reports: report.json {} bytes, run records {records} bytes, runner peak RSS {} MiB",
        report_text.len(),
        peak >> 20
    );
    let report: serde_json::Value = serde_json::from_str(&report_text).unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    let checks = stage(&report, "checks");
    assert_eq!(checks["status"], "failed");
    let reason = checks["reason"].as_str().unwrap();
    assert!(
        reason.contains("1000000 checks") && reason.contains("10000"),
        "{reason}"
    );
    assert!(checks["checks"].as_array().unwrap().len() <= 10_000);

    let summary = stage(&report, "summary");
    assert_eq!(summary["status"], "passed", "{summary:#}");
    let text = summary["summary"].as_str().unwrap();
    assert!(text.len() < 70_000, "summary of {} bytes", text.len());
    assert!(text.contains("not shown"), "{}", last_chars(text, 200));

    let control = stage(&report, "control");
    assert_eq!(control["status"], "passed", "{control:#}");
    assert_eq!(control["checks"].as_array().unwrap().len(), 500);
    assert_eq!(control["summary"].as_str().unwrap(), "s".repeat(1000));

    assert!(
        report_text.len() < 4 << 20,
        "report.json of {} bytes",
        report_text.len()
    );
    assert!(records < 16 << 20, "run records of {records} bytes");
}
