//! The worker: drains the buffer in bulk, stamps each event, and fans it out to the sink
//! queues; runs flush and shutdown.

use crate::sync::LockExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::ingress::{Backlog, Ingress};
use super::report::{Metrics, ShutdownReport};
use super::sink_task::{Item, SinkShared};
use super::system_events;
use crate::integrity::{CHECKPOINT_EVENT, Chain, CheckpointKey, CheckpointPolicy, Keyring};
use crate::{AuditEvent, Context, Integrity};

/// The worker-side stages every event passes before any sink sees it: redaction first, so
/// nothing downstream (sinks, the hash chain) sees a secret; then the limits, so every string
/// is storable and no event is larger than the cap; the hash chain last, over the event
/// exactly as the sinks get it. Returns the event's `approx_size` (the limits measured it).
fn stamp(shared: &Shared, chain: Option<&mut Chain>, event: &mut AuditEvent, seq: u64) -> usize {
    shared.redactor.redact(event);
    let (_, size) = shared.limits.apply_sized(event);
    if let Some(service) = &shared.service {
        let ctx = event.context.get_or_insert_with(Context::default);
        if ctx.service.is_none() {
            ctx.service = Some(service.clone());
        }
    }
    event.integrity = Some(Integrity::new(shared.stream.clone(), seq));
    if let Some(chain) = chain {
        // Encoding has no failing case for an event that passed the limits; an event that
        // could not be encoded would be refused by every JSON sink as well.
        let _ = chain.link(event, seq);
    }
    size
}

/// Events redacted and fanned out per step.
const DRAIN_CHUNK: usize = 1024;

/// A request from an `Auditor` handle to the worker.
#[derive(Debug)]
pub(crate) enum Command {
    Flush {
        deadline: Instant,
        reply: oneshot::Sender<bool>,
    },
    Shutdown {
        deadline: Instant,
        reply: Reply,
    },
}

/// Where the shutdown report goes: an async or a blocking waiter.
#[derive(Debug)]
pub(crate) enum Reply {
    Async(oneshot::Sender<ShutdownReport>),
    Blocking(std::sync::mpsc::Sender<ShutdownReport>),
}

impl Reply {
    fn send(self, report: ShutdownReport) {
        // A waiter that gave up is not an error.
        let _ = match self {
            Reply::Async(tx) => tx.send(report).map_err(drop),
            Reply::Blocking(tx) => tx.send(report).map_err(drop),
        };
    }
}

/// Everything the worker and the handles share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) ingress: Arc<Ingress>,
    pub(crate) sinks: Vec<Arc<SinkShared>>,
    pub(crate) stream: crate::Text,
    pub(crate) service: Option<crate::Text>,
    pub(crate) redactor: crate::redact::Redactor,
    pub(crate) limits: crate::Limits,
    pub(crate) final_report: std::sync::OnceLock<ShutdownReport>,
    /// True when events are hash-chained.
    pub(crate) chained: bool,
    /// The key checkpoints are signed with; `None` when there are no checkpoints.
    pub(crate) checkpoint_key: std::sync::Mutex<Option<CheckpointKey>>,
    /// Every public key this auditor has signed with, oldest first.
    pub(crate) keyring: std::sync::Mutex<Keyring>,
    pub(crate) checkpoint_policy: CheckpointPolicy,
    /// The durable spool, when configured.
    pub(crate) spool: Option<super::spool::SpoolHandle>,
    /// Without a spool: where this run says whether it is going or ended cleanly.
    pub(crate) state_file: Option<std::path::PathBuf>,
}

impl Shared {
    fn signing_key(&self) -> Option<CheckpointKey> {
        self.checkpoint_key.lock_ignore_poison().clone()
    }
}

impl Shared {
    pub(crate) fn metrics(&self) -> Metrics {
        let c = self.ingress.counts();
        Metrics {
            recorded: c.accepted,
            dropped: c.dropped,
            rejected: c.rejected,
            buffered: c.queued as u64,
            buffered_bytes: c.queued_bytes as u64,
            sinks: self.sinks.iter().map(|s| s.metrics()).collect(),
        }
    }
}

