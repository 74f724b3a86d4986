//! [`Auditor`], the handle applications record through, and its builder.

use crate::sync::LockExt;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::dispatch::{Command, Dispatcher, Reply, Shared};
use super::ingress::{DeferredEvent, Entry, Ingress};
use super::options::{OverflowPolicy, SinkOptions};
use super::report::{Metrics, ShutdownReport};
use super::sink_task::{self, SinkShared};
use super::spool::{self, SpoolOptions};
use crate::Limits;
use crate::integrity::{CheckpointKey, CheckpointPolicy, Keyring};
use crate::redact::Redactor;
use crate::{AuditEvent, Error, Sink};

/// Why [`Auditor::record`] (or [`Auditor::reserve`]) did not take an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordError {
    seq: Option<u64>,
    kind: RecordErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecordErrorKind {
    Dropped,
    Closed,
    NoRoom,
    NoHealthySink,
    NotDurable,
    NoSpool,
}

impl RecordError {
    pub(crate) fn dropped(seq: u64) -> RecordError {
        RecordError {
            seq: Some(seq),
            kind: RecordErrorKind::Dropped,
        }
    }

    pub(crate) fn closed() -> RecordError {
        RecordError {
            seq: None,
            kind: RecordErrorKind::Closed,
        }
    }

    pub(crate) fn no_room() -> RecordError {
        RecordError {
            seq: None,
            kind: RecordErrorKind::NoRoom,
        }
    }

    fn no_healthy_sink() -> RecordError {
        RecordError {
            seq: None,
            kind: RecordErrorKind::NoHealthySink,
        }
    }

    fn not_durable(seq: u64) -> RecordError {
        RecordError {
            seq: Some(seq),
            kind: RecordErrorKind::NotDurable,
        }
    }

    /// The event was recorded (and is delivered from memory) but could not be made durable
    /// in the spool in time: the disk is slow or full, or the spool failed.
    pub fn is_not_durable(&self) -> bool {
        matches!(
            self.kind,
            RecordErrorKind::NotDurable | RecordErrorKind::NoSpool
        )
    }

    /// A reservation was refused: the buffer has no room, or no sink is healthy.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self.kind,
            RecordErrorKind::NoRoom | RecordErrorKind::NoHealthySink
        )
    }

    /// The buffer was full under the overflow policy; the loss is counted and will be
    /// reported by a `system.audit.dropped` event.
    pub fn is_dropped(&self) -> bool {
        self.kind == RecordErrorKind::Dropped
    }

    /// The auditor has been shut down.
    pub fn is_closed(&self) -> bool {
        self.kind == RecordErrorKind::Closed
    }

    /// The sequence number the lost event was given, when it was dropped.
    pub fn seq(&self) -> Option<u64> {
        self.seq
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, self.seq) {
            (RecordErrorKind::Dropped, Some(seq)) => {
                write!(f, "audit buffer full: event {seq} dropped")
            }
            (RecordErrorKind::Dropped | RecordErrorKind::NoRoom, _) => {
                f.write_str("audit buffer full")
            }
            (RecordErrorKind::Closed, _) => f.write_str("auditor is shut down"),
            (RecordErrorKind::NoHealthySink, _) => f.write_str("no audit sink is healthy"),
            (RecordErrorKind::NotDurable, Some(seq)) => write!(
                f,
                "audit event {seq} could not be made durable in the spool in time"
            ),
            (RecordErrorKind::NotDurable, None) => {
                f.write_str("the audit event could not be made durable in the spool in time")
            }
            (RecordErrorKind::NoSpool, _) => {
                f.write_str("this auditor has no durable spool (AuditorBuilder::spool)")
            }
        }
    }
}

impl std::error::Error for RecordError {}

