//! The part of a body the event keeps: its first bytes, its size, and its hash when cut.

use audit_core::CapturedBody;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// How many body bytes are kept for the event (the rest is counted and hashed).
pub(crate) const CAPTURE_LIMIT: usize = 16 * 1024;

/// A capture shared between the request body (which fills it) and the event (which reads it
/// when the request is answered).
pub(crate) type SharedCapture = std::sync::Arc<std::sync::Mutex<Capture>>;

/// The first [`CAPTURE_LIMIT`] bytes of a body, its full size and (when cut) its hash.
#[derive(Debug)]
pub(crate) struct Capture {
    content_type: Option<String>,
    kept: Vec<u8>,
    size: u64,
    hasher: Sha256,
    /// The whole body went through (for a request: the handler read it to the end).
    pub(crate) complete: bool,
    /// The size the sender announced (`Content-Length`), for a body not read to the end.
    declared: Option<u64>,
}

impl Capture {
    pub(crate) fn new(content_type: Option<String>) -> Capture {
        Capture {
            content_type,
            kept: Vec::new(),
            size: 0,
            hasher: Sha256::new(),
            complete: false,
            declared: None,
        }
    }

    pub(crate) fn with_declared_size(mut self, size: Option<u64>) -> Capture {
        self.declared = size;
        self
    }

    /// What the event records of a body that may not have been read to the end: the bytes
    /// kept, and the whole body's hash only when it was all seen.
    pub(crate) fn snapshot(&mut self) -> CapturedBody {
        let seen_all = self.complete;
        let taken = std::mem::replace(self, Capture::new(self.content_type.clone()));
        let declared = taken.declared;
        let mut body = taken.finish();
        if !seen_all {
            body.truncated = true;
            body.sha256 = None;
            body.size = declared.unwrap_or(body.size).max(body.size);
        }
        body
    }

    pub(crate) fn data(&mut self, chunk: &[u8]) {
        self.size += chunk.len() as u64;
        self.hasher.update(chunk);
        let room = CAPTURE_LIMIT.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&chunk[..room.min(chunk.len())]);
    }

    pub(crate) fn finish(self) -> CapturedBody {
        let truncated = self.size > self.kept.len() as u64;
        let json = self
            .content_type
            .as_deref()
            .is_some_and(|t| t.contains("json"));
        let content = if json && !truncated {
            serde_json::from_slice::<Value>(&self.kept).ok()
        } else {
            None
        }
        .unwrap_or_else(|| Value::String(String::from_utf8_lossy(&self.kept).into_owned()));
        let mut body = CapturedBody::new(self.content_type.as_deref(), self.size, content);
        if truncated {
            body.truncated = true;
            let digest = self.hasher.finalize();
            body.sha256 = Some(hex::encode(digest).into());
        }
        body
    }
}
