//! Stage plugin `health`: liveness and readiness of services, all probes in
//! flight at once, polled with backoff until a deadline.
//!
//! ```toml
//! [stages.health]
//! plugin = "builtin:health"
//! timeout = "1m"                         # probing stops 0.5 s before it
//! with = { deadline_ms = 30000, request_timeout_ms = 2000,
//!          initial_backoff_ms = 100, max_backoff_ms = 2000, latency_budget_ms = 1000,
//!          endpoints = [ { path = "/health", status = 200, json = { status = "ok" } },
//!                        { path = "/ready",  status = 200, json = { status = "ready" } } ],
//!          services = { "fibu-service" = "http://127.0.0.1:8101",
//!                       "crm-service" = "http://127.0.0.1:8102" } }
//! [stages.health.grants]
//! http = ["http://127.0.0.1:*"]           # must cover every service URL
//! ```
//!
//! Defaults: `deadline_ms` 30000, `request_timeout_ms` 2000, `initial_backoff_ms`
//! 100, `max_backoff_ms` 2000, no latency budget, and `endpoints` `/health` and
//! `/ready` expecting 200. An endpoint may also set `body_contains = "…"` and its
//! own `latency_budget_ms`; `json` lists top-level keys the body must have with
//! exactly these values. `services` is required.
//!
//! Every (service, endpoint) probe runs on its own, concurrently with the others:
//! it sends a GET; an expected answer passes (unless it took longer than the
//! latency budget: then it fails); anything else (another status, a body that
//! does not match, a connection error, a timeout) is retried after a backoff
//! that doubles from `initial_backoff_ms` to `max_backoff_ms`, never past the
//! deadline. At the deadline a probe that never passed fails with its last
//! response (status and a body excerpt) or error, and its number of attempts.
//! The deadline is `deadline_ms`, or less when the stage has less time left
//! (`valero_sdk::remaining`, less 0.5 s to report): a stage timeout shorter
//! than `deadline_ms` ends in a report with every probe's answer, not in a
//! timeout without one.
//! A request the host denies (no `http` grant covers the URL) fails at once.
//!
//! One check per probe, named `<service> <path>`, with evidence `url`, `status`,
//! `attempts` (and `body` / `error` on failure) and measurements `latency` (ms
//! of the final request), `time_to_ready` (ms from stage start; passing probes)
//! and `attempts`. Outputs:
//!
//! ```json
//! {"services": {"fibu-service": {"/health": {"status": 200, "latency_ms": 1.2,
//!    "attempts": 1, "started_ms": 0.1, "finished_ms": 1.4, "passed": true}, …}},
//!  "total_ms": 5.3, "slowest_probe_ms": 4.9, "sum_of_probes_ms": 40.2}
//! ```
//!
//! (`status` is `null` if no response ever came; failed probes add `error`;
//! `started_ms`/`finished_ms` are relative to stage start.) Since the probes
//! run concurrently, `total_ms` stays close to `slowest_probe_ms`, far below
//! `sum_of_probes_ms`.

mod logic;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use valero_sdk::http::{self, HttpError, Pending};
use valero_sdk::{Check, Plugin, Report, Verdict, log};

use logic::{Config, Endpoint, excerpt, fmt_ms, ms};

/// Characters of a body shown in a failing check.
const EXCERPT_CHARS: usize = 200;

struct Health;

impl Plugin for Health {
    fn run() -> Report {
        let start = Instant::now();
        let config: Config = match valero_sdk::config() {
            Ok(config) => config,
            Err(e) => return Report::fail(e),
        };
        let problems = config.problems();
        if !problems.is_empty() {
            return Report::fail(format!("invalid `with` config: {}", problems.join("; ")));
        }
        let probes = Run::new(&config, start).run();
        report(&config, &probes, start)
    }
}

valero_sdk::export_plugin!(Health);

/// The last thing a probe saw that was not a pass.
enum Seen {
    /// A response that did not pass: its body and why (its status is `Probe::status`).
    Response {
        body: Vec<u8>,
        why: String,
    },
    Error(HttpError),
}

