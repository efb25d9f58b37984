//! Host side of the `valero:stage` WIT package: generated bindings and the
//! per-stage linker wiring.
//!
//! `context`, `log` and `types` are linked for every stage. Each capability
//! interface is one self-contained unit in [`capabilities`] and is linked only
//! for stages granted it, so a component importing an ungranted interface
//! cannot be instantiated (and is refused earlier with a clear message by the
//! loader).

pub mod capabilities;
mod context;
pub(crate) mod log;

use wasmtime::component::{HasSelf, Linker};

use crate::pipeline::Capability;
use crate::sandbox::StoreState;

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

impl bindings::valero::stage::types::Host for StoreState {}

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

/// Builds the linker for a stage with the given capability grants:
/// WASI 0.2 (denied at call time unless granted, see [`crate::sandbox`]),
/// wasi:http, the always-on valero interfaces, and the granted capabilities.
pub fn linker(
    engine: &wasmtime::Engine,
    granted: &std::collections::BTreeSet<Capability>,
) -> wasmtime::Result<Linker<StoreState>> {
    let mut linker = Linker::<StoreState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    // Name lookups only for granted names (see `sandbox::net`).
    linker.allow_shadowing(true);
    crate::sandbox::net::add_lookup_to_linker(&mut linker)?;
    linker.allow_shadowing(false);
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    use bindings::valero::stage as wit;
    wit::types::add_to_linker::<StoreState, HasSelf<StoreState>>(&mut linker, |s| s)?;
    wit::context::add_to_linker::<StoreState, HasSelf<StoreState>>(&mut linker, |s| s)?;
    wit::log::add_to_linker::<StoreState, HasSelf<StoreState>>(&mut linker, |s| s)?;
    for cap in granted {
        capabilities::link(*cap, &mut linker)?;
    }
    Ok(linker)
}
