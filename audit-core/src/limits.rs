//! Bounds on what one event may hold, and the rule that makes every string storable.
//!
//! A client controls much of what an event says: its path, query, user agent, forwarding
//! chain, the bodies and headers an application chooses to capture, the values a handler
//! copies into `details`. The pipeline's worker applies [`Limits`] to every event after
//! redaction and before any sink sees it, so no client can make one event, one file or one
//! store row arbitrarily large, and no string can carry a byte a store refuses.
//!
//! ```
//! use audit_core::{AuditEvent, HttpFacts, Limits};
//!
//! let mut e = AuditEvent::builder("data.index.read")
//!     .http(HttpFacts::default().with_path(format!("/v1/{}", "a".repeat(5000))))
//!     .detail("note", "nul \u{0} inside")
//!     .build()?;
//! Limits::default().apply(&mut e);
//!
//! let path = e.http.as_ref().and_then(|h| h.path.as_deref()).unwrap();
//! assert!(path.len() < 2200);
//! assert!(path.contains("…[truncated: 5004 bytes, sha256:"));
//! assert_eq!(e.details["note"], "nul \u{2400} inside");
//! # Ok::<(), audit_core::Error>(())
//! ```
//!
//! # The rules
//! - **NUL.** U+0000 in any string or key is replaced by U+2400 (`␀`, SYMBOL FOR NULL).
//!   PostgreSQL cannot hold NUL in `text` or `jsonb`, and SQLite's string functions stop at
//!   it; the replacement keeps what the client sent visible and lets every store hold it.
//! - **Field caps.** A string longer than its cap keeps its first bytes (cut at a character
//!   boundary) followed by `…[truncated: <bytes> bytes, sha256:<hex>]`, where the size and
//!   hash are those of the whole value as redaction left it, so a reader can still tell
//!   two long values apart or match one against a copy, and no hash of a secret is kept.
//!   Defaults: user agent 512 bytes, path 2 KiB, query 2 KiB, description 1 KiB, a captured
//!   body held as text 16 KiB, every other string (ids, header values, each `details` string,
//!   each string inside a captured JSON body) 4 KiB. An array or object in
//!   `details` or the headers keeps its first 64 entries and adds an entry
//!   `"…[truncated: <n> entries, sha256:<hex of the whole as JSON>]"` (key `"…"` in
//!   objects).
//! - **Event cap.** An event whose canonical JSON is still larger than
//!   [`Limits::event_bytes`] (64 KiB by default) loses, in turn, its captured response body,
//!   its captured request body, its headers and its `details`, until it fits; then every
//!   string is cut to 256 bytes. What was removed is listed in `details.eventTruncated`
//!   (`originalBytes`, `sha256` of the original JSON, `removed`).
//!
//! The caps are what one unauthenticated request can cost: with the defaults, an event
//! captured by the Tower layer at the metadata level is at most about 8 KiB of JSON however
//! the request was built (the layer also keeps at most 16 forwarding hops of 64 bytes).

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::{AuditEvent, CapturedBody, Text};

/// The replacement for U+0000.
const NUL_SYMBOL: char = '\u{2400}';

/// Entries kept per array or object.
const DEFAULT_ITEMS: usize = 64;

/// Caps applied to every event on the pipeline's worker (see the [module docs](self)).
///
/// ```
/// use audit_core::{Auditor, Limits};
///
/// let auditor = Auditor::builder()
///     .limits(Limits::default().user_agent(256).event_bytes(32 * 1024))
///     .build()?;
/// # drop(auditor);
/// # Ok::<(), audit_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Limits {
    user_agent: usize,
    path: usize,
    query: usize,
    description: usize,
    body: usize,
    text: usize,
    items: usize,
    event_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            user_agent: 512,
            path: 2048,
            query: 2048,
            description: 1024,
            body: 16 * 1024,
            text: 4096,
            items: DEFAULT_ITEMS,
            event_bytes: 64 * 1024,
        }
    }
}

/// Generates the setters; each cap is at least 64 bytes so a marker always fits.
macro_rules! caps {
    ($($(#[$doc:meta])* $name:ident;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, bytes: usize) -> Self {
                self.$name = bytes.max(64);
                self
            }
        )*
    };
}

