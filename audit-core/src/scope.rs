//! The current request: what the capture layer knows about the request a task is serving,
//! shared with code that records events from inside it.
//!
//! The `AuditLayer` (in `audit-tower`) makes its request current for the duration of the
//! inner service's future; `audit!` (in `audit-tracing`) reads it to fill the request id,
//! trace, actor and tenant of handler events, and to find the [`Auditor`] to record with.
//! Neither crate depends on the other: both meet here.
//!
//! The scope is task-local. Work spawned onto another task does not inherit it unless it is
//! run inside [`scope`] with [`current`]'s value (or instrumented with a span the
//! `audit-tracing` layer saw created inside the request).
//!
//! ```
//! use std::sync::Arc;
//! use audit_core::scope::{self, RequestFacts};
//!
//! #[derive(Debug)]
//! struct Job { id: String }
//! impl RequestFacts for Job {
//!     fn request_id(&self) -> Option<&str> { Some(&self.id) }
//! }
//!
//! let facts: Arc<dyn RequestFacts> = Arc::new(Job { id: "job-7".into() });
//! let seen = scope::sync_scope(facts, || {
//!     scope::with_current(|f| f.and_then(|f| f.request_id().map(str::to_owned)))
//! });
//! assert_eq!(seen.as_deref(), Some("job-7"));
//! assert!(scope::current().is_none()); // outside the scope again
//! ```

use std::any::Any;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use tokio::task::futures::TaskLocalFuture;

use crate::{Actor, AuditEvent, Auditor, Context};

/// What is known about the request being served. Every method but `request_id` has a default
/// saying "unknown".
pub trait RequestFacts: Any + Debug + Send + Sync {
    /// The request id.
    fn request_id(&self) -> Option<&str>;

    /// The W3C trace id (32 lowercase hex digits).
    fn trace_id(&self) -> Option<String> {
        None
    }

    /// This service's span id for the request (16 lowercase hex digits).
    fn span_id(&self) -> Option<String> {
        None
    }

    /// Who made the request, as authentication established it so far.
    fn actor(&self) -> Option<Actor> {
        None
    }

    /// The tenant.
    fn organization_id(&self) -> Option<String> {
        None
    }

    /// The session.
    fn session_id(&self) -> Option<String> {
        None
    }

    /// The auditor the request's events go to.
    fn auditor(&self) -> Option<&Auditor> {
        None
    }

    /// Details every event of the request carries (for example who a peer service made it
    /// for); an event's own details of the same name win.
    fn details(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        None
    }
}

/// Sets the correlation fields (request, trace and span id), actor, tenant and session of
/// `event` from `facts`, where `facts` knows them. Works on the built event in place, so a
/// caller that fills further fields afterwards moves nothing.
pub fn fill(facts: &dyn RequestFacts, event: &mut AuditEvent) {
    let ctx = event.context.get_or_insert_with(Context::default);
    if let Some(id) = facts.request_id() {
        ctx.request_id = Some(id.into());
    }
    if let Some(t) = facts.trace_id() {
        ctx.trace_id = Some(t.into());
    }
    if let Some(s) = facts.span_id() {
        ctx.span_id = Some(s.into());
    }
    if let Some(o) = facts.organization_id() {
        ctx.organization_id = Some(o.into());
    }
    if let Some(s) = facts.session_id() {
        ctx.session_id = Some(s.into());
    }
    if ctx.is_empty() {
        event.context = None;
    }
    if let Some(a) = facts.actor() {
        event.actor = Some(a);
    }
    if let Some(details) = facts.details() {
        for (k, v) in details {
            event.details.entry(k).or_insert(v);
        }
    }
}

tokio::task_local! {
    static CURRENT: Arc<dyn RequestFacts>;
}

/// Runs `fut` with `facts` as the current request.
pub fn scope<F: Future>(facts: Arc<dyn RequestFacts>, fut: F) -> Scoped<F> {
    Scoped {
        inner: CURRENT.scope(facts, fut),
    }
}

/// A future run with a request current ([`scope`]): its output is the inner future's.
#[pin_project::pin_project]
pub struct Scoped<F> {
    #[pin]
    inner: TaskLocalFuture<Arc<dyn RequestFacts>, F>,
}

impl<F> std::fmt::Debug for Scoped<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scoped").finish_non_exhaustive()
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        self.project().inner.poll(cx)
    }
}

/// Runs `f` with `facts` as the current request.
pub fn sync_scope<R>(facts: Arc<dyn RequestFacts>, f: impl FnOnce() -> R) -> R {
    CURRENT.sync_scope(facts, f)
}

/// Calls `f` with the current request, if any, without cloning it.
pub fn with_current<R>(f: impl FnOnce(Option<&Arc<dyn RequestFacts>>) -> R) -> R {
    let mut f = Some(f);
    match CURRENT.try_with(|facts| f.take().map(|f| f(Some(facts)))) {
        Ok(Some(r)) => r,
        _ => match f.take() {
            Some(f) => f(None),
            None => unreachable!("`f` runs exactly once"),
        },
    }
}

/// The current request, if any.
pub fn current() -> Option<Arc<dyn RequestFacts>> {
    CURRENT.try_with(Arc::clone).ok()
}
