//! A `tracing` layer and `audit!` macros that record audit events with the current request's
//! context.
//!
//! Not implemented yet: the layer and macros arrive with their own issue. Until then this
//! crate only re-exports [`audit_core`].
//!
//! ```
//! let event = audit_tracing::core::AuditEvent::builder("auth.logout").build().unwrap();
//! assert_eq!(event.event_type.as_str(), "auth.logout");
//! ```

#![forbid(unsafe_code)]

pub use audit_core as core;
