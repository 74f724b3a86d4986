//! Who a request between services was made for: the originating user and tenant, carried
//! from one service to the next as an explicit claim that the receiver believes only from a
//! peer it trusts, or with a signature made with a key the two share.
//!
//! One call on each side. The calling service's HTTP client:
//!
//! ```
//! use audit_tower::origin::OriginKey;
//! use audit_tower::propagate::PropagateLayer;
//! let key = OriginKey::new(b"a shared secret of at least 32 bytes!!").unwrap();
//! let client_layer = PropagateLayer::new().with_origin(Some(key.clone()));
//! # let _ = client_layer;
//! ```
//!
//! The receiving service's layer:
//!
//! ```
//! use audit_core::Auditor;
//! use audit_tower::AuditLayer;
//! use audit_tower::origin::{OriginKey, TrustedPeers};
//! let key = OriginKey::new(b"a shared secret of at least 32 bytes!!").unwrap();
//! let auditor = Auditor::builder().build().unwrap();
//! let layer = AuditLayer::new(auditor).trust_peers(TrustedPeers::signed(key));
//! # let _ = layer;
//! ```
//!
//! The receiver then continues the caller's request id (echoed and recorded as its own) and
//! records the claim on each event as `details.origin` (`actorId`, `actorType`, `tenant`,
//! `requestId`); when the receiver's own authentication names no tenant, the event is filed
//! under the claimed one. The claim never sets the receiver's actor: that is the calling
//! service, as the receiver's authentication establishes it. A claim that is not believed is
//! ignored and the reason kept as `details.originRejected` (`untrusted_sender`,
//! `bad_signature`, `expired`, `other_request` for a signed claim sent with another request
//! id than the one it names, `malformed`).
//!
//! The claim travels in the `x-audit-origin` header: `v1.<hex of its JSON>.<hex of the
//! HMAC-SHA256 of that JSON under the shared key>` (no signature part when unsigned). The
//! JSON holds `actorId`, `actorType`, `tenant`, `requestId` and `issuedAt` (Unix
//! milliseconds); a signed claim is good for [`MAX_AGE`] either side of the receiver's clock
//! and only for the request id it names. Within that window a captured claim can be sent
//! again with its own request id: keep the key, and the traffic between your services,
//! private. The e-mail address, role and client address of the
//! originating user are not sent.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use audit_core::{Text, Timestamp};
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::net::IpNet;

/// The header the claim travels in.
pub const ORIGIN_HEADER: HeaderName = HeaderName::from_static("x-audit-origin");

/// How far a signed claim's `issuedAt` may be from the receiver's clock.
pub const MAX_AGE: Duration = Duration::from_secs(300);

/// Longest claim header accepted, in bytes.
const MAX_HEADER: usize = 2048;

/// A key shared by the services that sign and check origin claims (HMAC-SHA256).
#[derive(Clone)]
pub struct OriginKey(Arc<[u8]>);

impl std::fmt::Debug for OriginKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OriginKey([hidden])")
    }
}

impl OriginKey {
    /// A key from `secret`, at least 32 bytes (a random one: `openssl rand 32`).
    pub fn new(secret: &[u8]) -> Result<OriginKey, audit_core::Error> {
        if secret.len() < 32 {
            return Err(audit_core::Error::from(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "an origin key needs at least 32 bytes of secret",
            )));
        }
        Ok(OriginKey(secret.into()))
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(payload);
        mac
    }
}

/// The services whose origin claims (and request ids) a receiver believes
/// ([`AuditLayer::trust_peers`](crate::AuditLayer::trust_peers)).
#[derive(Debug, Clone, Default)]
pub struct TrustedPeers {
    pub(crate) nets: Vec<IpNet>,
    pub(crate) key: Option<OriginKey>,
}

impl TrustedPeers {
    /// Peers connecting from these networks (the connection's own address, as axum's or
    /// tonic's connect info gives it): their request ids and unsigned claims are believed.
    pub fn networks(nets: Vec<IpNet>) -> TrustedPeers {
        TrustedPeers { nets, key: None }
    }

