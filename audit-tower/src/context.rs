//! [`AuditContext`]: what the application tells the audit layer about a request.

use audit_core::sync::LockExt;
use std::sync::{Arc, Mutex, MutexGuard};

use audit_core::{Actor, Outcome, Target, Text};
use serde_json::{Map, Value};

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) actor: Option<Actor>,
    pub(crate) organization_id: Option<Text>,
    pub(crate) session_id: Option<Text>,
    pub(crate) target: Option<Target>,
    pub(crate) details: Map<String, Value>,
    pub(crate) event_type: Option<Text>,
    pub(crate) outcome: Option<Outcome>,
    pub(crate) description: Option<Text>,
    pub(crate) skip: bool,
    /// The route's own meaning ([`AuditRoute`](crate::classify::AuditRoute)).
    pub(crate) route: Option<crate::classify::RouteMeaning>,
    /// What was made of a peer service's origin claim.
    pub(crate) origin: Option<crate::origin::Verdict>,
    /// The request's `User-Agent`, kept here rather than in the scope so that the worker
    /// replaces it with a copy when it takes the state (see [`AuditContext::take`]): a
    /// header value hyper parsed shares the connection's read buffer, which a context kept by
    /// work that outlives the response would otherwise hold, with the rest of that request's
    /// head (its `Authorization` header too).
    pub(crate) user_agent: Option<UserAgent>,
}

/// The request's user agent: the header as received while the request is in flight, text of
/// its own once its event is built.
#[derive(Debug, Clone)]
pub(crate) enum UserAgent {
    Header(http::HeaderValue),
    Text(Text),
}

impl UserAgent {
    /// A short one (`curl/8.5.0`, `okhttp/4.12.0`, `python-requests/2.32.3`: up to
    /// [`Text::INLINE_LEN`] bytes) is copied into text at once, which allocates nothing; a
    /// longer one is held as the header (a reference count) until the event is built.
    pub(crate) fn of(v: &http::HeaderValue) -> UserAgent {
        match v.to_str() {
            Ok(s) if s.len() <= Text::INLINE_LEN => UserAgent::Text(Text::new(s)),
            _ => UserAgent::Header(v.clone()),
        }
    }

    /// As event text (bytes outside visible ASCII replaced).
    pub(crate) fn text(&self) -> Text {
        match self {
            UserAgent::Header(v) => match v.to_str() {
                Ok(s) => Text::new(s),
                Err(_) => Text::from(String::from_utf8_lossy(v.as_bytes())),
            },
            UserAgent::Text(t) => t.clone(),
        }
    }
}

/// Per-request audit facts set by middleware and handlers.
///
/// The [`AuditLayer`](crate::AuditLayer) puts an `AuditContext` in the request's extensions
/// before calling the inner service. Authentication middleware (which must therefore run
/// *inside* the audit layer) records the actor and tenant it established; handlers add the
/// target, details, or override the event type or outcome when they know better than the
/// route does.
///
/// ```
/// use audit_core::{Actor, Outcome, Target};
/// use audit_tower::AuditContext;
///
/// let ctx = AuditContext::default();
/// // In auth middleware, after verifying the token:
/// ctx.set_actor(Actor::user("user-123").with_role("admin"));
/// ctx.set_organization_id("acme");
/// // In the handler:
/// ctx.set_target(Target::new("api_key", "key_7f3a"));
/// ctx.detail("scopes", 2);
/// assert_eq!(ctx.organization_id().as_deref(), Some("acme"));
/// ```
///
/// With axum, take it as `Extension<AuditContext>`. It is a cheap handle: clones share state.
#[derive(Debug, Clone)]
pub struct AuditContext {
    state: Arc<dyn Slot>,
}

/// Where an [`AuditContext`]'s state lives: on its own, or inside the request's scope (one
/// allocation per request instead of two).
pub(crate) trait Slot: std::fmt::Debug + Send + Sync {
    fn cell(&self) -> &Mutex<State>;
}

#[derive(Debug, Default)]
struct Standalone(Mutex<State>);

impl Slot for Standalone {
    fn cell(&self) -> &Mutex<State> {
        &self.0
    }
}

impl Default for AuditContext {
    fn default() -> AuditContext {
        AuditContext {
            state: Arc::new(Standalone::default()),
        }
    }
}

impl AuditContext {
    /// A context whose state lives in `slot`.
    pub(crate) fn in_slot(slot: Arc<dyn Slot>) -> AuditContext {
        AuditContext { state: slot }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.cell().lock_ignore_poison()
    }

    pub(crate) fn is_skipped(&self) -> bool {
        self.lock().skip
    }

