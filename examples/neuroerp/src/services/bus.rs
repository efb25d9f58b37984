//! event-bus: subscriptions, publishing, and at-least-once delivery.
//!
//! `POST /publish` stores the event and one delivery row per subscriber of the
//! topic in one transaction. A background loop POSTs each due delivery to the
//! subscriber's callback (`{id, topic, payload}`); a 2xx marks it delivered,
//! anything else schedules a retry with exponential backoff (capped). It never
//! gives up. Subscribers must therefore be idempotent per event id.

use super::EventDelivery;
use crate::cli::BusArgs;
use crate::core::{SharedCore, http_client};
use crate::db::Migration;
use crate::util::{ApiError, ApiResult, now_ms, now_rfc3339};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinSet;

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "subscriptions_events_deliveries",
    sql: "CREATE TABLE subscriptions (
            id {ID},
            topic TEXT NOT NULL,
            subscriber TEXT NOT NULL,
            callback_url TEXT NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (topic, subscriber)
          );
          CREATE TABLE events (
            id {ID},
            topic TEXT NOT NULL,
            event_key TEXT UNIQUE,
            payload TEXT NOT NULL,
            created_at TEXT NOT NULL
          );
          CREATE TABLE deliveries (
            id {ID},
            event_id BIGINT NOT NULL REFERENCES events (id),
            subscription_id BIGINT NOT NULL REFERENCES subscriptions (id),
            status TEXT NOT NULL,
            attempts BIGINT NOT NULL,
            next_attempt_ms BIGINT NOT NULL,
            last_error TEXT,
            delivered_at TEXT,
            UNIQUE (event_id, subscription_id)
          );
          CREATE INDEX deliveries_due ON deliveries (status, next_attempt_ms)",
}];

struct Bus {
    wake: Notify,
    args: BusArgs,
}

pub fn routes(core: SharedCore, args: BusArgs) -> Router<SharedCore> {
    let bus = Arc::new(Bus {
        wake: Notify::new(),
        args,
    });
    tokio::spawn(delivery_loop(core, bus.clone()));
    Router::new()
        .route("/subscriptions", post(subscribe).get(subscriptions))
        .route("/publish", post(publish))
        .route("/events", get(events))
        .route("/deliveries", get(deliveries))
        .layer(Extension(bus))
}

#[derive(Deserialize)]
struct Subscribe {
    topic: String,
    callback_url: String,
    /// Stable subscriber name; re-subscribing under it moves the callback
    /// (pending deliveries follow). Defaults to the callback URL.
    subscriber: Option<String>,
}

#[derive(Serialize, sqlx::FromRow)]
struct Subscription {
    id: i64,
    topic: String,
    subscriber: String,
    callback_url: String,
    created_at: String,
}

async fn subscribe(
    State(core): State<SharedCore>,
    Extension(bus): Extension<Arc<Bus>>,
    Json(req): Json<Subscribe>,
) -> ApiResult<(StatusCode, Json<Subscription>)> {
    let topic = req.topic.trim();
    if topic.is_empty() {
        return Err(ApiError::unprocessable("topic must not be empty"));
    }
    if !(req.callback_url.starts_with("http://") || req.callback_url.starts_with("https://")) {
        return Err(ApiError::unprocessable(
            "callback_url must be an http(s) URL",
        ));
    }
    let subscriber = req.subscriber.unwrap_or_else(|| req.callback_url.clone());
    let sub: Subscription = sqlx::query_as(
        "INSERT INTO subscriptions (topic, subscriber, callback_url, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (topic, subscriber) DO UPDATE SET callback_url = excluded.callback_url
         RETURNING id, topic, subscriber, callback_url, created_at",
    )
    .bind(topic)
    .bind(&subscriber)
    .bind(&req.callback_url)
    .bind(now_rfc3339())
    .fetch_one(&core.db.pool)
    .await?;
    // A (re-)subscribing service is up: retry its pending deliveries now.
    sqlx::query(
        "UPDATE deliveries SET next_attempt_ms = $1 WHERE subscription_id = $2 AND status = 'pending'",
    )
    .bind(now_ms())
    .bind(sub.id)
    .execute(&core.db.pool)
    .await?;
    bus.wake.notify_one();
    tracing::info!(topic, subscriber, callback = %sub.callback_url, "subscribed");
    Ok((StatusCode::CREATED, Json(sub)))
}