/// The handle events are recorded through. Cheap to clone; all clones feed one pipeline.
///
/// `record` is synchronous and never awaits: it takes a short lock, gives the event its
/// sequence number and buffers it. One dedicated thread, `audit-worker`, with its own
/// single-threaded Tokio runtime, does everything else: it redacts, stamps and fans out, and
/// runs the sinks' tasks (whose blocking writes go to that runtime's blocking pool). The
/// application's runtime, or the lack of one, never decides whether audit events move.
///
/// ```
/// use std::time::Duration;
/// use audit_core::{AuditEvent, Auditor, SinkOptions};
/// # use audit_core::{Batch, Sink, SinkError};
/// # use std::sync::{Arc, Mutex};
/// # #[derive(Clone, Default)] struct Collect(Arc<Mutex<Vec<String>>>);
/// # impl Sink for Collect {
/// #     fn name(&self) -> &str { "collect" }
/// #     async fn deliver(&mut self, b: &Batch) -> Result<(), SinkError> {
/// #         self.0.lock().unwrap().extend(b.iter().map(|e| e.event_type.to_string()));
/// #         Ok(())
/// #     }
/// # }
///
/// let collected = Collect::default();
/// let auditor = Auditor::builder()
///     .service("billing")
///     .sink(collected.clone())
///     .build()?;
///
/// let seq = auditor.record(AuditEvent::builder("auth.logout").build()?).unwrap();
/// assert_eq!(seq, 1);
///
/// let report = auditor.shutdown_blocking(Duration::from_secs(5));
/// assert!(report.complete);
/// assert_eq!(*collected.0.lock().unwrap(), ["auth.logout"]);
/// # Ok::<(), audit_core::Error>(())
/// ```
///
/// # Ordering and loss
/// Every event gets the next sequence number of this auditor's stream when `record` is
/// called, and each sink receives events in that order. An event that cannot be buffered
/// (see [`OverflowPolicy`]) keeps its number, is counted, and is reported by a
/// `system.audit.dropped` event, so every gap in a stream is explained.
///
/// # Shutdown
/// Call [`shutdown`](Self::shutdown) (or [`shutdown_blocking`](Self::shutdown_blocking))
/// before exiting: it delivers what is buffered and queued, flushes every sink, and reports
/// exactly what did not make it. If every handle is dropped without it, the worker still
/// drains for [`AuditorBuilder::drain_on_drop`] in the background, but nothing waits for it.
#[derive(Clone)]
pub struct Auditor {
    /// One shared allocation, so a clone (made per request by the Tower layer) is a single
    /// reference count.
    inner: Arc<Handle>,
}

struct Handle {
    shared: Arc<Shared>,
    /// Dropped with the last handle, which tells the worker to drain and stop.
    commands: mpsc::UnboundedSender<Command>,
    overflow: OverflowPolicy,
}

impl fmt::Debug for Auditor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auditor")
            .field("stream", &self.inner.shared.stream)
            .field("sinks", &self.inner.shared.sinks.len())
            .field("overflow", &self.inner.overflow)
            .finish()
    }
}

impl Auditor {
    /// Starts configuring an auditor.
    pub fn builder() -> AuditorBuilder {
        AuditorBuilder::default()
    }

    /// Buffers an event for delivery under the auditor's overflow policy and returns its
    /// sequence number.
    ///
    /// Never awaits and does no I/O or serialisation. Under
    /// [`OverflowPolicy::Block`] it may block the calling thread up to the timeout when the
    /// buffer is full.
    pub fn record(&self, event: AuditEvent) -> Result<u64, RecordError> {
        self.record_with(event, self.inner.overflow)
    }

    /// Like [`record`](Self::record), with an overflow policy for this one event (e.g.
    /// `DropNewest` on a latency-critical path, a longer `Block` for an event that must not
    /// be lost).
    pub fn record_with(
        &self,
        event: AuditEvent,
        policy: OverflowPolicy,
    ) -> Result<u64, RecordError> {
        let size = event.approx_size();
        self.inner
            .shared
            .ingress
            .push(Entry::Ready(event), size, policy)
    }

