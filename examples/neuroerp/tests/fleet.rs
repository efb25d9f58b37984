//! End-to-end tests of the NeuroERP fleet: real processes on 127.0.0.1.

mod common;

use common::*;
use neuroerp::token::{Claims, sign};
use neuroerp::util::now_unix;
use serde_json::json;
use std::time::{Duration, Instant};

const VERSIONS: [(&str, &str); 7] = [
    ("fibu-service", "1.0.5"),
    ("crm-service", "1.1.2"),
    ("kasse-service", "1.0.8"),
    ("bi-service", "1.0.3"),
    ("auth-service", "1.2.0"),
    ("api-gateway", "1.3.1"),
    ("event-bus", "1.4.0"),
];

/// (1) A sale through the gateway ends as a balanced journal entry and in the revenue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sale_through_gateway_reaches_fibu_and_bi() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(dir.path(), &Store::Sqlite).await;
    sale_flow(&fleet).await;
    // Health, version and build info of all seven.
    for p in fleet.all() {
        let version = VERSIONS.iter().find(|(s, _)| *s == p.service).unwrap().1;
        let (status, health) = get(&format!("{}/health", p.url), None).await;
        assert_eq!(status, 200);
        assert_eq!(
            health,
            json!({"status": "ok", "service": p.service, "version": version})
        );
        let (status, ready) = get(&format!("{}/ready", p.url), None).await;
        assert_eq!(status, 200, "{ready}");
        assert!(ready["schema_version"].as_i64().unwrap() >= 1);
        let metrics = get_text(&format!("{}/metrics", p.url)).await;
        let line = format!(
            "neuroerp_build_info{{service=\"{}\",version=\"{version}\"}} 1",
            p.service
        );
        assert!(metrics.contains(&line), "{}: {metrics}", p.service);
    }
    eprintln!("sale flow (sqlite) took {:?}", started.elapsed());
}

/// (2) Without a valid token the gateway answers 401; unknown services 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_rejects_missing_tampered_and_expired_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let auth = Proc::start(
        "auth-service",
        d,
        &Store::Sqlite.url(d, "auth"),
        &[("AUTH_SECRET", SECRET.into())],
    );
    let crm = Proc::start("crm-service", d, &Store::Sqlite.url(d, "crm"), &[]);
    let gateway = Proc::start(
        "api-gateway",
        d,
        &Store::Sqlite.url(d, "gw"),
        &[
            ("AUTH_SECRET", SECRET.into()),
            ("AUTH_URL", auth.url.clone()),
            ("UPSTREAMS", format!("crm-service={}", crm.url)),
        ],
    );
    for p in [&auth, &crm, &gateway] {
        wait_ready(p).await;
    }
    let url = format!("{}/api/crm/customers", gateway.url);

    // No token at all.
    let resp = client().get(&url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    // Wrong scheme and garbage.
    let resp = client()
        .get(&url)
        .header("authorization", "Basic ZGVtbzpkZW1v")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(get(&url, Some("not-a-token")).await.0, 401);

    // Wrong password → 401 from auth-service through the gateway.
    let (status, _) = post(
        &format!("{}/api/auth/token", gateway.url),
        &json!({"user": "demo", "password": "wrong"}),
        None,
    )
    .await;
    assert_eq!(status, 401);

    let token = login(&gateway).await;
    assert_eq!(get(&url, Some(&token)).await.0, 200);

    // Tampered: claims swapped for admin with a later expiry, old signature kept.
    let (_, sig) = token.split_once('.').unwrap();
    use base64::Engine;
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
        r#"{{"sub":"admin","exp":{}}}"#,
        now_unix() + 86_400
    ));
    let (status, body) = get(&url, Some(&format!("{forged}.{sig}"))).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid token signature");
    // One flipped signature character.
    let mut flipped = token.clone().into_bytes();
    let last = flipped.len() - 2;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        get(&url, Some(std::str::from_utf8(&flipped).unwrap()))
            .await
            .0,
        401
    );
    // Expired, correctly signed.
    let expired = sign(
        SECRET.as_bytes(),
        &Claims {
            sub: "demo".into(),
            exp: now_unix() - 5,
        },
    );
    let (status, body) = get(&url, Some(&expired)).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "token expired");
    // Signed with another key.
    let foreign = sign(
        b"some-other-secret-0123456789",
        &Claims {
            sub: "demo".into(),
            exp: now_unix() + 600,
        },
    );
    assert_eq!(get(&url, Some(&foreign)).await.0, 401);

    // auth-service's own /verify agrees.
    let (status, claims) = post(
        &format!("{}/verify", auth.url),
        &json!({"token": token}),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(claims["sub"], "demo");
    assert_eq!(
        post(
            &format!("{}/verify", auth.url),
            &json!({"token": expired}),
            None
        )
        .await
        .0,
        401
    );

    // Unknown service with a valid token → 404; without a token → 401.
    assert_eq!(
        get(&format!("{}/api/lager/items", gateway.url), Some(&token))
            .await
            .0,
        404
    );
    assert_eq!(
        get(&format!("{}/api/lager/items", gateway.url), None)
            .await
            .0,
        401
    );
    // Other auth routes are not open.
    assert_eq!(
        post(
            &format!("{}/api/auth/verify", gateway.url),
            &json!({"token": token}),
            None
        )
        .await
        .0,
        401
    );
}

