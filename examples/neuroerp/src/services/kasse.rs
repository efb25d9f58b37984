//! kasse-service (point of sale): records sales and publishes `sale.completed`.
//!
//! The sale and its outgoing event are written in one transaction (transactional
//! outbox); a background publisher sends outbox rows to the event-bus until it
//! accepts them. Each event carries an idempotency key (`kasse-service:sale:<id>`),
//! so a re-sent event is not published twice.

use super::{SALE_COMPLETED, SaleCompleted};
use crate::cli::KasseArgs;
use crate::core::SharedCore;
use crate::db::Migration;
use crate::util::{ApiError, ApiResult, now_rfc3339, now_unix, rfc3339};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "sales_and_outbox",
    sql: "CREATE TABLE sales (
            id {ID},
            customer_id BIGINT NOT NULL,
            total_cents BIGINT NOT NULL,
            items TEXT NOT NULL,
            created_at TEXT NOT NULL
          );
          CREATE TABLE outbox (
            id {ID},
            topic TEXT NOT NULL,
            event_key TEXT NOT NULL,
            payload TEXT NOT NULL,
            attempts BIGINT NOT NULL DEFAULT 0,
            published_at TEXT,
            last_error TEXT
          )",
}];

struct Publisher {
    wake: Notify,
}

pub fn routes(core: SharedCore, args: KasseArgs) -> Router<SharedCore> {
    let publisher = Arc::new(Publisher {
        wake: Notify::new(),
    });
    tokio::spawn(publish_loop(core, args.event_bus_url, publisher.clone()));
    Router::new()
        .route("/sales", get(list).post(create))
        .route("/sales/{id}", get(fetch))
        .layer(Extension(publisher))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    pub sku: String,
    pub qty: i64,
    pub unit_price_cents: i64,
}

#[derive(Deserialize)]
struct NewSale {
    customer_id: i64,
    items: Vec<Item>,
}

#[derive(Serialize)]
struct Sale {
    id: i64,
    customer_id: i64,
    total_cents: i64,
    items: Vec<Item>,
    created_at: String,
}

fn sale_from_row(
    (id, customer_id, total_cents, items, created_at): (i64, i64, i64, String, String),
) -> Sale {
    Sale {
        id,
        customer_id,
        total_cents,
        items: serde_json::from_str(&items).unwrap_or_default(),
        created_at,
    }
}

fn total_of(items: &[Item]) -> Result<i64, String> {
    if items.is_empty() {
        return Err("a sale needs at least one item".into());
    }
    let mut total: i64 = 0;
    for (i, it) in items.iter().enumerate() {
        if it.sku.trim().is_empty() {
            return Err(format!("item {i}: sku must not be empty"));
        }
        if it.qty <= 0 {
            return Err(format!("item {i}: qty must be positive"));
        }
        if it.unit_price_cents < 0 {
            return Err(format!("item {i}: unit_price_cents must not be negative"));
        }
        total = it
            .qty
            .checked_mul(it.unit_price_cents)
            .and_then(|line| total.checked_add(line))
            .ok_or_else(|| "total out of range".to_string())?;
    }
    Ok(total)
}

