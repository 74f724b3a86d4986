//! The caller-facing buffer: a byte-bounded queue that `record` pushes into and the worker
//! drains in bulk.
//!
//! One short mutex section per event: assign the sequence number, check room, push. The worker
//! is woken only when the queue crosses a watermark (or by its own timer), never per event.

use crate::sync::LockExt;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio::sync::Notify;

use super::system_events::DropRun;
use super::{OverflowPolicy, RecordError};
use crate::AuditEvent;

/// An event the pipeline's worker assembles, so that the thread recording it only moves what
/// the event will be made of (the Tower layer's path).
///
/// Closures returning an [`AuditEvent`] implement it; a type can implement it to be recorded
/// through [`Auditor::record_deferred_boxed`](crate::Auditor::record_deferred_boxed) without
/// a second allocation.
pub trait DeferredEvent: Send + 'static {
    /// Makes the event; runs on the worker thread (keep it free of locks and I/O).
    fn build(self: Box<Self>) -> AuditEvent;
}

impl<F> DeferredEvent for F
where
    F: FnOnce() -> AuditEvent + Send + 'static,
{
    fn build(self: Box<Self>) -> AuditEvent {
        (*self)()
    }
}

/// A recorded event, with its sequence number and charged size.
///
/// Held by value on purpose: boxing it costs an allocation on the caller that is freed on the
/// worker, and with glibc that made `record` six times slower (measured: 128 ns → 804 ns
/// median in `benches/record.rs`).
#[derive(Debug)]
pub(crate) struct Ready {
    pub(crate) seq: u64,
    pub(crate) size: usize,
    pub(crate) event: AuditEvent,
    /// Made by the pipeline itself (drop reports, sink health): never dropped by a bound.
    pub(crate) internal: bool,
}

/// The recipe for an event, with its sequence number. Kept apart from [`Ready`] events so
/// that each is a pointer's move, not an event's, through the queues.
pub(crate) struct Deferred {
    pub(crate) seq: u64,
    /// The bytes it was charged against the buffer.
    pub(crate) charged: usize,
    pub(crate) build: Box<dyn DeferredEvent>,
}

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deferred").field("seq", &self.seq).finish()
    }
}

/// One event out of a [`Backlog`], in sequence order.
pub(crate) struct Next {
    pub(crate) seq: u64,
    /// The charged size, or `None` for a built recipe (its real size is to be measured).
    pub(crate) size: Option<usize>,
    /// What it was charged against the buffer, given back once it is handed on.
    pub(crate) charged: usize,
    /// Put behind its `Arc` as soon as it is taken or built: the event is large (about
    /// 900 bytes), and every later move of it would be a copy.
    pub(crate) event: Arc<AuditEvent>,
    pub(crate) internal: bool,
}

/// Buffered events: ready ones and recipes, each queue in sequence order.
#[derive(Debug, Default)]
pub(crate) struct Backlog {
    ready: VecDeque<Ready>,
    deferred: VecDeque<Deferred>,
}

impl Backlog {
    fn with_capacity(n: usize) -> Backlog {
        Backlog {
            ready: VecDeque::with_capacity(n),
            deferred: VecDeque::with_capacity(n),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ready.is_empty() && self.deferred.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.ready.len() + self.deferred.len()
    }

    /// Whether the lowest sequence number is a ready event (`None`: both queues are empty).
    fn ready_first(&self) -> Option<bool> {
        match (self.ready.front(), self.deferred.front()) {
            (None, None) => None,
            (Some(r), Some(d)) => Some(r.seq < d.seq),
            (r, _) => Some(r.is_some()),
        }
    }

    /// The lowest sequence number of either queue. A recipe that panics becomes a
    /// `system.audit.build_failed` event rather than taking the worker down.
    pub(crate) fn pop(&mut self) -> Option<Next> {
        if self.ready_first()? {
            let r = self.ready.pop_front()?;
            return Some(Next {
                seq: r.seq,
                size: Some(r.size),
                charged: r.size,
                event: Arc::new(r.event),
                internal: r.internal,
            });
        }
        let d = self.deferred.pop_front()?;
        let charged = d.charged;
        let build = d.build;
        let event = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            Arc::new(build.build())
        }))
        .unwrap_or_else(|_| Arc::new(super::system_events::build_failed()));
        Some(Next {
            seq: d.seq,
            size: None,
            charged,
            event,
            internal: false,
        })
    }
}

