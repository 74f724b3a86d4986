//! Metrics snapshots and the shutdown report.

use std::fmt;

/// Counters for the whole pipeline, from [`Auditor::metrics`](super::Auditor::metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Events accepted into the buffer (including the pipeline's own events).
    pub recorded: u64,
    /// Events lost because the buffer was full.
    pub dropped: u64,
    /// Events refused because the auditor was shut down.
    pub rejected: u64,
    /// Events waiting in the buffer for the worker.
    pub buffered: u64,
    /// Their size, by [`AuditEvent::approx_size`](crate::AuditEvent::approx_size).
    pub buffered_bytes: u64,
    /// Per sink, in registration order.
    pub sinks: Vec<SinkMetrics>,
}

impl Metrics {
    /// What keeps the pipeline from being ready (see [`Auditor::readiness`]); empty when
    /// every sink is healthy and none stalled, and the buffer is less than nine tenths full
    /// of `buffer_bytes`.
    ///
    /// [`Auditor::readiness`]: crate::Auditor::readiness
    pub fn not_ready(&self, buffer_bytes: usize) -> Vec<String> {
        let mut why: Vec<String> = self
            .sinks
            .iter()
            .filter(|s| !s.healthy || s.stalled)
            .map(|s| {
                if s.stalled {
                    format!("sink {} stalled", s.name)
                } else {
                    format!("sink {} failing", s.name)
                }
            })
            .collect();
        if self.buffered_bytes.saturating_mul(10) >= (buffer_bytes as u64).saturating_mul(9) {
            why.push("buffer nearly full".to_owned());
        }
        why
    }
}

/// Counters for one sink.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkMetrics {
    /// The sink's registered name.
    pub name: String,
    /// Events the sink accepted.
    pub delivered: u64,
    /// Events queued for the sink or in a delivery not yet acknowledged.
    pub pending: u64,
    /// Events lost for this sink because its queue was full.
    pub dropped: u64,
    /// Failed delivery attempts that were retried.
    pub retried: u64,
    /// Events given up after a permanent error or exhausted retries.
    pub failed: u64,
    /// Whether the last delivery (or final flush) succeeded.
    pub healthy: bool,
    /// A delivery has gone unanswered for longer than
    /// [`SinkOptions::stall_after`](crate::SinkOptions::stall_after) and still runs.
    pub stalled: bool,
    /// The last error the sink reported.
    pub last_error: Option<String>,
}

/// What [`Auditor::shutdown`](super::Auditor::shutdown) achieved before its deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// True when every sink delivered everything it was given and flushed.
    pub complete: bool,
    /// Final counters; a sink's `pending` is what it had not delivered at the deadline.
    pub metrics: Metrics,
}

impl ShutdownReport {
    /// Events not delivered to at least one sink, summed over sinks.
    pub fn undelivered(&self) -> u64 {
        self.metrics
            .sinks
            .iter()
            .map(|s| s.pending + s.dropped + s.failed)
            .sum::<u64>()
            + self.metrics.dropped
    }
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.metrics;
        write!(
            f,
            "audit shutdown {}: recorded {}, dropped {}",
            if self.complete {
                "complete"
            } else {
                "INCOMPLETE"
            },
            m.recorded,
            m.dropped
        )?;
        for s in &m.sinks {
            write!(
                f,
                "; {}: delivered {}, pending {}, dropped {}, failed {}",
                s.name, s.delivered, s.pending, s.dropped, s.failed
            )?;
        }
        Ok(())
    }
}