async fn create(
    State(core): State<SharedCore>,
    Extension(publisher): Extension<Arc<Publisher>>,
    Json(new): Json<NewSale>,
) -> ApiResult<(StatusCode, Json<Sale>)> {
    if new.customer_id <= 0 {
        return Err(ApiError::unprocessable("customer_id must be positive"));
    }
    let total = total_of(&new.items).map_err(ApiError::unprocessable)?;
    let now = now_unix();
    let created_at = rfc3339(now);
    let items_json = serde_json::to_string(&new.items).map_err(anyhow::Error::from)?;
    let mut tx = core.db.pool.begin().await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO sales (customer_id, total_cents, items, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(new.customer_id)
    .bind(total)
    .bind(&items_json)
    .bind(&created_at)
    .fetch_one(&mut *tx)
    .await?;
    let event = SaleCompleted {
        sale_id: id,
        customer_id: new.customer_id,
        total_cents: total,
        at: created_at.clone(),
    };
    sqlx::query("INSERT INTO outbox (topic, event_key, payload, attempts) VALUES ($1, $2, $3, 0)")
        .bind(SALE_COMPLETED)
        .bind(format!("kasse-service:sale:{id}"))
        .bind(serde_json::to_string(&event).map_err(anyhow::Error::from)?)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    publisher.wake.notify_one();
    tracing::info!(sale_id = id, total_cents = total, "sale recorded");
    Ok((
        StatusCode::CREATED,
        Json(Sale {
            id,
            customer_id: new.customer_id,
            total_cents: total,
            items: new.items,
            created_at,
        }),
    ))
}

async fn fetch(State(core): State<SharedCore>, Path(id): Path<i64>) -> ApiResult<Json<Sale>> {
    let row: Option<(i64, i64, i64, String, String)> = sqlx::query_as(
        "SELECT id, customer_id, total_cents, items, created_at FROM sales WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&core.db.pool)
    .await?;
    row.map(|r| Json(sale_from_row(r)))
        .ok_or_else(|| ApiError::not_found(format!("sale {id} not found")))
}

async fn list(State(core): State<SharedCore>) -> ApiResult<Json<Vec<Sale>>> {
    let rows: Vec<(i64, i64, i64, String, String)> = sqlx::query_as(
        "SELECT id, customer_id, total_cents, items, created_at FROM sales ORDER BY id",
    )
    .fetch_all(&core.db.pool)
    .await?;
    Ok(Json(rows.into_iter().map(sale_from_row).collect()))
}

/// Publish unpublished outbox rows in order; on failure wait (backoff up to 2 s) and retry.
async fn publish_loop(core: SharedCore, bus_url: String, publisher: Arc<Publisher>) {
    let url = format!("{}/publish", bus_url.trim_end_matches('/'));
    let mut delay = Duration::from_millis(100);
    loop {
        match publish_pending(&core, &url).await {
            Ok(()) => {
                delay = Duration::from_millis(100);
                // Wake on a new sale, or look again after a while anyway.
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), publisher.wake.notified()).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, %url, "publishing to the event-bus failed; will retry");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

async fn publish_pending(core: &SharedCore, url: &str) -> anyhow::Result<()> {
    let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
        "SELECT id, topic, event_key, payload FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT 50",
    )
    .fetch_all(&core.db.pool)
    .await?;
    for (id, topic, key, payload) in rows {
        let payload: Value = serde_json::from_str(&payload)?;
        let body = json!({ "topic": topic, "key": key, "payload": payload });
        let result = match core.http.post(url).json(&body).send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(anyhow::anyhow!("event-bus answered {}", r.status())),
            Err(e) => Err(anyhow::Error::from(e)),
        };
        match result {
            Ok(()) => {
                sqlx::query("UPDATE outbox SET published_at = $1, attempts = attempts + 1, last_error = NULL WHERE id = $2")
                    .bind(now_rfc3339())
                    .bind(id)
                    .execute(&core.db.pool)
                    .await?;
            }
            Err(e) => {
                sqlx::query(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = $1 WHERE id = $2",
                )
                .bind(format!("{e:#}"))
                .bind(id)
                .execute(&core.db.pool)
                .await?;
                return Err(e);
            }
        }
    }
    Ok(())
}

/// `neuroerp_outbox_pending` gauge.
pub async fn metrics(core: &SharedCore) -> String {
    let pending: Result<i64, _> = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM outbox WHERE published_at IS NULL",
    )
    .fetch_one(&core.db.pool)
    .await;
    match pending {
        Ok(n) => format!(
            "# HELP neuroerp_outbox_pending Events recorded but not yet accepted by the event-bus.\n# TYPE neuroerp_outbox_pending gauge\nneuroerp_outbox_pending{{service=\"kasse-service\"}} {n}\n"
        ),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals() {
        let it = |qty, p| Item {
            sku: "A".into(),
            qty,
            unit_price_cents: p,
        };
        assert_eq!(total_of(&[it(2, 150), it(1, 99)]), Ok(399));
        assert!(total_of(&[]).is_err());
        assert!(total_of(&[it(0, 1)]).is_err());
        assert!(total_of(&[it(1, -1)]).is_err());
        assert!(total_of(&[it(i64::MAX, 2)]).is_err());
    }
}
