//! The audit HTTP API end to end: routes, filters, paging, tenants, scopes, exports, errors,
//! and the audit trail of its own use.
#![cfg(feature = "api")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use audit_core::integrity::Tombstone;
use audit_core::store::{
    ChainPosition, ChainRow, DistinctField, Page, PurgeReport, Query, RetentionPolicy, Store,
    StoreError, StoreFuture, TenantScope,
};
use audit_core::{Actor, AuditEvent, Auditor, Outcome, Target, Timestamp};
use audit_sinks::{MemorySink, SqliteStore};
use audit_tower::AuditLayer;
use audit_tower::api::{
    ApiKeys, AuditApi, BasicClients, FirstOf, Principal, SCOPE_READ, SCOPE_WRITE,
};
use axum::Router;
use axum::body::Body;
use base64::Engine as _;
use http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

const BASE_MS: i64 = 1_750_000_000_000;

fn event(i: i64, tenant: &str, event_type: &str, actor: &str) -> AuditEvent {
    AuditEvent::builder(event_type)
        .timestamp(Timestamp::from_unix_millis(BASE_MS + i * 1000).unwrap())
        .organization_id(tenant)
        .actor(Actor::user(actor).with_email(format!("{actor}@example.com")))
        .target(Target::new("vector", format!("v-{i}")))
        .description(format!("event number {i}"))
        .result(Outcome::Success)
        .build()
        .unwrap()
}

struct Fixture {
    app: Router,
    trail: MemorySink,
    auditor: Auditor,
    store: Arc<SqliteStore>,
}

async fn fixture() -> Fixture {
    fixture_with(|api| api).await
}

async fn fixture_with(configure: impl FnOnce(AuditApi) -> AuditApi) -> Fixture {
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let mut events = Vec::new();
    for i in 0..30 {
        let t = [
            "auth.login.success",
            "data.vector.delete",
            "admin.api_key.create",
        ][i as usize % 3];
        events.push(Arc::new(event(
            i,
            "org-a",
            t,
            ["alice", "bob"][i as usize % 2],
        )));
    }
    for i in 0..10 {
        events.push(Arc::new(event(i, "org-b", "data.secret.read", "mallory")));
    }
    let formula = AuditEvent::builder("data.report.read")
        .organization_id("org-a")
        .actor(Actor::user("=cmd|' /C calc'!A0"))
        .description("quote \" comma , newline \n end")
        .timestamp(Timestamp::from_unix_millis(BASE_MS - 1000).unwrap())
        .build()
        .unwrap();
    events.push(Arc::new(formula));
    store.append(&events).await.unwrap();

    let trail = MemorySink::new(1000);
    let auditor = Auditor::builder().sink(trail.clone()).build().unwrap();
    let a_reader = Principal::new("api_key", "key-a")
        .tenant("org-a")
        .scope(SCOPE_READ);
    let authz = FirstOf::new()
        .or(BasicClients::new().client(
            "reporting",
            "s3cret",
            Principal::new("client", "reporting")
                .tenant("org-a")
                .scope(SCOPE_READ),
        ))
        .or(ApiKeys::new()
            .key("read-a", a_reader)
            .key(
                "write-a",
                Principal::new("api_key", "key-w")
                    .tenant("org-a")
                    .scope(SCOPE_READ)
                    .scope(SCOPE_WRITE),
            )
            .key(
                "multi",
                Principal::new("api_key", "key-m")
                    .tenant("org-a")
                    .tenant("org-b")
                    .scope(SCOPE_READ),
            )
            .key(
                "operator",
                Principal::new("user", "op").all_tenants().scope(SCOPE_READ),
            )
            .key(
                "no-scope",
                Principal::new("api_key", "key-n").tenant("org-a"),
            ));
    let app = configure(AuditApi::new(store.clone(), authz, auditor.clone())).router();
    Fixture {
        app,
        trail,
        auditor,
        store,
    }
}

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, http::HeaderMap, Vec<u8>) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), 64 << 20)
        .await
        .unwrap()
        .to_vec();
    (status, headers, body)
}

