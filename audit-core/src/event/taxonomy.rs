//! The closed vocabularies of an audit event: category, severity, outcome, and the
//! validated dotted event type.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Text;
use crate::Error;

/// The broad area an event belongs to; serialised lowercase (`"authentication"`, `"admin"`, …).
///
/// Derived from the first segment of the event type when not set explicitly:
/// `auth.` → [`Authentication`](Category::Authentication), `data.` → [`Data`](Category::Data),
/// `admin.` → [`Admin`](Category::Admin), `security.` → [`Security`](Category::Security),
/// `system.` → [`System`](Category::System).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Category {
    /// Logins, logouts, MFA, password and session changes.
    Authentication,
    /// Reads and writes of the application's data.
    Data,
    /// Permission, role, API-key, configuration and membership changes.
    Admin,
    /// Denied access, suspicious activity, rate limiting.
    Security,
    /// Events about the service and the audit pipeline itself.
    System,
}

impl Category {
    /// All categories, in their canonical order.
    pub const ALL: [Category; 5] = [
        Category::Authentication,
        Category::Data,
        Category::Admin,
        Category::Security,
        Category::System,
    ];

    /// The lowercase wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Authentication => "authentication",
            Category::Data => "data",
            Category::Admin => "admin",
            Category::Security => "security",
            Category::System => "system",
        }
    }

    /// The category implied by an event type's first segment, if that segment is one of the
    /// five known prefixes.
    pub fn from_event_type(event_type: &str) -> Option<Category> {
        let prefix = event_type.split('.').next().unwrap_or_default();
        match prefix {
            "auth" => Some(Category::Authentication),
            "data" => Some(Category::Data),
            "admin" => Some(Category::Admin),
            "security" => Some(Category::Security),
            "system" => Some(Category::System),
            _ => None,
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Category {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| Error::invalid_value("category", s))
    }
}

/// How much attention an event deserves; serialised lowercase. Ordered from least to most
/// severe, so `severity >= Severity::Warning` works as a filter.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Severity {
    /// Diagnostic detail.
    Debug,
    /// Normal activity (the default).
    #[default]
    Info,
    /// Normal but significant, e.g. a configuration change.
    Notice,
    /// Something that may need a look, e.g. a failed login.
    Warning,
    /// A failed operation.
    Error,
    /// Something that needs immediate action, e.g. lost audit events.
    Critical,
}

impl Severity {
    /// The lowercase wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Debug => "debug",
            Severity::Info => "info",
            Severity::Notice => "notice",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

impl Severity {
    /// All severities, least severe first.
    pub const ALL: [Severity; 6] = [
        Severity::Debug,
        Severity::Info,
        Severity::Notice,
        Severity::Warning,
        Severity::Error,
        Severity::Critical,
    ];
}

impl FromStr for Severity {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| Error::invalid_value("severity", s))
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What came of the audited action (the event's `result`); serialised lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Outcome {
    /// The action completed.
    Success,
    /// The action was attempted and failed because of the caller (e.g. wrong password, 4xx).
    Failure,
    /// The action was refused by an authorisation decision (401/403).
    Denied,
    /// The action failed because of the service (5xx).
    Error,
    /// The caller went away before the action completed.
    Cancelled,
}

impl Outcome {
    /// The lowercase wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
            Outcome::Cancelled => "cancelled",
        }
    }
}

impl Outcome {
    /// All outcomes.
    pub const ALL: [Outcome; 5] = [
        Outcome::Success,
        Outcome::Failure,
        Outcome::Denied,
        Outcome::Error,
        Outcome::Cancelled,
    ];
}

impl FromStr for Outcome {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Outcome::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| Error::invalid_value("result", s))
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated event type: dotted lowercase `<area>.<resource>.<action>[.<result>]`.
///
/// At least two segments; each segment starts with a lowercase ASCII letter and continues with
/// lowercase letters, digits or `_`; at most 128 bytes in all.
///
/// ```
/// use audit_core::EventType;
///
/// let t: EventType = "admin.api_key.create".parse().unwrap();
/// assert_eq!(t.as_str(), "admin.api_key.create");
/// assert!("Auth.Login".parse::<EventType>().is_err());
/// assert!("login".parse::<EventType>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventType(Text);

