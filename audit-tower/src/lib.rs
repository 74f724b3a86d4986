//! Tower layers that capture audit events from HTTP and gRPC services.
//!
//! Not implemented yet: the request-id layer, the `AuditLayer`, classification and the audit
//! HTTP API arrive with their own issue. Until then this crate only re-exports
//! [`audit_core`], so depending on it already gives access to the event model and pipeline.
//!
//! ```
//! let event = audit_tower::core::AuditEvent::builder("auth.logout").build().unwrap();
//! assert_eq!(event.event_type.as_str(), "auth.logout");
//! ```

#![forbid(unsafe_code)]

pub use audit_core as core;