/// (3) Unbalanced journal entries are rejected with the difference; balanced accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_entries_must_balance() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bus = Proc::start("event-bus", d, &Store::Sqlite.url(d, "bus"), &[]);
    let fibu = Proc::start(
        "fibu-service",
        d,
        &Store::Sqlite.url(d, "fibu"),
        &bus_env(&bus),
    );
    wait_ready(&fibu).await;
    let url = format!("{}/journal", fibu.url);

    let (status, body) = post(
        &url,
        &json!({"lines": [
            {"account": "1000", "debit_cents": 10000, "credit_cents": 0},
            {"account": "8400", "debit_cents": 0, "credit_cents": 9000}
        ]}),
        None,
    )
    .await;
    assert_eq!(status, 422);
    let msg = body["error"].as_str().unwrap();
    assert!(msg.contains("difference 1000"), "{msg}");
    assert_eq!(post(&url, &json!({"lines": []}), None).await.0, 422);

    let (status, entry) = post(
        &url,
        &json!({"description": "Barverkauf", "lines": [
            {"account": "1000", "debit_cents": 11900, "credit_cents": 0},
            {"account": "8400", "debit_cents": 0, "credit_cents": 10000},
            {"account": "3806", "debit_cents": 0, "credit_cents": 1900}
        ]}),
        None,
    )
    .await;
    assert_eq!(status, 201, "{entry}");
    assert_eq!(entry["debit_cents"], 11900);
    assert_eq!(entry["lines"].as_array().unwrap().len(), 3);
    let (status, all) = get(&url, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        all.as_array().unwrap().len(),
        1,
        "the rejected entries left nothing behind"
    );
}

/// (4) An event published while the subscriber is down is delivered after it
/// comes back, and booked once even when delivered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivery_after_subscriber_outage_is_booked_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bus = Proc::start(
        "event-bus",
        d,
        &Store::Sqlite.url(d, "bus"),
        &[
            ("RETRY_BASE_MS", "50".into()),
            ("RETRY_MAX_BACKOFF_MS", "1000".into()),
            ("DELIVERY_POLL_MS", "100".into()),
        ],
    );
    let fibu_db = Store::Sqlite.url(d, "fibu");
    let mut fibu = Proc::start("fibu-service", d, &fibu_db, &bus_env(&bus));
    wait_ready(&fibu).await;
    fibu.stop();

    let event = json!({"topic": "sale.completed", "key": "test:sale:77", "payload":
        {"sale_id": 77, "customer_id": 5, "total_cents": 2500, "at": "2025-03-01T10:00:00Z"}});
    let (status, published) = post(&format!("{}/publish", bus.url), &event, None).await;
    assert_eq!(status, 201, "{published}");
    assert_eq!(published["deliveries"], 1);
    let event_id = published["id"].as_i64().unwrap();
    // Same idempotency key again: no second event.
    let (status, dup) = post(&format!("{}/publish", bus.url), &event, None).await;
    assert_eq!(status, 200);
    assert_eq!(dup["duplicate"], true);
    assert_eq!(dup["id"], event_id);

    // The delivery fails and stays pending.
    let pending = format!("{}/deliveries?status=pending", bus.url);
    eventually("a failed delivery attempt", Duration::from_secs(15), || {
        let pending = pending.clone();
        async move {
            let (_, d) = get(&pending, None).await;
            let first = d.as_array()?.first()?.clone();
            (first["attempts"].as_i64()? >= 1 && first["last_error"].is_string()).then_some(())
        }
    })
    .await;

    // Back up (same database, new port): it re-subscribes and gets the event.
    let fibu = Proc::start("fibu-service", d, &fibu_db, &bus_env(&bus));
    wait_ready(&fibu).await;
    eventually("delivery after restart", Duration::from_secs(15), || {
        let pending = pending.clone();
        async move {
            let (_, d) = get(&pending, None).await;
            d.as_array()?.is_empty().then_some(())
        }
    })
    .await;
    let (_, delivered) = get(&format!("{}/deliveries?status=delivered", bus.url), None).await;
    assert_eq!(delivered.as_array().unwrap().len(), 1);
    assert!(delivered[0]["attempts"].as_i64().unwrap() >= 2);

    // Delivered again by hand (at-least-once): still one booking.
    let again = json!({"id": event_id, "topic": "sale.completed", "payload": event["payload"]});
    let (status, body) = post(&format!("{}/events", fibu.url), &again, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["duplicate"], true);
    let (_, journal) = get(&format!("{}/journal", fibu.url), None).await;
    let entries = journal.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{journal}");
    assert_eq!(entries[0]["event_id"], event_id);
    assert_eq!(entries[0]["debit_cents"], 2500);
    assert_eq!(entries[0]["credit_cents"], 2500);
}

