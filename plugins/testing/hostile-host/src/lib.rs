//! `hostile-host`: a test plugin that goes after what the HOST holds on a
//! stage's behalf, outside the guest's linear memory. Each behaviour has a
//! bounded form (`n` set) that real plugins resemble and that must still
//! work, and an unbounded one (`n = 0`: until the host stops it).
//!
//! | behavior | with | effect |
//! |---|---|---|
//! | `fields` | `n`, `value_bytes` | keep `n` (0: unbounded) `wasi:http` `fields` with one header of `value_bytes` each; pass with the count, fail with the host's error |
//! | `resources` | `n` | keep `n` (0: unbounded) pollables (clock subscriptions); pass with the count |
//! | `host-calls` | `n` | `n` (0: unbounded) calls of `context.attempt`, a no-op host call; pass |
//! | `exit` | `code` | `std::process::exit(code)` instead of returning a report |
//! | `recurse` | | unbounded recursion (the guest's stack) |

use valero_sdk::{Check, Plugin, Report};
use wasip2::clocks::monotonic_clock;
use wasip2::http::types::Fields;

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct With {
    behavior: String,
    n: u64,
    value_bytes: usize,
    code: i32,
}

struct HostileHost;

impl Plugin for HostileHost {
    fn run() -> Report {
        let with: With = match valero_sdk::config() {
            Ok(with) => with,
            Err(e) => return Report::fail(e),
        };
        match with.behavior.as_str() {
            "fields" => fields(with.n, with.value_bytes),
            "resources" => resources(with.n),
            "host-calls" => host_calls(with.n),
            "exit" => std::process::exit(with.code),
            "recurse" => {
                let depth = recurse(1);
                pass("recurse", format!("returned from depth {depth}"))
            }
            other => Report::fail(format!("unknown behavior `{other}`")),
        }
    }
}

/// `0` means "until the host stops it".
fn count(n: u64) -> u64 {
    if n == 0 { u64::MAX } else { n }
}

fn pass(name: &str, message: String) -> Report {
    Report::from_checks(
        format!("hostile-host {name}"),
        vec![Check::pass(name).message(message)],
    )
}

fn fields(n: u64, value_bytes: usize) -> Report {
    let value = vec![b'v'; value_bytes];
    let mut kept = Vec::new();
    for i in 0..count(n) {
        let entry = (format!("x-flood-{}", i % 8), value.clone());
        match Fields::from_list(&[entry]) {
            Ok(f) => kept.push(f),
            Err(e) => {
                return Report::from_checks(
                    "hostile-host fields",
                    vec![Check::fail("fields").message(format!(
                        "the host refused fields number {} of {value_bytes} bytes: {e:?}",
                        i + 1
                    ))],
                );
            }
        }
    }
    pass(
        "fields",
        format!("holding {} fields of {value_bytes} bytes", kept.len()),
    )
}

fn resources(n: u64) -> Report {
    let mut kept = Vec::new();
    for _ in 0..count(n) {
        kept.push(monotonic_clock::subscribe_duration(1_000_000_000));
    }
    pass("resources", format!("holding {} pollables", kept.len()))
}

fn host_calls(n: u64) -> Report {
    let mut sum: u64 = 0;
    for _ in 0..count(n) {
        sum = sum.wrapping_add(u64::from(valero_sdk::attempt()));
    }
    pass("host-calls", format!("{sum} calls"))
}

/// Recursion the optimiser cannot turn into a loop.
#[inline(never)]
/// Deep recursion that uses (almost) no linear-memory stack per frame, so
/// wasmtime's call-stack limit is what ends it — not the guest's shadow
/// stack running out ("out of bounds memory access").
fn recurse(depth: u64) -> u64 {
    if std::hint::black_box(depth) == u64::MAX {
        return depth;
    }
    std::hint::black_box(recurse(depth + 1)) ^ depth
}

valero_sdk::export_plugin!(HostileHost);
