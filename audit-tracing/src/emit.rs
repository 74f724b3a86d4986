//! Building and recording one handler event: what `audit!` expands to.
//!
//! Context comes from, in order: the current request ([`audit_core::scope`], set by the
//! `AuditLayer`), else the nearest enclosing span that carries request facts (recorded by
//! [`AuditTracingLayer`](crate::AuditTracingLayer)), else nothing. With the `otel` feature,
//! the current span's OpenTelemetry trace and span ids take precedence. The event goes to the
//! request's auditor, else the span's, else the global one ([`set_global_auditor`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use audit_core::scope::{self, RequestFacts};
use audit_core::{Actor, AuditEvent, Auditor, Context, Outcome, Severity, Target};
use serde_json::Value;

static GLOBAL: OnceLock<Auditor> = OnceLock::new();
static UNROUTED: AtomicU64 = AtomicU64::new(0);

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
///
/// The event is built (and its type validated) at once and then filled in place: builder
/// methods move the whole event on every call, which cost more than everything else here.
#[doc(hidden)]
#[derive(Debug)]
pub struct Emit {
    event: Result<AuditEvent, String>,
    auditor: Option<Auditor>,
    file: &'static str,
    line: u32,
}

impl Emit {
    #[doc(hidden)]
    pub fn new(event_type: impl Into<String>, file: &'static str, line: u32) -> Emit {
        let facts = scope::with_current(|f| f.cloned()).or_else(crate::span_facts::span_facts);
        Emit::with_facts(event_type, facts.as_ref(), None, file, line)
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
        let auditor = facts.and_then(|f| f.auditor().cloned()).or(fallback);
        let event = AuditEvent::builder(event_type)
            .build()
            .map(|mut event| {
                if let Some(f) = facts {
                    scope::fill(&**f, &mut event);
                }
                crate::otel::current_ids(&mut event);
                event
            })
            .map_err(|e| e.to_string());
        Emit {
            event,
            auditor,
            file,
            line,
        }
    }

    #[doc(hidden)]
    pub fn description(&mut self, text: String) {
        if let Ok(e) = &mut self.event {
            e.description = Some(text.into());
        }
    }

    #[doc(hidden)]
    pub fn result(&mut self, outcome: Outcome) {
        if let Ok(e) = &mut self.event {
            e.result = Some(outcome);
        }
    }

    #[doc(hidden)]
    pub fn severity(&mut self, severity: Severity) {
        if let Ok(e) = &mut self.event {
            e.severity = severity;
        }
    }

    /// `head.tail = value`: `target.*`, `actor.*`, `details.*`, `context.organization_id`;
    /// anything else becomes the detail `head.tail`.
    #[doc(hidden)]
    pub fn set(&mut self, head: &'static str, tail: &'static str, value: Value) {
        let Ok(e) = &mut self.event else { return };
        let text = |v: Value| -> audit_core::Text {
            match v {
                Value::String(s) => s.into(),
                other => other.to_string().into(),
            }
        };
        let target = || Target::default();
        let actor = || Actor::default();
        match (head, tail) {
            ("target", "kind" | "type") => {
                e.target.get_or_insert_with(target).kind = Some(text(value))
            }
            ("target", "id") => e.target.get_or_insert_with(target).id = Some(text(value)),
            ("target", "name") => e.target.get_or_insert_with(target).name = Some(text(value)),
            ("actor", "kind" | "type") => {
                e.actor.get_or_insert_with(actor).kind = Some(text(value))
            }
            ("actor", "id") => e.actor.get_or_insert_with(actor).id = Some(text(value)),
            ("actor", "email") => e.actor.get_or_insert_with(actor).email = Some(text(value)),
            ("actor", "role") => e.actor.get_or_insert_with(actor).role = Some(text(value)),
            ("actor", "client_id") => {
                e.actor.get_or_insert_with(actor).client_id = Some(text(value));
            }
            ("context", "organization_id" | "tenant") => {
                e.context
                    .get_or_insert_with(Context::default)
                    .organization_id = Some(text(value));
            }
            ("details", key) => {
                e.details.insert(camel_case(key), value);
            }
            (head, tail) => {
                e.details.insert(format!("{head}.{tail}"), value);
            }
        }
    }

    /// `key = value` for a plain key: a detail.
    #[doc(hidden)]
    pub fn detail(&mut self, key: &'static str, value: Value) {
        if let Ok(e) = &mut self.event {
            e.details.insert(camel_case(key), value);
        }
    }

    /// Records the event (or, if its type was invalid, a `system.audit.invalid_event`).
    #[doc(hidden)]
    pub fn finish(self) {
        let Emit {
            event,
            auditor,
            file,
            line,
        } = self;
        let event = match event {
            Ok(event) => event,
            Err(e) => match invalid(&e, file, line) {
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
        if crate::mirror::MIRROR.load(Ordering::Relaxed) {
            crate::mirror::mirror(&event);
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

/// A Rust identifier as a detail key in the event's camelCase: `policy_decision` →
/// `policyDecision` (leading underscores and keys without one are kept as they are).
fn camel_case(key: &str) -> String {
    let trimmed = key.trim_start_matches('_');
    if !trimmed.contains('_') {
        return key.to_owned();
    }
    let mut out = String::with_capacity(key.len());
    out.push_str(&key[..key.len() - trimmed.len()]);
    let mut upper = false;
    for c in trimmed.chars() {
        if c == '_' {
            upper = !out.is_empty();
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod camel_tests {
    use super::camel_case;

    #[test]
    fn identifiers_become_camel_case_keys() {
        assert_eq!(camel_case("policy_decision"), "policyDecision");
        assert_eq!(camel_case("response_time_ms"), "responseTimeMs");
        assert_eq!(camel_case("count"), "count");
        assert_eq!(camel_case("alreadyCamel"), "alreadyCamel");
        assert_eq!(camel_case("_private"), "_private");
        assert_eq!(camel_case("a__b"), "aB");
    }
}
