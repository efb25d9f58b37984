//! The host's edge for what a guest returns: its report, outputs, log lines
//! and captured output, decoded, neutralised and masked as the runner does
//! (`report::decode`, then `secrets`). Whatever the guest sends:
//!
//! * masking never fails open: no secret appears in the stage report, its
//!   JSON, its log lines or its captured output — not even split across
//!   line breaks in the line-oriented streams;
//! * the plugin's text cannot drive a terminal or a CI runner: no control
//!   characters (but newline and tab), no `::command` at a line start, no
//!   `##[` anywhere;
//! * the caps hold, and the record is JSON that reads back.
//!
//! Secrets containing `*` are left out: text next to a mask (`***`) could
//! spell such a secret again, which is no disclosure of it.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use valero_report::decode::{self, CHECKS_MAX, ITEMS_MAX};
use valero_report::secrets::{HeldLines, MIN_MASKED_LEN, Masker};
use valero_report::{
    AttemptEnd, AttemptReport, LogLevel, LogLine, OutputReport, StageReport, StageStatus, Verdict,
    neutralize,
};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    secrets: Vec<&'a str>,
    verdict: u8,
    summary: &'a str,
    checks: Vec<Check<'a>>,
    outputs: &'a str,
    log: Vec<&'a str>,
    stdout: &'a [u8],
    truncated: bool,
}

#[derive(Arbitrary, Debug)]
struct Check<'a> {
    name: &'a str,
    verdict: u8,
    message: &'a str,
    duration_ms: u64,
    evidence: Vec<(&'a str, &'a str)>,
    measurements: Vec<(&'a str, f64, &'a str)>,
}

fn verdict(v: u8) -> Verdict {
    match v % 3 {
        0 => Verdict::Pass,
        1 => Verdict::Fail,
        _ => Verdict::Inconclusive,
    }
}

