//! ArcSight Common Event Format (CEF 0), the line format many SIEMs ingest over syslog.
//!
//! `CEF:0|Vendor|Product|Version|SignatureID|Name|Severity|Extension`, where the signature is
//! the event type, the name the description (or the type), and the severity 0–10. Header
//! fields escape `\` and `|`; extension values escape `\`, `=` and line breaks (`\n`, `\r`),
//! so a hostile value can neither end a field nor forge another key.
//!
//! Extension keys: `rt` (epoch ms), `externalId` (event id), `act` (event type), `cat`
//! (category), `outcome`, `suid`/`suser` (actor id / e-mail), `src` (client IP),
//! `requestClientApplication` (user agent), `requestMethod`, `request` (path), `duid`/`duser`
//! (target id / name, when the target is a user, account or member), `msg`, and custom
//! strings `cs1` tenant, `cs2` request id, `cs3` trace id, and for any other target `cs4`
//! its type, `cs5` its id, `cs6` its name, each with its `csNLabel`. The header's vendor,
//! product and version are [`Cef::new`]'s (syslog specs: `vendor=`, `product=`, `version=`).
//!
//! ```
//! use audit_core::{Actor, AuditEvent, Outcome};
//! use audit_sinks::format::cef::Cef;
//!
//! let event = AuditEvent::builder("auth.login.failure")
//!     .actor(Actor::user("u=1|x"))
//!     .result(Outcome::Failure)
//!     .build()?;
//! let line = Cef::new("Acme", "vector-api", "1.4.2").encode(&event);
//! assert!(line.starts_with("CEF:0|Acme|vector-api|1.4.2|auth.login.failure|auth.login.failure|5|"));
//! assert!(line.contains("suid=u\\=1|x"));
//! # Ok::<(), audit_core::Error>(())
//! ```

use std::fmt::Write as _;

use audit_core::{AuditEvent, Severity};

/// Encodes events as CEF lines.
#[derive(Debug, Clone)]
pub struct Cef {
    vendor: String,
    product: String,
    version: String,
}

impl Default for Cef {
    fn default() -> Cef {
        Cef::new("audit-rs", "audit-rs", env!("CARGO_PKG_VERSION"))
    }
}

fn header(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
}

