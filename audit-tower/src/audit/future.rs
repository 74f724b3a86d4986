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

use super::body::{ResponseBody, Tail};
use super::capture::Capture;
use super::outcome::outcome_for;
use super::record::Pending;
use crate::classify::Level;
use audit_core::scope::Scoped;

/// Response future of [`Audit`](super::Audit).
#[pin_project(PinnedDrop)]
pub struct ResponseFuture<F, B> {
    #[pin]
    kind: Kind<F>,
    pending: Option<Box<Pending>>,
    echo: Option<(HeaderName, HeaderValue)>,
    /// A strict rule's response, held until its event is durable in the spool.
    held: Option<Held<B>>,
    #[cfg(feature = "tracing")]
    span: tracing::Span,
}

/// The wait for an event to be durable in the spool.
type DurableWait = Pin<Box<dyn Future<Output = Result<(), audit_core::RecordError>> + Send>>;

/// A response waiting for its event to be durable.
struct Held<B> {
    resp: Option<Response<ResponseBody<B>>>,
    echo: Option<(HeaderName, HeaderValue)>,
    wait: DurableWait,
}

#[pin_project(project = KindProj)]
enum Kind<F> {
    Inner {
        #[pin]
        fut: Scoped<F>,
    },
    Refused {
        message: String,
    },
}

impl<F, B> std::fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B> ResponseFuture<F, B> {
    pub(crate) fn new(
        fut: Scoped<F>,
        pending: Option<Box<Pending>>,
        echo: Option<(HeaderName, HeaderValue)>,
    ) -> ResponseFuture<F, B> {
        ResponseFuture {
            kind: Kind::Inner { fut },
            pending,
            echo,
            held: None,
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
            held: None,
            #[cfg(feature = "tracing")]
            span: tracing::Span::none(),
        }
    }
}

/// The `503` a strict rule answers when its event cannot be recorded (or made durable).
fn unavailable<B>(
    message: &str,
    echo: Option<(HeaderName, HeaderValue)>,
) -> Response<ResponseBody<B>> {
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
    if let Some((name, value)) = echo {
        resp.headers_mut().insert(name, value);
    }
    resp
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        #[cfg(feature = "tracing")]
        let _entered = this.span.enter();
        if let Some(held) = this.held.as_mut() {
            let done = std::task::ready!(held.wait.as_mut().poll(cx));
            let resp = held.resp.take();
            let echo = held.echo.take();
            *this.held = None;
            return Poll::Ready(Ok(match (done, resp) {
                (Ok(()), Some(resp)) => resp,
                (Err(e), Some(_)) => {
                    // The handler ran, but its record is not safe: the response is withheld.
                    unavailable(
                        &format!("the audit record of this request could not be made durable: {e}"),
                        echo,
                    )
                }
                (_, None) => unavailable("the response was already taken", None),
            }));
        }
        let result = match this.kind.project() {
            KindProj::Refused { message } => {
                return Poll::Ready(Ok(unavailable(message, this.echo.take())));
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
        let echo = this.echo.take();
        if let Some((name, value)) = &echo {
            parts.headers.insert(name.clone(), value.clone());
        }
        let grpc = parts
            .headers
            .get(&super::outcome::GRPC_STATUS)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i32>().ok());
        let status = parts.status.as_u16();
        let grpc_answer = grpc.is_some()
            || parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        let mut wait: Option<DurableWait> = None;
        // A target the handler put on its response (an id known only once it ran).
        let response_target = parts.extensions.remove::<audit_core::Target>();
        let tail = this.pending.take().and_then(|mut p| {
            if grpc_answer {
                p.set_grpc_answer();
            }
            if let Some(t) = response_target {
                p.set_response_target(t);
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
                let durable = p.durable_auditor();
                if let (Some(auditor), Some(seq)) = (
                    durable,
                    p.finish(outcome_for(status, grpc), Some(status), grpc),
                ) {
                    wait = Some(Box::pin(
                        async move { auditor.wait_durable(seq, None).await },
                    ));
                }
                None
            }
        });
        let resp = Response::from_parts(parts, ResponseBody::new(body, tail));
        match wait {
            None => Poll::Ready(Ok(resp)),
            Some(wait) => {
                // Strict with a spool: released once the event is on disk, polled at once
                // since it is usually already there.
                *this.held = Some(Held {
                    resp: Some(resp),
                    echo,
                    wait,
                });
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
}

#[pinned_drop]
impl<F, B> PinnedDrop for ResponseFuture<F, B> {
    fn drop(self: Pin<&mut Self>) {
        // Dropped before the inner service answered: the client went away.
        if let Some(p) = self.project().pending.take() {
            p.finish(Outcome::Cancelled, None, None);
        }
    }
}