    /// Takes what the request's event needs. The identity (actor, tenant, session, user
    /// agent) stays, so work that outlives the response (spawned with the request's span)
    /// still knows who; the user agent stays as a copy, not as the request's header.
    pub(crate) fn take(&self) -> State {
        let mut state = self.lock();
        let user_agent = state.user_agent.take().map(|u| UserAgent::Text(u.text()));
        let identity = State {
            actor: state.actor.clone(),
            organization_id: state.organization_id.clone(),
            session_id: state.session_id.clone(),
            user_agent: user_agent.clone(),
            origin: state.origin.clone(),
            ..State::default()
        };
        let mut taken = std::mem::replace(&mut *state, identity);
        taken.user_agent = user_agent;
        taken
    }

    /// Who made the request (as established by your authentication).
    pub fn set_actor(&self, actor: Actor) {
        self.lock().actor = Some(actor);
    }

    /// The tenant.
    pub fn set_organization_id(&self, tenant: impl Into<Text>) {
        self.lock().organization_id = Some(tenant.into());
    }

    /// The session.
    pub fn set_session_id(&self, session: impl Into<Text>) {
        self.lock().session_id = Some(session.into());
    }

    /// The resource acted on (replaces the one derived from the route).
    pub fn set_target(&self, target: Target) {
        self.lock().target = Some(target);
    }

    /// Adds a detail (redacted like everything else before it leaves memory).
    pub fn detail(&self, key: impl Into<String>, value: impl Into<Value>) {
        self.lock().details.insert(key.into(), value.into());
    }

    /// Replaces the event type decided by the rules (validated when the event is built;
    /// an invalid one is reported in the event's details and the rule's type is kept).
    pub fn set_event_type(&self, event_type: impl Into<Text>) {
        self.lock().event_type = Some(event_type.into());
    }

    /// Replaces the outcome derived from the response status.
    pub fn set_outcome(&self, outcome: Outcome) {
        self.lock().outcome = Some(outcome);
    }

    /// A human sentence for the event.
    pub fn set_description(&self, description: impl Into<Text>) {
        self.lock().description = Some(description.into());
    }

    /// Sets what was made of a peer service's origin claim.
    pub(crate) fn set_origin(&self, verdict: crate::origin::Verdict) {
        self.lock().origin = Some(verdict);
    }

    /// The user and tenant a peer service made this request for, when this service trusts
    /// the peer ([`AuditLayer::trust_peers`](crate::AuditLayer::trust_peers)).
    pub fn origin(&self) -> Option<crate::origin::Origin> {
        match &self.lock().origin {
            Some(crate::origin::Verdict::Believed(o)) => Some(o.clone()),
            _ => None,
        }
    }

    /// Sets the route's own meaning (by [`AuditRoute`](crate::classify::AuditRoute)).
    pub(crate) fn set_route(&self, route: crate::classify::RouteMeaning) {
        self.lock().route = Some(route);
    }

    /// Records no event for this request (e.g. the handler recorded its own, richer ones).
    pub fn skip(&self) {
        self.lock().skip = true;
    }

    /// The tenant set so far.
    pub fn organization_id(&self) -> Option<String> {
        self.lock().organization_id.clone().map(String::from)
    }

    /// The session set so far.
    pub fn session_id(&self) -> Option<String> {
        self.lock().session_id.clone().map(String::from)
    }

    /// The actor set so far.
    pub fn actor(&self) -> Option<Actor> {
        self.lock().actor.clone()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn taking_the_state_keeps_the_identity_and_lets_go_of_the_request_header() {
        let head = bytes::Bytes::from(b"GET / curl/8.5.0 Authorization: Bearer x".to_vec());
        let ua = http::HeaderValue::from_maybe_shared(head.slice(6..16)).unwrap();
        let ctx = AuditContext::default();
        ctx.set_actor(Actor::user("u-1"));
        ctx.set_organization_id("acme");
        ctx.detail("k", "v");
        ctx.lock().user_agent = Some(UserAgent::Header(ua));
        assert!(!head.is_unique());

        let taken = ctx.take();
        assert!(
            head.is_unique(),
            "the header (and the buffer it shares) is let go"
        );
        assert_eq!(taken.user_agent.unwrap().text(), "curl/8.5.0");
        assert_eq!(taken.details["k"], "v");
        // What later work in the request still sees.
        let left = ctx.lock();
        assert_eq!(left.actor.as_ref().unwrap().id.as_deref(), Some("u-1"));
        assert_eq!(left.organization_id.as_deref(), Some("acme"));
        assert_eq!(left.user_agent.as_ref().unwrap().text(), "curl/8.5.0");
        assert!(left.details.is_empty());
    }
}
