//! `testkit`: a deliberately hostile, configurable stage plugin for the host's tests.
//!
//! `with.behavior` selects what it does:
//!
//! | behavior | with | effect |
//! |---|---|---|
//! | `pass` | `outputs`, `read_inputs`, `measurement` | pass; outputs = `outputs` (echoed); if `read_inputs` is non-empty, outputs becomes an object (from `outputs` if it is one) with `inputs = {name: input(name)}`; `measurement` is attached to its check |
//! | `fail` | `message` | one failing check with `message` |
//! | `inconclusive` | `message` | one inconclusive check |
//! | `sleep` | `ms` | `std::thread::sleep` (blocking host call), then pass |
//! | `remaining` | | pass with `remaining_ms` (the attempt's time left, `valero_sdk::remaining`) in outputs |
//! | `spin` | | infinite CPU loop |
//! | `cpu` | `n` | `n` rounds of xorshift (bounded CPU work, for benchmarks); pass with the result |
//! | `host-calls` | `n` | `n` calls of `context.attempt` (a no-op host call, for benchmarks); pass |
//! | `membomb` | | allocate and touch 1 MiB chunks forever |
//! | `flood` | `bytes` (100 MB) | write `bytes` to stdout in 64 KiB writes, then pass |
//! | `print` | `text` | `text` to stdout, stderr and log::info, then pass |
//! | `read-file` | `path` | pass with `content` in outputs, or fail with the io error |
//! | `write-file` | `path`, `text` | pass, or fail with the io error |
//! | `list-dir` | `path` | pass with sorted `entries` in outputs, or fail |
//! | `tcp` | `addr` | `TcpStream::connect`; pass if connected, fail with the error |
//! | `http` | `url`, `timeout_ms` (5000) | SDK `http::get`; pass with status evidence, fail with the error |
//! | `env` | | outputs every env var it sees as an object |
//! | `secret-echo` | `var`, `measurement`, `fail` | prints/logs the value plain, base64 and URL-encoded; also in check message and outputs; `measurement` (e.g. `"NaN"`, `"inf"`) is attached to the check; `fail` makes the check fail |
//! | `secret-split` | `var` | logs, prints to stdout and to stderr the value split across two lines at every position (`part: <head>`, `<tail> :rest`), then pass |
//! | `log-flood` | `ms` (2000), `text` | log `text` (100 `x` when empty) as fast as it can for `ms`, then pass |
//! | `progress-flood` | `ms` (2000) | report progress as fast as it can for `ms`, then pass |
//! | `big-report` | `n` (checks), `bytes` (summary size) | a passing report with `n` checks and a `bytes`-long summary |
//! | `workflow-commands` | | GitHub workflow commands (`::set-output`, `::add-mask::`, `##[…]`) in stdout, stderr, log lines, progress, the summary, a check's multi-line message and evidence; fails |
//! | `panic` | `message` | `panic!("testkit panic: {message}")` |
//! | `trap` | | `unreachable` instruction |
//! | `escapes` | | ANSI/OSC escapes and BEL in stdout, log and a check message |
//!
//! Anything else: a failing check naming the unknown behavior.

use std::io::Write;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use valero_sdk::{Check, Plugin, Report, Verdict, http, log};

#[derive(Deserialize, Default)]
#[serde(default)]
struct With {
    behavior: String,
    outputs: Option<Value>,
    read_inputs: Vec<String>,
    message: Option<String>,
    ms: u64,
    bytes: Option<u64>,
    text: String,
    path: String,
    addr: String,
    url: String,
    timeout_ms: Option<u64>,
    var: String,
    n: u64,
    /// Parsed as f64: `"NaN"`, `"inf"`, `"-inf"` or a number.
    measurement: Option<String>,
    fail: bool,
}

const ESCAPES: &str = "\x1b[31mred\x1b[0m \x1b]0;title\x07 bell\x07 done";

struct Testkit;

