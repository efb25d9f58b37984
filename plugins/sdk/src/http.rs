//! Outgoing HTTP over `wasi:http/outgoing-handler`: blocking ([`get`], [`request`]) or concurrent ([`start`]).
//!
//! The host only lets requests through to destinations the stage was granted;
//! a denial comes back as
//! `Err("GET http://…: HTTP request denied by host (not granted to this stage)")`.
//! Every error string starts with the method and URL.
//! Calling these functions makes the component import `wasi:http/*`.
//!
//! # Concurrent requests
//!
//! [`start`] sends a request without waiting for the answer and returns a
//! [`Pending`] handle; [`wait_any`] blocks until at least one of many pendings
//! is ready (or a wake-up time passes), and [`Pending::finish`] collects the
//! response. All requests are in flight at once inside the one guest:
//!
//! ```ignore
//! use std::time::Duration;
//! use valero_sdk::http;
//!
//! let mut pending: Vec<Option<http::Pending>> = urls
//!     .iter()
//!     .map(|url| Some(http::start_get(url, Duration::from_secs(2))))
//!     .collect();
//! while pending.iter().any(Option::is_some) {
//!     let ready: Vec<usize> = {
//!         let (indices, live): (Vec<usize>, Vec<&http::Pending>) = pending
//!             .iter()
//!             .enumerate()
//!             .filter_map(|(i, p)| p.as_ref().map(|p| (i, p)))
//!             .unzip();
//!         // `Some(instant)` instead of `None` also wakes at that time (e.g. a retry).
//!         http::wait_any(&live, None).into_iter().map(|r| indices[r]).collect()
//!     };
//!     for index in ready {
//!         match pending[index].take().unwrap().finish() {
//!             Ok(response) => { /* response.status, response.body */ }
//!             Err(e) if e.is_denied() => { /* the stage lacks an `http` grant */ }
//!             Err(e) => { /* e.kind(), e.to_string() */ }
//!         }
//!     }
//! }
//! ```

use std::fmt;
use std::time::{Duration, Instant};

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingBody, Method, OutgoingBody, OutgoingRequest,
    RequestOptions, Scheme,
};
use wasip2::io::poll::{Pollable, poll};
use wasip2::io::streams::StreamError;

/// Responses larger than this are refused rather than exhausting guest memory.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// A complete HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names as sent by the server (lowercase with HTTP/2), values lossily decoded.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_slice(&self.body)
            .map_err(|e| format!("response body is not the expected JSON: {e}"))
    }
}

/// `GET url`, the whole exchange bounded by `timeout`.
pub fn get(url: &str, timeout: Duration) -> Result<HttpResponse, String> {
    request("GET", url, &[], None, timeout)
}

/// Sends a request with `method` (e.g. `"POST"`), extra `headers` and an optional
/// `body`; the whole exchange (connect, send, response, body) is bounded by `timeout`.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<HttpResponse, String> {
    let deadline = Deadline {
        at: Instant::now() + timeout,
        timeout,
    };
    send(method, url, headers, body, &deadline).map_err(|e| format!("{method} {url}: {}", e.detail))
}

/// What kind of failure an [`HttpError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The host refused the request (`http-request-denied`): the stage has no
    /// `http` grant covering the URL. Retrying cannot help.
    Denied,
    /// The request's timeout passed (connect, first byte or the whole exchange).
    Timeout,
    /// Anything else: connection refused, DNS, protocol or body errors, an invalid URL.
    Other,
}

/// A failed request of the concurrent API ([`start`], [`Pending::finish`]).
///
/// It displays like the errors of [`request`]: `GET http://…: connection refused`.
#[derive(Debug, Clone)]
pub struct HttpError {
    kind: ErrorKind,
    message: String,
}

impl HttpError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// True if the host denied the request (the stage lacks an `http` grant for it).
    pub fn is_denied(&self) -> bool {
        self.kind == ErrorKind::Denied
    }

    /// The full message, starting with the method and URL.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HttpError {}

