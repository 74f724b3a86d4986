//! One sink's queue and the task that batches, delivers and retries from it.

use crate::sync::LockExt;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::ingress::Ingress;
use super::options::{Backoff, SinkOptions};
use super::report::SinkMetrics;
use super::system_events;
use super::system_events::DropRun;
use crate::{AuditEvent, Batch, Sink, SinkError};

/// One event in a sink's queue.
#[derive(Debug)]
pub(crate) struct Item {
    pub(crate) event: Arc<AuditEvent>,
    pub(crate) size: usize,
    pub(crate) seq: u64,
    /// A pipeline event: exempt from the queue bound, and its loss is not re-reported.
    pub(crate) internal: bool,
    /// An earlier run's event delivered again from the spool (its seq is of that stream).
    pub(crate) replay: bool,
    /// Its canonical JSON line, for a sink that wants lines.
    pub(crate) line: Option<Arc<[u8]>>,
}

#[derive(Debug, Default)]
struct Queue {
    events: VecDeque<Item>,
    bytes: usize,
    /// When the oldest queued event arrived; the batch is due `max_wait` later.
    oldest_at: Option<Instant>,
    /// Size of the batch being delivered (still pending until it succeeds or fails).
    in_flight: usize,
    /// The application events of that batch, in case the sink dies delivering it.
    in_flight_app: Option<DropRun>,
    /// Deliver without waiting for batches to fill (flush/shutdown).
    flushing: bool,
    /// Exit once the queue is empty.
    closed: bool,
    drop_run: Option<DropRun>,
    /// When the loss run being collected began.
    drop_run_since: Option<Instant>,
}

/// How long a loss may go unreported while it goes on.
pub(crate) const LOSS_REPORT_EVERY: Duration = Duration::from_secs(1);

/// State shared between the dispatcher (producer) and the sink's task (consumer).
pub(crate) struct SinkShared {
    pub(crate) name: String,
    options: SinkOptions,
    queue: Mutex<Queue>,
    notify: Notify,
    delivered: AtomicU64,
    dropped: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    healthy: AtomicBool,
    /// A delivery has gone unanswered for longer than `stall_after` and still runs.
    stalled: AtomicBool,
    /// The sink's task ended early (its `deliver` panicked): nothing will drain the queue.
    dead: AtomicBool,
    last_error: Mutex<Option<String>>,
    /// The highest seq of this stream the sink has acknowledged: delivered, or given up and
    /// reported (what the spool may forget).
    pub(crate) acked: AtomicU64,
    /// The same for the events of an earlier run being delivered again.
    pub(crate) replay_acked: AtomicU64,
    /// An earlier run's events to deliver again before anything else, by stream; taken by
    /// the sink's task when it starts.
    pub(crate) replay: Mutex<Vec<(String, Vec<Arc<AuditEvent>>)>>,
    /// Set once the task has queued the events of `replay`.
    pub(crate) replay_queued: AtomicBool,
    /// The sink writes canonical JSON lines ([`Sink::wants_lines`]).
    pub(crate) wants_lines: bool,
    /// Its full queue holds the pipeline back while it is healthy
    /// ([`SinkOptions::back_pressure`], resolved when the auditor is built).
    back_pressure: AtomicBool,
    /// Signalled when the queue gives up room or the sink stops holding the pipeline back.
    pub(crate) room: Notify,
}