impl Plugin for Testkit {
    fn run() -> Report {
        let with: With = match valero_sdk::config() {
            Ok(with) => with,
            Err(e) => return Report::fail(e),
        };
        let behavior = with.behavior.as_str();
        match behavior {
            "pass" => pass(&with),
            "fail" => single(
                Check::fail(behavior).message(with.message.as_deref().unwrap_or("testkit failure")),
            ),
            "inconclusive" => single(
                Check::inconclusive(behavior)
                    .message(with.message.as_deref().unwrap_or("testkit undecided")),
            ),
            "sleep" => {
                std::thread::sleep(Duration::from_millis(with.ms));
                single(Check::pass(behavior).message(format!("slept {} ms", with.ms)))
            }
            "remaining" => {
                let left = valero_sdk::remaining().as_millis() as u64;
                Report::from_checks("testkit remaining", vec![Check::pass(behavior)])
                    .outputs(json!({ "remaining_ms": left }))
            }
            "spin" => spin(),
            "cpu" => {
                let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
                for _ in 0..with.n {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                }
                single(Check::pass(behavior).message(format!("{x:x}")))
            }
            "host-calls" => {
                let mut sum: u64 = 0;
                for _ in 0..with.n {
                    sum += u64::from(valero_sdk::attempt());
                }
                single(Check::pass(behavior).message(format!("{sum} calls")))
            }
            "membomb" => membomb(),
            "flood" => flood(with.bytes.unwrap_or(100_000_000)),
            "print" => {
                println!("{}", with.text);
                eprintln!("{}", with.text);
                log::info(&with.text);
                single(Check::pass(behavior).message("printed"))
            }
            "read-file" => io_result(
                behavior,
                &with.path,
                std::fs::read_to_string(&with.path),
                |content| json!({ "content": content }),
            ),
            "write-file" => io_result(
                behavior,
                &with.path,
                std::fs::write(&with.path, &with.text),
                |()| json!({ "written": with.text.len() }),
            ),
            "list-dir" => io_result(
                behavior,
                &with.path,
                list_dir(&with.path),
                |entries| json!({ "entries": entries }),
            ),
            "tcp" => match std::net::TcpStream::connect(&with.addr) {
                Ok(_) => {
                    single(Check::pass(behavior).message(format!("connected to {}", with.addr)))
                }
                Err(e) => single(
                    Check::fail(behavior).message(format!("connect to {} failed: {e}", with.addr)),
                ),
            },
            "http" => {
                let timeout = Duration::from_millis(with.timeout_ms.unwrap_or(5000));
                match http::get(&with.url, timeout) {
                    Ok(resp) => Report::from_checks(
                        behavior,
                        vec![
                            Check::pass(behavior)
                                .evidence("status", resp.status)
                                .evidence("url", &with.url),
                        ],
                    )
                    .outputs(json!({ "status": resp.status, "body": resp.text() })),
                    Err(e) => single(Check::fail(behavior).message(e)),
                }
            }
            "env" => {
                let vars: Map<String, Value> = std::env::vars()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect();
                single(Check::pass(behavior)).outputs(Value::Object(vars))
            }
            "secret-echo" => secret_echo(&with),
            "secret-split" => secret_split(&with.var),
            "log-flood" => {
                let text = if with.text.is_empty() {
                    "x".repeat(100)
                } else {
                    with.text.clone()
                };
                let lines = for_ms(with.ms, || log::info(&text));
                single(Check::pass(behavior).message(format!("logged {lines} lines")))
            }
            "progress-flood" => {
                let mut n = 0;
                let calls = for_ms(with.ms, || {
                    n += 1;
                    log::progress(n, 0, "flooding");
                });
                single(Check::pass(behavior).message(format!("{calls} progress calls")))
            }
            "big-report" => {
                let checks = (0..with.n).map(|i| Check::pass(format!("c{i}"))).collect();
                let summary = "s".repeat(with.bytes.unwrap_or(0) as usize);
                Report::from_checks(summary, checks)
            }
            "workflow-commands" => workflow_commands(),
            "panic" => panic!(
                "testkit panic: {}",
                with.message.as_deref().unwrap_or("boom")
            ),
            "trap" => trap(),
            "escapes" => {
                println!("{ESCAPES}");
                log::info(ESCAPES);
                single(Check::pass(behavior).message(ESCAPES))
            }
            "" => Report::from_checks(
                "missing `with.behavior`",
                vec![Check::fail("behavior").message("set `with.behavior`, e.g. \"pass\"")],
            ),
            other => {
                let message = format!("unknown testkit behavior {other:?}");
                Report::from_checks(&message, vec![Check::fail("behavior").message(&message)])
            }
        }
    }
}

/// A report with one check, summarised by the check's name.
fn single(check: Check) -> Report {
    Report::from_checks(format!("testkit {}", check.name()), vec![check])
}

