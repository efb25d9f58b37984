//! Shared helpers for the end-to-end tests: run the real `valero` binary on
//! pipelines written into temporary directories, with the test plugins.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub mod databases;
pub mod docker;
pub mod wasm;

pub fn valero_bin() -> &'static str {
    env!("CARGO_BIN_EXE_valero")
}

/// A test plugin built by runner/build.rs (e.g. `testkit`).
pub fn plugin(name: &str) -> PathBuf {
    Path::new(env!("VALERO_PLUGINS_DIR")).join(format!("{}.wasm", name.replace('-', "_")))
}

pub fn sha256_hex(path: &Path) -> String {
    use sha2::Digest;
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    hex::encode(sha2::Sha256::digest(bytes))
}

/// `plugin = "…"` and `sha256 = "…"` lines for a test plugin.
pub fn plugin_lines(name: &str) -> String {
    let p = plugin(name);
    format!(
        "plugin = {:?}\nsha256 = {:?}\n",
        p.display().to_string(),
        sha256_hex(&p)
    )
}

/// A temporary project directory with a pipeline.toml.
pub struct Project {
    pub dir: tempfile::TempDir,
    pub cache: PathBuf,
}

/// The pipeline header every test pipeline starts with.
pub fn header(name: &str) -> String {
    format!(
        "[pipeline]\nname = {name:?}\ndefault_target = \"local\"\ntimeout = \"5m\"\n\n[targets.local]\n[targets.staging]\n\n"
    )
}

impl Project {
    pub fn new(pipeline: &str) -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("pipeline.toml"), pipeline).expect("write pipeline");
        // A cache shared by the tests keeps them fast; tests about the cache use their own.
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("valero-test-cache");
        Project { dir, cache }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(valero_bin());
        cmd.current_dir(self.path())
            .env("VALERO_CACHE_DIR", &self.cache)
            .env_remove("VALERO_LOG")
            .args(args);
        cmd
    }

    /// `valero run` with a JSON report; returns (exit code, report, output).
    pub fn run(&self, extra: &[&str]) -> (i32, Value, Output) {
        self.run_with_env(extra, &[])
    }

    /// [`Project::run`] with these variables in valero's environment.
    pub fn run_with_env(&self, extra: &[&str], env: &[(&str, &str)]) -> (i32, Value, Output) {
        let report_path = self.path().join("report.json");
        let _ = std::fs::remove_file(&report_path);
        let mut args = vec!["run", "--progress", "plain", "--report", "json=report.json"];
        args.extend_from_slice(extra);
        let out = self
            .command(&args)
            .envs(env.iter().copied())
            .output()
            .expect("run valero");
        let report = std::fs::read_to_string(&report_path)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), report, out)
    }
}

/// Copies the files of `from/dir` to `to/dir` (not recursive): the suites a
/// copied pipeline reads, next to it as in the repository.
pub fn copy_dir(from: &Path, to: &Path, dir: &str) {
    let target = to.join(dir);
    std::fs::create_dir_all(&target).unwrap();
    for entry in std::fs::read_dir(from.join(dir)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), target.join(entry.file_name())).unwrap();
    }
}

pub fn stage<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["stages"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("stage `{name}` not in report: {report:#}"))
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A minimal HTTP/1.1 server on 127.0.0.1 answering every request with
/// `200 ok`, in a background thread. Returns its port.
pub fn http_server() -> u16 {
    scripted_server(|_, _| Reply::new(200, "ok"))
}

/// What a [`scripted_server`] answers.
pub struct Reply {
    pub status: u16,
    pub body: String,
    /// Wait this long before answering.
    pub delay: std::time::Duration,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            body: body.into(),
            delay: std::time::Duration::ZERO,
        }
    }

    pub fn after(mut self, delay: std::time::Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// An HTTP/1.1 server on 127.0.0.1 (one thread per connection, one request
/// per connection) answering `handler(method, path)`. Returns its port.
pub fn scripted_server(handler: impl Fn(&str, &str) -> Reply + Send + Sync + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handler = std::sync::Arc::new(handler);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let handler = handler.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(&stream);
                let mut request_line = String::new();
                let _ = reader.read_line(&mut request_line);
                let mut parts = request_line.split_whitespace();
                let method = parts.next().unwrap_or_default().to_string();
                let path = parts.next().unwrap_or_default().to_string();
                let mut length = 0usize;
                let mut line = String::new();
                while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    if line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':')
                        && k.eq_ignore_ascii_case("content-length")
                    {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    line.clear();
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let reply = handler(&method, &path);
                std::thread::sleep(reply.delay);
                let head = format!(
                    "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    reply.status,
                    reply.body.len()
                );
                let mut s = &stream;
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(reply.body.as_bytes());
                let _ = s.flush();
            });
        }
    });
    port
}

/// A TCP listener on 127.0.0.1 that accepts and drops connections.
pub fn tcp_listener() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || for _ in listener.incoming() {});
    port
}