    /// Records an event that the worker builds by calling `build`, so the caller pays only
    /// for moving what `build` captured. The event gets its sequence number now and is
    /// charged `size_hint` bytes against the buffer (estimate generously: captured strings
    /// and bodies). Used by the Tower layer on the request path.
    ///
    /// `build` runs on the worker thread: keep it free of locks and I/O. If it panics, a
    /// `system.audit.build_failed` event takes the sequence number instead.
    pub fn record_deferred(
        &self,
        size_hint: usize,
        policy: OverflowPolicy,
        build: impl FnOnce() -> AuditEvent + Send + 'static,
    ) -> Result<u64, RecordError> {
        self.record_deferred_boxed(size_hint, policy, Box::new(build))
    }

    /// Like [`record_deferred`](Self::record_deferred), for a recipe that is already boxed
    /// (no second allocation on the caller).
    pub fn record_deferred_boxed(
        &self,
        size_hint: usize,
        policy: OverflowPolicy,
        build: Box<dyn DeferredEvent>,
    ) -> Result<u64, RecordError> {
        self.inner
            .shared
            .ingress
            .push(Entry::Deferred(build), size_hint, policy)
    }

    /// Promises that one event of up to `bytes` (by [`AuditEvent::approx_size`]) will be
    /// accepted, for callers that must not act unless their audit record is guaranteed (the
    /// Tower layer's strict mode). Refused when the buffer has no room for it or no sink is
    /// healthy. Dropping the reservation unused gives the room back.
    pub fn reserve(&self, bytes: usize) -> Result<Reservation, RecordError> {
        let sinks = &self.inner.shared.sinks;
        if sinks.is_empty() || sinks.iter().all(|s| !s.is_healthy()) {
            return Err(RecordError::no_healthy_sink());
        }
        self.inner.shared.ingress.reserve(bytes)?;
        Ok(Reservation {
            ingress: Arc::clone(&self.inner.shared.ingress),
            bytes,
        })
    }

    /// True when events are written to a durable spool ([`AuditorBuilder::spool`]).
    pub fn is_spooled(&self) -> bool {
        self.inner.shared.spool.is_some()
    }

    /// Records `event` and waits until it is on disk in the spool (written and synced), for
    /// at most the spool's [`durable_timeout`](SpoolOptions::durable_timeout). Needs a Tokio
    /// runtime with time enabled.
    ///
    /// When the buffer is full the call waits for room within the same timeout. An error
    /// that [`is_not_durable`](RecordError::is_not_durable) means the event was recorded and
    /// is delivered from memory, but a crash could lose it.
    pub async fn record_durable(&self, event: AuditEvent) -> Result<u64, RecordError> {
        let Some(spool) = &self.inner.shared.spool else {
            return Err(RecordError {
                seq: None,
                kind: RecordErrorKind::NoSpool,
            });
        };
        let timeout = spool.options.durable_timeout;
        let seq = self.record_with(event, OverflowPolicy::Block { timeout })?;
        self.wait_durable(seq, None).await?;
        Ok(seq)
    }

    /// Waits until the event recorded as `seq` is durable in the spool, for at most `timeout`
    /// (default: the spool's [`durable_timeout`](SpoolOptions::durable_timeout)). Needs a
    /// Tokio runtime with time enabled. The Tower layer's strict rules use it to hold a
    /// response until its event is durable.
    pub async fn wait_durable(
        &self,
        seq: u64,
        timeout: Option<Duration>,
    ) -> Result<(), RecordError> {
        let Some(spool) = &self.inner.shared.spool else {
            return Err(RecordError {
                seq: Some(seq),
                kind: RecordErrorKind::NoSpool,
            });
        };
        let timeout = timeout.unwrap_or(spool.options.durable_timeout);
        let mut durable = spool.durable.clone();
        if *durable.borrow() < seq {
            // Someone is waiting: the worker takes the event now rather than at its next
            // tick (up to 5 ms later by default).
            self.inner.shared.ingress.wake.notify_one();
        }
        let reached = tokio::time::timeout(timeout, async {
            loop {
                if *durable.borrow_and_update() >= seq {
                    return true;
                }
                if durable.changed().await.is_err() {
                    // The spool has stopped: only what it announced is durable.
                    return *durable.borrow() >= seq;
                }
            }
        })
        .await;
        match reached {
            Ok(true) if spool.durability.failure(seq).is_none() => Ok(()),
            _ => Err(RecordError::not_durable(seq)),
        }
    }

