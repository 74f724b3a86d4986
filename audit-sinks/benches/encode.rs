//! Encoding cost per event for each wire format (no network): what a sink spends before
//! the first byte leaves.
//!
//! ```text
//! cargo bench -p audit-sinks --bench encode
//! ```
#![allow(clippy::unwrap_used, missing_docs)]

use audit_core::{Actor, AuditEvent, HttpFacts, Outcome, Target};
use audit_sinks::format::{cef::Cef, ecs, ocsf::Ocsf};

fn main() {
    divan::main();
}

fn event() -> AuditEvent {
    AuditEvent::builder("data.vector.delete")
        .description("Deleted vector from index")
        .actor(
            Actor::user("user-123")
                .with_email("alice@acme.test")
                .with_role("admin")
                .with_ip_address("203.0.113.7")
                .with_user_agent("Mozilla/5.0 (X11; Linux x86_64)"),
        )
        .target(Target::new("vector", "vec-42"))
        .organization_id("acme")
        .request_id("01a20197-4d3a-77f3-acd9-842c4ec391f9")
        .trace_id("4bf92f3577b34da6a3ce929d0e0e4736")
        .span_id("00f067aa0ba902b7")
        .service("vector-api")
        .http(
            HttpFacts::default()
                .with_status_code(204)
                .with_duration_ms(3.2),
        )
        .detail("index", "products")
        .detail("count", 1)
        .result(Outcome::Success)
        .build()
        .unwrap()
}

/// The native form as sinks write it: `AuditEvent::write_json` into a reused buffer.
#[divan::bench]
fn jsonl(b: divan::Bencher<'_, '_>) {
    let e = event();
    let mut out = Vec::with_capacity(4096);
    b.bench_local(|| {
        out.clear();
        divan::black_box(&e).write_json(&mut out).unwrap();
    });
}

/// The same bytes through serde's derive, into a reused buffer, for comparison.
#[divan::bench]
fn jsonl_serde(b: divan::Bencher<'_, '_>) {
    let e = event();
    let mut out = Vec::with_capacity(4096);
    b.bench_local(|| {
        out.clear();
        serde_json::to_writer(&mut out, divan::black_box(&e)).unwrap();
    });
}

#[divan::bench]
fn ocsf(b: divan::Bencher<'_, '_>) {
    let (e, enc) = (event(), Ocsf::default());
    b.bench_local(|| serde_json::to_vec(&enc.encode(divan::black_box(&e))).unwrap());
}

#[divan::bench]
fn ecs(b: divan::Bencher<'_, '_>) {
    let e = event();
    b.bench_local(|| serde_json::to_vec(&ecs::encode(divan::black_box(&e))).unwrap());
}

#[divan::bench]
fn cef(b: divan::Bencher<'_, '_>) {
    let (e, enc) = (event(), Cef::default());
    b.bench_local(|| enc.encode(divan::black_box(&e)));
}
