//! Host capability interfaces (`processes`, `containers`, `kubernetes`,
//! `databases`). Each is linked only for stages granted it.
//!
//! `processes` is implemented in [`processes`], `databases` in
//! [`databases`], `containers` in [`containers`]. The engine behind
//! `kubernetes` (kube) is still to come; until it is, a granted call returns
//! an error that says so, rather than pretending to work.

pub mod containers;
pub mod databases;
pub mod processes;

use wasmtime::component::{HasSelf, Linker};

use crate::host::bindings::valero::stage::{
    containers as containers_api, databases as databases_api, kubernetes,
};
use crate::pipeline::Capability;
use crate::sandbox::StoreState;

/// Links one capability interface into a stage's linker.
pub fn link(cap: Capability, linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    match cap {
        Capability::Processes => crate::host::bindings::valero::stage::processes::add_to_linker::<
            StoreState,
            HasSelf<StoreState>,
        >(linker, |s| s),
        Capability::Containers => {
            containers_api::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |s| s)
        }
        Capability::Kubernetes => {
            kubernetes::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |s| s)
        }
        Capability::Databases => {
            databases_api::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |s| s)
        }
    }
}

fn unavailable(cap: Capability) -> String {
    format!(
        "the `{}` capability is granted but has no engine in this valero build yet",
        cap.name()
    )
}

impl kubernetes::Host for StoreState {
    async fn call(
        &mut self,
        _op: String,
        _req: String,
    ) -> wasmtime::Result<Result<String, String>> {
        Ok(Err(unavailable(Capability::Kubernetes)))
    }
}
