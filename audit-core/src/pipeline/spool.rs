//! The durable spool: every stamped event (redacted and chained) appended to local segment
//! files with group commit, before or while the sinks get it; sinks' positions persisted; what
//! a sink had not acknowledged when the process died delivered again on the next start.
//!
//! # On disk
//! One directory (`0700`), per stream:
//! - `<stream>.<first seq, 20 digits>.spool`: segments (`0600`) of JSON lines, exactly as the
//!   JSON-lines format writes them; a new one after [`SpoolOptions::segment_bytes`];
//! - `<stream>.positions.json` (`0600`): per sink, the highest seq it has acknowledged
//!   (delivered, or given up and reported), the highest seq made durable, and whether the
//!   stream was closed by a clean shutdown. Written every 100 ms by replacing the file.
//!
//! A segment is deleted once every sink has acknowledged its last event; at a clean shutdown
//! with everything delivered, the stream's files are removed.
//!
//! # Group commit
//! The worker hands the spool thread each chunk it stamps (up to 1024 events) as one buffer;
//! the thread writes what has arrived, calls `fdatasync` once, and then announces the highest
//! durable seq. Callers waiting in [`Auditor::wait_durable`](crate::Auditor::wait_durable) are
//! released by that announcement.

use crate::sync::LockExt;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::ingress::Ingress;
use super::sink_task::SinkShared;
use crate::{AuditEvent, Category, Error, Severity};

/// Settings of the durable spool ([`AuditorBuilder::spool`](crate::AuditorBuilder::spool)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpoolOptions {
    /// The directory (created `0700` if missing). Give each auditor its own.
    pub dir: PathBuf,
    /// The most the spool holds on disk (default 1 GiB). When sinks fall this far behind (or
    /// the disk fails), new events are still delivered from memory but not spooled: each such
    /// run is reported by a `system.audit.spool_failed` event (`firstSeq`, `lastSeq`,
    /// `error`), and durable waits for those events fail.
    pub max_bytes: u64,
    /// Size at which a new segment begins (default 64 MiB).
    pub segment_bytes: u64,
    /// How long [`Auditor::wait_durable`](crate::Auditor::wait_durable) waits by default
    /// (default 2 s): the `AuditLayer`'s strict rules refuse the response (503) after it.
    pub durable_timeout: Duration,
    /// How long the auditor's start waits for a previous run's undelivered events to reach
    /// the sinks again (default 10 s); delivery goes on in the background after it.
    pub recovery_wait: Duration,
}

impl SpoolOptions {
    /// A spool in `dir` with the defaults.
    pub fn new(dir: impl Into<PathBuf>) -> SpoolOptions {
        SpoolOptions {
            dir: dir.into(),
            max_bytes: 1 << 30,
            segment_bytes: 64 << 20,
            durable_timeout: Duration::from_secs(2),
            recovery_wait: Duration::from_secs(10),
        }
    }

    /// The bound on the spool's size.
    #[must_use]
    pub fn max_bytes(mut self, bytes: u64) -> SpoolOptions {
        self.max_bytes = bytes;
        self
    }

    /// The segment size.
    #[must_use]
    pub fn segment_bytes(mut self, bytes: u64) -> SpoolOptions {
        self.segment_bytes = bytes.max(4096);
        self
    }

    /// The default durable wait.
    #[must_use]
    pub fn durable_timeout(mut self, timeout: Duration) -> SpoolOptions {
        self.durable_timeout = timeout;
        self
    }

    /// How long start-up waits for recovered events to be delivered.
    #[must_use]
    pub fn recovery_wait(mut self, wait: Duration) -> SpoolOptions {
        self.recovery_wait = wait;
        self
    }
}

/// One chunk from the worker: complete JSON lines, seqs `first..=last` (in order).
pub(crate) struct Chunk {
    pub(crate) bytes: Vec<u8>,
    pub(crate) first: u64,
    pub(crate) last: u64,
}

/// What callers waiting for durability watch.
#[derive(Debug, Default)]
pub(crate) struct Durability {
    /// Seq ranges that were not spooled (full or failing spool), newest last.
    not_spooled: Mutex<VecDeque<(u64, u64)>>,
    /// Why the last range was not spooled.
    reason: Mutex<String>,
}

impl Durability {
    /// `None` when `seq` was spooled, or why not.
    pub(crate) fn failure(&self, seq: u64) -> Option<String> {
        let ranges = self.not_spooled.lock_ignore_poison();
        ranges
            .iter()
            .any(|&(a, b)| (a..=b).contains(&seq))
            .then(|| self.reason.lock_ignore_poison().clone())
    }