pub(crate) struct Dispatcher {
    pub(crate) shared: Arc<Shared>,
    pub(crate) commands: mpsc::UnboundedReceiver<Command>,
    pub(crate) tasks: Vec<JoinHandle<()>>,
    pub(crate) interval: Duration,
    pub(crate) drain_on_drop: Duration,
    /// Events taken from the buffer and not yet fanned out.
    buf: Backlog,
    per_sink: Vec<Vec<Item>>,
    chain: Option<Chain>,
    /// Events chained since the last checkpoint (checkpoints not counted), and when it was.
    since_checkpoint: u64,
    last_checkpoint: Instant,
    /// The highest seq handed to the sinks' queues.
    last_fanned: u64,
    /// Some sink writes canonical JSON lines.
    lines_wanted: bool,
    line_buf: Vec<u8>,
    /// Shutdown's deadline passed: hand everything on whatever the sinks' queues hold, so
    /// the final account covers it.
    force: bool,
}

impl Dispatcher {
    pub(crate) fn new(
        shared: Arc<Shared>,
        commands: mpsc::UnboundedReceiver<Command>,
        tasks: Vec<JoinHandle<()>>,
        interval: Duration,
        drain_on_drop: Duration,
    ) -> Dispatcher {
        let per_sink = shared.sinks.iter().map(|_| Vec::new()).collect();
        let chain = shared.chained.then(Chain::new);
        let lines_wanted = shared.sinks.iter().any(|s| s.wants_lines);
        Dispatcher {
            shared,
            commands,
            tasks,
            interval,
            drain_on_drop,
            chain,
            buf: Backlog::default(),
            per_sink,
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            last_fanned: 0,
            lines_wanted,
            line_buf: Vec::with_capacity(2048),
            force: false,
        }
    }

