//! A small hand-written Prometheus registry: build info, request counter, latency histogram.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Histogram bucket upper bounds in seconds.
pub const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    durations: BTreeMap<(String, String), Histogram>,
}

/// Per-process metrics registry.
pub struct Metrics {
    service: &'static str,
    version: &'static str,
    inner: Mutex<Inner>,
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub fn new(service: &'static str, version: &'static str) -> Self {
        Metrics {
            service,
            version,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Record one finished request.
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *g.requests
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
        let h = g
            .durations
            .entry((method.to_owned(), route.to_owned()))
            .or_default();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// Render in the Prometheus text exposition format (0.0.4).
    /// `extra` is appended verbatim (service-specific gauges).
    pub fn render(&self, extra: &str) -> String {
        let svc = esc(self.service);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP neuroerp_build_info Build information of the service.\n# TYPE neuroerp_build_info gauge"
        );
        let _ = writeln!(
            out,
            "neuroerp_build_info{{service=\"{svc}\",version=\"{}\"}} 1",
            esc(self.version)
        );
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(
            out,
            "# HELP http_requests_total HTTP requests handled.\n# TYPE http_requests_total counter"
        );
        for ((method, route, status), n) in &g.requests {
            let _ = writeln!(
                out,
                "http_requests_total{{service=\"{svc}\",method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                esc(method),
                esc(route)
            );
        }
        let _ = writeln!(
            out,
            "# HELP http_request_duration_seconds HTTP request latency.\n# TYPE http_request_duration_seconds histogram"
        );
        for ((method, route), h) in &g.durations {
            let labels = format!(
                "service=\"{svc}\",method=\"{}\",route=\"{}\"",
                esc(method),
                esc(route)
            );
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        out.push_str(extra);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::new("crm-service", "1.1.2");
        m.observe("GET", "/customers", 200, Duration::from_millis(3));
        m.observe("GET", "/customers", 200, Duration::from_millis(300));
        let text = m.render("");
        assert!(text.contains("neuroerp_build_info{service=\"crm-service\",version=\"1.1.2\"} 1"));
        assert!(text.contains(
            "http_requests_total{service=\"crm-service\",method=\"GET\",route=\"/customers\",status=\"200\"} 2"
        ));
        assert!(text.contains("le=\"0.005\"} 1"));
        assert!(text.contains("le=\"0.5\"} 2"));
        assert!(text.contains("le=\"+Inf\"} 2"));
        assert!(text.contains(
            "http_request_duration_seconds_count{service=\"crm-service\",method=\"GET\",route=\"/customers\"} 2"
        ));
    }
}
