//! OCSF 1.8.0: one OCSF event per audit event, in the class that fits it.
//!
//! | our event | OCSF class | activity from |
//! |---|---|---|
//! | `auth.*` (login, logout, token) | Authentication (3002) | the action: login → Logon, logout → Logoff, token → Authentication Ticket |
//! | `auth.password.*`, `auth.mfa.*` | Account Change (3001) | Password Change / Reset, MFA Factor Enable / Disable |
//! | `admin.role.*`, `admin.permission.*`, `admin.member.*` | User Access Management (3005) | assign/grant/invite → Assign Privileges, revoke/remove → Revoke Privileges |
//! | `admin.user.*`, `admin.account.*`, `admin.api_key.*` | Account Change (3001) | create, enable, disable, delete/revoke, lock, unlock |
//! | `data.*` | Web Resources Activity (6001) | create, read, update, delete, search/query, import, export, share |
//! | everything else (`admin.config.*`, `security.*`, `system.*`) | API Activity (6003) | create, read, update, delete |
//!
//! Every output fills the fields OCSF requires of its class — `class_uid`, `category_uid`,
//! `activity_id`, `type_uid` (= class × 100 + activity), `severity_id`, `time`,
//! `metadata.version`/`product`, and the class's own (`user`, `privileges`, `web_resources`,
//! `actor` + `api` + `src_endpoint`) — plus `status_id`, the actor and source endpoint when
//! known, the HTTP request, and everything OCSF has no place for (event type, request and trace
//! ids, details) under `unmapped`. The tests validate the output against the OCSF 1.8.0 JSON
//! Schemas of all five classes.
//!
//! ```
//! use audit_core::{Actor, AuditEvent, Outcome};
//! use audit_sinks::format::ocsf::{Ocsf, Product};
//!
//! let event = AuditEvent::builder("auth.login.failure")
//!     .actor(Actor::user("user-123").with_email("a@example.com").with_ip_address("203.0.113.9"))
//!     .result(Outcome::Failure)
//!     .build()?;
//! let ocsf = Ocsf::new(Product::new("vector-api", "Acme", "1.4.2")).encode(&event);
//! assert_eq!(ocsf["class_uid"], 3002);
//! assert_eq!(ocsf["type_uid"], 300201);
//! assert_eq!(ocsf["status_id"], 2);
//! assert_eq!(ocsf["src_endpoint"]["ip"], "203.0.113.9");
//! # Ok::<(), audit_core::Error>(())
//! ```

use audit_core::{AuditEvent, Category, Outcome, Severity};
use serde_json::{Map, Value, json};

use super::resource_and_action;

/// The OCSF schema version written in `metadata.version`.
pub const OCSF_VERSION: &str = "1.8.0";

/// The product that logged the events (`metadata.product`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    /// Product name.
    pub name: String,
    /// Vendor.
    pub vendor_name: String,
    /// Version.
    pub version: String,
}

impl Product {
    /// A product description.
    pub fn new(
        name: impl Into<String>,
        vendor_name: impl Into<String>,
        version: impl Into<String>,
    ) -> Product {
        Product {
            name: name.into(),
            vendor_name: vendor_name.into(),
            version: version.into(),
        }
    }
}

impl Default for Product {
    /// This library.
    fn default() -> Product {
        Product::new("audit-rs", "audit-rs", env!("CARGO_PKG_VERSION"))
    }
}

/// The OCSF classes this encoder writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Class {
    /// Account Change (3001).
    AccountChange,
    /// Authentication (3002).
    Authentication,
    /// User Access Management (3005).
    UserAccess,
    /// Web Resources Activity (6001).
    WebResourcesActivity,
    /// API Activity (6003).
    ApiActivity,
}

impl Class {
    /// `class_uid`.
    pub fn uid(self) -> u32 {
        match self {
            Class::AccountChange => 3001,
            Class::Authentication => 3002,
            Class::UserAccess => 3005,
            Class::WebResourcesActivity => 6001,
            Class::ApiActivity => 6003,
        }
    }

