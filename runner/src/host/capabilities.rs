//! Host capability interfaces (`processes`, `containers`, `kubernetes`,
//! `databases`). Each is linked only for stages granted it.
//!
//! The contract and the grant mechanism are in place; the engines behind
//! them (process supervisor, bollard, kube, sqlx) are added one capability at
//! a time. Until one is, a granted call returns an error that says so, rather
//! than pretending to work.

use wasmtime::component::{HasSelf, Linker};

use crate::host::bindings::valero::stage::{containers, databases, kubernetes, processes};
use crate::pipeline::Capability;
use crate::sandbox::StoreState;

/// Links one capability interface into a stage's linker.
pub fn link(cap: Capability, linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    match cap {
        Capability::Processes => {
            processes::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |s| s)
        }
        Capability::Containers => {
            containers::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |s| s)
        }
        Capability::Kubernetes => {
            kubernetes::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |s| s)
        }
        Capability::Databases => {
            databases::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |s| s)
        }
    }
}

fn unavailable(cap: Capability) -> String {
    format!(
        "the `{}` capability is granted but has no engine in this valero build yet",
        cap.name()
    )
}

impl processes::Host for StoreState {
    async fn start(&mut self, _name: String) -> wasmtime::Result<Result<u32, String>> {
        Ok(Err(unavailable(Capability::Processes)))
    }
    async fn stop(&mut self, _name: String) -> wasmtime::Result<Result<(), String>> {
        Ok(Err(unavailable(Capability::Processes)))
    }
    async fn running(&mut self, _name: String) -> wasmtime::Result<Result<bool, String>> {
        Ok(Err(unavailable(Capability::Processes)))
    }
}

impl containers::Host for StoreState {
    async fn call(
        &mut self,
        _op: String,
        _req: String,
    ) -> wasmtime::Result<Result<String, String>> {
        Ok(Err(unavailable(Capability::Containers)))
    }
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

impl databases::Host for StoreState {
    async fn query(
        &mut self,
        _name: String,
        _sql: String,
    ) -> wasmtime::Result<Result<String, String>> {
        Ok(Err(unavailable(Capability::Databases)))
    }
}