fn get(uri: &str, key: &str) -> Request<Body> {
    Request::get(uri)
        .header("authorization", format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap()
}

fn post(uri: &str, key: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

async fn json_call(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let (status, _, body) = call(app, req).await;
    (status, serde_json::from_slice(&body).unwrap())
}

async fn trail(f: &Fixture) -> Vec<Arc<AuditEvent>> {
    f.auditor.flush(Duration::from_secs(5)).await;
    f.trail.events()
}

#[tokio::test]
async fn list_filters_pages_and_summarises() {
    let f = fixture().await;
    let (status, body) = json_call(
        &f.app,
        get(
            "/api/audit/logs?eventType=data.*&actorId=alice&limit=3",
            "read-a",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // org-a data.vector.delete events are i = 1, 4, 7, …; alice has the even ones.
    assert_eq!(body["summary"]["totalEvents"], 5);
    assert_eq!(body["summary"]["byCategory"]["data"], 5);
    assert_eq!(body["logs"].as_array().unwrap().len(), 3);
    assert_eq!(body["pagination"]["hasMore"], true);
    assert_eq!(body["logs"][0]["description"], "event number 28");

    // Walk every page of the whole tenant: each event once, newest first.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let uri = match &cursor {
            Some(c) => format!("/api/audit/logs?limit=7&cursor={c}"),
            None => "/api/audit/logs?limit=7".to_owned(),
        };
        let (status, body) = json_call(&f.app, get(&uri, "read-a")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body["summary"]["totalEvents"], 31,
            "summary counts the set, not the page"
        );
        for e in body["logs"].as_array().unwrap() {
            assert_eq!(e["context"]["organizationId"], "org-a");
            seen.push(e["id"].as_str().unwrap().to_owned());
        }
        match body["pagination"]["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 31);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 31);

    // POST /search takes the same filters as JSON.
    let (status, body) = json_call(
        &f.app,
        post(
            "/api/audit/search",
            "read-a",
            r#"{"eventType": "*.create", "sort": "asc", "limit": 2, "q": "NUMBER 2"}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["logs"][0]["description"], "event number 2");
    assert_eq!(body["summary"]["totalEvents"], 5); // 2, 20, 23, 26, 29
}

#[tokio::test]
async fn bad_requests_are_400_with_codes() {
    let f = fixture().await;
    let cases = [
        (
            get(
                "/api/audit/logs?startTime=2025-01-02T00:00:00Z&endTime=2025-01-01T00:00:00Z",
                "read-a",
            ),
            "INVALID_TIME_RANGE",
        ),
        (
            get("/api/audit/logs?limit=1001", "read-a"),
            "INVALID_REQUEST",
        ),
        (
            get("/api/audit/logs?cursor=zzzz", "read-a"),
            "INVALID_REQUEST",
        ),
        (
            get("/api/audit/logs?actor=alice", "read-a"),
            "INVALID_REQUEST",
        ),
        (
            get("/api/audit/logs?startTime=today", "read-a"),
            "INVALID_REQUEST",
        ),
        (
            post("/api/audit/search", "read-a", "{not json"),
            "INVALID_REQUEST",
        ),
        (
            post("/api/audit/search", "read-a", r#"{"limit": -1}"#),
            "INVALID_REQUEST",
        ),
        (
            post(
                "/api/audit/search",
                "read-a",
                &format!("{{\"q\": \"{}\"}}", "x".repeat(70_000)),
            ),
            "INVALID_REQUEST",
        ),
        (
            post("/api/audit/export", "read-a", r#"{"format": "xlsx"}"#),
            "INVALID_REQUEST",
        ),
    ];
    for (req, code) in cases {
        let uri = req.uri().to_string();
        let (status, body) = json_call(&f.app, req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["error"]["code"], code, "{uri}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().len() > 5);
    }
}

#[tokio::test]
async fn authentication_and_scopes() {
    let f = fixture().await;
    let anon = Request::get("/api/audit/logs").body(Body::empty()).unwrap();
    let (status, headers, body) = call(&f.app, anon).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.contains_key("www-authenticate"));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "UNAUTHORIZED");

    let (status, _) = json_call(&f.app, get("/api/audit/logs", "wrong-key")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let basic = |pw: &str| {
        let creds = base64::engine::general_purpose::STANDARD.encode(format!("reporting:{pw}"));
        Request::get("/api/audit/logs")
            .header("authorization", format!("Basic {creds}"))
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(json_call(&f.app, basic("s3cret")).await.0, StatusCode::OK);
    assert_eq!(
        json_call(&f.app, basic("guess")).await.0,
        StatusCode::UNAUTHORIZED
    );

    let (status, body) = json_call(&f.app, get("/api/audit/logs", "no-scope")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "FORBIDDEN");

    // Delete needs audit:write.
    let id = f
        .store
        .search(&Query::new(audit_core::store::Filter::scoped(
            TenantScope::tenant("org-a"),
        )))
        .await
        .unwrap()
        .events[0]
        .id
        .to_string();
    let del = |key: &str| {
        Request::delete(format!("/api/audit/logs/{id}"))
            .header("authorization", format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(call(&f.app, del("read-a")).await.0, StatusCode::FORBIDDEN);
    assert_eq!(call(&f.app, del("write-a")).await.0, StatusCode::NO_CONTENT);
    assert_eq!(call(&f.app, del("write-a")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        json_call(&f.app, get(&format!("/api/audit/logs/{id}"), "read-a"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    let events = trail(&f).await;
    let deletes: Vec<_> = events
        .iter()
        .filter(|e| e.event_type.as_str() == "admin.audit_log.delete")
        .collect();
    assert_eq!(deletes.len(), 3);
    assert_eq!(deletes[0].result, Some(Outcome::Denied));
    assert_eq!(deletes[1].result, Some(Outcome::Success));
    assert_eq!(
        deletes[1].target.as_ref().unwrap().id.as_deref(),
        Some(id.as_str())
    );
    assert_eq!(
        deletes[1].actor.as_ref().unwrap().id.as_deref(),
        Some("key-w")
    );
    assert_eq!(deletes[2].result, Some(Outcome::Failure));
    let denied_reads = events
        .iter()
        .filter(|e| e.event_type.as_str() == "admin.audit_log.read")
        .filter(|e| e.result == Some(Outcome::Denied))
        .count();
    assert_eq!(
        denied_reads, 4,
        "anonymous, wrong key, wrong password, no scope"
    );
}

#[tokio::test]
async fn tenants_never_leak() {
    let f = fixture().await;
    // org-a's reader sees no org-b event in any view.
    let (_, body) = json_call(&f.app, get("/api/audit/logs?limit=1000", "read-a")).await;
    assert!(
        body["logs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["context"]["organizationId"] == "org-a")
    );
    let (_, body) = json_call(&f.app, get("/api/audit/logs?actorId=mallory", "read-a")).await;
    assert_eq!(body["summary"]["totalEvents"], 0);
    let b_id = f
        .store
        .search(&Query::new(audit_core::store::Filter::scoped(
            TenantScope::tenant("org-b"),
        )))
        .await
        .unwrap()
        .events[0]
        .id
        .to_string();
    let (status, _) = json_call(&f.app, get(&format!("/api/audit/logs/{b_id}"), "read-a")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another tenant's event looks absent"
    );

    // X-Org-ID narrows, never widens.
    let with_org = |key: &str, org: &str| {
        let mut r = get("/api/audit/logs", key);
        r.headers_mut().insert("x-org-id", org.parse().unwrap());
        r
    };
    let (status, body) = json_call(&f.app, with_org("read-a", "org-b")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["message"], "Access denied to tenant 'org-b'");
    let (_, body) = json_call(&f.app, get("/api/audit/logs", "multi")).await;
    assert_eq!(body["summary"]["totalEvents"], 41);
    let (_, body) = json_call(&f.app, with_org("multi", "org-b")).await;
    assert_eq!(body["summary"]["totalEvents"], 10);

    // The cross-tenant view.
    let (status, _) = json_call(&f.app, get("/api/audit/tenants/org-b/logs", "read-a")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = json_call(&f.app, get("/api/audit/tenants/org-b/logs", "operator")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["summary"]["totalEvents"], 10);

    // Filter values are scoped too.
    let (_, body) = json_call(&f.app, get("/api/audit/filters", "read-a")).await;
    let types: Vec<&str> = body["eventTypes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(types.contains(&"auth.login.success"));
    assert!(!types.contains(&"data.secret.read"));
    assert_eq!(body["limit"]["max"], 1000);
}

#[tokio::test]
async fn exports_stream_every_format_and_are_rate_limited() {
    let f = fixture_with(|api| api.export_rate_limit(3, Duration::from_secs(3600))).await;
    let (status, headers, body) = call(
        &f.app,
        post(
            "/api/audit/export",
            "read-a",
            r#"{"format": "csv", "filters": {"eventType": "data.report.read"}}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains(".csv")
    );
    let text = String::from_utf8(body).unwrap();
    let mut lines = text.split("\r\n");
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("id,timestamp,eventType,category")
    );
    assert!(
        text.contains("\"'=cmd|' /C calc'!A0\""),
        "formula neutralised: {text}"
    );
    assert!(text.contains("\"quote \"\" comma , newline \n end\""));

    let (_, _, body) = call(
        &f.app,
        post("/api/audit/export", "read-a", r#"{"format": "ndjson"}"#),
    )
    .await;
    let lines: Vec<AuditEvent> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 31);
    assert!(lines.iter().all(|e| e.organization_id() == Some("org-a")));

    let (_, _, body) = call(
        &f.app,
        post(
            "/api/audit/export",
            "read-a",
            r#"{"format": "json", "filters": {"actorId": "bob", "sort": "asc"}}"#,
        ),
    )
    .await;
    let events: Vec<AuditEvent> = serde_json::from_slice(&body).unwrap();
    assert_eq!(events.len(), 15);
    assert!(events.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));

    // The fourth export within the window is refused; another tenant is unaffected.
    let (status, headers, body) = call(
        &f.app,
        post("/api/audit/export", "read-a", r#"{"format": "json"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.contains_key("retry-after"));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    let mut other = post("/api/audit/export", "multi", r#"{"format": "json"}"#);
    other
        .headers_mut()
        .insert("x-org-id", "org-b".parse().unwrap());
    assert_eq!(call(&f.app, other).await.0, StatusCode::OK);

    let exports: Vec<_> = trail(&f)
        .await
        .into_iter()
        .filter(|e| e.event_type.as_str() == "admin.audit_log.export")
        .collect();
    assert_eq!(exports.len(), 5);
    assert_eq!(exports[0].details["format"], "csv");
    assert_eq!(
        exports[0].details["filters"],
        json!({"eventType": "data.report.read"})
    );
    assert_eq!(exports[3].result, Some(Outcome::Denied));
}

#[tokio::test]
async fn reads_are_audited_on_the_layer_event_when_inside_an_audit_layer() {
    let f = fixture().await;
    let layer_sink = MemorySink::new(100);
    let layer_auditor = Auditor::builder().sink(layer_sink.clone()).build().unwrap();
    let app = f.app.clone().layer(AuditLayer::new(layer_auditor.clone()));
    let (status, _) = json_call(&app, get("/api/audit/logs?actorId=alice", "read-a")).await;
    assert_eq!(status, StatusCode::OK);
    layer_auditor.flush(Duration::from_secs(5)).await;
    let events = layer_sink.events();
    assert_eq!(events.len(), 1, "one event per call");
    let e = &events[0];
    assert_eq!(e.event_type.as_str(), "admin.audit_log.read");
    assert_eq!(e.actor.as_ref().unwrap().id.as_deref(), Some("key-a"));
    assert_eq!(e.organization_id(), Some("org-a"));
    assert_eq!(e.details["filters"], json!({"actorId": "alice"}));
    assert_eq!(e.details["returned"], 15);
    assert!(e.context.as_ref().unwrap().request_id.is_some());
    assert!(trail(&f).await.is_empty(), "not recorded twice");
}

/// A store that always fails, to show what clients and the trail see.
struct Broken;

impl Store for Broken {
    fn name(&self) -> &str {
        "broken"
    }
    fn append<'a>(&'a self, _: &'a [Arc<AuditEvent>]) -> StoreFuture<'a, u64> {
        Box::pin(async { Err(StoreError::unavailable("disk on fire")) })
    }
    fn search<'a>(&'a self, _: &'a Query) -> StoreFuture<'a, Page> {
        Box::pin(async { Err(StoreError::unavailable("disk on fire")) })
    }
    fn get<'a>(&'a self, _: &'a str, _: &'a TenantScope) -> StoreFuture<'a, Option<AuditEvent>> {
        Box::pin(async { Err(StoreError::unavailable("disk on fire")) })
    }
    fn delete<'a>(&'a self, _: &'a str, _: &'a TenantScope, _: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async { Err(StoreError::unavailable("disk on fire")) })
    }
    fn chain_rows<'a>(
        &'a self,
        _: Option<&'a ChainPosition>,
        _: usize,
    ) -> StoreFuture<'a, Vec<ChainRow>> {
        Box::pin(async { Err(StoreError::unavailable("disk on fire")) })
    }
    fn tombstones<'a>(&'a self) -> StoreFuture<'a, Vec<Tombstone>> {
        Box::pin(async { Err(StoreError::unavailable("disk on fire")) })
    }
    fn purge<'a>(&'a self, _: &'a RetentionPolicy, _: Timestamp) -> StoreFuture<'a, PurgeReport> {
        Box::pin(async { Err(StoreError::unavailable("disk on fire")) })
    }
    fn distinct<'a>(
        &'a self,
        _: DistinctField,
        _: &'a TenantScope,
        _: usize,
    ) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async { Err(StoreError::unavailable("disk on fire")) })
    }
}

#[tokio::test]
async fn store_failures_are_500_without_internals() {
    let sink = MemorySink::new(100);
    let auditor = Auditor::builder().sink(sink.clone()).build().unwrap();
    let keys = ApiKeys::new().key(
        "k",
        Principal::new("api_key", "k")
            .all_tenants()
            .scope(SCOPE_READ),
    );
    let app = AuditApi::new(Arc::new(Broken), keys, auditor.clone()).router();
    for req in [
        get("/api/audit/logs", "k"),
        get("/api/audit/logs/abc", "k"),
        get("/api/audit/filters", "k"),
    ] {
        let (status, body) = json_call(&app, req).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], "INTERNAL_ERROR");
        assert!(!body.to_string().contains("fire"));
    }
    // An export that fails after the headers were sent aborts the body.
    let resp = app
        .clone()
        .oneshot(post("/api/audit/export", "k", r#"{"format": "json"}"#))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .is_err()
    );
    auditor.flush(Duration::from_secs(5)).await;
    let errors = sink
        .events()
        .iter()
        .filter(|e| e.event_type.as_str() == "system.audit_api.error")
        .count();
    assert_eq!(errors, 4);
}

#[tokio::test]
async fn live_stream_sends_matching_events_of_the_callers_tenant_only() {
    use audit_core::live::LiveFeed;
    use http_body_util::BodyExt;

    let feed = LiveFeed::new(64);
    let publisher = Auditor::builder().sink(feed.clone()).build().unwrap();
    let f = fixture_with(|api| api.live(feed.clone())).await;

    // Without a feed the route is absent.
    let (status, _) = json_call(&fixture().await.app, get("/api/audit/stream", "read-a")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = json_call(&f.app, get("/api/audit/stream?limit=5", "read-a")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let resp = f
        .app
        .clone()
        .oneshot(get("/api/audit/stream?eventType=data.*", "read-a"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    for e in [
        event(100, "org-b", "data.secret.read", "mallory"),
        event(101, "org-a", "auth.login.success", "alice"),
        event(102, "org-a", "data.vector.delete", "alice"),
    ] {
        publisher.record(e).unwrap();
    }
    publisher.flush(Duration::from_secs(5)).await;
    let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("an event arrives")
        .unwrap()
        .unwrap();
    let text = String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap();
    assert!(text.starts_with("id: "), "{text}");
    assert!(text.contains("event: audit\n"), "{text}");
    let data: Value =
        serde_json::from_str(text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap()).unwrap();
    assert_eq!(data["eventType"], "data.vector.delete");
    assert_eq!(data["context"]["organizationId"], "org-a");
    // Nothing else was for this caller.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), body.frame())
            .await
            .is_err()
    );
    drop(body);

    let streamed = trail(&f)
        .await
        .into_iter()
        .filter(|e| e.details.get("endpoint").and_then(Value::as_str) == Some("GET /stream"))
        .count();
    assert_eq!(
        streamed, 1,
        "opening the stream is audited (a malformed request reads nothing)"
    );
}

/// A store whose chain reads wait until released, to hold a verification in flight.
struct Held {
    inner: SqliteStore,
    entered: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Semaphore>,
}

impl Store for Held {
    fn name(&self) -> &str {
        "held"
    }
    fn append<'a>(&'a self, events: &'a [Arc<AuditEvent>]) -> StoreFuture<'a, u64> {
        self.inner.append(events)
    }
    fn search<'a>(&'a self, q: &'a Query) -> StoreFuture<'a, Page> {
        self.inner.search(q)
    }
    fn get<'a>(&'a self, id: &'a str, s: &'a TenantScope) -> StoreFuture<'a, Option<AuditEvent>> {
        self.inner.get(id, s)
    }
    fn delete<'a>(&'a self, id: &'a str, s: &'a TenantScope, by: &'a str) -> StoreFuture<'a, bool> {
        self.inner.delete(id, s, by)
    }
    fn purge<'a>(&'a self, p: &'a RetentionPolicy, now: Timestamp) -> StoreFuture<'a, PurgeReport> {
        self.inner.purge(p, now)
    }
    fn chain_rows<'a>(
        &'a self,
        after: Option<&'a ChainPosition>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<ChainRow>> {
        Box::pin(async move {
            self.entered.notify_one();
            let _go = self.release.acquire().await;
            self.inner.chain_rows(after, limit).await
        })
    }
    fn tombstones<'a>(&'a self) -> StoreFuture<'a, Vec<Tombstone>> {
        self.inner.tombstones()
    }
    fn distinct<'a>(
        &'a self,
        f: DistinctField,
        s: &'a TenantScope,
        limit: usize,
    ) -> StoreFuture<'a, Vec<String>> {
        self.inner.distinct(f, s, limit)
    }
}

/// `GET` over a real connection: the status line's code.
async fn status_over_tcp(addr: std::net::SocketAddr, path: &str, key: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!(
            "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\nauthorization: Bearer {key}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    raw.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_verification_runs_at_a_time_and_only_for_operators() {
    let entered = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let store = Arc::new(Held {
        inner: SqliteStore::in_memory().unwrap(),
        entered: entered.clone(),
        release: release.clone(),
    });
    let auditor = Auditor::builder().build().unwrap();
    let keys = ApiKeys::new()
        .key(
            "ops",
            Principal::new("api_key", "ops")
                .all_tenants()
                .scope(SCOPE_READ),
        )
        .key(
            "acme",
            Principal::new("api_key", "acme")
                .tenant("acme")
                .scope(SCOPE_READ),
        );
    let app = AuditApi::new(store, keys, auditor).router::<()>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    assert_eq!(
        status_over_tcp(addr, "/api/audit/verify", "acme").await,
        403
    );
    let first = tokio::spawn(status_over_tcp(addr, "/api/audit/verify", "ops"));
    entered.notified().await;
    // The first is reading the store: a second waits its turn elsewhere.
    assert_eq!(status_over_tcp(addr, "/api/audit/verify", "ops").await, 429);
    release.add_permits(100);
    assert_eq!(first.await.unwrap(), 200);
    assert_eq!(status_over_tcp(addr, "/api/audit/verify", "ops").await, 200);
}
