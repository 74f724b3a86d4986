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

use audit_core::sync::LockExt;
use std::any::Any;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use audit_core::scope::{self, RequestFacts};
use audit_core::{Actor, Auditor, Text};

use http::{HeaderMap, HeaderName, HeaderValue, Request};
use tower::{Layer, Service};

use crate::AuditContext;
use crate::context::{Slot, State, UserAgent};
use crate::origin::OriginKey;
use crate::request_id::RequestId;
use crate::trace_context::TraceContext;

/// The request an outgoing call belongs to. Cheap to clone (shared).
///
/// It is also the request's [`RequestFacts`], so code
/// recording events inside the request (`audit!` in `audit-tracing`) sees its id, trace,
/// actor, tenant and auditor.
#[derive(Debug, Clone)]
pub struct RequestScope {
    inner: Arc<Scope>,
}

#[derive(Debug)]
struct Scope {
    request_id: RequestId,
    trace: TraceContext,
    header: HeaderName,
    /// The request's [`AuditContext`] state (it lives here so that one allocation serves
    /// both); handed out only when the request is audited.
    context: Mutex<State>,
    /// Present when the request is audited.
    auditor: Option<Auditor>,
    client: Option<std::net::IpAddr>,
    /// Bytes of the user agent (which itself is in the audit context's state: see
    /// `State::user_agent`), for size estimates.
    user_agent_len: usize,
}

impl Slot for Scope {
    fn cell(&self) -> &Mutex<State> {
        &self.context
    }
}

impl Scope {
    fn is_audited(&self) -> bool {
        self.auditor.is_some()
    }

    /// The audit context's state, when the request is audited.
    fn audited_state(&self) -> Option<MutexGuard<'_, State>> {
        self.is_audited().then(|| self.context.lock_ignore_poison())
    }

    /// `actor` (anonymous if none) completed with the client address and user agent this
    /// request arrived with, where authentication did not set them. Runs where the event is
    /// assembled (the worker for the layer's own event), so the request path allocates none
    /// of these strings.
    fn complete_actor(&self, actor: Option<Actor>, user_agent: Option<&UserAgent>) -> Actor {
        let mut actor =
            actor.unwrap_or_else(|| Actor::default().with_kind(Text::from_static("anonymous")));
        if actor.ip_address.is_none() {
            actor.ip_address = self.client.map(ip_text);
        }
        if actor.user_agent.is_none() {
            actor.user_agent = user_agent.map(UserAgent::text);
        }
        actor
    }
}

/// An address as text, formatted on the stack: an IPv4 address (at most 15 bytes) is then
/// held inline, with no heap block.
fn ip_text(ip: std::net::IpAddr) -> Text {
    use std::fmt::Write as _;
    let mut buf = arrayvec::ArrayString::<64>::new();
    match write!(buf, "{ip}") {
        Ok(()) => Text::new(&buf),
        Err(_) => Text::from(ip.to_string()),
    }
}

impl RequestFacts for Scope {
    fn request_id(&self) -> Option<&str> {
        Some(self.request_id.as_str())
    }

    fn trace_id(&self) -> Option<String> {
        Some(self.trace.trace_id().to_owned())
    }

    fn span_id(&self) -> Option<String> {
        Some(self.trace.span_id().to_owned())
    }

    /// The actor authentication set (anonymous if none), with the request's client address
    /// and user agent, as on the request's own event.
    fn actor(&self) -> Option<Actor> {
        let state = self.audited_state()?;
        Some(self.complete_actor(state.actor.clone(), state.user_agent.as_ref()))
    }

