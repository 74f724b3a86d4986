//! W3C trace context: read through the application's OpenTelemetry propagator when one is
//! installed, otherwise parsed and validated here, so correlation works with zero setup.
//!
//! ```
//! use audit_tower::trace_context::TraceContext;
//!
//! let tc = TraceContext::parse_traceparent(
//!     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
//! )
//! .unwrap();
//! assert_eq!(tc.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
//! assert_eq!(tc.parent_span_id(), Some("00f067aa0ba902b7"));
//! assert!(TraceContext::parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none());
//! ```
//!
//! Each request gets its own span id (the inbound one is its parent), which is what the event
//! records as `context.spanId` and what the client layer sends on as the next parent.

use http::HeaderMap;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TraceContextExt;

/// The trace a request belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: String,
    span_id: String,
    parent_span_id: Option<String>,
    sampled: bool,
}

impl TraceContext {
    /// Parses a `traceparent` header value (version 00, or a later version's first four
    /// fields). Ids of all zeros, version `ff`, and anything not lowercase hex are refused.
    pub fn parse_traceparent(value: &str) -> Option<TraceContext> {
        let b = value.as_bytes();
        let hex = |r: std::ops::Range<usize>| {
            b.get(r.clone())
                .filter(|s| s.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')))
                .map(|_| &value[r])
        };
        let version = hex(0..2)?;
        let ok_len = if version == "00" {
            b.len() == 55
        } else {
            b.len() == 55 || (b.len() > 55 && b[55] == b'-')
        };
        if version == "ff" || !ok_len || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let (trace, parent, flags) = (hex(3..35)?, hex(36..52)?, hex(53..55)?);
        if trace.bytes().all(|c| c == b'0') || parent.bytes().all(|c| c == b'0') {
            return None;
        }
        let sampled = u8::from_str_radix(flags, 16).ok()? & 1 == 1;
        Some(TraceContext {
            trace_id: trace.to_owned(),
            span_id: new_span_id(),
            parent_span_id: Some(parent.to_owned()),
            sampled,
        })
    }

    /// A new trace (no inbound context): random trace and span ids, sampled.
    pub fn new_root() -> TraceContext {
        let mut trace_id = String::with_capacity(32);
        push_hex(&mut trace_id, fastrand_u64());
        push_hex(&mut trace_id, fastrand_u64());
        TraceContext {
            trace_id,
            span_id: new_span_id(),
            parent_span_id: None,
            sampled: true,
        }
    }

    /// Adopts the ids of the span an OpenTelemetry SDK started for this request, so the
    /// event, outgoing `traceparent`s and the exported span agree.
    #[cfg(feature = "otel")]
    pub(crate) fn adopt(&mut self, trace_id: String, span_id: String) {
        self.trace_id = trace_id;
        self.span_id = span_id;
    }

    /// Whether the caller sampled this trace.
    pub fn is_sampled(&self) -> bool {
        self.sampled
    }

    /// 32 lowercase hex digits.
    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// This request's span id, 16 lowercase hex digits.
    pub fn span_id(&self) -> &str {
        &self.span_id
    }

    /// The caller's span id, when the request arrived with one.
    pub fn parent_span_id(&self) -> Option<&str> {
        self.parent_span_id.as_deref()
    }

    /// The `traceparent` value that continues this trace from this request's span.
    pub fn to_traceparent(&self) -> String {
        format!(
            "00-{}-{}-{}",
            self.trace_id,
            self.span_id,
            if self.sampled { "01" } else { "00" }
        )
    }

    /// The trace context of an inbound request: through the global OpenTelemetry propagator
    /// when it yields a valid context, else from `traceparent`, else a new root.
    pub fn from_headers(headers: &HeaderMap) -> TraceContext {
        let cx = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&HeaderExtractor(headers))
        });
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            return TraceContext {
                trace_id: sc.trace_id().to_string(),
                span_id: new_span_id(),
                parent_span_id: Some(sc.span_id().to_string()),
                sampled: sc.is_sampled(),
            };
        }
        headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(TraceContext::parse_traceparent)
            .unwrap_or_else(TraceContext::new_root)
    }
}

/// A random non-zero id (all zeros is invalid in W3C trace context).
fn fastrand_u64() -> u64 {
    fastrand::u64(1..)
}

fn new_span_id() -> String {
    let mut s = String::with_capacity(16);
    push_hex(&mut s, fastrand_u64());
    s
}

/// 16 lowercase hex digits, without the formatting machinery (this runs per request).
fn push_hex(out: &mut String, v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..16).rev() {
        out.push(char::from(DIGITS[((v >> (shift * 4)) & 0xf) as usize]));
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_validation() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let tc = TraceContext::parse_traceparent(good).unwrap();
        assert_ne!(tc.span_id(), "00f067aa0ba902b7", "a span of our own");
        assert_eq!(tc.span_id().len(), 16);
        assert!(
            tc.to_traceparent()
                .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")
        );
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(TraceContext::parse_traceparent(bad).is_none(), "{bad:?}");
        }
        // Later versions may append fields.
        assert!(
            TraceContext::parse_traceparent(
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future"
            )
            .is_some()
        );
    }

    #[test]
    fn hex_matches_the_formatter() {
        for v in [0, 1, 0xdead_beef, u64::MAX, 0x0123_4567_89ab_cdef] {
            let mut s = String::new();
            push_hex(&mut s, v);
            assert_eq!(s, format!("{v:016x}"));
        }
    }

    #[test]
    fn without_inbound_context_a_new_trace_starts() {
        let tc = TraceContext::from_headers(&HeaderMap::new());
        assert_eq!(tc.trace_id().len(), 32);
        assert!(tc.parent_span_id().is_none());
        assert!(TraceContext::parse_traceparent(&tc.to_traceparent()).is_some());
    }
}