    /// Any peer presenting a claim signed with `key`, for the request id the claim names.
    pub fn signed(key: OriginKey) -> TrustedPeers {
        TrustedPeers {
            nets: Vec::new(),
            key: Some(key),
        }
    }

    /// Also believes claims signed with `key`.
    #[must_use]
    pub fn with_key(mut self, key: OriginKey) -> TrustedPeers {
        self.key = Some(key);
        self
    }

    pub(crate) fn trusts_address(&self, peer: Option<IpAddr>) -> bool {
        peer.is_some_and(|ip| self.nets.iter().any(|n| n.contains(ip)))
    }
}

/// The user and tenant a request between services was made for, as the calling service
/// claimed them and this one believed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Origin {
    /// The originating actor's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<String>,
    /// The originating actor's type (`user`, `api_key`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_type: Option<String>,
    /// The tenant the request was made in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The request id at the calling service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// When the caller made the claim (Unix milliseconds).
    #[serde(default)]
    pub issued_at: i64,
}

/// What the receiver made of a request's claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Believed.
    Believed(Origin),
    /// Present but not believed, and why.
    Rejected(&'static str),
}

impl Verdict {
    /// True when the claim vouches for `request_id` (it was believed and names it).
    pub(crate) fn vouches_for(&self, request_id: Option<&HeaderValue>) -> bool {
        match (self, request_id.and_then(|v| v.to_str().ok())) {
            (Verdict::Believed(o), Some(rid)) => o.request_id.as_deref() == Some(rid),
            _ => false,
        }
    }
}

/// Checks a request's claim, if it carries one; `request_id` is the request's id header.
pub(crate) fn check(
    peers: &TrustedPeers,
    headers: &HeaderMap,
    request_id: Option<&HeaderValue>,
    peer: Option<IpAddr>,
    now: Timestamp,
) -> Option<Verdict> {
    let raw = headers.get(&ORIGIN_HEADER)?;
    let verdict = verdict(peers, raw.as_bytes(), peer, now);
    // A signed claim is good only for the request it names: replayed onto another request
    // id, it is refused.
    if let Verdict::Believed(o) = &verdict
        && !peers.trusts_address(peer)
        && o.request_id.as_deref() != request_id.and_then(|v| v.to_str().ok())
    {
        return Some(Verdict::Rejected("other_request"));
    }
    Some(verdict)
}

fn verdict(peers: &TrustedPeers, raw: &[u8], peer: Option<IpAddr>, now: Timestamp) -> Verdict {
    let text = match std::str::from_utf8(raw) {
        Ok(t) if t.len() <= MAX_HEADER => t,
        _ => return Verdict::Rejected("malformed"),
    };
    let mut parts = text.split('.');
    let (Some("v1"), Some(body), sig, None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Verdict::Rejected("malformed");
    };
    let Ok(json) = hex::decode(body) else {
        return Verdict::Rejected("malformed");
    };
    let signed_ok = match (sig, &peers.key) {
        (Some(sig), Some(key)) => hex::decode(sig)
            .ok()
            .is_some_and(|sig| key.mac(&json).verify_slice(&sig).is_ok()),
        _ => false,
    };
    if !signed_ok && !peers.trusts_address(peer) {
        return Verdict::Rejected(if sig.is_some() && peers.key.is_some() {
            "bad_signature"
        } else {
            "untrusted_sender"
        });
    }
    let Ok(origin) = serde_json::from_slice::<Origin>(&json) else {
        return Verdict::Rejected("malformed");
    };
    let fields = [
        &origin.actor_id,
        &origin.actor_type,
        &origin.tenant,
        &origin.request_id,
    ];
    if fields.iter().any(|f| {
        f.as_deref()
            .is_some_and(|v| audit_core::store::check_id("origin", v).is_err())
    }) {
        return Verdict::Rejected("malformed");
    }
    let age = now.unix_millis().abs_diff(origin.issued_at);
    if signed_ok && u128::from(age) > MAX_AGE.as_millis() {
        return Verdict::Rejected("expired");
    }
    Verdict::Believed(origin)
}