    /// The tenant authentication set, else the one a trusted peer service's origin claim
    /// names.
    fn organization_id(&self) -> Option<String> {
        let state = self.audited_state()?;
        match (&state.organization_id, &state.origin) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(crate::origin::Verdict::Believed(o))) => o.tenant.clone(),
            _ => None,
        }
    }

    /// `origin` (or `originRejected`), as on the request's own event.
    fn details(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        let state = self.audited_state()?;
        let mut details = serde_json::Map::new();
        match state.origin.as_ref()? {
            crate::origin::Verdict::Believed(o) => {
                details.insert("origin".into(), serde_json::to_value(o).ok()?);
            }
            crate::origin::Verdict::Rejected(why) => {
                details.insert("originRejected".into(), (*why).into());
            }
        }
        Some(details)
    }

    fn session_id(&self) -> Option<String> {
        self.audited_state()?.session_id.clone().map(String::from)
    }

    fn auditor(&self) -> Option<&Auditor> {
        self.auditor.as_ref()
    }
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
            inner: Arc::new(Scope {
                request_id,
                trace,
                header,
                context: Mutex::default(),
                auditor: None,
                client: None,
                user_agent_len: 0,
            }),
        }
    }

    /// The scope of a request the `AuditLayer` serves: also its audit context, auditor,
    /// client address and user agent, for handler events.
    pub(crate) fn for_request(
        request_id: RequestId,
        trace: TraceContext,
        header: HeaderName,
        auditor: Option<Auditor>,
        client: Option<std::net::IpAddr>,
        user_agent: Option<&HeaderValue>,
    ) -> RequestScope {
        RequestScope {
            inner: Arc::new(Scope {
                request_id,
                trace,
                header,
                context: Mutex::new(State {
                    user_agent: user_agent.map(UserAgent::of),
                    ..State::default()
                }),
                auditor,
                client,
                user_agent_len: user_agent.map_or(0, HeaderValue::len),
            }),
        }
    }

    /// The request's audit context (sharing this scope's allocation), when it is audited.
    pub(crate) fn audit_context(&self) -> Option<AuditContext> {
        self.inner
            .is_audited()
            .then(|| AuditContext::in_slot(Arc::clone(&self.inner) as Arc<dyn Slot>))
    }

    /// The auditor, when the request is audited.
    pub(crate) fn auditor(&self) -> Option<&Auditor> {
        self.inner.auditor.as_ref()
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
    pub fn run<F: Future>(self, fut: F) -> scope::Scoped<F> {
        scope::scope(self.inner, fut)
    }

    /// Runs `f` with this scope current.
    pub fn run_sync<R>(self, f: impl FnOnce() -> R) -> R {
        scope::sync_scope(self.inner, f)
    }

    /// See `Scope::complete_actor`.
    pub(crate) fn complete_actor(
        &self,
        actor: Option<Actor>,
        user_agent: Option<&UserAgent>,
    ) -> Actor {
        self.inner.complete_actor(actor, user_agent)
    }

    /// Bytes of the user agent, for size estimates.
    pub(crate) fn user_agent_len(&self) -> usize {
        self.inner.user_agent_len
    }

    fn inject_scope(s: &Scope, headers: &mut HeaderMap) {
        if !headers.contains_key(&s.header)
            && let Ok(v) = HeaderValue::from_str(s.request_id.as_str())
        {
            headers.insert(s.header.clone(), v);
        }
        if !headers.contains_key(&crate::trace_context::TRACEPARENT)
            && let Ok(v) = HeaderValue::from_str(&s.trace.to_traceparent())
        {
            headers.insert(crate::trace_context::TRACEPARENT, v);
        }
    }
}

/// The current request scope, when called within a request the `AuditLayer` is handling.
pub fn current() -> Option<RequestScope> {
    let facts: Arc<dyn Any + Send + Sync> = scope::current()?;
    facts
        .downcast::<Scope>()
        .ok()
        .map(|inner| RequestScope { inner })
}

/// Adds the current request's id and `traceparent` to `headers` (leaving values already
/// there alone). Does nothing outside a request.
pub fn inject_headers(headers: &mut HeaderMap) {
    scope::with_current(|facts| {
        let Some(facts) = facts else { return };
        let any: &dyn Any = &**facts;
        if let Some(s) = any.downcast_ref::<Scope>() {
            (RequestScope::inject_scope(s, headers));
        }
    });
}

/// Client-side layer: copies the current request id and trace context onto outgoing
/// requests, and, when asked, the user and tenant the request is for
/// ([`with_origin`](Self::with_origin)).
#[derive(Debug, Clone, Default)]
pub struct PropagateLayer {
    origin: Option<Option<OriginKey>>,
}

impl PropagateLayer {
    /// A layer that adds the current request's id and `traceparent` to every outgoing
    /// request its service sends (an HTTP client, or a tonic `Channel`); outside a request it
    /// adds nothing.
    pub fn new() -> PropagateLayer {
        PropagateLayer::default()
    }

    /// Also sends the current request's actor (id and type) and tenant as an origin claim
    /// (`x-audit-origin`, see [`origin`](crate::origin)), signed with `key` when given (a
    /// receiver that trusts the caller only by its address needs no key). Use it only on
    /// clients of your own services: the claim names your user.
    #[must_use]
    pub fn with_origin(mut self, key: Option<OriginKey>) -> PropagateLayer {
        self.origin = Some(key);
        self
    }
}

impl<S> Layer<S> for PropagateLayer {
    type Service = Propagate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Propagate {
            inner,
            origin: self.origin.clone(),
        }
    }
}

/// Service made by [`PropagateLayer`].
#[derive(Debug, Clone)]
pub struct Propagate<S> {
    inner: S,
    origin: Option<Option<OriginKey>>,
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
        if let Some(key) = &self.origin {
            inject_origin(req.headers_mut(), key.as_ref());
        }
        self.inner.call(req)
    }
}

/// Adds the current request's origin claim (its actor and tenant), signed with `key` when
/// given, unless the request already carries one. Does nothing outside a request.
pub fn inject_origin(headers: &mut HeaderMap, key: Option<&OriginKey>) {
    if headers.contains_key(&crate::origin::ORIGIN_HEADER) {
        return;
    }
    scope::with_current(|facts| {
        let Some(facts) = facts else { return };
        let any: &dyn Any = &**facts;
        let Some(s) = any.downcast_ref::<Scope>() else {
            return;
        };
        let claim = {
            let state = s.context.lock_ignore_poison();
            crate::origin::of(
                state.actor.as_ref(),
                state.organization_id.as_ref(),
                s.request_id.as_str(),
            )
        };
        if let Some(v) = crate::origin::header(&claim, key) {
            headers.insert(crate::origin::ORIGIN_HEADER, v);
        }
    });
}
