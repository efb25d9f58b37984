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
pub use log::{LogLevel, LogLine};

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