impl Limits {
    caps! {
        /// Longest `actor.userAgent` kept (default 512 bytes).
        user_agent;
        /// Longest `http.path` kept (default 2 KiB).
        path;
        /// Longest `http.query` kept (default 2 KiB).
        query;
        /// Longest `description` kept (default 1 KiB).
        description;
        /// Longest captured body kept when it is text (default 16 KiB).
        body;
        /// Longest other string kept: ids, header values, each string in `details`
        /// (default 4 KiB).
        text;
    }

    /// Entries kept per array or object in `details` and the headers (default 64, at
    /// least 1).
    pub fn items(mut self, n: usize) -> Self {
        self.items = n.max(1);
        self
    }

    /// Largest canonical JSON of one event (default 64 KiB, at least 4 KiB).
    pub fn event_bytes(mut self, bytes: usize) -> Self {
        self.event_bytes = bytes.max(4096);
        self
    }

    /// The event size cap.
    pub fn max_event_bytes(&self) -> usize {
        self.event_bytes
    }

    /// Applies the rules to `event`; true when anything changed.
    pub fn apply(&self, event: &mut AuditEvent) -> bool {
        self.apply_sized(event).0
    }

    /// [`apply`](Self::apply), also returning the event's
    /// [`approx_size`](AuditEvent::approx_size) afterwards, which the pipeline needs for its
    /// queue bounds and the event cap's check already computed (about 600 instructions per
    /// event saved on the worker, callgrind).
    pub(crate) fn apply_sized(&self, event: &mut AuditEvent) -> (bool, usize) {
        let changed = self.fields(event);
        let size = event.approx_size();
        if self.whole(event, size) {
            return (true, event.approx_size());
        }
        (changed, size)
    }

    fn fields(&self, e: &mut AuditEvent) -> bool {
        let t = self.text;
        let mut changed = opt(&mut e.description, self.description);
        if let Some(a) = &mut e.actor {
            for s in [&mut a.kind, &mut a.id, &mut a.email, &mut a.role] {
                changed |= opt(s, t);
            }
            changed |= opt(&mut a.ip_address, t);
            changed |= opt(&mut a.user_agent, self.user_agent);
            changed |= opt(&mut a.client_id, t);
        }
        if let Some(g) = &mut e.target {
            for s in [&mut g.kind, &mut g.id, &mut g.name] {
                changed |= opt(s, t);
            }
        }
        if let Some(c) = &mut e.context {
            for s in [
                &mut c.request_id,
                &mut c.trace_id,
                &mut c.span_id,
                &mut c.session_id,
                &mut c.organization_id,
                &mut c.service,
            ] {
                changed |= opt(s, t);
            }
        }
        if let Some(h) = &mut e.http {
            changed |= opt(&mut h.method, t);
            changed |= opt(&mut h.route, t);
            changed |= opt(&mut h.path, self.path);
            changed |= opt(&mut h.query, self.query);
            changed |= self.map(&mut h.headers, 0);
            for body in [&mut h.request_body, &mut h.response_body]
                .into_iter()
                .flatten()
            {
                changed |= opt(&mut body.content_type, t);
                match &mut body.content {
                    Some(Value::String(text)) => changed |= string(text, self.body),
                    Some(v) => changed |= self.value(v, 0),
                    None => {}
                }
            }
        }
        if let Some(r) = &mut e.rpc {
            for s in [&mut r.system, &mut r.service, &mut r.method] {
                changed |= opt(s, t);
            }
        }
        changed |= self.map(&mut e.details, 0);
        for f in &mut e.redacted_fields {
            changed |= string(f, t);
        }
        changed
    }

