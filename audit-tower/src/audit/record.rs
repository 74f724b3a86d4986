//! What the layer captured about a request, and the event it becomes.

use std::sync::Arc;
use std::time::Instant;

use audit_core::{
    AuditEvent, CapturedBody, Category, Context, DeferredEvent, EventType, HttpFacts, Outcome,
    OverflowPolicy, Reservation, RpcFacts, Target, Text, Timestamp,
};
use http::Request;
use serde_json::Value;

use super::layer::Config;
use super::recycle::Recycler;
use crate::classify::{Classification, Delivery, Level, Rpc};
use crate::context::AuditContext;
use crate::memo::Memo;
use crate::propagate::RequestScope;
use crate::request_id::Rejected;

/// The gRPC status header (or trailer), named once rather than parsed per lookup.
pub(crate) const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// Status → result: 2xx/3xx success, 401/403 denied, other 4xx failure, 5xx error; a gRPC
/// status, when present, decides instead.
pub(crate) fn outcome_for(status: u16, grpc: Option<i32>) -> Outcome {
    if let Some(code) = grpc {
        return match code {
            0 => Outcome::Success,
            1 => Outcome::Cancelled,
            7 | 16 => Outcome::Denied,
            2 | 4 | 13 | 14 | 15 => Outcome::Error,
            _ => Outcome::Failure,
        };
    }
    match status {
        401 | 403 => Outcome::Denied,
        400..=499 => Outcome::Failure,
        500..=599 => Outcome::Error,
        _ => Outcome::Success,
    }
}

/// Facts captured when the request arrived, finished into an event when it is answered.
#[derive(Debug)]
pub(crate) struct Pending {
    started: Instant,
    timestamp: Timestamp,
    method: http::Method,
    /// The request target, path then `?query`, copied into a buffer that stays with the
    /// record and is reused by the next request it serves (so the copy allocates nothing once
    /// warm). Not the request's `Uri`: one that hyper parsed shares the connection's read
    /// buffer, which a kept record would otherwise hold, with the rest of that request's head,
    /// until it is reused.
    target: UriText,
    template: Option<super::service::RouteTemplate>,
    chain: Vec<String>,
    scope: RequestScope,
    rejected: Option<Rejected>,
    class: Classification,
    ctx: AuditContext,
    grpc_request: bool,
    /// The answer was gRPC's (its content type or a `grpc-status`): only then does the
    /// request's path name a service and method, since any client can send a gRPC content
    /// type to any server.
    grpc_answer: bool,
    response_body: Option<CapturedBody>,
    notes: serde_json::Map<String, Value>,
    reservation: Option<Reservation>,
    request_capture: Option<super::body::SharedCapture>,
    /// A gRPC call's request messages, counted by its body as the service reads them.
    request_messages: Option<super::grpc::SharedMessages>,
    response_messages: Option<u64>,
    response: Option<Response>,
    /// Where the worker hands this record back once the event is built (taken then, so a
    /// kept record does not hold its own free list).
    recycler: Option<Arc<Recycler>>,
}

impl Pending {
    pub(crate) fn set_request_capture(&mut self, c: super::body::SharedCapture) {
        self.request_capture = Some(c);
    }

    /// The service answered in gRPC.
    pub(crate) fn set_grpc_answer(&mut self) {
        self.grpc_answer = true;
    }

    pub(crate) fn set_request_messages(&mut self, m: super::grpc::SharedMessages) {
        self.request_messages = Some(m);
    }

    pub(crate) fn set_response_messages(&mut self, n: u64) {
        self.response_messages = Some(n);
    }

    /// How much is recorded for this request.
    pub(crate) fn level(&self) -> Level {
        self.class.level()
    }

    /// The request is gRPC: its status may come in the response trailers.
    pub(crate) fn is_grpc(&self) -> bool {
        self.grpc_request
    }

    pub(crate) fn set_response_body(&mut self, body: CapturedBody) {
        self.response_body = Some(body);
    }

    /// The response body ended early (client gone, stream failed).
    pub(crate) fn note_incomplete_response(&mut self) {
        self.notes.insert("responseIncomplete".into(), true.into());
    }

