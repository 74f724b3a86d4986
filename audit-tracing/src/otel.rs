//! OpenTelemetry ids of the current span (feature `otel`).
//!
//! With `tracing-opentelemetry` installed by the application, the current span's trace and
//! span ids are the ones exported to the tracing backend, so they replace the request's own
//! ids on the event: a trace view and the audit trail point at the same span. Without the
//! feature, or outside an OpenTelemetry span, the builder is returned unchanged.

use audit_core::AuditEventBuilder;

/// Sets the trace and span id of the current OpenTelemetry span, when there is one.
#[cfg(feature = "otel")]
pub(crate) fn current_ids(builder: AuditEventBuilder) -> AuditEventBuilder {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    let span = tracing::Span::current();
    if span.is_disabled() {
        return builder;
    }
    let cx = span.context();
    let otel = cx.span();
    let sc = otel.span_context();
    if sc.is_valid() {
        builder
            .trace_id(sc.trace_id().to_string())
            .span_id(sc.span_id().to_string())
    } else {
        builder
    }
}

/// Without the `otel` feature there are no OpenTelemetry ids to add.
#[cfg(not(feature = "otel"))]
pub(crate) fn current_ids(builder: AuditEventBuilder) -> AuditEventBuilder {
    builder
}