    pub(crate) async fn run(mut self) {
        loop {
            let ingress = Arc::clone(&self.shared.ingress);
            // A sink holding the pipeline back wakes the worker when its queue has room.
            let holder = self.holder();
            let room = async {
                match &holder {
                    Some(sink) => sink.room.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Flush { deadline, reply }) => {
                        let done = self.quiesce(deadline).await;
                        let _ = reply.send(done);
                    }
                    Some(Command::Shutdown { deadline, reply }) => {
                        let report = self.shutdown(deadline).await;
                        reply.send(report);
                        return;
                    }
                    None => {
                        // Every handle is gone without an explicit shutdown: deliver what we
                        // have within the configured grace period.
                        self.shared.ingress.close();
                        self.shutdown(Instant::now() + self.drain_on_drop).await;
                        return;
                    }
                },
                () = ingress.wake.notified() => {}
                () = room => {}
                () = tokio::time::sleep(self.interval) => {}
            }
            while self.round() {
                tokio::task::yield_now().await;
            }
        }
    }

    /// One pass: take what is buffered, stamp a chunk of it, and hand that to the sinks'
    /// queues. Returns true when it handed a chunk over (more may be buffered), so the caller
    /// lets the sink tasks (on this thread) run before the next pass: one chunk per pass keeps
    /// them delivering while a burst is drained.
    fn round(&mut self) -> bool {
        self.reap_dead_sinks();
        if self.buf.is_empty() {
            let ingress = &self.shared.ingress;
            if let Some(run) = ingress.drain(&mut self.buf, DRAIN_CHUNK) {
                ingress.push_internal(system_events::dropped(run, None, "buffer_full"));
            }
        }
        // A sink with back-pressure and a full queue holds everything here (and so in the
        // buffer, where `record` waits for room) until its queue has room again.
        let more = !self.buf.is_empty() && (self.force || self.holder().is_none());
        if more {
            self.fan_out();
        }
        if self.shared.spool.is_some() {
            self.advance_idle_positions();
        }
        self.report_sink_losses();
        self.checkpoint_if_due();
        more
    }

    /// The sink holding the pipeline back, if one is.
    fn holder(&self) -> Option<Arc<SinkShared>> {
        self.shared
            .sinks
            .iter()
            .find(|s| s.holds_back())
            .map(Arc::clone)
    }

    /// A sink with nothing queued or in flight holds everything fanned out so far that it
    /// accepts: its position moves past the events its filter skipped, so the spool can
    /// forget them.
    fn advance_idle_positions(&self) {
        if self.last_fanned == 0 {
            return;
        }
        for sink in &self.shared.sinks {
            if sink.is_idle() {
                sink.acked
                    .fetch_max(self.last_fanned, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// Records a checkpoint when the policy says one is due and events were chained since
    /// the last.
    fn checkpoint_if_due(&mut self) {
        if self.since_checkpoint == 0 {
            return;
        }
        let policy = self.shared.checkpoint_policy;
        if self.since_checkpoint >= policy.every_events
            || self.last_checkpoint.elapsed() >= policy.every
        {
            self.checkpoint(false);
        }
    }

    /// Signs the chain head as it stands (everything stamped so far) into a checkpoint event,
    /// which goes through the buffer like the pipeline's other events.
    fn checkpoint(&mut self, last: bool) {
        let (Some(chain), Some(key)) = (&self.chain, self.shared.signing_key()) else {
            return;
        };
        let Some(seq) = chain.head_seq() else {
            return;
        };
        let event =
            crate::integrity::checkpoint_event(&key, &self.shared.stream, seq, chain.head(), last);
        self.shared.ingress.push_internal(event);
        self.since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
    }

    /// A sink whose queue overflowed gets its loss reported once it has room again, or
    /// within a second while the loss goes on.
    fn report_sink_losses(&self) {
        for sink in &self.shared.sinks {
            if let Some(run) = sink.take_drop_run_if_due() {
                self.shared.ingress.push_internal(system_events::dropped(
                    run,
                    Some(&sink.name),
                    "sink_queue_full",
                ));
            }
        }
    }

    /// Stamps and hands over one chunk of the backlog; chunks keep what is redacted and
    /// fanned out small enough to stay in cache.
    fn fan_out(&mut self) {
        let spooling = self.shared.spool.is_some();
        let mut chunk = super::spool::Chunk {
            bytes: Vec::new(),
            first: 0,
            last: 0,
        };
        let mut handed_on = 0;
        for _ in 0..DRAIN_CHUNK {
            let Some(mut q) = self.buf.pop() else { break };
            handed_on += q.charged;
            // In place: the event is large, and each move of it is a copy. The handle is the
            // only one (`make_mut` copies nothing then), so redaction always runs on it.
            debug_assert_eq!(
                Arc::strong_count(&q.event),
                1,
                "make_mut would copy the event"
            );
            let event = Arc::make_mut(&mut q.event);
            if event.event_type.as_str() != CHECKPOINT_EVENT {
                self.since_checkpoint += 1;
            }
            let measured = stamp(&self.shared, self.chain.as_mut(), event, q.seq);
            self.last_fanned = self.last_fanned.max(q.seq);
            // The line the chain encoded, for the spool and for sinks that write lines: the
            // event is not encoded again.
            let line: Option<Arc<[u8]>> = match &self.chain {
                Some(chain) if spooling || self.lines_wanted => {
                    self.line_buf.clear();
                    chain.line_into(&mut self.line_buf);
                    Some(Arc::from(self.line_buf.as_slice()))
                }
                _ => None,
            };
            if spooling {
                if chunk.bytes.is_empty() {
                    chunk.first = q.seq;
                }
                chunk.last = q.seq;
                match &line {
                    Some(l) => chunk.bytes.extend_from_slice(l),
                    None => {
                        if event.write_json(&mut chunk.bytes).is_ok() {
                            chunk.bytes.push(b'\n');
                        }
                    }
                }
            }
            // A deferred event was charged an estimate; the sinks' queues get its real size.
            let size = q.size.unwrap_or(measured);
            let event = q.event;
            for (sink, out) in self.shared.sinks.iter().zip(&mut self.per_sink) {
                if sink.accepts(&event) {
                    let line = line.as_ref().filter(|_| sink.wants_lines).cloned();
                    out.push(Item {
                        event: Arc::clone(&event),
                        size: size + line.as_ref().map_or(0, |l| l.len()),
                        seq: q.seq,
                        internal: q.internal,
                        replay: false,
                        line,
                    });
                }
            }
        }
        if let Some(spool) = &self.shared.spool
            && !chunk.bytes.is_empty()
        {
            spool.send(chunk);
        }
        for (sink, out) in self.shared.sinks.iter().zip(&mut self.per_sink) {
            sink.enqueue(out);
        }
        // Now held by the sinks' queues (under their own bounds), no longer by the buffer.
        self.shared.ingress.release_taken(handed_on);
    }

    /// A sink task that ended while its queue is open panicked in `deliver`: say so, once,
    /// rather than letting its queue fill in silence.
    fn reap_dead_sinks(&mut self) {
        for (sink, task) in self.shared.sinks.iter().zip(&self.tasks) {
            if task.is_finished() && !sink.is_dead() && !sink.is_closed() {
                let why = "sink task ended unexpectedly (its deliver panicked); \
                           events for it are counted as dropped";
                sink.mark_dead(why);
                // Nothing will acknowledge for it: the spool must not wait on it.
                sink.acked
                    .store(u64::MAX, std::sync::atomic::Ordering::Relaxed);
                self.shared
                    .ingress
                    .push_internal(system_events::sink_unhealthy(
                        &sink.name,
                        &crate::SinkError::permanent(why),
                    ));
            }
        }
    }

    /// At a shutdown that could not deliver everything: one `system.audit.dropped` per sink
    /// for the losses not yet reported, and one `system.audit.undelivered` per sink with
    /// events still queued, naming how many and their seq range.
    fn final_account(&self) {
        for sink in &self.shared.sinks {
            if let Some(run) = sink.take_drop_run() {
                self.shared.ingress.push_internal(system_events::dropped(
                    run,
                    Some(&sink.name),
                    "sink_queue_full",
                ));
            }
            if let Some(run) = sink.pending_run() {
                self.shared
                    .ingress
                    .push_internal(system_events::undelivered(run, &sink.name));
            }
        }
    }

    /// Delivers everything recorded so far; true if all sinks went idle before `deadline`.
    async fn quiesce(&mut self, deadline: Instant) -> bool {
        for s in &self.shared.sinks {
            s.set_flushing(true);
        }
        let done = loop {
            self.round();
            // Sinks first: a sink records its health events before it reports idle, so an
            // idle sink's events are already visible in the buffer checked next.
            if self.shared.sinks.iter().all(|s| s.is_idle())
                && self.buf.is_empty()
                && self.shared.ingress.is_empty()
            {
                break true;
            }
            if Instant::now() >= deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        for s in &self.shared.sinks {
            s.set_flushing(false);
        }
        done
    }

    async fn shutdown(&mut self, deadline: Instant) -> ShutdownReport {
        let mut drained = self.quiesce(deadline).await;
        if !drained {
            // Nothing is held back any more: what the buffer still holds goes to the queues,
            // where the final account counts it as undelivered.
            self.force = true;
            while self.round() {}
            // The final account, into every sink that can still take it: what each sink lost
            // and what it still owes.
            self.final_account();
            // Half a second past the deadline at most, for the healthy sinks to write it.
            let _ = self
                .quiesce(Instant::now() + Duration::from_millis(500))
                .await;
        }
        if drained && self.shared.signing_key().is_some() {
            // The final checkpoint covers everything, then is delivered like any event.
            self.checkpoint(true);
            drained = self.quiesce(deadline).await;
        }
        for s in &self.shared.sinks {
            s.close();
        }
        let mut all_finished = true;
        for task in &mut self.tasks {
            match tokio::time::timeout_at(deadline.into(), &mut *task).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => {
                    all_finished = false;
                    task.abort();
                }
            }
        }
        // Events recorded by sinks during their final flush still count in the report.
        while self.round() {}
        if let Some(spool) = &self.shared.spool {
            spool.close();
        }
        let metrics = self.shared.metrics();
        // Complete means nothing was lost anywhere: no event dropped at the buffer or at a
        // sink, none given up, none left pending, and every sink's final flush succeeded
        // (one that failed may not have made durable, or re-sent, what it took).
        let complete = drained
            && all_finished
            && metrics.dropped == 0
            && metrics
                .sinks
                .iter()
                .all(|s| s.pending == 0 && s.dropped == 0 && s.failed == 0 && s.healthy);
        let report = ShutdownReport { complete, metrics };
        if let Some(path) = &self.shared.state_file {
            // A failed write makes the next start report this run as unclean: the safe side.
            let _ = super::run_state::end(path, &self.shared.stream);
        }
        let _ = self.shared.final_report.set(report.clone());
        report
    }
}