async fn subscriptions(State(core): State<SharedCore>) -> ApiResult<Json<Vec<Subscription>>> {
    let rows = sqlx::query_as(
        "SELECT id, topic, subscriber, callback_url, created_at FROM subscriptions ORDER BY id",
    )
    .fetch_all(&core.db.pool)
    .await?;
    Ok(Json(rows))
}

#[derive(Deserialize)]
struct Publish {
    topic: String,
    payload: Value,
    /// Optional idempotency key: publishing the same key again returns the first event.
    key: Option<String>,
}

async fn publish(
    State(core): State<SharedCore>,
    Extension(bus): Extension<Arc<Bus>>,
    Json(req): Json<Publish>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let topic = req.topic.trim();
    if topic.is_empty() {
        return Err(ApiError::unprocessable("topic must not be empty"));
    }
    let payload = serde_json::to_string(&req.payload).map_err(anyhow::Error::from)?;
    let mut tx = core.db.pool.begin().await?;
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO events (topic, event_key, payload, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (event_key) DO NOTHING RETURNING id",
    )
    .bind(topic)
    .bind(req.key.as_deref())
    .bind(&payload)
    .bind(now_rfc3339())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(id) = inserted else {
        tx.rollback().await?;
        let id: i64 = sqlx::query_scalar("SELECT id FROM events WHERE event_key = $1")
            .bind(req.key.as_deref())
            .fetch_one(&core.db.pool)
            .await?;
        return Ok((
            StatusCode::OK,
            Json(json!({ "id": id, "topic": topic, "duplicate": true })),
        ));
    };
    let fanout = sqlx::query(
        "INSERT INTO deliveries (event_id, subscription_id, status, attempts, next_attempt_ms)
         SELECT $1, id, 'pending', 0, $2 FROM subscriptions WHERE topic = $3",
    )
    .bind(id)
    .bind(now_ms())
    .bind(topic)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    bus.wake.notify_one();
    tracing::info!(
        event_id = id,
        topic,
        deliveries = fanout.rows_affected(),
        "published"
    );
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "topic": topic, "deliveries": fanout.rows_affected() })),
    ))
}

#[derive(Deserialize)]
struct EventsQuery {
    topic: Option<String>,
}