impl std::fmt::Debug for SinkShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkShared")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl SinkShared {
    pub(crate) fn new(name: String, options: SinkOptions, wants_lines: bool) -> SinkShared {
        SinkShared {
            name,
            options,
            queue: Mutex::new(Queue::default()),
            notify: Notify::new(),
            delivered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            stalled: AtomicBool::new(false),
            dead: AtomicBool::new(false),
            last_error: Mutex::new(None),
            acked: AtomicU64::new(0),
            replay_acked: AtomicU64::new(0),
            replay: Mutex::new(Vec::new()),
            replay_queued: AtomicBool::new(false),
            wants_lines,
            back_pressure: AtomicBool::new(false),
            room: Notify::new(),
        }
    }

    /// Settles back-pressure once the auditor knows how many sinks it has.
    pub(crate) fn resolve_back_pressure(&self, only_sink: bool) {
        let on = self.options.back_pressure.unwrap_or(only_sink);
        self.back_pressure.store(on, Ordering::Relaxed);
    }

    /// The sink can take its time: it has back-pressure, is healthy and is not stalled.
    fn pushes_back(&self) -> bool {
        self.back_pressure.load(Ordering::Relaxed)
            && self.healthy.load(Ordering::Relaxed)
            && !self.stalled.load(Ordering::Relaxed)
            && !self.is_dead()
    }

    /// True while this sink holds the pipeline back: it [pushes back](Self::pushes_back) and
    /// its queue is full.
    pub(crate) fn holds_back(&self) -> bool {
        self.pushes_back() && {
            let q = self.lock();
            !q.closed && q.bytes >= self.options.queue_bytes
        }
    }

    /// Marks the sink's task as gone: what it held and everything sent to it from now on is
    /// counted as dropped (and reported, for application events).
    pub(crate) fn mark_dead(&self, why: &str) {
        self.dead.store(true, Ordering::Relaxed);
        self.healthy.store(false, Ordering::Relaxed);
        self.set_last_error(why);
        let mut q = self.lock();
        let lost: Vec<Item> = q.events.drain(..).collect();
        let in_flight = std::mem::take(&mut q.in_flight);
        q.bytes = 0;
        if let Some(run) = q.in_flight_app.take() {
            DropRun::merge(&mut q.drop_run, run);
        }
        Self::note_lost(&mut q, &lost);
        drop(q);
        self.dropped
            .fetch_add((lost.len() + in_flight) as u64, Ordering::Relaxed);
    }

    /// Notes application events in a loss report; a lost pipeline event is only counted, so
    /// reports about a dead sink never feed more reports.
    fn note_lost(q: &mut Queue, lost: &[Item]) {
        for item in lost.iter().filter(|i| !i.internal) {
            DropRun::note(&mut q.drop_run, item.seq);
        }
    }

    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock_ignore_poison()
    }

    pub(crate) fn accepts(&self, event: &AuditEvent) -> bool {
        self.options.filter.as_ref().is_none_or(|f| f(event))
    }

    /// Appends a round's events, dropping (and counting) those that exceed the bound.
    /// Pipeline events always fit: a report of loss must not be lost to the same bound. A sink
    /// that pushes back takes them all: the worker handed them over only because its queue
    /// had room (or because shutdown's deadline passed, when what is left is accounted for).
    pub(crate) fn enqueue(&self, events: &mut Vec<Item>) {
        if events.is_empty() {
            return;
        }
        if self.is_dead() {
            Self::note_lost(&mut self.lock(), events);
            self.dropped
                .fetch_add(events.len() as u64, Ordering::Relaxed);
            events.clear();
            return;
        }
        let mut dropped = 0;
        let pushes_back = self.pushes_back();
        let mut q = self.lock();
        if q.events.is_empty() {
            q.oldest_at = Some(Instant::now());
        }
        for item in events.drain(..) {
            if item.internal
                || pushes_back
                || q.events.is_empty()
                || q.bytes + item.size <= self.options.queue_bytes
            {
                q.bytes += item.size;
                q.events.push_back(item);
            } else {
                dropped += 1;
                DropRun::note(&mut q.drop_run, item.seq);
            }
        }
        drop(q);
        if dropped > 0 {
            self.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        self.notify.notify_one();
    }

    /// The run of this sink's losses, once its queue has room again or the run is
    /// [`LOSS_REPORT_EVERY`] old (a loss that goes on is reported as it goes on, not only when
    /// it ends).
    pub(crate) fn take_drop_run_if_due(&self) -> Option<DropRun> {
        let mut q = self.lock();
        q.drop_run?;
        let since = *q.drop_run_since.get_or_insert_with(Instant::now);
        if q.bytes <= self.options.queue_bytes / 2 || since.elapsed() >= LOSS_REPORT_EVERY {
            q.drop_run_since = None;
            q.drop_run.take()
        } else {
            None
        }
    }

    /// The application events still queued or in flight, as a run (count, first and last
    /// seq), for the final account at shutdown.
    pub(crate) fn pending_run(&self) -> Option<DropRun> {
        let q = self.lock();
        let mut run = q.in_flight_app;
        for item in q.events.iter().filter(|i| !i.internal) {
            DropRun::note(&mut run, item.seq);
        }
        run
    }

    /// Whatever loss is waiting to be reported, now (at shutdown).
    pub(crate) fn take_drop_run(&self) -> Option<DropRun> {
        let mut q = self.lock();
        q.drop_run_since = None;
        q.drop_run.take()
    }

    pub(crate) fn set_flushing(&self, on: bool) {
        self.lock().flushing = on;
        self.notify.notify_one();
    }

    pub(crate) fn close(&self) {
        let mut q = self.lock();
        q.flushing = true;
        q.closed = true;
        drop(q);
        self.notify.notify_one();
    }

    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed) && !self.is_dead()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Nothing queued, nothing being delivered, no loss waiting to be reported.
    pub(crate) fn is_idle(&self) -> bool {
        let q = self.lock();
        q.events.is_empty() && q.in_flight == 0 && q.drop_run.is_none()
    }

    pub(crate) fn metrics(&self) -> SinkMetrics {
        let q = self.lock();
        let pending = (q.events.len() + q.in_flight) as u64;
        drop(q);
        SinkMetrics {
            name: self.name.clone(),
            delivered: self.delivered.load(Ordering::Relaxed),
            pending,
            dropped: self.dropped.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            healthy: self.healthy.load(Ordering::Relaxed) && !self.dead.load(Ordering::Relaxed),
            stalled: self.stalled.load(Ordering::Relaxed),
            last_error: self.last_error.lock_ignore_poison().clone(),
        }
    }

    fn set_last_error(&self, message: &str) {
        *self.last_error.lock_ignore_poison() = Some(message.to_owned());
    }

    /// Waits until a batch is due and takes it; `None` once closed and empty.
    async fn next_batch(&self) -> Option<Taken> {
        loop {
            let due_at = {
                let mut q = self.lock();
                let n = q.events.len();
                if n == 0 {
                    if q.closed {
                        return None;
                    }
                    None
                } else {
                    let due = q
                        .oldest_at
                        .map_or_else(Instant::now, |t| t + self.options.max_wait);
                    if q.flushing
                        || n >= self.options.max_batch_events
                        || q.bytes >= self.options.max_batch_bytes
                        || Instant::now() >= due
                    {
                        return Some(self.take_batch(&mut q));
                    }
                    Some(due)
                }
            };
            match due_at {
                None => self.notify.notified().await,
                Some(due) => {
                    tokio::select! {
                        () = self.notify.notified() => {}
                        () = tokio::time::sleep_until(due.into()) => {}
                    }
                }
            }
        }
    }

    fn take_batch(&self, q: &mut Queue) -> Taken {
        let mut events = Vec::with_capacity(q.events.len().min(self.options.max_batch_events));
        let mut lines = Vec::new();
        let mut bytes = 0;
        let mut only_internal = true;
        let mut app = None;
        let (mut last_seq, mut last_replay) = (None, None);
        while let Some(next) = q.events.front() {
            if !events.is_empty()
                && (events.len() >= self.options.max_batch_events
                    || bytes + next.size > self.options.max_batch_bytes)
            {
                break;
            }
            let Some(item) = q.events.pop_front() else {
                break;
            };
            bytes += item.size;
            only_internal &= item.internal;
            if item.replay {
                last_replay = Some(item.seq);
            } else {
                last_seq = Some(item.seq);
            }
            if !item.internal {
                DropRun::note(&mut app, item.seq);
            }
            if self.wants_lines {
                lines.push(item.line);
            }
            events.push(item.event);
        }
        q.bytes = q.bytes.saturating_sub(bytes);
        self.room.notify_one();
        q.in_flight = events.len();
        q.in_flight_app = app;
        q.oldest_at = (!q.events.is_empty()).then(Instant::now);
        Taken {
            batch: Batch::with_lines(events, lines),
            only_internal,
            last_seq,
            last_replay,
        }
    }

    fn finish_batch(&self) {
        let mut q = self.lock();
        q.in_flight = 0;
        q.in_flight_app = None;
    }
}

