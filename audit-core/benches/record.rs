//! Cost of `Auditor::record` on the caller's thread, for a typical event (~10 fields).
//!
//! ```text
//! cargo bench -p audit-core --bench record
//! ```
//!
//! `record` is compared in the same run with handing the same event to a `std::sync::mpsc`
//! channel (crossbeam's design, what tracing-appender's non-blocking writer uses), the
//! cheapest alternative hand-off to a background thread. Events are built outside the timed
//! region; the worker drains into a sink that discards, so the buffer never fills.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;
use std::time::Duration;

use audit_core::{
    Actor, AuditEvent, Auditor, Batch, HttpFacts, Outcome, OverflowPolicy, Sink, SinkError, Target,
};
use divan::Bencher;

fn main() {
    divan::main();
}

struct Discard;

impl Sink for Discard {
    fn name(&self) -> &str {
        "discard"
    }
    async fn deliver(&mut self, _batch: &Batch) -> Result<(), SinkError> {
        Ok(())
    }
}

fn typical_event() -> AuditEvent {
    AuditEvent::builder("data.index.delete")
        .description("Index deleted")
        .actor(
            Actor::user("user-123")
                .with_email("alice@acme.test")
                .with_role("admin")
                .with_ip_address("192.0.2.10")
                .with_user_agent("Mozilla/5.0 (X11; Linux x86_64)"),
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
        .result(Outcome::Success)
        .build()
        .unwrap()
}

fn auditor() -> &'static Auditor {
    static AUDITOR: OnceLock<Auditor> = OnceLock::new();
    AUDITOR.get_or_init(|| {
        Auditor::builder()
            .buffer_bytes(4 << 30)
            .overflow(OverflowPolicy::DropNewest)
            .sink(Discard)
            .build()
            .unwrap()
    })
}

#[divan::bench(sample_count = 200, sample_size = 1000)]
fn record(bencher: Bencher<'_, '_>) {
    let auditor = auditor();
    let template = typical_event();
    bencher
        .with_inputs(|| template.clone())
        .bench_local_values(|event| auditor.record(event));
    let m = auditor.metrics();
    assert_eq!(m.dropped, 0, "the buffer filled: the figure would be wrong");
}

#[divan::bench(sample_count = 200, sample_size = 1000)]
fn mpsc_send_alternative(bencher: Bencher<'_, '_>) {
    let (tx, rx) = std::sync::mpsc::channel::<AuditEvent>();
    let drain =
        std::thread::spawn(move || while rx.recv_timeout(Duration::from_secs(1)).is_ok() {});
    let template = typical_event();
    bencher
        .with_inputs(|| template.clone())
        .bench_local_values(|event| tx.send(event).is_ok());
    drop(tx);
    drain.join().unwrap();
}

#[divan::bench]
fn build_typical_event() -> AuditEvent {
    typical_event()
}