    /// `class_name`.
    pub fn name(self) -> &'static str {
        match self {
            Class::AccountChange => "Account Change",
            Class::Authentication => "Authentication",
            Class::UserAccess => "User Access Management",
            Class::WebResourcesActivity => "Web Resources Activity",
            Class::ApiActivity => "API Activity",
        }
    }

    fn category(self) -> (u32, &'static str) {
        match self {
            Class::AccountChange | Class::Authentication | Class::UserAccess => {
                (3, "Identity & Access Management")
            }
            Class::WebResourcesActivity | Class::ApiActivity => (6, "Application Activity"),
        }
    }

    /// The activity (`activity_id`, name) for an action word such as `create` or `login`.
    fn activity(self, action: &str) -> (u32, &'static str) {
        let a = action;
        match self {
            Class::Authentication => match a {
                "login" | "logon" | "signin" => (1, "Logon"),
                "logout" | "logoff" | "signout" => (2, "Logoff"),
                "token" | "refresh" | "ticket" => (3, "Authentication Ticket"),
                _ => (99, "Other"),
            },
            Class::AccountChange => match a {
                "create" | "add" | "register" => (1, "Create"),
                "enable" | "activate" => (2, "Enable"),
                "change" | "update" => (3, "Password Change"),
                "reset" => (4, "Password Reset"),
                "disable" | "suspend" => (5, "Disable"),
                "delete" | "remove" | "revoke" => (6, "Delete"),
                "lock" => (9, "Lock"),
                "enroll" | "mfa_enable" => (10, "MFA Factor Enable"),
                "unenroll" | "mfa_disable" => (11, "MFA Factor Disable"),
                "unlock" => (12, "Unlock"),
                _ => (99, "Other"),
            },
            Class::UserAccess => match a {
                "assign" | "grant" | "add" | "invite" | "create" | "change" | "update" => {
                    (1, "Assign Privileges")
                }
                "revoke" | "remove" | "delete" | "unassign" => (2, "Revoke Privileges"),
                _ => (99, "Other"),
            },
            Class::WebResourcesActivity => match a {
                "create" | "upload" | "write" => (1, "Create"),
                "read" | "get" | "list" | "view" | "download" => (2, "Read"),
                "update" | "modify" | "patch" => (3, "Update"),
                "delete" | "purge" => (4, "Delete"),
                "search" | "query" => (5, "Search"),
                "import" => (6, "Import"),
                "export" => (7, "Export"),
                "share" => (8, "Share"),
                _ => (99, "Other"),
            },
            Class::ApiActivity => match a {
                "create" | "add" => (1, "Create"),
                "read" | "get" | "list" => (2, "Read"),
                "update" | "change" | "assign" | "set" => (3, "Update"),
                "delete" | "remove" | "revoke" => (4, "Delete"),
                _ => (99, "Other"),
            },
        }
    }
}

/// Which class an event belongs in.
pub fn class_of(event: &AuditEvent) -> Class {
    let (resource, _) = resource_and_action(event.event_type.as_str());
    match event.category {
        Category::Authentication => match resource {
            "password" | "mfa" => Class::AccountChange,
            _ => Class::Authentication,
        },
        Category::Admin => match resource {
            "role" | "permission" | "privilege" | "member" | "membership" | "group" => {
                Class::UserAccess
            }
            "user" | "account" | "api_key" | "service_account" => Class::AccountChange,
            _ => Class::ApiActivity,
        },
        Category::Data => Class::WebResourcesActivity,
        _ => Class::ApiActivity,
    }
}

fn severity_id(s: Severity) -> (u32, &'static str) {
    match s {
        Severity::Debug | Severity::Info => (1, "Informational"),
        Severity::Notice => (2, "Low"),
        Severity::Warning => (3, "Medium"),
        Severity::Error => (4, "High"),
        Severity::Critical => (5, "Critical"),
        _ => (99, "Other"),
    }
}

fn status(result: Option<Outcome>) -> (u32, &'static str) {
    match result {
        Some(Outcome::Success) => (1, "Success"),
        Some(Outcome::Failure | Outcome::Denied | Outcome::Error) => (2, "Failure"),
        Some(_) => (99, "Other"),
        None => (0, "Unknown"),
    }
}

/// Encodes events as OCSF.
#[derive(Debug, Clone, Default)]
pub struct Ocsf {
    product: Product,
}

/// OCSF's user `type_id` and caption for an actor's kind (and role).
fn user_type(kind: Option<&str>, role: Option<&str>) -> (u8, &'static str) {
    match (kind, role) {
        (Some("user"), Some("admin")) => (2, "Admin"),
        (Some("user"), _) => (1, "User"),
        (Some("system"), _) => (3, "System"),
        (Some("service" | "api_key" | "client" | "service_account"), _) => (4, "Service"),
        (Some("anonymous") | None, _) => (0, "Unknown"),
        (Some(_), _) => (99, "Other"),
    }
}

impl Ocsf {
    /// An encoder naming `product` in `metadata.product`.
    pub fn new(product: Product) -> Ocsf {
        Ocsf { product }
    }

