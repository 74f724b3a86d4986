//! Wire formats shared by sinks and exports.
//!
//! - [`jsonl`]: the canonical event JSON, one object per line.
//! - [`ocsf`]: OCSF 1.8.0 (Authentication, Account Change, User Access Management, Web
//!   Resources Activity, API Activity).
//! - [`ecs`]: Elastic Common Schema 9.x documents.
//! - [`cef`]: ArcSight CEF 0 lines.
//!
//! CSV, JSON arrays and NDJSON for exports are in `audit_core::export`.

pub mod cef;
pub mod ecs;
pub mod jsonl;
pub mod ocsf;

use std::str::FromStr;

use audit_core::{AuditEvent, Severity, SinkError};

/// `<area>.<resource>.<action>[.<result>]` → (resource, action), ignoring a result suffix
/// (`auth.login.success` → (`login`, `login`); `auth.logout` → (`logout`, `logout`)).
pub(crate) fn resource_and_action(event_type: &str) -> (&str, &str) {
    let mut parts: Vec<&str> = event_type.split('.').collect();
    if parts.len() >= 3
        && matches!(
            parts.last(),
            Some(&("success" | "failure" | "denied" | "error" | "cancelled"))
        )
    {
        parts.pop();
    }
    match parts.as_slice() {
        [_, resource, .., action] if parts.len() >= 3 => (resource, action),
        [_, action] => (action, action),
        _ => ("", ""),
    }
}

/// The syslog (RFC 5424) severity of an event: 7 debug … 2 critical. ECS borrows the scale.
pub(crate) fn syslog_severity(s: Severity) -> u8 {
    match s {
        Severity::Debug => 7,
        Severity::Notice => 5,
        Severity::Warning => 4,
        Severity::Error => 3,
        Severity::Critical => 2,
        _ => 6,
    }
}

/// The line format of the line-oriented sinks (file, stdout, webhook elements, NATS payloads).
///
/// ```
/// use audit_core::AuditEvent;
/// use audit_sinks::format::Format;
///
/// let e = AuditEvent::builder("auth.logout").build()?;
/// let mut out = Vec::new();
/// "ocsf".parse::<Format>().unwrap().write_line(&mut out, &e).unwrap();
/// let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
/// assert_eq!(v["class_uid"], 3002);
/// # Ok::<(), audit_core::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum Format {
    /// The canonical event JSON (the default).
    #[default]
    Native,
    /// OCSF 1.8.0 JSON.
    Ocsf(ocsf::Ocsf),
    /// ECS JSON.
    Ecs,
    /// CEF lines.
    Cef(cef::Cef),
}

impl Format {
    /// True for formats whose output is a JSON object.
    pub fn is_json(&self) -> bool {
        !matches!(self, Format::Cef(_))
    }

    /// Appends one encoded event (no newline); on error nothing is appended.
    pub fn write(&self, out: &mut Vec<u8>, e: &AuditEvent) -> Result<(), SinkError> {
        let start = out.len();
        let r = match self {
            Format::Native => e.write_json(out),
            Format::Ocsf(o) => serde_json::to_writer(&mut *out, &o.encode(e)),
            Format::Ecs => serde_json::to_writer(&mut *out, &ecs::encode(e)),
            Format::Cef(c) => {
                out.extend_from_slice(c.encode(e).as_bytes());
                Ok(())
            }
        };
        r.map_err(|err| {
            out.truncate(start);
            SinkError::permanent(format!("cannot encode event {}: {err}", e.id))
        })
    }

    /// Appends one encoded event and a newline.
    pub fn write_line(&self, out: &mut Vec<u8>, e: &AuditEvent) -> Result<(), SinkError> {
        self.write(out, e)?;
        out.push(b'\n');
        Ok(())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "native" | "json" => Ok(Format::Native),
            "ocsf" => Ok(Format::Ocsf(ocsf::Ocsf::default())),
            "ecs" => Ok(Format::Ecs),
            "cef" => Ok(Format::Cef(cef::Cef::default())),
            other => Err(format!(
                "format {other:?} is not one of native, ocsf, ecs, cef"
            )),
        }
    }
}