    fn note(&self, first: u64, last: u64, why: &str) {
        let mut ranges = self.not_spooled.lock_ignore_poison();
        if ranges.len() >= 1024 {
            ranges.pop_front();
        }
        ranges.push_back((first, last));
        *self.reason.lock_ignore_poison() = why.to_owned();
    }
}

/// The worker's and the handles' side of the spool.
#[derive(Debug)]
pub(crate) struct SpoolHandle {
    pub(crate) tx: Mutex<Option<SyncSender<Chunk>>>,
    pub(crate) durable: watch::Receiver<u64>,
    pub(crate) durability: Arc<Durability>,
    pub(crate) options: SpoolOptions,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl SpoolHandle {
    /// Hands a chunk to the spool thread; blocks while 64 chunks are already waiting, which
    /// bounds the memory they hold and slows the worker to the disk's pace.
    pub(crate) fn send(&self, chunk: Chunk) {
        let tx = self.tx.lock_ignore_poison().clone();
        if let Some(tx) = tx
            && let Err(e) = tx.send(chunk)
        {
            let c = e.0;
            self.durability
                .note(c.first, c.last, "the spool has stopped");
        }
    }

    /// Ends the spool thread after it has written what it was given, and records the clean
    /// end of the stream.
    pub(crate) fn close(&self) {
        self.tx.lock_ignore_poison().take();
        let thread = self.thread.lock_ignore_poison().take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

/// The positions file.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Positions {
    stream: String,
    closed: bool,
    spooled_through: u64,
    sinks: std::collections::BTreeMap<String, u64>,
}

struct Segment {
    path: PathBuf,
    last: u64,
    bytes: u64,
}

fn segment_name(stream: &str, first: u64) -> String {
    format!("{stream}.{first:020}.spool")
}

fn positions_path(dir: &Path, stream: &str) -> PathBuf {
    dir.join(format!("{stream}.positions.json"))
}

#[cfg(unix)]
fn private_file(o: &mut OpenOptions) -> &mut OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    o.mode(0o600)
}

#[cfg(not(unix))]
fn private_file(o: &mut OpenOptions) -> &mut OpenOptions {
    o
}

fn create_dir(dir: &Path) -> Result<(), Error> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(|e| {
        Error::config(format!(
            "cannot create the spool directory {}: {e}",
            dir.display()
        ))
    })
}

/// Replaces `path` with `bytes` (written to a temporary file, then renamed).
fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f =
        private_file(OpenOptions::new().create(true).write(true).truncate(true)).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_data()?;
    std::fs::rename(&tmp, path)
}

/// Events of an earlier run to deliver again, per sink.
pub(crate) struct Recovered {
    pub(crate) stream: String,
    /// Whether that run ended with a clean shutdown.
    pub(crate) closed: bool,
    pub(crate) spooled_through: u64,
    /// Each sink's acknowledged position in that stream.
    pub(crate) positions: std::collections::BTreeMap<String, u64>,
    pub(crate) events: Vec<Arc<AuditEvent>>,
    segments: Vec<PathBuf>,
    positions_file: PathBuf,
}

impl Recovered {
    /// Forgets the stream once every sink has acknowledged all of it; otherwise keeps its
    /// files with the positions reached.
    pub(crate) fn settle(&self, sinks: &[Arc<SinkShared>]) {
        let mut p = Positions {
            stream: self.stream.clone(),
            closed: self.closed,
            spooled_through: self.spooled_through,
            sinks: self.positions.clone(),
        };
        let mut done = true;
        for s in sinks {
            let acked = s.replay_acked.load(Ordering::Relaxed);
            let entry = p.sinks.entry(s.name.clone()).or_default();
            *entry = (*entry).max(acked);
            done &= *entry >= self.spooled_through;
        }
        if done {
            for seg in &self.segments {
                let _ = std::fs::remove_file(seg);
            }
            let _ = std::fs::remove_file(&self.positions_file);
        } else if let Ok(bytes) = serde_json::to_vec(&p) {
            let _ = replace(&self.positions_file, &bytes);
        }
    }
}

