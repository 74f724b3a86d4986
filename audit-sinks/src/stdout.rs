//! [`StdoutSink`]: JSON lines on standard output, for containers whose log collector reads
//! stdout.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use audit_core::{AuditEvent, Batch, Sink};
//! use audit_sinks::StdoutSink;
//!
//! // Any writer can stand in for stdout, e.g. in tests.
//! #[derive(Clone, Default)]
//! struct Shared(Arc<Mutex<Vec<u8>>>);
//! impl std::io::Write for Shared {
//!     fn write(&mut self, b: &[u8]) -> std::io::Result<usize> { self.0.lock().unwrap().write(b) }
//!     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
//! }
//!
//! let out = Shared::default();
//! let mut sink = StdoutSink::with_writer(out.clone());
//! let batch = Batch::from(vec![AuditEvent::builder("auth.logout").build().unwrap()]);
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! rt.block_on(sink.deliver(&batch)).unwrap();
//! let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
//! assert!(text.starts_with("{\"id\":") && text.ends_with("}\n"));
//! ```
//!
//! Each batch is encoded in memory and written with one `write_all` on a blocking thread, so
//! a slow reader of the pipe holds up only this sink. A write error (closed pipe) is
//! retryable and reported like any other sink failure.

use audit_core::sync::LockExt;
use std::io::Write;
use std::sync::{Arc, Mutex};

use audit_core::{Batch, Sink, SinkError};

type SharedWriter = Arc<Mutex<Box<dyn Write + Send>>>;

/// Writes each event as one JSON line to standard output (or another writer).
pub struct StdoutSink {
    writer: SharedWriter,
    format: crate::format::Format,
}

impl std::fmt::Debug for StdoutSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdoutSink").finish_non_exhaustive()
    }
}

impl Default for StdoutSink {
    fn default() -> Self {
        StdoutSink::new()
    }
}

impl StdoutSink {
    /// Writes to the process's standard output.
    pub fn new() -> StdoutSink {
        StdoutSink::with_writer(std::io::stdout())
    }

    /// Writes to `writer` instead (tests, stderr, a pipe).
    pub fn with_writer(writer: impl Write + Send + 'static) -> StdoutSink {
        StdoutSink {
            writer: Arc::new(Mutex::new(Box::new(writer))),
            format: crate::format::Format::Native,
        }
    }

    /// The line format (default: the canonical event JSON).
    #[must_use]
    pub fn format(mut self, format: crate::format::Format) -> StdoutSink {
        self.format = format;
        self
    }
}

impl Sink for StdoutSink {
    fn name(&self) -> &str {
        "stdout"
    }

    fn wants_lines(&self) -> bool {
        matches!(self.format, crate::format::Format::Native)
    }

    async fn deliver(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let mut buf = Vec::with_capacity(batch.len() * 512);
        let native = self.wants_lines();
        for (i, e) in batch.iter().enumerate() {
            // The pipeline's own encoding of the line, when it has one.
            match batch.line(i).filter(|_| native) {
                Some(line) => buf.extend_from_slice(line),
                None => self.format.write_line(&mut buf, e)?,
            }
        }
        let writer = Arc::clone(&self.writer);
        tokio::task::spawn_blocking(move || {
            let mut w = writer.lock_ignore_poison();
            w.write_all(&buf)?;
            w.flush()
        })
        .await
        .map_err(|e| SinkError::retryable(format!("stdout writer task failed: {e}")))?
        .map_err(|e| SinkError::retryable(format!("cannot write to stdout: {e}")))
    }
}

use crate::spec::params::{Params, SpecError, format_of};

/// What a `stdout:` spec says (see [`crate::spec`]).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StdoutSpec {
    /// `format=`, when given.
    pub format: Option<String>,
}

crate::spec::params::opaque_debug!(StdoutSpec);

impl StdoutSpec {
    pub(crate) fn parse(_scheme: &str, rest: &str) -> Result<StdoutSpec, SpecError> {
        let (base, mut p) = Params::split("stdout", rest, &["format"])?;
        if !(base.is_empty() || base == "//") {
            return Err(SpecError::new("stdout: takes no path"));
        }
        Ok(StdoutSpec {
            format: p.format()?,
        })
    }

    pub(crate) async fn build(self) -> Result<StdoutSink, SpecError> {
        Ok(StdoutSink::new().format(format_of(self.format.as_deref())))
    }
}
