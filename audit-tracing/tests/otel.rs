//! With tracing-opentelemetry installed: the inbound `traceparent` parents the exported
//! request span, and audit events carry the ids of the span they were recorded in.
#![cfg(feature = "otel")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use audit_core::Auditor;
use audit_sinks::MemorySink;
use audit_tower::AuditLayer;
use audit_tracing::{AuditTracingLayer, audit};
use axum::Router;
use axum::body::Body;
use axum::routing::post;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tower::ServiceExt;
use tracing_subscriber::prelude::*;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[test]
fn inbound_traceparent_parents_the_exported_span_and_events_carry_its_ids() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let memory = MemorySink::new(100);
    let auditor = Auditor::builder().sink(memory.clone()).build().unwrap();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
        .with(AuditTracingLayer::new(auditor.clone()));
    let outgoing = Arc::new(Mutex::new(String::new()));
    let seen = outgoing.clone();
    let app = Router::new()
        .route(
            "/v1/vectors/delete",
            post(move || {
                let seen = seen.clone();
                async move {
                    tracing::info_span!("db.delete").in_scope(|| {
                        audit!(event_type = "data.vector.delete", target.id = "v1");
                    });
                    let mut h = http::HeaderMap::new();
                    audit_tower::propagate::inject_headers(&mut h);
                    *seen.lock().unwrap() = h["traceparent"].to_str().unwrap().to_owned();
                    "ok"
                }
            }),
        )
        .layer(AuditLayer::new(auditor.clone()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        rt.block_on(async {
            let req = http::Request::post("/v1/vectors/delete")
                .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
                .body(Body::empty())
                .unwrap();
            assert_eq!(app.oneshot(req).await.unwrap().status(), 200);
        })
    });
    auditor.shutdown_blocking(Duration::from_secs(5));
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let request = spans
        .iter()
        .find(|s| s.name == "audit.request")
        .expect("request span exported");
    let child = spans
        .iter()
        .find(|s| s.name == "db.delete")
        .expect("child span exported");
    assert_eq!(request.span_context.trace_id().to_string(), TRACE);
    assert_eq!(
        request.parent_span_id.to_string(),
        CALLER_SPAN,
        "the caller parents the request span"
    );
    assert_eq!(child.parent_span_id, request.span_context.span_id());
    let request_span = request.span_context.span_id().to_string();
    let child_span = child.span_context.span_id().to_string();

    let events = memory.events();
    let handler = events
        .iter()
        .find(|e| e.event_type.as_str() == "data.vector.delete")
        .unwrap();
    let ctx = handler.context.as_ref().unwrap();
    assert_eq!(ctx.trace_id.as_deref(), Some(TRACE));
    assert_eq!(
        ctx.span_id.as_deref(),
        Some(child_span.as_str()),
        "the span it was recorded in"
    );
    let layer_event = events
        .iter()
        .find(|e| e.event_type.as_str() != "data.vector.delete")
        .unwrap();
    let ctx = layer_event.context.as_ref().unwrap();
    assert_eq!(ctx.trace_id.as_deref(), Some(TRACE));
    assert_eq!(ctx.span_id.as_deref(), Some(request_span.as_str()));
    // Outgoing calls continue the trace from the exported request span.
    assert_eq!(
        *outgoing.lock().unwrap(),
        format!("00-{TRACE}-{request_span}-01")
    );
}
