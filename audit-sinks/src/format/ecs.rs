//! Elastic Common Schema (ECS 9.x): one ECS document per audit event, for Elasticsearch,
//! OpenSearch and any pipeline that speaks ECS.
//!
//! | our field | ECS |
//! |---|---|
//! | `timestamp`, `id`, `eventType` | `@timestamp`, `event.id`, `event.action` |
//! | category + action | `event.category` / `event.type` (pairs ECS expects together) |
//! | `result` | `event.outcome` (`success`, `failure`, else `unknown`) |
//! | `actor.*` | `user.id`, `user.email`, `user.name`, `user.roles`, `source.ip`, `user_agent.original` |
//! | `target.*` | `user.target.id` when the target is a user, else `labels.target_type`/`target_id` |
//! | `http.*` | `http.request.method`, `http.response.status_code`, `url.path`, `event.duration` (ns) |
//! | `context.*` | `http.request.id`, `trace.id`, `span.id`, `organization.id`, `service.name` |
//!
//! Field types and allowed values are checked in the tests against the ECS 9.4.0 field
//! reference.
//!
//! ```
//! use audit_core::{Actor, AuditEvent, Outcome};
//! use audit_sinks::format::ecs;
//!
//! let event = AuditEvent::builder("auth.login.success")
//!     .actor(Actor::user("u-1").with_ip_address("203.0.113.9"))
//!     .result(Outcome::Success)
//!     .build()?;
//! let doc = ecs::encode(&event);
//! assert_eq!(doc["event"]["category"][0], "authentication");
//! assert_eq!(doc["event"]["type"][0], "start");
//! assert_eq!(doc["event"]["outcome"], "success");
//! assert_eq!(doc["source"]["ip"], "203.0.113.9");
//! # Ok::<(), audit_core::Error>(())
//! ```

use audit_core::{AuditEvent, Category, Outcome};
use serde_json::{Map, Value, json};

/// The ECS version written in `ecs.version`.
pub const ECS_VERSION: &str = "9.4.0";

/// `event.category` and `event.type` for an event: a pair ECS lists as expected together.
pub fn categorize(e: &AuditEvent) -> (&'static str, &'static str) {
    let (resource, act) = super::resource_and_action(e.event_type.as_str());
    let crud = |default: &'static str| match act {
        "create" | "add" | "invite" | "register" | "import" => "creation",
        "delete" | "remove" | "revoke" | "purge" => "deletion",
        "update" | "change" | "assign" | "set" | "grant" | "enable" | "disable" => "change",
        "read" | "get" | "list" | "query" | "search" | "export" => "access",
        _ => default,
    };
    match e.category {
        Category::Authentication => match (resource, act) {
            ("login" | "logon", _) | (_, "login" | "logon") => ("authentication", "start"),
            ("logout" | "logoff", _) | (_, "logout" | "logoff") => ("authentication", "end"),
            ("password" | "mfa", _) => (
                "iam",
                match crud("change") {
                    "access" => "info",
                    t => t,
                },
            ),
            ("session", _) => (
                "session",
                match act {
                    "start" | "create" => "start",
                    "end" | "expire" | "revoke" => "end",
                    _ => "info",
                },
            ),
            _ => ("authentication", "info"),
        },
        Category::Admin => match resource {
            "config" | "configuration" | "setting" | "settings" | "policy" => {
                ("configuration", crud("change"))
            }
            "role" | "permission" | "privilege" | "group" | "member" | "membership" => (
                "iam",
                match crud("admin") {
                    "access" => "info",
                    t => t,
                },
            ),
            _ => (
                "iam",
                match crud("admin") {
                    "access" => "info",
                    t => t,
                },
            ),
        },
        Category::Data => ("api", crud("access")),
        Category::Security => match e.result {
            Some(Outcome::Denied | Outcome::Failure) => ("intrusion_detection", "denied"),
            _ => ("intrusion_detection", "info"),
        },
        _ => ("api", "info"),
    }
}

