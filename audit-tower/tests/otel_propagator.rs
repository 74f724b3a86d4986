//! When the application installed an OpenTelemetry propagator, the layer reads trace context
//! through it (here a test propagator with its own header), not through its own parser.
//! Its own binary: the global propagator is process-wide.

#![cfg(feature = "otel-propagator")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::time::Duration;

use audit_core::Auditor;
use audit_sinks::MemorySink;
use audit_tower::AuditLayer;
use axum::Router;
use axum::body::Body;
use axum::routing::get;
use opentelemetry::Context;
use opentelemetry::propagation::{
    Extractor, Injector, TextMapPropagator, text_map_propagator::FieldIter,
};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tower::ServiceExt;

/// Reads `x-test-trace: <32 hex>` — a format only this propagator knows.
#[derive(Debug)]
struct TestPropagator {
    fields: Vec<String>,
}

impl TextMapPropagator for TestPropagator {
    fn inject_context(&self, _cx: &Context, _injector: &mut dyn Injector) {}

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let Some(trace) = extractor
            .get("x-test-trace")
            .and_then(|v| TraceId::from_hex(v).ok())
        else {
            return cx.clone();
        };
        let sc = SpanContext::new(
            trace,
            SpanId::from_hex("1111111111111111").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        cx.with_remote_span_context(sc)
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(&self.fields)
    }
}

#[tokio::test]
async fn an_installed_propagator_is_used() {
    opentelemetry::global::set_text_map_propagator(TestPropagator {
        fields: vec!["x-test-trace".into()],
    });
    let memory = MemorySink::new(10);
    let auditor = Auditor::builder().sink(memory.clone()).build().unwrap();
    let app = Router::new()
        .route("/v1/x", get(|| async { "x" }))
        .layer(AuditLayer::new(auditor.clone()));
    app.oneshot(
        http::Request::get("/v1/x")
            .header("x-test-trace", "0af7651916cd43dd8448eb211c80319c")
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert!(auditor.flush(Duration::from_secs(5)).await);
    let ctx = memory.events()[0].context.clone().unwrap();
    assert_eq!(
        ctx.trace_id.as_deref(),
        Some("0af7651916cd43dd8448eb211c80319c")
    );
    assert_ne!(
        ctx.span_id.as_deref(),
        Some("1111111111111111"),
        "our own span id"
    );
}
