//! Request ids: generated when absent, accepted from the client only under a trust policy and
//! only when well-formed, echoed on the response, and put in request extensions.
//!
//! ```
//! use audit_tower::request_id::{RequestId, RequestIdPolicy, TrustInbound};
//!
//! assert!(RequestId::parse("req-0193f0c4").is_some());
//! assert!(RequestId::parse("has space").is_none());
//! assert!(RequestId::parse(&"x".repeat(129)).is_none());
//!
//! let policy = RequestIdPolicy::default().trust(TrustInbound::Never);
//! assert_eq!(policy.header_name().as_str(), "x-request-id");
//! ```
//!
//! # Trust boundary
//! An inbound id is data the client chose. It is taken only when the policy trusts the
//! sender ([`TrustInbound`]) and it is 1–128 visible ASCII characters; otherwise a fresh
//! UUIDv7 replaces it and the event records `details.inboundRequestIdRejected` with the
//! reason (never the rejected value). Our own [`RequestId`] type is used in extensions so that
//! tower-http 0.6 and 0.7 ids, which do not see each other, do not matter.
//!
//! # With tower-http's `SetRequestIdLayer`
//! Put the `AuditLayer` outside it and turn on
//! [`share_with_inner_layers`](RequestIdPolicy::share_with_inner_layers): tower-http keeps the
//! id the request already carries, so both layers, and your logs, use the audit layer's id.
//! The other way round cannot be made safe: tower-http keeps whatever id a client sent and
//! puts it in its `RequestId` extension, so that extension proves nothing about who made the
//! id, and this layer does not read it.

use std::fmt;
use std::net::IpAddr;

use arrayvec::ArrayString;
use audit_core::Timestamp;
use http::HeaderName;

use crate::net::IpNet;

/// A validated request id, in request extensions and on the event's `context.requestId`.
/// Cheap to clone: a generated id is held inline, an inbound one is shared.
#[derive(Clone)]
pub struct RequestId(Repr);

#[derive(Clone)]
enum Repr {
    /// A UUID in its 36-character hyphenated form (generating one allocates nothing, and
    /// reading it back re-checks nothing).
    Uuid(ArrayString<36>),
    Text(std::sync::Arc<str>),
}

impl RequestId {
    /// Longest accepted id, in bytes.
    pub const MAX_LEN: usize = 128;

    /// A fresh UUIDv7: the current Unix time in milliseconds and 74 random bits.
    ///
    /// Made here rather than by `Uuid::now_v7`, which also orders ids made within the same
    /// millisecond through a shared counter: a request id needs to be unique and roughly
    /// time-ordered, not strictly ordered, and this costs about 290 instructions per request
    /// instead of about 700 (callgrind, the overhead bench).
    /// The random bits come from a per-thread generator (not a cryptographic one): request
    /// ids are echoed to clients and are not secrets.
    pub fn generate() -> RequestId {
        RequestId::generate_at(Timestamp::now())
    }

    /// [`generate`](Self::generate) for a request that arrived `now` (the layer reads the
    /// clock once per request, for this and for the event).
    pub(crate) fn generate_at(now: Timestamp) -> RequestId {
        let millis = u64::try_from(now.unix_millis()).unwrap_or(0);
        let mut random = [0u8; 10];
        random[..8].copy_from_slice(&fastrand::u64(..).to_le_bytes());
        random[8..].copy_from_slice(&fastrand::u16(..).to_le_bytes());
        let id = uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid();
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let text = id.hyphenated().encode_lower(&mut buf);
        RequestId(Repr::Uuid(ArrayString::from(text).unwrap_or_default()))
    }

    /// Validates an id: 1–128 visible ASCII characters (no spaces, no control characters).
    pub fn parse(s: &str) -> Option<RequestId> {
        valid(s).then(|| RequestId(Repr::Text(s.into())))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Uuid(s) => s,
            Repr::Text(s) => s,
        }
    }
}

impl PartialEq for RequestId {
    fn eq(&self, other: &RequestId) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for RequestId {}

impl std::hash::Hash for RequestId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RequestId").field(&self.as_str()).finish()
    }
}

fn valid(s: &str) -> bool {
    !s.is_empty() && s.len() <= RequestId::MAX_LEN && s.bytes().all(|b| b.is_ascii_graphic())
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When an inbound request id is believed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TrustInbound {
    /// From any client (e.g. the service is only reachable through your own gateway).
    Always,
    /// Only when the connection comes from one of these networks (your proxies).
    FromProxies(Vec<IpNet>),
    /// Never: always generate (the default for services exposed to the internet).
    #[default]
    Never,
}

/// Why an inbound id was not used; recorded on the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejected {
    Untrusted,
    Malformed,
}