/// What a caller hands to [`Ingress`]. Only passed through to the queues, where each variant
/// goes to its own (so the size difference costs nothing there).
#[allow(clippy::large_enum_variant)]
pub(crate) enum Entry {
    Ready(AuditEvent),
    Deferred(Box<dyn DeferredEvent>),
}

#[derive(Debug)]
struct State {
    queue: Backlog,
    bytes: usize,
    /// Bytes of events the worker has taken and not yet handed to the sinks' queues: they
    /// are still held, so they still count against the bound.
    taken: usize,
    next_seq: u64,
    closed: bool,
    wake_sent: bool,
    waiters: usize,
    /// Bytes promised to reservations not yet used.
    reserved: usize,
    drop_run: Option<DropRun>,
    accepted: u64,
    dropped: u64,
    rejected: u64,
}

#[derive(Debug)]
pub(crate) struct Ingress {
    state: Mutex<State>,
    space: Condvar,
    pub(crate) wake: Notify,
    capacity: usize,
    watermark: usize,
}

/// Counters read by `Auditor::metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct IngressCounts {
    pub(crate) accepted: u64,
    pub(crate) dropped: u64,
    pub(crate) rejected: u64,
    pub(crate) queued: usize,
    pub(crate) queued_bytes: usize,
}

impl Ingress {
    /// The buffer's bound, in bytes.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn new(capacity: usize, watermark: usize) -> Ingress {
        Ingress {
            state: Mutex::new(State {
                queue: Backlog::with_capacity(watermark * 2),
                bytes: 0,
                taken: 0,
                next_seq: 1,
                closed: false,
                wake_sent: false,
                waiters: 0,
                reserved: 0,
                drop_run: None,
                accepted: 0,
                dropped: 0,
                rejected: 0,
            }),
            space: Condvar::new(),
            wake: Notify::new(),
            capacity,
            watermark,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; if something ever did, the queue is still
        // consistent (every mutation is a single push/pop), so keep going.
        self.state.lock_ignore_poison()
    }

    /// The hot path: buffer an event from a caller, under `policy` when full.
    pub(crate) fn push(
        &self,
        event: Entry,
        size: usize,
        policy: OverflowPolicy,
    ) -> Result<u64, RecordError> {
        let mut st = self.lock();
        if st.closed {
            st.rejected += 1;
            return Err(RecordError::closed());
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        if !st.has_room(size, self.capacity) {
            if let OverflowPolicy::Block { timeout } = policy {
                st = self.wait_for_room(st, size, Instant::now() + timeout);
            }
            if !st.has_room(size, self.capacity) || st.closed {
                st.dropped += 1;
                DropRun::note(&mut st.drop_run, seq);
                return Err(RecordError::dropped(seq));
            }
        }
        st.accepted += 1;
        st.enqueue(seq, size, event, false);
        if !st.wake_sent && (st.queue.len() >= self.watermark || st.bytes >= self.capacity / 2) {
            st.wake_sent = true;
            drop(st);
            self.wake.notify_one();
        }
        Ok(seq)
    }

    fn wait_for_room<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        size: usize,
        deadline: Instant,
    ) -> MutexGuard<'a, State> {
        st.waiters += 1;
        self.wake.notify_one();
        while !st.has_room(size, self.capacity) && !st.closed {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = self
                .space
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        st.waiters -= 1;
        st
    }

    /// Promises room for one event of up to `bytes`, or says why it cannot.
    pub(crate) fn reserve(&self, bytes: usize) -> Result<(), RecordError> {
        let mut st = self.lock();
        if st.closed {
            return Err(RecordError::closed());
        }
        if st.bytes + st.taken + st.reserved + bytes > self.capacity {
            return Err(RecordError::no_room());
        }
        st.reserved += bytes;
        Ok(())
    }

