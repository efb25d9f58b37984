//! The plugin's pure logic — configuration, validation, backoff schedule and
//! expectation matching — free of host calls, so it is unit-tested natively.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

/// The stage's `with` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Time from stage start after which a probe that is not ready fails.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
    /// Bound of one request (never past the deadline).
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Wait before the first retry; doubles per retry up to `max_backoff_ms`.
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Latency budget of the passing response of every endpoint (none if absent).
    #[serde(default)]
    pub latency_budget_ms: Option<u64>,
    /// Endpoints probed on every service (default `/health` and `/ready`, status 200).
    #[serde(default = "default_endpoints")]
    pub endpoints: Vec<Endpoint>,
    /// Service name → base URL, e.g. `"fibu-service" = "http://127.0.0.1:8101"`.
    #[serde(default)]
    pub services: BTreeMap<String, String>,
}

/// What one endpoint must answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Path appended to each service's base URL, starting with `/`.
    pub path: String,
    #[serde(default = "default_status")]
    pub status: u16,
    /// Top-level keys of the JSON body that must equal these values.
    #[serde(default)]
    pub json: Option<Map<String, Value>>,
    /// Text the body must contain.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// Overrides the global `latency_budget_ms` for this endpoint.
    #[serde(default)]
    pub latency_budget_ms: Option<u64>,
}

fn default_deadline_ms() -> u64 {
    30_000
}
fn default_request_timeout_ms() -> u64 {
    2_000
}
fn default_initial_backoff_ms() -> u64 {
    100
}
fn default_max_backoff_ms() -> u64 {
    2_000
}
fn default_status() -> u16 {
    200
}
fn default_endpoints() -> Vec<Endpoint> {
    ["/health", "/ready"]
        .into_iter()
        .map(|path| Endpoint {
            path: path.to_string(),
            status: default_status(),
            json: None,
            body_contains: None,
            latency_budget_ms: None,
        })
        .collect()
}

impl Config {
    /// Every problem with the configuration, one message each (empty: valid).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.services.is_empty() {
            problems.push(
                "no `services` to probe: give a table of name = base URL, e.g. \
                 services = { \"fibu-service\" = \"http://127.0.0.1:8101\" }"
                    .to_string(),
            );
        }
        for (name, url) in &self.services {
            if name.trim().is_empty() {
                problems.push("a service has an empty name".to_string());
            }
            if let Err(e) = check_base_url(url) {
                problems.push(format!("service `{name}`: {e}"));
            }
        }
        if self.endpoints.is_empty() {
            problems.push("`endpoints` is empty: give at least one path to probe".to_string());
        }
        for (i, endpoint) in self.endpoints.iter().enumerate() {
            if !endpoint.path.starts_with('/') {
                problems.push(format!(
                    "endpoints[{i}]: path {:?} must start with `/`",
                    endpoint.path
                ));
            }
            if !(100..=599).contains(&endpoint.status) {
                problems.push(format!(
                    "endpoints[{i}]: status {} is not an HTTP status (100-599)",
                    endpoint.status
                ));
            }
            if self.endpoints[..i].iter().any(|e| e.path == endpoint.path) {
                problems.push(format!(
                    "endpoints[{i}]: path {:?} is listed twice",
                    endpoint.path
                ));
            }
            if endpoint.latency_budget_ms == Some(0) {
                problems.push(format!("endpoints[{i}]: latency_budget_ms must be > 0"));
            }
        }
        if self.deadline_ms == 0 {
            problems.push("deadline_ms must be > 0".to_string());
        }
        if self.request_timeout_ms == 0 {
            problems.push("request_timeout_ms must be > 0".to_string());
        }
        if self.initial_backoff_ms == 0 {
            problems.push("initial_backoff_ms must be > 0".to_string());
        }
        if self.max_backoff_ms < self.initial_backoff_ms {
            problems.push(format!(
                "max_backoff_ms ({}) is below initial_backoff_ms ({})",
                self.max_backoff_ms, self.initial_backoff_ms
            ));
        }
        if self.latency_budget_ms == Some(0) {
            problems.push("latency_budget_ms must be > 0".to_string());
        }
        problems
    }

    /// The budget that applies to `endpoint`, if any.
    pub fn budget(&self, endpoint: &Endpoint) -> Option<Duration> {
        endpoint
            .latency_budget_ms
            .or(self.latency_budget_ms)
            .map(Duration::from_millis)
    }
}

fn check_base_url(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("base URL {url:?} must look like http://host:port"));
    };
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
        return Err(format!("base URL {url:?}: scheme must be http or https"));
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() {
        return Err(format!("base URL {url:?} has no host"));
    }
    if rest.contains(['?', '#']) {
        return Err(format!(
            "base URL {url:?} must not have a query or fragment"
        ));
    }
    Ok(())
}