fn counter(metrics: &str, prefix: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// (5) /metrics: build info with the right version, counters and histogram move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_expose_build_info_and_moving_counters() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let crm = Proc::start("crm-service", d, &Store::Sqlite.url(d, "crm"), &[]);
    wait_ready(&crm).await;
    let m = format!("{}/metrics", crm.url);
    let created = r#"http_requests_total{service="crm-service",method="POST",route="/customers",status="201"}"#;
    let missing = r#"http_requests_total{service="crm-service",method="GET",route="/customers/{id}",status="404"}"#;
    let hist = r#"http_request_duration_seconds_count{service="crm-service",method="POST",route="/customers"}"#;

    let before = get_text(&m).await;
    assert!(
        before.contains(r#"neuroerp_build_info{service="crm-service",version="1.1.2"} 1"#),
        "{before}"
    );
    assert!(before.contains("# TYPE http_request_duration_seconds histogram"));
    assert_eq!(counter(&before, created), 0);

    for i in 0..3 {
        let (s, _) = post(
            &format!("{}/customers", crm.url),
            &json!({"name": format!("Kunde {i}"), "email": format!("k{i}@example.de")}),
            None,
        )
        .await;
        assert_eq!(s, 201);
    }
    assert_eq!(
        get(&format!("{}/customers/999", crm.url), None).await.0,
        404
    );

    let after = get_text(&m).await;
    assert_eq!(counter(&after, created), 3, "{after}");
    assert_eq!(counter(&after, missing), 1);
    assert_eq!(counter(&after, hist), 3);
    let inf = r#"http_request_duration_seconds_bucket{service="crm-service",method="POST",route="/customers",le="+Inf"}"#;
    assert_eq!(counter(&after, inf), 3);
    assert!(after.contains(r#"http_request_duration_seconds_sum{service="crm-service",method="POST",route="/customers"}"#));
}

/// (6) Migrations run once, in order, and are recorded in schema_migrations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_recorded_and_not_reapplied() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let url = Store::Sqlite.url(d, "crm");
    let mut crm = Proc::start("crm-service", d, &url, &[]);
    wait_ready(&crm).await;
    let (_, version) = get(&format!("{}/version", crm.url), None).await;
    assert_eq!(version["schema_version"], 2);
    assert_eq!(version["version"], "1.1.2");
    assert_eq!(version["database"], "sqlite");
    let (s, _) = post(
        &format!("{}/customers", crm.url),
        &json!({"name": "A", "email": "a@example.de"}),
        None,
    )
    .await;
    assert_eq!(s, 201);
    crm.stop();

    let db = neuroerp::db::Db::connect(&url, Duration::from_secs(5))
        .await
        .unwrap();
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT CAST(version AS BIGINT), applied_at FROM schema_migrations ORDER BY version",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 2]);
    assert!(rows.iter().all(|r| r.1.ends_with('Z')));

    // Restart on the same database: nothing re-applied, data kept.
    let crm = Proc::start("crm-service", d, &url, &[]);
    wait_ready(&crm).await;
    let again: Vec<(i64, String)> = sqlx::query_as(
        "SELECT CAST(version AS BIGINT), applied_at FROM schema_migrations ORDER BY version",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(again, rows);
    let (s, list) = get(&format!("{}/customers", crm.url), None).await;
    assert_eq!(s, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    db.pool.close().await;
}

/// (7) The same flow against PostgreSQL when NEUROERP_TEST_POSTGRES_URL is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sale_flow_on_postgres() {
    let Ok(base) = std::env::var("NEUROERP_TEST_POSTGRES_URL") else {
        eprintln!(
            "SKIPPED sale_flow_on_postgres: set NEUROERP_TEST_POSTGRES_URL=postgres://… to run it"
        );
        return;
    };
    let started = Instant::now();
    let prefix = format!("neuroerp_test_{}_{}", std::process::id(), now_unix());
    let admin = neuroerp::db::Db::connect(&base, Duration::from_secs(10))
        .await
        .expect("connect to PostgreSQL");
    let services = VERSIONS.map(|(s, _)| s);
    for s in services {
        sqlx::query(&format!("CREATE SCHEMA {}", schema_name(&prefix, s)))
            .execute(&admin.pool)
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::Postgres {
        base: base.clone(),
        prefix: prefix.clone(),
    };
    let result = {
        let fleet = Fleet::start(dir.path(), &store).await;
        let (_, v) = get(&format!("{}/version", fleet.fibu.url), None).await;
        assert_eq!(v["database"], "postgres");
        sale_flow(&fleet).await;
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM {}.schema_migrations",
            schema_name(&prefix, "crm-service")
        ))
        .fetch_one(&admin.pool)
        .await
        .unwrap();
        n
    };
    for s in services {
        let _ = sqlx::query(&format!("DROP SCHEMA {} CASCADE", schema_name(&prefix, s)))
            .execute(&admin.pool)
            .await;
    }
    assert_eq!(result, 2);
    eprintln!("sale flow (postgres) took {:?}", started.elapsed());
}

/// Subscribers are not ready until the event-bus takes their subscription, and
/// kasse keeps sales in its outbox until the bus accepts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_wait_for_the_event_bus() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A loopback port with nothing listening (yet).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bus_url = vec![("EVENT_BUS_URL", format!("http://127.0.0.1:{port}"))];
    let fibu = Proc::start("fibu-service", d, &Store::Sqlite.url(d, "fibu"), &bus_url);
    let kasse = Proc::start("kasse-service", d, &Store::Sqlite.url(d, "kasse"), &bus_url);
    wait_ready(&kasse).await;

    let (status, body) = get(&format!("{}/ready", fibu.url), None).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["reason"].as_str().unwrap().starts_with("subscription"),
        "{body}"
    );
    let (status, health) = get(&format!("{}/health", fibu.url), None).await;
    assert_eq!(status, 200, "alive while not ready: {health}");

    let (status, sale) = post(
        &format!("{}/sales", kasse.url),
        &json!({"customer_id": 1, "items": [{"sku": "X", "qty": 3, "unit_price_cents": 100}]}),
        None,
    )
    .await;
    assert_eq!(status, 201, "{sale}");
    let gauge = r#"neuroerp_outbox_pending{service="kasse-service"}"#;
    assert_eq!(
        counter(&get_text(&format!("{}/metrics", kasse.url)).await, gauge),
        1
    );
    assert_eq!(
        post(
            &format!("{}/sales", kasse.url),
            &json!({"customer_id": 1, "items": []}),
            None
        )
        .await
        .0,
        422
    );

    let bus = Proc::start_on(port, "event-bus", d, &Store::Sqlite.url(d, "bus"), &[]);
    wait_ready(&bus).await;
    wait_ready(&fibu).await;
    eventually(
        "the outbox drained into the bus",
        Duration::from_secs(15),
        || {
            let url = format!("{}/events", bus.url);
            async move {
                let (_, e) = get(&url, None).await;
                (e.as_array()?.len() == 1).then_some(())
            }
        },
    )
    .await;
    let (_, events) = get(&format!("{}/events", bus.url), None).await;
    assert_eq!(events[0]["payload"]["sale_id"], sale["id"]);
    assert_eq!(events[0]["payload"]["total_cents"], 300);
    assert_eq!(
        events[0]["key"],
        format!("kasse-service:sale:{}", sale["id"])
    );
    let metrics = get_text(&format!("{}/metrics", kasse.url)).await;
    assert_eq!(counter(&metrics, gauge), 0);
}