/// A batch and whether it holds only pipeline events.
struct Taken {
    batch: Batch,
    only_internal: bool,
    /// The highest seq of this stream in it, and of an earlier run's replayed events.
    last_seq: Option<u64>,
    last_replay: Option<u64>,
}

/// Runs one sink until its queue is closed and empty, then flushes it.
pub(crate) async fn run<S: Sink>(mut sink: S, shared: Arc<SinkShared>, ingress: Arc<Ingress>) {
    queue_replay(&mut sink, &shared).await;
    while let Some(taken) = shared.next_batch().await {
        deliver(&mut sink, &taken, &shared, &ingress).await;
        // Delivered or given up (and reported): either way the spool may forget it.
        if let Some(seq) = taken.last_seq {
            shared.acked.fetch_max(seq, Ordering::Relaxed);
        }
        if let Some(seq) = taken.last_replay {
            shared.replay_acked.fetch_max(seq, Ordering::Relaxed);
        }
        shared.finish_batch();
    }
    if let Err(e) = sink.flush().await {
        shared.set_last_error(&format!("final flush failed: {e}"));
        shared.healthy.store(false, Ordering::Relaxed);
    }
}

/// Queues an earlier run's undelivered events ahead of everything else, skipping those the
/// sink says it already holds (a file that wrote them before the crash).
async fn queue_replay<S: Sink>(sink: &mut S, shared: &SinkShared) {
    let replay = std::mem::take(&mut *shared.replay.lock_ignore_poison());
    for (stream, events) in replay {
        let held = sink.delivered_through(&stream).await.unwrap_or(0);
        let mut items: Vec<Item> = events
            .into_iter()
            .filter(|e| e.seq().is_some_and(|s| s > held) && shared.accepts(e))
            .map(|event| Item {
                size: event.approx_size(),
                seq: event.seq().unwrap_or(0),
                event,
                internal: true,
                replay: true,
                line: None,
            })
            .collect();
        shared.enqueue(&mut items);
    }
    shared.replay_queued.store(true, Ordering::Relaxed);
}

