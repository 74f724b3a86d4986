//! End-to-end throughput: events recorded on one thread until they are written by the
//! JSONL file sink (one pipeline worker), against a sink that discards as the ceiling, and
//! the JSON-lines encoding alone.
//!
//! ```text
//! cargo bench -p audit-sinks --bench pipeline
//! ```
//!
//! Each timed iteration records 100,000 events and calls `shutdown`, so the figure includes
//! batching, encoding, the writes and the final fsync. Auditor and file are set up outside
//! the timed region. The burst arrives far faster than a file can take it, so the buffer and
//! the sink's queue are sized to hold it: the figure is a delivery rate with nothing dropped
//! (the run fails if anything is).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use audit_core::{
    Actor, AuditEvent, Auditor, AuditorBuilder, Batch, HttpFacts, Outcome, OverflowPolicy, Sink,
    SinkError, SinkOptions,
};
use audit_sinks::format::jsonl;
use audit_sinks::{FileSink, FsyncPolicy};
use divan::{Bencher, counter::ItemsCount};

const EVENTS: usize = 100_000;

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

fn event(i: usize) -> AuditEvent {
    AuditEvent::builder("data.vector.update")
        .actor(
            Actor::user(format!("user-{}", i % 50))
                .with_email("member@acme.test")
                .with_ip_address("198.51.100.7"),
        )
        .organization_id("acme")
        .request_id("0193f0c4-7a1b-7c3d-8e4f-0123456789ab")
        .http(
            HttpFacts::default()
                .with_method("PUT")
                .with_route("/v1/indexes/{name}/vectors/{id}")
                .with_status_code(200)
                .with_duration_ms(0.8),
        )
        .detail("dimensions", 768)
        .result(Outcome::Success)
        .build()
        .unwrap()
}

fn run(auditor: &Auditor, events: Vec<AuditEvent>) {
    for e in events {
        auditor.record(e).unwrap();
    }
    let report = auditor.shutdown_blocking(Duration::from_secs(120));
    assert!(report.complete && report.undelivered() == 0, "{report}");
}

fn blocking() -> OverflowPolicy {
    OverflowPolicy::Block {
        timeout: Duration::from_secs(10),
    }
}

/// Room for the whole burst, so the rate is measured without loss.
fn roomy() -> SinkOptions {
    SinkOptions::new().queue_bytes(1 << 30)
}

/// The file sink with its default fsync policy: the figure includes the final fsync of
/// everything the iteration wrote, so it is bounded by the disk.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn end_to_end_file(bencher: Bencher<'_, '_>) {
    file_bench(bencher, FsyncPolicy::default());
}

/// The same with fsync off: lines reach the page cache (they survive a killed process, not a
/// power cut). This is the ceiling of the code, not of the disk.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn end_to_end_file_no_fsync(bencher: Bencher<'_, '_>) {
    file_bench(bencher, FsyncPolicy::Never);
}

/// The same without the hash chain: what hashing each event costs the worker.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn end_to_end_file_no_fsync_unchained(bencher: Bencher<'_, '_>) {
    file_bench_with(bencher, FsyncPolicy::Never, false);
}

fn file_bench(bencher: Bencher<'_, '_>, fsync: FsyncPolicy) {
    file_bench_with(bencher, fsync, true);
}

fn file_bench_with(bencher: Bencher<'_, '_>, fsync: FsyncPolicy, chained: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    bencher
        .counter(ItemsCount::new(EVENTS))
        .with_inputs(|| {
            n += 1;
            let sink = FileSink::builder(dir.path().join(format!("bench-{n}.jsonl")))
                .fsync(fsync)
                .build()
                .unwrap();
            let auditor = Auditor::builder()
                .hash_chain(chained)
                .overflow(blocking())
                .sink_with(sink, roomy())
                .build()
                .unwrap();
            (auditor, (0..EVENTS).map(event).collect::<Vec<_>>())
        })
        .bench_local_values(|(auditor, events)| run(&auditor, events));
}

/// Records a burst into an auditor that `configure` sets up around the discarding sink.
fn discard_bench(
    bencher: Bencher<'_, '_>,
    configure: impl Fn(usize, AuditorBuilder) -> AuditorBuilder,
) {
    let mut n = 0;
    bencher
        .counter(ItemsCount::new(EVENTS))
        .with_inputs(|| {
            n += 1;
            let builder = Auditor::builder()
                .overflow(blocking())
                .sink_with(Discard, roomy());
            let auditor = configure(n, builder).build().unwrap();
            (auditor, (0..EVENTS).map(event).collect::<Vec<_>>())
        })
        .bench_local_values(|(auditor, events)| run(&auditor, events));
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn end_to_end_discard(bencher: Bencher<'_, '_>) {
    discard_bench(bencher, |_, b| b);
}

/// The discarding sink behind the durable spool: every event written to a segment and
/// synced (group commit) before the shutdown completes.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn end_to_end_discard_spooled(bencher: Bencher<'_, '_>) {
    let dir = tempfile::tempdir().unwrap();
    discard_bench(bencher, |n, b| {
        b.spool(audit_core::SpoolOptions::new(
            dir.path().join(format!("spool-{n}")),
        ))
    });
}

/// The discarding sink without the hash chain.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn end_to_end_discard_unchained(bencher: Bencher<'_, '_>) {
    discard_bench(bencher, |_, b| b.hash_chain(false));
}

#[divan::bench]
fn encode_jsonl_one_event(bencher: Bencher<'_, '_>) {
    let e = event(1);
    let mut buf = Vec::with_capacity(1024);
    bencher.counter(ItemsCount::new(1usize)).bench_local(|| {
        buf.clear();
        jsonl::write_event(&mut buf, &e).unwrap();
        buf.len()
    });
}
