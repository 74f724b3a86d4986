//! Request facts kept on spans: those current when a span was created (from the
//! `AuditLayer`'s request scope), or recorded as span fields by code that does not use it.
//! [`AuditTracingLayer`](crate::AuditTracingLayer) stores them; `audit!` reads them.

use std::fmt;
use std::sync::Arc;

use audit_core::Actor;
use audit_core::scope::RequestFacts;
use tracing::field::{Field, Visit};
use tracing_subscriber::registry::LookupSpan;

/// The request facts current when a span was created (private newtype: only this layer
/// reads or writes it, so `insert` never meets one already there).
pub(crate) struct SpanFacts(pub(crate) Arc<dyn RequestFacts>);

/// Request context recorded as span fields (`request_id`, `trace_id`, `span_id`,
/// `actor_id`, `tenant`/`organization_id`, `session_id`), for spans opened by code that does
/// not use the `AuditLayer`.
#[derive(Debug, Default, Clone)]
pub(crate) struct FieldFacts {
    request_id: Option<String>,
    trace_id: Option<String>,
    span_id: Option<String>,
    actor_id: Option<String>,
    tenant: Option<String>,
    session_id: Option<String>,
}

impl FieldFacts {
    pub(crate) fn is_empty(&self) -> bool {
        self.request_id.is_none()
            && self.trace_id.is_none()
            && self.actor_id.is_none()
            && self.tenant.is_none()
            && self.session_id.is_none()
    }
}

impl Visit for FieldFacts {
    fn record_str(&mut self, field: &Field, value: &str) {
        let slot = match field.name() {
            "request_id" => &mut self.request_id,
            "trace_id" => &mut self.trace_id,
            "span_id" => &mut self.span_id,
            "actor_id" => &mut self.actor_id,
            "tenant" | "organization_id" => &mut self.tenant,
            "session_id" => &mut self.session_id,
            _ => return,
        };
        *slot = Some(value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if matches!(
            field.name(),
            "request_id"
                | "trace_id"
                | "span_id"
                | "actor_id"
                | "tenant"
                | "organization_id"
                | "session_id"
        ) {
            // `%value` arrives here as Display-through-Debug; strip the quotes a `&str`'s
            // Debug would add.
            let text = format!("{value:?}");
            let text = text.trim_matches('"').to_owned();
            self.record_str(field, &text);
        }
    }
}

impl RequestFacts for FieldFacts {
    fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }
    fn trace_id(&self) -> Option<String> {
        self.trace_id.clone()
    }
    fn span_id(&self) -> Option<String> {
        self.span_id.clone()
    }
    fn actor(&self) -> Option<Actor> {
        self.actor_id.as_ref().map(|id| Actor::user(id.clone()))
    }
    fn organization_id(&self) -> Option<String> {
        self.tenant.clone()
    }
    fn session_id(&self) -> Option<String> {
        self.session_id.clone()
    }
}

/// Finds request facts on `span` or its ancestors.
pub(crate) fn facts_in<'a, R: LookupSpan<'a>>(
    span: &tracing_subscriber::registry::SpanRef<'a, R>,
) -> Option<Arc<dyn RequestFacts>> {
    for s in span.scope() {
        let ext = s.extensions();
        if let Some(f) = ext.get::<SpanFacts>() {
            return Some(f.0.clone());
        }
        if let Some(f) = ext.get::<FieldFacts>() {
            return Some(Arc::new(f.clone()));
        }
    }
    None
}

/// The facts of the current span (through the default dispatcher's registry), if any.
pub(crate) fn span_facts() -> Option<Arc<dyn RequestFacts>> {
    tracing::dispatcher::get_default(|dispatch| {
        let id = dispatch.current_span().id()?.clone();
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        facts_in(&registry.span(&id)?)
    })
}
