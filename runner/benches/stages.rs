//! What a stage costs, each figure next to its baseline measured in the same
//! run on the same machine. Run with `cargo bench -p valero --bench stages`
//! (see BENCHMARKS.md); `-- --quick` for fewer iterations; `-- fan-out memory`
//! for some sections only (dispatch, load, interruption, host-calls, fan-out,
//! pipeline, memory).
//!
//! A bench binary rather than criterion: several baselines are whole
//! processes (`docker run`, a native spawn, the `valero` binary itself for
//! resident memory), and every figure is a median over timed repetitions.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use valero::engine::{LoadedPlugin, Runtime};
use valero::host::StageContext;
use valero::host::capabilities::{Registry, RunScope};
use valero::observer::Silent;
use valero::observer::StageIo;
use valero::pipeline::{Digest, Grants, Limits};
use valero::sandbox::SandboxSpec;
use valero::secrets::Masker;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 1 } else { 4 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut out = Results::default();
    let work = tempfile::tempdir().expect("tempdir");
    println!(
        "valero stage benchmarks ({} mode)\n",
        if quick { "quick" } else { "full" }
    );

    // `cargo bench … -- fan-out pipeline` runs only the sections named.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| name.contains(o.as_str()));
    if wanted("dispatch") {
        dispatch(&rt, &mut out, work.path(), 50 * scale);
    }
    if wanted("load") {
        load_path(&mut out, work.path(), 2 + scale);
    }
    if wanted("interruption") {
        interruption(&rt, &mut out, 3 + scale);
    }
    if wanted("host-calls") {
        host_calls(&rt, &mut out, 5 * scale);
    }
    if wanted("fan-out") {
        fan_out(&rt, &mut out, scale);
    }
    if wanted("pipeline") {
        pipeline_overhead(&rt, &mut out, work.path(), scale);
    }
    if wanted("memory") {
        memory(&mut out, work.path());
    }

    let report = out.render();
    println!("{report}");
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("bench-results.md");
    if std::fs::write(&path, &report).is_ok() {
        println!("written to {}", path.display());
    }
}

// ------------------------------------------------------------ measuring

/// Milliseconds of each repetition.
fn time<F: FnMut()>(warmup: usize, iters: usize, mut f: F) -> Vec<f64> {
    for _ in 0..warmup {
        f();
    }
    (0..iters)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect()
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn p95(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * 0.95) as usize).min(v.len() - 1)]
}

#[derive(Default)]
struct Results {
    /// section -> rows (case, value text, note)
    sections: Vec<(String, Vec<[String; 3]>)>,
    goals: Vec<(String, String, bool)>,
}

impl Results {
    fn section(&mut self, name: &str) {
        println!("## {name}");
        self.sections.push((name.to_string(), Vec::new()));
    }

    fn row(&mut self, case: &str, value: String, note: &str) {
        println!("  {case:<58} {value:>24}  {note}");
        if let Some((_, rows)) = self.sections.last_mut() {
            rows.push([case.to_string(), value, note.to_string()]);
        }
    }

    fn timing(&mut self, case: &str, ms: &[f64], note: &str) -> f64 {
        let m = median(ms);
        self.row(
            case,
            format!("{} (p95 {})", fmt_ms(m), fmt_ms(p95(ms))),
            &format!(
                "n={}{}{note}",
                ms.len(),
                if note.is_empty() { "" } else { "; " }
            ),
        );
        m
    }

    fn goal(&mut self, what: &str, measured: String, holds: bool) {
        println!(
            "  goal: {what}: {measured} -> {}",
            if holds { "holds" } else { "MISSED" }
        );
        self.goals.push((what.to_string(), measured, holds));
    }

    fn render(&self) -> String {
        let mut s = String::new();
        for (name, rows) in &self.sections {
            let _ = writeln!(s, "### {name}\n\n| case | median | notes |\n|---|---:|---|");
            for [case, value, note] in rows {
                let _ = writeln!(s, "| {case} | {value} | {note} |");
            }
            s.push('\n');
        }
        let _ = writeln!(s, "### Goals\n\n| goal | measured | holds |\n|---|---|---|");
        for (what, measured, holds) in &self.goals {
            let _ = writeln!(
                s,
                "| {what} | {measured} | {} |",
                if *holds { "yes" } else { "**no**" }
            );
        }
        s
    }
}

