//! [`ResponseBody`]: the response body of [`Audit`](super::Audit). It passes the inner
//! body through, and when the event can only be finished at the end of the body (a gRPC
//! status in trailers, a captured response body), it finishes it there.

use std::pin::Pin;
use std::task::{Context, Poll};

use audit_core::{CapturedBody, Outcome};
use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project::pin_project;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::grpc::{Messages, SharedMessages};
use super::record::{Pending, outcome_for};

/// How many body bytes are kept for the event (the rest is counted and hashed).
pub(crate) const CAPTURE_LIMIT: usize = 16 * 1024;

/// Response body of [`Audit`](super::Audit).
#[pin_project]
pub struct ResponseBody<B> {
    #[pin]
    kind: Kind<B>,
}

#[pin_project(project = KindProj)]
enum Kind<B> {
    Inner {
        #[pin]
        body: B,
        tail: Option<Box<Tail>>,
    },
    Refused {
        json: Option<Bytes>,
    },
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody").finish_non_exhaustive()
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn new(body: B, tail: Option<Box<Tail>>) -> ResponseBody<B> {
        ResponseBody {
            kind: Kind::Inner { body, tail },
        }
    }

    pub(crate) fn refused(json: String) -> ResponseBody<B> {
        ResponseBody {
            kind: Kind::Refused {
                json: Some(Bytes::from(json)),
            },
        }
    }
}

/// What is still to be learned from the body before the event is finished.
pub(crate) struct Tail {
    pending: Option<Box<Pending>>,
    status: u16,
    grpc: Option<i32>,
    capture: Option<Capture>,
    /// A gRPC call's response messages, counted as they pass.
    messages: Option<Messages>,
}

impl Tail {
    pub(crate) fn new(
        pending: Box<Pending>,
        status: u16,
        grpc: Option<i32>,
        capture: Option<Capture>,
    ) -> Tail {
        let messages = pending.is_grpc().then(Messages::default);
        Tail {
            pending: Some(pending),
            status,
            grpc,
            capture,
            messages,
        }
    }

    fn trailers(&mut self, trailers: &HeaderMap) {
        if let Some(code) = trailers
            .get(&super::record::GRPC_STATUS)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
        {
            self.grpc = Some(code);
        }
    }

    fn finish(&mut self, complete: bool) {
        if let Some(mut p) = self.pending.take() {
            if let Some(c) = self.capture.take() {
                p.set_response_body(c.finish());
            }
            if let Some(m) = &self.messages {
                p.set_response_messages(m.count());
            }
            if !complete {
                p.note_incomplete_response();
            }
            // A gRPC call whose body ends before its status arrived was cut off: the client
            // cancelled it or the connection went.
            let outcome = if !complete && p.is_grpc() && self.grpc.is_none() {
                Outcome::Cancelled
            } else {
                outcome_for(self.status, self.grpc)
            };
            p.finish(outcome, Some(self.status), self.grpc);
        }
    }
}

impl Drop for Tail {
    /// The body was dropped before its end (client gone, stream cut): record what is known.
    fn drop(&mut self) {
        self.finish(false);
    }
}

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
            body.sha256 = Some(
                digest
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
                    .into(),
            );
        }
        body
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Refused { json } => Poll::Ready(json.take().map(|b| Ok(Frame::data(b)))),
            KindProj::Inner { mut body, tail } => {
                let frame = std::task::ready!(body.as_mut().poll_frame(cx));
                if let Some(t) = tail.as_mut() {
                    match &frame {
                        Some(Ok(f)) => {
                            if let Some(data) = f.data_ref() {
                                if let Some(c) = t.capture.as_mut() {
                                    c.data(data);
                                }
                                if let Some(m) = t.messages.as_mut() {
                                    m.feed(data);
                                }
                            }
                            let trailers = f.trailers_ref();
                            if let Some(trailers) = trailers {
                                t.trailers(trailers);
                            }
                            // A server stops polling once the body says it has ended (or
                            // after trailers, always the last frame): that is completion,
                            // not the `None` it never asks for.
                            if trailers.is_some() || body.is_end_stream() {
                                t.finish(true);
                            }
                        }
                        Some(Err(_)) => {
                            t.status = t.status.max(500);
                            t.finish(false);
                        }
                        None => t.finish(true),
                    }
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body, .. } => body.is_end_stream(),
            Kind::Refused { json } => json.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body, .. } => body.size_hint(),
            Kind::Refused { json } => {
                SizeHint::with_exact(json.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

/// Request body of the service inside [`Audit`](super::Audit). It passes the client's body
/// through; at the `request` and `request_response` levels it keeps the first 16 KiB for the
/// event as the handler reads it (never buffering more), and counts and hashes the rest.
#[pin_project]
pub struct RequestBody<B> {
    #[pin]
    inner: B,
    capture: Option<SharedCapture>,
    messages: Option<SharedMessages>,
}

/// A capture shared between the request body (which fills it) and the event (which reads it
/// when the request is answered).
pub(crate) type SharedCapture = std::sync::Arc<std::sync::Mutex<Capture>>;

impl<B> std::fmt::Debug for RequestBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBody").finish_non_exhaustive()
    }
}

impl<B> RequestBody<B> {
    pub(crate) fn new(
        inner: B,
        capture: Option<SharedCapture>,
        messages: Option<SharedMessages>,
    ) -> RequestBody<B> {
        RequestBody {
            inner,
            capture,
            messages,
        }
    }

    /// The client's body, unwrapped.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B> Body for RequestBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        if let (Some(m), Some(Ok(f))) = (this.messages.as_ref(), &frame)
            && let Some(data) = f.data_ref()
        {
            m.feed(data);
        }
        if let Some(c) = this.capture.as_ref() {
            let mut c = c.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match &frame {
                Some(Ok(f)) => {
                    if let Some(data) = f.data_ref() {
                        c.data(data);
                    }
                }
                None => c.complete = true,
                Some(Err(_)) => {}
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
