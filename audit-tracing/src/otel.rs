//! OpenTelemetry ids of the current span (feature `otel`).
//!
//! With `tracing-opentelemetry` installed by the application, the current span's trace and
//! span ids are the ones exported to the tracing backend, so they replace the request's own
//! ids on the event: a trace view and the audit trail point at the same span. Without the
//! feature, or outside an OpenTelemetry span, the builder is returned unchanged.

use audit_core::AuditEvent;
#[cfg(feature = "otel")]
use audit_core::Context;

/// Sets the trace and span id of the current OpenTelemetry span, when there is one.
#[cfg(feature = "otel")]
pub(crate) fn current_ids(event: &mut AuditEvent) {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    let span = tracing::Span::current();
    if span.is_disabled() {
        return;
    }
    let cx = span.context();
    let otel = cx.span();
    let sc = otel.span_context();
    if sc.is_valid() {
        let ctx = event.context.get_or_insert_with(Context::default);
        ctx.trace_id = Some(sc.trace_id().to_string().into());
        ctx.span_id = Some(sc.span_id().to_string().into());
    }
}

/// Without the `otel` feature there are no OpenTelemetry ids to add.
#[cfg(not(feature = "otel"))]
pub(crate) fn current_ids(_event: &mut AuditEvent) {}
