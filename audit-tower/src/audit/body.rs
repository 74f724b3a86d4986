//! [`ResponseBody`]: the response body of [`Audit`](super::Audit). It passes the inner
//! body through, and when the event can only be finished at the end of the body (a gRPC
//! status in trailers, a captured response body), it finishes it there.

use audit_core::sync::LockExt;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::capture::{Capture, SharedCapture};
use super::grpc::{Messages, SharedMessages};
use super::outcome::outcome_for;
use super::record::Pending;
use audit_core::Outcome;
use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project::pin_project;

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
            .get(&super::outcome::GRPC_STATUS)
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
            let mut c = c.lock_ignore_poison();
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
