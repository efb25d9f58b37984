//! Network policy: which outgoing HTTP requests, TCP connections and name
//! lookups a stage may make. Checked on the *resolved* address, and HTTP then
//! connects to exactly that address, so a granted host name that resolves
//! somewhere not granted is denied (DNS rebinding).

mod lookup;
mod resolve;
mod send;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

pub use lookup::add_to_linker as add_lookup_to_linker;
pub use resolve::{Lookup, Resolve, SystemResolver};

use crate::pipeline::{Grants, HttpGrant, TcpGrant, TcpHost};

/// The network part of a stage's grants, shared by the HTTP hook, the
/// socket address check and the name-lookup gate.
#[derive(Debug, Clone)]
pub struct NetPolicy {
    http: Vec<HttpGrant>,
    tcp: Vec<TcpGrant>,
    addresses: Vec<IpNet>,
    /// Host names the guest may resolve itself (`grants.lookup`, and
    /// `localhost` when a `tcp` grant names it).
    lookup: BTreeSet<String>,
    resolver: Arc<dyn Resolve>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("no `http` grant allows {0}")]
    NotGranted(String),
    #[error("{host} resolves to {addr}, which is outside the granted `addresses`")]
    Address { host: String, addr: IpAddr },
    #[error("could not resolve {0}")]
    Unresolved(String),
    #[error(
        "{0}: user information in the URL (`user@host`) is refused by the host; send credentials in a header (e.g. `Authorization`)"
    )]
    Userinfo(String),
    #[error("{0}: the port is not a number from 0 to 65535")]
    BadPort(String),
}

impl Denied {
    /// What the guest gets back: a plain denial for grants, a message for a malformed URL.
    fn into_http_error(self) -> HttpError {
        match self {
            Denied::NotGranted(_) | Denied::Address { .. } | Denied::Unresolved(_) => {
                HttpError::HttpRequestDenied
            }
            Denied::Userinfo(_) | Denied::BadPort(_) => {
                HttpError::InternalError(Some(self.to_string()))
            }
        }
    }
}

/// Where a checked HTTP request may go: the URL's host and port, and the
/// addresses the host resolved and checked (the only ones it connects to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub https: bool,
    /// Lower-cased host name or IP literal, without brackets.
    pub host: String,
    pub port: u16,
    pub addrs: Vec<SocketAddr>,
}

impl Destination {
    /// The `Host` header: the checked host, and the port in its canonical
    /// form only when it is not the scheme's default. Nothing the guest wrote
    /// in the authority (user information, zero-padding) reaches it.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = if self.https { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl NetPolicy {
    pub fn from_grants(grants: &Grants) -> Self {
        let addresses = if grants.addresses.is_empty() {
            default_addresses()
        } else {
            grants.addresses.clone()
        };
        let mut lookup: BTreeSet<String> = grants.lookup.iter().cloned().collect();
        if grants.tcp.iter().any(|g| g.host == TcpHost::Localhost) {
            lookup.insert("localhost".to_string());
        }
        NetPolicy {
            http: grants.http.clone(),
            tcp: grants.tcp.clone(),
            addresses,
            lookup,
            resolver: Arc::new(SystemResolver),
        }
    }

    /// The same policy resolving names through `resolver` (tests script one).
    pub fn with_resolver(mut self, resolver: Arc<dyn Resolve>) -> Self {
        self.resolver = resolver;
        self
    }

    pub fn allows_tcp(&self) -> bool {
        !self.tcp.is_empty()
    }

    /// Whether the guest's `wasi:sockets/ip-name-lookup` is usable at all.
    pub fn allows_any_lookup(&self) -> bool {
        self.allows_tcp() || !self.lookup.is_empty()
    }

