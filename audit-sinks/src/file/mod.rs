//! [`FileSink`]: JSON lines in a local file, with rotation, retention and an fsync policy.
//!
//! ```
//! use std::time::Duration;
//! use audit_core::{AuditEvent, Auditor};
//! use audit_sinks::file::{FileSink, FsyncPolicy};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("audit.jsonl");
//! let sink = FileSink::builder(&path)
//!     .max_bytes(64 << 20)
//!     .max_files(5)
//!     .fsync(FsyncPolicy::EveryBatch)
//!     .build()?;
//! let auditor = Auditor::builder().sink(sink).build().unwrap();
//! auditor.record(AuditEvent::builder("auth.logout").build().unwrap()).unwrap();
//! assert!(auditor.shutdown_blocking(Duration::from_secs(5)).complete);
//!
//! let text = std::fs::read_to_string(&path)?;
//! assert_eq!(text.lines().count(), 1);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Files
//! The sink appends to `path`, created with mode `0600` (owner only) unless
//! [`mode`](FileSinkBuilder::mode) says otherwise; an existing file keeps its mode. Rotation
//! renames it to `<name>.<UTC time>` (e.g. `audit.jsonl.2026-11-22T02-34-29.123Z`) and
//! starts a new one, between lines, so no line is split, lost or repeated.
//!
//! # Retention
//! By default no rotated file is ever deleted: removing audit history is an operator's
//! decision, never a side effect of load. A flood of requests then fills the disk rather
//! than silently rotating older history away, and a full disk is reported
//! (`system.sink.unhealthy`, then `system.audit.dropped` for what could not be written).
//! With [`max_files`](FileSinkBuilder::max_files), all but the newest `n` rotated files are
//! deleted at each rotation; size that number for the worst burst you must survive (at the
//! layer's event cap of 64 KiB, 10 files of 100 MiB hold at least 16,000 events, and
//! typical metadata events are 1–2 KiB).
//!
//! # When the file disappears
//! Before each batch the sink checks that `path` still names the file it holds open, and
//! after writing that the file still has a name. If the file was deleted or replaced
//! (renamed by another program), it reopens `path` and fails that delivery; the pipeline
//! records `system.sink.unhealthy`, retries the batch into the new file, and records
//! `system.sink.recovered`. Lines written before the deletion go with the deleted file;
//! nothing recorded after it is lost.
//!
//! # Failure behaviour
//! A write error (disk full, I/O error) cuts the file back to its size before the batch, so
//! no half line remains, and fails the delivery for the pipeline to retry. Writes run on a
//! blocking thread, never on the pipeline's worker.

mod writer;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use audit_core::{Batch, Sink, SinkError};

use writer::Writer;

/// The rotated files of the sink writing to `path`, oldest first (the live file, `path`
/// itself, is not included). Reading these and then `path` yields every line in order.
pub fn rotated_files(path: impl AsRef<Path>) -> Vec<PathBuf> {
    writer::rotated_files(path.as_ref())
}

/// The highest seq of `stream` among the complete lines in the last MiB of `path`.
fn last_seq_in_tail(path: &Path, stream: &str) -> Option<u64> {
    use std::io::{Read, Seek, SeekFrom};
    const TAIL: u64 = 1 << 20;
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(TAIL))).ok()?;
    let mut buf = Vec::new();
    f.take(TAIL).read_to_end(&mut buf).ok()?;
    let needle = format!("\"stream\":{}", serde_json::to_string(stream).ok()?);
    let text = String::from_utf8_lossy(&buf);
    // A first line cut by the seek, and a last line cut by a crash, are not complete.
    let complete = text.rsplit_once('\n').map_or("", |(head, _)| head);
    complete
        .lines()
        .filter(|l| l.contains(&needle))
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["integrity"]["stream"].as_str()? == stream)
                .then(|| v["integrity"]["seq"].as_u64())
                .flatten()
        })
        .max()
}

/// When the sink asks the OS to put written lines on stable storage.
///
/// Without fsync, lines survive a killed process (they are in the OS page cache as soon as
/// `write` returns) but not a power loss or kernel crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FsyncPolicy {
    /// Leave it to the OS.
    Never,
    /// After every batch: the strongest guarantee, at the cost of one fsync per batch.
    EveryBatch,
    /// After a batch when at least this long has passed since the last fsync, and at
    /// shutdown and rotation.
    Interval(Duration),
}

impl Default for FsyncPolicy {
    /// `Interval(1s)`.
    fn default() -> Self {
        FsyncPolicy::Interval(Duration::from_secs(1))
    }
}

#[derive(Debug)]
struct Config {
    format: crate::format::Format,
    path: PathBuf,
    max_bytes: Option<u64>,
    rotate_every: Option<Duration>,
    max_files: Option<usize>,
    fsync: FsyncPolicy,
    mode: u32,
}

/// Configures a [`FileSink`]. Defaults: rotate at 100 MiB, no time-based rotation, keep every
/// rotated file, [`FsyncPolicy::default`], mode `0600`.
#[derive(Debug)]
#[must_use]
pub struct FileSinkBuilder {
    cfg: Config,
}

