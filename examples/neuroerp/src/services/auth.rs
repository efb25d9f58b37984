//! auth-service: `POST /token {user, password}` issues a signed, expiring token;
//! `POST /verify {token}` returns its claims or 401.

use crate::cli::AuthArgs;
use crate::core::SharedCore;
use crate::db::Migration;
use crate::token::{self, Claims};
use crate::util::{ApiError, ApiResult, hex, now_unix, rfc3339};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Demo users (password = `<user>-password`), salted SHA-256.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "users",
    sql: "CREATE TABLE users (
            username TEXT PRIMARY KEY,
            salt TEXT NOT NULL,
            password_sha256 TEXT NOT NULL,
            role TEXT NOT NULL,
            created_at TEXT NOT NULL
          );
          INSERT INTO users (username, salt, password_sha256, role, created_at) VALUES
            ('demo', '7f3a9c21', 'eed91eceabd2b70bfa16e3cdb2c6b92b0968320aa656608da74e0613770ad372', 'user', '2024-01-01T00:00:00Z'),
            ('admin', 'c04e8b5a', '7aaf68b2ab57aa5176bcd66f13065011d6e3b5637ebf9ca33dc1bf46fb9881f9', 'admin', '2024-01-01T00:00:00Z'),
            ('kasse', '91d2e7f0', 'ca3efca0df3c2a85f29e661fa1d2f7860f40b7e1ec8f6f33541d9cefd387ddff', 'cashier', '2024-01-01T00:00:00Z')",
}];

struct AuthConfig {
    secret: Vec<u8>,
    ttl: i64,
}

pub fn routes(args: AuthArgs) -> Router<SharedCore> {
    let cfg = Arc::new(AuthConfig {
        secret: args.auth_secret.into_bytes(),
        ttl: args.token_ttl_seconds,
    });
    Router::new()
        .route("/token", post(issue))
        .route("/verify", post(verify))
        .layer(Extension(cfg))
}

#[derive(Deserialize)]
struct Login {
    user: String,
    password: String,
}

/// Constant-time equality of two byte strings.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn issue(
    State(core): State<SharedCore>,
    Extension(cfg): Extension<Arc<AuthConfig>>,
    Json(login): Json<Login>,
) -> ApiResult<Json<Value>> {
    let row: Option<(String, String, String)> =
        sqlx::query_as("SELECT salt, password_sha256, role FROM users WHERE username = $1")
            .bind(&login.user)
            .fetch_optional(&core.db.pool)
            .await?;
    let denied = || ApiError::new(StatusCode::UNAUTHORIZED, "invalid user or password");
    let (salt, expected, role) = row.ok_or_else(denied)?;
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(login.password.as_bytes());
    if !ct_eq(hex(&h.finalize()).as_bytes(), expected.as_bytes()) {
        tracing::info!(user = %login.user, "login refused");
        return Err(denied());
    }
    let claims = Claims {
        sub: login.user,
        exp: now_unix() + cfg.ttl,
    };
    let token = token::sign(&cfg.secret, &claims);
    Ok(Json(json!({
        "token": token,
        "token_type": "Bearer",
        "sub": claims.sub,
        "role": role,
        "exp": claims.exp,
        "expires_at": rfc3339(claims.exp),
    })))
}

#[derive(Deserialize)]
struct VerifyReq {
    token: String,
}

async fn verify(
    Extension(cfg): Extension<Arc<AuthConfig>>,
    Json(req): Json<VerifyReq>,
) -> ApiResult<Json<Claims>> {
    token::verify(&cfg.secret, &req.token, now_unix())
        .map(Json)
        .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))
}