    /// A guest lookup of `name`: an IP literal (answered without a query)
    /// when lookups are usable at all, else only a granted name, exactly
    /// (one trailing dot and case aside). Every other name is refused before
    /// any query leaves the host: a lookup is a channel out of the sandbox.
    pub fn allows_lookup(&self, name: &str) -> bool {
        if !self.allows_any_lookup() {
            return false;
        }
        if name.parse::<IpAddr>().is_ok() {
            return true;
        }
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        let allowed = self.lookup.contains(&name);
        if !allowed {
            tracing::debug!(%name, "name lookup denied by grants");
        }
        allowed
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

    /// HTTP: the URL must match an `http` grant and every address its host
    /// resolves to must be granted; returns where to connect.
    pub async fn check_http(&self, uri: &http::Uri) -> Result<Destination, Denied> {
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let host = uri
            .host()
            .map(|h| {
                h.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let https = scheme == "https";
        let default_port = if https { 443 } else { 80 };
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            // The user information itself is not repeated: it may be a credential.
            return Err(Denied::Userinfo(format!("{scheme}://…@{host}")));
        }
        let port = match (uri.port(), uri.port_u16()) {
            (None, _) => default_port,
            (Some(_), Some(port)) => port,
            (Some(_), None) => return Err(Denied::BadPort(format!("{scheme}://{host}"))),
        };
        let what = format!("{scheme}://{host}:{port}");
        let granted = self.http.iter().any(|g| {
            g.scheme == scheme && (g.host == "*" || g.host == host) && g.port.matches(port)
        });
        if !granted {
            return Err(Denied::NotGranted(what));
        }
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => self
                .resolver
                .lookup(&host, port)
                .await
                .map_err(|_| Denied::Unresolved(host.clone()))?,
        };
        if addrs.is_empty() {
            return Err(Denied::Unresolved(host));
        }
        // Every address the name resolves to must be granted: otherwise a
        // connection could land on the one that is not.
        if let Some(bad) = addrs.iter().find(|a| !self.address_allowed(a.ip())) {
            return Err(Denied::Address {
                host,
                addr: bad.ip(),
            });
        }
        Ok(Destination {
            https,
            host,
            port,
            addrs,
        })
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

type SendResult = wasmtime_wasi_http::Result<send::Sent>;

impl WasiHttpHooks for HttpHooks {
    /// Small chunks: a guest holding many unsent bodies holds little host memory.
    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        super::host_limits::BODY_CHUNK_BYTES
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let policy = self.policy.clone();
        drop(fut);
        Box::new(async move {
            match policy.check_http(request.uri()).await {
                Ok(dest) => send::send(request, &dest, options).await,
                Err(denied) => {
                    tracing::debug!(uri = %request.uri(), %denied, "HTTP request denied");
                    Err(denied.into_http_error())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::PortPattern;

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
            lookup: BTreeSet::from(["localhost".to_string()]),
            resolver: Arc::new(SystemResolver),
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

    #[tokio::test]
    async fn the_host_header_is_the_checked_host_and_canonical_port() {
        let p = policy(
            &[("http", "*", PortPattern::Any)],
            &["127.0.0.0/8", "::1/128"],
        );
        let dest = |url: &'static str| {
            let p = p.clone();
            async move { p.check_http(&url.parse().unwrap()).await }
        };
        let padded = dest("http://127.0.0.1:028531/").await.unwrap();
        assert_eq!(padded.port, 28531);
        assert_eq!(padded.host_header(), "127.0.0.1:28531");
        let default = dest("http://LOCALHOST:80/").await.unwrap();
        assert_eq!(default.host_header(), "localhost");
        let v6 = dest("http://[::1]:8080/").await.unwrap();
        assert_eq!(v6.host_header(), "[::1]:8080");
        let userinfo = dest("http://evil.example.test:80@127.0.0.1:8080/").await;
        assert!(matches!(userinfo, Err(Denied::Userinfo(_))), "{userinfo:?}");
        let message = userinfo.unwrap_err().to_string();
        assert!(
            message.contains("user information") && !message.contains("evil"),
            "{message}"
        );
    }

    /// A name that answers `first` to the first lookup and `later` to every
    /// one after: a rebinding DNS server, without the server.
    struct Rebinding {
        calls: std::sync::atomic::AtomicUsize,
        first: IpAddr,
        later: IpAddr,
    }

    impl Resolve for Rebinding {
        fn lookup(&self, _host: &str, port: u16) -> Lookup {
            let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let ip = if n == 0 { self.first } else { self.later };
            Box::pin(async move { Ok(vec![SocketAddr::new(ip, port)]) })
        }
    }

    /// A loopback listener that records the first bytes of each connection
    /// (a request head or a TLS ClientHello) and answers `200` to plain HTTP.
    async fn recorder(
        ip: &str,
        port: u16,
    ) -> std::io::Result<(u16, Arc<std::sync::Mutex<Vec<Vec<u8>>>>)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind((ip, port)).await?;
        let port = listener.local_addr()?.port();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = vec![0; 4096];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                buf.truncate(n);
                let plain = buf.starts_with(b"GET ");
                log.lock().unwrap().push(buf);
                if plain {
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                }
            }
        });
        Ok((port, seen))
    }

    /// Sends `GET {scheme}://rebind.test:PORT/` through the hooks while the
    /// name resolves to 127.0.0.1 (granted) first and 127.0.0.2 after.
    /// Returns what each address received and how often the name was resolved.
    async fn rebinding_request(scheme: &str) -> (Vec<Vec<u8>>, Vec<Vec<u8>>, usize) {
        // The same port on both addresses, so only the address can differ.
        let (checked_port, checked, other) = loop {
            let (port, checked) = recorder("127.0.0.1", 0).await.unwrap();
            if let Ok((_, other)) = recorder("127.0.0.2", port).await {
                break (port, checked, other);
            }
        };
        let resolver = Arc::new(Rebinding {
            calls: Default::default(),
            first: "127.0.0.1".parse().unwrap(),
            later: "127.0.0.2".parse().unwrap(),
        });
        let policy = policy(
            &[(scheme, "rebind.test", PortPattern::Any)],
            &["127.0.0.1/32"],
        )
        .with_resolver(resolver.clone());
        let mut hooks = HttpHooks {
            policy: Arc::new(policy),
        };
        use http_body_util::BodyExt;
        let body: WasiBody = http_body_util::Empty::<bytes::Bytes>::new()
            .map_err(|never| match never {})
            .boxed_unsync();
        let request = http::Request::get(format!("{scheme}://rebind.test:{checked_port}/"))
            .header(http::header::HOST, "rebind.test")
            .body(body)
            .unwrap();
        let sent = hooks.send_request(request, None, Box::new(async { Ok(()) }));
        let _ = std::pin::Pin::from(sent).await;
        let calls = resolver.calls.load(std::sync::atomic::Ordering::SeqCst);
        let checked = checked.lock().unwrap().clone();
        let other = other.lock().unwrap().clone();
        (checked, other, calls)
    }

    #[tokio::test]
    async fn https_connects_to_the_checked_address_with_the_name_as_sni() {
        let (checked, other, calls) = rebinding_request("https").await;
        assert_eq!(calls, 1, "the name must be resolved once, by the check");
        assert!(other.is_empty(), "reached the rebound address: {other:?}");
        assert_eq!(checked.len(), 1, "no connection to the checked address");
        let hello = &checked[0];
        assert_eq!(hello.first(), Some(&0x16), "not a TLS handshake: {hello:?}");
        assert!(
            hello.windows(11).any(|w| w == b"rebind.test"),
            "the ClientHello does not name rebind.test (SNI)"
        );
    }

    #[tokio::test]
    async fn plain_http_connects_to_the_checked_address() {
        let (checked, other, calls) = rebinding_request("http").await;
        assert_eq!(calls, 1, "the name must be resolved once, by the check");
        assert!(other.is_empty(), "reached the rebound address: {other:?}");
        assert_eq!(checked.len(), 1, "no connection to the checked address");
        let head = String::from_utf8_lossy(&checked[0]).to_ascii_lowercase();
        assert!(head.starts_with("get / http/1.1\r\n"), "{head}");
        assert!(head.contains("\r\nhost: rebind.test:"), "{head}");
    }

    #[test]
    fn lookups_only_for_granted_names() {
        let mut p = policy(&[], &["127.0.0.0/8"]);
        p.lookup = BTreeSet::from(["db.internal".to_string()]);
        assert!(p.allows_lookup("db.internal"));
        assert!(p.allows_lookup("DB.Internal."));
        assert!(p.allows_lookup("127.0.0.1"), "a literal needs no query");
        assert!(!p.allows_lookup("localhost"));
        assert!(!p.allows_lookup("secret-data.db.internal"));
        assert!(!p.allows_lookup("db.internal.."));
        assert!(!p.allows_lookup("db%2einternal"));
        let none = NetPolicy::from_grants(&Grants::default());
        assert!(!none.allows_lookup("127.0.0.1"));
        let tcp_localhost = NetPolicy::from_grants(&Grants {
            tcp: vec![TcpGrant {
                host: TcpHost::Localhost,
                port: PortPattern::Any,
            }],
            ..Grants::default()
        });
        assert!(tcp_localhost.allows_lookup("localhost"));
        assert!(!tcp_localhost.allows_lookup("example.com"));
    }
}