impl FileSinkBuilder {
    /// Rotate before a line would take the file past `bytes`.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.cfg.max_bytes = Some(bytes.max(1));
        self
    }

    /// Never rotate by size.
    pub fn no_size_limit(mut self) -> Self {
        self.cfg.max_bytes = None;
        self
    }

    /// Also rotate when the wall clock enters a new period of this length, counted from the
    /// Unix epoch (so `3600 s` rotates on the hour, UTC). Checked at each batch.
    pub fn rotate_every(mut self, period: Duration) -> Self {
        self.cfg.rotate_every = Some(period);
        self
    }

    /// How many rotated files to keep besides the live one; older ones are deleted at each
    /// rotation (default: all are kept, see [Retention](self#retention)).
    pub fn max_files(mut self, n: usize) -> Self {
        self.cfg.max_files = Some(n);
        self
    }

    /// The fsync policy.
    pub fn fsync(mut self, policy: FsyncPolicy) -> Self {
        self.cfg.fsync = policy;
        self
    }

    /// Permission bits for files the sink creates (Unix; default `0o600`).
    pub fn mode(mut self, mode: u32) -> Self {
        self.cfg.mode = mode;
        self
    }

    /// Opens the file (creating it and its directory), so a bad path or a permission
    /// problem is reported now rather than at the first event.
    /// The line format (default: the canonical event JSON).
    pub fn format(mut self, format: crate::format::Format) -> Self {
        self.cfg.format = format;
        self
    }

    /// Opens the file and returns the sink.
    pub fn build(self) -> io::Result<FileSink> {
        let cfg = Arc::new(self.cfg);
        let writer = Writer::open(Arc::clone(&cfg))?;
        Ok(FileSink {
            cfg,
            writer: Some(Box::new(writer)),
        })
    }
}

/// Appends events as JSON lines to a file; see the [module docs](self).
#[derive(Debug)]
pub struct FileSink {
    cfg: Arc<Config>,
    /// Moved into the blocking task during a write; `None` only if that task panicked.
    writer: Option<Box<Writer>>,
}

impl FileSink {
    /// A sink with the default settings.
    pub fn new(path: impl AsRef<Path>) -> io::Result<FileSink> {
        FileSink::builder(path).build()
    }

    /// Starts configuring a sink writing to `path`.
    pub fn builder(path: impl AsRef<Path>) -> FileSinkBuilder {
        FileSinkBuilder {
            cfg: Config {
                format: crate::format::Format::Native,
                path: path.as_ref().to_path_buf(),
                max_bytes: Some(100 << 20),
                rotate_every: None,
                max_files: None,
                fsync: FsyncPolicy::default(),
                mode: 0o600,
            },
        }
    }

    /// The live file's path.
    pub fn path(&self) -> &Path {
        &self.cfg.path
    }

    /// The writer, opened if it is not (after a failed write task).
    fn writer(&mut self) -> Result<&mut Writer, SinkError> {
        if self.writer.is_none() {
            self.writer = Some(Box::new(Writer::open(Arc::clone(&self.cfg)).map_err(
                |e| SinkError::retryable(format!("cannot open audit file: {e}")),
            )?));
        }
        self.writer
            .as_deref_mut()
            .ok_or_else(|| SinkError::retryable("audit file writer is unavailable"))
    }

    /// Runs `f` on the writer in a blocking thread and puts the writer back.
    async fn with_writer<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Writer) -> Result<T, SinkError> + Send + 'static,
    ) -> Result<T, SinkError> {
        self.writer()?;
        let Some(mut writer) = self.writer.take() else {
            return Err(SinkError::retryable("audit file writer is unavailable"));
        };
        let (writer, result) = tokio::task::spawn_blocking(move || {
            let r = f(&mut writer);
            (writer, r)
        })
        .await
        .map_err(|e| SinkError::retryable(format!("audit file writer task failed: {e}")))?;
        self.writer = Some(writer);
        result
    }
}

impl Sink for FileSink {
    fn name(&self) -> &str {
        "file"
    }

    async fn deliver(&mut self, batch: &Batch) -> Result<(), SinkError> {
        // Encoded here, where the events are; only the bytes go to the blocking thread.
        let writer = self.writer()?;
        writer.encode(batch)?;
        self.with_writer(Writer::write_encoded).await
    }

    fn wants_lines(&self) -> bool {
        matches!(self.cfg.format, crate::format::Format::Native)
    }

    /// Reads the end of the live file (or, when it holds nothing of `stream`, of the newest
    /// rotated one) for the highest seq of `stream` written in the canonical format.
    async fn delivered_through(&mut self, stream: &str) -> Option<u64> {
        if !matches!(self.cfg.format, crate::format::Format::Native) {
            return None;
        }
        let path = self.cfg.path.clone();
        let stream = stream.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut files = rotated_files(&path);
            files.push(path);
            files
                .iter()
                .rev()
                .take(2)
                .find_map(|f| last_seq_in_tail(f, &stream))
        })
        .await
        .ok()
        .flatten()
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        if self.cfg.fsync == FsyncPolicy::Never {
            return Ok(());
        }
        self.with_writer(Writer::sync).await
    }
}

use crate::spec::params::{Params, SpecError, format_of};

/// What a `file:` spec says (see [`crate::spec`]).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileSpec {
    /// The file's path.
    pub path: String,
    /// `format=`, when given.
    pub format: Option<String>,
}

crate::spec::params::opaque_debug!(FileSpec);

impl FileSpec {
    pub(crate) fn parse(_scheme: &str, rest: &str) -> Result<FileSpec, SpecError> {
        let (base, mut p) = Params::split("file", rest, &["format"])?;
        let path = base.strip_prefix("//").unwrap_or(base);
        if path.is_empty() {
            return Err(SpecError::new(
                "file: needs a path, e.g. file:./audit.jsonl",
            ));
        }
        Ok(FileSpec {
            path: path.to_owned(),
            format: p.format()?,
        })
    }

    pub(crate) async fn build(self) -> Result<FileSink, SpecError> {
        FileSink::builder(&self.path)
            .format(format_of(self.format.as_deref()))
            .build()
            .map_err(|e| SpecError::new(format!("file: cannot open {}: {e}", self.path)))
    }
}
