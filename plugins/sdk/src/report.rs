//! Builders for checks and reports, converted into the WIT `report` type on export.

use std::time::Duration;

use crate::Verdict;
use crate::bindings::valero::stage::types as wit;

/// One named check inside a stage; build it with [`Check::pass`], [`Check::fail`]
/// or [`Check::inconclusive`] and the chained setters.
#[derive(Debug, Clone)]
pub struct Check {
    name: String,
    verdict: Verdict,
    message: String,
    duration: Duration,
    evidence: Vec<(String, String)>,
    measurements: Vec<wit::Measurement>,
}

impl Check {
    /// A check with the given verdict.
    pub fn new(name: impl Into<String>, verdict: Verdict) -> Self {
        Self {
            name: name.into(),
            verdict,
            message: String::new(),
            duration: Duration::ZERO,
            evidence: Vec::new(),
            measurements: Vec::new(),
        }
    }

    /// A passing check.
    pub fn pass(name: impl Into<String>) -> Self {
        Self::new(name, Verdict::Pass)
    }

    /// A failing check; say what was expected and what was seen in [`Check::message`].
    pub fn fail(name: impl Into<String>) -> Self {
        Self::new(name, Verdict::Fail)
    }

    /// A check that could not decide.
    pub fn inconclusive(name: impl Into<String>) -> Self {
        Self::new(name, Verdict::Inconclusive)
    }

    /// Sets the human-readable explanation.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// Adds a key/value fact supporting the verdict.
    pub fn evidence(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.evidence.push((key.into(), value.to_string()));
        self
    }

    /// Adds a measurement, e.g. `.measure("latency", 12.5, "ms")`.
    pub fn measure(mut self, name: impl Into<String>, value: f64, unit: impl Into<String>) -> Self {
        self.measurements.push(wit::Measurement {
            name: name.into(),
            value,
            unit: unit.into(),
        });
        self
    }

    /// Sets how long the check took.
    pub fn duration(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self
    }

    /// This check's verdict.
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// This check's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl From<Check> for wit::Check {
    fn from(check: Check) -> Self {
        wit::Check {
            name: check.name,
            verdict: check.verdict,
            message: check.message,
            duration_ms: u64::try_from(check.duration.as_millis()).unwrap_or(u64::MAX),
            evidence: check.evidence,
            measurements: check.measurements,
        }
    }
}

/// What a stage hands back to the host.
#[derive(Debug, Clone)]
pub struct Report {
    verdict: Verdict,
    summary: String,
    checks: Vec<Check>,
    outputs: serde_json::Value,
}

impl Report {
    /// A report whose verdict follows from its checks: any fail → fail, else any
    /// inconclusive → inconclusive, else pass (also with no checks).
    pub fn from_checks(summary: impl Into<String>, checks: Vec<Check>) -> Self {
        let verdict = if checks.iter().any(|c| c.verdict == Verdict::Fail) {
            Verdict::Fail
        } else if checks.iter().any(|c| c.verdict == Verdict::Inconclusive) {
            Verdict::Inconclusive
        } else {
            Verdict::Pass
        };
        Self {
            verdict,
            summary: summary.into(),
            checks,
            outputs: serde_json::Value::Null,
        }
    }

    /// A failing report without checks, e.g. for an invalid `with` config.
    pub fn fail(summary: impl Into<String>) -> Self {
        Self {
            verdict: Verdict::Fail,
            ..Self::from_checks(summary, Vec::new())
        }
    }

    /// Sets the JSON outputs handed to downstream stages (default `null`).
    pub fn outputs(mut self, outputs: serde_json::Value) -> Self {
        self.outputs = outputs;
        self
    }

    /// The overall verdict.
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// The checks, in order.
    pub fn checks(&self) -> &[Check] {
        &self.checks
    }
}

impl From<Report> for wit::Report {
    fn from(report: Report) -> Self {
        wit::Report {
            verdict: report.verdict,
            summary: report.summary,
            checks: report.checks.into_iter().map(Into::into).collect(),
            outputs: report.outputs.to_string(),
        }
    }
}