/// A request in flight, sent by [`start`] without waiting for its response.
///
/// Wait for many at once with [`wait_any`]; collect one with [`Pending::finish`].
/// Dropping it abandons the request.
pub struct Pending {
    method: String,
    url: String,
    started: Instant,
    deadline: Deadline,
    state: PendingState,
}

enum PendingState {
    /// `pollable` is a child of `future` and is declared first, so it is dropped first.
    InFlight {
        pollable: Pollable,
        future: FutureIncomingResponse,
    },
    /// Failed before the response could be awaited (invalid URL, denied at send, …).
    Failed(Failure),
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("ready", &self.is_ready())
            .finish()
    }
}

/// Starts `GET url` without waiting for the response; see [`start`].
pub fn start_get(url: &str, timeout: Duration) -> Pending {
    start("GET", url, &[], None, timeout)
}

/// Sends a request like [`request`] but returns at once with a [`Pending`] handle.
///
/// The request body (if any) is written before returning, so keep it small.
/// The whole exchange, including [`Pending::finish`] reading the body, is
/// bounded by `timeout` from now. Errors that happen while sending (an invalid
/// URL, a request the host refuses at once) are kept and returned by `finish`.
pub fn start(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> Pending {
    let started = Instant::now();
    let deadline = Deadline {
        at: started + timeout,
        timeout,
    };
    let state = match begin(method, url, headers, body, &deadline) {
        Ok(future) => PendingState::InFlight {
            pollable: future.subscribe(),
            future,
        },
        Err(failure) => PendingState::Failed(failure),
    };
    Pending {
        method: method.to_string(),
        url: url.to_string(),
        started,
        deadline,
        state,
    }
}

impl Pending {
    /// The request's method.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The request's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// When the request was started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// When the request times out.
    pub fn deadline(&self) -> Instant {
        self.deadline.at
    }

    /// True once [`Pending::finish`] no longer waits for the response head:
    /// it has arrived, the request failed, or its timeout has passed.
    pub fn is_ready(&self) -> bool {
        match &self.state {
            PendingState::Failed(_) => true,
            PendingState::InFlight { pollable, .. } => {
                pollable.ready() || Instant::now() >= self.deadline.at
            }
        }
    }

    /// Waits for the response (not at all if [`Pending::is_ready`]) and reads its
    /// body; the body read may block, bounded by the request's timeout.
    pub fn finish(self) -> Result<HttpResponse, HttpError> {
        let Pending {
            method,
            url,
            deadline,
            state,
            ..
        } = self;
        let result = match state {
            PendingState::Failed(failure) => Err(failure),
            PendingState::InFlight { pollable, future } => {
                drop(pollable);
                complete(future, &deadline)
            }
        };
        result.map_err(|failure| HttpError {
            kind: failure.kind,
            message: format!("{method} {url}: {}", failure.detail),
        })
    }
}

/// Blocks until at least one of `pending` is ready (see [`Pending::is_ready`];
/// a request whose timeout passes counts as ready) or until `until`, whichever
/// comes first, and returns the indices (into `pending`) of the ready ones —
/// empty if it woke because `until` passed.
///
/// Returns at once if one is already ready or `until` has passed, and also when
/// `pending` is empty and `until` is `None` (nothing to wait for).
/// With an empty `pending` it is a sleep until `until`.
pub fn wait_any(pending: &[&Pending], until: Option<Instant>) -> Vec<usize> {
    // Requests that failed at send time, or whose own deadline has passed, are ready.
    let now = Instant::now();
    let settled: Vec<usize> = pending
        .iter()
        .enumerate()
        .filter(|(_, p)| matches!(p.state, PendingState::Failed(_)) || p.deadline.at <= now)
        .map(|(i, _)| i)
        .collect();
    if !settled.is_empty() {
        return settled;
    }
    let wake = pending.iter().map(|p| p.deadline.at).chain(until).min();
    let Some(wake) = wake else {
        return Vec::new();
    };
    let nanos = u64::try_from(wake.saturating_duration_since(now).as_nanos()).unwrap_or(u64::MAX);
    let timer = wasip2::clocks::monotonic_clock::subscribe_duration(nanos);
    // One poll over every in-flight request and the timer; its answer says
    // which are ready (asking each one again would cost a host call apiece).
    let mut owners = Vec::with_capacity(pending.len());
    let mut pollables: Vec<&Pollable> = Vec::with_capacity(pending.len() + 1);
    for (i, p) in pending.iter().enumerate() {
        if let PendingState::InFlight { pollable, .. } = &p.state {
            owners.push(i);
            pollables.push(pollable);
        }
    }
    pollables.push(&timer);
    let mut ready: Vec<usize> = poll(&pollables)
        .into_iter()
        .filter_map(|r| owners.get(r as usize).copied())
        .collect();
    if ready.is_empty() {
        // Only the timer fired: whoever reached its own deadline is ready.
        let now = Instant::now();
        ready = pending
            .iter()
            .enumerate()
            .filter(|(_, p)| p.deadline.at <= now)
            .map(|(i, _)| i)
            .collect();
    }
    ready
}

/// A failure inside this module, before the method and URL are prefixed.
struct Failure {
    kind: ErrorKind,
    detail: String,
}

impl Failure {
    fn code(code: ErrorCode) -> Self {
        let kind = match code {
            ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited => ErrorKind::Denied,
            ErrorCode::ConnectionTimeout | ErrorCode::ConnectionReadTimeout => ErrorKind::Timeout,
            _ => ErrorKind::Other,
        };
        Self {
            kind,
            detail: describe(code),
        }
    }
}

impl From<String> for Failure {
    fn from(detail: String) -> Self {
        Self {
            kind: ErrorKind::Other,
            detail,
        }
    }
}

fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    deadline: &Deadline,
) -> Result<HttpResponse, Failure> {
    let future = begin(method, url, headers, body, deadline)?;
    complete(future, deadline)
}

