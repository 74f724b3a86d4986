//! The audit event: who did what to which resource, when, from where, and with what result.
//!
//! The canonical form is JSON with camelCase keys and lowercase enum values; absent fields are
//! omitted, never `null`. [`AuditEvent`] serialises to exactly that shape and reads it back
//! without loss. Its text fields are [`Text`]: they read like `&str`, short ones are held
//! inline and long ones shared, so building an event makes few allocations.
//!
//! ```
//! use audit_core::{Actor, AuditEvent, Category, Outcome, Target};
//!
//! let event = AuditEvent::builder("auth.login.success")
//!     .description("User logged in")
//!     .actor(Actor::user("user-123").with_email("user@example.com"))
//!     .target(Target::new("organization", "org-456").with_name("Acme Corp"))
//!     .organization_id("org-456")
//!     .result(Outcome::Success)
//!     .build()?;
//! assert_eq!(event.category, Category::Authentication);
//!
//! let json = serde_json::to_value(&event).unwrap();
//! assert_eq!(json["eventType"], "auth.login.success");
//! assert_eq!(json["actor"]["email"], "user@example.com");
//! assert_eq!(json["context"]["organizationId"], "org-456");
//! assert!(json.get("http").is_none()); // absent, not null
//! # Ok::<(), audit_core::Error>(())
//! ```

mod builder;
mod id;
mod json;
mod parts;
mod taxonomy;
mod text;
mod time;

pub use builder::AuditEventBuilder;
pub use id::EventId;
pub use parts::{Actor, CapturedBody, Context, HttpFacts, Integrity, RpcFacts, Target};
pub use taxonomy::{Category, EventType, Outcome, Severity};
pub use text::Text;
pub use time::Timestamp;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One audit record.
///
/// Build one with [`AuditEvent::builder`]; the fields are public for reading and for the
/// pipeline's stages (redaction, integrity) to fill in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AuditEvent {
    /// Unique id (UUIDv7 when made here); receivers deduplicate by it.
    pub id: EventId,
    /// When the action happened.
    pub timestamp: Timestamp,
    /// Dotted `<area>.<resource>.<action>[.<result>]`.
    pub event_type: EventType,
    /// The broad area.
    pub category: Category,
    /// How much attention it deserves.
    pub severity: Severity,
    /// A short human sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Text>,
    /// Who acted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    /// What was acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// Correlation ids and tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Context>,
    /// HTTP request facts, for events captured from a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpFacts>,
    /// RPC facts (service, method, gRPC status), for events captured from a gRPC call.
    /// Boxed: most events have none, and the event is moved by value along the pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc: Option<Box<RpcFacts>>,
    /// Free-form details (redacted before leaving memory).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub details: Map<String, Value>,
    /// What came of the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Outcome>,
    /// Paths of the values that redaction removed or rewrote, e.g. `details.password`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redacted_fields: Vec<String>,
    /// Stream, sequence number and hash chain, filled by the pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<Integrity>,
}

impl AuditEvent {
    /// The smallest event of a validated type: a fresh id, the current time, severity `info`,
    /// no other part. Fill the public fields directly; the pipeline's hot paths use this to
    /// build an event in place rather than through the [builder](Self::builder)'s moves.
    ///
    /// ```
    /// use audit_core::{AuditEvent, Category, EventType, Outcome};
    ///
    /// let mut e = AuditEvent::new(EventType::new("data.index.read")?, Category::Data);
    /// e.result = Some(Outcome::Success);
    /// assert_eq!(e.event_type.as_str(), "data.index.read");
    /// # Ok::<(), audit_core::Error>(())
    /// ```
    pub fn new(event_type: EventType, category: Category) -> AuditEvent {
        let now = Timestamp::now();
        AuditEvent {
            id: EventId::at(now),
            timestamp: now,
            event_type,
            category,
            severity: Severity::default(),
            description: None,
            actor: None,
            target: None,
            context: None,
            http: None,
            rpc: None,
            details: Map::new(),
            result: None,
            redacted_fields: Vec::new(),
            integrity: None,
        }
    }

    /// Starts an event of the given type. The type is validated by
    /// [`build`](AuditEventBuilder::build), which reports a malformed one as an error.
    pub fn builder(event_type: impl Into<String>) -> AuditEventBuilder {
        AuditEventBuilder::new(event_type.into())
    }

    /// Appends the event's canonical JSON to `out`: the same bytes as `serde_json` writes
    /// through its `Serialize` implementation (a property test checks this), in about half
    /// the time (`cargo bench -p audit-sinks --bench encode`). On error nothing is appended.
    pub fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        let start = out.len();
        json::write_event(self, out).inspect_err(|_| out.truncate(start))
    }

    /// The event's tenant (`context.organizationId`), if any.
    pub fn organization_id(&self) -> Option<&str> {
        self.context.as_ref()?.organization_id.as_deref()
    }

    /// The sequence number the pipeline gave this event, if it has passed through one.
    pub fn seq(&self) -> Option<u64> {
        self.integrity.as_ref().map(|i| i.seq)
    }

    /// An estimate of the memory this event holds, in bytes, used to bound queues by size.
    ///
    /// It counts the struct, every string's length and a fixed overhead per JSON value; it
    /// walks `details` but serialises nothing.
    pub fn approx_size(&self) -> usize {
        fn opt(s: &Option<Text>) -> usize {
            s.as_ref().map_or(0, |s| s.len())
        }
        let mut n = std::mem::size_of::<AuditEvent>() + self.event_type.as_str().len();
        n += opt(&self.description);
        if let Some(a) = &self.actor {
            n += parts::PART_OVERHEAD + a.strings_len();
        }
        if let Some(t) = &self.target {
            n += parts::PART_OVERHEAD + t.strings_len();
        }
        if let Some(c) = &self.context {
            n += parts::PART_OVERHEAD + c.strings_len();
        }
        if let Some(h) = &self.http {
            n += parts::PART_OVERHEAD + h.strings_len();
        }
        if let Some(r) = &self.rpc {
            n += parts::PART_OVERHEAD + r.strings_len();
        }
        n += map_size(&self.details);
        n += self
            .redacted_fields
            .iter()
            .map(|f| f.len() + 24)
            .sum::<usize>();
        if let Some(i) = &self.integrity {
            n += parts::PART_OVERHEAD + i.strings_len();
        }
        n
    }
}

const VALUE_OVERHEAD: usize = 32;

pub(crate) fn map_size(map: &Map<String, Value>) -> usize {
    map.iter()
        .map(|(k, v)| k.len() + VALUE_OVERHEAD + value_size(v))
        .sum()
}

pub(crate) fn value_size(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len(),
        Value::Array(a) => a.iter().map(|v| VALUE_OVERHEAD + value_size(v)).sum(),
        Value::Object(m) => map_size(m),
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_grows_with_content() {
        let small = AuditEvent::builder("auth.logout").build().unwrap();
        let big = AuditEvent::builder("auth.logout")
            .detail("blob", "x".repeat(10_000))
            .build()
            .unwrap();
        assert!(small.approx_size() < 1000);
        assert!(big.approx_size() > 10_000);
    }
}
