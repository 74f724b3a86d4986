//! Audit events mirrored into the application's own logs (`AuditTracingLayer::mirror`).

use std::sync::atomic::AtomicBool;

use audit_core::AuditEvent;

/// Whether recorded events are also logged with target `audit.mirror`.
pub(crate) static MIRROR: AtomicBool = AtomicBool::new(false);

/// Logs `event` as a `tracing` event with target `audit.mirror`.
pub(crate) fn mirror(event: &AuditEvent) {
    let ctx = event.context.as_ref();
    tracing::info!(
        target: "audit.mirror",
        event_type = event.event_type.as_str(),
        event_id = %event.id,
        result = event.result.map(|r| r.as_str()),
        request_id = ctx.and_then(|c| c.request_id.as_deref()),
        tenant = ctx.and_then(|c| c.organization_id.as_deref()),
        "{}",
        event.description.as_deref().unwrap_or("")
    );
}