impl EventType {
    /// Longest accepted event type, in bytes.
    pub const MAX_LEN: usize = 128;

    /// Validates `s` as an event type.
    pub fn new(s: &str) -> Result<EventType, Error> {
        validate_event_type(s)?;
        Ok(EventType(Text::new(s)))
    }

    /// Like [`new`](Self::new), from an owned string.
    pub fn from_string(s: String) -> Result<EventType, Error> {
        validate_event_type(&s)?;
        Ok(EventType(Text::from(s)))
    }

    /// Like [`new`](Self::new), from a [`Text`]: a shared one stays shared, so a rule's type
    /// is validated per event but not copied.
    pub fn from_text(s: Text) -> Result<EventType, Error> {
        validate_event_type(&s)?;
        Ok(EventType(s))
    }

    /// The event type as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The category named by the first segment, if it is a known one.
    pub fn implied_category(&self) -> Option<Category> {
        Category::from_event_type(&self.0)
    }
}

fn validate_event_type(s: &str) -> Result<(), Error> {
    let reason = if s.is_empty() {
        Some("it is empty")
    } else if s.len() > EventType::MAX_LEN {
        Some("it is longer than 128 bytes")
    } else if !s.contains('.') {
        Some("it needs at least two dot-separated segments, e.g. `data.index.create`")
    } else if !segments_are_valid(s.as_bytes()) {
        Some(
            "each segment must start with a lowercase letter and contain only lowercase letters, digits and `_`",
        )
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::invalid_event_type(s, reason)),
        None => Ok(()),
    }
}

/// Every dot-separated segment starts with a lowercase letter and holds only lowercase
/// letters, digits and `_`. One pass over the bytes: this runs for every event the Tower
/// layer builds.
fn segments_are_valid(s: &[u8]) -> bool {
    let mut segment_start = true;
    for &b in s {
        match b {
            b'.' if !segment_start => segment_start = true,
            b'a'..=b'z' => segment_start = false,
            b'0'..=b'9' | b'_' if !segment_start => {}
            _ => return false,
        }
    }
    !segment_start
}

impl FromStr for EventType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::new(s)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for EventType {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        EventType::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_catalogue_types() {
        for t in [
            "auth.login.success",
            "admin.api_key.create",
            "data.vector.delete",
            "system.audit.dropped",
            "security.rate_limit.triggered",
            "data.v2.read",
        ] {
            assert!(EventType::new(t).is_ok(), "{t}");
        }
    }

    #[test]
    fn rejects_malformed_types_with_reason() {
        for (t, needle) in [
            ("", "empty"),
            ("login", "two dot-separated"),
            ("Auth.login", "lowercase"),
            ("auth..login", "lowercase letter"),
            ("auth.login.", "lowercase letter"),
            ("auth.log in", "lowercase"),
            ("auth.1login", "start with"),
        ] {
            let err = EventType::new(t).unwrap_err();
            assert!(err.is_invalid_event_type(), "{t}");
            assert!(err.to_string().contains(needle), "{t}: {err}");
        }
        assert!(EventType::new(&format!("a.{}", "b".repeat(200))).is_err());
    }

    proptest::proptest! {
        /// The one-pass segment check agrees with its definition, split by split.
        #[test]
        fn segment_check_matches_its_definition(s in "[a-z0-9_.A-Z -]{0,12}") {
            let by_split = s.split('.').all(|seg| {
                let mut bytes = seg.bytes();
                matches!(bytes.next(), Some(b'a'..=b'z'))
                    && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
            });
            proptest::prop_assert_eq!(segments_are_valid(s.as_bytes()), by_split, "{}", s);
        }
    }

    #[test]
    fn category_prefixes() {
        assert_eq!(
            Category::from_event_type("auth.logout"),
            Some(Category::Authentication)
        );
        assert_eq!(
            Category::from_event_type("admin.role.assign"),
            Some(Category::Admin)
        );
        assert_eq!(Category::from_event_type("billing.invoice.create"), None);
        assert_eq!("security".parse::<Category>().unwrap(), Category::Security);
        assert!("Security".parse::<Category>().is_err());
    }

    #[test]
    fn severity_orders_by_gravity() {
        assert!(Severity::Critical > Severity::Warning);
        assert!(Severity::Debug < Severity::Info);
    }
}