/// Builds and sends the request (body included); the response is still to come.
fn begin(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    deadline: &Deadline,
) -> Result<FutureIncomingResponse, Failure> {
    let target = Url::parse(url)?;

    let entries: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
    let fields =
        Fields::from_list(&entries).map_err(|e| format!("invalid request header: {e:?}"))?;
    let request = OutgoingRequest::new(fields);
    request
        .set_method(&parse_method(method))
        .map_err(|()| format!("invalid method {method:?}"))?;
    request
        .set_scheme(Some(&target.scheme))
        .map_err(|()| "invalid scheme".to_string())?;
    request
        .set_authority(Some(&target.authority))
        .map_err(|()| format!("invalid authority {:?}", target.authority))?;
    request
        .set_path_with_query(Some(&target.path_with_query))
        .map_err(|()| format!("invalid path {:?}", target.path_with_query))?;

    // Hosts may not support every option; the deadline below still holds.
    let options = RequestOptions::new();
    let nanos = u64::try_from(deadline.timeout.as_nanos()).unwrap_or(u64::MAX);
    let _ = options.set_connect_timeout(Some(nanos));
    let _ = options.set_first_byte_timeout(Some(nanos));
    let _ = options.set_between_bytes_timeout(Some(nanos));

    let outgoing_body = request
        .body()
        .map_err(|()| "request body unavailable".to_string())?;
    let future = outgoing_handler::handle(request, Some(options)).map_err(Failure::code)?;

    {
        let stream = outgoing_body
            .write()
            .map_err(|()| "request body stream unavailable".to_string())?;
        for chunk in body.unwrap_or_default().chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| format!("sending request body: {}", stream_error(e)))?;
        }
    }
    OutgoingBody::finish(outgoing_body, None).map_err(Failure::code)?;
    Ok(future)
}

