//! Event identifiers.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use super::Timestamp;

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
    /// A fresh UUIDv7. Ids made in one process are strictly increasing, also within a
    /// millisecond and across threads: a millisecond clock, a per-millisecond counter and
    /// 56 random bits.
    pub fn new() -> EventId {
        EventId::at(Timestamp::now())
    }

    /// [`new`](Self::new) with the clock already read (`AuditEvent::new` reads it once for the
    /// id and the timestamp).
    pub(super) fn at(now: Timestamp) -> EventId {
        EventId(Repr::Uuid(now_v7(now)))
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

/// Bits of the per-millisecond counter: `rand_a` (12 bits) and the top 6 bits of `rand_b`.
const COUNTER_BITS: u32 = 18;

/// The last id's Unix milliseconds and counter, packed as `millis << COUNTER_BITS | counter`.
static LAST_V7: AtomicU64 = AtomicU64::new(0);

/// A UUIDv7 that is greater than every one made before it in this process: the Unix time in
/// milliseconds, an 18-bit counter that restarts each millisecond (RFC 9562, method 1; an
/// overflow, or a clock that steps back, carries into the timestamp), and 56 random bits.
///
/// The same guarantee as `Uuid::now_v7`, which takes a lock and draws its random bits from
/// a cryptographic generator: this takes one compare-and-swap and a fastrand draw, and costs
/// about a third as many instructions (about 180 per id instead of 560, clock read included;
/// callgrind, the audit-tower overhead bench). Event ids are not secrets.
fn now_v7(now: Timestamp) -> Uuid {
    let millis = u64::try_from(now.unix_millis()).unwrap_or(0);
    let fresh = (millis & ((1 << 48) - 1)) << COUNTER_BITS;
    let mut last = LAST_V7.load(Ordering::Relaxed);
    let next = loop {
        let next = if fresh > last { fresh } else { last + 1 };
        match LAST_V7.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break next,
            Err(seen) => last = seen,
        }
    };
    let counter = next & ((1 << COUNTER_BITS) - 1);
    let mut bytes = [0u8; 10];
    // The builder takes rand_a from the low 12 bits of bytes 0–1 and the top of rand_b from
    // the low 6 bits of byte 2.
    bytes[..2].copy_from_slice(&u16::try_from(counter >> 6).unwrap_or(0).to_be_bytes());
    bytes[2] = u8::try_from(counter & 0x3f).unwrap_or(0);
    bytes[3..].copy_from_slice(&fastrand::u64(..).to_le_bytes()[..7]);
    uuid::Builder::from_unix_timestamp_millis(next >> COUNTER_BITS, &bytes).into_uuid()
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

    #[test]
    fn ids_are_v7_now_and_strictly_increasing_within_a_millisecond_and_across_threads() {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        // Far more ids than milliseconds pass: most share their millisecond with others.
        let per_thread: Vec<Vec<Uuid>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        (0..20_000)
                            .map(|_| now_v7(Timestamp::now()))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let after = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        for ids in &per_thread {
            assert!(
                ids.windows(2).all(|w| w[0] < w[1]),
                "ordered within a thread"
            );
        }
        let mut all: Vec<Uuid> = per_thread.concat();
        for u in &all {
            assert_eq!(u.get_version_num(), 7);
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
            let (secs, nanos) = u.get_timestamp().unwrap().to_unix();
            let ms = secs * 1000 + u64::from(nanos) / 1_000_000;
            // A counter overflow may carry the timestamp a little ahead of the clock.
            assert!(
                ms >= before && ms <= after + 100,
                "{ms} not in {before}..={after}"
            );
        }
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "every id distinct");
        // And ids made one after another, on any threads, keep that order.
        let a = EventId::new();
        let b = std::thread::spawn(EventId::new).join().unwrap();
        assert!(a < b);
    }
}