    /// One OCSF event.
    pub fn encode(&self, e: &AuditEvent) -> Value {
        let class = class_of(e);
        let (resource, action) = resource_and_action(e.event_type.as_str());
        // Account Change's "Password Change" needs the resource, not just the action.
        let action = match (class, resource, action) {
            (Class::AccountChange, "mfa", "enroll" | "enable") => "mfa_enable",
            (Class::AccountChange, "mfa", "unenroll" | "disable") => "mfa_disable",
            (Class::AccountChange, "password", a) if a != "reset" => "change",
            _ => action,
        };
        let (activity_id, activity_name) = class.activity(action);
        let (category_uid, category_name) = class.category();
        let (severity_id, severity) = severity_id(e.severity);
        let (status_id, status) = status(e.result);
        let actor = e.actor.as_ref();
        let ctx = e.context.as_ref();

        let mut o = Map::new();
        o.insert("class_uid".into(), json!(class.uid()));
        o.insert("class_name".into(), json!(class.name()));
        o.insert("category_uid".into(), json!(category_uid));
        o.insert("category_name".into(), json!(category_name));
        o.insert("activity_id".into(), json!(activity_id));
        o.insert("activity_name".into(), json!(activity_name));
        o.insert(
            "type_uid".into(),
            json!(u64::from(class.uid()) * 100 + u64::from(activity_id)),
        );
        o.insert(
            "type_name".into(),
            json!(format!("{}: {activity_name}", class.name())),
        );
        o.insert("severity_id".into(), json!(severity_id));
        o.insert("severity".into(), json!(severity));
        o.insert("status_id".into(), json!(status_id));
        o.insert("status".into(), json!(status));
        if let Some(r) = e.result.filter(|r| *r != Outcome::Success) {
            o.insert("status_detail".into(), json!(r.as_str()));
        }
        o.insert("time".into(), json!(e.timestamp.unix_millis()));
        if let Some(d) = &e.description {
            o.insert("message".into(), json!(d));
        }
        let mut metadata = json!({
            "version": OCSF_VERSION,
            "uid": e.id.to_string(),
            "product": {
                "name": self.product.name,
                "vendor_name": self.product.vendor_name,
                "version": self.product.version,
            },
        });
        if let Some(rid) = ctx.and_then(|c| c.request_id.as_deref()) {
            metadata["correlation_uid"] = json!(rid);
        }
        if let Some(t) = ctx.and_then(|c| c.organization_id.as_deref()) {
            metadata["tenant_uid"] = json!(t);
        }
        o.insert("metadata".into(), metadata);

        let actor_user = actor.and_then(|a| {
            let mut u = Map::new();
            if let Some(id) = &a.id {
                u.insert("uid".into(), json!(id));
            }
            if let Some(email) = &a.email {
                u.insert("email_addr".into(), json!(email));
                u.insert("name".into(), json!(email));
            }
            let kind = a.kind.as_deref();
            if u.is_empty() {
                // A user object needs a uid or a name: one known only by its kind (an
                // anonymous caller) is named by it.
                u.insert("name".into(), json!(kind?));
            }
            let (type_id, caption) = user_type(kind, a.role.as_deref());
            u.insert("type_id".into(), json!(type_id));
            u.insert("type".into(), json!(caption));
            Some(Value::Object(u))
        });
        let mut actor_obj = Map::new();
        if let Some(u) = &actor_user {
            actor_obj.insert("user".into(), u.clone());
        }
        if let Some(s) = ctx.and_then(|c| c.session_id.as_deref()) {
            actor_obj.insert("session".into(), json!({"uid": s}));
        }
        if let Some(service) = ctx.and_then(|c| c.service.as_deref()) {
            actor_obj.insert("app_name".into(), json!(service));
        }
        if actor_obj.is_empty() {
            actor_obj.insert("app_name".into(), json!(self.product.name));
        }
        o.insert("actor".into(), Value::Object(actor_obj));

        let ip = actor.and_then(|a| a.ip_address.as_deref());
        let src = match ip {
            Some(ip) => json!({"ip": ip}),
            None => json!({"name": "unknown"}),
        };
        o.insert("src_endpoint".into(), src);
        if let Some(h) = &e.http {
            let mut req = Map::new();
            if let Some(m) = &h.method {
                req.insert("http_method".into(), json!(m.to_ascii_uppercase()));
            }
            if let Some(p) = &h.path {
                req.insert("url".into(), json!({"path": p}));
            }
            if let Some(ua) = actor.and_then(|a| a.user_agent.as_deref()) {
                req.insert("user_agent".into(), json!(ua));
            }
            o.insert("http_request".into(), Value::Object(req));
            if let Some(code) = h.status_code {
                o.insert("http_response".into(), json!({"code": code}));
            }
        }

        // The class's own required objects.
        let target = e.target.as_ref();
        let target_user = || {
            let mut u = Map::new();
            if let Some(id) = target.and_then(|t| t.id.as_deref()) {
                u.insert("uid".into(), json!(id));
            }
            if let Some(name) = target.and_then(|t| t.name.as_deref()) {
                u.insert("name".into(), json!(name));
            }
            if let Some(kind) = target.and_then(|t| t.kind.as_deref()) {
                u.insert("type".into(), json!(kind));
            }
            (!u.is_empty()).then_some(Value::Object(u))
        };
        let some_user = || {
            actor_user
                .clone()
                .unwrap_or_else(|| json!({"name": "unknown"}))
        };
        match class {
            Class::Authentication => {
                o.insert("user".into(), some_user());
                let service = ctx
                    .and_then(|c| c.service.as_deref())
                    .unwrap_or(&self.product.name);
                o.insert("service".into(), json!({"name": service}));
                let mfa = e.details.get("mfa").and_then(Value::as_bool);
                if let Some(mfa) = mfa {
                    o.insert("is_mfa".into(), json!(mfa));
                }
            }
            Class::AccountChange => {
                // The account changed: the target when named, else the actor's own.
                o.insert("user".into(), target_user().unwrap_or_else(some_user));
            }
            Class::UserAccess => {
                o.insert("user".into(), target_user().unwrap_or_else(some_user));
                let privileges = match e
                    .details
                    .get("role")
                    .or_else(|| e.details.get("privileges"))
                {
                    Some(Value::Array(a)) => a
                        .iter()
                        .map(|v| json!(v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                        .collect(),
                    Some(Value::String(s)) => vec![json!(s)],
                    Some(other) => vec![json!(other.to_string())],
                    None => vec![json!(resource)],
                };
                o.insert("privileges".into(), Value::Array(privileges));
            }
            Class::WebResourcesActivity => {
                let mut r = Map::new();
                r.insert(
                    "type".into(),
                    json!(target.and_then(|t| t.kind.as_deref()).unwrap_or(resource)),
                );
                if let Some(id) = target.and_then(|t| t.id.as_deref()) {
                    r.insert("uid".into(), json!(id));
                }
                // A web resource needs a name or uid: without a target, name the kind.
                let name = target
                    .and_then(|t| t.name.as_deref())
                    .or_else(|| (!r.contains_key("uid")).then_some(resource));
                if let Some(name) = name {
                    r.insert("name".into(), json!(name));
                }
                o.insert("web_resources".into(), json!([r]));
            }
            Class::ApiActivity => {
                let operation = match &e.http {
                    Some(h) => format!(
                        "{} {}",
                        h.method.as_deref().unwrap_or("?"),
                        h.route.as_deref().or(h.path.as_deref()).unwrap_or("?")
                    ),
                    None => e.event_type.as_str().to_owned(),
                };
                let mut api = json!({"operation": operation});
                if let Some(service) = ctx.and_then(|c| c.service.as_deref()) {
                    api["service"] = json!({"name": service});
                }
                if let Some(rid) = ctx.and_then(|c| c.request_id.as_deref()) {
                    api["request"] = json!({"uid": rid});
                }
                o.insert("api".into(), api);
            }
        }

        let mut unmapped = Map::new();
        unmapped.insert("eventType".into(), json!(e.event_type.as_str()));
        unmapped.insert("category".into(), json!(e.category.as_str()));
        if let Some(c) = ctx {
            for (k, v) in [
                ("requestId", &c.request_id),
                ("traceId", &c.trace_id),
                ("spanId", &c.span_id),
                ("organizationId", &c.organization_id),
            ] {
                if let Some(v) = v {
                    unmapped.insert(k.into(), json!(v));
                }
            }
        }
        if !e.details.is_empty() {
            unmapped.insert("details".into(), Value::Object(e.details.clone()));
        }
        if !e.redacted_fields.is_empty() {
            unmapped.insert("redactedFields".into(), json!(e.redacted_fields));
        }
        o.insert("unmapped".into(), Value::Object(unmapped));
        Value::Object(o)
    }
}

#[cfg(test)]
mod tests {
    use super::super::resource_and_action;

    #[test]
    fn resource_and_action_ignore_the_result_suffix() {
        assert_eq!(
            resource_and_action("auth.login.success"),
            ("login", "login")
        );
        assert_eq!(resource_and_action("auth.mfa.enroll"), ("mfa", "enroll"));
        assert_eq!(
            resource_and_action("data.vector.delete"),
            ("vector", "delete")
        );
        assert_eq!(
            resource_and_action("admin.api_key.create.failure"),
            ("api_key", "create")
        );
        assert_eq!(resource_and_action("auth.logout"), ("logout", "logout"));
    }
}
