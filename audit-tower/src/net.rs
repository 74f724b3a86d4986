//! Client addresses: the peer, and `X-Forwarded-For` / `Forwarded` only through trusted
//! proxies.
//!
//! ```
//! use audit_tower::net::IpNet;
//!
//! let net: IpNet = "10.0.0.0/8".parse().unwrap();
//! assert!(net.contains("10.20.30.40".parse().unwrap()));
//! assert!(!net.contains("192.0.2.1".parse().unwrap()));
//! assert!("not-a-net".parse::<IpNet>().is_err());
//! ```
//!
//! # Trust boundary
//! A forwarding header is written by whoever sent the request, so it is believed only hop by
//! hop: starting from the peer, each address that is a trusted proxy hands over to the
//! address it reports. The client is the first address (from the right) that is not a
//! trusted proxy. With no trusted proxies, the client is the peer and the headers are only
//! recorded, never believed.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use http::HeaderMap;
use sha2::{Digest, Sha256};

/// An IP network in CIDR form (`10.0.0.0/8`, `2001:db8::/32`); a bare address is a /32 or
/// /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// True when `ip` is inside the network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Why a network did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpNetError(String);

impl fmt::Display for IpNetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid IP network {:?}: expected ADDRESS or ADDRESS/PREFIX",
            self.0
        )
    }
}

impl std::error::Error for IpNetError {}

impl FromStr for IpNet {
    type Err = IpNetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || IpNetError(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = canonical(addr.trim().parse::<IpAddr>().map_err(|_| err())?);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(err)?,
            None => max,
        };
        Ok(IpNet { addr, prefix })
    }
}

/// Where a request came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ClientAddr {
    /// The client as far as trusted proxies vouch for it (else the peer).
    pub(crate) client: Option<IpAddr>,
    /// The forwarding chain as sent, left to right, then the peer (recorded, not trusted);
    /// empty when the request carried no forwarding header.
    pub(crate) chain: Vec<String>,
}

/// Resolves the client address of a request from `peer` and its forwarding headers
/// (`None` when it carries neither `Forwarded` nor `X-Forwarded-For`).
pub(crate) fn client_addr(
    forwarding: Option<&HeaderMap>,
    peer: Option<IpAddr>,
    trusted: &[IpNet],
) -> ClientAddr {
    let mut chain: Vec<String> = forwarding.map(forwarded_for).unwrap_or_default();
    let Some(peer) = peer else {
        return ClientAddr {
            client: None,
            chain,
        };
    };
    let hops: Vec<Option<IpAddr>> = chain.iter().map(|h| parse_hop(h)).collect();
    // Without forwarding headers there is no chain to record (and nothing to allocate).
    if !chain.is_empty() {
        chain.push(peer.to_string());
    }
    let mut client = canonical(peer);
    for hop in hops.iter().rev() {
        if !trusted.iter().any(|n| n.contains(client)) {
            break;
        }
        match hop {
            Some(ip) => client = canonical(*ip),
            // An unparseable hop ends what can be believed.
            None => break,
        }
    }
    ClientAddr {
        client: Some(client),
        chain,
    }
}

/// Named once: a lookup by `&str` parses the name on every request.
pub(crate) const X_FORWARDED_FOR: http::HeaderName =
    http::HeaderName::from_static("x-forwarded-for");

/// Most forwarding hops recorded: the ones nearest this service, which are the only ones the
/// trusted-proxy walk can reach. A longer chain keeps its last `MAX_HOPS` entries after a
/// first entry `…[truncated: <n> hops, sha256:<hex>]` (the hash of every header value it
/// came from, joined with `\n`).
pub(crate) const MAX_HOPS: usize = 16;

/// Longest hop recorded as sent: an IPv6 address with brackets and a port is 47 bytes.
const MAX_HOP_BYTES: usize = 64;

/// A hop longer than any address is not an address: it is recorded by its length only.
fn bounded_hop(hop: &str) -> String {
    if hop.len() <= MAX_HOP_BYTES {
        hop.to_owned()
    } else {
        format!("…[not an address: {} bytes]", hop.len())
    }
}

/// Addresses from `Forwarded: for=…` (RFC 7239), else `X-Forwarded-For`, left to right; at
/// most [`MAX_HOPS`] of them (the rightmost) plus a truncation marker. Header values are
/// walked from the right, so a chain of thousands of entries costs no more than its bytes.
fn forwarded_for(headers: &HeaderMap) -> Vec<String> {
    let values = |name| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<&str>>()
    };
    let forwarded = values(http::header::FORWARDED);
    let use_forwarded = forwarded
        .iter()
        .any(|v| v.split(',').any(|e| forwarded_hop(e).is_some()));
    let (raw, hop): (Vec<&str>, HopOf) = if use_forwarded {
        (forwarded, forwarded_hop)
    } else {
        (values(X_FORWARDED_FOR), xff_hop)
    };
    let total = raw
        .iter()
        .flat_map(|v| v.split(','))
        .filter_map(hop)
        .count();
    let mut chain: Vec<String> = raw
        .iter()
        .rev()
        .flat_map(|v| v.rsplit(','))
        .filter_map(hop)
        .take(MAX_HOPS)
        .map(bounded_hop)
        .collect();
    chain.reverse();
    if total > chain.len() {
        let digest = Sha256::digest(raw.join("\n").as_bytes());
        chain.insert(
            0,
            format!("…[truncated: {total} hops, sha256:{}]", hex::encode(digest)),
        );
    }
    chain
}