impl Rejected {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Rejected::Untrusted => "untrusted_sender",
            Rejected::Malformed => "malformed",
        }
    }
}

/// How request ids are read, generated and echoed.
#[derive(Debug, Clone)]
pub struct RequestIdPolicy {
    header: HeaderName,
    trust: TrustInbound,
    share: bool,
    make: Option<MakeId>,
}

/// A [`RequestIdPolicy::make_with`] function.
#[derive(Clone)]
struct MakeId(std::sync::Arc<dyn Fn() -> String + Send + Sync>);

impl fmt::Debug for MakeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MakeId(<fn>)")
    }
}

impl Default for RequestIdPolicy {
    /// Header `x-request-id`, [`TrustInbound::Never`].
    fn default() -> Self {
        RequestIdPolicy {
            header: HeaderName::from_static("x-request-id"),
            trust: TrustInbound::Never,
            share: false,
            make: None,
        }
    }
}

impl RequestIdPolicy {
    /// The header read and echoed (default `x-request-id`).
    #[must_use]
    pub fn header(mut self, name: HeaderName) -> Self {
        self.header = name;
        self
    }

    /// When an inbound id is believed (default [`TrustInbound::Never`]).
    #[must_use]
    pub fn trust(mut self, trust: TrustInbound) -> Self {
        self.trust = trust;
        self
    }

    /// Writes the id this layer decided on into the request's id header, for the layers and
    /// handlers inside it: put the `AuditLayer` outside tower-http's `SetRequestIdLayer` and
    /// both use one id (tower-http keeps an id the request already has), and a client's id
    /// the policy refused never reaches your logs. Off by default: it costs about 350
    /// instructions per request whose header it rewrites (callgrind, the overhead bench).
    #[must_use]
    pub fn share_with_inner_layers(mut self) -> Self {
        self.share = true;
        self
    }

    /// Makes the ids of requests that bring none (or bring one the policy refuses) with `f`,
    /// in tower-http's style, instead of a UUIDv7: for your own format (`req_` and a ULID,
    /// say). An id `f` makes that is not 1–128 visible ASCII characters is replaced by a
    /// UUIDv7, so the header and the trail never carry a malformed one.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use audit_tower::request_id::RequestIdPolicy;
    ///
    /// static NEXT: AtomicU64 = AtomicU64::new(1);
    /// let policy = RequestIdPolicy::default()
    ///     .make_with(|| format!("req_{:08}", NEXT.fetch_add(1, Ordering::Relaxed)));
    /// # let _ = policy;
    /// ```
    #[must_use]
    pub fn make_with(mut self, f: impl Fn() -> String + Send + Sync + 'static) -> Self {
        self.make = Some(MakeId(std::sync::Arc::new(f)));
        self
    }

    /// A fresh id for a request that arrived `now`.
    fn fresh(&self, now: Timestamp) -> RequestId {
        match &self.make {
            Some(MakeId(f)) => {
                RequestId::parse(&f()).unwrap_or_else(|| RequestId::generate_at(now))
            }
            None => RequestId::generate_at(now),
        }
    }

    pub(crate) fn shares_with_inner_layers(&self) -> bool {
        self.share
    }

    /// The header name.
    pub fn header_name(&self) -> &HeaderName {
        &self.header
    }