async fn events(
    State(core): State<SharedCore>,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Json<Vec<Value>>> {
    let rows: Vec<(i64, String, Option<String>, String, String)> = sqlx::query_as(
        "SELECT id, topic, event_key, payload, created_at FROM events
         WHERE ($1 IS NULL OR topic = $1) ORDER BY id",
    )
    .bind(q.topic.as_deref())
    .fetch_all(&core.db.pool)
    .await?;
    Ok(Json(
        rows.into_iter()
            .map(|(id, topic, key, payload, created_at)| {
                json!({
                    "id": id,
                    "topic": topic,
                    "key": key,
                    "payload": serde_json::from_str::<Value>(&payload).unwrap_or(Value::Null),
                    "created_at": created_at,
                })
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
struct DeliveriesQuery {
    status: Option<String>,
}

#[derive(Serialize, sqlx::FromRow)]
struct DeliveryRow {
    id: i64,
    event_id: i64,
    subscription_id: i64,
    subscriber: String,
    callback_url: String,
    status: String,
    attempts: i64,
    last_error: Option<String>,
    delivered_at: Option<String>,
}

async fn deliveries(
    State(core): State<SharedCore>,
    Query(q): Query<DeliveriesQuery>,
) -> ApiResult<Json<Vec<DeliveryRow>>> {
    if let Some(s) = q.status.as_deref()
        && s != "pending"
        && s != "delivered"
    {
        return Err(ApiError::unprocessable(
            "status must be pending or delivered",
        ));
    }
    let rows = sqlx::query_as(
        "SELECT d.id, d.event_id, d.subscription_id, s.subscriber, s.callback_url, d.status,
                d.attempts, d.last_error, d.delivered_at
         FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id
         WHERE ($1 IS NULL OR d.status = $1) ORDER BY d.id",
    )
    .bind(q.status.as_deref())
    .fetch_all(&core.db.pool)
    .await?;
    Ok(Json(rows))
}

/// Delay before attempt `attempts + 1`: base * 2^attempts, capped.
fn backoff_ms(args: &BusArgs, attempts: i64) -> u64 {
    let shift = attempts.clamp(0, 30) as u32;
    args.retry_base_ms
        .saturating_mul(1u64 << shift)
        .min(args.retry_max_backoff_ms)
}

async fn delivery_loop(core: SharedCore, bus: Arc<Bus>) {
    let client = http_client(Duration::from_millis(bus.args.delivery_timeout_ms));
    let poll = Duration::from_millis(bus.args.delivery_poll_ms);
    loop {
        if let Err(e) = deliver_due(&core, &bus, &client).await {
            tracing::warn!(error = %e, "delivery round failed");
        }
        let _ = tokio::time::timeout(poll, bus.wake.notified()).await;
    }
}

async fn deliver_due(core: &SharedCore, bus: &Bus, client: &reqwest::Client) -> anyhow::Result<()> {
    let due: Vec<(i64, i64, i64, String, String, String)> = sqlx::query_as(
        "SELECT d.id, d.attempts, e.id, e.topic, e.payload, s.callback_url
         FROM deliveries d
         JOIN events e ON e.id = d.event_id
         JOIN subscriptions s ON s.id = d.subscription_id
         WHERE d.status = 'pending' AND d.next_attempt_ms <= $1
         ORDER BY d.id LIMIT 100",
    )
    .bind(now_ms())
    .fetch_all(&core.db.pool)
    .await?;
    let mut tasks = JoinSet::new();
    for (delivery_id, attempts, event_id, topic, payload, url) in due {
        let client = client.clone();
        tasks.spawn(async move {
            let body = EventDelivery {
                id: event_id,
                topic,
                payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
            };
            let outcome = match client.post(&url).json(&body).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("callback answered {}", r.status())),
                Err(e) => Err(format!("callback failed: {e}")),
            };
            (delivery_id, attempts, url, outcome)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (delivery_id, attempts, url, outcome) = joined?;
        match outcome {
            Ok(()) => {
                sqlx::query(
                    "UPDATE deliveries SET status = 'delivered', attempts = attempts + 1,
                     delivered_at = $1, last_error = NULL WHERE id = $2",
                )
                .bind(now_rfc3339())
                .bind(delivery_id)
                .execute(&core.db.pool)
                .await?;
                tracing::debug!(delivery_id, %url, "delivered");
            }
            Err(err) => {
                let wait = backoff_ms(&bus.args, attempts);
                sqlx::query(
                    "UPDATE deliveries SET attempts = attempts + 1, next_attempt_ms = $1,
                     last_error = $2 WHERE id = $3",
                )
                .bind(now_ms() + wait as i64)
                .bind(&err)
                .bind(delivery_id)
                .execute(&core.db.pool)
                .await?;
                tracing::info!(delivery_id, %url, attempts = attempts + 1, retry_in_ms = wait, "{err}");
            }
        }
    }
    Ok(())
}

/// `neuroerp_eventbus_deliveries{status}` gauge.
pub async fn metrics(core: &SharedCore) -> String {
    let rows: Result<Vec<(String, i64)>, _> = sqlx::query_as(
        "SELECT status, CAST(COUNT(*) AS BIGINT) FROM deliveries GROUP BY status ORDER BY status",
    )
    .fetch_all(&core.db.pool)
    .await;
    let Ok(rows) = rows else { return String::new() };
    let mut pending = 0;
    let mut delivered = 0;
    for (status, n) in rows {
        match status.as_str() {
            "pending" => pending = n,
            "delivered" => delivered = n,
            _ => {}
        }
    }
    format!(
        "# HELP neuroerp_eventbus_deliveries Deliveries by status.\n# TYPE neuroerp_eventbus_deliveries gauge\n\
         neuroerp_eventbus_deliveries{{service=\"event-bus\",status=\"pending\"}} {pending}\n\
         neuroerp_eventbus_deliveries{{service=\"event-bus\",status=\"delivered\"}} {delivered}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped() {
        let args = BusArgs {
            retry_base_ms: 100,
            retry_max_backoff_ms: 2000,
            delivery_timeout_ms: 1000,
            delivery_poll_ms: 100,
        };
        assert_eq!(backoff_ms(&args, 0), 100);
        assert_eq!(backoff_ms(&args, 3), 800);
        assert_eq!(backoff_ms(&args, 5), 2000);
        assert_eq!(backoff_ms(&args, 1000), 2000);
    }
}
