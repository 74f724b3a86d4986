//! Redaction cost on the pipeline's worker.
//!
//! ```text
//! cargo bench -p audit-core --bench redact
//! ```
//!
//! - `clean_event`: a typical event of about 500 bytes of JSON with nothing to redact (the
//!   common case). Goal ≤ 300 ns.
//! - `event_with_secrets`: the same event carrying a password, a JWT and a card number.
//! - `clean_text_1mib`: an event whose description is 1 MiB of log-like clean text. Goal
//!   ≥ 1 GB/s. `regex_alternative_1mib` runs, on the same text, the obvious alternative: one
//!   `regex` alternation of equivalent patterns (`is_match` only, no rewriting).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use audit_core::redact::Redactor;
use audit_core::{Actor, AuditEvent, HttpFacts, Outcome, Target};
use divan::{Bencher, counter::BytesCount};
use regex::Regex;

fn main() {
    divan::main();
}

fn typical_event() -> AuditEvent {
    AuditEvent::builder("data.index.delete")
        .description("Index deleted")
        .actor(
            Actor::user("user-123")
                .with_email("alice@acme.test")
                .with_ip_address("192.0.2.10")
                .with_user_agent("curl/8.5.0"),
        )
        .target(Target::new("index", "products"))
        .organization_id("acme")
        .request_id("0193f0c4-7a1b-7c3d-8e4f-0123456789ab")
        .http(
            HttpFacts::default()
                .with_method("DELETE")
                .with_route("/v1/indexes/{name}")
                .with_status_code(204)
                .with_duration_ms(1.7),
        )
        .detail("vectors", 120_000)
        .result(Outcome::Success)
        .build()
        .unwrap()
}

#[divan::bench(sample_count = 1000, sample_size = 64)]
fn clean_event(bencher: Bencher<'_, '_>) {
    let redactor = Redactor::default();
    let event = typical_event();
    let size = serde_json::to_vec(&event).unwrap().len();
    assert!((450..=580).contains(&size), "typical event is {size} bytes");
    bencher
        .with_inputs(|| event.clone())
        .bench_local_refs(|e| assert!(!redactor.redact(e)));
}

#[divan::bench(sample_size = 64)]
fn event_with_secrets(bencher: Bencher<'_, '_>) {
    let redactor = Redactor::default();
    let mut event = typical_event();
    event.details.insert("password".into(), "hunter2".into());
    event.description = Some(
        "retried with eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl, card 4242 4242 4242 4242"
            .into(),
    );
    bencher
        .with_inputs(|| event.clone())
        .bench_local_refs(|e| assert!(redactor.redact(e)));
}

/// Deterministic log-like text: words, numbers, ids, timestamps, paths.
fn clean_text(len: usize) -> String {
    let words = [
        "request",
        "completed",
        "in",
        "ms",
        "user",
        "updated",
        "index",
        "vectors",
        "query",
        "returned",
        "results",
        "for",
        "organization",
        "the",
        "status",
        "ok",
        "retry",
        "after",
        "shard",
        "replica",
        "GET",
        "POST",
        "/v1/indexes/products",
        "Products",
        "region",
        "eu-west-1",
        "2026-11-22T10:30:00.123Z",
        "0193f0c4-7a1b-7c3d-8e4f-0123456789ab",
        "42",
        "1234",
        "Mozilla/5.0",
        "latency",
        "p99",
        "cache",
        "hit",
        "miss",
    ];
    let mut s = String::with_capacity(len + 64);
    let mut x: u32 = 12345;
    while s.len() < len {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        s.push_str(words[(x >> 16) as usize % words.len()]);
        s.push(if x.is_multiple_of(13) { '\n' } else { ' ' });
    }
    s.truncate(len);
    s
}

const MIB: usize = 1 << 20;

#[divan::bench(sample_count = 50)]
fn clean_text_1mib(bencher: Bencher<'_, '_>) {
    let redactor = Redactor::default();
    let event = AuditEvent::builder("data.bulk.import")
        .description(clean_text(MIB))
        .build()
        .unwrap();
    bencher
        .counter(BytesCount::new(MIB))
        .with_inputs(|| event.clone())
        .bench_local_refs(|e| assert!(!redactor.redact(e)));
}

#[divan::bench(sample_count = 20)]
fn regex_alternative_1mib(bencher: Bencher<'_, '_>) {
    let re = Regex::new(concat!(
        r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",
        r"|(?i:bearer)\s+[A-Za-z0-9._~+/-]{16,}",
        r"|(?:AKIA|ASIA)[A-Z0-9]{16}",
        r"|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_\w{22,}",
        r"|xox[abprs]-[A-Za-z0-9-]{10,}",
        r"|[sr]k_(?:live|test)_[A-Za-z0-9]{10,}",
        r"|AIza[A-Za-z0-9_-]{30,}|sk-[A-Za-z0-9_-]{20,}",
        r"|-----BEGIN [A-Z ]*PRIVATE KEY-----",
        r"|[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:[^/\s@]+@",
        r"|\b[2-6]\d{3}(?:[ -]?\d{4}){2}[ -]?\d{1,7}\b",
        r"|(?i:password|passwd|secret|token|api[_-]?key)\s*[:=]",
    ))
    .unwrap();
    let text = clean_text(MIB);
    bencher
        .counter(BytesCount::new(MIB))
        .bench_local(|| re.is_match(&text));
}