    /// The id to use for a request from `peer` carrying `inbound` in the id header, and why
    /// an inbound id was refused, if one was. A `vouched` id (from a trusted peer service)
    /// is believed whatever the policy.
    pub(crate) fn resolve(
        &self,
        inbound: Option<&http::HeaderValue>,
        peer: Option<IpAddr>,
        now: Timestamp,
        vouched: bool,
    ) -> (RequestId, Option<Rejected>) {
        let Some(raw) = inbound else {
            return (self.fresh(now), None);
        };
        let trusted = vouched
            || match &self.trust {
                TrustInbound::Always => true,
                TrustInbound::FromProxies(nets) => {
                    peer.is_some_and(|ip| nets.iter().any(|n| n.contains(ip)))
                }
                TrustInbound::Never => false,
            };
        if !trusted {
            return (self.fresh(now), Some(Rejected::Untrusted));
        }
        match raw.to_str().ok().and_then(RequestId::parse) {
            Some(id) => (id, None),
            None => (self.fresh(now), Some(Rejected::Malformed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    fn headers(v: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_bytes(v).unwrap());
        h
    }

    #[test]
    fn trust_and_validity_decide() {
        let always = RequestIdPolicy::default().trust(TrustInbound::Always);
        let (id, why) = always.resolve(
            headers(b"abc-123").get("x-request-id"),
            None,
            Timestamp::now(),
            false,
        );
        assert_eq!((id.as_str(), why), ("abc-123", None));

        let (id, why) = always.resolve(
            headers(b"has space").get("x-request-id"),
            None,
            Timestamp::now(),
            false,
        );
        assert_ne!(id.as_str(), "has space");
        assert_eq!(why, Some(Rejected::Malformed));
        let (_, why) = always.resolve(
            headers("x".repeat(129).as_bytes()).get("x-request-id"),
            None,
            Timestamp::now(),
            false,
        );
        assert_eq!(why, Some(Rejected::Malformed));
        let (_, why) = always.resolve(
            headers(b"caf\xc3\xa9").get("x-request-id"),
            None,
            Timestamp::now(),
            false,
        );
        assert_eq!(why, Some(Rejected::Malformed));

        let never = RequestIdPolicy::default();
        let (id, why) = never.resolve(
            headers(b"abc").get("x-request-id"),
            None,
            Timestamp::now(),
            false,
        );
        assert_ne!(id.as_str(), "abc");
        assert_eq!(why, Some(Rejected::Untrusted));

        let proxies = RequestIdPolicy::default().trust(TrustInbound::FromProxies(vec![
            "10.0.0.0/8".parse().unwrap(),
        ]));
        let (id, _) = proxies.resolve(
            headers(b"abc").get("x-request-id"),
            Some("10.1.2.3".parse().unwrap()),
            Timestamp::now(),
            false,
        );
        assert_eq!(id.as_str(), "abc");
        let (id, why) = proxies.resolve(
            headers(b"abc").get("x-request-id"),
            Some("192.0.2.1".parse().unwrap()),
            Timestamp::now(),
            false,
        );
        assert_ne!(id.as_str(), "abc");
        assert_eq!(why, Some(Rejected::Untrusted));

        let (id, why) = never.resolve(
            HeaderMap::new().get("x-request-id"),
            None,
            Timestamp::now(),
            false,
        );
        assert!(uuid::Uuid::parse_str(id.as_str()).is_ok());
        assert_eq!(why, None);
        // A peer service vouches for it: believed whatever the policy.
        let (id, why) = never.resolve(
            headers(b"abc").get("x-request-id"),
            None,
            Timestamp::now(),
            true,
        );
        assert_eq!((id.as_str(), why), ("abc", None));
        let (id, why) = never.resolve(
            HeaderMap::new().get("x-request-id"),
            None,
            Timestamp::now(),
            false,
        );
        assert!(uuid::Uuid::parse_str(id.as_str()).is_ok());
        assert_eq!(why, None);
    }

    #[test]
    fn generated_ids_are_hyphenated_v7_and_compare_by_text() {
        let a = RequestId::generate();
        let uuid = uuid::Uuid::parse_str(a.as_str()).unwrap();
        assert_eq!(uuid.get_version_num(), 7);
        assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(a.as_str(), uuid.hyphenated().to_string());
        // Its time is now (within the few seconds a slow test machine may take).
        let (secs, _) = uuid.get_timestamp().unwrap().to_unix();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(now.abs_diff(secs) <= 5, "{secs} vs {now}");
        let many: std::collections::HashSet<String> = (0..10_000)
            .map(|_| RequestId::generate().to_string())
            .collect();
        assert_eq!(many.len(), 10_000);
        // Made for a given instant (the layer's one clock read per request), it carries it.
        let at = Timestamp::from_unix_millis(1_700_000_000_123).unwrap();
        let u = uuid::Uuid::parse_str(RequestId::generate_at(at).as_str()).unwrap();
        let (secs, nanos) = u.get_timestamp().unwrap().to_unix();
        assert_eq!((secs, nanos / 1_000_000), (1_700_000_000, 123));
        // A generated id and the same text received inbound are the same id.
        let same = RequestId::parse(a.as_str()).unwrap();
        assert_eq!(a, same);
        use std::hash::BuildHasher;
        let state = std::hash::RandomState::new();
        assert_eq!(state.hash_one(&a), state.hash_one(&same));
        assert_eq!(format!("{a}"), a.as_str());
        assert_eq!(format!("{a:?}"), format!("RequestId({:?})", a.as_str()));
    }
}
