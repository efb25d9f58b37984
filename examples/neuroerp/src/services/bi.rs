//! bi-service (business intelligence): revenue aggregated from `sale.completed`.

use super::EventDelivery;
use crate::core::SharedCore;
use crate::db::Migration;
use crate::util::{ApiError, ApiResult, now_rfc3339};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "sales_facts",
    sql: "CREATE TABLE sales_facts (
            event_id BIGINT PRIMARY KEY,
            sale_id BIGINT NOT NULL,
            customer_id BIGINT NOT NULL,
            total_cents BIGINT NOT NULL,
            day TEXT NOT NULL,
            at TEXT NOT NULL,
            received_at TEXT NOT NULL
          )",
}];

pub fn routes() -> Router<SharedCore> {
    Router::new()
        .route("/events", post(on_event))
        .route("/revenue", get(revenue))
}

async fn on_event(
    State(core): State<SharedCore>,
    Json(ev): Json<EventDelivery>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Some(sale) = ev.sale()? else {
        return Ok((StatusCode::OK, Json(json!({ "ignored": ev.topic }))));
    };
    let day: String = sale.at.chars().take(10).collect();
    if day.len() != 10 {
        return Err(ApiError::unprocessable(
            "`at` must be an RFC 3339 timestamp",
        ));
    }
    let done = sqlx::query(
        "INSERT INTO sales_facts (event_id, sale_id, customer_id, total_cents, day, at, received_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(ev.id)
    .bind(sale.sale_id)
    .bind(sale.customer_id)
    .bind(sale.total_cents)
    .bind(&day)
    .bind(&sale.at)
    .bind(now_rfc3339())
    .execute(&core.db.pool)
    .await?;
    if done.rows_affected() == 1 {
        Ok((StatusCode::CREATED, Json(json!({ "event_id": ev.id }))))
    } else {
        Ok((
            StatusCode::OK,
            Json(json!({ "event_id": ev.id, "duplicate": true })),
        ))
    }
}

async fn revenue(State(core): State<SharedCore>) -> ApiResult<Json<Value>> {
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT day, total_cents FROM sales_facts")
        .fetch_all(&core.db.pool)
        .await?;
    let mut total: i64 = 0;
    let mut by_day: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (day, cents) in &rows {
        total = total.saturating_add(*cents);
        let d = by_day.entry(day.clone()).or_default();
        d.0 = d.0.saturating_add(*cents);
        d.1 += 1;
    }
    Ok(Json(json!({
        "total_cents": total,
        "sales": rows.len(),
        "by_day": by_day
            .into_iter()
            .map(|(day, (cents, n))| json!({ "day": day, "total_cents": cents, "sales": n }))
            .collect::<Vec<_>>(),
    })))
}
