//! Audit events and the pipeline that delivers them without silent loss.
//!
//! `audit-core` is the foundation of the `audit-*` crates: the event model ([`AuditEvent`] and
//! its parts), its taxonomy ([`Category`], [`Severity`], [`Outcome`], [`EventType`]), the
//! [`Sink`] trait, and the [`Auditor`] pipeline that buffers, batches, retries and reports.
//! It depends on no web or tracing crate; `audit-tower` and `audit-tracing` capture events,
//! `audit-sinks` delivers them.
//!
//! ```
//! use std::time::Duration;
//! use audit_core::{Actor, AuditEvent, Auditor, Batch, Outcome, Sink, SinkError};
//!
//! struct Print;
//! impl Sink for Print {
//!     fn name(&self) -> &str { "print" }
//!     async fn deliver(&mut self, batch: &Batch) -> Result<(), SinkError> {
//!         for e in batch { let _ = serde_json::to_string(e); }
//!         Ok(())
//!     }
//! }
//!
//! let auditor = Auditor::builder().service("vector-api").sink(Print).build()?;
//! auditor
//!     .record(
//!         AuditEvent::builder("auth.login.failure")
//!             .actor(Actor::user("user-123"))
//!             .result(Outcome::Failure)
//!             .build()?,
//!     )
//!     .unwrap();
//! let report = auditor.shutdown_blocking(Duration::from_secs(5));
//! assert_eq!(report.metrics.sinks[0].delivered, 1);
//! # Ok::<(), audit_core::Error>(())
//! ```
//!
//! # Trust boundaries
//! Everything in an event is treated as data: the pipeline never interprets `details`, and
//! the capture layers decide what is trusted (e.g. an inbound request id). Every event is
//! [redacted](redact) on the pipeline's worker before any sink sees it.

#![forbid(unsafe_code)]

mod error;
pub mod event;
pub mod export;
pub mod integrity;
pub mod limits;
pub mod live;
#[cfg(feature = "otel-metrics")]
pub mod otel_metrics;
pub mod pipeline;
pub mod redact;
pub mod scope;
pub mod sink;
pub mod store;
mod swar;
pub mod sync;

pub use error::Error;
pub use event::{
    Actor, AuditEvent, AuditEventBuilder, CapturedBody, Category, Context, EventId, EventType,
    HttpFacts, Integrity, Outcome, RpcFacts, Severity, Target, Text, Timestamp,
};
pub use limits::Limits;
pub use pipeline::{
    Auditor, AuditorBuilder, DeferredEvent, Metrics, OverflowPolicy, RecordError, Reservation,
    RetryPolicy, ShutdownReport, SinkMetrics, SinkOptions, SpoolOptions,
};
pub use sink::{Batch, Sink, SinkError};