enum State {
    /// Send the next attempt at this time.
    Due(Instant),
    InFlight {
        pending: Pending,
    },
    Done {
        passed: bool,
        message: String,
    },
}

/// One (service, endpoint) probe and its state machine.
struct Probe<'c> {
    service: &'c str,
    endpoint: &'c Endpoint,
    url: String,
    budget: Option<Duration>,
    attempts: u32,
    /// When the first attempt was sent.
    started: Option<Instant>,
    finished: Option<Instant>,
    /// Latency and status of the last completed request.
    latency: Option<Duration>,
    status: Option<u16>,
    last: Option<Seen>,
    state: State,
}

impl Probe<'_> {
    fn name(&self) -> String {
        format!("{} {}", self.service, self.endpoint.path)
    }

    fn is_done(&self) -> bool {
        matches!(self.state, State::Done { .. })
    }

    fn passed(&self) -> bool {
        matches!(self.state, State::Done { passed: true, .. })
    }
}

/// Time kept back from the attempt's remaining time to build the report.
const REPORT_MARGIN: Duration = Duration::from_millis(500);

/// The shortest attempt worth sending before the deadline.
const MIN_ATTEMPT: Duration = Duration::from_millis(10);

struct Run<'c> {
    config: &'c Config,
    start: Instant,
    deadline: Instant,
    /// `deadline_ms`, or less when the attempt has less time left.
    budget_ms: u64,
    probes: Vec<Probe<'c>>,
    done: u64,
}

impl<'c> Run<'c> {
    fn new(config: &'c Config, start: Instant) -> Self {
        let mut probes = Vec::new();
        for (service, base) in &config.services {
            for endpoint in &config.endpoints {
                probes.push(Probe {
                    service,
                    endpoint,
                    url: logic::join_url(base, &endpoint.path),
                    budget: config.budget(endpoint),
                    attempts: 0,
                    started: None,
                    finished: None,
                    latency: None,
                    status: None,
                    last: None,
                    state: State::Due(start),
                });
            }
        }
        // Give up in time to report: never past what the host leaves the attempt.
        let wanted = Duration::from_millis(config.deadline_ms);
        let left = valero_sdk::remaining().saturating_sub(REPORT_MARGIN);
        if left < wanted {
            log::warn(format!(
                "deadline_ms {} is longer than the stage has left; probing for {} ms (raise the stage's timeout to probe longer)",
                config.deadline_ms,
                left.as_millis()
            ));
        }
        let budget = wanted.min(left);
        Self {
            config,
            start,
            deadline: start + budget,
            budget_ms: budget.as_millis() as u64,
            probes,
            done: 0,
        }
    }

