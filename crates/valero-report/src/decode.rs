//! The edge where a guest's report enters the host: decoded, validated and
//! bounded once, so everything downstream (terminal, reports, run records,
//! the inputs of later stages) holds only what the host can show and store.
//!
//! * Text is neutralised (see [`neutralize`]) and each piece (summary, check
//!   names and messages, evidence, measurement names and units) is cut at
//!   [`TEXT_MAX`] bytes with a visible `… (N bytes not shown …)` marker.
//! * A non-finite measurement (NaN, ±infinity) is recorded as `null`, the
//!   form the report schema gives it, so the records stay valid JSON that
//!   reads back.
//! * Caps the stage fails on (keeping what fits, so the report still shows
//!   what the plugin said): more than [`CHECKS_MAX`] checks, more than
//!   [`ITEMS_MAX`] evidence entries or measurements in one check, more than
//!   [`REPORT_MAX`] bytes in all (text, plus [`ITEM_BYTES`] per check,
//!   evidence entry and measurement), `outputs` over [`OUTPUTS_MAX`] bytes or
//!   not JSON.
//!
//! The component model has already copied the report out of the guest when
//! it gets here (bounded by the stage's memory limit); these caps keep the
//! copies after it — reports, records, the terminal — small.

use crate::{CheckReport, MeasurementReport, Verdict, neutralize, neutralize_json};

/// A report as a guest returned it (the WIT `report` record), before the
/// host has looked at any of it.
#[derive(Debug, Clone)]
pub struct Report {
    pub verdict: Verdict,
    pub summary: String,
    pub checks: Vec<Check>,
    /// JSON text, as the guest wrote it.
    pub outputs: String,
}

/// A check as a guest returned it.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub verdict: Verdict,
    pub message: String,
    pub duration_ms: u64,
    pub evidence: Vec<(String, String)>,
    pub measurements: Vec<Measurement>,
}

/// A measurement as a guest returned it: any `f64`, NaN included.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub name: String,
    pub value: f64,
    pub unit: String,
}

/// Most checks one report may carry.
pub const CHECKS_MAX: usize = 10_000;
/// Most evidence entries, and most measurements, in one check.
pub const ITEMS_MAX: usize = 1_000;
/// Longest piece of text kept (bytes of the plugin's text, before escaping).
pub const TEXT_MAX: usize = 64 * 1024;
/// Most bytes one report may hold in all.
pub const REPORT_MAX: usize = 8 * 1024 * 1024;
/// What each check, evidence entry and measurement counts towards
/// [`REPORT_MAX`] besides its text (its framing in reports and records).
pub const ITEM_BYTES: usize = 64;
/// Longest `outputs` JSON document accepted.
pub const OUTPUTS_MAX: usize = 1024 * 1024;

/// A guest's report as the host keeps it.
#[derive(Debug)]
pub struct Decoded {
    pub verdict: Verdict,
    pub summary: String,
    pub checks: Vec<CheckReport>,
    /// `null` when the plugin gave none, or when they were refused.
    pub outputs: serde_json::Value,
    /// Why the stage fails whatever its verdict (a cap, invalid outputs);
    /// `None` when the report was accepted as it is.
    pub problem: Option<String>,
}

pub fn decode(report: Report) -> Decoded {
    let Report {
        verdict,
        summary,
        checks,
        outputs,
    } = report;
    let mut budget = Budget::default();
    let summary = budget.text(summary);
    let reported = checks.len();
    if reported > CHECKS_MAX {
        budget.problem(format!(
            "the plugin reported {reported} checks; the host keeps at most {CHECKS_MAX} per report (the first {CHECKS_MAX} are shown)"
        ));
    }
    let checks = checks
        .into_iter()
        .take(CHECKS_MAX)
        .map(|c| budget.check(c))
        .collect();
    let outputs = budget.outputs(&outputs);
    Decoded {
        verdict,
        summary,
        checks,
        outputs,
        problem: (!budget.problems.is_empty()).then(|| budget.problems.join("; ")),
    }
}

/// What is left of [`REPORT_MAX`], and the problems found so far.
struct Budget {
    left: usize,
    exhausted: bool,
    problems: Vec<String>,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            left: REPORT_MAX,
            exhausted: false,
            problems: Vec::new(),
        }
    }
}

impl Budget {
    fn problem(&mut self, p: String) {
        self.problems.push(p);
    }

