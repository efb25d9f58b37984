//! Blocking outgoing HTTP over `wasi:http/outgoing-handler`.
//!
//! The host only lets requests through to destinations the stage was granted;
//! a denial comes back as
//! `Err("GET http://…: HTTP request denied by host (not granted to this stage)")`.
//! Every error string starts with the method and URL.
//! Calling these functions makes the component import `wasi:http/*`.

use std::time::{Duration, Instant};

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
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
    send(method, url, headers, body, &deadline).map_err(|e| format!("{method} {url}: {e}"))
}

fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    deadline: &Deadline,
) -> Result<HttpResponse, String> {
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
    let future = outgoing_handler::handle(request, Some(options)).map_err(describe)?;

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
    OutgoingBody::finish(outgoing_body, None).map_err(describe)?;

    wait(&future.subscribe(), deadline)?;
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(describe(code)),
        Some(Err(())) | None => return Err("response future already consumed".to_string()),
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

fn read_body(incoming: &IncomingBody, deadline: &Deadline) -> Result<Vec<u8>, String> {
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
                    return Err(format!("response body larger than {MAX_BODY_BYTES} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            Err(StreamError::Closed) => return Ok(body),
            Err(e) => return Err(format!("reading response body: {}", stream_error(e))),
        }
    }
}

struct Deadline {
    at: Instant,
    timeout: Duration,
}

impl Deadline {
    fn expired(&self) -> String {
        format!("timed out after {} ms", self.timeout.as_millis())
    }
}

/// Blocks until `pollable` is ready, or fails once the deadline has passed.
fn wait(pollable: &Pollable, deadline: &Deadline) -> Result<(), String> {
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
