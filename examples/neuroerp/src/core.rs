//! The shared service core: identity, database, readiness, metrics, common
//! endpoints (`/health`, `/ready`, `/version`, `/metrics`) and the server loop.

use crate::db::{Db, Migration};
use crate::metrics::Metrics;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// The seven services of the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Fibu,
    Crm,
    Kasse,
    Bi,
    Auth,
    Gateway,
    EventBus,
}

impl Service {
    pub const ALL: [Service; 7] = [
        Service::Fibu,
        Service::Crm,
        Service::Kasse,
        Service::Bi,
        Service::Auth,
        Service::Gateway,
        Service::EventBus,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Service::Fibu => "fibu-service",
            Service::Crm => "crm-service",
            Service::Kasse => "kasse-service",
            Service::Bi => "bi-service",
            Service::Auth => "auth-service",
            Service::Gateway => "api-gateway",
            Service::EventBus => "event-bus",
        }
    }

    pub fn version(self) -> &'static str {
        match self {
            Service::Fibu => "1.0.5",
            Service::Crm => "1.1.2",
            Service::Kasse => "1.0.8",
            Service::Bi => "1.0.3",
            Service::Auth => "1.2.0",
            Service::Gateway => "1.3.1",
            Service::EventBus => "1.4.0",
        }
    }

    /// Suggested port for a local deployment (8101-8107).
    pub fn default_port(self) -> u16 {
        match self {
            Service::Fibu => 8101,
            Service::Crm => 8102,
            Service::Kasse => 8103,
            Service::Bi => 8104,
            Service::Auth => 8105,
            Service::Gateway => 8106,
            Service::EventBus => 8107,
        }
    }

    pub fn from_name(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn migrations(self) -> &'static [Migration] {
        use crate::services::*;
        match self {
            Service::Fibu => fibu::MIGRATIONS,
            Service::Crm => crm::MIGRATIONS,
            Service::Kasse => kasse::MIGRATIONS,
            Service::Bi => bi::MIGRATIONS,
            Service::Auth => auth::MIGRATIONS,
            Service::Gateway => gateway::MIGRATIONS,
            Service::EventBus => bus::MIGRATIONS,
        }
    }
}

/// Named readiness conditions; the service is ready when all are met.
#[derive(Default)]
pub struct Readiness {
    conditions: Mutex<BTreeMap<&'static str, Option<String>>>,
}

impl Readiness {
    /// Declare a condition as not (yet) met, with the reason.
    pub fn pending(&self, name: &'static str, reason: impl Into<String>) {
        self.lock().insert(name, Some(reason.into()));
    }
    /// Mark a condition as met.
    pub fn met(&self, name: &'static str) {
        self.lock().insert(name, None);
    }
    /// The first unmet condition's reason, if any.
    pub fn unmet(&self) -> Option<String> {
        self.lock()
            .iter()
            .find_map(|(k, v)| v.as_ref().map(|r| format!("{k}: {r}")))
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, Option<String>>> {
        self.conditions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// State shared by every handler of a service.
pub struct Core {
    pub service: Service,
    pub db: Db,
    pub metrics: Metrics,
    pub readiness: Readiness,
    pub http: reqwest::Client,
}

pub type SharedCore = Arc<Core>;

impl Core {
    /// Connect the database and run the service's migrations.
    pub async fn open(service: Service, database_url: &str) -> anyhow::Result<SharedCore> {
        let db = Db::connect(database_url, Duration::from_secs(30)).await?;
        let readiness = Readiness::default();
        readiness.pending("migrations", "not yet applied");
        let version = db.migrate(service.migrations()).await?;
        readiness.met("migrations");
        tracing::info!(
            service = service.name(),
            backend = db.backend.name(),
            schema_version = version,
            "database ready"
        );
        Ok(Arc::new(Core {
            service,
            db,
            metrics: Metrics::new(service.name(), service.version()),
            readiness,
            http: http_client(Duration::from_secs(5)),
        }))
    }
}

/// An HTTP client for loopback/cluster traffic: no system proxy, bounded time.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("building the HTTP client")
}

async fn health(State(core): State<SharedCore>) -> impl IntoResponse {
    Json(json!({
        "status": "ok",
        "service": core.service.name(),
        "version": core.service.version(),
    }))
}

async fn ready(State(core): State<SharedCore>) -> Response {
    let s = core.service;
    let db = match core.db.ping().await {
        Ok(()) => core.db.schema_version().await,
        Err(e) => Err(e),
    };
    let schema_version = match db {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "status": "not ready",
                    "service": s.name(),
                    "reason": format!("database: {e}"),
                })),
            )
                .into_response();
        }
    };
    if let Some(reason) = core.readiness.unmet() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "not ready",
                "service": s.name(),
                "reason": reason,
                "schema_version": schema_version,
            })),
        )
            .into_response();
    }
    Json(json!({
        "status": "ready",
        "service": s.name(),
        "version": s.version(),
        "database": core.db.backend.name(),
        "schema_version": schema_version,
    }))
    .into_response()
}

async fn version(State(core): State<SharedCore>) -> impl IntoResponse {
    let schema = core.db.schema_version().await.ok();
    Json(json!({
        "service": core.service.name(),
        "version": core.service.version(),
        "build": concat!("neuroerp ", env!("CARGO_PKG_VERSION")),
        "database": core.db.backend.name(),
        "schema_version": schema,
    }))
}

async fn metrics(State(core): State<SharedCore>) -> impl IntoResponse {
    let extra = crate::services::extra_metrics(&core).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        core.metrics.render(&extra),
    )
}

async fn track(State(core): State<SharedCore>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().to_string();
    let start = Instant::now();
    let resp = next.run(req).await;
    core.metrics
        .observe(&method, &route, resp.status().as_u16(), start.elapsed());
    resp
}

/// Add the common endpoints and request metrics to a service's routes.
pub fn with_common(core: SharedCore, routes: Router<SharedCore>) -> Router {
    routes
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(core.clone(), track))
        .with_state(core)
}

/// Bind `ip:port` (0 = ephemeral).
pub async fn bind(ip: std::net::IpAddr, port: u16) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind((ip, port)).await?;
    Ok(listener)
}

/// Serve until SIGINT/SIGTERM.
pub async fn serve(listener: TcpListener, app: Router) -> anyhow::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
