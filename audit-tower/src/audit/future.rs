//! [`ResponseFuture`]: finishes the event when the response is ready (or hands it to the
//! response body when the body still has something to say), or records `cancelled` when the
//! future is dropped first.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use audit_core::Outcome;
use http::{HeaderName, HeaderValue, Response, StatusCode};
use http_body::Body;
use pin_project::{pin_project, pinned_drop};
use tokio::task::futures::TaskLocalFuture;

use super::body::{Capture, ResponseBody, Tail};
use super::record::{Pending, outcome_for};
use crate::classify::Level;
use audit_core::scope::RequestFacts;
use std::sync::Arc;

/// Response future of [`Audit`](super::Audit).
#[pin_project(PinnedDrop)]
pub struct ResponseFuture<F> {
    #[pin]
    kind: Kind<F>,
    pending: Option<Box<Pending>>,
    echo: Option<(HeaderName, HeaderValue)>,
    #[cfg(feature = "tracing")]
    span: tracing::Span,
}

#[pin_project(project = KindProj)]
enum Kind<F> {
    Inner {
        #[pin]
        fut: TaskLocalFuture<Arc<dyn RequestFacts>, F>,
    },
    Refused {
        message: String,
    },
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(
        fut: TaskLocalFuture<Arc<dyn RequestFacts>, F>,
        pending: Option<Box<Pending>>,
        echo: Option<(HeaderName, HeaderValue)>,
    ) -> ResponseFuture<F> {
        ResponseFuture {
            kind: Kind::Inner { fut },
            pending,
            echo,
            #[cfg(feature = "tracing")]
            span: tracing::Span::none(),
        }
    }

    /// Polls the inner future inside `span` (the request span).
    #[cfg(feature = "tracing")]
    pub(crate) fn in_span(mut self, span: tracing::Span) -> Self {
        self.span = span;
        self
    }

    /// Strict delivery could not be guaranteed: answer 503 without calling the service.
    pub(crate) fn refused(message: String, echo: Option<(HeaderName, HeaderValue)>) -> Self {
        ResponseFuture {
            kind: Kind::Refused { message },
            pending: None,
            echo,
            #[cfg(feature = "tracing")]
            span: tracing::Span::none(),
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        #[cfg(feature = "tracing")]
        let _entered = this.span.enter();
        let result = match this.kind.project() {
            KindProj::Refused { message } => {
                let json = serde_json::json!({
                    "error": {"code": "AUDIT_UNAVAILABLE", "message": message}
                })
                .to_string();
                let mut resp = Response::new(ResponseBody::refused(json));
                *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                resp.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                if let Some((name, value)) = this.echo.take() {
                    resp.headers_mut().insert(name, value);
                }
                return Poll::Ready(Ok(resp));
            }
            KindProj::Inner { fut } => std::task::ready!(fut.poll(cx)),
        };
        let resp = match result {
            Ok(resp) => resp,
            Err(e) => {
                if let Some(p) = this.pending.take() {
                    p.finish(Outcome::Error, None, None);
                }
                return Poll::Ready(Err(e));
            }
        };
        let (mut parts, body) = resp.into_parts();
        if let Some((name, value)) = this.echo.take() {
            parts.headers.insert(name, value);
        }
        let grpc = parts
            .headers
            .get(&super::record::GRPC_STATUS)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i32>().ok());
        let status = parts.status.as_u16();
        let grpc_answer = grpc.is_some()
            || parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        let tail = this.pending.take().and_then(|mut p| {
            if grpc_answer {
                p.set_grpc_answer();
            }
            let capture = (p.level() == Level::RequestResponse).then(|| {
                Capture::new(
                    parts
                        .headers
                        .get(http::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                )
            });
            if (p.is_grpc() || capture.is_some()) && !body.is_end_stream() {
                // The body still has the status (gRPC trailers), messages to count, or the
                // content to capture.
                Some(Box::new(Tail::new(p, status, grpc, capture)))
            } else {
                if let Some(c) = capture {
                    p.set_response_body(c.finish());
                }
                if p.is_grpc() {
                    p.set_response_messages(0);
                }
                p.finish(outcome_for(status, grpc), Some(status), grpc);
                None
            }
        });
        Poll::Ready(Ok(Response::from_parts(
            parts,
            ResponseBody::new(body, tail),
        )))
    }
}

#[pinned_drop]
impl<F> PinnedDrop for ResponseFuture<F> {
    fn drop(self: Pin<&mut Self>) {
        // Dropped before the inner service answered: the client went away.
        if let Some(p) = self.project().pending.take() {
            p.finish(Outcome::Cancelled, None, None);
        }
    }
}
