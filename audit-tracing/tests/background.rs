//! Outside any request: the global auditor, and what happens when there is none. One test per
//! process state, so this file keeps the process-wide settings to itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

mod common;

use audit_core::{Auditor, Outcome};
use audit_sinks::MemorySink;
use audit_tracing::{AuditTracingLayer, audit};
use common::Capture;
use tracing_subscriber::prelude::*;

#[test]
fn background_jobs_use_the_global_auditor_and_mirroring_does_not_loop() {
    // Before any auditor exists, an event cannot be routed: counted and warned about.
    let before = audit_tracing::unrouted_events();
    audit!(event_type = "data.report.generate", "too early");
    assert_eq!(audit_tracing::unrouted_events(), before + 1);

    let memory = MemorySink::new(100);
    let auditor = Auditor::builder().sink(memory.clone()).build().unwrap();
    let logged = Capture::default();
    let subscriber = tracing_subscriber::registry()
        .with(logged.fmt_layer())
        .with(AuditTracingLayer::new(auditor.clone()).mirror(true));
    tracing::subscriber::with_default(subscriber, || {
        // A nightly job: no request, no span.
        let purged = 42u64;
        audit!(
            event_type = "data.session.purge",
            details.purged = purged,
            result = Outcome::Success,
            "Purged {purged} expired sessions"
        );
    });
    auditor.shutdown_blocking(Duration::from_secs(5));
    let events = memory.events();
    assert_eq!(events.len(), 1, "mirroring must not feed back: {events:?}");
    let e = &events[0];
    assert_eq!(e.event_type.as_str(), "data.session.purge");
    assert_eq!(e.details["purged"], 42);
    assert!(
        e.context
            .as_ref()
            .and_then(|c| c.request_id.as_ref())
            .is_none()
    );
    let text = logged.text();
    assert!(text.contains("audit.mirror"), "{text}");
    assert!(text.contains("data.session.purge"), "{text}");

    // After shutdown the auditor refuses: counted as unrouted, not silently lost.
    let before = audit_tracing::unrouted_events();
    audit!(event_type = "data.report.generate", "too late");
    assert_eq!(audit_tracing::unrouted_events(), before + 1);
}
