//! Host side of the `valero:stage` WIT package: generated bindings, the
//! always-on interfaces (`context` on [`StageContext`], `log` on
//! [`log::StageLog`], `types`), and the capabilities ([`capabilities`]),
//! each implemented on its own data. `sandbox::linker` wires them to a
//! stage's store; a capability is linked only for stages granted it, so a
//! component importing an ungranted interface cannot be instantiated (and is
//! refused earlier with a clear message by the loader).

pub mod capabilities;
mod context;
pub(crate) mod log;

pub use context::StageContext;

pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "stage-full",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

pub use bindings::valero::stage::types::{Check, Measurement, Report, Verdict};

// A guest's report crosses into the host's vocabulary here, unchanged; the
// report crate decodes and bounds it (`report::decode`).

impl From<Verdict> for crate::report::Verdict {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Pass => crate::report::Verdict::Pass,
            Verdict::Fail => crate::report::Verdict::Fail,
            Verdict::Inconclusive => crate::report::Verdict::Inconclusive,
        }
    }
}

impl From<Report> for crate::report::decode::Report {
    fn from(r: Report) -> Self {
        let Report {
            verdict,
            summary,
            checks,
            outputs,
        } = r;
        crate::report::decode::Report {
            verdict: verdict.into(),
            summary,
            checks: checks.into_iter().map(Into::into).collect(),
            outputs,
        }
    }
}

impl From<Check> for crate::report::decode::Check {
    fn from(c: Check) -> Self {
        let Check {
            name,
            verdict,
            message,
            duration_ms,
            evidence,
            measurements,
        } = c;
        crate::report::decode::Check {
            name,
            verdict: verdict.into(),
            message,
            duration_ms,
            evidence,
            measurements: measurements
                .into_iter()
                .map(
                    |Measurement { name, value, unit }| crate::report::decode::Measurement {
                        name,
                        value,
                        unit,
                    },
                )
                .collect(),
        }
    }
}