    /// Buffers an event into room reserved earlier (it always fits: the room was promised).
    pub(crate) fn push_reserved(
        &self,
        event: Entry,
        size: usize,
        reserved: usize,
    ) -> Result<u64, RecordError> {
        let mut st = self.lock();
        st.reserved = st.reserved.saturating_sub(reserved);
        if st.closed {
            st.rejected += 1;
            return Err(RecordError::closed());
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        st.accepted += 1;
        st.enqueue(seq, size, event, false);
        Ok(seq)
    }

    /// Gives back room that was reserved and not used.
    pub(crate) fn release(&self, reserved: usize) {
        let mut st = self.lock();
        st.reserved = st.reserved.saturating_sub(reserved);
        let waiters = st.waiters > 0;
        drop(st);
        if waiters {
            self.space.notify_all();
        }
    }

    /// Buffers an event made by the pipeline itself (drop reports, sink health). These
    /// bypass the capacity bound and the closed flag so that reports of loss are never lost
    /// to the same overload, and health changes during the final flush still arrive.
    pub(crate) fn push_internal(&self, event: AuditEvent) -> u64 {
        #[cfg(feature = "tracing")]
        log_state_change(&event);
        let size = event.approx_size();
        let mut st = self.lock();
        let seq = st.next_seq;
        st.next_seq += 1;
        st.accepted += 1;
        st.enqueue(seq, size, Entry::Ready(event), true);
        seq
    }

    /// Moves up to `max` of the oldest buffered events into `into` (which must be empty) and
    /// returns the run of losses to report, now that there is room again.
    ///
    /// A chunk at a time, not the whole buffer: swapping whole queues left two of them at
    /// the buffer's full size (the one being worked through and the one refilling), which
    /// held about twice the memory the bound promises (measured: a 400,000-event burst
    /// through a 32 MiB buffer and a 32 MiB file sink queue peaked at 132 MB above the
    /// process's start with swaps, at 92 MB with chunks).
    pub(crate) fn drain(&self, into: &mut Backlog, max: usize) -> Option<DropRun> {
        debug_assert!(into.is_empty());
        let mut st = self.lock();
        let mut moved = 0;
        for _ in 0..max {
            let Some(ready_first) = st.queue.ready_first() else {
                break;
            };
            if ready_first {
                if let Some(r) = st.queue.ready.pop_front() {
                    moved += r.size;
                    into.ready.push_back(r);
                }
            } else if let Some(d) = st.queue.deferred.pop_front() {
                moved += d.charged;
                into.deferred.push_back(d);
            }
        }
        st.bytes = st.bytes.saturating_sub(moved);
        st.taken += moved;
        st.wake_sent = false;
        let run = st.drop_run.take();
        let waiters = st.waiters > 0;
        drop(st);
        if waiters {
            self.space.notify_all();
        }
        run
    }

    /// Gives back the bytes of events the worker has handed on.
    pub(crate) fn release_taken(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let mut st = self.lock();
        st.taken = st.taken.saturating_sub(bytes);
        let waiters = st.waiters > 0;
        drop(st);
        if waiters {
            self.space.notify_all();
        }
    }

    /// Refuses further records from callers; wakes blocked callers so they give up.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.space.notify_all();
        self.wake.notify_one();
    }

    /// True once [`close`](Self::close) ran.
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    pub(crate) fn is_empty(&self) -> bool {
        let st = self.lock();
        st.queue.is_empty() && st.drop_run.is_none()
    }

    pub(crate) fn counts(&self) -> IngressCounts {
        let st = self.lock();
        IngressCounts {
            accepted: st.accepted,
            dropped: st.dropped,
            rejected: st.rejected,
            queued: st.queue.len(),
            queued_bytes: st.bytes + st.taken,
        }
    }
}

impl State {
    /// An empty buffer always has room, so one event larger than the whole bound still
    /// passes. Reserved bytes and those the worker holds count as taken.
    fn has_room(&self, size: usize, capacity: usize) -> bool {
        let held = self.bytes + self.taken + self.reserved;
        held == 0 || held + size <= capacity
    }

    fn enqueue(&mut self, seq: u64, size: usize, event: Entry, internal: bool) {
        self.bytes += size;
        match event {
            Entry::Ready(event) => self.queue.ready.push_back(Ready {
                seq,
                size,
                event,
                internal,
            }),
            Entry::Deferred(build) => self.queue.deferred.push_back(Deferred {
                seq,
                charged: size,
                build,
            }),
        }
    }
}

/// With feature `tracing`: the pipeline's reports about itself (a sink failing, stalling or
/// recovering; losses; the spool) as log lines too, so operators see them in their usual
/// logs. They are already rate-limited where they are made (a state change, one loss report
/// a second); checkpoints are not logged.
#[cfg(feature = "tracing")]
fn log_state_change(event: &AuditEvent) {
    use crate::Severity;
    let t = event.event_type.as_str();
    if !(t.starts_with("system.sink.") || t.starts_with("system.audit."))
        || t == "system.audit.checkpoint"
    {
        return;
    }
    let text = event.description.as_deref().unwrap_or(t);
    match event.severity {
        Severity::Critical | Severity::Error => {
            tracing::error!(event_type = t, "{text}");
        }
        Severity::Warning => tracing::warn!(event_type = t, "{text}"),
        _ => tracing::info!(event_type = t, "{text}"),
    }
}
