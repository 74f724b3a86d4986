//! The request span (feature `tracing`): one `audit.request` span per request, entered while
//! the inner service runs, so the application's own spans and logs nest under it.
//!
//! Its fields are declared up front (recording an undeclared field silently does nothing):
//! `request_id`, `trace_id`, `span_id`, `http.method`, `http.route`, and `actor_id` and
//! `tenant` left empty for the application's authentication to record.
//!
//! With the `otel` feature and `tracing-opentelemetry` installed, the span's OpenTelemetry
//! parent is set from the inbound trace context *before* the span is first entered (once
//! entered it is started and its parent can no longer change), and the request then adopts
//! the exported span's ids.

use http::Request;
use tracing::field::Empty;

use crate::request_id::RequestId;
use crate::trace_context::TraceContext;

/// Opens the request span; returns it with the trace context to use from now on.
pub(crate) fn request_span<B>(
    req: &Request<B>,
    request_id: &RequestId,
    trace: TraceContext,
) -> (tracing::Span, TraceContext) {
    let span = tracing::info_span!(
        "audit.request",
        request_id = request_id.as_str(),
        trace_id = trace.trace_id(),
        span_id = trace.span_id(),
        http.method = req.method().as_str(),
        http.route = Empty,
        actor_id = Empty,
        tenant = Empty,
    );
    #[cfg(feature = "otel")]
    let trace = otel::adopt(&span, trace);
    (span, trace)
}

#[cfg(feature = "otel")]
mod otel {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use crate::trace_context::TraceContext;

    /// Parents `span` on the inbound trace, then takes the exported span's ids.
    pub(super) fn adopt(span: &tracing::Span, mut trace: TraceContext) -> TraceContext {
        if span.is_disabled() {
            return trace;
        }
        if let Some(parent) = trace.parent_span_id()
            && let (Ok(trace_id), Ok(parent_id)) = (
                TraceId::from_hex(trace.trace_id()),
                SpanId::from_hex(parent),
            )
        {
            let flags = if trace.is_sampled() {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            };
            let remote = SpanContext::new(trace_id, parent_id, flags, true, TraceState::default());
            // Fails only when no OpenTelemetry layer is installed: then there is no exported
            // span to agree with, and the request keeps its own ids.
            let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
        }
        let cx = span.context();
        let otel = cx.span();
        let sc = otel.span_context();
        if sc.is_valid() {
            trace.adopt(&sc.trace_id().to_string(), &sc.span_id().to_string());
        }
        trace
    }
}
