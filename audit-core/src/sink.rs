//! The [`Sink`] trait: where delivered events go.
//!
//! A sink receives batches from its own queue, on the pipeline's worker. It reports failure by
//! returning a [`SinkError`]; the pipeline then retries the *same* batch with exponential
//! backoff, marks the sink unhealthy (recording `system.sink.unhealthy`), and records
//! `system.sink.recovered` once a delivery succeeds again. A sink never sees a batch again
//! after returning `Ok`, and sees batches in sequence order.
//!
//! Delivery is at-least-once: a batch that failed half-way is delivered again whole, so a sink
//! whose receiver can deduplicate should key on [`AuditEvent::id`].
//!
//! ```
//! use audit_core::{AuditEvent, Batch, Sink, SinkError};
//!
//! /// Counts events; fails while `down` is set.
//! struct Counter { seen: usize, down: bool }
//!
//! impl Sink for Counter {
//!     fn name(&self) -> &str { "counter" }
//!     async fn deliver(&mut self, batch: &Batch) -> Result<(), SinkError> {
//!         if self.down {
//!             return Err(SinkError::retryable("counter is down"));
//!         }
//!         self.seen += batch.len();
//!         Ok(())
//!     }
//! }
//!
//! let mut sink = Counter { seen: 0, down: false };
//! let batch = Batch::from(vec![AuditEvent::builder("auth.logout").build()?]);
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! rt.block_on(sink.deliver(&batch)).unwrap();
//! assert_eq!(sink.seen, 1);
//! # Ok::<(), audit_core::Error>(())
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::{AuditEvent, SinkOptions};

/// A destination for audit events.
///
/// Implementations own their connection or file state (`&mut self`); the pipeline runs each
/// sink in its own task, so a sink waiting on its receiver never holds up another. The tasks
/// share the pipeline's worker thread with redaction and fan-out: blocking work (file writes,
/// fsync, a synchronous client) belongs in `tokio::task::spawn_blocking`, never directly in
/// `deliver`, where it would stall every sink and the draining of the buffer.
pub trait Sink: Send + 'static {
    /// A short stable name for metrics, health events and reports (e.g. `file`, `splunk`).
    /// Registration can override it; names must be unique within one `Auditor`.
    fn name(&self) -> &str;

    /// Delivers one batch. `Ok` means the events are accepted by the destination (written,
    /// acknowledged); an error means none of them may be assumed delivered.
    fn deliver(&mut self, batch: &Batch) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// The options [`AuditorBuilder::sink`](crate::AuditorBuilder::sink) registers this sink
    /// with; [`sink_with`](crate::AuditorBuilder::sink_with) overrides them. Sinks whose
    /// receiver prefers other batch sizes (a database, a bulk API) say so here.
    fn default_options(&self) -> SinkOptions {
        SinkOptions::default()
    }

    /// The highest seq of `stream` this sink already holds, when it can tell (the default
    /// says nothing). After a crash, the spool delivers a stream's unacknowledged events again
    /// and skips those at or below this, so a sink that cannot deduplicate by id (a file)
    /// still gets each event once.
    fn delivered_through(&mut self, stream: &str) -> impl Future<Output = Option<u64>> + Send {
        let _ = stream;
        async { None }
    }

    /// True when this sink writes events as their canonical JSON line
    /// ([`AuditEvent::write_json`](crate::AuditEvent::write_json)): the pipeline then hands it
    /// the line the hash chain already encoded ([`Batch::line`]), so the event is not
    /// encoded twice. Default: false.
    fn wants_lines(&self) -> bool {
        false
    }

    /// Makes delivered events durable (fsync, flush buffers). Called at shutdown after the last
    /// batch; the default does nothing.
    fn flush(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send {
        async { Ok(()) }
    }
}

/// An ordered batch of events for one sink.
///
/// Events are shared (`Arc`) between the sinks they go to; a sink reads them, never changes
/// them.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    events: Vec<Arc<AuditEvent>>,
    /// The events' canonical JSON lines (each ending in `\n`), when the pipeline made them
    /// for a sink that [wants them](Sink::wants_lines); empty otherwise.
    lines: Vec<Option<Arc<[u8]>>>,
}

impl Batch {
    /// Number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True when the batch holds no events.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The events, in sequence order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &AuditEvent> {
        self.events.iter().map(|e| &**e)
    }

    /// The shared events, in sequence order (cheap to clone into a blocking task).
    pub fn events(&self) -> &[Arc<AuditEvent>] {
        &self.events
    }

    /// The `i`th event's canonical JSON line, ending in `\n`, exactly as
    /// [`AuditEvent::write_json`](crate::AuditEvent::write_json) and a newline would write it,
    /// when the pipeline has it (a sink that [wants lines](Sink::wants_lines), events from a
    /// chained auditor); otherwise encode the event.
    pub fn line(&self, i: usize) -> Option<&[u8]> {
        self.lines.get(i)?.as_deref()
    }

    /// A batch of events with their lines.
    pub(crate) fn with_lines(events: Vec<Arc<AuditEvent>>, lines: Vec<Option<Arc<[u8]>>>) -> Batch {
        Batch { events, lines }
    }
}

impl From<Vec<Arc<AuditEvent>>> for Batch {
    fn from(events: Vec<Arc<AuditEvent>>) -> Self {
        Batch {
            events,
            lines: Vec::new(),
        }
    }
}

impl From<Vec<AuditEvent>> for Batch {
    fn from(events: Vec<AuditEvent>) -> Self {
        Batch {
            events: events.into_iter().map(Arc::new).collect(),
            lines: Vec::new(),
        }
    }
}

impl<'a> IntoIterator for &'a Batch {
    type Item = &'a AuditEvent;
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, Arc<AuditEvent>>,
        fn(&'a Arc<AuditEvent>) -> &'a AuditEvent,
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.events.iter().map(|e| &**e)
    }
}

/// Why a delivery failed, and whether trying again can help.
///
/// The message appears in `system.sink.unhealthy` events and metrics: it must never contain a
/// credential (write "401 from receiver", not the token that was refused).
#[derive(Debug, Clone)]
pub struct SinkError {
    permanent: bool,
    message: String,
    retry_after: Option<Duration>,
}

impl SinkError {
    /// A failure that may pass: network errors, timeouts, 429/5xx, a full disk, a file that
    /// vanished. The pipeline retries the batch.
    pub fn retryable(message: impl Into<String>) -> SinkError {
        SinkError {
            permanent: false,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A failure that retrying cannot fix (the receiver rejects the payload itself). The
    /// pipeline gives the batch up, counts it as failed and reports it in a
    /// `system.audit.dropped` event.
    pub fn permanent(message: impl Into<String>) -> SinkError {
        SinkError {
            permanent: true,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Asks the pipeline to wait at least this long before the next attempt (HTTP
    /// `Retry-After`). The wait is still capped by the sink's maximum backoff.
    #[must_use]
    pub fn with_retry_after(mut self, delay: Duration) -> SinkError {
        self.retry_after = Some(delay);
        self
    }

    /// True when retrying cannot help.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// The receiver's requested wait, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SinkError {}

impl From<std::io::Error> for SinkError {
    /// I/O errors are retryable: a full disk or a vanished directory can come back.
    fn from(e: std::io::Error) -> Self {
        SinkError::retryable(e.to_string())
    }
}
