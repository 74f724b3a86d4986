//! Building and recording one handler event: what `audit!` expands to.
//!
//! Context comes from, in order: the current request ([`audit_core::scope`], set by the
//! `AuditLayer`), else the nearest enclosing span that carries request facts (recorded by
//! [`AuditTracingLayer`](crate::AuditTracingLayer)), else nothing. With the `otel` feature,
//! the current span's OpenTelemetry trace and span ids take precedence. The event goes to the
//! request's auditor, else the span's, else the global one ([`set_global_auditor`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use audit_core::scope::{self, RequestFacts};
use audit_core::{Actor, AuditEvent, AuditEventBuilder, Auditor, Outcome, Severity, Target};
use serde_json::Value;

static GLOBAL: OnceLock<Auditor> = OnceLock::new();
static UNROUTED: AtomicU64 = AtomicU64::new(0);
pub(crate) static MIRROR: AtomicBool = AtomicBool::new(false);

/// Sets the auditor that events recorded outside any request (background jobs, startup) go
/// to. The first call wins; returns false if one was already set.
pub fn set_global_auditor(auditor: Auditor) -> bool {
    GLOBAL.set(auditor).is_ok()
}

/// The global auditor, if set.
pub fn global_auditor() -> Option<&'static Auditor> {
    GLOBAL.get()
}

/// Events `audit!` could not hand to any auditor (none current, none global, or the auditor
/// was shut down). Each is also reported once as a `tracing` warning.
pub fn unrouted_events() -> u64 {
    UNROUTED.load(Ordering::Relaxed)
}

/// One event under construction. Public only for the macros.
#[doc(hidden)]
#[derive(Debug)]
pub struct Emit {
    builder: Option<AuditEventBuilder>,
    auditor: Option<Auditor>,
    target: Option<Target>,
    actor: Option<Actor>,
    file: &'static str,
    line: u32,
}

/// The request facts of the current task, or of the nearest span that recorded some.
pub(crate) fn current_facts() -> Option<Arc<dyn RequestFacts>> {
    scope::current().or_else(crate::layer::span_facts)
}

impl Emit {
    #[doc(hidden)]
    pub fn new(event_type: impl Into<String>, file: &'static str, line: u32) -> Emit {
        Emit::with_facts(event_type, current_facts().as_ref(), None, file, line)
    }

    /// An event filled from `facts`, recorded with their auditor, else `fallback`, else the
    /// global one.
    pub(crate) fn with_facts(
        event_type: impl Into<String>,
        facts: Option<&Arc<dyn RequestFacts>>,
        fallback: Option<Auditor>,
        file: &'static str,
        line: u32,
    ) -> Emit {
        let mut builder = AuditEvent::builder(event_type);
        let mut actor = None;
        let mut auditor = fallback;
        if let Some(f) = facts {
            builder = scope::fill(&**f, builder);
            actor = f.actor();
            if let Some(a) = f.auditor() {
                auditor = Some(a.clone());
            }
        }
        builder = crate::otel::current_ids(builder);
        Emit {
            builder: Some(builder),
            auditor,
            target: None,
            actor,
            file,
            line,
        }
    }

    #[doc(hidden)]
    pub fn description(&mut self, text: String) {
        self.map(|b| b.description(text));
    }

    #[doc(hidden)]
    pub fn result(&mut self, outcome: Outcome) {
        self.map(|b| b.result(outcome));
    }

    #[doc(hidden)]
    pub fn severity(&mut self, severity: Severity) {
        self.map(|b| b.severity(severity));
    }

    /// `head.tail = value`: `target.*`, `actor.*`, `details.*`, `context.organization_id`;
    /// anything else becomes the detail `head.tail`.
    #[doc(hidden)]
    pub fn set(&mut self, head: &'static str, tail: &'static str, value: Value) {
        let text = || match &value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match (head, tail) {
            ("target", "kind" | "type") => {
                self.target.get_or_insert_with(Target::default).kind = Some(text());
            }
            ("target", "id") => self.target.get_or_insert_with(Target::default).id = Some(text()),
            ("target", "name") => {
                self.target.get_or_insert_with(Target::default).name = Some(text());
            }
            ("actor", "kind" | "type") => {
                self.actor.get_or_insert_with(Actor::default).kind = Some(text());
            }
            ("actor", "id") => self.actor.get_or_insert_with(Actor::default).id = Some(text()),
            ("actor", "email") => {
                self.actor.get_or_insert_with(Actor::default).email = Some(text());
            }
            ("actor", "role") => self.actor.get_or_insert_with(Actor::default).role = Some(text()),
            ("actor", "client_id") => {
                self.actor.get_or_insert_with(Actor::default).client_id = Some(text());
            }
            ("context", "organization_id") | ("context", "tenant") => {
                let t = text();
                self.map(|b| b.organization_id(t));
            }
            ("details", key) => self.map(|b| b.detail(key, value)),
            (head, tail) => {
                let key = format!("{head}.{tail}");
                self.map(|b| b.detail(key, value));
            }
        }
    }

    /// `key = value` for a plain key: a detail.
    #[doc(hidden)]
    pub fn detail(&mut self, key: &'static str, value: Value) {
        self.map(|b| b.detail(key, value));
    }

    fn map(&mut self, f: impl FnOnce(AuditEventBuilder) -> AuditEventBuilder) {
        self.builder = self.builder.take().map(f);
    }

    /// Builds and records the event.
    #[doc(hidden)]
    pub fn finish(self) {
        let Emit {
            builder,
            auditor,
            target,
            actor,
            file,
            line,
        } = self;
        let Some(mut builder) = builder else { return };
        if let Some(t) = target {
            builder = builder.target(t);
        }
        if let Some(a) = actor {
            builder = builder.actor(a);
        }
        let event = match builder.build() {
            Ok(event) => event,
            Err(e) => match invalid(&e.to_string(), file, line) {
                Some(event) => event,
                None => return,
            },
        };
        let Some(auditor) = auditor.or_else(|| GLOBAL.get().cloned()) else {
            unrouted(
                Some(&event),
                file,
                line,
                "no auditor: call set_global_auditor or run inside an AuditLayer",
            );
            return;
        };
        if MIRROR.load(Ordering::Relaxed) {
            crate::layer::mirror(&event);
        }
        if let Err(e) = auditor.record(event)
            && e.is_closed()
        {
            // A full buffer is counted and reported by the pipeline itself; a closed
            // auditor is not, so say so here.
            unrouted(None, file, line, "the auditor was shut down");
        }
    }
}

/// The event recorded instead of one whose fields did not make a valid event.
fn invalid(error: &str, file: &str, line: u32) -> Option<AuditEvent> {
    AuditEvent::builder("system.audit.invalid_event")
        .severity(Severity::Error)
        .result(Outcome::Error)
        .description("audit! produced an invalid event")
        .detail("error", error)
        .detail("callsite", format!("{file}:{line}"))
        .build()
        .ok()
}

fn unrouted(event: Option<&AuditEvent>, file: &str, line: u32, why: &str) {
    UNROUTED.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(
        target: "audit_tracing",
        event_type = event.map_or("?", |e| e.event_type.as_str()),
        callsite = %format_args!("{file}:{line}"),
        "audit event not recorded: {why}"
    );
}

/// Converts a value for a detail: `Serialize` types as JSON, failures as their message.
#[doc(hidden)]
pub fn to_value<T: serde::Serialize + ?Sized>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or_else(|e| Value::String(format!("<unserializable: {e}>")))
}