    /// The event is guaranteed room (strict delivery).
    pub(crate) fn set_reservation(&mut self, r: Reservation) {
        self.reservation = Some(r);
    }

    /// Strict delivery refused the request because the pipeline could not promise room.
    pub(crate) fn note_refused(&mut self, why: &str) {
        self.notes.insert("auditUnavailable".into(), why.into());
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new<B>(
        req: &Request<B>,
        template: Option<super::service::RouteTemplate>,
        config: &Config,
        chain: Vec<String>,
        scope: RequestScope,
        rejected: Option<Rejected>,
        class: Classification,
        ctx: AuditContext,
        grpc_request: bool,
        uri_buffer: String,
        timestamp: Timestamp,
        started: Instant,
    ) -> Pending {
        Pending {
            started,
            timestamp,
            method: req.method().clone(),
            target: UriText::fill(uri_buffer, req.uri()),
            template,
            chain,
            scope,
            rejected,
            class,
            ctx,
            grpc_request,
            grpc_answer: false,
            response_body: None,
            notes: serde_json::Map::new(),
            reservation: None,
            request_capture: None,
            request_messages: None,
            response_messages: None,
            response: None,
            recycler: Some(Arc::clone(&config.recycler)),
        }
    }

    /// The auditor to wait on before the response is released: a strict rule's, when that
    /// auditor has a durable spool.
    pub(crate) fn durable_auditor(&self) -> Option<audit_core::Auditor> {
        (self.class.delivery() == Delivery::Strict)
            .then(|| self.scope.auditor().filter(|a| a.is_spooled()).cloned())
            .flatten()
    }

    /// Records the event (unless the handler asked to skip it) and returns its seq. Only the
    /// decision and a pointer's move happen here: this box itself is the recipe the worker
    /// builds from.
    pub(crate) fn finish(
        mut self: Box<Self>,
        response_outcome: Outcome,
        status: Option<u16>,
        grpc: Option<i32>,
    ) -> Option<u64> {
        if self.ctx.is_skipped() {
            return None;
        }
        self.response = Some(Response {
            outcome: response_outcome,
            status,
            grpc,
            // Measured now: the worker builds the event later, after a queueing delay that
            // is not the request's.
            duration: self.started.elapsed(),
        });
        // A refusal is counted and reported by the pipeline itself.
        match self.reservation.take() {
            Some(r) => r.record_deferred_boxed(self),
            None => {
                let policy = match self.class.delivery() {
                    Delivery::Block { timeout } => OverflowPolicy::Block { timeout },
                    _ => OverflowPolicy::DropNewest,
                };
                let hint = self.size_hint();
                // A record exists only for an audited request, whose scope has the auditor.
                let auditor = self.scope.auditor().cloned()?;
                auditor.record_deferred_boxed(hint, policy, self)
            }
        }
        .ok()
    }

    /// A generous estimate of the event's size, charged against the buffer before it exists.
    fn size_hint(&self) -> usize {
        let strings = self.target.text.len()
            + self.scope.user_agent_len()
            + self.chain.iter().map(String::len).sum::<usize>();
        let bodies = usize::from(self.request_capture.is_some()) * super::body::CAPTURE_LIMIT
            + usize::from(self.response_body.is_some()) * super::body::CAPTURE_LIMIT;
        2048 + 2 * strings + bodies
    }
}

/// How the response ended, as [`Pending::finish`] saw it.
#[derive(Debug, Clone, Copy)]
struct Response {
    outcome: Outcome,
    status: Option<u16>,
    grpc: Option<i32>,
    duration: std::time::Duration,
}

impl DeferredEvent for Pending {
    /// Assembles the event on the pipeline's worker, then hands the record back to its
    /// layer for reuse (see [`Recycler`]).
    fn build(mut self: Box<Self>) -> AuditEvent {
        let event = self.assemble();
        if let Some(recycler) = self.recycler.take() {
            recycler.put(self);
        }
        event
    }
}

impl Pending {
    /// The event, in place rather than through builder moves. Takes what the event keeps;
    /// what stays (the scope) is freed on the request thread when the record is reused.
    fn assemble(&mut self) -> AuditEvent {
        let Response {
            outcome: response_outcome,
            status,
            grpc,
            duration,
        } = self.response.take().unwrap_or(Response {
            outcome: Outcome::Error,
            status: None,
            grpc: None,
            duration: self.started.elapsed(),
        });
        let class = &mut self.class;
        let grpc_call = self.grpc_request && self.grpc_answer;
        let call = grpc_call
            .then(|| super::grpc::service_and_method(self.target.path()))
            .flatten();
        class.resolve(
            &self.method,
            self.target.path(),
            self.template.as_ref().map(|t| t.as_str()),
            call.map(|(service, method)| Rpc {
                service,
                method,
                status: grpc,
            }),
        );
        let state = self.ctx.take();
        let outcome = state.outcome.unwrap_or(response_outcome);
        let (mut event_type, mut category, severity) = class.finish(outcome, status, grpc);
        let mut details = state.details;
        details.extend(std::mem::take(&mut self.notes));
        if let Some(t) = state.event_type {
            if EventType::new(&t).is_ok() {
                category = None;
                event_type = t;
            } else {
                details.insert("invalidEventType".into(), Value::String(t.into()));
            }
        }
        if let Some(why) = self.rejected.take() {
            details.insert("inboundRequestIdRejected".into(), why.as_str().into());
        }
        if !self.chain.is_empty() {
            details.insert(
                "forwardedFor".into(),
                std::mem::take(&mut self.chain).into(),
            );
        }
        let category = category
            .or(class.category())
            .or_else(|| Category::from_event_type(&event_type))
            .unwrap_or(Category::Data);

        // The event type was validated above or comes from a rule; a rule with a malformed
        // type is a configuration error we still must not lose the request over.
        let mut event = match EventType::from_text(event_type) {
            Ok(t) => AuditEvent::new(t, category),
            Err(e) => {
                return match AuditEvent::builder("system.audit.invalid_rule")
                    .category(Category::System)
                    .detail("error", e.to_string())
                    .request_id(self.scope.request_id().as_str())
                    .build()
                {
                    Ok(fallback) => fallback,
                    // A constant, valid type; the worker reports a panic here as build_failed.
                    Err(e) => unreachable!("fallback event failed to build: {e}"),
                };
            }
        };
        event.timestamp = self.timestamp;
        event.severity = severity;
        event.result = Some(outcome);
        event.description = state.description;
        event.actor = Some(
            self.scope
                .complete_actor(state.actor, state.user_agent.as_ref()),
        );
        event.target = state.target.or_else(|| {
            // A nested resource's parent (the index of a vector) goes with the default target.
            if let Some((kind, id)) = class.take_parent() {
                let mut parent = serde_json::Map::new();
                parent.insert("type".into(), kind.as_str().into());
                if let Some(id) = id {
                    parent.insert("id".into(), id.as_str().into());
                }
                details.insert("parent".into(), parent.into());
            }
            class.take_target().map(|(kind, id)| match id {
                Some(id) => Target::new(kind, id),
                None => Target::default().with_kind(kind),
            })
        });
        let http = event.http.insert(HttpFacts::default());
        http.method = Some(method_text(&self.method));
        http.duration_ms = Some((duration.as_secs_f64() * 1e6).round() / 1e3);
        http.path = Some(Text::new(self.target.path()));
        http.route = class
            .take_route()
            .or_else(|| self.template.as_ref().map(|t| route_text(t.as_str())));
        http.status_code = status;
        http.query = self.target.query().map(Text::new);
        if grpc_call {
            let (service, method) = call.unwrap_or_default();
            let mut rpc = RpcFacts::grpc(service, method);
            rpc.grpc_status_code = grpc;
            rpc.request_messages = self.request_messages.take().map(|m| m.count());
            rpc.response_messages = self.response_messages.take();
            event.rpc = Some(Box::new(rpc));
        }
        http.response_body = self.response_body.take();
        http.request_body = self.request_capture.take().map(|c| {
            c.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .snapshot()
        });
        let trace = self.scope.trace();
        let context = event.context.insert(Context::default());
        context.request_id = Some(Text::new(self.scope.request_id().as_str()));
        context.trace_id = Some(Text::new(trace.trace_id()));
        context.span_id = Some(Text::new(trace.span_id()));
        context.organization_id = state.organization_id;
        context.session_id = state.session_id;
        event.details = details;
        event
    }
}

/// A request target as text: the path, then `?` and the query when there is one.
#[derive(Debug, Default)]
struct UriText {
    text: String,
    path_len: usize,
}

impl UriText {
    /// `uri`'s path and query written into `buffer` (cleared first; its capacity is reused).
    fn fill(mut buffer: String, uri: &http::Uri) -> UriText {
        buffer.clear();
        buffer.push_str(uri.path());
        let path_len = buffer.len();
        if let Some(q) = uri.query() {
            buffer.push('?');
            buffer.push_str(q);
        }
        UriText {
            text: buffer,
            path_len,
        }
    }

