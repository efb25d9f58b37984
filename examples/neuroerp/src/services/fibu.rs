//! fibu-service (financial accounting): double-entry journal.
//!
//! Every `sale.completed` event is booked as debit 1200 (receivables) / credit
//! 8400 (revenue), exactly once per event id even when delivered again.

use super::EventDelivery;
use crate::core::SharedCore;
use crate::db::Migration;
use crate::util::{ApiError, ApiResult, now_rfc3339};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Receivables (Forderungen aus Lieferungen und Leistungen).
pub const ACCOUNT_RECEIVABLES: &str = "1200";
/// Revenue (Erlöse).
pub const ACCOUNT_REVENUE: &str = "8400";

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "journal",
    sql: "CREATE TABLE journal_entries (
            id {ID},
            event_id BIGINT UNIQUE,
            description TEXT NOT NULL,
            created_at TEXT NOT NULL
          );
          CREATE TABLE journal_lines (
            id {ID},
            entry_id BIGINT NOT NULL REFERENCES journal_entries (id),
            account TEXT NOT NULL,
            debit_cents BIGINT NOT NULL,
            credit_cents BIGINT NOT NULL
          );
          CREATE INDEX journal_lines_entry ON journal_lines (entry_id)",
}];

pub fn routes() -> Router<SharedCore> {
    Router::new()
        .route("/events", post(on_event))
        .route("/journal", get(list).post(create))
        .route("/journal/{id}", get(fetch))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Line {
    pub account: String,
    #[serde(default)]
    pub debit_cents: i64,
    #[serde(default)]
    pub credit_cents: i64,
}

#[derive(Serialize)]
struct Entry {
    id: i64,
    event_id: Option<i64>,
    description: String,
    created_at: String,
    debit_cents: i64,
    credit_cents: i64,
    lines: Vec<Line>,
}

/// Check a set of lines: non-empty, non-negative, one side per line, debits = credits.
pub fn check_balanced(lines: &[Line]) -> Result<i64, String> {
    if lines.is_empty() {
        return Err("a journal entry needs at least one line".into());
    }
    let (mut debit, mut credit) = (0i128, 0i128);
    for (i, l) in lines.iter().enumerate() {
        if l.account.trim().is_empty() {
            return Err(format!("line {i}: account must not be empty"));
        }
        if l.debit_cents < 0 || l.credit_cents < 0 {
            return Err(format!("line {i}: amounts must not be negative"));
        }
        if l.debit_cents > 0 && l.credit_cents > 0 {
            return Err(format!("line {i}: a line is either debit or credit"));
        }
        debit += l.debit_cents as i128;
        credit += l.credit_cents as i128;
    }
    if debit != credit {
        return Err(format!(
            "unbalanced entry: debits {debit} != credits {credit} (difference {} cents)",
            debit - credit
        ));
    }
    i64::try_from(debit).map_err(|_| "amounts out of range".to_string())
}

/// Insert an entry and its lines in one transaction. `event_id` makes it
/// idempotent: returns `None` when that event was booked already.
async fn book(
    core: &SharedCore,
    event_id: Option<i64>,
    description: &str,
    lines: &[Line],
) -> Result<Option<i64>, sqlx::Error> {
    let mut tx = core.db.pool.begin().await?;
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO journal_entries (event_id, description, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (event_id) DO NOTHING RETURNING id",
    )
    .bind(event_id)
    .bind(description)
    .bind(now_rfc3339())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(id) = id else {
        tx.rollback().await?;
        return Ok(None);
    };
    for l in lines {
        sqlx::query(
            "INSERT INTO journal_lines (entry_id, account, debit_cents, credit_cents) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(l.account.trim())
        .bind(l.debit_cents)
        .bind(l.credit_cents)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Some(id))
}

async fn on_event(
    State(core): State<SharedCore>,
    Json(ev): Json<EventDelivery>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Some(sale) = ev.sale()? else {
        return Ok((StatusCode::OK, Json(json!({ "ignored": ev.topic }))));
    };
    if sale.total_cents < 0 {
        return Err(ApiError::unprocessable("total_cents must not be negative"));
    }
    let lines = [
        Line {
            account: ACCOUNT_RECEIVABLES.into(),
            debit_cents: sale.total_cents,
            credit_cents: 0,
        },
        Line {
            account: ACCOUNT_REVENUE.into(),
            debit_cents: 0,
            credit_cents: sale.total_cents,
        },
    ];
    let description = format!(
        "sale {} customer {} at {}",
        sale.sale_id, sale.customer_id, sale.at
    );
    match book(&core, Some(ev.id), &description, &lines).await? {
        Some(entry_id) => {
            tracing::info!(event_id = ev.id, entry_id, "sale booked");
            Ok((
                StatusCode::CREATED,
                Json(json!({ "entry_id": entry_id, "event_id": ev.id })),
            ))
        }
        None => Ok((
            StatusCode::OK,
            Json(json!({ "event_id": ev.id, "duplicate": true })),
        )),
    }
}

#[derive(Deserialize)]
struct NewEntry {
    #[serde(default)]
    description: Option<String>,
    lines: Vec<Line>,
}

async fn create(
    State(core): State<SharedCore>,
    Json(new): Json<NewEntry>,
) -> ApiResult<(StatusCode, Json<Entry>)> {
    check_balanced(&new.lines).map_err(ApiError::unprocessable)?;
    let description = new.description.unwrap_or_else(|| "manual entry".into());
    let id = book(&core, None, &description, &new.lines)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "entry not stored"))?;
    let entry = load(&core, Some(id))
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found("entry"))?;
    Ok((StatusCode::CREATED, Json(entry)))
}