/// Reads what earlier runs left in `dir` (other streams than `current`).
pub(crate) fn recover(dir: &Path, current: &str) -> Result<Vec<Recovered>, Error> {
    create_dir(dir)?;
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::config(format!("cannot read the spool {}: {e}", dir.display())))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    let streams: Vec<String> = names
        .iter()
        .filter_map(|n| n.strip_suffix(".positions.json").map(str::to_owned))
        .collect();
    if streams.iter().any(|s| s == current) {
        return Err(Error::config(format!(
            "the spool {} already holds stream {current:?}: a stream name must not be reused \
             by a later run (its seqs would start again at 1); leave the name to the builder \
             or give each run its own",
            dir.display()
        )));
    }
    for stream in streams {
        let positions_file = positions_path(dir, &stream);
        let positions: Positions = std::fs::read(&positions_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let prefix = format!("{stream}.");
        let segments: Vec<PathBuf> = names
            .iter()
            .filter(|n| n.starts_with(&prefix) && n.ends_with(".spool"))
            .map(|n| dir.join(n))
            .collect();
        let mut events = Vec::new();
        let mut spooled_through = positions.spooled_through;
        let floor = positions.sinks.values().copied().min().unwrap_or(0);
        for seg in &segments {
            let Ok(file) = File::open(seg) else { continue };
            for line in BufReader::new(file).lines() {
                // A line cut by the crash was never made durable, so never acknowledged.
                let Ok(line) = line else { break };
                let Ok(event) = serde_json::from_str::<AuditEvent>(&line) else {
                    continue;
                };
                let Some(seq) = event.seq() else { continue };
                spooled_through = spooled_through.max(seq);
                if seq > floor {
                    events.push(Arc::new(event));
                }
            }
        }
        out.push(Recovered {
            stream,
            closed: positions.closed,
            spooled_through,
            positions: positions.sinks,
            events,
            segments,
            positions_file,
        });
    }
    Ok(out)
}

/// Starts the spool thread for `stream`.
pub(crate) fn start(
    options: SpoolOptions,
    stream: &str,
    sinks: Vec<Arc<SinkShared>>,
    ingress: Arc<Ingress>,
) -> Result<SpoolHandle, Error> {
    create_dir(&options.dir)?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(64);
    let (durable_tx, durable) = watch::channel(0u64);
    let durability = Arc::new(Durability::default());
    let writer = Writer {
        dir: options.dir.clone(),
        stream: stream.to_owned(),
        max_bytes: options.max_bytes,
        segment_bytes: options.segment_bytes,
        segments: Vec::new(),
        file: None,
        total: 0,
        durable_through: 0,
        sinks,
        ingress,
        durability: Arc::clone(&durability),
        durable_tx,
        failing: false,
    };
    writer.save_positions(false);
    let thread = std::thread::Builder::new()
        .name("audit-spool".into())
        .spawn(move || writer.run(&rx))
        .map_err(|e| Error::config(format!("cannot start the spool thread: {e}")))?;
    Ok(SpoolHandle {
        tx: Mutex::new(Some(tx)),
        durable,
        durability,
        options,
        thread: Mutex::new(Some(thread)),
    })
}

struct Writer {
    dir: PathBuf,
    stream: String,
    max_bytes: u64,
    segment_bytes: u64,
    segments: Vec<Segment>,
    file: Option<File>,
    total: u64,
    durable_through: u64,
    sinks: Vec<Arc<SinkShared>>,
    ingress: Arc<Ingress>,
    durability: Arc<Durability>,
    durable_tx: watch::Sender<u64>,
    /// In a run of chunks that could not be spooled (reported once per run).
    failing: bool,
}

impl Writer {
    fn run(mut self, rx: &Receiver<Chunk>) {
        let mut last_save = Instant::now();
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(first) => {
                    // Group commit: everything that has arrived, one fsync.
                    let mut chunks = vec![first];
                    while let Ok(more) = rx.try_recv() {
                        chunks.push(more);
                    }
                    self.commit(&chunks);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if last_save.elapsed() >= Duration::from_millis(100) {
                self.save_positions(false);
                self.trim();
                last_save = Instant::now();
            }
        }
        self.save_positions(true);
        self.trim();
        let all_acked = self
            .sinks
            .iter()
            .all(|s| s.acked.load(Ordering::Relaxed) >= self.durable_through);
        if all_acked {
            for seg in self.segments.drain(..) {
                let _ = std::fs::remove_file(seg.path);
            }
            let _ = std::fs::remove_file(positions_path(&self.dir, &self.stream));
        }
    }