    fn path(&self) -> &str {
        self.text.get(..self.path_len).unwrap_or_default()
    }

    fn query(&self) -> Option<&str> {
        self.text.get(self.path_len + 1..)
    }
}

impl Pending {
    /// The target buffer, to be reused by the request this record serves next.
    pub(crate) fn take_uri_buffer(&mut self) -> String {
        std::mem::take(&mut self.target.text)
    }
}

/// The method as text: a standard one is a static string.
fn method_text(m: &http::Method) -> Text {
    use http::Method;
    let name = match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => return Text::new(m.as_str()),
    };
    Text::from_static(name)
}

/// Route templates seen on this thread (the audit worker), so an event shares its route's
/// text instead of copying it: templates are few (one per route of the application), and
/// one longer than [`Text::INLINE_LEN`] would otherwise cost a heap block per event.
const MAX_ROUTES: usize = 64;

thread_local! {
    static ROUTES: std::cell::RefCell<Memo<Text>> = const { std::cell::RefCell::new(Memo::new()) };
}

fn route_text(route: &str) -> Text {
    if route.len() <= Text::INLINE_LEN {
        return Text::new(route);
    }
    ROUTES.with_borrow_mut(|seen| {
        seen.get_or_insert(MAX_ROUTES, |t| t.as_str() == route, || Text::new(route))
            .clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_and_routes_as_text() {
        for m in [
            "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE",
        ] {
            assert_eq!(method_text(&m.parse().unwrap()), m);
        }
        assert_eq!(method_text(&"PURGE".parse().unwrap()), "PURGE");

        // A long template is shared between events, also once more templates than the
        // cache holds have been seen (each still comes back as itself).
        let long = "/v1/organizations/{org}/projects/{project}";
        let a = route_text(long);
        assert_eq!(a.as_ptr(), route_text(long).as_ptr());
        for i in 0..2 * MAX_ROUTES {
            let r = format!("/v1/organizations/{{org}}/resource_{i}/{{id}}");
            assert_eq!(route_text(&r), r.as_str());
        }
        assert_eq!(route_text(long), long);
        assert_eq!(route_text("/short/{id}"), "/short/{id}");
    }

    #[test]
    fn status_and_grpc_outcomes() {
        assert_eq!(outcome_for(200, None), Outcome::Success);
        assert_eq!(outcome_for(302, None), Outcome::Success);
        assert_eq!(outcome_for(401, None), Outcome::Denied);
        assert_eq!(outcome_for(403, None), Outcome::Denied);
        assert_eq!(outcome_for(404, None), Outcome::Failure);
        assert_eq!(outcome_for(503, None), Outcome::Error);
        assert_eq!(outcome_for(200, Some(0)), Outcome::Success);
        assert_eq!(outcome_for(200, Some(16)), Outcome::Denied);
        assert_eq!(outcome_for(200, Some(13)), Outcome::Error);
        assert_eq!(outcome_for(200, Some(5)), Outcome::Failure);
        assert_eq!(outcome_for(200, Some(1)), Outcome::Cancelled);
    }
}