/// The URL of `path` on the service at `base` (`http://h:1/api` + `/health`).
pub fn join_url(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// The wait before the retry that follows attempt number `attempt` (1-based):
/// `initial`, doubling per attempt, capped at `max`.
pub fn backoff(attempt: u32, initial: Duration, max: Duration) -> Duration {
    let doublings = attempt.saturating_sub(1).min(31);
    initial.saturating_mul(1u32 << doublings).min(max)
}

/// When to send the next attempt, `backoff` after `now`, but never past the
/// deadline (offsets from stage start). `None`: the deadline has come.
pub fn next_attempt(now: Duration, backoff: Duration, deadline: Duration) -> Option<Duration> {
    if now >= deadline {
        None
    } else {
        Some((now + backoff).min(deadline))
    }
}

/// Why a response does not meet `endpoint`'s expectations (`None`: it does).
pub fn mismatch(endpoint: &Endpoint, status: u16, body: &[u8]) -> Option<String> {
    if status != endpoint.status {
        return Some(format!("expected status {}, got {status}", endpoint.status));
    }
    if let Some(expected) = &endpoint.json {
        let parsed: Result<Value, _> = serde_json::from_slice(body);
        let object = match parsed {
            Ok(Value::Object(object)) => object,
            Ok(other) => {
                return Some(format!(
                    "expected a JSON object with {}, got JSON {}",
                    Value::Object(expected.clone()),
                    kind_of(&other)
                ));
            }
            Err(_) => {
                return Some(format!(
                    "expected a JSON body with {}, got a body that is not JSON",
                    Value::Object(expected.clone())
                ));
            }
        };
        for (key, want) in expected {
            match object.get(key) {
                None => {
                    return Some(format!(
                        "expected JSON `{key}` = {want}, but the key is missing"
                    ));
                }
                Some(got) if got != want => {
                    return Some(format!("expected JSON `{key}` = {want}, got {got}"));
                }
                Some(_) => {}
            }
        }
    }
    if let Some(needle) = &endpoint.body_contains
        && !String::from_utf8_lossy(body).contains(needle.as_str())
    {
        return Some(format!("expected the body to contain {needle:?}"));
    }
    None
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The first `max` characters of `body` on one line (whitespace runs collapsed),
/// with `…` if cut.
pub fn excerpt(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out = String::new();
    let mut count = 0;
    let mut space = false;
    for c in text.trim().chars() {
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if space {
            if count == max {
                out.push('…');
                return out;
            }
            out.push(' ');
            count += 1;
            space = false;
        }
        if count == max {
            out.push('…');
            return out;
        }
        out.push(c);
        count += 1;
    }
    out
}

/// Milliseconds with one decimal, e.g. `3.1`.
pub fn ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 10_000.0).round() / 10.0
}

