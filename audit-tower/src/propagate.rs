//! Carrying the current request's id and trace context onto outgoing calls, so a second
//! service continues the same request.
//!
//! While the [`AuditLayer`](crate::AuditLayer) runs a request, its id and trace context are
//! the *current request scope* of the task. [`PropagateLayer`] wraps an outgoing Tower HTTP
//! client (hyper-util, tonic channels, …) and copies them onto each request;
//! [`inject_headers`] does the same for clients that are not Tower services (reqwest).
//!
//! ```
//! use http::HeaderMap;
//! use audit_tower::propagate::{inject_headers, RequestScope};
//! use audit_tower::request_id::RequestId;
//! use audit_tower::trace_context::TraceContext;
//!
//! let scope = RequestScope::new(RequestId::parse("req-1").unwrap(), TraceContext::new_root());
//! let headers = scope.run_sync(|| {
//!     let mut h = HeaderMap::new();
//!     inject_headers(&mut h);
//!     h
//! });
//! assert_eq!(headers["x-request-id"], "req-1");
//! assert!(headers.contains_key("traceparent"));
//! ```
//!
//! The scope is task-local: work spawned onto other tasks does not inherit it (run it inside
//! [`RequestScope::run`] with [`current`]'s value to carry it along).

use std::future::Future;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderName, HeaderValue, Request};
use tower::{Layer, Service};

use crate::request_id::RequestId;
use crate::trace_context::TraceContext;

tokio::task_local! {
    static CURRENT: RequestScope;
}

/// The request an outgoing call belongs to. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct RequestScope {
    inner: std::sync::Arc<Scope>,
}

#[derive(Debug)]
struct Scope {
    request_id: RequestId,
    trace: TraceContext,
    header: HeaderName,
}

impl RequestScope {
    /// A scope for `request_id` in `trace`, propagated as `x-request-id`.
    pub fn new(request_id: RequestId, trace: TraceContext) -> RequestScope {
        RequestScope::with_header(request_id, trace, HeaderName::from_static("x-request-id"))
    }

    pub(crate) fn with_header(
        request_id: RequestId,
        trace: TraceContext,
        header: HeaderName,
    ) -> RequestScope {
        RequestScope {
            inner: std::sync::Arc::new(Scope {
                request_id,
                trace,
                header,
            }),
        }
    }

    /// The request id.
    pub fn request_id(&self) -> &RequestId {
        &self.inner.request_id
    }

    /// The trace context.
    pub fn trace(&self) -> &TraceContext {
        &self.inner.trace
    }

    /// Runs `fut` with this scope current.
    pub fn run<F: Future>(self, fut: F) -> tokio::task::futures::TaskLocalFuture<RequestScope, F> {
        CURRENT.scope(self, fut)
    }

    /// Runs `f` with this scope current.
    pub fn run_sync<R>(self, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(self, f)
    }

    fn inject(&self, headers: &mut HeaderMap) {
        let s = &self.inner;
        if !headers.contains_key(&s.header)
            && let Ok(v) = HeaderValue::from_str(s.request_id.as_str())
        {
            headers.insert(s.header.clone(), v);
        }
        if !headers.contains_key("traceparent")
            && let Ok(v) = HeaderValue::from_str(&s.trace.to_traceparent())
        {
            headers.insert(HeaderName::from_static("traceparent"), v);
        }
    }
}

/// The current request scope, when called within a request the `AuditLayer` is handling.
pub fn current() -> Option<RequestScope> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Adds the current request's id and `traceparent` to `headers` (leaving values already
/// there alone). Does nothing outside a request.
pub fn inject_headers(headers: &mut HeaderMap) {
    let _ = CURRENT.try_with(|scope| scope.inject(headers));
}

/// Client-side layer: copies the current request id and trace context onto outgoing
/// requests.
#[derive(Debug, Clone, Copy, Default)]
pub struct PropagateLayer;

impl PropagateLayer {
    /// The layer.
    pub fn new() -> PropagateLayer {
        PropagateLayer
    }
}

impl<S> Layer<S> for PropagateLayer {
    type Service = Propagate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Propagate { inner }
    }
}

/// Service made by [`PropagateLayer`].
#[derive(Debug, Clone)]
pub struct Propagate<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for Propagate<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        inject_headers(req.headers_mut());
        self.inner.call(req)
    }
}
