//! Handler events for the audit trail: the [`audit!`] macro and a `tracing` layer, with the
//! current request's context and OpenTelemetry ids.
//!
//! Inside a request served by `audit-tower`'s `AuditLayer`, [`audit!`] records an event that
//! already carries the request id, trace and span ids, actor, tenant and session, and goes to
//! the layer's auditor. A handler states only what the route cannot: the resource, the
//! counts, the outcome.
//!
//! ```standalone_crate
//! use audit_core::{Auditor, Outcome};
//! use audit_sinks::MemorySink;
//! use audit_tracing::audit;
//!
//! let memory = MemorySink::new(10);
//! let auditor = Auditor::builder().sink(memory.clone()).build()?;
//! audit_tracing::set_global_auditor(auditor.clone());
//!
//! // A background job: no request, so no request context; the global auditor records it.
//! let purged = 17;
//! audit!(event_type = "data.session.purge", details.purged = purged, result = Outcome::Success,
//!        "Nightly session purge");
//! auditor.shutdown_blocking(std::time::Duration::from_secs(5));
//! assert_eq!(memory.events()[0].details["purged"], 17);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Where context comes from
//! 1. The current request ([`audit_core::scope`]), set by the `AuditLayer` for the duration of
//!    the inner service's future.
//! 2. Otherwise the nearest enclosing span that [`AuditTracingLayer`] saw created inside a
//!    request, or that carries `request_id`/`trace_id`/`actor_id`/`tenant` fields — so work
//!    spawned with `.instrument(tracing::Span::current())` keeps its request.
//! 3. With the `otel` feature and `tracing-opentelemetry` installed, the current span's
//!    OpenTelemetry trace and span ids replace the request's.
//!
//! # Filters never drop audit events
//! `audit!` does not expand to a `tracing` macro: it builds the event itself and hands it to
//! the pipeline. Global filters (`EnvFilter::new("warn")`), per-layer filters, `LevelFilter::OFF`
//! and the compile-time `max_level_*` / `release_max_level_*` features of `tracing` (which
//! remove `tracing` macro call sites from the binary) have no effect on it. Plain `tracing`
//! events with target `audit`, converted by [`AuditTracingLayer`], *are* subject to those
//! filters: prefer `audit!`, or let the target through (`audit=info`).

#![forbid(unsafe_code)]

mod emit;
mod layer;
mod macros;
mod mirror;
mod otel;
mod span_facts;

pub use emit::{global_auditor, set_global_auditor, unrouted_events};
pub use layer::{AUDIT_TARGET, AuditTracingLayer, MIRROR_TARGET, interest_filter};

pub use audit_core as core;

/// Used by the macros; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::emit::{Emit, to_value};
    pub use serde_json::Value;
}
