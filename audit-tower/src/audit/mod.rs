//! The audit layer: one event per request, classified by rules, with the actor and tenant
//! your authentication set, the outcome from the response, and the latency.

mod body;
mod capture;
mod config;
mod future;
mod grpc;
mod headers;
mod layer;
mod outcome;
mod peer;
mod record;
mod service;
#[cfg(feature = "tracing")]
mod span;

pub use body::{RequestBody, ResponseBody};
pub use future::ResponseFuture;
pub use layer::AuditLayer;
pub use service::Audit;
