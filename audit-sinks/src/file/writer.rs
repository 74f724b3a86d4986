//! The blocking half of the file sink: one open file, its identity, size and rotation.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use audit_core::{Batch, SinkError, Timestamp};

use super::{Config, FsyncPolicy};

/// What makes "the file at the path" the same file: device and inode on Unix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

#[cfg(unix)]
fn file_id(m: &fs::Metadata) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    Some(FileId {
        dev: m.dev(),
        ino: m.ino(),
    })
}

#[cfg(not(unix))]
fn file_id(_: &fs::Metadata) -> Option<FileId> {
    None
}

/// True when the open file has no name left (deleted while open).
#[cfg(unix)]
fn is_unlinked(m: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    m.nlink() == 0
}

#[cfg(not(unix))]
fn is_unlinked(_: &fs::Metadata) -> bool {
    false
}

#[derive(Debug)]
pub(super) struct Writer {
    cfg: Arc<Config>,
    file: Option<File>,
    id: Option<FileId>,
    size: u64,
    period: Option<u64>,
    last_sync: Instant,
    unsynced: bool,
    /// The batch being written, encoded, and where each of its lines ends.
    buf: Vec<u8>,
    ends: Vec<usize>,
}

fn io_err(what: &str, path: &Path, e: &io::Error) -> SinkError {
    SinkError::retryable(format!("{what} {}: {e}", path.display()))
}

impl Writer {
    /// Opens (creating) the file now, so a bad path or permission fails at startup.
    pub(super) fn open(cfg: Arc<Config>) -> io::Result<Writer> {
        let mut w = Writer {
            cfg,
            file: None,
            id: None,
            size: 0,
            period: None,
            last_sync: Instant::now(),
            unsynced: false,
            buf: Vec::new(),
            ends: Vec::new(),
        };
        w.open_file()?;
        Ok(w)
    }

    fn path(&self) -> &Path {
        &self.cfg.path
    }

    fn open_file(&mut self) -> io::Result<()> {
        if let Some(dir) = self.cfg.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let mut opts = OpenOptions::new();
        opts.create(true).append(true).read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(self.cfg.mode);
        }
        let file = opts.open(&self.cfg.path)?;
        cut_torn_line(&file)?;
        let meta = file.metadata()?;
        self.size = meta.len();
        self.id = file_id(&meta);
        self.file = Some(file);
        self.period = self.current_period();
        self.unsynced = false;
        Ok(())
    }

    /// Best-effort sync of the file being let go (it may already be deleted).
    fn release_file(&mut self) {
        if let Some(f) = self.file.take()
            && self.unsynced
            && self.cfg.fsync != FsyncPolicy::Never
        {
            let _ = f.sync_data();
        }
        self.unsynced = false;
    }

    fn reopen(&mut self) -> io::Result<()> {
        self.release_file();
        self.open_file()
    }

    fn current_period(&self) -> Option<u64> {
        let every = self.cfg.rotate_every?.as_secs().max(1);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
        Some(now / every)
    }

    /// Writes a batch as JSON lines, rotating as needed. On error nothing of the batch is
    /// assumed written, so the pipeline's retry may write parts of it twice but never loses
    /// any of it.
    /// Encodes a batch, one line per event. Runs on the sink's task, where the events are
    /// (the write itself then needs only the bytes).
    pub(super) fn encode(&mut self, batch: &Batch) -> Result<(), SinkError> {
        self.buf.clear();
        self.ends.clear();
        let native = matches!(self.cfg.format, crate::format::Format::Native);
        for (i, event) in batch.iter().enumerate() {
            // The line the pipeline already encoded for the hash chain, when it has one.
            match batch.line(i).filter(|_| native) {
                Some(line) => self.buf.extend_from_slice(line),
                None => self.cfg.format.write_line(&mut self.buf, event)?,
            }
            self.ends.push(self.buf.len());
        }
        Ok(())
    }

    /// Writes the batch [`encode`](Self::encode) prepared, rotating between lines when the
    /// size limit is reached (a line never straddles two files).
    pub(super) fn write_encoded(&mut self) -> Result<(), SinkError> {
        self.check_identity()?;
        if self.period.is_some() && self.current_period() != self.period {
            self.rotate()?;
        }
        let mut written = 0;
        let mut start = 0;
        for i in 0..self.ends.len() {
            let end = self.ends[i];
            if let Some(max) = self.cfg.max_bytes {
                let before = self.size + (start - written) as u64;
                if before > 0 && before + (end - start) as u64 > max {
                    self.write_out(written, start)?;
                    written = start;
                    self.rotate()?;
                }
            }
            start = end;
        }
        self.write_out(written, self.buf.len())?;
        self.after_write()
    }

    /// Verifies the path still names the open file. A deleted or replaced file is reopened
    /// and reported as an error, so the batch is written (by the retry) into the file that is
    /// actually at the path, and the sink's health events are recorded.
    fn check_identity(&mut self) -> Result<(), SinkError> {
        if self.file.is_none() {
            return self
                .open_file()
                .map_err(|e| io_err("cannot open audit file", self.path(), &e));
        }
        let problem = match fs::metadata(&self.cfg.path) {
            Ok(m) if file_id(&m) == self.id => return Ok(()),
            Ok(_) => "was replaced by another file (renamed or rotated by another program)",
            Err(e) if e.kind() == io::ErrorKind::NotFound => "was deleted or moved away",
            Err(e) => return Err(io_err("cannot stat audit file", self.path(), &e)),
        };
        let reopened = match self.reopen() {
            Ok(()) => "; reopened it".to_owned(),
            Err(e) => format!("; reopening failed: {e}"),
        };
        Err(SinkError::retryable(format!(
            "audit file {} {problem}{reopened}",
            self.cfg.path.display()
        )))
    }

    /// Writes `buf[..n]` and removes it from the buffer. On failure (e.g. disk full) the file
    /// is cut back to its size before the write, so no half line stays behind.
    fn write_out(&mut self, from: usize, to: usize) -> Result<(), SinkError> {
        if from >= to {
            return Ok(());
        }
        let Some(file) = self.file.as_mut() else {
            return Err(SinkError::retryable("audit file is not open"));
        };
        if let Err(e) = file.write_all(&self.buf[from..to]) {
            let _ = file.set_len(self.size);
            return Err(io_err("cannot write audit file", &self.cfg.path, &e));
        }
        self.size += (to - from) as u64;
        self.unsynced = true;
        Ok(())
    }

    /// Catches a deletion that raced with the write (the lines went to a file with no name)
    /// and applies the fsync policy.
    fn after_write(&mut self) -> Result<(), SinkError> {
        let Some(file) = self.file.as_ref() else {
            return Ok(());
        };
        match file.metadata() {
            Ok(m) if is_unlinked(&m) => {
                let _ = self.reopen();
                return Err(SinkError::retryable(format!(
                    "audit file {} was deleted while being written; reopened it",
                    self.cfg.path.display()
                )));
            }
            Ok(_) => {}
            Err(e) => return Err(io_err("cannot stat open audit file", &self.cfg.path, &e)),
        }
        let due = match self.cfg.fsync {
            FsyncPolicy::Never => false,
            FsyncPolicy::EveryBatch => true,
            FsyncPolicy::Interval(every) => self.last_sync.elapsed() >= every,
        };
        if due {
            self.sync()?;
        }
        Ok(())
    }

    pub(super) fn sync(&mut self) -> Result<(), SinkError> {
        if let (Some(file), true) = (self.file.as_ref(), self.unsynced) {
            file.sync_data()
                .map_err(|e| io_err("cannot fsync audit file", &self.cfg.path, &e))?;
        }
        self.unsynced = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Renames the current file aside, opens a fresh one, and prunes old rotated files.
    fn rotate(&mut self) -> Result<(), SinkError> {
        if self.cfg.fsync != FsyncPolicy::Never {
            self.sync()?;
        }
        self.file = None;
        let target = rotated_name(&self.cfg.path);
        match fs::rename(&self.cfg.path, &target) {
            Ok(()) => {}
            // Deleted under us: nothing to keep; just start a new file.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("cannot rotate audit file", &self.cfg.path, &e)),
        }
        self.open_file()
            .map_err(|e| io_err("cannot open audit file", &self.cfg.path, &e))?;
        if let Some(keep) = self.cfg.max_files {
            prune(&self.cfg.path, keep);
        }
        Ok(())
    }
}

