//! The delivery pipeline: [`Auditor`] buffers events from callers; a worker stamps them and
//! feeds each [`Sink`](crate::Sink) from its own batching, retrying queue.
//!
//! ```text
//! record() ─► buffer (bytes-bounded, seq assigned) ─► worker: redact, stamp service + integrity
//!          ─► per-sink queue (filter, bound) ─► batch (events / bytes / max wait)
//!          ─► Sink::deliver ─► retry with backoff + jitter ─► health events
//! ```
//!
//! # Failure behaviour
//! - A full buffer follows the [`OverflowPolicy`]; each lost event is counted and reported by a
//!   `system.audit.dropped` event (count, first and last sequence number) once there is room.
//! - A failing sink is retried with exponential backoff while its queue fills; other sinks and
//!   callers are unaffected. Its transitions are recorded as `system.sink.unhealthy` and
//!   `system.sink.recovered`. If its queue bound is reached, events are dropped for that sink
//!   only and reported the same way, naming the sink.
//! - [`Auditor::shutdown`] reports per sink what was delivered and what was still pending.
//!
//! The pipeline's own event types and their details are listed in the `system_events` table
//! in the README.

mod auditor;
mod dispatch;
mod ingress;
mod options;
mod report;
mod run_state;
mod sink_task;
mod spool;
mod system_events;

pub use auditor::{Auditor, AuditorBuilder, RecordError, Reservation};
pub use ingress::DeferredEvent;
pub use options::{OverflowPolicy, RetryPolicy, SinkOptions};
pub use report::{Metrics, ShutdownReport, SinkMetrics};
pub use spool::SpoolOptions;