async fn load(core: &SharedCore, only: Option<i64>) -> Result<Vec<Entry>, sqlx::Error> {
    let entries: Vec<(i64, Option<i64>, String, String)> = sqlx::query_as(
        "SELECT id, event_id, description, created_at FROM journal_entries
         WHERE ($1 IS NULL OR id = $1) ORDER BY id",
    )
    .bind(only)
    .fetch_all(&core.db.pool)
    .await?;
    let lines: Vec<(i64, String, i64, i64)> = sqlx::query_as(
        "SELECT entry_id, account, debit_cents, credit_cents FROM journal_lines
         WHERE ($1 IS NULL OR entry_id = $1) ORDER BY id",
    )
    .bind(only)
    .fetch_all(&core.db.pool)
    .await?;
    let mut by_entry: BTreeMap<i64, Vec<Line>> = BTreeMap::new();
    for (entry_id, account, debit_cents, credit_cents) in lines {
        by_entry.entry(entry_id).or_default().push(Line {
            account,
            debit_cents,
            credit_cents,
        });
    }
    Ok(entries
        .into_iter()
        .map(|(id, event_id, description, created_at)| {
            let lines = by_entry.remove(&id).unwrap_or_default();
            Entry {
                id,
                event_id,
                description,
                created_at,
                debit_cents: lines.iter().map(|l| l.debit_cents).sum(),
                credit_cents: lines.iter().map(|l| l.credit_cents).sum(),
                lines,
            }
        })
        .collect())
}

async fn list(State(core): State<SharedCore>) -> ApiResult<Json<Vec<Entry>>> {
    Ok(Json(load(&core, None).await?))
}

async fn fetch(State(core): State<SharedCore>, Path(id): Path<i64>) -> ApiResult<Json<Entry>> {
    load(&core, Some(id))
        .await?
        .pop()
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("journal entry {id} not found")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(a: &str, d: i64, c: i64) -> Line {
        Line {
            account: a.into(),
            debit_cents: d,
            credit_cents: c,
        }
    }

    #[test]
    fn balance_rules() {
        assert_eq!(
            check_balanced(&[l("1200", 500, 0), l("8400", 0, 500)]),
            Ok(500)
        );
        let err = check_balanced(&[l("1200", 500, 0), l("8400", 0, 400)]).unwrap_err();
        assert!(err.contains("difference 100"), "{err}");
        assert!(check_balanced(&[]).is_err());
        assert!(check_balanced(&[l("1200", -5, 0), l("8400", 0, -5)]).is_err());
        assert!(check_balanced(&[l("1200", 5, 5)]).is_err());
    }
}