    fn map(&self, m: &mut Map<String, Value>, depth: usize) -> bool {
        let mut changed = false;
        if m.keys().any(|k| needs_fix(k, self.text)) {
            let old = std::mem::take(m);
            for (mut k, v) in old {
                string(&mut k, self.text);
                m.insert(k, v);
            }
            changed = true;
        }
        if m.len() > self.items {
            let whole = hash_value(&Value::Object(m.clone()));
            let total = m.len();
            let cut: Vec<String> = m.keys().skip(self.items - 1).cloned().collect();
            for k in cut {
                m.remove(&k);
            }
            m.insert("…".to_owned(), Value::String(items_marker(total, &whole)));
            changed = true;
        }
        for v in m.values_mut() {
            changed |= self.value(v, depth + 1);
        }
        changed
    }

    fn value(&self, v: &mut Value, depth: usize) -> bool {
        match v {
            Value::String(s) => string(s, self.text),
            Value::Array(items) => {
                let mut changed = false;
                if items.len() > self.items {
                    let whole = hash_value(&Value::Array(items.clone()));
                    let total = items.len();
                    items.truncate(self.items - 1);
                    items.push(Value::String(items_marker(total, &whole)));
                    changed = true;
                }
                // Redaction already replaced anything nested deeper than it walks.
                if depth < 64 {
                    for item in items.iter_mut() {
                        changed |= self.value(item, depth + 1);
                    }
                }
                changed
            }
            Value::Object(m) if depth < 64 => self.map(m, depth),
            _ => false,
        }
    }

    /// The event cap: drops the largest optional parts until the JSON fits. `size` is the
    /// event's `approx_size`.
    fn whole(&self, e: &mut AuditEvent, size: usize) -> bool {
        // Escaping writes at most six bytes per byte of text, and the estimate counts every
        // string's bytes plus more than the JSON's punctuation: below this, it cannot be over.
        if size.saturating_mul(6) <= self.event_bytes {
            return false;
        }
        let mut out = Vec::new();
        if e.write_json(&mut out).is_err() || out.len() <= self.event_bytes {
            return false;
        }
        let original = out.len();
        let sha = hex::encode(Sha256::digest(&out));
        let mut removed: Vec<&'static str> = Vec::new();
        let steps: [Shrink; 4] = [
            ("http.responseBody", |e| {
                if let Some(h) = &mut e.http {
                    h.response_body = h.response_body.take().map(without_content);
                }
            }),
            ("http.requestBody", |e| {
                if let Some(h) = &mut e.http {
                    h.request_body = h.request_body.take().map(without_content);
                }
            }),
            ("http.headers", |e| {
                if let Some(h) = &mut e.http {
                    h.headers.clear();
                }
            }),
            ("details", |e| e.details.clear()),
        ];
        for (name, step) in steps {
            step(e);
            removed.push(name);
            if fits(e, self.event_bytes) {
                break;
            }
        }
        if !fits(e, self.event_bytes) {
            Limits {
                user_agent: 256,
                path: 256,
                query: 256,
                description: 256,
                body: 256,
                text: 256,
                items: 8,
                event_bytes: self.event_bytes,
            }
            .fields(e);
            removed.push("long strings");
        }
        e.details.insert(
            "eventTruncated".to_owned(),
            serde_json::json!({
                "originalBytes": original,
                "sha256": sha,
                "removed": removed,
            }),
        );
        true
    }
}

