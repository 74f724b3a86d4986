//! [`AuditEventBuilder`]: the one way to make an event.

use serde_json::{Map, Value};

use super::{
    Actor, AuditEvent, Category, Context, EventId, EventType, HttpFacts, Outcome, RpcFacts,
    Severity, Target, Text, Timestamp,
};
use crate::Error;

/// Builds an [`AuditEvent`]; made by [`AuditEvent::builder`].
///
/// Defaults: a fresh UUIDv7 id, the current time, severity `info`, the category implied by the
/// event type's first segment. [`build`](Self::build) validates the event type and reports a
/// missing category as an error rather than guessing.
///
/// ```
/// use audit_core::{AuditEvent, Category};
///
/// let e = AuditEvent::builder("billing.invoice.create")
///     .category(Category::Data)
///     .detail("amountCents", 1200)
///     .build()?;
/// assert_eq!(e.details["amountCents"], 1200);
///
/// let err = AuditEvent::builder("billing.invoice.create").build().unwrap_err();
/// assert!(err.is_unknown_category());
/// # Ok::<(), audit_core::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct AuditEventBuilder {
    event_type: String,
    id: Option<EventId>,
    timestamp: Option<Timestamp>,
    category: Option<Category>,
    severity: Severity,
    description: Option<Text>,
    actor: Option<Actor>,
    target: Option<Target>,
    context: Context,
    http: Option<HttpFacts>,
    rpc: Option<Box<RpcFacts>>,
    details: Map<String, Value>,
    result: Option<Outcome>,
}

impl AuditEventBuilder {
    pub(super) fn new(event_type: String) -> Self {
        AuditEventBuilder {
            event_type,
            id: None,
            timestamp: None,
            category: None,
            severity: Severity::Info,
            description: None,
            actor: None,
            target: None,
            context: Context::default(),
            http: None,
            rpc: None,
            details: Map::new(),
            result: None,
        }
    }

    /// Uses this id instead of a fresh UUIDv7 (e.g. when re-ingesting events).
    pub fn id(mut self, id: EventId) -> Self {
        self.id = Some(id);
        self
    }

    /// Uses this time instead of now.
    pub fn timestamp(mut self, timestamp: Timestamp) -> Self {
        self.timestamp = Some(timestamp);
        self
    }

    /// Sets the category, overriding the one implied by the event type.
    pub fn category(mut self, category: Category) -> Self {
        self.category = Some(category);
        self
    }

    /// Sets the severity (default `info`).
    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    /// Sets the human-readable description.
    pub fn description(mut self, description: impl Into<Text>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Sets who acted.
    pub fn actor(mut self, actor: Actor) -> Self {
        self.actor = Some(actor);
        self
    }

    /// Sets what was acted on.
    pub fn target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }

    /// Replaces the whole correlation context.
    pub fn context(mut self, context: Context) -> Self {
        self.context = context;
        self
    }

    /// Sets `context.requestId`.
    pub fn request_id(mut self, id: impl Into<Text>) -> Self {
        self.context.request_id = Some(id.into());
        self
    }

    /// Sets `context.traceId`.
    pub fn trace_id(mut self, id: impl Into<Text>) -> Self {
        self.context.trace_id = Some(id.into());
        self
    }

    /// Sets `context.spanId`.
    pub fn span_id(mut self, id: impl Into<Text>) -> Self {
        self.context.span_id = Some(id.into());
        self
    }

    /// Sets `context.sessionId`.
    pub fn session_id(mut self, id: impl Into<Text>) -> Self {
        self.context.session_id = Some(id.into());
        self
    }

    /// Sets the tenant, `context.organizationId`.
    pub fn organization_id(mut self, id: impl Into<Text>) -> Self {
        self.context.organization_id = Some(id.into());
        self
    }

    /// Sets `context.service`.
    pub fn service(mut self, name: impl Into<Text>) -> Self {
        self.context.service = Some(name.into());
        self
    }

    /// Sets the HTTP facts.
    pub fn http(mut self, http: HttpFacts) -> Self {
        self.http = Some(http);
        self
    }

    /// Sets the RPC facts (service, method, gRPC status).
    pub fn rpc(mut self, rpc: RpcFacts) -> Self {
        self.rpc = Some(Box::new(rpc));
        self
    }

    /// Adds one entry to `details`, replacing an earlier one with the same key.
    pub fn detail(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.details.insert(key.into(), value.into());
        self
    }

    /// Replaces `details` with these entries.
    pub fn details(mut self, details: Map<String, Value>) -> Self {
        self.details = details;
        self
    }

    /// Sets the outcome (`result`).
    pub fn result(mut self, result: Outcome) -> Self {
        self.result = Some(result);
        self
    }

    /// Validates and assembles the event.
    ///
    /// Errors when the event type is empty, not dotted, or not lowercase, and when no category
    /// was set and the type's first segment does not imply one.
    pub fn build(self) -> Result<AuditEvent, Error> {
        let event_type = EventType::from_string(self.event_type)?;
        let category = match self.category.or_else(|| event_type.implied_category()) {
            Some(c) => c,
            None => return Err(Error::unknown_category(event_type.as_str())),
        };
        // One clock read for what is not given. A given timestamp does not time the id: ids
        // stay ordered by when they were made.
        let (id, timestamp) = match (self.id, self.timestamp) {
            (Some(id), Some(t)) => (id, t),
            (id, t) => {
                let now = Timestamp::now();
                (id.unwrap_or_else(|| EventId::at(now)), t.unwrap_or(now))
            }
        };
        Ok(AuditEvent {
            id,
            timestamp,
            event_type,
            category,
            severity: self.severity,
            description: self.description,
            actor: self.actor,
            target: self.target,
            context: (!self.context.is_empty()).then_some(self.context),
            http: self.http,
            rpc: self.rpc,
            details: self.details,
            result: self.result,
            redacted_fields: Vec::new(),
            integrity: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_follows_prefix_unless_overridden() {
        let e = AuditEvent::builder("admin.role.assign").build().unwrap();
        assert_eq!(e.category, Category::Admin);
        let e = AuditEvent::builder("data.bulk.export")
            .category(Category::Security)
            .build()
            .unwrap();
        assert_eq!(e.category, Category::Security);
    }

    #[test]
    fn bad_event_types_are_errors() {
        assert!(
            AuditEvent::builder("")
                .build()
                .unwrap_err()
                .is_invalid_event_type()
        );
        assert!(
            AuditEvent::builder("AUTH.LOGIN")
                .build()
                .unwrap_err()
                .is_invalid_event_type()
        );
        assert!(
            AuditEvent::builder("widget.spin")
                .build()
                .unwrap_err()
                .is_unknown_category()
        );
    }

    #[test]
    fn empty_context_is_omitted() {
        let e = AuditEvent::builder("auth.logout").build().unwrap();
        assert!(e.context.is_none());
        let json = serde_json::to_string(&e).unwrap();
        assert!(!json.contains("null"), "{json}");
        assert!(!json.contains("context"), "{json}");
    }
}