    fn run(mut self) -> Vec<Probe<'c>> {
        let total = self.probes.len() as u64;
        log::progress(0, total, "probing");
        log::info(format!(
            "probing {} endpoint(s) on {} service(s) concurrently, deadline {} ms",
            self.config.endpoints.len(),
            self.config.services.len(),
            self.budget_ms
        ));
        loop {
            self.send_due();
            if self.probes.iter().all(Probe::is_done) {
                break;
            }
            // Wait for any response, or for the next retry to come due.
            let wake = self
                .probes
                .iter()
                .filter_map(|p| match p.state {
                    State::Due(at) => Some(at),
                    _ => None,
                })
                .min();
            let (indices, pendings): (Vec<usize>, Vec<&Pending>) = self
                .probes
                .iter()
                .enumerate()
                .filter_map(|(i, p)| match &p.state {
                    State::InFlight { pending } => Some((i, pending)),
                    _ => None,
                })
                .unzip();
            let ready: Vec<usize> = http::wait_any(&pendings, wake)
                .into_iter()
                .map(|r| indices[r])
                .collect();
            let ready_at = Instant::now();
            for index in ready {
                self.receive(index, ready_at);
            }
        }
        self.probes
    }

    /// Sends every probe whose next attempt is due; fails those past the deadline.
    fn send_due(&mut self) {
        let now = Instant::now();
        for index in 0..self.probes.len() {
            let probe = &mut self.probes[index];
            let State::Due(at) = probe.state else {
                continue;
            };
            if at > now {
                continue;
            }
            // Too little time left for a request to say anything.
            if self.deadline.saturating_duration_since(now) < MIN_ATTEMPT {
                self.give_up(index, now);
                continue;
            }
            let timeout = Duration::from_millis(self.config.request_timeout_ms)
                .min(self.deadline.saturating_duration_since(now));
            probe.attempts += 1;
            probe.started.get_or_insert(now);
            log::debug(format!("{}: attempt {}", probe.url, probe.attempts));
            probe.state = State::InFlight {
                pending: http::start_get(&probe.url, timeout),
            };
        }
    }

    /// Handles the ready response (or failure) of probe `index`.
    fn receive(&mut self, index: usize, ready_at: Instant) {
        let probe = &mut self.probes[index];
        let State::InFlight { pending } = std::mem::replace(&mut probe.state, State::Due(ready_at))
        else {
            return;
        };
        // Time to the response head, plus this probe's own body read.
        let sent = pending.started();
        let read = Instant::now();
        let result = pending.finish();
        let now = Instant::now();
        let latency = ready_at.saturating_duration_since(sent) + now.duration_since(read);
        probe.latency = Some(latency);
        match result {
            Ok(response) => {
                probe.status = Some(response.status);
                match logic::mismatch(probe.endpoint, response.status, &response.body) {
                    None => match probe.budget {
                        Some(budget) if latency > budget => {
                            let message = format!(
                                "{} answered in {} ms, budget {} ms",
                                response.status,
                                fmt_ms(latency),
                                budget.as_millis()
                            );
                            probe.last = Some(Seen::Response {
                                body: response.body,
                                why: message.clone(),
                            });
                            self.finish(index, now, false, message);
                        }
                        _ => {
                            let message = format!(
                                "{} in {} ms after {} attempt(s)",
                                response.status,
                                fmt_ms(latency),
                                probe.attempts
                            );
                            self.finish(index, now, true, message);
                        }
                    },
                    Some(why) => {
                        log::debug(format!("{}: {why}", probe.url));
                        probe.last = Some(Seen::Response {
                            body: response.body,
                            why,
                        });
                        self.retry(index, now);
                    }
                }
            }
            Err(e) if e.is_denied() => {
                let message = format!(
                    "GET {}: denied by the host — the stage needs an `http` grant covering \
                     this URL, e.g. grants = {{ http = [\"{}\"] }}",
                    probe.url,
                    origin(&probe.url)
                );
                probe.last = Some(Seen::Error(e));
                self.finish(index, now, false, message);
            }
            Err(e) => {
                log::debug(e.to_string());
                // An attempt the deadline cut short says less than the last
                // answer the service gave: keep that one to report.
                let cut_short = e.kind() == http::ErrorKind::Timeout
                    && now >= self.deadline
                    && matches!(probe.last, Some(Seen::Response { .. }));
                if !cut_short {
                    probe.last = Some(Seen::Error(e));
                }
                self.retry(index, now);
            }
        }
    }

    /// Schedules the next attempt after the backoff, or gives up at the deadline.
    fn retry(&mut self, index: usize, now: Instant) {
        let probe = &mut self.probes[index];
        let backoff = logic::backoff(
            probe.attempts,
            Duration::from_millis(self.config.initial_backoff_ms),
            Duration::from_millis(self.config.max_backoff_ms),
        );
        match logic::next_attempt(
            now.saturating_duration_since(self.start),
            backoff,
            self.deadline.duration_since(self.start),
        ) {
            Some(at) => probe.state = State::Due(self.start + at),
            None => self.give_up(index, now),
        }
    }

    /// Fails probe `index` at the deadline with what it saw last.
    fn give_up(&mut self, index: usize, now: Instant) {
        let probe = &self.probes[index];
        let seen = match &probe.last {
            Some(Seen::Response { body, why }) => {
                let body = excerpt(body, EXCERPT_CHARS);
                if body.is_empty() {
                    format!("{why} (empty body)")
                } else {
                    format!("{why}; body: {body}")
                }
            }
            Some(Seen::Error(e)) => {
                format!("expected status {}, last error: {e}", probe.endpoint.status)
            }
            None => "no request could be sent".to_string(),
        };
        let message = format!(
            "not ready by the deadline ({} ms) after {} attempt(s): {seen}",
            self.budget_ms, probe.attempts
        );
        self.finish(index, now, false, message);
    }

    fn finish(&mut self, index: usize, now: Instant, passed: bool, message: String) {
        let total = self.probes.len() as u64;
        let probe = &mut self.probes[index];
        probe.finished = Some(now);
        let verdict = if passed { "pass" } else { "FAIL" };
        self.done += 1;
        log::progress(self.done, total, format!("{}: {verdict}", probe.name()));
        if !passed {
            log::warn(format!("{}: {message}", probe.name()));
        }
        probe.state = State::Done { passed, message };
    }
}

