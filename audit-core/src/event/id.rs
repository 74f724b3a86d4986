//! Event identifiers.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// An event's unique id: a UUIDv7 (time-ordered) for events made here; any non-empty string
/// for events read from elsewhere (seed 000's ids look like `audit-550e8400-…`).
///
/// Receivers deduplicate by this id, so a batch delivered twice never produces two records.
///
/// ```
/// use audit_core::EventId;
///
/// let a = EventId::new();
/// let b = EventId::new();
/// assert_ne!(a, b);
/// assert!(a.as_uuid().is_some());
/// assert_eq!(a.to_string().len(), 36);
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(Repr);

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Repr {
    Uuid(Uuid),
    Other(Box<str>),
}

impl EventId {
    /// A fresh UUIDv7.
    pub fn new() -> EventId {
        EventId(Repr::Uuid(Uuid::now_v7()))
    }

    /// Wraps an id read from elsewhere. A canonical lowercase hyphenated UUID is stored as one;
    /// anything else is kept verbatim.
    pub fn from_string(s: &str) -> EventId {
        match Uuid::try_parse(s) {
            Ok(u) if u.hyphenated().to_string() == s => EventId(Repr::Uuid(u)),
            _ => EventId(Repr::Other(s.into())),
        }
    }

    /// The UUID, when the id is one.
    pub fn as_uuid(&self) -> Option<Uuid> {
        match &self.0 {
            Repr::Uuid(u) => Some(*u),
            Repr::Other(_) => None,
        }
    }
}

impl Default for EventId {
    fn default() -> Self {
        EventId::new()
    }
}

impl From<Uuid> for EventId {
    fn from(u: Uuid) -> Self {
        EventId(Repr::Uuid(u))
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Uuid(u) => fmt::Display::fmt(&u.hyphenated(), f),
            Repr::Other(s) => f.write_str(s),
        }
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({self})")
    }
}

impl EventId {
    /// Calls `f` with the id as text, without allocating.
    pub(super) fn with_str<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        match &self.0 {
            Repr::Uuid(u) => {
                let mut buf = Uuid::encode_buffer();
                f(u.hyphenated().encode_lower(&mut buf))
            }
            Repr::Other(s) => f(s),
        }
    }
}

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.with_str(|s| serializer.serialize_str(s))
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        if s.is_empty() {
            return Err(serde::de::Error::custom("event id must not be empty"));
        }
        Ok(EventId::from_string(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_ids_round_trip_verbatim() {
        for s in [
            "audit-550e8400-e29b-41d4-a716-446655440000",
            "550E8400-E29B-41D4-A716-446655440000",
            "550e8400e29b41d4a716446655440000",
        ] {
            let id = EventId::from_string(s);
            assert_eq!(id.to_string(), s);
            assert!(id.as_uuid().is_none());
        }
        let canonical = "0193f0c4-7a1b-7c3d-8e4f-0123456789ab";
        assert!(EventId::from_string(canonical).as_uuid().is_some());
    }

    #[test]
    fn new_ids_are_time_ordered() {
        let ids: Vec<_> = (0..100).map(|_| EventId::new()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }
}