/// Waits for the response to `future` and reads it, body included.
fn complete(future: FutureIncomingResponse, deadline: &Deadline) -> Result<HttpResponse, Failure> {
    wait(&future.subscribe(), deadline)?;
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(Failure::code(code)),
        Some(Err(())) | None => return Err("response future already consumed".to_string().into()),
    };
    drop(future);

    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();

    let incoming = response
        .consume()
        .map_err(|()| "response body unavailable".to_string())?;
    let body = read_body(&incoming, deadline)?;
    drop(IncomingBody::finish(incoming));
    drop(response);

    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn read_body(incoming: &IncomingBody, deadline: &Deadline) -> Result<Vec<u8>, Failure> {
    let stream = incoming
        .stream()
        .map_err(|()| "response body stream unavailable".to_string())?;
    let pollable = stream.subscribe();
    let mut body = Vec::new();
    loop {
        match stream.read(64 * 1024) {
            Ok(chunk) if chunk.is_empty() => wait(&pollable, deadline)?,
            Ok(chunk) => {
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(format!("response body larger than {MAX_BODY_BYTES} bytes").into());
                }
                body.extend_from_slice(&chunk);
            }
            Err(StreamError::Closed) => return Ok(body),
            Err(e) => return Err(format!("reading response body: {}", stream_error(e)).into()),
        }
    }
}

struct Deadline {
    at: Instant,
    timeout: Duration,
}

impl Deadline {
    fn expired(&self) -> Failure {
        Failure {
            kind: ErrorKind::Timeout,
            detail: format!("timed out after {} ms", self.timeout.as_millis()),
        }
    }
}

/// Blocks until `pollable` is ready, or fails once the deadline has passed.
fn wait(pollable: &Pollable, deadline: &Deadline) -> Result<(), Failure> {
    if pollable.ready() {
        return Ok(());
    }
    let remaining = deadline.at.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Err(deadline.expired());
    }
    let nanos = u64::try_from(remaining.as_nanos()).unwrap_or(u64::MAX);
    let timer = wasip2::clocks::monotonic_clock::subscribe_duration(nanos);
    let ready = poll(&[pollable, &timer]);
    if ready.contains(&0) {
        Ok(())
    } else {
        Err(deadline.expired())
    }
}

fn stream_error(error: StreamError) -> String {
    match error {
        StreamError::Closed => "stream closed".to_string(),
        StreamError::LastOperationFailed(e) => e.to_debug_string(),
    }
}

fn describe(code: ErrorCode) -> String {
    match code {
        ErrorCode::HttpRequestDenied => {
            "HTTP request denied by host (not granted to this stage)".to_string()
        }
        ErrorCode::ConnectionRefused => "connection refused".to_string(),
        ErrorCode::ConnectionTimeout => "connection timed out".to_string(),
        ErrorCode::ConnectionReadTimeout => "timed out reading the response".to_string(),
        ErrorCode::DnsError(e) => format!(
            "DNS error: {}",
            e.rcode
                .or(e.info_code.map(|c| c.to_string()))
                .unwrap_or_default()
        ),
        ErrorCode::DestinationIpProhibited => "destination IP prohibited by host".to_string(),
        ErrorCode::InternalError(Some(msg)) => format!("HTTP error: {msg}"),
        other => format!("HTTP error: {other:?}"),
    }
}

fn parse_method(method: &str) -> Method {
    match method.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "CONNECT" => Method::Connect,
        "OPTIONS" => Method::Options,
        "TRACE" => Method::Trace,
        "PATCH" => Method::Patch,
        _ => Method::Other(method.to_string()),
    }
}

struct Url {
    scheme: Scheme,
    authority: String,
    path_with_query: String,
}

impl Url {
    fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("invalid URL {url:?}: expected scheme://host/path"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => Scheme::Other(other.to_string()),
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.is_empty() {
            return Err(format!("invalid URL {url:?}: no host"));
        }
        let path_with_query = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        Ok(Self {
            scheme,
            authority: authority.to_string(),
            path_with_query,
        })
    }
}
