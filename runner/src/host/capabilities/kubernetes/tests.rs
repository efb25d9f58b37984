//! The session at the request level (kube-rs's own pattern): a mock
//! service stands in for the API server, so each test sees the exact
//! requests — method, path, query, body — and scripts the answers.

use std::pin::pin;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle};

use super::*;
use crate::pipeline::{ClusterSpec, KubeconfigSource, KubernetesGrant};

type Mock = Handle<Request<Body>, Response<Body>>;

fn session(plan_only: bool) -> (KubernetesSession, Mock) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let spec = ClusterSpec {
        kubeconfig: KubeconfigSource::InCluster,
        context: None,
        namespace: "neuroerp-staging".into(),
    };
    let cluster = Cluster::connected(kube::Client::new(service, "default"), spec, plan_only);
    let grant = KubernetesGrant {
        namespaces: ["neuroerp-staging".to_string()].into(),
        kinds: ["ConfigMap", "Deployment", "Namespace"]
            .map(String::from)
            .into(),
    };
    let session = KubernetesSession::new(
        Arc::new(cluster),
        grant,
        "deploy".into(),
        Arc::new(Masker::new(["s3cr3t-token"])),
    );
    (session, handle)
}

/// One request as the server sees it.
struct Seen {
    method: http::Method,
    path: String,
    query: String,
    content_type: String,
    body: Value,
}

async fn next(handle: &mut Mock, status: StatusCode, reply: Value) -> Seen {
    let mut handle = pin!(handle);
    let (request, send) = handle.next_request().await.expect("no request was sent");
    let (parts, body) = request.into_parts();
    let bytes = http_body_util::BodyExt::collect(body)
        .await
        .unwrap()
        .to_bytes();
    send.send_response(
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&reply).unwrap()))
            .unwrap(),
    );
    Seen {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        content_type: parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
           "reason": "NotFound", "message": "configmaps \"app-config\" not found"})
}

fn config_map(data: Value, rv: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "app-config", "namespace": "neuroerp-staging", "resourceVersion": rv,
                        "managedFields": [{"manager": "valero"}]},
           "data": data})
}

const MANIFEST: &str = r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-config"}, "data": {"LEVEL": "info"}}"#;

#[tokio::test]
async fn an_apply_reads_the_object_then_sends_a_server_side_apply_as_valero_unforced() {
    let (s, mut h) = session(false);
    let server = tokio::spawn(async move {
        let get = next(&mut h, StatusCode::NOT_FOUND, not_found()).await;
        let patch = next(
            &mut h,
            StatusCode::CREATED,
            config_map(json!({"LEVEL": "info"}), "1"),
        )
        .await;
        (get, patch)
    });
    let options = ApplyOptions {
        dry_run: false,
        force_conflicts: false,
    };
    let applied = s.apply(MANIFEST, options).await.unwrap();
    let (get, patch) = server.await.unwrap();
    assert_eq!(get.method, http::Method::GET);
    assert_eq!(
        get.path,
        "/api/v1/namespaces/neuroerp-staging/configmaps/app-config"
    );
    assert_eq!(patch.method, http::Method::PATCH);
    assert_eq!(patch.path, get.path);
    assert_eq!(patch.query, "&fieldManager=valero");
    assert_eq!(patch.content_type, "application/apply-patch+yaml");
    // The manifest as written, with the target's namespace filled in.
    assert_eq!(
        patch.body,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "app-config", "namespace": "neuroerp-staging"},
               "data": {"LEVEL": "info"}})
    );
    assert!(matches!(applied.change, Change::Created));
}

#[tokio::test]
async fn a_dry_run_and_a_forced_apply_say_so_in_the_query() {
    let (s, mut h) = session(false);
    let server = tokio::spawn(async move {
        next(
            &mut h,
            StatusCode::OK,
            config_map(json!({"LEVEL": "info"}), "4"),
        )
        .await;
        next(
            &mut h,
            StatusCode::OK,
            config_map(json!({"LEVEL": "debug"}), "4"),
        )
        .await
    });
    let options = ApplyOptions {
        dry_run: true,
        force_conflicts: true,
    };
    let applied = s.apply(MANIFEST, options).await.unwrap();
    let patch = server.await.unwrap();
    assert_eq!(patch.query, "&dryRun=All&force=true&fieldManager=valero");
    assert!(matches!(applied.change, Change::Configured));
    assert_eq!(applied.changed_fields, ["data.LEVEL"]);
}

