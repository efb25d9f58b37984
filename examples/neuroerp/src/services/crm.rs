//! crm-service: customers.

use crate::core::SharedCore;
use crate::db::Migration;
use crate::util::{ApiError, ApiResult, now_rfc3339};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "customers",
        sql: "CREATE TABLE customers (
                id {ID},
                name TEXT NOT NULL,
                email TEXT NOT NULL,
                created_at TEXT NOT NULL
              )",
    },
    Migration {
        version: 2,
        name: "customers_email_unique",
        sql: "CREATE UNIQUE INDEX customers_email ON customers (email)",
    },
];

pub fn routes() -> Router<SharedCore> {
    Router::new()
        .route("/customers", get(list).post(create))
        .route("/customers/{id}", get(fetch))
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Customer {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub created_at: String,
}

#[derive(Deserialize)]
struct NewCustomer {
    name: String,
    email: String,
}

async fn create(
    State(core): State<SharedCore>,
    Json(new): Json<NewCustomer>,
) -> ApiResult<(StatusCode, Json<Customer>)> {
    let name = new.name.trim();
    let email = new.email.trim().to_lowercase();
    if name.is_empty() {
        return Err(ApiError::unprocessable("name must not be empty"));
    }
    let valid_email = email
        .split_once('@')
        .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'));
    if !valid_email {
        return Err(ApiError::unprocessable(format!(
            "invalid email address: {email:?}"
        )));
    }
    let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM customers WHERE email = $1")
        .bind(&email)
        .fetch_optional(&core.db.pool)
        .await?;
    if let Some(id) = exists {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("a customer with this email exists (id {id})"),
        ));
    }
    let customer: Customer = sqlx::query_as(
        "INSERT INTO customers (name, email, created_at) VALUES ($1, $2, $3)
         RETURNING id, name, email, created_at",
    )
    .bind(name)
    .bind(&email)
    .bind(now_rfc3339())
    .fetch_one(&core.db.pool)
    .await?;
    Ok((StatusCode::CREATED, Json(customer)))
}

async fn fetch(State(core): State<SharedCore>, Path(id): Path<i64>) -> ApiResult<Json<Customer>> {
    sqlx::query_as("SELECT id, name, email, created_at FROM customers WHERE id = $1")
        .bind(id)
        .fetch_optional(&core.db.pool)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("customer {id} not found")))
}

async fn list(State(core): State<SharedCore>) -> ApiResult<Json<Vec<Customer>>> {
    let rows = sqlx::query_as("SELECT id, name, email, created_at FROM customers ORDER BY id")
        .fetch_all(&core.db.pool)
        .await?;
    Ok(Json(rows))
}
