//! `audit!` in handlers behind the `AuditLayer`: request context inherited, spawned work,
//! plain `tracing` events with target `audit`, and application filters that must not drop
//! audit events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

mod common;

use audit_core::{Actor, AuditEvent, Auditor, Outcome};
use audit_sinks::MemorySink;
use audit_tower::{AuditContext, AuditLayer};
use audit_tracing::{AuditTracingLayer, audit};
use axum::body::Body;
use axum::extract::{Path, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::post;
use axum::{Extension, Router};
use common::Capture;
use tower::ServiceExt;
use tracing::Instrument;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::prelude::*;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Auth middleware, inside the audit layer: the actor and tenant go on the audit context.
async fn auth(req: Request, next: Next) -> Response {
    if let Some(ctx) = req.extensions().get::<AuditContext>() {
        ctx.set_actor(Actor::user("user-7").with_email("seven@acme.test"));
        ctx.set_organization_id("acme");
    }
    next.run(req).await
}

/// A bulk import: the handler knows the counts the route cannot.
async fn import(
    Path(index): Path<String>,
    Extension(ctx): Extension<AuditContext>,
) -> &'static str {
    let (imported, rejected) = (120u32, 3u32);
    audit!(
        event_type = "data.vector.import",
        target.kind = "index",
        target.id = %index,
        details.imported = imported,
        details.rejected = rejected,
        result = Outcome::Success,
        "Imported {imported} vectors into {index}"
    );
    // The request's own event still happens; the handler can skip it when its event says all.
    ctx.skip();
    "ok"
}

/// Work spawned from a handler: instrumented, it keeps the request; bare, it does not.
async fn spawn_work() -> &'static str {
    let span = tracing::info_span!("reindex");
    tokio::spawn(
        async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            audit!(
                event_type = "data.index.rebuild",
                "Rebuilt in the background"
            );
        }
        .instrument(span),
    );
    tokio::spawn(async {
        audit!(event_type = "data.index.orphan", "No request here");
    });
    "started"
}

async fn plain_tracing() -> &'static str {
    tracing::info!(
        target: "audit",
        event_type = "admin.config.change",
        target.kind = "config",
        target.id = "retention",
        days = 30u64,
        "Changed retention"
    );
    tracing::info!(target: "audit", days = 1u64, "no event type");
    "ok"
}

fn app(auditor: &Auditor) -> Router {
    Router::new()
        .route("/v1/indexes/{index}/import", post(import))
        .route("/v1/spawn", post(spawn_work))
        .route("/v1/plain", post(plain_tracing))
        .layer(middleware::from_fn(auth))
        .layer(AuditLayer::new(auditor.clone()))
}

async fn call(app: &Router, uri: &str) -> String {
    let req = http::Request::post(uri)
        .header("traceparent", TRACEPARENT)
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.headers()["x-request-id"].to_str().unwrap().to_owned()
}

fn by_type<'a>(events: &'a [Arc<AuditEvent>], t: &str) -> Vec<&'a Arc<AuditEvent>> {
    events
        .iter()
        .filter(|e| e.event_type.as_str() == t)
        .collect()
}

fn check_request_context(e: &AuditEvent, request_id: &str) {
    let ctx = e.context.as_ref().unwrap();
    assert_eq!(ctx.request_id.as_deref(), Some(request_id));
    assert_eq!(
        ctx.trace_id.as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert_eq!(ctx.organization_id.as_deref(), Some("acme"));
    assert_eq!(e.actor.as_ref().unwrap().id.as_deref(), Some("user-7"));
}

#[tokio::test]
async fn handler_events_inherit_the_request_without_any_subscriber() {
    let memory = MemorySink::new(100);
    let auditor = Auditor::builder().sink(memory.clone()).build().unwrap();
    let rid = call(&app(&auditor), "/v1/indexes/products/import").await;
    auditor.flush(Duration::from_secs(5)).await;
    let events = memory.events();
    assert_eq!(
        events.len(),
        1,
        "the handler's event only (the request's was skipped)"
    );
    let e = &events[0];
    assert_eq!(e.event_type.as_str(), "data.vector.import");
    check_request_context(e, &rid);
    assert_eq!(e.target.as_ref().unwrap().id.as_deref(), Some("products"));
    assert_eq!(e.details["imported"], 120);
    assert_eq!(e.details["rejected"], 3);
    assert_eq!(e.result, Some(Outcome::Success));
    assert_eq!(
        e.description.as_deref(),
        Some("Imported 120 vectors into products")
    );
}

/// Every way an application commonly filters its logs; none may drop an audit event.
#[test]
fn application_filters_never_drop_audit_events() {
    type Install = fn() -> tracing::Dispatch;
    let setups: [(&str, Install); 5] = [
        ("global EnvFilter warn", || {
            tracing_subscriber::registry()
                .with(EnvFilter::new("warn"))
                .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink))
                .into()
        }),
        ("per-layer filter warn", || {
            tracing_subscriber::registry()
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(std::io::sink)
                        .with_filter(LevelFilter::WARN),
                )
                .into()
        }),
        ("global LevelFilter OFF", || {
            tracing_subscriber::registry()
                .with(LevelFilter::OFF)
                .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink))
                .into()
        }),
        ("no subscriber at all", || tracing::Dispatch::none()),
        ("audit layer behind a warn EnvFilter", || {
            tracing_subscriber::registry()
                .with(EnvFilter::new("warn"))
                .with(AuditTracingLayer::new(Auditor::builder().build().unwrap()))
                .into()
        }),
    ];
    for (name, install) in setups {
        let memory = MemorySink::new(100);
        let auditor = Auditor::builder().sink(memory.clone()).build().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dispatch = install();
        let rid = tracing::dispatcher::with_default(&dispatch, || {
            rt.block_on(call(&app(&auditor), "/v1/indexes/docs/import"))
        });
        auditor.shutdown_blocking(Duration::from_secs(5));
        let events = memory.events();
        let imports = by_type(&events, "data.vector.import");
        assert_eq!(imports.len(), 1, "{name}");
        check_request_context(imports[0], &rid);
    }
}