/// Milliseconds with one decimal for messages, e.g. `3.0`.
pub fn fmt_ms(duration: Duration) -> String {
    format!("{:.1}", ms(duration))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn endpoint(value: Value) -> Endpoint {
        serde_json::from_value(value).unwrap()
    }

    fn config(value: Value) -> Result<Config, String> {
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let ms = Duration::from_millis;
        let schedule: Vec<u128> = (1..=8)
            .map(|a| backoff(a, ms(100), ms(2000)).as_millis())
            .collect();
        assert_eq!(schedule, [100, 200, 400, 800, 1600, 2000, 2000, 2000]);
        assert_eq!(backoff(0, ms(100), ms(2000)), ms(100));
        assert_eq!(backoff(u32::MAX, ms(100), ms(2000)), ms(2000));
        assert_eq!(backoff(40, ms(u64::MAX / 2), ms(u64::MAX)), ms(u64::MAX));
    }

    #[test]
    fn milliseconds() {
        assert_eq!(ms(Duration::from_micros(3140)), 3.1);
        assert_eq!(fmt_ms(Duration::from_millis(3)), "3.0");
        assert_eq!(fmt_ms(Duration::from_micros(12_345)), "12.3");
    }

    #[test]
    fn next_attempt_never_passes_the_deadline() {
        let ms = Duration::from_millis;
        assert_eq!(next_attempt(ms(0), ms(100), ms(1000)), Some(ms(100)));
        assert_eq!(next_attempt(ms(950), ms(100), ms(1000)), Some(ms(1000)));
        assert_eq!(next_attempt(ms(1000), ms(100), ms(1000)), None);
        assert_eq!(next_attempt(ms(1200), ms(100), ms(1000)), None);
    }

    #[test]
    fn status_mismatch_says_expected_and_seen() {
        let e = endpoint(json!({ "path": "/ready" }));
        assert_eq!(mismatch(&e, 200, b""), None);
        assert_eq!(
            mismatch(&e, 503, b"{}").as_deref(),
            Some("expected status 200, got 503")
        );
        let e = endpoint(json!({ "path": "/ready", "status": 204 }));
        assert_eq!(mismatch(&e, 204, b""), None);
    }

    #[test]
    fn json_expectations_compare_top_level_keys() {
        let e = endpoint(json!({ "path": "/ready", "json": { "status": "ready", "n": 2 } }));
        assert_eq!(
            mismatch(&e, 200, br#"{"status":"ready","n":2,"extra":true}"#),
            None
        );
        assert_eq!(
            mismatch(&e, 200, br#"{"status":"not ready","n":2}"#).as_deref(),
            Some(r#"expected JSON `status` = "ready", got "not ready""#)
        );
        assert_eq!(
            mismatch(&e, 200, br#"{"status":"ready"}"#).as_deref(),
            Some("expected JSON `n` = 2, but the key is missing")
        );
        assert!(mismatch(&e, 200, b"<html>").unwrap().contains("not JSON"));
        assert!(
            mismatch(&e, 200, b"[1]")
                .unwrap()
                .contains("got JSON an array")
        );
        // The status is checked first.
        assert_eq!(
            mismatch(&e, 500, b"<html>").as_deref(),
            Some("expected status 200, got 500")
        );
    }

    #[test]
    fn body_contains() {
        let e = endpoint(json!({ "path": "/", "body_contains": "UP" }));
        assert_eq!(mismatch(&e, 200, b"status: UP"), None);
        assert_eq!(
            mismatch(&e, 200, b"status: DOWN").as_deref(),
            Some(r#"expected the body to contain "UP""#)
        );
    }

    #[test]
    fn excerpts_are_one_short_line() {
        assert_eq!(excerpt(b"  a \n\t b  ", 10), "a b");
        assert_eq!(excerpt(b"abcdef", 3), "abc…");
        assert_eq!(excerpt(b"abc", 3), "abc");
        assert_eq!(excerpt(b"ab  cd", 2), "ab…");
        assert_eq!(excerpt("äöü".as_bytes(), 2), "äö…");
        assert_eq!(excerpt(&[0xff, b'a'], 5), "\u{fffd}a");
    }

    #[test]
    fn defaults_and_joining() {
        let c = config(json!({ "services": { "a": "http://127.0.0.1:1/" } })).unwrap();
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        assert_eq!(c.deadline_ms, 30_000);
        assert_eq!(c.request_timeout_ms, 2_000);
        assert_eq!((c.initial_backoff_ms, c.max_backoff_ms), (100, 2_000));
        let paths: Vec<&str> = c.endpoints.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["/health", "/ready"]);
        assert!(c.endpoints.iter().all(|e| e.status == 200));
        assert_eq!(c.budget(&c.endpoints[0]), None);
        assert_eq!(
            join_url("http://127.0.0.1:1/", "/ready"),
            "http://127.0.0.1:1/ready"
        );
        assert_eq!(join_url("http://h/api", "/ready"), "http://h/api/ready");
    }

    #[test]
    fn budgets_override() {
        let c = config(json!({
            "latency_budget_ms": 1000,
            "endpoints": [{ "path": "/a" }, { "path": "/b", "latency_budget_ms": 50 }],
            "services": { "a": "http://127.0.0.1:1" },
        }))
        .unwrap();
        assert_eq!(c.budget(&c.endpoints[0]), Some(Duration::from_millis(1000)));
        assert_eq!(c.budget(&c.endpoints[1]), Some(Duration::from_millis(50)));
    }

    #[test]
    fn bad_config_is_explained() {
        assert!(
            config(json!({ "service": {} }))
                .unwrap_err()
                .contains("unknown field")
        );
        assert!(
            config(json!({ "endpoints": [{ "path": "/", "statsu": 1 }] }))
                .unwrap_err()
                .contains("unknown field")
        );
        let c = config(json!({})).unwrap();
        assert!(c.problems()[0].contains("no `services`"));
        let c = config(json!({
            "initial_backoff_ms": 500, "max_backoff_ms": 100, "deadline_ms": 0,
            "endpoints": [{ "path": "health", "status": 42 }, { "path": "health" }],
            "services": { "a": "127.0.0.1:1", "b": "ftp://x", "c": "http://", "d": "http://h?q" },
        }))
        .unwrap();
        let problems = c.problems();
        for needle in [
            "service `a`",
            "service `b`",
            "service `c`",
            "service `d`",
            "must start with `/`",
            "status 42",
            "listed twice",
            "deadline_ms",
            "max_backoff_ms (100) is below initial_backoff_ms (500)",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(needle)),
                "{needle}: {problems:#?}"
            );
        }
    }
}