/// Reads the address out of one comma-separated entry of a forwarding header.
type HopOf = fn(&str) -> Option<&str>;

/// The address of one `Forwarded` element (`for=…`).
fn forwarded_hop(elem: &str) -> Option<&str> {
    elem.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("for")
            .then(|| v.trim().trim_matches('"'))
    })
}

/// One `X-Forwarded-For` entry, when not empty.
fn xff_hop(entry: &str) -> Option<&str> {
    let entry = entry.trim();
    (!entry.is_empty()).then_some(entry)
}

/// `192.0.2.1`, `192.0.2.1:443`, `[2001:db8::1]:443`, `2001:db8::1`.
fn parse_hop(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    s.rsplit_once(':')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn headers_are_believed_only_through_trusted_proxies() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer = Some("10.0.0.5".parse().unwrap());
        let got = client_addr(Some(&xff("203.0.113.9, 10.0.0.7")), peer, &proxies);
        assert_eq!(got.client, Some("203.0.113.9".parse().unwrap()));
        assert_eq!(got.chain, ["203.0.113.9", "10.0.0.7", "10.0.0.5"]);

        // A client forging the header from outside is the client.
        let outside = Some("198.51.100.4".parse().unwrap());
        let got = client_addr(Some(&xff("1.2.3.4")), outside, &proxies);
        assert_eq!(got.client, outside);

        // Without trusted proxies, the header is recorded but not believed.
        let got = client_addr(Some(&xff("1.2.3.4")), peer, &[]);
        assert_eq!(got.client, peer);
        assert_eq!(got.chain, ["1.2.3.4", "10.0.0.5"]);

        // A spoofed hop left of an untrusted one is not reached.
        let got = client_addr(Some(&xff("6.6.6.6, 203.0.113.9")), peer, &proxies);
        assert_eq!(got.client, Some("203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn no_forwarding_headers_means_no_chain() {
        let peer = Some("10.0.0.5".parse().unwrap());
        for headers in [Some(&HeaderMap::new()), None] {
            let got = client_addr(headers, peer, &[]);
            assert_eq!(got.client, peer);
            assert!(got.chain.is_empty());
        }
    }

    #[test]
    fn forwarded_header_and_ports() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::FORWARDED,
            HeaderValue::from_static("for=\"[2001:db8::1]:4711\";proto=https, for=10.0.0.9"),
        );
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let got = client_addr(Some(&h), Some("10.0.0.1".parse().unwrap()), &proxies);
        assert_eq!(got.client, Some("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn long_chains_keep_the_hops_nearest_the_service() {
        let far: Vec<String> = (0..2000)
            .map(|i| format!("198.51.{}.{}", i / 256, i % 256))
            .collect();
        let mut h = HeaderMap::new();
        for _ in 0..3 {
            h.append(
                "x-forwarded-for",
                HeaderValue::from_str(&far.join(", ")).unwrap(),
            );
        }
        h.append("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let got = client_addr(Some(&h), Some("10.0.0.5".parse().unwrap()), &proxies);
        assert_eq!(got.client, Some("203.0.113.9".parse().unwrap()));
        // The marker, the sixteen nearest hops, then the peer.
        assert_eq!(got.chain.len(), MAX_HOPS + 2);
        assert!(
            got.chain[0].starts_with("…[truncated: 6001 hops, sha256:"),
            "{}",
            got.chain[0]
        );
        assert_eq!(got.chain[MAX_HOPS], "203.0.113.9");
        assert_eq!(got.chain[MAX_HOPS + 1], "10.0.0.5");

        // A hop longer than any address is recorded by its length.
        let long = format!("{}, 203.0.113.9", "x".repeat(5000));
        let got = client_addr(
            Some(&xff(&long)),
            Some("10.0.0.5".parse().unwrap()),
            &proxies,
        );
        assert_eq!(got.chain[0], "…[not an address: 5000 bytes]");
    }

    #[test]
    fn networks() {
        let v6: IpNet = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::5".parse().unwrap()));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let one: IpNet = "192.0.2.7".parse().unwrap();
        assert!(one.contains("::ffff:192.0.2.7".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
    }
}