#[test]
fn spawned_work_instrumented_with_a_request_span_keeps_the_request() {
    let memory = MemorySink::new(100);
    let auditor = Auditor::builder().sink(memory.clone()).build().unwrap();
    let subscriber = tracing_subscriber::registry().with(AuditTracingLayer::new(auditor.clone()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rid = tracing::subscriber::with_default(subscriber, || {
        rt.block_on(async {
            let rid = call(&app(&auditor), "/v1/spawn").await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            rid
        })
    });
    auditor.shutdown_blocking(Duration::from_secs(5));
    let events = memory.events();
    let rebuilt = by_type(&events, "data.index.rebuild");
    assert_eq!(rebuilt.len(), 1);
    check_request_context(rebuilt[0], &rid);
    // A task spawned without the span has no request: its event goes to the global auditor
    // (the first layer built in this test process), never with this request's context.
    assert!(by_type(&events, "data.index.orphan").iter().all(|e| {
        e.context
            .as_ref()
            .and_then(|c| c.request_id.as_ref())
            .is_none()
    }));
}

#[test]
fn plain_tracing_events_with_target_audit_become_audit_events() {
    let memory = MemorySink::new(100);
    let auditor = Auditor::builder().sink(memory.clone()).build().unwrap();
    let logged = Capture::default();
    let subscriber = tracing_subscriber::registry()
        .with(logged.fmt_layer())
        .with(AuditTracingLayer::new(auditor.clone()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rid = tracing::subscriber::with_default(subscriber, || {
        rt.block_on(call(&app(&auditor), "/v1/plain"))
    });
    auditor.shutdown_blocking(Duration::from_secs(5));
    let events = memory.events();
    let change = by_type(&events, "admin.config.change");
    assert_eq!(change.len(), 1);
    let e = change[0];
    check_request_context(e, &rid);
    assert_eq!(e.target.as_ref().unwrap().id.as_deref(), Some("retention"));
    assert_eq!(e.details["days"], 30);
    assert_eq!(e.description.as_deref(), Some("Changed retention"));
    let invalid = by_type(&events, "system.audit.invalid_event");
    assert_eq!(
        invalid.len(),
        1,
        "an audit-target event without event_type is reported"
    );
    // The request span is in the application's logs, with its declared fields.
    let text = logged.text();
    assert!(text.contains("audit.request"), "{text}");
    assert!(
        text.contains(&format!("request_id=\"{rid}\"")) || text.contains(&rid),
        "{text}"
    );
}

#[tokio::test]
async fn an_invalid_event_type_is_recorded_as_such() {
    let memory = MemorySink::new(100);
    let auditor = Auditor::builder().sink(memory.clone()).build().unwrap();
    let app = Router::new()
        .route(
            "/x",
            post(|| async {
                audit!(event_type = "Not A Type", count = 1);
                "ok"
            }),
        )
        .layer(AuditLayer::new(auditor.clone()));
    let req = http::Request::post("/x").body(Body::empty()).unwrap();
    app.oneshot(req).await.unwrap();
    auditor.flush(Duration::from_secs(5)).await;
    let events = memory.events();
    let invalid = by_type(&events, "system.audit.invalid_event");
    assert_eq!(invalid.len(), 1);
    assert!(
        invalid[0].details["error"]
            .as_str()
            .unwrap()
            .contains("Not A Type")
    );
    assert!(
        invalid[0].details["callsite"]
            .as_str()
            .unwrap()
            .contains("handler.rs")
    );
}
