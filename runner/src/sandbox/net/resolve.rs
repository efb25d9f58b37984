//! Name resolution for the host's own network checks, behind a seam so tests
//! can script a name that answers differently over time (DNS rebinding)
//! without a DNS server.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

/// The addresses a name resolves to, for one lookup.
pub type Lookup = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>;

/// Resolves host names for the HTTP policy. Called once per request: the
/// addresses it returns are the ones checked and the ones connected to.
pub trait Resolve: Send + Sync {
    fn lookup(&self, host: &str, port: u16) -> Lookup;
}

/// The system resolver (`getaddrinfo` through tokio).
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn lookup(&self, host: &str, port: u16) -> Lookup {
        let host = host.to_string();
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), port))
                .await?
                .collect())
        })
    }
}

impl fmt::Debug for dyn Resolve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resolve")
    }
}