    /// Takes `n` bytes of the budget; false (once noted as a problem) when
    /// they are not there.
    fn take(&mut self, n: usize) -> bool {
        if n <= self.left {
            self.left -= n;
            return true;
        }
        self.left = 0;
        if !self.exhausted {
            self.exhausted = true;
            self.problem(format!(
                "the report is larger than the host's cap of {} MiB per report (what did not fit is not shown)",
                REPORT_MAX >> 20
            ));
        }
        false
    }

    /// Neutralised, cut at [`TEXT_MAX`] and charged; empty once the budget is gone.
    fn text(&mut self, s: String) -> String {
        if self.exhausted {
            return String::new();
        }
        let text = neutralize(&cut(s));
        if self.take(text.len()) {
            text
        } else {
            String::new()
        }
    }

    fn items<T>(&mut self, what: &str, check: &str, mut items: Vec<T>) -> Vec<T> {
        if items.len() > ITEMS_MAX {
            self.problem(format!(
                "check `{check}` has {} {what}; the host keeps at most {ITEMS_MAX} per check",
                items.len()
            ));
            items.truncate(ITEMS_MAX);
        }
        let fit = items.len().min(self.left / ITEM_BYTES);
        // When they do not all fit, this notes the problem and empties the budget.
        self.take(items.len() * ITEM_BYTES);
        items.truncate(fit);
        items
    }

    fn check(&mut self, c: Check) -> CheckReport {
        let Check {
            name,
            verdict,
            message,
            duration_ms,
            evidence,
            measurements,
        } = c;
        self.take(ITEM_BYTES);
        let name = self.text(name);
        let message = self.text(message);
        let evidence = self
            .items("evidence entries", &name, evidence)
            .into_iter()
            .map(|(k, v)| (self.text(k), self.text(v)))
            .collect();
        let measurements = self
            .items("measurements", &name, measurements)
            .into_iter()
            .map(|m| self.measurement(m))
            .collect();
        CheckReport {
            name,
            verdict,
            message,
            duration_ms,
            evidence,
            measurements,
        }
    }

    fn measurement(&mut self, m: Measurement) -> MeasurementReport {
        let Measurement { name, value, unit } = m;
        MeasurementReport {
            name: self.text(name),
            // JSON has no NaN or infinity: the schema records them as null.
            value: value.is_finite().then_some(value),
            unit: self.text(unit),
        }
    }

    fn outputs(&mut self, raw: &str) -> serde_json::Value {
        if raw.len() > OUTPUTS_MAX {
            self.problem(format!(
                "the plugin's outputs are {} bytes; the host accepts at most {} KiB (they are dropped)",
                raw.len(),
                OUTPUTS_MAX >> 10
            ));
            return serde_json::Value::Null;
        }
        match serde_json::from_str::<serde_json::Value>(raw) {
            Ok(mut v) => {
                neutralize_json(&mut v);
                if self.take(raw.len()) {
                    v
                } else {
                    serde_json::Value::Null
                }
            }
            Err(e) => {
                self.problem(format!("the plugin's outputs are not valid JSON: {e}"));
                serde_json::Value::Null
            }
        }
    }
}

