//! `hostile-grants`: a test plugin that goes after the network and filesystem
//! grants the way an attacker would. The host's tests pair each attack with a
//! granted control.
//!
//! `with.behavior` selects what it does:
//!
//! | behavior | with | effect |
//! |---|---|---|
//! | `lookup` | `name` | resolves `name` itself (wasi:sockets ip-name-lookup); pass with `addresses`, or fail with the error |
//! | `http` | `url`, `headers` (`[[name, value]]`), `timeout_ms` (5000) | GET `url` with its authority exactly as written; headers the host refuses are left out and listed in `refused_headers`; pass with `status` and `body`, or fail with the error |
//! | `symlink` | `dir` (a preopened path), `target`, `link` | plants the link `dir/link -> target`; pass, or fail with the error |
//! | `read-file` | `path` | pass with `content`, or fail with the error |
//! | `write-file` | `path`, `text` | pass, or fail with the error |

use std::net::ToSocketAddrs;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use valero_sdk::{Check, Plugin, Report, http};

#[derive(Deserialize, Default)]
#[serde(default)]
struct With {
    behavior: String,
    name: String,
    url: String,
    headers: Vec<(String, String)>,
    timeout_ms: Option<u64>,
    dir: String,
    target: String,
    link: String,
    path: String,
    text: String,
}

struct HostileGrants;

impl Plugin for HostileGrants {
    fn run() -> Report {
        let with: With = match valero_sdk::config() {
            Ok(with) => with,
            Err(e) => return Report::fail(e),
        };
        match with.behavior.as_str() {
            "lookup" => lookup(&with.name),
            "http" => get(&with),
            "symlink" => symlink(&with.dir, &with.target, &with.link),
            "read-file" => match std::fs::read_to_string(&with.path) {
                Ok(content) => pass("read-file").outputs(json!({ "content": content })),
                Err(e) => fail("read-file", format!("{}: {e}", with.path)),
            },
            "write-file" => match std::fs::write(&with.path, &with.text) {
                Ok(()) => pass("write-file"),
                Err(e) => fail("write-file", format!("{}: {e}", with.path)),
            },
            other => fail(
                "behavior",
                format!("unknown hostile-grants behavior {other:?}"),
            ),
        }
    }
}

fn pass(name: &str) -> Report {
    Report::from_checks(format!("hostile-grants {name}"), vec![Check::pass(name)])
}

fn fail(name: &str, message: impl Into<String>) -> Report {
    let message = message.into();
    Report::from_checks(
        format!("hostile-grants {name}: {message}"),
        vec![Check::fail(name).message(message)],
    )
}

/// Through the guest's own resolver (wasi-libc `getaddrinfo`).
fn lookup(name: &str) -> Report {
    match (name, 0).to_socket_addrs() {
        Ok(addrs) => {
            let addresses: Vec<String> = addrs.map(|a| a.ip().to_string()).collect();
            pass("lookup").outputs(json!({ "addresses": addresses }))
        }
        Err(e) => fail("lookup", format!("lookup of {name} failed: {e}")),
    }
}

fn get(with: &With) -> Report {
    // Headers one at a time: one the host forbids (e.g. `Host`) is recorded
    // and left out, the request still goes.
    let mut sent: Vec<(&str, &str)> = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    for (name, value) in &with.headers {
        let entry = [(name.clone(), value.as_bytes().to_vec())];
        match wasip2::http::types::Fields::from_list(&entry) {
            Ok(_) => sent.push((name, value)),
            Err(e) => refused.push(format!("{name}: {e:?}")),
        }
    }
    let timeout = Duration::from_millis(with.timeout_ms.unwrap_or(5000));
    match http::request("GET", &with.url, &sent, None, timeout) {
        Ok(resp) => pass("http").outputs(json!({
            "status": resp.status,
            "body": resp.text(),
            "refused_headers": refused,
        })),
        Err(e) => fail("http", e),
    }
}

fn symlink(dir: &str, target: &str, link: &str) -> Report {
    let preopens = wasip2::filesystem::preopens::get_directories();
    let Some((descriptor, _)) = preopens.iter().find(|(_, path)| path == dir) else {
        let paths: Vec<&str> = preopens.iter().map(|(_, p)| p.as_str()).collect();
        return fail(
            "symlink",
            format!("{dir} is not preopened (preopens: {paths:?})"),
        );
    };
    match descriptor.symlink_at(target, link) {
        Ok(()) => pass("symlink"),
        Err(e) => fail("symlink", format!("{dir}/{link} -> {target}: {e:?}")),
    }
}

valero_sdk::export_plugin!(HostileGrants);
