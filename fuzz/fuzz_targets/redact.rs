//! Fuzzes the redactor with arbitrary bytes: as text in every kind of field, as a query
//! string and form body, and (when it parses) as JSON details.
//!
//! Invariants: no panic; the result serialises and reads back; a second pass changes nothing.

#![no_main]

use std::sync::OnceLock;

use audit_core::redact::Redactor;
use audit_core::{Actor, AuditEvent, CapturedBody, HttpFacts};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn redactor() -> &'static Redactor {
    static R: OnceLock<Redactor> = OnceLock::new();
    R.get_or_init(|| {
        Redactor::builder()
            .mask_emails(true)
            .mask_ips(true)
            .pattern("ticket", r"\bTCK-\d{4,}\b")
            .build()
            .expect("valid configuration")
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let mut builder = AuditEvent::builder("data.fuzz.input")
        .description(text.clone())
        .actor(Actor::user("u").with_ip_address(text.clone()).with_user_agent(text.clone()))
        .http(
            HttpFacts::default()
                .with_query(text.clone())
                .with_header("x-fuzz", text.clone())
                .with_request_body(CapturedBody::new(
                    Some("application/x-www-form-urlencoded"),
                    data.len() as u64,
                    Value::String(text.clone()),
                )),
        );
    if let Ok(Value::Object(details)) = serde_json::from_slice::<Value>(data) {
        builder = builder.details(details);
    } else {
        builder = builder.detail("text", text);
    }
    let Ok(mut event) = builder.build() else { return };
    let r = redactor();
    r.redact(&mut event);
    let json = serde_json::to_string(&event).expect("redacted event serialises");
    let back: AuditEvent = serde_json::from_str(&json).expect("and reads back");
    let mut again = back.clone();
    assert!(!r.redact(&mut again), "second pass changed {:?}", again.redacted_fields);
    assert_eq!(again, back);
});
