//! [`ResponseFuture`]: finishes the event when the response is ready, or records
//! `cancelled` when the future is dropped first.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use audit_core::Outcome;
use http::{HeaderName, HeaderValue, Response};
use pin_project::{pin_project, pinned_drop};
use tokio::task::futures::TaskLocalFuture;

use super::record::{Pending, outcome_for};
use crate::propagate::RequestScope;

/// Response future of [`Audit`](super::Audit).
#[pin_project(PinnedDrop)]
pub struct ResponseFuture<F> {
    #[pin]
    inner: TaskLocalFuture<RequestScope, F>,
    pending: Option<Box<Pending>>,
    echo: Option<(HeaderName, HeaderValue)>,
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(
        inner: TaskLocalFuture<RequestScope, F>,
        pending: Option<Box<Pending>>,
        echo: Option<(HeaderName, HeaderValue)>,
    ) -> ResponseFuture<F> {
        ResponseFuture {
            inner,
            pending,
            echo,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut result = std::task::ready!(this.inner.poll(cx));
        match &mut result {
            Ok(resp) => {
                if let Some((name, value)) = this.echo.take() {
                    resp.headers_mut().insert(name, value);
                }
                let grpc = resp
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok());
                let status = resp.status().as_u16();
                if let Some(p) = this.pending.take() {
                    p.finish(outcome_for(status, grpc), Some(status), grpc);
                }
            }
            Err(_) => {
                if let Some(p) = this.pending.take() {
                    p.finish(Outcome::Error, None, None);
                }
            }
        }
        Poll::Ready(result)
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