fn pass(with: &With) -> Report {
    let mut outputs = with.outputs.clone().unwrap_or(Value::Null);
    if !with.read_inputs.is_empty() {
        let inputs: Map<String, Value> = with
            .read_inputs
            .iter()
            .map(|name| (name.clone(), valero_sdk::input(name).unwrap_or(Value::Null)))
            .collect();
        let mut object = match outputs {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        object.insert("inputs".to_string(), Value::Object(inputs));
        outputs = Value::Object(object);
    }
    let mut check = Check::pass("pass");
    if let Some(m) = &with.measurement {
        check = check.measure("value", parse_measurement(m), "");
    }
    single(check).outputs(outputs)
}

/// `"NaN"`, `"inf"`, `"-inf"` or a number; anything else is NaN.
fn parse_measurement(m: &str) -> f64 {
    m.parse().unwrap_or(f64::NAN)
}

fn io_result<T>(
    behavior: &str,
    path: &str,
    result: std::io::Result<T>,
    outputs: impl FnOnce(T) -> Value,
) -> Report {
    match result {
        Ok(value) => single(Check::pass(behavior).evidence("path", path)).outputs(outputs(value)),
        Err(e) => single(
            Check::fail(behavior)
                .message(format!("{path}: {e}"))
                .evidence("path", path),
        ),
    }
}

fn list_dir(path: &str) -> std::io::Result<Vec<String>> {
    let mut names = std::fs::read_dir(path)?
        .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<Vec<_>>>()?;
    names.sort();
    Ok(names)
}

fn spin() -> ! {
    let mut counter = 0u64;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

fn membomb() -> ! {
    const CHUNK: usize = 1 << 20;
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = Vec::with_capacity(CHUNK);
        chunk.resize(CHUNK, 0xA5u8);
        hoard.push(std::hint::black_box(chunk));
    }
}

fn flood(total: u64) -> Report {
    let buf = [b'x'; 64 * 1024];
    let mut stdout = std::io::stdout().lock();
    let mut written = 0u64;
    let mut error = None;
    while written < total {
        let n = (total - written).min(buf.len() as u64) as usize;
        if let Err(e) = stdout.write_all(&buf[..n]) {
            error = Some(e.to_string());
            break;
        }
        written += n as u64;
    }
    let _ = stdout.flush();
    let message = match &error {
        Some(e) => format!("wrote {written} of {total} bytes; stdout error: {e}"),
        None => format!("wrote {written} bytes"),
    };
    single(
        Check::pass("flood")
            .message(message)
            .evidence("written", written),
    )
}

/// Calls `f` as often as it can for `ms` milliseconds (2000 when 0); returns the count.
fn for_ms(ms: u64, mut f: impl FnMut()) -> u64 {
    let ms = if ms == 0 { 2000 } else { ms };
    let until = std::time::Instant::now() + Duration::from_millis(ms);
    let mut calls = 0;
    while std::time::Instant::now() < until {
        for _ in 0..64 {
            f();
        }
        calls += 64;
    }
    calls
}

/// GitHub workflow commands in every kind of text a plugin hands the host.
const COMMANDS: [&str; 3] = [
    "::set-output name=owned::yes",
    "  ::add-mask::hidden",
    "##[set-output name=legacy;]yes",
];

fn workflow_commands() -> Report {
    for line in COMMANDS {
        println!("{line}");
        eprintln!("{line}");
        log::info(line);
        log::error(format!("prefix {line}"));
        log::progress(1, 2, line);
    }
    let multi = format!("failed:\n{}", COMMANDS.join("\n"));
    let check = Check::fail("commands")
        .message(&multi)
        .evidence(COMMANDS[2], COMMANDS[0]);
    Report::from_checks(multi, vec![check])
}

fn env_value(var: &str) -> Result<String, Report> {
    std::env::var(var)
        .map_err(|e| single(Check::fail("secret").message(format!("env var {var:?}: {e}"))))
}

fn secret_split(var: &str) -> Report {
    let value = match env_value(var) {
        Ok(value) => value,
        Err(report) => return report,
    };
    let cuts: Vec<usize> = (1..value.len())
        .filter(|&i| value.is_char_boundary(i))
        .collect();
    for &i in &cuts {
        let (head, tail) = value.split_at(i);
        log::info(format!("part: {head}"));
        log::info(format!("{tail} :rest"));
        println!("part: {head}\n{tail} :rest");
        eprintln!("part: {head}\n{tail} :rest");
    }
    single(Check::pass("secret-split").message(format!("{} splits", cuts.len())))
}

fn secret_echo(with: &With) -> Report {
    let value = match env_value(&with.var) {
        Ok(value) => value,
        Err(report) => return report,
    };
    let b64 = base64(value.as_bytes());
    let url = percent_encode(&value);
    for line in [
        format!("plain: {value}"),
        format!("base64: {b64}"),
        format!("url: {url}"),
    ] {
        println!("{line}");
        log::info(line);
    }
    let mut check = Check::new(
        format!("secret-echo {value}"),
        if with.fail {
            Verdict::Fail
        } else {
            Verdict::Pass
        },
    )
    .message(format!("plain: {value} base64: {b64} url: {url}"))
    .evidence(&value, &b64);
    if let Some(m) = &with.measurement {
        check = check.measure(format!("m-{value}"), parse_measurement(m), &url);
    }
    Report::from_checks(format!("testkit secret-echo {value}"), vec![check])
        .outputs(json!({ "plain": value, "base64": b64, "url": url }))
}

#[cfg(target_arch = "wasm32")]
fn trap() -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(not(target_arch = "wasm32"))]
fn trap() -> ! {
    std::process::abort()
}

/// Standard base64 alphabet, padded.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Percent-encodes every byte that is not an ASCII alphanumeric.
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

valero_sdk::export_plugin!(Testkit);