    fn commit(&mut self, chunks: &[Chunk]) {
        let mut written: Option<(u64, u64)> = None;
        let mut failure: Option<String> = None;
        for c in chunks {
            let len = c.bytes.len() as u64;
            let result = if self.total + len > self.max_bytes {
                Err(format!(
                    "the spool is full ({} of {} bytes): sinks are behind",
                    self.total, self.max_bytes
                ))
            } else {
                self.append(c, len)
                    .map_err(|e| format!("cannot write the spool: {e}"))
            };
            match result {
                Ok(()) => {
                    written = Some((written.map_or(c.first, |w| w.0), c.last));
                }
                Err(why) => {
                    self.durability.note(c.first, c.last, &why);
                    failure = Some(why);
                    if !self.failing {
                        self.failing = true;
                        self.report(c.first, c.last, failure.as_deref().unwrap_or_default());
                    }
                }
            }
        }
        if let Some((_, last)) = written {
            let synced = self.file.as_ref().map_or(Ok(()), File::sync_data);
            match synced {
                Ok(()) => {
                    if failure.is_none() {
                        self.failing = false;
                    }
                    self.durable_through = self.durable_through.max(last);
                    self.durable_tx.send_replace(self.durable_through);
                }
                Err(e) => {
                    let why = format!("cannot sync the spool: {e}");
                    for c in chunks {
                        self.durability.note(c.first, c.last, &why);
                    }
                    if !self.failing {
                        self.failing = true;
                        self.report(chunks[0].first, chunks[chunks.len() - 1].last, &why);
                    }
                    // The seqs are announced all the same, so their waiters see the failure.
                    self.durable_through = self.durable_through.max(last);
                    self.durable_tx.send_replace(self.durable_through);
                }
            }
        } else if let Some(last) = chunks.last() {
            self.durable_through = self.durable_through.max(last.last);
            self.durable_tx.send_replace(self.durable_through);
        }
    }

    fn append(&mut self, c: &Chunk, len: u64) -> std::io::Result<()> {
        let rotate = self
            .segments
            .last()
            .is_none_or(|s| s.bytes + len > self.segment_bytes && s.bytes > 0);
        if rotate || self.file.is_none() {
            if let Some(f) = self.file.take() {
                f.sync_data()?;
            }
            let path = self.dir.join(segment_name(&self.stream, c.first));
            let file = private_file(OpenOptions::new().create(true).append(true)).open(&path)?;
            // The new file's name must survive a crash as well.
            File::open(&self.dir).and_then(|d| d.sync_all())?;
            self.file = Some(file);
            self.segments.push(Segment {
                path,
                last: c.first,
                bytes: 0,
            });
        }
        if let Some(f) = self.file.as_mut() {
            f.write_all(&c.bytes)?;
        }
        if let Some(s) = self.segments.last_mut() {
            s.bytes += len;
            s.last = c.last;
        }
        self.total += len;
        Ok(())
    }

    /// Deletes segments every sink has acknowledged (never the one being written).
    fn trim(&mut self) {
        let floor = self
            .sinks
            .iter()
            .map(|s| s.acked.load(Ordering::Relaxed))
            .min()
            .unwrap_or(u64::MAX);
        while self.segments.len() > 1 && self.segments[0].last <= floor {
            let seg = self.segments.remove(0);
            if std::fs::remove_file(&seg.path).is_ok() {
                self.total = self.total.saturating_sub(seg.bytes);
            }
        }
    }

    fn save_positions(&self, closed: bool) {
        let p = Positions {
            stream: self.stream.clone(),
            closed,
            spooled_through: self.durable_through,
            sinks: self
                .sinks
                .iter()
                .map(|s| (s.name.clone(), s.acked.load(Ordering::Relaxed)))
                .collect(),
        };
        if let Ok(bytes) = serde_json::to_vec(&p) {
            let _ = replace(&positions_path(&self.dir, &self.stream), &bytes);
        }
    }

    /// A run of events could not be spooled: the trail says so.
    fn report(&self, first: u64, last: u64, why: &str) {
        let built = AuditEvent::builder("system.audit.spool_failed")
            .category(Category::System)
            .severity(Severity::Critical)
            .description(format!(
                "audit events from seq {first} on are delivered but not spooled: {why}"
            ))
            .detail("firstSeq", first)
            .detail("lastSeq", last)
            .detail("error", why)
            .build();
        if let Ok(e) = built {
            self.ingress.push_internal(e);
        }
    }
}
