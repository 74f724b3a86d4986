//! [`AuditTracingLayer`]: keeps request context on spans, converts `tracing` events with
//! target `audit`, and optionally mirrors audit events into the application's logs.

use std::fmt;
use std::sync::atomic::Ordering;

use audit_core::Auditor;
use audit_core::scope;
use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Record};
use tracing::{Event, Id, Metadata, Subscriber};
use tracing_subscriber::filter::FilterFn;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::emit::{Emit, set_global_auditor};
use crate::mirror::MIRROR;
use crate::span_facts::{FieldFacts, SpanFacts, facts_in};

/// The target of plain `tracing` events that become audit events.
pub const AUDIT_TARGET: &str = "audit";
/// The target of mirrored audit events (never converted back).
pub const MIRROR_TARGET: &str = "audit.mirror";

/// The per-layer filter to put on [`AuditTracingLayer`]: spans at INFO and above (where
/// request context is kept) and events with target `audit`. Without it, the layer asks to
/// see every event, so an event every other layer filters out is still dispatched (about
/// 17 ns instead of nothing; see the `macro` bench). With it, those events stay disabled at
/// their call sites.
///
/// ```
/// use audit_core::Auditor;
/// use audit_tracing::{AuditTracingLayer, interest_filter};
/// use tracing_subscriber::prelude::*;
///
/// let auditor = Auditor::builder().build()?;
/// let subscriber = tracing_subscriber::registry()
///     .with(AuditTracingLayer::new(auditor).with_filter(interest_filter()));
/// # drop(subscriber);
/// # Ok::<(), audit_core::Error>(())
/// ```
pub fn interest_filter() -> FilterFn<fn(&Metadata<'_>) -> bool> {
    fn interesting(meta: &Metadata<'_>) -> bool {
        if meta.is_span() {
            *meta.level() <= tracing::Level::INFO
        } else {
            meta.target() == AUDIT_TARGET
        }
    }
    FilterFn::new(interesting as fn(&Metadata<'_>) -> bool)
}

/// A `tracing_subscriber` layer for audit events.
///
/// - Every span created while a request is current (inside the `AuditLayer`) remembers that
///   request, so `audit!` in work spawned with `.instrument(span)` still has its request id,
///   actor and tenant. Spans that carry `request_id`, `trace_id`, `actor_id`, `tenant` or
///   `session_id` fields supply those too.
/// - Plain `tracing` events with target `audit` become audit events: the `event_type` field
///   is required (an event without it becomes `system.audit.invalid_event`), the message
///   becomes the description, `target.*`/`actor.*` fields fill those parts, and every other
///   field becomes a detail. Unlike `audit!`, such events pass through the application's
///   filters first: let target `audit` through (e.g. `audit=info`) if you use them.
/// - With [`mirror`](AuditTracingLayer::mirror), every audit event is also logged as a
///   `tracing` event with target `audit.mirror`, which this layer never converts back.
///
/// Non-audit events cost one string comparison here.
///
/// ```
/// use audit_core::Auditor;
/// use audit_tracing::AuditTracingLayer;
/// use tracing_subscriber::prelude::*;
///
/// let auditor = Auditor::builder().build()?;
/// let subscriber = tracing_subscriber::registry().with(AuditTracingLayer::new(auditor));
/// tracing::subscriber::with_default(subscriber, || {
///     tracing::info!(target: "audit", event_type = "admin.config.change", key = "retention", "Changed");
/// });
/// # Ok::<(), audit_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct AuditTracingLayer {
    auditor: Option<Auditor>,
}

impl AuditTracingLayer {
    /// A layer recording converted events with `auditor`, which also becomes the
    /// [global auditor](crate::set_global_auditor) if none is set yet.
    pub fn new(auditor: Auditor) -> AuditTracingLayer {
        set_global_auditor(auditor.clone());
        AuditTracingLayer {
            auditor: Some(auditor),
        }
    }

    /// Also logs every audit event `audit!` records as a `tracing` event (target
    /// `audit.mirror`, level INFO), for local development. Off by default; process-wide.
    #[must_use]
    pub fn mirror(self, on: bool) -> AuditTracingLayer {
        MIRROR.store(on, Ordering::Relaxed);
        self
    }
}

impl<S> tracing_subscriber::Layer<S> for AuditTracingLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if let Some(facts) = scope::current() {
            span.extensions_mut().insert(SpanFacts(facts));
            return;
        }
        let mut fields = FieldFacts::default();
        attrs.record(&mut fields);
        if !fields.is_empty() {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if ext.get_mut::<SpanFacts>().is_some() {
            return;
        }
        let mut fields = ext.remove::<FieldFacts>().unwrap_or_default();
        values.record(&mut fields);
        if !fields.is_empty() {
            ext.insert(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if event.metadata().target() != AUDIT_TARGET {
            return;
        }
        let facts = scope::current().or_else(|| ctx.event_span(event).and_then(|s| facts_in(&s)));
        let mut fields = EventFields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let (file, line) = (meta.file().unwrap_or("?"), meta.line().unwrap_or(0));
        let mut emit = match fields.event_type.take() {
            Some(t) => Emit::with_facts(t, facts.as_ref(), self.auditor.clone(), file, line),
            None => {
                let mut e = Emit::with_facts(
                    "system.audit.invalid_event",
                    facts.as_ref(),
                    self.auditor.clone(),
                    file,
                    line,
                );
                e.detail(
                    "error",
                    "a tracing event with target `audit` has no event_type".into(),
                );
                e
            }
        };
        if let Some(m) = fields.message.take() {
            emit.description(m);
        }
        for (name, value) in fields.values {
            match name.split_once('.') {
                Some((head, tail)) => emit.set(head, tail, value),
                None => emit.detail(name, value),
            }
        }
        emit.finish();
    }
}

/// The fields of a converted event.
#[derive(Default)]
struct EventFields {
    event_type: Option<String>,
    message: Option<String>,
    values: Vec<(&'static str, Value)>,
}

impl Visit for EventFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "event_type" => self.event_type = Some(value.to_owned()),
            "message" => self.message = Some(value.to_owned()),
            name => self.values.push((name, Value::from(value))),
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.values.push((field.name(), Value::from(value)));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.values.push((field.name(), Value::from(value)));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.values.push((field.name(), Value::from(value)));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.values.push((field.name(), Value::from(value)));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        match field.name() {
            "event_type" => self.event_type = Some(text.trim_matches('"').to_owned()),
            "message" => self.message = Some(text),
            name => self.values.push((name, Value::from(text))),
        }
    }
}
