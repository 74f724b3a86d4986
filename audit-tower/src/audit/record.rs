//! What the layer captured about a request, and the event it becomes.

use audit_core::sync::LockExt;
use std::time::Instant;

use audit_core::{
    AuditEvent, CapturedBody, Category, Context, DeferredEvent, EventType, HttpFacts, Outcome,
    OverflowPolicy, Reservation, RpcFacts, Target, Text, Timestamp,
};
use http::Request;
use serde_json::Value;

use crate::classify::{Classification, Delivery, Level, Rpc};
use crate::context::AuditContext;
use crate::propagate::RequestScope;
use crate::request_id::Rejected;

/// What the layer worked out about a request when it arrived, besides the request itself.
pub(crate) struct Arrival {
    /// The route template the router matched.
    pub(crate) template: Option<super::config::RouteTemplate>,
    /// The forwarding chain, nearest hops kept.
    pub(crate) chain: Vec<String>,
    pub(crate) scope: RequestScope,
    /// Why an inbound request id was not used.
    pub(crate) rejected: Option<Rejected>,
    pub(crate) class: Classification,
    pub(crate) ctx: AuditContext,
    /// The request has a gRPC content type.
    pub(crate) grpc_request: bool,
    /// The event's time.
    pub(crate) timestamp: Timestamp,
    /// The latency's start.
    pub(crate) started: Instant,
}

/// Facts captured when the request arrived, finished into an event when it is answered.
#[derive(Debug)]
pub(crate) struct Pending {
    started: Instant,
    timestamp: Timestamp,
    method: http::Method,
    /// The request target, path then `?query`, copied: not the request's `Uri`, which shares
    /// the connection's read buffer with the rest of the request's head (its
    /// `Authorization` header too) for as long as it is held.
    target: UriText,
    template: Option<super::config::RouteTemplate>,
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
    /// A target the handler put in its response's extensions.
    response_target: Option<Target>,
    notes: serde_json::Map<String, Value>,
    reservation: Option<Reservation>,
    request_capture: Option<super::capture::SharedCapture>,
    /// A gRPC call's request messages, counted by its body as the service reads them.
    request_messages: Option<super::grpc::SharedMessages>,
    response_messages: Option<u64>,
    response: Option<Response>,
}

impl Pending {
    pub(crate) fn set_request_capture(&mut self, c: super::capture::SharedCapture) {
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

    /// The target the response named (its extensions held an `audit_core::Target`).
    pub(crate) fn set_response_target(&mut self, target: Target) {
        self.response_target = Some(target);
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

    /// The record of a request that arrived as `arrival` says.
    pub(crate) fn new<B>(req: &Request<B>, arrival: Arrival) -> Pending {
        let Arrival {
            template,
            chain,
            scope,
            rejected,
            class,
            ctx,
            grpc_request,
            timestamp,
            started,
        } = arrival;
        Pending {
            started,
            timestamp,
            method: req.method().clone(),
            target: UriText::of(req.uri()),
            template,
            chain,
            scope,
            rejected,
            class,
            ctx,
            grpc_request,
            grpc_answer: false,
            response_body: None,
            response_target: None,
            notes: serde_json::Map::new(),
            reservation: None,
            request_capture: None,
            request_messages: None,
            response_messages: None,
            response: None,
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
        let bodies = usize::from(self.request_capture.is_some()) * super::capture::CAPTURE_LIMIT
            + usize::from(self.response_body.is_some()) * super::capture::CAPTURE_LIMIT;
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
    /// Assembles the event on the pipeline's worker.
    fn build(mut self: Box<Self>) -> AuditEvent {
        self.assemble()
    }
}

impl Pending {
    /// The event, in place rather than through builder moves: takes what the event keeps.
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
        let mut state = self.ctx.take();
        if let Some(route) = state.route.take() {
            class.apply_route(route);
        }
        let outcome = match state.outcome {
            Some(o) => o,
            // A refused sign-in on a route that keeps its own event type (`auth.login` with
            // an outcome suffix) failed to authenticate; it was not denied access.
            None if response_outcome == Outcome::Denied && class.names_an_attempt() => {
                Outcome::Failure
            }
            None => response_outcome,
        };
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
        let mut organization_id = state.organization_id;
        match state.origin {
            Some(crate::origin::Verdict::Believed(origin)) => {
                if organization_id.is_none() {
                    organization_id = origin.tenant.as_deref().map(Text::new);
                }
                if let Ok(v) = serde_json::to_value(&origin) {
                    details.insert("origin".into(), v);
                }
            }
            Some(crate::origin::Verdict::Rejected(why)) => {
                details.insert("originRejected".into(), why.into());
            }
            None => {}
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
        event.target = state.target.or(self.response_target.take()).or_else(|| {
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
            .or_else(|| self.template.as_ref().map(|t| Text::new(t.as_str())));
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
        http.request_body = self
            .request_capture
            .take()
            .map(|c| c.lock_ignore_poison().snapshot());
        let trace = self.scope.trace();
        let context = event.context.insert(Context::default());
        context.request_id = Some(Text::new(self.scope.request_id().as_str()));
        context.trace_id = Some(Text::new(trace.trace_id()));
        context.span_id = Some(Text::new(trace.span_id()));
        context.organization_id = organization_id;
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
    /// `uri`'s path and query, in one allocation.
    fn of(uri: &http::Uri) -> UriText {
        let mut buffer =
            String::with_capacity(uri.path().len() + uri.query().map_or(0, |q| q.len() + 1));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_as_text() {
        for m in [
            "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE",
        ] {
            assert_eq!(method_text(&m.parse().unwrap()), m);
        }
        assert_eq!(method_text(&"PURGE".parse().unwrap()), "PURGE");
    }
}