/// The claim header for `origin`, signed with `key` when given.
pub(crate) fn header(origin: &Origin, key: Option<&OriginKey>) -> Option<HeaderValue> {
    let json = serde_json::to_vec(origin).ok()?;
    let mut value = format!("v1.{}", hex::encode(&json));
    if let Some(key) = key {
        value.push('.');
        value.push_str(&hex::encode(key.mac(&json).finalize().into_bytes()));
    }
    HeaderValue::from_str(&value).ok()
}

/// The origin claim of a request: its actor and tenant as the audit context holds them.
pub(crate) fn of(
    actor: Option<&audit_core::Actor>,
    tenant: Option<&Text>,
    request_id: &str,
) -> Origin {
    Origin {
        actor_id: actor.and_then(|a| a.id.as_deref()).map(str::to_owned),
        actor_type: actor.and_then(|a| a.kind.as_deref()).map(str::to_owned),
        tenant: tenant.map(|t| t.to_string()),
        request_id: Some(request_id.to_owned()),
        issued_at: Timestamp::now().unix_millis(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(b: u8) -> OriginKey {
        OriginKey::new(&[b; 32]).unwrap()
    }

    fn claim(issued_at: i64) -> Origin {
        Origin {
            actor_id: Some("u-1".into()),
            actor_type: Some("user".into()),
            tenant: Some("acme".into()),
            request_id: Some("req-1".into()),
            issued_at,
        }
    }

    #[test]
    fn only_signed_or_trusted_claims_are_believed() {
        let now = Timestamp::now();
        let signed = header(&claim(now.unix_millis()), Some(&key(1))).unwrap();
        let unsigned = header(&claim(now.unix_millis()), None).unwrap();
        let by_key = TrustedPeers::signed(key(1));
        let peer: IpAddr = "10.0.0.7".parse().unwrap();
        assert!(matches!(
            verdict(&by_key, signed.as_bytes(), Some(peer), now),
            Verdict::Believed(_)
        ));
        assert_eq!(
            verdict(&TrustedPeers::signed(key(2)), signed.as_bytes(), None, now),
            Verdict::Rejected("bad_signature")
        );
        assert_eq!(
            verdict(&by_key, unsigned.as_bytes(), Some(peer), now),
            Verdict::Rejected("untrusted_sender")
        );
        let by_net = TrustedPeers::networks(vec!["10.0.0.0/8".parse().unwrap()]);
        assert!(matches!(
            verdict(&by_net, unsigned.as_bytes(), Some(peer), now),
            Verdict::Believed(_)
        ));
        assert_eq!(
            verdict(
                &by_net,
                unsigned.as_bytes(),
                Some("192.0.2.1".parse().unwrap()),
                now
            ),
            Verdict::Rejected("untrusted_sender")
        );
        let old = header(&claim(now.unix_millis() - 600_000), Some(&key(1))).unwrap();
        assert_eq!(
            verdict(&by_key, old.as_bytes(), None, now),
            Verdict::Rejected("expired")
        );
        // A signed claim's body cannot be changed.
        let text = signed.to_str().unwrap();
        let mut parts: Vec<String> = text.split('.').map(str::to_owned).collect();
        let json = String::from_utf8(hex::decode(&parts[1]).unwrap()).unwrap();
        parts[1] = hex::encode(json.replace("acme", "evil"));
        assert_eq!(
            verdict(&by_key, parts.join(".").as_bytes(), None, now),
            Verdict::Rejected("bad_signature")
        );
        assert_eq!(
            verdict(&by_key, b"v2.00", None, now),
            Verdict::Rejected("malformed")
        );
        assert!(OriginKey::new(b"short").is_err());
    }
}