/// Delivers one batch, retrying per policy; reports health transitions and give-ups.
///
/// A batch the sink rejects as permanent is split in halves and each half delivered on its
/// own, down to single events, so one event a sink cannot take never costs the others: only
/// the events the sink refuses by themselves are given up. One bad event in a batch of `n`
/// costs about `2 log2 n` more calls; a sink that refuses every payload costs about two
/// calls per event of the batch before all are reported.
///
/// Internal events are recorded *before* the batch is marked finished, so a flush that sees
/// the sink idle also sees those events in the ingress queue.
async fn deliver<S: Sink>(sink: &mut S, taken: &Taken, shared: &SinkShared, ingress: &Ingress) {
    // Sub-batches still to deliver, the next on top, so sequence order is kept.
    let mut todo: Vec<Batch> = vec![taken.batch.clone()];
    let mut refused: Vec<Arc<AuditEvent>> = Vec::new();
    while let Some(batch) = todo.pop() {
        match deliver_with_retry(sink, &batch, shared, ingress).await {
            Ok(()) => {}
            Err(err) if err.is_permanent() && batch.len() > 1 => {
                let events = batch.events();
                let (left, right) = events.split_at(events.len() / 2);
                todo.push(Batch::from(right.to_vec()));
                todo.push(Batch::from(left.to_vec()));
            }
            Err(err) if err.is_permanent() => refused.extend(batch.events().iter().cloned()),
            Err(_) => give_up(
                &batch,
                taken.only_internal,
                shared,
                ingress,
                "retries_exhausted",
            ),
        }
    }
    if !refused.is_empty() {
        give_up(
            &Batch::from(refused),
            taken.only_internal,
            shared,
            ingress,
            "rejected_by_sink",
        );
    }
}