    /// Signs every later checkpoint with `key`; the previous key stays in
    /// [`keyring`](Self::keyring), so checkpoints it signed stay verifiable. Errors when the
    /// auditor was built without checkpoints.
    pub fn rotate_checkpoint_key(&self, key: CheckpointKey) -> Result<(), Error> {
        let shared = &self.inner.shared;
        let mut current = shared.checkpoint_key.lock_ignore_poison();
        if current.is_none() {
            return Err(Error::config(
                "this auditor records no checkpoints: build it with AuditorBuilder::checkpoints",
            ));
        }
        shared.keyring.lock_ignore_poison().add(key.public_key());
        *current = Some(key);
        Ok(())
    }

    /// The public keys this auditor has signed checkpoints with, oldest first (empty without
    /// checkpoints). Publish them (for example `GET /api/audit/keys`) and keep old ones.
    pub fn keyring(&self) -> Keyring {
        self.inner.shared.keyring.lock_ignore_poison().clone()
    }

    /// This auditor's stream name (stamped into every event's `integrity.stream`).
    pub fn stream(&self) -> &str {
        &self.inner.shared.stream
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> Metrics {
        self.inner.shared.metrics()
    }

    /// For a readiness probe: `Ok` when every sink's last delivery succeeded, none is stalled
    /// and the buffer is less than nine tenths full; else what is not (`sink webhook
    /// failing`, `sink store stalled`, `buffer nearly full`), without error texts, which
    /// stay in [`metrics`](Self::metrics) and the trail. After shutdown it is never ready.
    ///
    /// ```
    /// use audit_core::Auditor;
    /// let auditor = Auditor::builder().build().unwrap();
    /// assert!(auditor.readiness().is_ok());
    /// auditor.shutdown_blocking(std::time::Duration::from_secs(1));
    /// assert!(auditor.readiness().is_err());
    /// ```
    pub fn readiness(&self) -> Result<(), Vec<String>> {
        let ingress = &self.inner.shared.ingress;
        let mut why = self.metrics().not_ready(ingress.capacity());
        if ingress.is_closed() {
            why.push("shut down".to_owned());
        }
        if why.is_empty() { Ok(()) } else { Err(why) }
    }

    /// Waits until everything recorded before the call has been delivered (or given up) by
    /// every sink, or `timeout` passes. Returns true when everything was delivered.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let (reply, rx) = oneshot::channel();
        let deadline = Instant::now() + timeout;
        if self
            .inner
            .commands
            .send(Command::Flush { deadline, reply })
            .is_err()
        {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// Stops accepting events, delivers everything buffered and queued, flushes every sink,
    /// and reports what was delivered and what was still pending when `timeout` ran out.
    ///
    /// Later calls (from any clone) return the same report.
    pub async fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        self.inner.shared.ingress.close();
        let (tx, rx) = oneshot::channel();
        let cmd = Command::Shutdown {
            deadline: Instant::now() + timeout,
            reply: Reply::Async(tx),
        };
        if self.inner.commands.send(cmd).is_ok()
            && let Ok(report) = rx.await
        {
            return report;
        }
        self.report_after_exit()
    }

    /// [`shutdown`](Self::shutdown) for synchronous code (e.g. after the runtime has
    /// stopped). Blocks the calling thread; do not call it from async code.
    pub fn shutdown_blocking(&self, timeout: Duration) -> ShutdownReport {
        self.inner.shared.ingress.close();
        let (tx, rx) = std::sync::mpsc::channel();
        let cmd = Command::Shutdown {
            deadline: Instant::now() + timeout,
            reply: Reply::Blocking(tx),
        };
        if self.inner.commands.send(cmd).is_ok()
            && let Ok(report) = rx.recv()
        {
            return report;
        }
        self.report_after_exit()
    }

    /// The worker has already stopped (an earlier shutdown): its report, or the counters as
    /// they stand.
    fn report_after_exit(&self) -> ShutdownReport {
        if let Some(report) = self.inner.shared.final_report.get() {
            return report.clone();
        }
        let metrics = self.inner.shared.metrics();
        ShutdownReport {
            complete: metrics.sinks.iter().all(|s| s.pending == 0) && metrics.buffered == 0,
            metrics,
        }
    }
}

/// Waits (up to the spool's recovery wait) for the sinks to take an earlier run's events
/// again, keeps what is still owed for the next start, and records what happened.
fn settle_recovered(shared: &Shared, recovered: &[spool::Recovered]) {
    use std::sync::atomic::Ordering;
    let wait = shared
        .spool
        .as_ref()
        .map_or(Duration::ZERO, |s| s.options.recovery_wait);
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline
        && !shared
            .sinks
            .iter()
            .all(|s| s.replay_queued.load(Ordering::Relaxed) && s.is_idle())
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    for r in recovered {
        r.settle(&shared.sinks);
        let redelivered: serde_json::Map<String, serde_json::Value> = shared
            .sinks
            .iter()
            .map(|s| {
                let from = r.positions.get(&s.name).copied().unwrap_or(0);
                let n = r
                    .events
                    .iter()
                    .filter(|e| e.seq().is_some_and(|q| q > from))
                    .count();
                (s.name.clone(), serde_json::Value::from(n))
            })
            .collect();
        let (event_type, severity, what) = if r.closed {
            (
                "system.audit.recovered",
                crate::Severity::Notice,
                "ended cleanly with events not yet delivered",
            )
        } else {
            (
                "system.audit.unclean_shutdown",
                crate::Severity::Critical,
                "did not shut down cleanly",
            )
        };
        let built = AuditEvent::builder(event_type)
            .category(crate::Category::System)
            .severity(severity)
            .description(format!(
                "the previous run (stream {}) {what}; spooled events were delivered again",
                r.stream
            ))
            .detail("previousStream", r.stream.as_str())
            .detail("spooledThrough", r.spooled_through)
            .detail(
                "acknowledged",
                serde_json::Value::Object(
                    r.positions
                        .iter()
                        .map(|(k, v)| (k.clone(), serde_json::Value::from(*v)))
                        .collect(),
                ),
            )
            .detail("redelivered", serde_json::Value::Object(redelivered))
            .build();
        if let Ok(e) = built {
            shared.ingress.push_internal(e);
        }
    }
}

/// Room promised by [`Auditor::reserve`] for one event.
#[derive(Debug)]
#[must_use = "a reservation holds buffer room until it is used or dropped"]
pub struct Reservation {
    ingress: Arc<Ingress>,
    bytes: usize,
}

impl Reservation {
    /// Records the event into the promised room; only a shutdown can refuse it now.
    pub fn record(mut self, event: AuditEvent) -> Result<u64, RecordError> {
        // Taking the bytes leaves nothing for `Drop` to give back.
        let bytes = std::mem::take(&mut self.bytes);
        let size = event.approx_size();
        self.ingress.push_reserved(Entry::Ready(event), size, bytes)
    }

