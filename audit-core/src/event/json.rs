//! The canonical JSON form of an event, written directly: the same bytes `serde_json` writes
//! through [`AuditEvent`]'s `Serialize`, without serde's per-field machinery. Sinks encode
//! every event they deliver, so this is on the pipeline's hottest path; the parts that are
//! rare or free-form (details, headers, captured bodies) still go through `serde_json`.
//!
//! ```
//! use audit_core::AuditEvent;
//!
//! let event = AuditEvent::builder("auth.login.success").build().unwrap();
//! let mut out = Vec::new();
//! event.write_json(&mut out).unwrap();
//! assert_eq!(out, serde_json::to_vec(&event).unwrap());
//! ```

use serde::Serialize;

use super::{Actor, AuditEvent, Context, HttpFacts, Integrity, RpcFacts, Target};
use crate::swar::{ONES, half_word_at, has_byte_below, has_zero_byte, word_at};

/// Appends `event` as compact JSON to `out`. On error, `out` may hold part of the event
/// (callers truncate; there is no failing case for today's types).
pub(super) fn write_event(event: &AuditEvent, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    out.extend_from_slice(b"{\"id\":");
    id(event, out)?;
    out.extend_from_slice(b",\"timestamp\":\"");
    out.extend_from_slice(&event.timestamp.format());
    out.extend_from_slice(b"\",\"eventType\":");
    string(out, event.event_type.as_str())?;
    out.extend_from_slice(b",\"category\":\"");
    out.extend_from_slice(event.category.as_str().as_bytes());
    out.extend_from_slice(b"\",\"severity\":\"");
    out.extend_from_slice(event.severity.as_str().as_bytes());
    out.push(b'"');
    let mut o = Object::open_after_first(out);
    o.opt_str("description", event.description.as_deref())?;
    if let Some(a) = &event.actor {
        o.key("actor");
        actor(a, o.out)?;
    }
    if let Some(t) = &event.target {
        o.key("target");
        target(t, o.out)?;
    }
    if let Some(c) = &event.context {
        o.key("context");
        context(c, o.out)?;
    }
    if let Some(h) = &event.http {
        o.key("http");
        http(h, o.out)?;
    }
    if let Some(r) = &event.rpc {
        o.key("rpc");
        rpc(r, o.out)?;
    }
    if !event.details.is_empty() {
        o.serde("details", &event.details)?;
    }
    if let Some(r) = event.result {
        o.key("result");
        o.out.push(b'"');
        o.out.extend_from_slice(r.as_str().as_bytes());
        o.out.push(b'"');
    }
    if !event.redacted_fields.is_empty() {
        o.serde("redactedFields", &event.redacted_fields)?;
    }
    if let Some(i) = &event.integrity {
        o.key("integrity");
        integrity(i, o.out)?;
    }
    o.close();
    Ok(())
}

fn id(event: &AuditEvent, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    event.id.with_str(|s| string(out, s))
}

fn actor(a: &Actor, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    let mut o = Object::open(out);
    o.opt_str("type", a.kind.as_deref())?;
    o.opt_str("id", a.id.as_deref())?;
    o.opt_str("email", a.email.as_deref())?;
    o.opt_str("role", a.role.as_deref())?;
    o.opt_str("ipAddress", a.ip_address.as_deref())?;
    o.opt_str("userAgent", a.user_agent.as_deref())?;
    o.opt_str("clientId", a.client_id.as_deref())?;
    o.close();
    Ok(())
}

fn target(t: &Target, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    let mut o = Object::open(out);
    o.opt_str("type", t.kind.as_deref())?;
    o.opt_str("id", t.id.as_deref())?;
    o.opt_str("name", t.name.as_deref())?;
    o.close();
    Ok(())
}

fn context(c: &Context, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    let mut o = Object::open(out);
    o.opt_str("requestId", c.request_id.as_deref())?;
    o.opt_str("traceId", c.trace_id.as_deref())?;
    o.opt_str("spanId", c.span_id.as_deref())?;
    o.opt_str("sessionId", c.session_id.as_deref())?;
    o.opt_str("organizationId", c.organization_id.as_deref())?;
    o.opt_str("service", c.service.as_deref())?;
    o.close();
    Ok(())
}

fn http(h: &HttpFacts, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    let mut o = Object::open(out);
    o.opt_str("method", h.method.as_deref())?;
    o.opt_str("route", h.route.as_deref())?;
    o.opt_str("path", h.path.as_deref())?;
    if let Some(code) = h.status_code {
        o.key("statusCode");
        number(o.out, u64::from(code));
    }
    if let Some(ms) = &h.duration_ms {
        o.serde("durationMs", ms)?;
    }
    o.opt_str("query", h.query.as_deref())?;
    if !h.headers.is_empty() {
        o.serde("headers", &h.headers)?;
    }
    if let Some(b) = &h.request_body {
        o.serde("requestBody", b)?;
    }
    if let Some(b) = &h.response_body {
        o.serde("responseBody", b)?;
    }
    o.close();
    Ok(())
}

