//! Network policy: which outgoing HTTP requests and TCP connections a stage
//! may make. Checked on the *resolved* address, so a granted host name that
//! resolves somewhere not granted is still denied (DNS rebinding).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use crate::pipeline::{Grants, HttpGrant, TcpGrant};

/// The network part of a stage's grants, shared by the HTTP hook and the
/// socket address check.
#[derive(Debug, Clone)]
pub struct NetPolicy {
    http: Vec<HttpGrant>,
    tcp: Vec<TcpGrant>,
    addresses: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("no `http` grant allows {0}")]
    NotGranted(String),
    #[error("{host} resolves to {addr}, which is outside the granted `addresses`")]
    Address { host: String, addr: IpAddr },
    #[error("could not resolve {0}")]
    Unresolved(String),
}

impl NetPolicy {
    pub fn from_grants(grants: &Grants) -> Self {
        let addresses = if grants.addresses.is_empty() {
            default_addresses()
        } else {
            grants.addresses.clone()
        };
        NetPolicy {
            http: grants.http.clone(),
            tcp: grants.tcp.clone(),
            addresses,
        }
    }

    pub fn allows_tcp(&self) -> bool {
        !self.tcp.is_empty()
    }

    fn address_allowed(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.addresses.iter().any(|net| net.contains(&ip))
    }

    /// Socket use: outgoing TCP connections only, to an address that matches
    /// a `tcp` grant and lies in `addresses`. Binding is allowed only as the
    /// implicit ephemeral bind before a connect (unspecified address, port 0);
    /// listening, accepting and UDP are always denied.
    pub fn check_socket(&self, addr: SocketAddr, usage: SocketAddrUse) -> bool {
        let ip = canonical(addr.ip());
        let allowed = match usage {
            SocketAddrUse::TcpConnect => {
                self.tcp
                    .iter()
                    .any(|g| g.host.matches(ip) && g.port.matches(addr.port()))
                    && self.address_allowed(ip)
            }
            SocketAddrUse::TcpBind => self.allows_tcp() && ip.is_unspecified() && addr.port() == 0,
            _ => false,
        };
        if !allowed {
            tracing::debug!(%addr, ?usage, "socket use denied by grants");
        }
        allowed
    }

    /// HTTP: the URL must match an `http` grant; returns the addresses it may connect to.
    pub async fn check_http(&self, uri: &http::Uri) -> Result<Vec<SocketAddr>, Denied> {
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let host = uri
            .host()
            .map(|h| {
                h.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        let what = format!("{scheme}://{host}:{port}");
        let granted = self.http.iter().any(|g| {
            g.scheme == scheme && (g.host == "*" || g.host == host) && g.port.matches(port)
        });
        if !granted {
            return Err(Denied::NotGranted(what));
        }
        let resolved: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|_| Denied::Unresolved(host.clone()))?
                .collect(),
        };
        if resolved.is_empty() {
            return Err(Denied::Unresolved(host));
        }
        // Every address the name resolves to must be granted: otherwise the
        // connector could pick the one that is not.
        if let Some(bad) = resolved.iter().find(|a| !self.address_allowed(a.ip())) {
            return Err(Denied::Address {
                host,
                addr: bad.ip(),
            });
        }
        Ok(resolved)
    }
}

/// Loopback only, when a stage does not say otherwise.
pub fn default_addresses() -> Vec<IpNet> {
    ["127.0.0.0/8", "::1/128"]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// IPv4-mapped IPv6 addresses are checked as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// wasi:http hooks enforcing a [`NetPolicy`].
pub struct HttpHooks {
    pub policy: Arc<NetPolicy>,
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
)>;

impl WasiHttpHooks for HttpHooks {
    /// Small chunks: a guest holding many unsent bodies holds little host memory.
    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        super::host_limits::BODY_CHUNK_BYTES
    }

    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let policy = self.policy.clone();
        drop(fut);
        Box::new(async move {
            use http_body_util::BodyExt;
            let addrs = match policy.check_http(request.uri()).await {
                Ok(addrs) => addrs,
                Err(denied) => {
                    tracing::debug!(uri = %request.uri(), %denied, "HTTP request denied");
                    return Err(HttpError::HttpRequestDenied);
                }
            };
            // Plain HTTP: connect to the address we checked, not to a name that
            // could resolve differently a moment later. The Host header was
            // set by wasi-http from the URL (guests cannot set it).
            // HTTPS keeps the name (TLS verifies it), so the connector resolves
            // again: a rebinding window between check and connect remains there.
            if request.uri().scheme_str() != Some("https") {
                let original = request.uri().clone();
                let mut parts = original.into_parts();
                let authority = addrs[0].to_string();
                parts.authority = authority.parse().ok();
                if let Ok(uri) = http::Uri::from_parts(parts) {
                    *request.uri_mut() = uri;
                }
            }
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{PortPattern, TcpHost};

    fn policy(http: &[(&str, &str, PortPattern)], addresses: &[&str]) -> NetPolicy {
        NetPolicy {
            http: http
                .iter()
                .map(|(s, h, p)| HttpGrant {
                    scheme: s.to_string(),
                    host: h.to_string(),
                    port: *p,
                })
                .collect(),
            tcp: vec![TcpGrant {
                host: TcpHost::Localhost,
                port: PortPattern::Exact(5432),
            }],
            addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    #[tokio::test]
    async fn http_needs_a_grant_and_a_granted_address() {
        let p = policy(&[("http", "localhost", PortPattern::Any)], &["127.0.0.0/8"]);
        let ok = p
            .check_http(&"http://localhost:8080/x".parse().unwrap())
            .await;
        assert!(ok.is_ok(), "{ok:?}");
        let other = p
            .check_http(&"http://127.0.0.1:8080/".parse().unwrap())
            .await;
        assert!(matches!(other, Err(Denied::NotGranted(_))));
        let p = policy(&[("http", "localhost", PortPattern::Any)], &["10.0.0.0/8"]);
        let bad = p
            .check_http(&"http://localhost:8080/".parse().unwrap())
            .await;
        assert!(matches!(bad, Err(Denied::Address { .. })), "{bad:?}");
    }

    #[test]
    fn sockets_need_a_tcp_grant_connect_only() {
        let p = policy(&[], &["127.0.0.0/8", "::1/128"]);
        let a: SocketAddr = "127.0.0.1:5432".parse().unwrap();
        assert!(p.check_socket(a, SocketAddrUse::TcpConnect));
        assert!(!p.check_socket(a, SocketAddrUse::TcpBind));
        assert!(p.check_socket("0.0.0.0:0".parse().unwrap(), SocketAddrUse::TcpBind));
        assert!(!p.check_socket("0.0.0.0:8080".parse().unwrap(), SocketAddrUse::TcpBind));
        assert!(!p.check_socket("0.0.0.0:0".parse().unwrap(), SocketAddrUse::TcpListen));
        assert!(!p.check_socket("127.0.0.1:5433".parse().unwrap(), SocketAddrUse::TcpConnect));
        assert!(!p.check_socket("10.1.1.1:5432".parse().unwrap(), SocketAddrUse::TcpConnect));
        assert!(p.check_socket(
            "[::ffff:127.0.0.1]:5432".parse().unwrap(),
            SocketAddrUse::TcpConnect
        ));
    }
}