fuzz_target!(|input: Input| {
    let secrets: Vec<&str> = input
        .secrets
        .iter()
        .copied()
        .filter(|s| s.len() >= MIN_MASKED_LEN && !s.contains('*'))
        .collect();
    let masker = Masker::new(secrets.iter().copied());

    let report = decode::Report {
        verdict: verdict(input.verdict),
        summary: input.summary.to_string(),
        checks: input
            .checks
            .iter()
            .map(|c| decode::Check {
                name: c.name.to_string(),
                verdict: verdict(c.verdict),
                message: c.message.to_string(),
                duration_ms: c.duration_ms,
                evidence: c
                    .evidence
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                measurements: c
                    .measurements
                    .iter()
                    .map(|(name, value, unit)| decode::Measurement {
                        name: name.to_string(),
                        value: *value,
                        unit: unit.to_string(),
                    })
                    .collect(),
            })
            .collect(),
        outputs: input.outputs.to_string(),
    };
    let decoded = decode::decode(report);
    assert!(decoded.checks.len() <= CHECKS_MAX);
    for c in &decoded.checks {
        assert!(c.evidence.len() <= ITEMS_MAX && c.measurements.len() <= ITEMS_MAX);
    }

    // Log lines as host/log.rs passes them on: neutralised, then held and masked.
    let mut held = HeldLines::default();
    let mut logs = Vec::new();
    for (i, line) in input.log.iter().enumerate() {
        logs.extend(held.push(&masker, i, neutralize(line)));
    }
    logs.extend(held.finish(&masker));
    assert_eq!(logs.len(), input.log.len(), "a log line was lost");
    assert!(
        logs.iter().enumerate().all(|(i, (n, _))| i == *n),
        "log lines reordered"
    );
    let stdout = masker.mask_lines(input.stdout, input.truncated);

    let mut stage = StageReport::not_run("fuzz", "builtin:fuzz".into(), StageStatus::Passed, None);
    stage.summary = decoded.summary;
    stage.checks = decoded.checks;
    stage.outputs = decoded.outputs;
    stage.reason = decoded.problem;
    stage.attempts.push(AttemptReport {
        attempt: 1,
        start_ms: 0.0,
        end_ms: 1.0,
        outcome: AttemptEnd::Returned,
        verdict: Some(decoded.verdict),
        message: String::new(),
        stdout: OutputReport {
            bytes: stdout.len() as u64,
            dropped: 0,
            text: String::from_utf8_lossy(&stdout).into_owned(),
        },
        stderr: OutputReport::default(),
        logs: logs
            .into_iter()
            .map(|(_, message)| LogLine {
                at_ms: 0.0,
                level: LogLevel::Info,
                message,
            })
            .collect(),
        logs_dropped: 0,
    });
    let stage = masker.masked(stage);

    let json = serde_json::to_string(&stage).expect("a stage report always serialises");
    let _: StageReport = serde_json::from_str(&json).expect("the record reads back");
    let value: Value = serde_json::from_str(&json).expect("valid JSON");

    // No secret anywhere in the record, as one string (the schema's own
    // keys and typed words are the host's vocabulary, not text).
    let mut texts = Vec::new();
    record_text(&value, &mut texts);
    for t in &texts {
        for s in &secrets {
            assert!(!t.contains(s), "secret {s:?} in {t:?}");
        }
    }
    // Nor across the line breaks of a stream.
    let attempt = &stage.attempts[0];
    let logs: String = attempt.logs.iter().map(|l| l.message.as_str()).collect();
    let out = flat(&attempt.stdout.text);
    for s in &secrets {
        let flat = flat(s);
        if flat.len() >= MIN_MASKED_LEN {
            assert!(
                !logs.contains(&flat),
                "secret {s:?} across log lines: {logs:?}"
            );
            assert!(
                !out.contains(&flat),
                "secret {s:?} across stdout lines: {out:?}"
            );
        }
    }

    // Plugin text is inert (captured output is raw bytes by design).
    let mut plugin_text: Vec<&str> = vec![&stage.summary];
    for c in &stage.checks {
        plugin_text.extend([c.name.as_str(), c.message.as_str()]);
        for (k, v) in &c.evidence {
            plugin_text.extend([k.as_str(), v.as_str()]);
        }
        for m in &c.measurements {
            plugin_text.extend([m.name.as_str(), m.unit.as_str()]);
        }
    }
    plugin_text.extend(attempt.logs.iter().map(|l| l.message.as_str()));
    for t in plugin_text {
        assert!(
            !t.chars().any(|c| c.is_control() && c != '\n' && c != '\t'),
            "control character in {t:?}"
        );
        assert!(!t.contains("##["), "legacy workflow command in {t:?}");
        for line in t.split('\n') {
            assert!(
                !line.trim_start().starts_with("::"),
                "workflow command in {t:?}"
            );
        }
    }
    let mut outputs = Vec::new();
    strings(&stage.outputs, &mut outputs);
    for t in outputs {
        assert!(!t.chars().any(|c| c.is_control() && c != '\n' && c != '\t'));
        assert!(!t.contains("##["));
    }
});

/// The text of a stage record: every string value but the typed words, and
/// the keys inside `outputs` (the plugin chose those).
fn record_text<'v>(v: &'v Value, out: &mut Vec<&'v str>) {
    const WORDS: [&str; 6] = [
        "status", "outcome", "verdict", "level", "source", "lifetime",
    ];
    match v {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|i| record_text(i, out)),
        Value::Object(map) => {
            for (k, v) in map {
                if k == "outputs" {
                    strings(v, out);
                } else if !WORDS.contains(&k.as_str()) {
                    record_text(v, out);
                }
            }
        }
        _ => {}
    }
}

/// `s` without its line breaks (`\n`, and a `\r` before one), as the
/// masking of a stream sees it.
fn flat(s: &str) -> String {
    let lines: Vec<&str> = s.split('\n').collect();
    let last = lines.len() - 1;
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if i < last {
                l.strip_suffix('\r').unwrap_or(l)
            } else {
                l
            }
        })
        .collect()
}

/// Every string and key in a JSON value.
fn strings<'v>(v: &'v Value, out: &mut Vec<&'v str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k);
                strings(v, out);
            }
        }
        _ => {}
    }
}