fn rpc(r: &RpcFacts, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    let mut o = Object::open(out);
    o.opt_str("system", r.system.as_deref())?;
    o.opt_str("service", r.service.as_deref())?;
    o.opt_str("method", r.method.as_deref())?;
    if let Some(code) = r.grpc_status_code {
        o.serde("grpcStatusCode", &code)?;
    }
    if let Some(n) = r.request_messages {
        o.key("requestMessages");
        number(o.out, n);
    }
    if let Some(n) = r.response_messages {
        o.key("responseMessages");
        number(o.out, n);
    }
    o.close();
    Ok(())
}

fn integrity(i: &Integrity, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    let mut o = Object::open(out);
    o.key("stream");
    string(o.out, &i.stream)?;
    o.key("seq");
    number(o.out, i.seq);
    o.opt_str("prevHash", i.prev_hash.as_deref())?;
    o.opt_str("hash", i.hash.as_deref())?;
    o.close();
    Ok(())
}

/// An object being written: the separator before each key, the brace at the end.
struct Object<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Object<'a> {
    fn open(out: &'a mut Vec<u8>) -> Object<'a> {
        out.push(b'{');
        Object { out, first: true }
    }

    /// Continues an object whose brace and first member are already written.
    fn open_after_first(out: &'a mut Vec<u8>) -> Object<'a> {
        Object { out, first: false }
    }

    /// `"key":`, after a comma unless it is the first member. Keys are plain ASCII here.
    fn key(&mut self, key: &'static str) {
        if !std::mem::take(&mut self.first) {
            self.out.push(b',');
        }
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn opt_str(&mut self, key: &'static str, value: Option<&str>) -> Result<(), serde_json::Error> {
        if let Some(v) = value {
            self.key(key);
            string(self.out, v)?;
        }
        Ok(())
    }

    fn serde(
        &mut self,
        key: &'static str,
        value: &impl Serialize,
    ) -> Result<(), serde_json::Error> {
        self.key(key);
        serde_json::to_writer(&mut *self.out, value)
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

/// A JSON string. Text with nothing to escape (the usual case) is copied as is; anything else
/// is escaped by `serde_json`, so both writers always agree.
fn string(out: &mut Vec<u8>, s: &str) -> Result<(), serde_json::Error> {
    if is_plain(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(out, s)
    }
}

/// Nothing to escape: no control character, quote or backslash. Checked eight bytes at a
/// time in a register (the strings of an event are mostly short: ids, paths, names), with
/// overlapping loads for the tail and for strings under eight bytes, so no byte is looked at
/// on its own.
fn is_plain(s: &[u8]) -> bool {
    let n = s.len();
    let mut found = 0;
    if n >= 8 {
        let mut at = 0;
        while at + 8 <= n {
            found |= escapes(word_at(s, at));
            at += 8;
        }
        if at < n {
            found |= escapes(word_at(s, n - 8));
        }
    } else if n >= 4 {
        found = escapes(u64::from(half_word_at(s, 0)) | u64::from(half_word_at(s, n - 4)) << 32);
    } else if n > 0 {
        // The first, middle and last byte cover one to three; plain padding fills the rest.
        let padding = (ONES * u64::from(b'a')) << 24;
        let w = u64::from(s[0]) | u64::from(s[n / 2]) << 8 | u64::from(s[n - 1]) << 16;
        found = escapes(w | padding);
    }
    found == 0
}

/// Non-zero when a byte of `w` is below 0x20, `"` or `\`.
fn escapes(w: u64) -> u64 {
    has_byte_below(w, 0x20)
        | has_zero_byte(w ^ (ONES * u64::from(b'"')))
        | has_zero_byte(w ^ (ONES * u64::from(b'\\')))
}

fn number(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::super::{CapturedBody, Category, Outcome, Severity, Text, Timestamp};
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn both(event: &AuditEvent) -> (String, String) {
        let mut ours = Vec::new();
        write_event(event, &mut ours).unwrap();
        (
            String::from_utf8(ours).unwrap(),
            serde_json::to_string(event).unwrap(),
        )
    }

    #[test]
    fn a_full_event_matches_serde_byte_for_byte() {
        let mut e = AuditEvent::builder("data.document.update")
            .category(Category::Data)
            .severity(Severity::Warning)
            .description("edited \"the\" plan\n\u{7}")
            .actor(Actor::user("u-1").with_email("a@example.com"))
            .target(Target::new("document", "doc-9"))
            .detail("fields", json!(["title", {"n": 1.5, "nested": null}]))
            .result(Outcome::Failure)
            .build()
            .unwrap();
        let http = e.http.insert(HttpFacts::default());
        http.method = Some("PUT".into());
        http.status_code = Some(409);
        http.duration_ms = Some(12.345);
        http.query = Some("a=1&b=\u{0}".into());
        http.headers.insert("x-h".into(), json!("v"));
        http.request_body = Some(CapturedBody::new(
            Some("application/json"),
            7,
            json!({"a": 1}),
        ));
        e.context = Some(Context::default().with_request_id("r\\1"));
        e.redacted_fields = vec!["details.password".into()];
        e.integrity = Some(Integrity::new("svc-1", u64::MAX));
        let (ours, serde) = both(&e);
        assert_eq!(ours, serde);
        let minimal = AuditEvent::builder("auth.logout").build().unwrap();
        let (ours, serde) = both(&minimal);
        assert_eq!(ours, serde);
    }

    #[test]
    fn plain_text_is_recognised_in_every_position() {
        let base = "a".repeat(40);
        assert!(is_plain(base.as_bytes()));
        for i in 0..40 {
            for bad in [b'"', b'\\', b'\n', 0u8, 0x1f] {
                let mut b = base.clone().into_bytes();
                b[i] = bad;
                assert!(!is_plain(&b), "{bad} at {i}");
            }
        }
        assert!(is_plain("é ü \u{7f} ~".as_bytes()));
        assert!(is_plain(b""));
        // Every byte value in every position of a word and of the tail, against the plain
        // definition, on backgrounds that sit next to the special bytes.
        for background in [b'a', 0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xff] {
            for len in 0..=25 {
                for i in 0..len {
                    for v in 0..=255u8 {
                        let mut b = vec![background; len];
                        b[i] = v;
                        let expected = !b.iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\');
                        assert_eq!(
                            is_plain(&b),
                            expected,
                            "{v:#x} at {i} of {len} on {background:#x}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn numbers() {
        for n in [0, 7, 10, 99, 100, 65_535, u64::MAX] {
            let mut out = Vec::new();
            number(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
    }

    fn opt_text() -> impl Strategy<Value = Option<Text>> {
        prop::option::of(
            prop_oneof![
                "[a-z0-9./-]{0,12}",
                any::<String>(),
                Just("\"\\\u{1f}\u{7f}é".to_owned())
            ]
            .prop_map(Text::from),
        )
    }

    proptest! {
        #[test]
        fn any_event_matches_serde(
            description in opt_text(),
            kind in opt_text(),
            actor_id in opt_text(),
            ip in opt_text(),
            target_id in opt_text(),
            request_id in opt_text(),
            org in opt_text(),
            path in opt_text(),
            status in prop::option::of(any::<u16>()),
            ms in prop::option::of(any::<f64>()),
            detail in opt_text(),
            seq in any::<u64>(),
            millis in 0i64..4_102_444_800_000,
            with_result in any::<bool>(),
            method in opt_text(),
            grpc in prop::option::of(any::<i32>()),
            messages in prop::option::of(any::<u64>()),
        ) {
            let mut e = AuditEvent::builder("data.thing.read").build().unwrap();
            e.timestamp = Timestamp::from_unix_millis(millis).unwrap();
            e.description = description;
            let actor = Actor {
                kind,
                id: actor_id,
                ip_address: ip,
                ..Actor::default()
            };
            e.actor = Some(actor);
            e.target = target_id.map(|id| Target::new("thing", &id));
            let cx = Context {
                request_id,
                organization_id: org,
                ..Context::default()
            };
            e.context = Some(cx);
            let h = HttpFacts {
                path,
                status_code: status,
                duration_ms: ms,
                ..HttpFacts::default()
            };
            e.http = Some(h);
            if method.is_some() || grpc.is_some() {
                let mut r = RpcFacts::grpc("demo.v1.Greeter", "x");
                r.method = method;
                r.grpc_status_code = grpc;
                r.response_messages = messages;
                e.rpc = Some(Box::new(r));
            }
            if let Some(d) = detail {
                e.details.insert(d.to_string(), json!(d.as_str()));
            }
            e.result = with_result.then_some(Outcome::Success);
            e.integrity = Some(Integrity::new("s", seq));
            let (ours, serde) = both(&e);
            prop_assert_eq!(ours, serde);
        }
    }
}
