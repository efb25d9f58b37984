//! api-gateway: `/api/<service>/<path>` → `<upstream>/<path>`.
//!
//! Every request needs `Authorization: Bearer <token>`, verified locally with
//! AUTH_SECRET (401 otherwise), except `POST /api/auth/token` (log in). Unknown
//! services get 404. Method, headers (minus hop-by-hop ones), query and body are
//! forwarded; `x-neuroerp-user` carries the token's subject upstream.

use crate::cli::GatewayArgs;
use crate::core::SharedCore;
use crate::db::Migration;
use crate::token;
use crate::util::{ApiError, ApiResult, now_rfc3339, now_unix};
use anyhow::{Context, bail};
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Extension, Router};
use std::collections::BTreeMap;
use std::sync::Arc;

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "access_log",
    sql: "CREATE TABLE access_log (
            id {ID},
            at TEXT NOT NULL,
            method TEXT NOT NULL,
            service TEXT NOT NULL,
            path TEXT NOT NULL,
            status BIGINT NOT NULL,
            subject TEXT
          )",
}];

/// Parse `name=url,name=url`.
pub fn parse_upstreams(spec: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, url) = pair
            .split_once('=')
            .with_context(|| format!("UPSTREAMS entry {pair:?} is not name=url"))?;
        let (name, url) = (name.trim(), url.trim().trim_end_matches('/'));
        if name.is_empty() || !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("UPSTREAMS entry {pair:?}: need a name and an http(s) URL");
        }
        map.insert(name.to_owned(), url.to_owned());
    }
    Ok(map)
}

struct Gateway {
    secret: Vec<u8>,
    upstreams: BTreeMap<String, String>,
}

impl Gateway {
    /// `crm` and `crm-service` both name crm-service; `auth` is auth-service.
    fn upstream(&self, name: &str) -> Option<(&str, &str)> {
        let with_suffix = format!("{name}-service");
        [name, with_suffix.as_str()]
            .into_iter()
            .find_map(|n| self.upstreams.get_key_value(n))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

pub fn routes(args: GatewayArgs) -> anyhow::Result<Router<SharedCore>> {
    let mut upstreams = parse_upstreams(&args.upstreams)?;
    if let Some(auth) = args.auth_url {
        upstreams.insert("auth-service".into(), auth.trim_end_matches('/').to_owned());
    }
    let gw = Arc::new(Gateway {
        secret: args.auth_secret.into_bytes(),
        upstreams,
    });
    Ok(Router::new()
        .route("/api/{service}", any(proxy_root))
        .route("/api/{service}/{*rest}", any(proxy))
        .layer(Extension(gw)))
}

const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// Header set by the gateway itself; never taken from the client.
const USER_HEADER: &str = "x-neuroerp-user";

fn forwardable(name: &HeaderName) -> bool {
    !HOP_BY_HOP.contains(&name.as_str()) && name != header::CONTENT_LENGTH && name != USER_HEADER
}

fn unauthorized(msg: &str) -> Response {
    let mut r = ApiError::new(StatusCode::UNAUTHORIZED, msg).into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

async fn proxy_root(
    state: State<SharedCore>,
    gw: Extension<Arc<Gateway>>,
    Path(service): Path<String>,
    method: Method,
    query: RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    forward(
        state,
        gw,
        service,
        String::new(),
        method,
        query,
        headers,
        body,
    )
    .await
}

async fn proxy(
    state: State<SharedCore>,
    gw: Extension<Arc<Gateway>>,
    Path((service, rest)): Path<(String, String)>,
    method: Method,
    query: RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    forward(state, gw, service, rest, method, query, headers, body).await
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    State(core): State<SharedCore>,
    Extension(gw): Extension<Arc<Gateway>>,
    service: String,
    rest: String,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let login = method == Method::POST
        && rest == "token"
        && gw.upstream(&service).map(|u| u.0) == Some("auth-service");
    let mut subject = None;
    if !login {
        let Some(bearer) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
        else {
            return unauthorized("missing bearer token");
        };
        match token::verify(&gw.secret, bearer.trim(), now_unix()) {
            Ok(claims) => subject = Some(claims.sub),
            Err(e) => return unauthorized(&e.to_string()),
        }
    }
    let Some((name, base)) = gw.upstream(&service) else {
        return ApiError::not_found(format!("unknown service {service:?}")).into_response();
    };
    let mut url = format!("{base}/{rest}");
    if let Some(q) = query {
        url.push('?');
        url.push_str(&q);
    }
    let mut out = core.http.request(method.clone(), &url).body(body);
    for (k, v) in headers.iter().filter(|(k, _)| forwardable(k)) {
        out = out.header(k, v);
    }
    if let Some(sub) = &subject
        && let Ok(v) = HeaderValue::from_str(sub)
    {
        out = out.header(USER_HEADER, v);
    }
    let response = match out.send().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(upstream = name, %url, error = %e, "upstream failed");
            log_access(&core, &method, name, &rest, 502, subject.as_deref()).await;
            return ApiError::new(StatusCode::BAD_GATEWAY, format!("{name} unreachable: {e}"))
                .into_response();
        }
    };
    let status = response.status();
    let mut builder = Response::builder().status(status);
    for (k, v) in response.headers().iter().filter(|(k, _)| forwardable(k)) {
        builder = builder.header(k, v);
    }
    let bytes = match response.bytes().await {
        Ok(b) => b,
        Err(e) => {
            return ApiError::new(StatusCode::BAD_GATEWAY, format!("{name}: {e}")).into_response();
        }
    };
    log_access(
        &core,
        &method,
        name,
        &rest,
        status.as_u16(),
        subject.as_deref(),
    )
    .await;
    builder
        .body(Body::from(bytes))
        .unwrap_or_else(|e| ApiError::from(anyhow::Error::from(e)).into_response())
}

async fn log_access(
    core: &SharedCore,
    method: &Method,
    service: &str,
    path: &str,
    status: u16,
    subject: Option<&str>,
) {
    let r: ApiResult<_> = sqlx::query(
        "INSERT INTO access_log (at, method, service, path, status, subject) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(now_rfc3339())
    .bind(method.as_str())
    .bind(service)
    .bind(format!("/{path}"))
    .bind(status as i64)
    .bind(subject)
    .execute(&core.db.pool)
    .await
    .map_err(ApiError::from);
    if let Err(e) = r {
        tracing::warn!(error = ?e, "access log write failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_parsing() {
        let m = parse_upstreams(
            "crm-service=http://127.0.0.1:8102/, kasse-service=http://127.0.0.1:8103",
        )
        .unwrap();
        assert_eq!(m["crm-service"], "http://127.0.0.1:8102");
        assert_eq!(m.len(), 2);
        assert!(parse_upstreams("crm").is_err());
        assert!(parse_upstreams("crm=ftp://x").is_err());
        assert!(parse_upstreams("").unwrap().is_empty());
    }
}