/// `audit.jsonl` → `audit.jsonl.2026-11-22T02-34-29.123Z` (a `-N` suffix on collisions).
/// [`rotated_files`] orders them by age; they contain no `:`, so they are valid on every
/// filesystem.
fn rotated_name(path: &Path) -> PathBuf {
    let stamp = Timestamp::now().to_string().replace(':', "-");
    let base = format!("{}.{stamp}", file_name(path));
    let mut candidate = path.with_file_name(&base);
    let mut n = 1;
    while candidate.exists() {
        candidate = path.with_file_name(format!("{base}-{n}"));
        n += 1;
    }
    candidate
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The rotated files of `path`, oldest first.
pub(super) fn rotated_files(path: &Path) -> Vec<PathBuf> {
    let prefix = format!("{}.", file_name(path));
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_path_buf(),
        None => PathBuf::from("."),
    };
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            // Only names we made: prefix, then a timestamp starting with a digit.
            name.strip_prefix(&prefix)
                .is_some_and(|rest| rest.len() >= 24 && rest.as_bytes()[0].is_ascii_digit())
        })
        .map(|e| e.path())
        .collect();
    // By time stamp, then by collision suffix as a number: `…123Z-10` came after `…123Z-9`
    // (rotations within one millisecond), which a plain name sort puts first.
    files.sort_by_cached_key(|p| {
        let name = file_name(p);
        match name.rsplit_once("Z-") {
            Some((stamp, n)) if n.bytes().all(|b| b.is_ascii_digit()) => {
                (stamp.to_owned(), n.parse::<u64>().unwrap_or(u64::MAX))
            }
            _ => (name.trim_end_matches('Z').to_owned(), 0),
        }
    });
    files
}

/// Deletes the oldest rotated files beyond `keep`.
fn prune(path: &Path, keep: usize) {
    let files = rotated_files(path);
    let excess = files.len().saturating_sub(keep);
    for old in &files[..excess] {
        let _ = fs::remove_file(old);
    }
}

/// A process killed in the middle of a write can leave the file ending in part of a line; the
/// next line would be glued to it. That part was never reported delivered (the write did not
/// finish), so it is cut off before appending: the event is delivered again whole, from the
/// spool when there is one.
fn cut_torn_line(file: &fs::File) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut f = file;
    let tail = len.min(1 << 20);
    f.seek(SeekFrom::Start(len - tail))?;
    let mut buf = Vec::with_capacity(tail as usize);
    f.take(tail).read_to_end(&mut buf)?;
    if buf.last() == Some(&b'\n') {
        return Ok(());
    }
    // Past one event's largest size there is no torn line to find: leave the file be.
    if let Some(pos) = buf.iter().rposition(|&b| b == b'\n') {
        file.set_len(len - tail + pos as u64 + 1)?;
    } else if len <= tail {
        file.set_len(0)?;
    }
    Ok(())
}