/// At most [`TEXT_MAX`] bytes of `s` (on a character boundary), with a
/// marker saying how much was cut.
fn cut(mut s: String) -> String {
    if s.len() <= TEXT_MAX {
        return s;
    }
    let mut at = TEXT_MAX;
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    let dropped = s.len() - at;
    s.truncate(at);
    s.push_str(&format!(
        "… ({dropped} bytes not shown: the host keeps {} KiB of one text)",
        TEXT_MAX >> 10
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(checks: Vec<Check>, outputs: &str) -> Report {
        Report {
            verdict: Verdict::Pass,
            summary: "ok".into(),
            checks,
            outputs: outputs.into(),
        }
    }

    fn check(name: &str) -> Check {
        Check {
            name: name.into(),
            verdict: Verdict::Pass,
            message: String::new(),
            duration_ms: 1,
            evidence: Vec::new(),
            measurements: Vec::new(),
        }
    }

    fn measured(value: f64) -> Check {
        let mut c = check("m");
        c.measurements.push(Measurement {
            name: "v".into(),
            value,
            unit: "ms".into(),
        });
        c
    }

    #[test]
    fn non_finite_measurements_are_recorded_as_null_and_read_back() {
        let d = decode(report(
            vec![
                measured(f64::NAN),
                measured(f64::INFINITY),
                measured(-f64::INFINITY),
                measured(2.5),
            ],
            "null",
        ));
        assert!(d.problem.is_none(), "{:?}", d.problem);
        let values: Vec<_> = d.checks.iter().map(|c| c.measurements[0].value).collect();
        assert_eq!(values, [None, None, None, Some(2.5)]);
        let json = serde_json::to_string(&d.checks).unwrap();
        let back: Vec<CheckReport> = serde_json::from_str(&json).unwrap();
        assert_eq!(back[0].measurements[0].value, None);
        assert_eq!(back[3].measurements[0].value, Some(2.5));
    }

    #[test]
    fn too_many_checks_fail_the_stage_and_the_first_are_kept() {
        let d = decode(report(
            (0..CHECKS_MAX + 5).map(|_| check("c")).collect(),
            "null",
        ));
        assert_eq!(d.checks.len(), CHECKS_MAX);
        let p = d.problem.unwrap();
        assert!(
            p.contains("10005 checks") && p.contains("at most 10000"),
            "{p}"
        );

        let d = decode(report(
            (0..CHECKS_MAX).map(|_| check("c")).collect(),
            "null",
        ));
        assert!(d.problem.is_none());
    }

    #[test]
    fn long_text_is_cut_visibly_without_failing() {
        let mut r = report(vec![check("c")], "null");
        r.summary = "é".repeat(TEXT_MAX);
        let d = decode(r);
        assert!(d.problem.is_none());
        assert!(d.summary.len() < TEXT_MAX + 100, "{}", d.summary.len());
        assert!(
            d.summary.ends_with(&format!(
                "… ({} bytes not shown: the host keeps 64 KiB of one text)",
                TEXT_MAX
            )),
            "{}",
            &d.summary[d.summary.len() - 80..]
        );
    }

    #[test]
    fn a_report_over_the_total_cap_fails_and_keeps_what_fits() {
        // 200 checks with 64 KiB messages: 12.5 MiB of text.
        let checks = (0..200)
            .map(|i| {
                let mut c = check(&format!("c{i}"));
                c.message = "m".repeat(TEXT_MAX);
                c
            })
            .collect();
        let d = decode(report(checks, "{\"a\":1}"));
        let p = d.problem.unwrap();
        assert!(p.contains("8 MiB per report"), "{p}");
        assert_eq!(d.checks.len(), 200);
        let kept: usize = d
            .checks
            .iter()
            .map(|c| c.name.len() + c.message.len())
            .sum();
        assert!(kept <= REPORT_MAX, "{kept}");
        assert!(d.checks[199].message.is_empty());
        assert_eq!(d.outputs, serde_json::Value::Null);
    }

    #[test]
    fn too_many_items_in_a_check_fail_the_stage() {
        let mut c = check("many");
        c.evidence = (0..ITEMS_MAX + 1)
            .map(|i| (i.to_string(), String::new()))
            .collect();
        let d = decode(report(vec![c], "null"));
        assert_eq!(d.checks[0].evidence.len(), ITEMS_MAX);
        let p = d.problem.unwrap();
        assert!(p.contains("`many` has 1001 evidence entries"), "{p}");
    }

    #[test]
    fn outputs_are_neutralised_capped_and_must_be_json() {
        let d = decode(report(vec![], "{\"k\\u001b\": \"\\u001b[31m::1\"}"));
        assert!(d.problem.is_none());
        assert_eq!(d.outputs, serde_json::json!({ "k\\x1b": "\\x1b[31m::1" }));

        let d = decode(report(vec![], "{"));
        assert!(d.problem.unwrap().contains("not valid JSON"));
        assert_eq!(d.outputs, serde_json::Value::Null);

        let big = format!("\"{}\"", "x".repeat(OUTPUTS_MAX));
        let d = decode(report(vec![], &big));
        assert!(d.problem.unwrap().contains("at most 1024 KiB"));
        assert_eq!(d.outputs, serde_json::Value::Null);
    }

    #[test]
    fn text_is_neutralised() {
        let mut r = report(vec![check("\x1b[2J")], "null");
        r.summary = "::set-output name=a::b".into();
        let d = decode(r);
        assert_eq!(d.summary, "\\x3a:set-output name=a::b");
        assert_eq!(d.checks[0].name, "\\x1b[2J");
    }
}
