//! The seven services. Each module has its migrations and its routes; the
//! shared core (`crate::core`) adds the common endpoints.

pub mod auth;
pub mod bi;
pub mod bus;
pub mod crm;
pub mod fibu;
pub mod gateway;
pub mod kasse;

use crate::cli::{AuthArgs, BusArgs, GatewayArgs, KasseArgs, SubscriberArgs};
use crate::core::{Service, SharedCore, with_common};
use anyhow::bail;
use axum::Router;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

/// Service-specific configuration.
#[derive(Debug, Clone)]
pub enum ServiceArgs {
    Fibu(SubscriberArgs),
    Crm,
    Kasse(KasseArgs),
    Bi(SubscriberArgs),
    Auth(AuthArgs),
    Gateway(GatewayArgs),
    EventBus(BusArgs),
}

/// Topic published by kasse-service for every recorded sale.
pub const SALE_COMPLETED: &str = "sale.completed";

/// Payload of `sale.completed`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SaleCompleted {
    pub sale_id: i64,
    pub customer_id: i64,
    pub total_cents: i64,
    pub at: String,
}

/// What the event-bus POSTs to a subscriber's callback.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventDelivery {
    pub id: i64,
    pub topic: String,
    pub payload: serde_json::Value,
}

impl EventDelivery {
    /// The sale carried by a `sale.completed` delivery, or `None` for any
    /// other topic (subscribers acknowledge those without acting on them).
    pub fn sale(&self) -> Result<Option<SaleCompleted>, crate::util::ApiError> {
        if self.topic != SALE_COMPLETED {
            return Ok(None);
        }
        serde_json::from_value(self.payload.clone())
            .map(Some)
            .map_err(|e| {
                crate::util::ApiError::unprocessable(format!("bad sale.completed payload: {e}"))
            })
    }
}

fn check_secret(secret: &str) -> anyhow::Result<()> {
    if secret.len() < 16 {
        bail!("AUTH_SECRET must be at least 16 bytes long");
    }
    Ok(())
}

/// Reject configuration that cannot work, before anything starts.
pub fn validate(args: &ServiceArgs) -> anyhow::Result<()> {
    match args {
        ServiceArgs::Auth(a) => {
            check_secret(&a.auth_secret)?;
            if a.token_ttl_seconds <= 0 {
                bail!("TOKEN_TTL_SECONDS must be positive");
            }
        }
        ServiceArgs::Gateway(g) => {
            check_secret(&g.auth_secret)?;
            gateway::parse_upstreams(&g.upstreams)?;
        }
        ServiceArgs::EventBus(b)
            if b.retry_base_ms == 0 || b.retry_max_backoff_ms < b.retry_base_ms =>
        {
            bail!("need 0 < RETRY_BASE_MS <= RETRY_MAX_BACKOFF_MS");
        }
        _ => {}
    }
    Ok(())
}

/// Build the service's router (with the common endpoints) and start its background tasks.
pub fn router(core: SharedCore, addr: SocketAddr, args: ServiceArgs) -> anyhow::Result<Router> {
    let routes = match args {
        ServiceArgs::Fibu(sub) => {
            spawn_subscription(core.clone(), addr, sub);
            fibu::routes()
        }
        ServiceArgs::Bi(sub) => {
            spawn_subscription(core.clone(), addr, sub);
            bi::routes()
        }
        ServiceArgs::Crm => crm::routes(),
        ServiceArgs::Kasse(k) => kasse::routes(core.clone(), k),
        ServiceArgs::Auth(a) => auth::routes(a),
        ServiceArgs::Gateway(g) => gateway::routes(g)?,
        ServiceArgs::EventBus(b) => bus::routes(core.clone(), b),
    };
    Ok(with_common(core, routes))
}

/// Service-specific lines appended to `/metrics`.
pub async fn extra_metrics(core: &SharedCore) -> String {
    match core.service {
        Service::EventBus => bus::metrics(core).await,
        Service::Kasse => kasse::metrics(core).await,
        _ => String::new(),
    }
}

/// Register `<public url>/events` for `sale.completed` at the event-bus, retrying
/// (backoff up to 2 s) until the bus answers; the service is not ready before.
fn spawn_subscription(core: SharedCore, addr: SocketAddr, sub: SubscriberArgs) {
    core.readiness
        .pending("subscription", "not yet subscribed to the event-bus");
    tokio::spawn(async move {
        let base = sub
            .public_url
            .unwrap_or_else(|| format!("http://{addr}"))
            .trim_end_matches('/')
            .to_owned();
        let url = format!("{}/subscriptions", sub.event_bus_url.trim_end_matches('/'));
        let body = serde_json::json!({
            "topic": SALE_COMPLETED,
            "callback_url": format!("{base}/events"),
            "subscriber": core.service.name(),
        });
        let mut delay = Duration::from_millis(100);
        loop {
            match core.http.post(&url).json(&body).send().await {
                Ok(r) if r.status().is_success() => {
                    tracing::info!(%url, "subscribed to {SALE_COMPLETED}");
                    core.readiness.met("subscription");
                    return;
                }
                Ok(r) => {
                    let reason = format!("event-bus answered {}", r.status());
                    tracing::warn!(%url, "{reason}; retrying");
                    core.readiness.pending("subscription", reason);
                }
                Err(e) => {
                    let reason = format!("event-bus not reachable: {e}");
                    tracing::warn!(%url, "{reason}; retrying");
                    core.readiness.pending("subscription", reason);
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    });
}