/// `scheme://host:port` of `url`, for the grant hint.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

/// The report; all offsets are from `start`, when the stage began.
fn report(config: &Config, probes: &[Probe], start: Instant) -> Report {
    let total = start.elapsed();
    let at = |t: Option<Instant>| t.map(|t| ms(t.saturating_duration_since(start)));

    let mut checks = Vec::new();
    let mut services: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    let mut slowest = Duration::ZERO;
    let mut sum = Duration::ZERO;
    for probe in probes {
        let State::Done { passed, message } = &probe.state else {
            continue;
        };
        let duration = match (probe.started, probe.finished) {
            (Some(s), Some(f)) => f.saturating_duration_since(s),
            _ => Duration::ZERO,
        };
        slowest = slowest.max(duration);
        sum += duration;

        let mut check = if *passed {
            Check::pass(probe.name())
        } else {
            Check::fail(probe.name())
        }
        .message(message.clone())
        .duration(duration)
        .evidence("url", &probe.url)
        .evidence(
            "status",
            probe.status.map_or("none".to_string(), |s| s.to_string()),
        )
        .evidence("attempts", probe.attempts);
        if !passed {
            match &probe.last {
                Some(Seen::Response { body, .. }) => {
                    check = check.evidence("body", excerpt(body, EXCERPT_CHARS));
                }
                Some(Seen::Error(e)) => check = check.evidence("error", e),
                None => {}
            }
        }
        if let Some(latency) = probe.latency {
            check = check.measure("latency", ms(latency), "ms");
        }
        if *passed && let Some(finished) = probe.finished {
            check = check.measure(
                "time_to_ready",
                ms(finished.saturating_duration_since(start)),
                "ms",
            );
        }
        checks.push(check.measure("attempts", f64::from(probe.attempts), "count"));

        let mut entry = json!({
            "status": probe.status,
            "latency_ms": probe.latency.map(ms),
            "attempts": probe.attempts,
            "started_ms": at(probe.started),
            "finished_ms": at(probe.finished),
            "passed": passed,
        });
        if !passed {
            entry["error"] = Value::String(message.clone());
        }
        services
            .entry(probe.service)
            .or_default()
            .insert(probe.endpoint.path.clone(), entry);
    }

    let healthy = config
        .services
        .keys()
        .filter(|name| {
            probes
                .iter()
                .filter(|p| p.service == name.as_str())
                .all(Probe::passed)
        })
        .count();
    let passed = checks
        .iter()
        .filter(|c| c.verdict() == Verdict::Pass)
        .count();
    let summary = format!(
        "{healthy}/{} services healthy ({passed}/{} probes) in {} ms",
        config.services.len(),
        checks.len(),
        fmt_ms(total)
    );
    let outputs = json!({
        "services": services,
        "total_ms": ms(total),
        "slowest_probe_ms": ms(slowest),
        "sum_of_probes_ms": ms(sum),
    });
    Report::from_checks(summary, checks).outputs(outputs)
}
