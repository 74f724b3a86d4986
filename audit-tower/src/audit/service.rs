//! [`Audit`], the service the layer makes.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderValue, Request, Response};
use tower::Service;

use super::ResponseFuture;
use super::body::{RequestBody, ResponseBody};
use super::capture::Capture;
use super::config::{Config, route_template};
use super::headers::Picked;
use super::record::{Arrival, Pending};
use crate::classify::{Delivery, Level};
use crate::net::client_addr;
use crate::propagate::RequestScope;
use crate::trace_context::TraceContext;

/// Room reserved per strict request: larger than any event the layer builds from metadata.
const STRICT_RESERVATION: usize = 16 * 1024;

/// Audits each request to the inner service; made by [`AuditLayer`](super::AuditLayer).
#[derive(Debug, Clone)]
pub struct Audit<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> Audit<S> {
    pub(crate) fn new(inner: S, config: Arc<Config>) -> Audit<S> {
        Audit { inner, config }
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Audit<S>
where
    S: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
    ResB: http_body::Body,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let config = &self.config;
        // The latency's start; the event's time, also a generated request id's.
        let started = Instant::now();
        let now = audit_core::Timestamp::now();
        let peer = super::peer::ip(&req);
        let picked = Picked::from(req.headers(), config.request_id.header_name());
        // A peer service's claim is checked only when peers are configured.
        let origin = config.peers.as_ref().and_then(|p| {
            crate::origin::check(p, req.headers(), picked.request_id, peer, now).map(|v| (p, v))
        });
        let vouched = config
            .peers
            .as_ref()
            .is_some_and(|p| p.trusts_address(peer))
            || origin
                .as_ref()
                .is_some_and(|(_, v)| v.vouches_for(picked.request_id));
        let (request_id, rejected) =
            config
                .request_id
                .resolve(picked.request_id, peer, now, vouched);
        let trace = TraceContext::from_request(req.headers(), picked.traceparent);
        let template = route_template(&req);
        let class = config.rules.classify_lazily(
            req.method(),
            req.uri().path(),
            template.as_ref().map(|t| t.as_str()),
            req.headers(),
        );
        let header = config.request_id.header_name().clone();
        let echo = HeaderValue::from_str(request_id.as_str())
            .ok()
            .map(|v| (header.clone(), v));
        #[cfg(feature = "tracing")]
        let (span, trace) = super::span::request_span(&req, &request_id, trace);
        let audited = class.level() != Level::None;
        let addr = if audited {
            let forwarding = picked.forwarding.then(|| req.headers());
            client_addr(forwarding, peer, &config.trusted_proxies)
        } else {
            Default::default()
        };
        let scope = RequestScope::for_request(
            request_id,
            trace,
            header,
            audited.then(|| config.auditor.clone()),
            addr.client,
            audited.then_some(picked.user_agent).flatten(),
        );
        let grpc = picked.is_grpc();
        // Inner layers (tower-http's `SetRequestIdLayer`, your logging) see the id this layer
        // decided on, not a client's id it refused.
        if config.request_id.shares_with_inner_layers()
            && let Some((name, value)) = &echo
            && req.headers().get(name) != Some(value)
        {
            req.headers_mut().insert(name.clone(), value.clone());
        }
        req.extensions_mut().insert(scope.request_id().clone());
        let ctx = scope.audit_context();
        if let (Some(ctx), Some((_, verdict))) = (&ctx, origin) {
            ctx.set_origin(verdict);
        }
        // A verified client certificate names the caller until authentication says more.
        if let Some(ctx) = &ctx
            && let Some(subject) = super::peer::certificate_subject(&req)
        {
            ctx.set_actor(audit_core::Actor::service(subject));
        }

        let strict = class.delivery() == Delivery::Strict;
        let mut pending = ctx.map(|ctx| {
            req.extensions_mut().insert(ctx.clone());
            let arrival = Arrival {
                template,
                chain: addr.chain,
                scope: scope.clone(),
                rejected,
                class,
                ctx,
                grpc_request: grpc,
                timestamp: now,
                started,
            };
            Box::new(Pending::new(&req, arrival))
        });
        if strict && let Some(p) = pending.as_mut() {
            match config.auditor.reserve(STRICT_RESERVATION) {
                Ok(r) => p.set_reservation(r),
                Err(e) => {
                    // Not run: its audit record could not be guaranteed. Say so on a
                    // best-effort basis (counted and reported if it cannot be taken either).
                    let message = format!("the audit trail cannot accept this request now: {e}");
                    if let Some(mut p) = pending.take() {
                        p.note_refused(&e.to_string());
                        p.finish(audit_core::Outcome::Error, Some(503), None);
                    }
                    return ResponseFuture::refused(message, echo);
                }
            }
        }
        // At the request levels, the body is teed into the event as the handler reads it.
        let capture = pending
            .as_mut()
            .filter(|p| matches!(p.level(), Level::Request | Level::RequestResponse))
            .map(|p| {
                let header = |name| {
                    req.headers()
                        .get(name)
                        .and_then(|v: &HeaderValue| v.to_str().ok())
                        .map(str::to_owned)
                };
                let declared = header(http::header::CONTENT_LENGTH).and_then(|v| v.parse().ok());
                let c = Arc::new(std::sync::Mutex::new(
                    Capture::new(header(http::header::CONTENT_TYPE)).with_declared_size(declared),
                ));
                p.set_request_capture(Arc::clone(&c));
                c
            });
        let messages = pending.as_mut().filter(|p| p.is_grpc()).map(|p| {
            let m = super::grpc::SharedMessages::default();
            p.set_request_messages(m.clone());
            m
        });
        let req = req.map(|b| RequestBody::new(b, capture, messages));
        let inner = &mut self.inner;
        #[cfg(feature = "tracing")]
        let fut = scope.clone().run_sync(|| span.in_scope(|| inner.call(req)));
        #[cfg(not(feature = "tracing"))]
        let fut = scope.clone().run_sync(|| inner.call(req));
        let resp = ResponseFuture::new(scope.run(fut), pending, echo);
        #[cfg(feature = "tracing")]
        let resp = resp.in_span(span);
        resp
    }
}