    /// Like [`Auditor::record_deferred`], into the promised room.
    pub fn record_deferred(
        self,
        build: impl FnOnce() -> AuditEvent + Send + 'static,
    ) -> Result<u64, RecordError> {
        self.record_deferred_boxed(Box::new(build))
    }

    /// Like [`Auditor::record_deferred_boxed`], into the promised room.
    pub fn record_deferred_boxed(
        mut self,
        build: Box<dyn DeferredEvent>,
    ) -> Result<u64, RecordError> {
        let bytes = std::mem::take(&mut self.bytes);
        self.ingress
            .push_reserved(Entry::Deferred(build), bytes, bytes)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.ingress.release(self.bytes);
        }
    }
}

type SpawnSink =
    Box<dyn FnOnce(Arc<Ingress>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + 'static>;

struct Registration {
    shared: Arc<SinkShared>,
    spawn: SpawnSink,
}

/// Configures and starts an [`Auditor`].
///
/// Defaults: a 32 MiB buffer, [`OverflowPolicy::default`], [`Redactor::default`], the worker
/// woken every 5 ms or when 512 events are waiting, a 5 s drain when every handle is dropped, and a stream named
/// `<service>-<8 random hex digits>` (or `audit-…` without a service).
#[must_use]
pub struct AuditorBuilder {
    service: Option<String>,
    stream: Option<String>,
    buffer_bytes: usize,
    overflow: OverflowPolicy,
    interval: Duration,
    watermark: usize,
    drain_on_drop: Duration,
    redactor: Redactor,
    limits: Limits,
    sinks: Vec<Registration>,
    hash_chain: bool,
    checkpoint_key: Option<CheckpointKey>,
    checkpoint_policy: CheckpointPolicy,
    spool: Option<SpoolOptions>,
    state_file: Option<std::path::PathBuf>,
}

impl Default for AuditorBuilder {
    fn default() -> Self {
        AuditorBuilder {
            service: None,
            stream: None,
            buffer_bytes: 32 << 20,
            overflow: OverflowPolicy::default(),
            interval: Duration::from_millis(5),
            watermark: 512,
            drain_on_drop: Duration::from_secs(5),
            redactor: Redactor::default(),
            limits: Limits::default(),
            sinks: Vec::new(),
            hash_chain: true,
            checkpoint_key: None,
            checkpoint_policy: CheckpointPolicy::default(),
            spool: None,
            state_file: None,
        }
    }
}

impl fmt::Debug for AuditorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditorBuilder")
            .field("service", &self.service)
            .field("stream", &self.stream)
            .field("buffer_bytes", &self.buffer_bytes)
            .field("overflow", &self.overflow)
            .field(
                "sinks",
                &self
                    .sinks
                    .iter()
                    .map(|r| &r.shared.name)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl AuditorBuilder {
    /// The service name, stamped into `context.service` of events that have none.
    pub fn service(mut self, name: impl Into<String>) -> Self {
        self.service = Some(name.into());
        self
    }

    /// The stream name for `integrity.stream`. Give each run of each instance its own:
    /// sequence numbers and hash chains are per stream and start again at 1 with every
    /// auditor, so a name reused by a later run looks to a verifier like inserted events
    /// (and a spool refuses it). The default adds 8 random hex digits to the service name.
    pub fn stream(mut self, name: impl Into<String>) -> Self {
        self.stream = Some(name.into());
        self
    }

    /// Bound on buffered events, in bytes by [`AuditEvent::approx_size`]: the events waiting
    /// for the worker and those it has taken but not yet handed to the sinks' queues. The
    /// sinks' queues have their own bounds ([`SinkOptions::queue_bytes`]).
    pub fn buffer_bytes(mut self, bytes: usize) -> Self {
        self.buffer_bytes = bytes;
        self
    }

    /// What `record` does when the buffer is full.
    pub fn overflow(mut self, policy: OverflowPolicy) -> Self {
        self.overflow = policy;
        self
    }

    /// How often the worker looks at the buffer when fewer than the watermark's events wait.
    /// This bounds the latency added before batching; it is not a per-event cost.
    pub fn dispatch_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// How long the worker keeps delivering after every handle was dropped without
    /// [`Auditor::shutdown`].
    pub fn drain_on_drop(mut self, grace: Duration) -> Self {
        self.drain_on_drop = grace;
        self
    }

    /// The redaction rules every event passes before any sink sees it (default:
    /// [`Redactor::default`]). Redaction cannot be turned off, only configured.
    pub fn redactor(mut self, redactor: Redactor) -> Self {
        self.redactor = redactor;
        self
    }

    /// The caps every event is held to after redaction, and the rule that makes every
    /// string storable (default: [`Limits::default`]; see [`crate::limits`]).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Whether events carry `integrity.prevHash` and `integrity.hash` (default: yes). See
    /// [`integrity`](crate::integrity) for the algorithm. Turning it off also turns off
    /// checkpoints.
    pub fn hash_chain(mut self, on: bool) -> Self {
        self.hash_chain = on;
        self
    }

    /// Signs the chain head with `key` in `system.audit.checkpoint` events, at the
    /// [`checkpoint_policy`](Self::checkpoint_policy)'s interval and at shutdown (default: no
    /// checkpoints). Publish [`Auditor::keyring`] so verifiers can check them.
    pub fn checkpoints(mut self, key: CheckpointKey) -> Self {
        self.checkpoint_key = Some(key);
        self
    }

    /// How often checkpoints are recorded (default: [`CheckpointPolicy::default`]).
    pub fn checkpoint_policy(mut self, policy: CheckpointPolicy) -> Self {
        self.checkpoint_policy = policy;
        self
    }

    /// Writes every stamped event to a durable spool in `options.dir` (see [`SpoolOptions`])
    /// and delivers again, at the next start, whatever a sink had not acknowledged when the
    /// process ended. [`Auditor::record_durable`] and the layer's strict rules then wait
    /// until their event is on disk. Default: no spool (events live in memory until the
    /// sinks have them).
    ///
    /// At [`build`](Self::build), events an earlier run left undelivered are queued to each
    /// sink first (skipping what a sink says it holds, see [`Sink::delivered_through`]); the
    /// build waits up to [`SpoolOptions::recovery_wait`] for them. An earlier run that did not
    /// shut down cleanly is recorded as `system.audit.unclean_shutdown` (its stream, the last
    /// seq it made durable, what each sink had acknowledged, how many events were delivered
    /// again).
    pub fn spool(mut self, options: SpoolOptions) -> Self {
        self.spool = Some(options);
        self
    }

    /// Without a spool: keeps a small state file at `path` saying whether this run is still
    /// going or ended cleanly, so that the next start notices a run that crashed (`kill -9`,
    /// power loss) and records `system.audit.unclean_shutdown` with its stream: the events
    /// it had not delivered yet are lost, and the trail says so. With a
    /// [`spool`](Self::spool) the spool does this (and delivers them), and the file is not
    /// used. Written with a rename, never half.
    pub fn state_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.state_file = Some(path.into());
        self
    }

    /// Adds a sink with default [`SinkOptions`].
    pub fn sink<S: Sink>(self, sink: S) -> Self {
        let options = sink.default_options();
        self.sink_with(sink, options)
    }

    /// Adds a sink with its own batching, queue bound, retry and filter.
    pub fn sink_with<S: Sink>(mut self, sink: S, options: SinkOptions) -> Self {
        let name = options
            .name
            .clone()
            .unwrap_or_else(|| sink.name().to_owned());
        let shared = Arc::new(SinkShared::new(name, options, sink.wants_lines()));
        let task_shared = Arc::clone(&shared);
        let spawn: SpawnSink =
            Box::new(move |ingress| Box::pin(sink_task::run(sink, task_shared, ingress)));
        self.sinks.push(Registration { shared, spawn });
        self
    }

    /// Validates the settings and starts the worker thread.
    ///
    /// Errors on a zero-byte buffer, duplicate sink names, or when the worker thread or its
    /// runtime cannot be created.
    pub fn build(self) -> Result<Auditor, Error> {
        if self.buffer_bytes == 0 {
            return Err(Error::config("buffer_bytes must be greater than zero"));
        }
        let mut names: Vec<&str> = self.sinks.iter().map(|r| r.shared.name.as_str()).collect();
        names.sort_unstable();
        if let Some(dup) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::config(format!(
                "two sinks are named {:?}; give one a distinct name with SinkOptions::name",
                dup[0]
            )));
        }
        let only_sink = self.sinks.len() == 1;
        for r in &self.sinks {
            r.shared.resolve_back_pressure(only_sink);
        }
        let stream = self.stream.unwrap_or_else(|| {
            format!(
                "{}-{:08x}",
                self.service.as_deref().unwrap_or("audit"),
                fastrand::u32(..)
            )
        });
        if stream.is_empty() || stream.len() > 128 || stream.chars().any(char::is_control) {
            return Err(Error::config(
                "the stream name must be 1 to 128 bytes without control characters",
            ));
        }
        if self.checkpoint_key.is_some() && !self.hash_chain {
            return Err(Error::config(
                "checkpoints sign the hash chain: they need hash_chain(true)",
            ));
        }
        let mut keyring = Keyring::default();
        if let Some(key) = &self.checkpoint_key {
            keyring.add(key.public_key());
        }
        let ingress = Arc::new(Ingress::new(self.buffer_bytes, self.watermark));
        let sink_shared: Vec<Arc<SinkShared>> =
            self.sinks.iter().map(|r| Arc::clone(&r.shared)).collect();
        let (spool, recovered) = match self.spool {
            Some(options) => {
                let recovered = spool::recover(&options.dir, &stream)?;
                for r in &recovered {
                    for s in &sink_shared {
                        let from = r.positions.get(&s.name).copied().unwrap_or(0);
                        let events = r
                            .events
                            .iter()
                            .filter(|e| e.seq().is_some_and(|q| q > from))
                            .cloned()
                            .collect::<Vec<_>>();
                        if !events.is_empty() {
                            s.replay
                                .lock_ignore_poison()
                                .push((r.stream.clone(), events));
                        }
                    }
                }
                let handle =
                    spool::start(options, &stream, sink_shared.clone(), Arc::clone(&ingress))?;
                (Some(handle), recovered)
            }
            None => (None, Vec::new()),
        };
        // Without a spool, the state file says how the previous run ended.
        let state_file = self.state_file.filter(|_| spool.is_none());
        let previous = match &state_file {
            Some(path) => super::run_state::begin(path, &stream)?,
            None => None,
        };
        let shared = Arc::new(Shared {
            state_file,
            ingress: Arc::clone(&ingress),
            sinks: sink_shared,
            stream: stream.into(),
            service: self.service.map(Into::into),
            redactor: self.redactor,
            limits: self.limits,
            final_report: std::sync::OnceLock::new(),
            chained: self.hash_chain,
            checkpoint_key: std::sync::Mutex::new(self.checkpoint_key),
            keyring: std::sync::Mutex::new(keyring),
            checkpoint_policy: self.checkpoint_policy,
            spool,
        });
        // One thread runs the dispatcher (redaction, fan-out) and the sinks' tasks, so an
        // event is built, redacted, encoded and freed on the core that holds it in cache;
        // blocking writes go to the runtime's blocking pool. (With the sinks on a second
        // thread each event crossed cores twice, to be encoded and to be freed; merging the
        // two cut the Tower layer's added CPU per request by about a tenth.)
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("audit-worker")
            .build()
            .map_err(|e| Error::config(format!("cannot start the audit worker runtime: {e}")))?;
        let tasks = self
            .sinks
            .into_iter()
            .map(|r| runtime.spawn((r.spawn)(Arc::clone(&ingress))))
            .collect();
        let (tx, rx) = mpsc::unbounded_channel();
        let dispatcher = Dispatcher::new(
            Arc::clone(&shared),
            rx,
            tasks,
            self.interval,
            self.drain_on_drop,
        );
        std::thread::Builder::new()
            .name("audit-worker".into())
            .spawn(move || runtime.block_on(dispatcher.run()))
            .map_err(|e| Error::config(format!("cannot start the audit worker thread: {e}")))?;
        if !recovered.is_empty() {
            settle_recovered(&shared, &recovered);
        }
        if let Some(previous) = previous
            && let Ok(event) = AuditEvent::builder("system.audit.unclean_shutdown")
                .category(crate::Category::System)
                .severity(crate::Severity::Critical)
                .description(format!(
                    "the previous run (stream {previous}) did not shut down cleanly; events it \
                     had not delivered are lost (a spool would have kept them)"
                ))
                .detail("previousStream", previous.as_str())
                .detail("spooled", false)
                .build()
        {
            shared.ingress.push_internal(event);
        }
        Ok(Auditor {
            inner: Arc::new(Handle {
                shared,
                commands: tx,
                overflow: self.overflow,
            }),
        })
    }
}