/// One batch, retried while the error is retryable and the policy allows.
async fn deliver_with_retry<S: Sink>(
    sink: &mut S,
    batch: &Batch,
    shared: &SinkShared,
    ingress: &Ingress,
) -> Result<(), SinkError> {
    let mut backoff = Backoff::new(shared.options.retry);
    let mut down_since: Option<Instant> = None;
    loop {
        let attempt = sink.deliver(batch);
        tokio::pin!(attempt);
        let result = tokio::select! {
            r = &mut attempt => r,
            () = tokio::time::sleep(shared.options.stall_after) => {
                // Said while it still hangs, not only once its own timeout fails it.
                ingress.push_internal(system_events::sink_stalled(
                    &shared.name,
                    shared.options.stall_after,
                    batch.len(),
                ));
                shared.stalled.store(true, Ordering::Relaxed);
                shared.room.notify_one();
                let r = attempt.await;
                shared.stalled.store(false, Ordering::Relaxed);
                r
            }
        };
        match result {
            Ok(()) => {
                shared
                    .delivered
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                if !shared.healthy.swap(true, Ordering::Relaxed) {
                    let down_for = down_since.map_or(Duration::ZERO, |t| t.elapsed());
                    ingress.push_internal(system_events::sink_recovered(
                        &shared.name,
                        backoff.failures(),
                        down_for,
                    ));
                }
                return Ok(());
            }
            Err(err) => {
                shared.set_last_error(err.message());
                let delay = backoff.next_delay(err.retry_after());
                // A permanent refusal of a batch that is then split is the payload's fault,
                // not the sink's: health changes only for retryable failures and for single
                // events refused.
                if (!err.is_permanent() || batch.len() == 1)
                    && shared.healthy.swap(false, Ordering::Relaxed)
                {
                    down_since = Some(Instant::now());
                    shared.room.notify_one();
                    ingress.push_internal(system_events::sink_unhealthy(&shared.name, &err));
                }
                if err.is_permanent() || backoff.exhausted() {
                    return Err(err);
                }
                shared.retried.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Counts events as failed and reports them, one `system.audit.dropped` per tenant (filed
/// under that tenant, with the events' ids), unless they are only pipeline events:
/// reporting the loss of reports to the sink that cannot take them would never end.
fn give_up(
    batch: &Batch,
    only_internal: bool,
    shared: &SinkShared,
    ingress: &Ingress,
    reason: &str,
) {
    shared
        .failed
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    if only_internal {
        return;
    }
    let mut by_tenant: Vec<(Option<&str>, Vec<&AuditEvent>)> = Vec::new();
    for e in batch.iter() {
        let tenant = e.organization_id();
        match by_tenant.iter_mut().find(|(t, _)| *t == tenant) {
            Some((_, list)) => list.push(e),
            None => by_tenant.push((tenant, vec![e])),
        }
    }
    for (tenant, events) in by_tenant {
        let run = events
            .iter()
            .filter_map(|e| e.seq())
            .fold(None, |mut run, seq| {
                DropRun::note(&mut run, seq);
                run
            });
        if let Some(mut run) = run {
            run.count = events.len() as u64;
            let ids = events.iter().map(|e| e.id.to_string());
            ingress.push_internal(system_events::dropped_events(
                run,
                &shared.name,
                reason,
                tenant,
                ids,
            ));
        }
    }
}
