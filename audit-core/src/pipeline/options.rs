//! Settings: the overflow policy, per-sink batching and retry.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::AuditEvent;

/// What [`Auditor::record`](super::Auditor::record) does when the in-memory buffer is full.
///
/// Either way nothing is lost silently: each event that cannot be buffered is counted, its
/// sequence number is consumed, and as soon as there is room again the pipeline records a
/// `system.audit.dropped` event with the count and the first and last sequence numbers lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OverflowPolicy {
    /// Block the calling thread until there is room or `timeout` passes, then drop. Keep the
    /// timeout short when recording from async code: it stalls the executor thread.
    Block {
        /// Longest wait for room.
        timeout: Duration,
    },
    /// Never block: drop the event that does not fit.
    DropNewest,
}

impl Default for OverflowPolicy {
    /// `Block { timeout: 1s }`. The buffer is full only while the worker cannot keep up or
    /// a healthy sink [pushes back](SinkOptions::back_pressure) (one that is down never
    /// does), so a caller waits only as long as the sinks need to make room for a burst; a
    /// second covers a healthy sink taking a second per batch. Shorter keeps callers
    /// quicker under overload at the price of dropping (counted and reported) sooner.
    fn default() -> Self {
        OverflowPolicy::Block {
            timeout: Duration::from_secs(1),
        }
    }
}

/// Exponential backoff with jitter for one sink's retries.
///
/// The n-th wait is drawn uniformly from `[d/2, d]` where `d = min(initial · 2ⁿ, max)`; a
/// receiver's `Retry-After` raises the wait to what it asked, up to
/// [`max_retry_after`](Self::max_retry_after).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct RetryPolicy {
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
    pub(crate) max_retry_after: Duration,
    pub(crate) max_attempts: Option<u32>,
}

impl Default for RetryPolicy {
    /// 100 ms doubling to 1 s, retrying forever (the sink's queue bound decides what is
    /// dropped, and counts it, if the receiver never comes back): a sink that comes back is
    /// delivered to within about a second, and one that is down gets one attempt a second.
    /// A `Retry-After` is honoured up to 5 minutes.
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(300),
            max_attempts: None,
        }
    }
}

impl RetryPolicy {
    /// The first wait.
    pub fn initial_backoff(mut self, d: Duration) -> Self {
        self.initial = d;
        self
    }

    /// The cap on the backoff's own waits.
    pub fn max_backoff(mut self, d: Duration) -> Self {
        self.max = d;
        self
    }

    /// The longest `Retry-After` a receiver can ask for and get (default 5 minutes).
    pub fn max_retry_after(mut self, d: Duration) -> Self {
        self.max_retry_after = d;
        self
    }

    /// Give a batch up after this many attempts (counted as failed, reported in a
    /// `system.audit.dropped` event). `None` (the default) retries until shutdown.
    pub fn max_attempts(mut self, n: Option<u32>) -> Self {
        self.max_attempts = n;
        self
    }
}

/// Picks the events a sink receives.
pub(crate) type EventFilter = Arc<dyn Fn(&AuditEvent) -> bool + Send + Sync>;

/// How one sink is fed: its name, batching limits, queue bound, retry and filter.
///
/// ```
/// use std::time::Duration;
/// use audit_core::{Category, SinkOptions};
///
/// let admin_only = SinkOptions::new()
///     .name("admin-trail")
///     .max_batch_events(500)
///     .max_wait(Duration::from_millis(50))
///     .filter(|e| e.category == Category::Admin);
/// # let _ = admin_only;
/// ```
#[derive(Clone)]
#[must_use]
pub struct SinkOptions {
    pub(crate) name: Option<String>,
    pub(crate) max_batch_events: usize,
    pub(crate) max_batch_bytes: usize,
    pub(crate) max_wait: Duration,
    pub(crate) queue_bytes: usize,
    pub(crate) retry: RetryPolicy,
    pub(crate) filter: Option<EventFilter>,
    pub(crate) stall_after: Duration,
    pub(crate) back_pressure: Option<bool>,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions {
            name: None,
            max_batch_events: 1000,
            max_batch_bytes: 4 << 20,
            max_wait: Duration::from_millis(100),
            queue_bytes: 32 << 20,
            retry: RetryPolicy::default(),
            filter: None,
            stall_after: Duration::from_secs(5),
            back_pressure: None,
        }
    }
}

impl SinkOptions {
    /// Defaults: batches of up to 1000 events or 4 MiB, sent at the latest 100 ms after the
    /// first event queued; a queue of 32 MiB; [`RetryPolicy::default`]; every event; a
    /// delivery counts as stalled after 5 s; [back-pressure](Self::back_pressure) when it is
    /// the auditor's only sink.
    pub fn new() -> Self {
        SinkOptions::default()
    }

    /// Overrides the sink's own [`name`](crate::Sink::name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Most events per batch (at least 1).
    pub fn max_batch_events(mut self, n: usize) -> Self {
        self.max_batch_events = n.max(1);
        self
    }

    /// Most bytes per batch, by [`AuditEvent::approx_size`]; a single larger event still goes
    /// alone.
    pub fn max_batch_bytes(mut self, n: usize) -> Self {
        self.max_batch_bytes = n.max(1);
        self
    }

    /// Longest an event waits for its batch to fill.
    pub fn max_wait(mut self, d: Duration) -> Self {
        self.max_wait = d;
        self
    }

