//! What `audit!` costs a handler, and what the layer costs everything else.
//!
//! ```text
//! cargo bench -p audit-tracing --bench macro
//! ```
//!
//! - `audit_macro`: one `audit!` with a target, a counted detail and a message, inside a
//!   request scope (context filled from it), recorded to a pipeline whose sink discards.
//! - `tracing_info_json`: the same fields as a `tracing::info!` through tracing-subscriber's
//!   JSON formatter into `io::sink` — what a handler pays to log the same facts.
//! - `record_prebuilt`: the pipeline's share, recording a clone of an equivalent built event.
//! - `filtered_out_debug_event` / `logged_info_event`: ordinary events through a registry with
//!   a fmt layer at INFO, without `AuditTracingLayer`, with it unfiltered, and with it behind
//!   [`interest_filter`](audit_tracing::interest_filter): the difference is what the layer
//!   adds to non-audit events.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use audit_core::scope::{self, RequestFacts};
use audit_core::{Actor, Auditor, Batch, Sink, SinkError};
use audit_tracing::{AuditTracingLayer, audit};
use tracing_subscriber::prelude::*;

fn main() {
    divan::main();
}

struct Discard;

impl Sink for Discard {
    fn name(&self) -> &str {
        "discard"
    }
    async fn deliver(&mut self, batch: &Batch) -> Result<(), SinkError> {
        divan::black_box(batch.len());
        Ok(())
    }
}

#[derive(Debug)]
struct Facts {
    auditor: Auditor,
}

impl RequestFacts for Facts {
    fn request_id(&self) -> Option<&str> {
        Some("01a20197-4d3a-77f3-acd9-842c4ec391f9")
    }
    fn trace_id(&self) -> Option<String> {
        Some("4bf92f3577b34da6a3ce929d0e0e4736".into())
    }
    fn span_id(&self) -> Option<String> {
        Some("00f067aa0ba902b7".into())
    }
    fn actor(&self) -> Option<Actor> {
        Some(Actor::user("user-7").with_email("seven@acme.test"))
    }
    fn organization_id(&self) -> Option<String> {
        Some("acme".into())
    }
    fn auditor(&self) -> Option<&Auditor> {
        Some(&self.auditor)
    }
}

#[divan::bench(sample_count = 200, sample_size = 200)]
fn audit_macro(bencher: divan::Bencher<'_, '_>) {
    let auditor = Auditor::builder().sink(Discard).build().unwrap();
    let facts: Arc<dyn RequestFacts> = Arc::new(Facts {
        auditor: auditor.clone(),
    });
    let id = "vec-42";
    scope::sync_scope(facts, || {
        bencher.bench_local(|| {
            audit!(
                event_type = "data.vector.delete",
                target.kind = "vector",
                target.id = %id,
                details.count = 3u32,
                "Deleted vector"
            );
        });
    });
    drop(auditor.shutdown_blocking(std::time::Duration::from_secs(10)));
}

/// The pipeline's share: recording an already-built event of the same shape (a clone of it).
#[divan::bench(sample_count = 200, sample_size = 200)]
fn record_prebuilt(bencher: divan::Bencher<'_, '_>) {
    let auditor = Auditor::builder().sink(Discard).build().unwrap();
    let event = audit_core::AuditEvent::builder("data.vector.delete")
        .request_id("01a20197-4d3a-77f3-acd9-842c4ec391f9")
        .trace_id("4bf92f3577b34da6a3ce929d0e0e4736")
        .span_id("00f067aa0ba902b7")
        .actor(Actor::user("user-7").with_email("seven@acme.test"))
        .organization_id("acme")
        .target(audit_core::Target::new("vector", "vec-42"))
        .detail("count", 3u32)
        .description("Deleted vector")
        .build()
        .unwrap();
    bencher
        .with_inputs(|| event.clone())
        .bench_local_values(|e| auditor.record(e).unwrap());
    drop(auditor.shutdown_blocking(std::time::Duration::from_secs(10)));
}

#[divan::bench(sample_count = 200, sample_size = 200)]
fn tracing_info_json(bencher: divan::Bencher<'_, '_>) {
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::sink),
    );
    let id = "vec-42";
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!(
            "request",
            request_id = "01a20197-4d3a-77f3-acd9-842c4ec391f9"
        );
        let _g = span.enter();
        bencher.bench_local(|| {
            tracing::info!(
                event_type = "data.vector.delete",
                target.kind = "vector",
                target.id = %id,
                details.count = 3u32,
                "Deleted vector"
            );
        });
    });
}

#[derive(Clone, Copy, PartialEq)]
enum Audit {
    Without,
    Unfiltered,
    Filtered,
}

/// A `debug!` (below the fmt layer's INFO filter) or an `info!` (logged to `io::sink`).
fn run<S>(bencher: divan::Bencher<'_, '_>, subscriber: S, logged: bool)
where
    S: tracing::Subscriber + Send + Sync + 'static,
{
    tracing::subscriber::with_default(subscriber, || {
        if logged {
            bencher.bench_local(|| tracing::info!(rows = 3u32, "cache miss"));
        } else {
            bencher.bench_local(|| tracing::debug!(rows = 3u32, "cache miss"));
        }
    });
}

fn plain(bencher: divan::Bencher<'_, '_>, audit: Audit, logged: bool) {
    let auditor = Auditor::builder().sink(Discard).build().unwrap();
    let fmt = || {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::sink)
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
    };
    match audit {
        Audit::Without => run(bencher, tracing_subscriber::registry().with(fmt()), logged),
        Audit::Unfiltered => run(
            bencher,
            tracing_subscriber::registry()
                .with(fmt())
                .with(AuditTracingLayer::new(auditor)),
            logged,
        ),
        Audit::Filtered => run(
            bencher,
            tracing_subscriber::registry().with(fmt()).with(
                AuditTracingLayer::new(auditor).with_filter(audit_tracing::interest_filter()),
            ),
            logged,
        ),
    }
}

#[divan::bench(sample_count = 200, sample_size = 1000, args = ["without", "unfiltered", "filtered"])]
fn filtered_out_debug_event(bencher: divan::Bencher<'_, '_>, layer: &str) {
    plain(bencher, mode(layer), false);
}

#[divan::bench(sample_count = 200, sample_size = 200, args = ["without", "unfiltered", "filtered"])]
fn logged_info_event(bencher: divan::Bencher<'_, '_>, layer: &str) {
    plain(bencher, mode(layer), true);
}

fn mode(name: &str) -> Audit {
    match name {
        "unfiltered" => Audit::Unfiltered,
        "filtered" => Audit::Filtered,
        _ => Audit::Without,
    }
}
