//! Tower layers that capture audit events from HTTP and gRPC services.
//!
//! Add [`AuditLayer`] to an axum, hyper or tonic service and every request a rule (or the
//! defaults) says to audit becomes an [`AuditEvent`](audit_core::AuditEvent): classified
//! ([`classify`]), with the actor and tenant your authentication put in the
//! [`AuditContext`], the client address ([`net`]), a validated or generated request id
//! ([`request_id`], echoed on the response), the W3C trace context ([`trace_context`]), the
//! outcome from the status (or `cancelled` when the client went away), and the latency.
//! [`propagate`] carries the request id and trace onto outgoing calls.
//!
//! Inside your application, next to its routes and authentication:
//! [`classify::AuditRoute`] gives a route its audit meaning where the route is declared,
//! [`identity::AuditIdentity`] takes the actor and tenant from credentials your
//! authentication accepted, and [`origin`] carries the user and tenant of a request from one
//! of your services to the next (`PropagateLayer::with_origin` on the caller,
//! [`AuditLayer::trust_peers`] on the receiver).
//!
//! ```
//! use std::time::Duration;
//! use audit_core::{Actor, Auditor};
//! use audit_sinks::MemorySink;
//! use audit_tower::{AuditContext, AuditLayer};
//! use axum::{routing::post, Extension, Router};
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let memory = MemorySink::new(100);
//! let auditor = Auditor::builder().sink(memory.clone()).build().unwrap();
//! let app = Router::new()
//!     .route("/v1/indexes", post(|Extension(ctx): Extension<AuditContext>| async move {
//!         ctx.set_actor(Actor::user("user-123"));
//!         ctx.set_organization_id("acme");
//!         "created"
//!     }))
//!     .layer(AuditLayer::new(auditor.clone()));
//!
//! let req = http::Request::post("/v1/indexes").body(axum::body::Body::empty()).unwrap();
//! let resp = app.oneshot(req).await.unwrap();
//! let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
//! auditor.shutdown(Duration::from_secs(5)).await;
//!
//! let event = &memory.events()[0];
//! assert_eq!(event.event_type.as_str(), "data.index.create");
//! assert_eq!(event.organization_id(), Some("acme"));
//! assert_eq!(event.context.as_ref().unwrap().request_id.as_deref(), Some(request_id.as_str()));
//! # });
//! ```
//!
//! # gRPC (tonic)
//! Put the layer on a tonic `transport::Server` (`Server::builder().layer(AuditLayer::new(
//! auditor))`); with the `tonic` feature it reads the client address from tonic's
//! `TcpConnectInfo`, and with `tonic-tls` (tonic's rustls) the subject of a client
//! certificate the handshake verified becomes the actor (`{"type": "service", "id":
//! "CN=orders, O=acme"}`) until your authentication sets another. Every call becomes one event, with `rpc.service`, `rpc.method`,
//! `rpc.grpcStatusCode` and the message counts each way (`rpc.requestMessages`,
//! `rpc.responseMessages`) — `http.statusCode` is 200 for every gRPC answer. Without a rule,
//! the method's leading verb names the event (`DeleteThing` → `data.thing.delete`,
//! `ListThings` → `data.thing.read`, anything else `data.<service>.call`; the table is in
//! [`classify`]); a call answered `UNIMPLEMENTED` named no method the server has and is
//! [`classify::UNMATCHED`]. The status decides the result:
//!
//! | gRPC status | result | event type |
//! |---|---|---|
//! | 0 OK | `success` | as classified |
//! | 1 CANCELLED, or the stream ended before a status | `cancelled` | as classified |
//! | 7 PERMISSION_DENIED, 16 UNAUTHENTICATED | `denied` | `security.access.denied` (like 401/403) |
//! | 8 RESOURCE_EXHAUSTED | `failure` | `security.rate_limit.triggered` (like 429) |
//! | 2 UNKNOWN, 4 DEADLINE_EXCEEDED, 13 INTERNAL, 14 UNAVAILABLE, 15 DATA_LOSS | `error` | as classified |
//! | any other | `failure` | as classified |
//!
//! A rule's [`keep_on_denial`](classify::Rule::keep_on_denial) keeps its event type for
//! denials, as for HTTP. Between services, trust an inbound `x-request-id` only from your
//! own callers ([`AuditLayer::trust_peers`], or [`request_id::TrustInbound`]), and put
//! [`propagate::PropagateLayer`] on the client's channel
//! (`tower::ServiceBuilder::new().layer(PropagateLayer::new()).service(channel)`) so the next
//! service continues the same request id and trace.

#![forbid(unsafe_code)]

#[cfg(feature = "api")]
pub mod api;
mod audit;
pub mod classify;
mod context;
pub mod identity;
pub mod net;
pub mod origin;
pub mod propagate;
pub mod request_id;
pub mod trace_context;

pub use audit::{Audit, AuditLayer, RequestBody, ResponseBody, ResponseFuture};
pub use context::AuditContext;
pub use request_id::RequestId;

/// The event model and pipeline, re-exported for convenience.
pub use audit_core as core;