    /// Bound on this sink's queue, in bytes. While a sink is down its events wait here; when
    /// the bound is reached, further events are dropped *for this sink only*, counted, and
    /// reported by a `system.audit.dropped` event naming the sink (within a second, and again
    /// each second while the loss goes on). A healthy sink with
    /// [back-pressure](Self::back_pressure) holds the pipeline back instead; its queue may
    /// then pass the bound by at most one worker chunk (1,024 events).
    pub fn queue_bytes(mut self, n: usize) -> Self {
        self.queue_bytes = n.max(1);
        self
    }

    /// Retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// How long one delivery may take before it is reported as stalled
    /// (`system.sink.stalled`, once per delivery, while it still runs; default 5 s). The
    /// delivery itself goes on until the sink answers or its own timeout fails it.
    pub fn stall_after(mut self, d: Duration) -> Self {
        self.stall_after = d.max(Duration::from_millis(1));
        self
    }

    /// Whether this sink's full queue holds the pipeline back instead of dropping.
    ///
    /// With back-pressure, while the sink is healthy (its last delivery succeeded and none is
    /// stalled) and its queue is full, the worker stops handing events on, so the auditor's
    /// buffer fills and `record` waits for room under its
    /// [`OverflowPolicy`](super::OverflowPolicy) instead of the sink dropping events: a burst
    /// the sink can absorb given time is delivered whole. Every sink waits while one holds the
    /// pipeline back. A failing or stalled sink never holds it back: its queue drops and
    /// reports as without back-pressure, so a sink that is down does not stall the service.
    ///
    /// Default: on when the auditor has exactly one sink, off otherwise (a slow sink must not
    /// stall the others unless it is required).
    pub fn back_pressure(mut self, on: bool) -> Self {
        self.back_pressure = Some(on);
        self
    }

    /// Sends this sink only the events for which `f` returns true. It runs on the worker
    /// thread for every event: keep it quick and never block in it, or every sink waits.
    pub fn filter(mut self, f: impl Fn(&AuditEvent) -> bool + Send + Sync + 'static) -> Self {
        self.filter = Some(Arc::new(f));
        self
    }
}

impl fmt::Debug for SinkOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinkOptions")
            .field("name", &self.name)
            .field("max_batch_events", &self.max_batch_events)
            .field("max_batch_bytes", &self.max_batch_bytes)
            .field("max_wait", &self.max_wait)
            .field("queue_bytes", &self.queue_bytes)
            .field("retry", &self.retry)
            .field("stall_after", &self.stall_after)
            .field("back_pressure", &self.back_pressure)
            .field("filter", &self.filter.as_ref().map(|_| "<fn>"))
            .finish()
    }
}

/// The waits of one retry sequence.
#[derive(Debug)]
pub(crate) struct Backoff {
    policy: RetryPolicy,
    attempt: u32,
}

impl Backoff {
    pub(crate) fn new(policy: RetryPolicy) -> Backoff {
        Backoff { policy, attempt: 0 }
    }

    /// How many attempts have failed so far.
    pub(crate) fn failures(&self) -> u32 {
        self.attempt
    }

    /// Whether the policy allows another attempt after the failures so far.
    pub(crate) fn exhausted(&self) -> bool {
        self.policy
            .max_attempts
            .is_some_and(|max| self.attempt >= max)
    }

    /// Records a failed attempt and returns how long to wait before the next one.
    pub(crate) fn next_delay(&mut self, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .policy
            .initial
            .saturating_mul(1 << self.attempt.min(20));
        self.attempt += 1;
        let ceiling = exp.min(self.policy.max);
        let half = ceiling / 2;
        let jittered = half + half.mul_f64(fastrand::f64());
        match retry_after {
            Some(ra) => jittered.max(ra.min(self.policy.max_retry_after)),
            None => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let policy = RetryPolicy::default()
            .initial_backoff(Duration::from_millis(100))
            .max_backoff(Duration::from_secs(1));
        let mut b = Backoff::new(policy);
        let waits: Vec<_> = (0..8).map(|_| b.next_delay(None)).collect();
        assert!(waits[0] >= Duration::from_millis(50) && waits[0] <= Duration::from_millis(100));
        assert!(waits[2] >= Duration::from_millis(200) && waits[2] <= Duration::from_millis(400));
        assert!(waits.iter().all(|w| *w <= Duration::from_secs(1)));
        assert!(waits[7] >= Duration::from_millis(500));
        assert_eq!(b.failures(), 8);
    }

    #[test]
    fn retry_after_is_honoured_up_to_its_own_cap() {
        let mut b = Backoff::new(RetryPolicy::default());
        // Above the backoff's own 1 s: what the receiver asked.
        assert_eq!(
            b.next_delay(Some(Duration::from_secs(60))),
            Duration::from_secs(60)
        );
        assert_eq!(
            b.next_delay(Some(Duration::from_secs(3600))),
            Duration::from_secs(300)
        );
        let mut b = Backoff::new(RetryPolicy::default().max_retry_after(Duration::from_secs(5)));
        assert_eq!(
            b.next_delay(Some(Duration::from_secs(60))),
            Duration::from_secs(5)
        );
        assert!(b.next_delay(None) <= Duration::from_secs(1));
    }

    #[test]
    fn attempts_are_bounded_when_asked() {
        let mut b = Backoff::new(RetryPolicy::default().max_attempts(Some(2)));
        assert!(!b.exhausted());
        b.next_delay(None);
        b.next_delay(None);
        assert!(b.exhausted());
    }
}
