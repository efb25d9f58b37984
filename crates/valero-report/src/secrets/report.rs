//! Masking of the report types, field by field.
//!
//! Each type is destructured completely (no `..`), so a field added to a
//! report type does not compile until someone decides how it is masked.
//! Masking text in place cannot fail, so it cannot fall back to the
//! unmasked value (as a round trip through JSON did on a NaN measurement).

use crate::LogLine;
use crate::{
    AttemptReport, CheckReport, LoadReport, MeasurementReport, OutputReport, ResumeNote,
    StageReport,
};

use super::Masker;

/// A value whose every piece of text can be masked in place.
pub trait Maskable {
    fn mask_with(&mut self, m: &Masker);
}

impl Maskable for String {
    fn mask_with(&mut self, m: &Masker) {
        if let std::borrow::Cow::Owned(masked) = m.mask(self) {
            *self = masked;
        }
    }
}

/// No text in it.
impl Maskable for bool {
    fn mask_with(&mut self, _: &Masker) {}
}

impl Maskable for serde_json::Value {
    fn mask_with(&mut self, m: &Masker) {
        m.mask_json(self);
    }
}

impl<T: Maskable> Maskable for Option<T> {
    fn mask_with(&mut self, m: &Masker) {
        if let Some(v) = self {
            v.mask_with(m);
        }
    }
}

impl<T: Maskable> Maskable for Vec<T> {
    fn mask_with(&mut self, m: &Masker) {
        self.iter_mut().for_each(|v| v.mask_with(m));
    }
}

impl<A: Maskable, B: Maskable> Maskable for (A, B) {
    fn mask_with(&mut self, m: &Masker) {
        self.0.mask_with(m);
        self.1.mask_with(m);
    }
}

impl Maskable for StageReport {
    fn mask_with(&mut self, m: &Masker) {
        let StageReport {
            name,
            status: _,
            reason,
            plugin,
            digest,
            load,
            start_ms: _,
            end_ms: _,
            continue_on_error: _,
            fingerprint,
            resume,
            summary,
            checks,
            outputs,
            attempts,
            effects,
        } = self;
        effects.mask_with(m);
        name.mask_with(m);
        reason.mask_with(m);
        plugin.mask_with(m);
        digest.mask_with(m);
        load.mask_with(m);
        fingerprint.mask_with(m);
        resume.mask_with(m);
        summary.mask_with(m);
        checks.mask_with(m);
        outputs.mask_with(m);
        attempts.mask_with(m);
    }
}

/// Names and ids of what a stage left behind: the plugin chose the names, so
/// they are masked like any plugin text.
impl Maskable for crate::effects::RecordedEffect {
    fn mask_with(&mut self, m: &Masker) {
        use crate::effects::Effect;
        match &mut self.effect {
            Effect::Service { name } => name.mask_with(m),
            Effect::Container {
                project,
                name,
                id,
                config_hash,
            } => {
                project.mask_with(m);
                name.mask_with(m);
                id.mask_with(m);
                config_hash.mask_with(m);
            }
            Effect::Image { project, tag, id } => {
                project.mask_with(m);
                tag.mask_with(m);
                id.mask_with(m);
            }
        }
    }
}

/// Typed words (verdicts, outcomes, load sources) hold no text to mask.
impl Maskable for LoadReport {
    fn mask_with(&mut self, _: &Masker) {
        let LoadReport { source: _, ms: _ } = self;
    }
}

impl Maskable for ResumeNote {
    fn mask_with(&mut self, m: &Masker) {
        let ResumeNote { reused: _, why } = self;
        why.mask_with(m);
    }
}

impl Maskable for CheckReport {
    fn mask_with(&mut self, m: &Masker) {
        let CheckReport {
            name,
            verdict: _,
            message,
            duration_ms: _,
            evidence,
            measurements,
        } = self;
        name.mask_with(m);
        message.mask_with(m);
        evidence.mask_with(m);
        measurements.mask_with(m);
    }
}

impl Maskable for MeasurementReport {
    fn mask_with(&mut self, m: &Masker) {
        let MeasurementReport {
            name,
            value: _,
            unit,
        } = self;
        name.mask_with(m);
        unit.mask_with(m);
    }
}

impl Maskable for AttemptReport {
    fn mask_with(&mut self, m: &Masker) {
        let AttemptReport {
            attempt: _,
            start_ms: _,
            end_ms: _,
            outcome: _,
            verdict: _,
            message,
            stdout,
            stderr,
            logs,
            logs_dropped: _,
        } = self;
        message.mask_with(m);
        stdout.mask_with(m);
        stderr.mask_with(m);
        logs.mask_with(m);
    }
}

impl Maskable for OutputReport {
    fn mask_with(&mut self, m: &Masker) {
        let OutputReport {
            bytes: _,
            dropped: _,
            text,
        } = self;
        text.mask_with(m);
    }
}

impl Maskable for LogLine {
    fn mask_with(&mut self, m: &Masker) {
        let LogLine {
            at_ms: _,
            level: _,
            message,
        } = self;
        message.mask_with(m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StageStatus;

    #[test]
    fn a_non_finite_measurement_does_not_stop_masking() {
        let secret = "s3cr3t-value";
        let m = Masker::new([secret]);
        let mut stage = StageReport::not_run("s", "p".into(), StageStatus::Failed, None);
        stage.reason = Some(format!("reason {secret}"));
        stage.summary = secret.into();
        stage.outputs = serde_json::json!({ secret: [secret] });
        stage.checks.push(CheckReport {
            name: format!("check {secret}"),
            verdict: crate::Verdict::Fail,
            message: secret.into(),
            duration_ms: 1,
            evidence: vec![(secret.into(), secret.into())],
            measurements: vec![MeasurementReport {
                name: secret.into(),
                value: None,
                unit: secret.into(),
            }],
        });
        stage.attempts.push(AttemptReport {
            attempt: 1,
            start_ms: 0.0,
            end_ms: f64::NAN,
            outcome: crate::AttemptEnd::Returned,
            verdict: Some(crate::Verdict::Fail),
            message: secret.into(),
            stdout: OutputReport {
                bytes: 1,
                dropped: 0,
                text: secret.into(),
            },
            stderr: OutputReport::default(),
            logs: vec![LogLine {
                at_ms: f64::INFINITY,
                level: crate::LogLevel::Info,
                message: secret.into(),
            }],
            logs_dropped: 0,
        });
        stage.mask_with(&m);
        let debug = format!("{stage:?}");
        assert!(!debug.contains(secret), "{debug}");
        assert_eq!(stage.checks[0].name, "check ***");
    }
}