/// One way to make an event smaller: what it removes, and how.
type Shrink = (&'static str, fn(&mut AuditEvent));

fn fits(e: &AuditEvent, cap: usize) -> bool {
    let mut out = Vec::new();
    // Room for the `eventTruncated` note added afterwards.
    e.write_json(&mut out).is_ok() && out.len() + 256 <= cap
}

fn without_content(mut b: CapturedBody) -> CapturedBody {
    b.content = None;
    b.truncated = true;
    b
}

fn needs_fix(s: &str, cap: usize) -> bool {
    s.len() > cap || crate::swar::has_nul(s.as_bytes())
}

fn opt(s: &mut Option<Text>, cap: usize) -> bool {
    match s {
        Some(t) if needs_fix(t, cap) => {
            let mut owned = t.as_str().to_owned();
            string(&mut owned, cap);
            *t = Text::from(owned);
            true
        }
        _ => false,
    }
}

/// Replaces NUL and cuts `s` to `cap` bytes with the marker; true when it changed.
fn string(s: &mut String, cap: usize) -> bool {
    if !needs_fix(s, cap) {
        return false;
    }
    if crate::swar::has_nul(s.as_bytes()) {
        *s = s.replace('\0', NUL_SYMBOL.encode_utf8(&mut [0; 3]));
    }
    if s.len() > cap {
        let marker = format!(
            "…[truncated: {} bytes, sha256:{}]",
            s.len(),
            hex::encode(Sha256::digest(s.as_bytes()))
        );
        let mut keep = cap.saturating_sub(marker.len());
        while !s.is_char_boundary(keep) {
            keep -= 1;
        }
        s.truncate(keep);
        s.push_str(&marker);
    }
    true
}

fn hash_value(v: &Value) -> String {
    hex::encode(Sha256::digest(v.to_string().as_bytes()))
}

fn items_marker(total: usize, sha: &str) -> String {
    format!("…[truncated: {total} entries, sha256:{sha}]")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Actor, HttpFacts};

    #[test]
    fn nul_is_replaced_everywhere_including_keys() {
        let mut e = AuditEvent::builder("data.index.read")
            .actor(Actor::user("a\0b"))
            .detail("k\0", serde_json::json!({"in\0ner": ["x\0"]}))
            .build()
            .unwrap();
        assert!(Limits::default().apply(&mut e));
        let json = serde_json::to_string(&e).unwrap();
        assert!(!json.contains("\\u0000"), "{json}");
        assert_eq!(e.actor.unwrap().id.unwrap(), "a\u{2400}b");
        assert_eq!(e.details["k\u{2400}"]["in\u{2400}ner"][0], "x\u{2400}");
    }

    #[test]
    fn long_strings_keep_a_prefix_size_and_hash() {
        let ua = "é".repeat(1000); // 2000 bytes, two per char: the cut must respect them
        let mut e = AuditEvent::builder("data.index.read")
            .actor(Actor::user("u").with_user_agent(ua.clone()))
            .build()
            .unwrap();
        Limits::default().apply(&mut e);
        let got = e.actor.unwrap().user_agent.unwrap();
        assert!(got.len() <= 512, "{}", got.len());
        let sha = hex::encode(Sha256::digest(ua.as_bytes()));
        assert!(got.ends_with(&format!("…[truncated: 2000 bytes, sha256:{sha}]")));
        assert!(got.starts_with("éé"));
    }

    #[test]
    fn arrays_and_objects_keep_their_first_entries() {
        let many: Vec<u32> = (0..1000).collect();
        let mut e = AuditEvent::builder("data.index.read")
            .detail("many", many)
            .build()
            .unwrap();
        Limits::default().apply(&mut e);
        let arr = e.details["many"].as_array().unwrap();
        assert_eq!(arr.len(), 64);
        assert_eq!(arr[62], 62);
        assert!(
            arr[63]
                .as_str()
                .unwrap()
                .starts_with("…[truncated: 1000 entries")
        );
    }

    #[test]
    fn an_event_over_the_cap_loses_whole_parts_and_says_so() {
        let mut b = AuditEvent::builder("data.index.read")
            .http(HttpFacts::default().with_header("x-big", "y".repeat(4000)));
        for i in 0..60 {
            b = b.detail(format!("k{i}"), "\u{1}".repeat(4000));
        }
        let mut e = b.build().unwrap();
        let limits = Limits::default();
        assert!(limits.apply(&mut e));
        let mut out = Vec::new();
        e.write_json(&mut out).unwrap();
        assert!(out.len() <= limits.max_event_bytes(), "{}", out.len());
        let note = &e.details["eventTruncated"];
        assert!(note["originalBytes"].as_u64().unwrap() > 64 * 1024);
        assert_eq!(note["sha256"].as_str().unwrap().len(), 64);
        assert_eq!(note["removed"][0], "http.responseBody");
    }

    #[test]
    fn small_events_are_untouched() {
        let mut e = AuditEvent::builder("auth.logout")
            .actor(Actor::user("u"))
            .build()
            .unwrap();
        let before = e.clone();
        assert!(!Limits::default().apply(&mut e));
        assert_eq!(e, before);
    }
}