fn value(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// CEF severity (0–10).
pub fn severity(s: Severity) -> u8 {
    match s {
        Severity::Debug => 1,
        Severity::Info => 3,
        Severity::Notice => 4,
        Severity::Warning => 6,
        Severity::Error => 8,
        Severity::Critical => 10,
        _ => 3,
    }
}

impl Cef {
    /// An encoder naming the device vendor, product and version in every header.
    pub fn new(vendor: &str, product: &str, version: &str) -> Cef {
        Cef {
            vendor: vendor.to_owned(),
            product: product.to_owned(),
            version: version.to_owned(),
        }
    }

    /// The vendor, product and version this encoder writes in every header.
    pub fn names(&self) -> (&str, &str, &str) {
        (&self.vendor, &self.product, &self.version)
    }

    /// One CEF line, without a trailing newline.
    pub fn encode(&self, e: &AuditEvent) -> String {
        let mut out = String::with_capacity(512);
        out.push_str("CEF:0|");
        header(&self.vendor, &mut out);
        out.push('|');
        header(&self.product, &mut out);
        out.push('|');
        header(&self.version, &mut out);
        out.push('|');
        header(e.event_type.as_str(), &mut out);
        out.push('|');
        header(
            e.description.as_deref().unwrap_or(e.event_type.as_str()),
            &mut out,
        );
        // A failed or denied action weighs more than its nominal severity.
        let mut sev = severity(e.severity);
        if matches!(
            e.result,
            Some(audit_core::Outcome::Failure | audit_core::Outcome::Denied)
        ) {
            sev = sev.max(5);
        }
        let _ = write!(out, "|{sev}|");
        let mut first = true;
        let mut kv = |k: &str, v: &str| {
            if !first {
                out.push(' ');
            }
            first = false;
            out.push_str(k);
            out.push('=');
            value(v, &mut out);
        };
        kv("rt", &e.timestamp.unix_millis().to_string());
        kv("externalId", &e.id.to_string());
        kv("act", e.event_type.as_str());
        kv("cat", e.category.as_str());
        if let Some(r) = e.result {
            kv("outcome", r.as_str());
        }
        if let Some(a) = &e.actor {
            if let Some(id) = &a.id {
                kv("suid", id);
            }
            if let Some(email) = &a.email {
                kv("suser", email);
            }
            if let Some(ip) = &a.ip_address {
                kv("src", ip);
            }
            if let Some(ua) = &a.user_agent {
                kv("requestClientApplication", ua);
            }
        }
        if let Some(h) = &e.http {
            if let Some(m) = &h.method {
                kv("requestMethod", m);
            }
            if let Some(p) = &h.path {
                kv("request", p);
            }
        }
        if let Some(t) = &e.target {
            // `duid`/`duser` name a destination *user*; any other resource goes to labelled
            // custom strings.
            let is_user = matches!(
                t.kind.as_deref(),
                Some("user" | "account" | "member" | "service_account")
            );
            if is_user {
                if let Some(id) = &t.id {
                    kv("duid", id);
                }
                if let Some(name) = &t.name {
                    kv("duser", name);
                }
            } else {
                for (n, label, v) in [
                    ("cs4", "targetType", &t.kind),
                    ("cs5", "targetId", &t.id),
                    ("cs6", "targetName", &t.name),
                ] {
                    if let Some(v) = v {
                        kv(&format!("{n}Label"), label);
                        kv(n, v);
                    }
                }
            }
        }
        if let Some(d) = &e.description {
            kv("msg", d);
        }
        if let Some(c) = &e.context {
            for (n, label, v) in [
                ("cs1", "tenant", &c.organization_id),
                ("cs2", "requestId", &c.request_id),
                ("cs3", "traceId", &c.trace_id),
            ] {
                if let Some(v) = v {
                    kv(&format!("{n}Label"), label);
                    kv(n, v);
                }
            }
        }
        out
    }
}

/// A parsed CEF line: the six header fields after `CEF:0`, and the extension's key/value
/// pairs in order.
pub type Parsed = (Vec<String>, Vec<(String, String)>);

/// Splits a CEF line back into its six header fields (after `CEF:0`) and its extension pairs, undoing the
/// escapes (used by tests and receivers; `None` when the line is not CEF 0).
pub fn parse(line: &str) -> Option<Parsed> {
    let rest = line.strip_prefix("CEF:0|")?;
    let mut headers = Vec::with_capacity(7);
    let mut cur = String::new();
    let mut chars = rest.chars();
    while headers.len() < 6 {
        match chars.next()? {
            '\\' => cur.push(chars.next()?),
            '|' => headers.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    let ext: String = chars.collect();
    // Extension: `key=value` pairs separated by spaces; a key is a run of [A-Za-z0-9]
    // directly before an unescaped `=`.
    let mut pairs = Vec::new();
    let bytes: Vec<char> = ext.chars().collect();
    let mut i = 0;
    let mut key: Option<String> = None;
    let mut val = String::new();
    while i < bytes.len() {
        let c = bytes[i];
        if c == '\\' && i + 1 < bytes.len() {
            val.push(match bytes[i + 1] {
                'n' => '\n',
                'r' => '\r',
                other => other,
            });
            i += 2;
            continue;
        }
        if c == '=' {
            // The key is the last word of what was read.
            let split = val.rfind(' ').map_or(0, |p| p + 1);
            let k = val[split..].to_owned();
            let v = val[..split].trim_end().to_owned();
            if let Some(prev) = key.take() {
                pairs.push((prev, v));
            }
            key = Some(k);
            val.clear();
            i += 1;
            continue;
        }
        val.push(c);
        i += 1;
    }
    if let Some(k) = key {
        pairs.push((k, val));
    }
    Some((headers, pairs))
}