fn fmt_ms(ms: f64) -> String {
    if ms < 1.0 {
        format!("{:.1} µs", ms * 1000.0)
    } else if ms < 1000.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

// ------------------------------------------------------------ helpers

fn plugin_bytes(name: &str) -> Vec<u8> {
    let path =
        Path::new(env!("VALERO_PLUGINS_DIR")).join(format!("{}.wasm", name.replace('-', "_")));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn load(runtime: &Runtime, name: &str, bytes: &[u8], grants: &Grants) -> LoadedPlugin {
    runtime
        .load(name, bytes, None, &grants.capabilities)
        .unwrap_or_else(|e| panic!("load {name}: {e}"))
}

fn loopback_http_grants() -> Grants {
    Grants {
        http: vec![valero::pipeline::HttpGrant {
            scheme: "http".into(),
            host: "127.0.0.1".into(),
            port: valero::pipeline::PortPattern::Any,
        }],
        addresses: vec!["127.0.0.0/8".parse().expect("net")],
        ..Grants::default()
    }
}

/// Milliseconds `f` takes to complete.
async fn timed(f: impl std::future::Future<Output = ()>) -> f64 {
    let t = Instant::now();
    f.await;
    t.elapsed().as_secs_f64() * 1000.0
}

/// Milliseconds of each of `iters` attempts, after `warmup` untimed ones.
async fn attempts_ms(
    runtime: &Runtime,
    plugin: &LoadedPlugin,
    grants: &Grants,
    with: &str,
    warmup: usize,
    iters: usize,
) -> Vec<f64> {
    for _ in 0..warmup {
        attempt(runtime, plugin, grants, with).await;
    }
    let mut v = Vec::with_capacity(iters);
    for _ in 0..iters {
        v.push(timed(attempt(runtime, plugin, grants, with)).await);
    }
    v
}

/// The capabilities of a target that declares nothing (built once: not part
/// of what an attempt costs).
fn no_capabilities() -> &'static Registry {
    static NONE: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    NONE.get_or_init(|| {
        Registry::for_run(RunScope {
            target: &valero::pipeline::Target::default(),
            run_dir: Path::new("/tmp"),
            base_dir: Path::new("/"),
            secrets: &BTreeMap::new(),
            masker: Arc::new(Masker::default()),
            plan_only: false,
        })
    })
}

/// One attempt of `plugin` with `with` as its config; panics unless it passed.
async fn attempt(runtime: &Runtime, plugin: &LoadedPlugin, grants: &Grants, with: &str) {
    let spec = SandboxSpec {
        grants,
        limits: Limits {
            memory: 1 << 30,
            output: 1 << 20,
        },
        secrets: &[],
        io: StageIo {
            masker: Arc::new(Masker::default()),
            observer: Arc::new(Silent),
        },
        capabilities: no_capabilities(),
        base_dir: Path::new("/"),
    };
    let context = StageContext {
        run_id: "bench".into(),
        stage: "bench".into(),
        target: "local".into(),
        attempt: 1,
        config: with.to_string(),
        inputs: BTreeMap::new(),
        ends_at: None,
    };
    let (outcome, _) = runtime
        .run_attempt(plugin, &spec, context, Duration::from_secs(600))
        .await
        .expect("sandbox");
    match outcome {
        valero::engine::AttemptOutcome::Returned(r)
            if r.verdict == valero::report::Verdict::Pass => {}
        other => panic!("stage did not pass: {other:?}"),
    }
}

/// A statically linked no-op program (for the native spawn and `docker run`).
fn noop_binary(dir: &Path) -> Option<PathBuf> {
    let src = dir.join("noop.c");
    let bin = dir.join("noop");
    std::fs::write(&src, "int main(void) { return 0; }\n").ok()?;
    let ok = Command::new("gcc")
        .args(["-static", "-Os", "-s", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(bin)
}

fn docker_available() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success())
}

// ------------------------------------------------------------ 1. dispatch

fn dispatch(rt: &tokio::runtime::Runtime, out: &mut Results, dir: &Path, iters: usize) {
    out.section("1. Stage dispatch");
    let runtime = Runtime::new(Some(&dir.join("cache"))).expect("runtime");
    let grants = Grants::default();
    let plugin = load(&runtime, "testkit", &plugin_bytes("testkit"), &grants);
    let with = r#"{"behavior":"pass"}"#;
    let wasm = rt.block_on(attempts_ms(&runtime, &plugin, &grants, with, 5, iters));
    let wasm = out.timing(
        "warm no-op stage (cached InstancePre, fresh Store, call, drop)",
        &wasm,
        "",
    );

    let noop = noop_binary(dir);
    let program = noop.clone().unwrap_or_else(|| PathBuf::from("/bin/true"));
    let spawn = time(5, iters, || {
        let ok = Command::new(&program).status().is_ok_and(|s| s.success());
        assert!(ok, "{} failed", program.display());
    });
    let spawn = out.timing(
        "native process spawn + wait",
        &spawn,
        if noop.is_some() {
            "a static no-op binary"
        } else {
            "/bin/true"
        },
    );
    out.goal(
        "dispatch ≤ 1/5 of a native process spawn",
        format!(
            "1/{:.0} ({} vs {})",
            spawn / wasm,
            fmt_ms(wasm),
            fmt_ms(spawn)
        ),
        wasm * 5.0 <= spawn,
    );

    match (docker_available(), &noop) {
        (true, Some(bin)) => {
            let ctx = dir.join("image");
            let _ = std::fs::create_dir_all(&ctx);
            let _ = std::fs::copy(bin, ctx.join("noop"));
            let _ = std::fs::write(
                ctx.join("Dockerfile"),
                "FROM scratch\nCOPY noop /noop\nENTRYPOINT [\"/noop\"]\n",
            );
            let built = Command::new("docker")
                .args(["build", "-q", "-t", "valero-bench-noop:1"])
                .arg(&ctx)
                .output()
                .is_ok_and(|o| o.status.success());
            if built {
                let docker = time(1, (iters / 10).max(5), || {
                    let ok = Command::new("docker")
                        .args(["run", "--rm", "--network", "none", "valero-bench-noop:1"])
                        .output()
                        .is_ok_and(|o| o.status.success());
                    assert!(ok, "docker run failed");
                });
                let docker = out.timing(
                    "`docker run --rm` of a FROM scratch no-op image",
                    &docker,
                    "",
                );
                out.goal(
                    "dispatch ≤ 1/1000 of `docker run`",
                    format!("1/{:.0}", docker / wasm),
                    wasm * 1000.0 <= docker,
                );
                let _ = Command::new("docker")
                    .args(["rmi", "-f", "valero-bench-noop:1"])
                    .output();
            } else {
                out.row(
                    "`docker run --rm`",
                    "skipped".into(),
                    "docker build of the no-op image failed",
                );
            }
        }
        (false, _) => out.row(
            "`docker run --rm` of a FROM scratch no-op image",
            "skipped".into(),
            "no Docker engine reachable (docker info failed)",
        ),
        (true, None) => out.row(
            "`docker run --rm`",
            "skipped".into(),
            "gcc -static unavailable",
        ),
    }
}

// ------------------------------------------------------------ 2. load path

fn load_path(out: &mut Results, dir: &Path, iters: usize) {
    out.section("2. Load path: compile vs. compile cache");
    let mut ratios = Vec::new();
    for (label, name) in [("small", "testkit"), ("large", "e2e")] {
        let bytes = match name {
            "e2e" => valero::builtins::get("e2e").expect("builtin e2e").to_vec(),
            _ => plugin_bytes(name),
        };
        let digest = Digest::of(&bytes);
        let uncached = Runtime::new(None).expect("runtime");
        let compile = time(0, iters, || {
            uncached.component(&bytes, &digest).expect("compile");
        });
        let cache_dir = dir.join(format!("load-cache-{name}"));
        let cached = Runtime::new(Some(&cache_dir)).expect("runtime");
        cached.component(&bytes, &digest).expect("fill cache");
        let hit = time(1, iters * 5, || {
            let (_, source) = cached.component(&bytes, &digest).expect("cache load");
            assert_eq!(source, valero::engine::LoadSource::Cache);
        });
        let kib = bytes.len() / 1024;
        let c = out.timing(
            &format!("{label} plugin ({name}, {kib} KiB): compile"),
            &compile,
            "",
        );
        let h = out.timing(
            &format!("{label} plugin ({name}, {kib} KiB): from cache (verify + deserialize)"),
            &hit,
            "",
        );
        ratios.push((label, c / h));
    }
    let worst = ratios.iter().map(|(_, r)| *r).fold(f64::MAX, f64::min);
    out.goal(
        "cache load ≤ 1/50 of compile",
        ratios
            .iter()
            .map(|(l, r)| format!("{l}: 1/{r:.0}"))
            .collect::<Vec<_>>()
            .join(", "),
        worst >= 50.0,
    );
}

// ------------------------------------------------------------ 3. interruption

fn interruption(rt: &tokio::runtime::Runtime, out: &mut Results, iters: usize) {
    out.section("3. Interruption cost on CPU-bound code");
    let bytes = plugin_bytes("testkit");
    let grants = Grants::default();
    let with = r#"{"behavior":"cpu","n":300000000}"#;
    let mut medians = Vec::new();
    for (label, runtime) in [
        (
            "timeouts off (no epoch checks)",
            Runtime::uninterruptible(None),
        ),
        (
            "timeouts on (epoch interruption, 10 ms ticks)",
            Runtime::new(None),
        ),
    ] {
        let runtime = runtime.expect("runtime");
        let plugin = load(&runtime, "testkit", &bytes, &grants);
        let ms = rt.block_on(attempts_ms(&runtime, &plugin, &grants, with, 1, iters));
        medians.push(out.timing(&format!("300M xorshift rounds, {label}"), &ms, ""));
    }
    let ratio = medians[1] / medians[0];
    out.goal(
        "timeout mechanism costs ≤ 1.2x on CPU-bound code",
        format!("{ratio:.3}x"),
        ratio <= 1.2,
    );
}

// ------------------------------------------------------------ 4. host calls

fn host_calls(rt: &tokio::runtime::Runtime, out: &mut Results, iters: usize) {
    out.section("4. Host-call cost");
    let runtime = Runtime::new(None).expect("runtime");
    let grants = Grants::default();
    let plugin = load(&runtime, "testkit", &plugin_bytes("testkit"), &grants);
    let calls = 200_000u64;
    let (zero, many) = rt.block_on(async {
        let run = |n: u64| format!(r#"{{"behavior":"host-calls","n":{n}}}"#);
        attempt(&runtime, &plugin, &grants, &run(calls)).await;
        let (mut zero, mut many) = (Vec::new(), Vec::new());
        for _ in 0..iters {
            zero.push(timed(attempt(&runtime, &plugin, &grants, &run(0))).await);
            many.push(timed(attempt(&runtime, &plugin, &grants, &run(calls))).await);
        }
        (zero, many)
    });
    let per_call_ns = (median(&many) - median(&zero)) * 1e6 / calls as f64;
    out.row(
        "no-op host call (`context.attempt`) from the guest",
        format!("{per_call_ns:.0} ns"),
        &format!("({} calls − 0 calls) / {calls}", fmt_ms(median(&many))),
    );

    let port = rt.block_on(serve());
    let native = rt.block_on(async {
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        conn.set_nodelay(true).expect("nodelay");
        let mut buf = vec![0u8; 4096];
        let mut v = Vec::new();
        for i in 0..(iters * 400 + 100) {
            let t = Instant::now();
            conn.write_all(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
                .await
                .expect("write");
            read_response(&mut conn, &mut buf).await;
            if i >= 100 {
                v.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        v
    });
    let native = out.timing(
        "native keep-alive HTTP GET on loopback (baseline)",
        &native,
        "",
    );
    out.row(
        "host call vs. one loopback GET",
        format!("1/{:.0}", native * 1e6 / per_call_ns),
        "",
    );
}

/// Reads one HTTP/1.1 response with a content-length.
async fn read_response(conn: &mut tokio::net::TcpStream, buf: &mut [u8]) {
    let mut have = Vec::new();
    loop {
        let n = conn.read(buf).await.expect("read");
        assert!(n > 0, "server closed");
        have.extend_from_slice(&buf[..n]);
        if let Some(head_end) = find(&have, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&have[..head_end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if have.len() >= head_end + 4 + len {
                return;
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A loopback HTTP/1.1 server (keep-alive) answering every request with
/// `200 {"status":"ok"}`.
async fn serve() -> u16 {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                continue;
            };
            // Small responses must not wait for delayed ACKs (Nagle).
            let _ = conn.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut have = Vec::new();
                loop {
                    let Ok(n) = conn.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    have.extend_from_slice(&buf[..n]);
                    while let Some(end) = find(&have, b"\r\n\r\n") {
                        have.drain(..end + 4);
                        let body = r#"{"status":"ok"}"#;
                        let response = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if conn.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    port
}

// ------------------------------------------------------------ 5. fan-out

fn fan_out(rt: &tokio::runtime::Runtime, out: &mut Results, scale: usize) {
    out.section("5. Fan-out: health probes to N loopback endpoints (new connection each)");
    let runtime = Runtime::new(None).expect("runtime");
    let grants = loopback_http_grants();
    let health = valero::builtins::get("health").expect("builtin health");
    let plugin = load(&runtime, "health", health, &grants);
    let port = rt.block_on(serve());
    let mut worst: f64 = f64::MAX;
    for n in [1usize, 100, 1000] {
        let services: serde_json::Map<String, serde_json::Value> = (0..n)
            .map(|i| {
                (
                    format!("s{i}"),
                    format!("http://127.0.0.1:{port}/s{i}").into(),
                )
            })
            .collect();
        let with = serde_json::json!({
            "services": services,
            "endpoints": [{ "path": "/health", "json": { "status": "ok" } }],
            "deadline_ms": 60000,
            "request_timeout_ms": 30000,
        })
        .to_string();
        let iters = if n == 1000 { 2 + scale } else { 5 * scale };
        let (sandbox, hyper, raw) = rt.block_on(async {
            attempt(&runtime, &plugin, &grants, &with).await;
            let (mut sandbox, mut hyper, mut raw) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..iters {
                sandbox.push(timed(attempt(&runtime, &plugin, &grants, &with)).await);
                hyper.push(timed(native_fan_out(port, n, Client::Hyper)).await);
                raw.push(timed(native_fan_out(port, n, Client::RawSocket)).await);
            }
            (sandbox, hyper, raw)
        });
        let rps = |v: &[f64]| n as f64 / median(v) * 1000.0;
        let (s_rps, h_rps, r_rps) = (rps(&sandbox), rps(&hyper), rps(&raw));
        out.row(
            &format!("N = {n}: sandboxed `health` stage (whole stage)"),
            format!("{s_rps:.0} req/s"),
            &format!(
                "median {} over {} runs",
                fmt_ms(median(&sandbox)),
                sandbox.len()
            ),
        );
        out.row(
            &format!("N = {n}: native hyper client (baseline)"),
            format!("{h_rps:.0} req/s"),
            &format!(
                "median {}; sandbox/native = {:.2}x",
                fmt_ms(median(&hyper)),
                s_rps / h_rps
            ),
        );
        out.row(
            &format!("N = {n}: native hand-written HTTP/1.1 on raw sockets"),
            format!("{r_rps:.0} req/s"),
            &format!(
                "median {}; sandbox/raw = {:.2}x",
                fmt_ms(median(&raw)),
                s_rps / r_rps
            ),
        );
        if n >= 100 {
            worst = worst.min(s_rps / h_rps);
        }
    }
    out.goal(
        "fan-out ≥ 0.8x of the native client's requests per second (N ≥ 100)",
        format!("{worst:.2}x at worst"),
        worst >= 0.8,
    );
}

#[derive(Clone, Copy)]
enum Client {
    /// hyper's HTTP/1 client connection, as wasmtime-wasi-http's host side
    /// makes requests for a guest.
    Hyper,
    /// A request written and a response read by hand: the floor.
    RawSocket,
}

/// `n` concurrent GETs, each on its own connection, as the guest makes them.
async fn native_fan_out(port: u16, n: usize, client: Client) {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            tokio::spawn(async move {
                let conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .expect("connect");
                match client {
                    Client::Hyper => hyper_get(conn, port, i).await,
                    Client::RawSocket => raw_get(conn, i).await,
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
}

async fn hyper_get(conn: tokio::net::TcpStream, port: u16, i: usize) {
    use http_body_util::BodyExt;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(conn))
            .await
            .expect("handshake");
    tokio::spawn(connection);
    let request = http::Request::get(format!("http://127.0.0.1:{port}/s{i}/health"))
        .header("host", format!("127.0.0.1:{port}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("send");
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.expect("body");
}

async fn raw_get(mut conn: tokio::net::TcpStream, i: usize) {
    let req = format!("GET /s{i}/health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n");
    conn.write_all(req.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 4096];
    read_response(&mut conn, &mut buf).await;
}

// ------------------------------------------------------------ 6. pipeline overhead

fn pipeline_file(dir: &Path, name: &str, stages: usize, chain: bool, behavior: &str) -> PathBuf {
    let testkit = Path::new(env!("VALERO_PLUGINS_DIR")).join("testkit.wasm");
    let digest = Digest::of(&std::fs::read(&testkit).expect("testkit"));
    let mut text = format!(
        "[pipeline]\nname = {name:?}\ndefault_target = \"local\"\ntimeout = \"10m\"\n\n[targets.local]\n\n"
    );
    for i in 0..stages {
        let _ = write!(
            text,
            "[stages.s{i:03}]\nplugin = {:?}\nsha256 = {:?}\nwith = {{ behavior = {behavior} }}\n",
            testkit.display().to_string(),
            digest.hex()
        );
        if chain && i > 0 {
            let _ = writeln!(text, "needs = [\"s{:03}\"]", i - 1);
        }
        text.push('\n');
    }
    let pdir = dir.join(name);
    std::fs::create_dir_all(&pdir).expect("mkdir");
    let path = pdir.join("pipeline.toml");
    std::fs::write(&path, text).expect("write pipeline");
    path
}

fn pipeline_overhead(rt: &tokio::runtime::Runtime, out: &mut Results, dir: &Path, scale: usize) {
    out.section("6. Pipeline overhead (whole `run`: plan, load, schedule, records, reports)");
    let cache = dir.join("pipeline-cache");
    let mut chain_overhead = f64::MAX;
    for (label, stages, chain, jobs) in [
        ("20-stage no-op chain", 20, true, 4),
        ("100-stage wide DAG (--jobs 8)", 100, false, 8),
    ] {
        let path = pipeline_file(dir, &format!("p{stages}"), stages, chain, "\"pass\"");
        let run_once = || {
            let opts = valero::run::RunOptions {
                pipeline: path.clone(),
                target: None,
                jobs,
                cache_dir: Some(cache.clone()),
                state_dir: Some(dir.join(format!("state{stages}"))),
                selection: Default::default(),
                resume: None,
                compile_timeout: valero::engine::budget::DEFAULT_COMPILE_TIME,
                observer: Arc::new(Silent),
                plan_only: false,
            };
            let (interrupt, _keep) = valero::scheduler::Interrupt::channel();
            let t = Instant::now();
            let (report, exit, _) = rt
                .block_on(valero::run::run(&opts, interrupt))
                .expect("run");
            let wall = t.elapsed().as_secs_f64() * 1000.0;
            assert_eq!(exit, valero::exit::Exit::Success);
            let stage_sum: f64 = report
                .stages
                .iter()
                .map(|s| s.end_ms.unwrap_or(0.0) - s.start_ms.unwrap_or(0.0))
                .sum();
            // From the first stage's start to the last one's end: the run
            // without its setup (engine, plugin load, records directory).
            let first = report
                .stages
                .iter()
                .filter_map(|s| s.start_ms)
                .fold(f64::MAX, f64::min);
            let last = report
                .stages
                .iter()
                .filter_map(|s| s.end_ms)
                .fold(0.0, f64::max);
            let load = report
                .stages
                .iter()
                .find_map(|s| s.load.as_ref())
                .map_or(0.0, |l| l.ms);
            (wall, stage_sum, last - first, load)
        };
        run_once(); // compile cache warm
        let runs: Vec<(f64, f64, f64, f64)> = (0..3 * scale).map(|_| run_once()).collect();
        let walls: Vec<f64> = runs.iter().map(|r| r.0).collect();
        let overheads: Vec<f64> = runs.iter().map(|r| r.0 - r.1).collect();
        let sums: Vec<f64> = runs.iter().map(|r| r.1).collect();
        out.timing(&format!("{label}: wall"), &walls, "");
        out.row(
            &format!("{label}: sum of stage times"),
            fmt_ms(median(&sums)),
            "stage start to end, as reported",
        );
        let o = median(&overheads);
        out.row(
            &format!("{label}: wall − sum of stage times"),
            fmt_ms(o),
            &format!("{} per stage", fmt_ms(o / stages as f64)),
        );
        if chain {
            let scheduling: Vec<f64> = runs.iter().map(|r| r.2 - r.1).collect();
            out.row(
                &format!("{label}: of which between stages"),
                fmt_ms(median(&scheduling)),
                "(last stage end − first stage start) − sum of stage times",
            );
        }
        let loads: Vec<f64> = runs.iter().map(|r| r.3).collect();
        out.row(
            &format!("{label}: of which loading the plugin (compile cache)"),
            fmt_ms(median(&loads)),
            "one load, shared by every stage",
        );
        if chain {
            chain_overhead = o;
        }
    }
    out.goal(
        "20-stage chain overhead ≤ 5 ms in total",
        fmt_ms(chain_overhead),
        chain_overhead <= 5.0,
    );
}

// ------------------------------------------------------------ 7. memory

/// Peak resident memory (VmHWM, KiB) of `valero run` on `pipeline`.
fn peak_rss(pipeline: &Path, jobs: usize, cache: &Path) -> u64 {
    let mut child = Command::new(env!("CARGO_BIN_EXE_valero"))
        .args([
            "run",
            "--progress",
            "plain",
            "-q",
            "--jobs",
            &jobs.to_string(),
        ])
        .current_dir(pipeline.parent().expect("dir"))
        .env("VALERO_CACHE_DIR", cache)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn valero");
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_path) {
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("VmHWM:") {
                    let kib: u64 = v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
                    peak = peak.max(kib);
                }
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            assert!(status.success(), "valero run failed");
            return peak;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn memory(out: &mut Results, dir: &Path) {
    out.section("7. Resident memory of `valero run` (peak RSS, 50 stages of 300 ms each)");
    let cache = dir.join("memory-cache");
    let path = pipeline_file(dir, "mem50", 50, false, "\"sleep\", ms = 300");
    peak_rss(&path, 50, &cache); // warm the compile cache
    let one = peak_rss(&path, 1, &cache);
    let fifty = peak_rss(&path, 50, &cache);
    out.row(
        "50-stage pipeline, one stage at a time (--jobs 1)",
        format!("{:.1} MiB", one as f64 / 1024.0),
        "",
    );
    out.row(
        "50-stage pipeline, all 50 at once (--jobs 50)",
        format!("{:.1} MiB", fifty as f64 / 1024.0),
        "",
    );
    out.row(
        "per concurrent stage",
        format!("{:.0} KiB", (fifty.saturating_sub(one)) as f64 / 49.0),
        "(peak at 50 − peak at 1) / 49",
    );
}