#[tokio::test]
async fn while_planning_every_apply_is_a_dry_run_and_nothing_is_deleted_or_replaced() {
    let (s, mut h) = session(true);
    let server = tokio::spawn(async move {
        next(&mut h, StatusCode::NOT_FOUND, not_found()).await;
        let patch = next(&mut h, StatusCode::OK, config_map(json!({}), "1")).await;
        // Nothing else reaches the server.
        let mut h = pin!(h);
        (patch, h.next_request().await.is_none())
    });
    let options = ApplyOptions {
        dry_run: false,
        force_conflicts: false,
    };
    s.apply(MANIFEST, options).await.unwrap();
    let r = ObjectRef {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        namespace: String::new(),
        name: "app-config".into(),
    };
    let deleted = s.delete(&r).await.unwrap_err();
    assert!(
        matches!(&deleted, Error::Refused(x) if x.rule == "plan"),
        "{deleted:?}"
    );
    let replaced = s.replace(MANIFEST).await.unwrap_err();
    assert!(
        matches!(&replaced, Error::Refused(x) if x.rule == "plan"),
        "{replaced:?}"
    );
    drop(s);
    let (patch, nothing_more) = server.await.unwrap();
    assert!(patch.query.contains("dryRun=All"), "{}", patch.query);
    assert!(nothing_more);
}

#[tokio::test]
async fn a_conflict_answer_becomes_the_typed_conflict() {
    let (s, mut h) = session(false);
    let server = tokio::spawn(async move {
        next(
            &mut h,
            StatusCode::OK,
            config_map(json!({"LEVEL": "info"}), "4"),
        )
        .await;
        next(
            &mut h,
            StatusCode::CONFLICT,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 409,
                   "reason": "Conflict", "message": "Apply failed with 1 conflict",
                   "details": {"causes": [{"reason": "FieldManagerConflict",
                       "message": "conflict with \"ops-team\"", "field": ".data.LEVEL"}]}}),
        )
        .await;
    });
    let options = ApplyOptions {
        dry_run: false,
        force_conflicts: false,
    };
    let e = s.apply(MANIFEST, options).await.unwrap_err();
    server.await.unwrap();
    let Error::Conflict(c) = e else {
        panic!("{e:?}")
    };
    assert_eq!(
        (c[0].manager.as_str(), c[0].field.as_str()),
        ("ops-team", "data.LEVEL")
    );
}

#[tokio::test]
async fn a_restore_puts_the_snapshot_back_at_the_current_version() {
    let (s, mut h) = session(false);
    let server = tokio::spawn(async move {
        next(
            &mut h,
            StatusCode::OK,
            config_map(json!({"LEVEL": "debug", "NEW": "x"}), "9"),
        )
        .await;
        next(
            &mut h,
            StatusCode::OK,
            config_map(json!({"LEVEL": "info"}), "10"),
        )
        .await
    });
    let mut snapshot = config_map(json!({"LEVEL": "info"}), "5");
    snapshot["status"] = json!({});
    s.replace(&snapshot.to_string()).await.unwrap();
    let put = server.await.unwrap();
    assert_eq!(put.method, http::Method::PUT);
    assert_eq!(
        put.path,
        "/api/v1/namespaces/neuroerp-staging/configmaps/app-config"
    );
    // The whole snapshot (so `NEW` is gone again), at the version it replaces.
    assert_eq!(
        put.body,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "app-config", "namespace": "neuroerp-staging", "resourceVersion": "9"},
               "data": {"LEVEL": "info"}})
    );
}

#[tokio::test(start_paused = true)]
async fn waiting_for_a_rollout_polls_until_it_completes() {
    let (s, mut h) = session(false);
    let deployment = |ready: i64| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "fibu", "namespace": "neuroerp-staging", "generation": 2},
               "spec": {"replicas": 2},
               "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2,
                          "readyReplicas": ready, "availableReplicas": ready}})
    };
    let server = tokio::spawn(async move {
        let mut polls = 0;
        for ready in [0, 1, 2] {
            let seen = next(&mut h, StatusCode::OK, deployment(ready)).await;
            assert_eq!(
                seen.path,
                "/apis/apps/v1/namespaces/neuroerp-staging/deployments/fibu"
            );
            polls += 1;
        }
        polls
    });
    let r = s.wait_rollout("", "fibu", 60_000).await.unwrap();
    assert!(r.complete, "{r:?}");
    assert_eq!(server.await.unwrap(), 3);
}

#[tokio::test]
async fn answers_are_masked_before_they_reach_the_guest() {
    let (mut s, mut h) = session(false);
    let server = tokio::spawn(async move {
        next(
            &mut h,
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 500,
                   "reason": "InternalError", "message": "token s3cr3t-token rejected"}),
        )
        .await;
    });
    let r = ObjectRef {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        namespace: String::new(),
        name: "app-config".into(),
    };
    let e = kubernetes::Host::get(&mut s, r).await.unwrap().unwrap_err();
    server.await.unwrap();
    let Error::Failed(message) = e else {
        panic!("{e:?}")
    };
    assert!(!message.contains("s3cr3t-token"), "{message}");
}