fn outcome(r: Option<Outcome>) -> &'static str {
    match r {
        Some(Outcome::Success) => "success",
        Some(Outcome::Failure | Outcome::Denied | Outcome::Error) => "failure",
        _ => "unknown",
    }
}

fn set(doc: &mut Map<String, Value>, path: &str, value: Value) {
    let mut parts = path.split('.').peekable();
    let mut cur = doc;
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(p.to_owned(), value);
            return;
        }
        let entry = cur
            .entry(p.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(next) = entry else { return };
        cur = next;
    }
}

/// One ECS document.
pub fn encode(e: &AuditEvent) -> Value {
    let mut d = Map::new();
    let (category, kind) = categorize(e);
    set(&mut d, "@timestamp", json!(e.timestamp.to_string()));
    set(&mut d, "ecs.version", json!(ECS_VERSION));
    set(&mut d, "event.id", json!(e.id.to_string()));
    set(&mut d, "event.kind", json!("event"));
    set(&mut d, "event.category", json!([category]));
    set(&mut d, "event.type", json!([kind]));
    set(&mut d, "event.action", json!(e.event_type.as_str()));
    set(&mut d, "event.outcome", json!(outcome(e.result)));
    // ECS has no fixed severity scale; this one is syslog's (0 emergency … 7 debug).
    set(
        &mut d,
        "event.severity",
        json!(super::syslog_severity(e.severity)),
    );
    set(&mut d, "event.dataset", json!("audit"));
    if let Some(desc) = &e.description {
        set(&mut d, "message", json!(desc));
    }
    if let Some(a) = &e.actor {
        if let Some(id) = &a.id {
            set(&mut d, "user.id", json!(id));
        }
        if let Some(email) = &a.email {
            set(&mut d, "user.email", json!(email));
            set(&mut d, "user.name", json!(email));
        }
        if let Some(role) = &a.role {
            set(&mut d, "user.roles", json!([role]));
        }
        if let Some(ip) = &a.ip_address {
            set(&mut d, "source.ip", json!(ip));
            set(&mut d, "client.ip", json!(ip));
        }
        if let Some(ua) = &a.user_agent {
            set(&mut d, "user_agent.original", json!(ua));
        }
    }
    if let Some(t) = &e.target {
        if t.kind.as_deref() == Some("user") {
            if let Some(id) = &t.id {
                set(&mut d, "user.target.id", json!(id));
            }
            if let Some(name) = &t.name {
                set(&mut d, "user.target.name", json!(name));
            }
        } else {
            if let Some(kind) = &t.kind {
                set(&mut d, "labels.target_type", json!(kind));
            }
            if let Some(id) = &t.id {
                set(&mut d, "labels.target_id", json!(id));
            }
        }
    }
    if let Some(h) = &e.http {
        if let Some(m) = &h.method {
            set(&mut d, "http.request.method", json!(m));
        }
        if let Some(p) = &h.path {
            set(&mut d, "url.path", json!(p));
        }
        if let Some(code) = h.status_code {
            set(&mut d, "http.response.status_code", json!(code));
        }
        if let Some(ms) = h.duration_ms {
            // ECS durations are nanoseconds.
            set(
                &mut d,
                "event.duration",
                json!((ms * 1_000_000.0).round() as i64),
            );
        }
    }
    if let Some(c) = &e.context {
        if let Some(rid) = &c.request_id {
            set(&mut d, "http.request.id", json!(rid));
        }
        if let Some(t) = &c.trace_id {
            set(&mut d, "trace.id", json!(t));
        }
        if let Some(s) = &c.span_id {
            set(&mut d, "span.id", json!(s));
        }
        if let Some(o) = &c.organization_id {
            set(&mut d, "organization.id", json!(o));
        }
        if let Some(s) = &c.service {
            set(&mut d, "service.name", json!(s));
        }
    }
    if !e.details.is_empty() {
        // Not ECS fields: kept under a custom namespace, as ECS recommends for extensions.
        set(&mut d, "audit.details", Value::Object(e.details.clone()));
    }
    Value::Object(d)
}
