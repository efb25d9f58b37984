//! Stage plugin `http-probe`: one GET per URL, checked against an expected status.
//!
//! ```toml
//! with = { urls = ["http://127.0.0.1:8080/health"], expect_status = 200, timeout_ms = 2000 }
//! [stages.probe.grants]
//! http = ["http://127.0.0.1:*"]
//! ```
//!
//! Each check has `url` and `status` evidence and a `latency` measurement in ms.
//! Outputs: `{"results": {"<url>": {"status": 200, "latency_ms": 3.2}}}` (status
//! `null` when the request failed).

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Map, json};
use valero_sdk::{Check, Plugin, Report, Verdict, http, log};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    urls: Vec<String>,
    #[serde(default = "default_status")]
    expect_status: u16,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
}

fn default_status() -> u16 {
    200
}

fn default_timeout_ms() -> u64 {
    2000
}

struct HttpProbe;

impl Plugin for HttpProbe {
    fn run() -> Report {
        let config: Config = match valero_sdk::config() {
            Ok(config) => config,
            Err(e) => return Report::fail(e),
        };
        let timeout = Duration::from_millis(config.timeout_ms);
        let total = config.urls.len() as u64;
        let mut results = Map::new();
        let mut checks = Vec::new();
        for (i, url) in config.urls.iter().enumerate() {
            log::progress(i as u64, total, url);
            let start = Instant::now();
            let outcome = http::get(url, timeout);
            let elapsed = start.elapsed();
            let latency_ms = elapsed.as_secs_f64() * 1000.0;
            let check = match &outcome {
                Ok(resp) if resp.status == config.expect_status => Check::pass(url)
                    .message(format!("status {}", resp.status))
                    .evidence("status", resp.status),
                Ok(resp) => Check::fail(url)
                    .message(format!(
                        "expected status {}, got {}",
                        config.expect_status, resp.status
                    ))
                    .evidence("status", resp.status),
                Err(e) => Check::fail(url).message(format!(
                    "expected status {}, request failed: {e}",
                    config.expect_status
                )),
            };
            checks.push(
                check
                    .evidence("url", url)
                    .measure("latency", latency_ms, "ms")
                    .duration(elapsed),
            );
            let status = outcome.as_ref().ok().map(|r| r.status);
            results.insert(
                url.clone(),
                json!({ "status": status, "latency_ms": latency_ms }),
            );
        }
        log::progress(total, total, "done");

        let ok = checks
            .iter()
            .filter(|c| c.verdict() == Verdict::Pass)
            .count();
        let summary = format!("{ok}/{total} URLs answered {}", config.expect_status);
        Report::from_checks(summary, checks).outputs(json!({ "results": results }))
    }
}

valero_sdk::export_plugin!(HttpProbe);
