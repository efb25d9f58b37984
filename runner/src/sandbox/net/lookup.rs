//! `wasi:sockets/ip-name-lookup`, gated by name. wasmtime-wasi can only
//! switch lookups on or off for a whole store; this replaces its
//! `resolve-addresses` with one that refuses names the stage is not granted
//! before anything is queried, and otherwise hands over to wasmtime-wasi.

use std::sync::Arc;

use wasmtime::component::{HasData, Linker, Resource};
use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::{
    self, Host, HostResolveAddressStream, ResolveAddressStream,
};
use wasmtime_wasi::p2::bindings::sockets::network::{self, ErrorCode, IpAddress, Network};
use wasmtime_wasi::p2::{DynPollable, SocketError};
use wasmtime_wasi::sockets::{WasiSocketsCtxView, WasiSocketsView};

use super::NetPolicy;
use crate::sandbox::StoreState;

/// wasmtime-wasi's sockets view plus the stage's policy.
pub struct GatedLookup<'a> {
    sockets: WasiSocketsCtxView<'a>,
    policy: Arc<NetPolicy>,
}

struct Gated;

impl HasData for Gated {
    type Data<'a> = GatedLookup<'a>;
}

/// Replaces wasmtime-wasi's `ip-name-lookup` in `linker` (which must allow
/// shadowing) with the gated one.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    ip_name_lookup::add_to_linker::<StoreState, Gated>(linker, |state| {
        let policy = state.net_policy();
        GatedLookup {
            sockets: state.sockets(),
            policy,
        }
    })
}

impl Host for GatedLookup<'_> {
    fn resolve_addresses(
        &mut self,
        network: Resource<Network>,
        name: String,
    ) -> Result<Resource<ResolveAddressStream>, SocketError> {
        if !self.policy.allows_lookup(&name) {
            return Err(ErrorCode::AccessDenied.into());
        }
        Host::resolve_addresses(&mut self.sockets, network, name)
    }
}

/// Error conversion for the trappable socket errors, as wasmtime-wasi does it.
impl network::Host for GatedLookup<'_> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        network::Host::convert_error_code(&mut self.sockets, error)
    }

    fn network_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        network::Host::network_error_code(&mut self.sockets, err)
    }
}

impl network::HostNetwork for GatedLookup<'_> {
    fn drop(&mut self, this: Resource<Network>) -> wasmtime::Result<()> {
        network::HostNetwork::drop(&mut self.sockets, this)
    }
}

impl HostResolveAddressStream for GatedLookup<'_> {
    fn resolve_next_address(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> Result<Option<IpAddress>, SocketError> {
        HostResolveAddressStream::resolve_next_address(&mut self.sockets, stream)
    }

    fn subscribe(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        HostResolveAddressStream::subscribe(&mut self.sockets, stream)
    }

    fn drop(&mut self, stream: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
        HostResolveAddressStream::drop(&mut self.sockets, stream)
    }
}
