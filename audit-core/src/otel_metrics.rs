//! The pipeline's counters as OpenTelemetry metrics (feature `otel-metrics`).
//!
//! [`register`] adds observable instruments to a [`Meter`] of the application's
//! `MeterProvider`; they read [`Auditor::metrics`] when the provider collects, so nothing is
//! added to the path of an event. Per sink (attribute `audit.sink`):
//!
//! | instrument | kind | what |
//! |---|---|---|
//! | `audit.sink.delivered` | counter | events delivered |
//! | `audit.sink.dropped` | counter | events dropped at the sink's full queue |
//! | `audit.sink.failed` | counter | events given up (refused, or retries exhausted) |
//! | `audit.sink.retries` | counter | retried deliveries |
//! | `audit.sink.pending` | gauge | events queued or being delivered |
//! | `audit.sink.healthy` | gauge | 1 while the last delivery succeeded, else 0 |
//! | `audit.sink.stalled` | gauge | 1 while a delivery hangs past `stall_after`, else 0 |
//!
//! For the auditor: `audit.events.recorded`, `audit.events.dropped` (lost at the full
//! buffer), `audit.events.rejected` (recorded after shutdown) as counters;
//! `audit.buffer.events` and `audit.buffer.bytes` as gauges; `audit.ready` (1 when
//! [`Auditor::readiness`] is ready). A sink's last error is text and stays in
//! [`Auditor::metrics`] and the pipeline's `system.sink.unhealthy` events.
//!
//! ```
//! use audit_core::Auditor;
//!
//! let auditor = Auditor::builder().build()?;
//! let meter = opentelemetry::global::meter("audit");
//! audit_core::otel_metrics::register(&auditor, &meter);
//! # Ok::<(), audit_core::Error>(())
//! ```

use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrument, Meter};

use crate::pipeline::{Auditor, SinkMetrics};

/// Registers the auditor's instruments on `meter`. They hold a handle to the auditor and
/// report for as long as the meter's provider collects; register each auditor once.
pub fn register(auditor: &Auditor, meter: &Meter) {
    type Total = fn(&crate::pipeline::Metrics) -> u64;
    let totals: [(&'static str, &'static str, Total); 3] = [
        ("audit.events.recorded", "events accepted by record", |m| {
            m.recorded
        }),
        (
            "audit.events.dropped",
            "events lost at the full buffer",
            |m| m.dropped,
        ),
        (
            "audit.events.rejected",
            "events recorded after shutdown",
            |m| m.rejected,
        ),
    ];
    for (name, description, read) in totals {
        let a = auditor.clone();
        meter
            .u64_observable_counter(name)
            .with_description(description)
            .with_callback(move |o: &dyn AsyncInstrument<u64>| o.observe(read(&a.metrics()), &[]))
            .build();
    }
    let a = auditor.clone();
    meter
        .u64_observable_gauge("audit.buffer.events")
        .with_description("events waiting in the buffer")
        .with_callback(move |o: &dyn AsyncInstrument<u64>| o.observe(a.metrics().buffered, &[]))
        .build();
    let a = auditor.clone();
    meter
        .u64_observable_gauge("audit.buffer.bytes")
        .with_unit("By")
        .with_description("bytes waiting in the buffer")
        .with_callback(move |o: &dyn AsyncInstrument<u64>| {
            o.observe(a.metrics().buffered_bytes, &[]);
        })
        .build();
    let a = auditor.clone();
    meter
        .u64_observable_gauge("audit.ready")
        .with_description("1 when every sink is healthy and the buffer has room")
        .with_callback(move |o: &dyn AsyncInstrument<u64>| {
            o.observe(u64::from(a.readiness().is_ok()), &[]);
        })
        .build();

    type Read = fn(&SinkMetrics) -> u64;
    let per_sink: [(&'static str, &'static str, bool, Read); 7] = [
        ("audit.sink.delivered", "events delivered", true, |s| {
            s.delivered
        }),
        (
            "audit.sink.dropped",
            "events dropped at the sink's full queue",
            true,
            |s| s.dropped,
        ),
        ("audit.sink.failed", "events the sink gave up", true, |s| {
            s.failed
        }),
        ("audit.sink.retries", "retried deliveries", true, |s| {
            s.retried
        }),
        (
            "audit.sink.pending",
            "events queued or being delivered",
            false,
            |s| s.pending,
        ),
        (
            "audit.sink.healthy",
            "1 while the last delivery succeeded",
            false,
            |s| u64::from(s.healthy),
        ),
        (
            "audit.sink.stalled",
            "1 while a delivery hangs past stall_after",
            false,
            |s| u64::from(s.stalled),
        ),
    ];
    for (name, description, counter, read) in per_sink {
        let a = auditor.clone();
        let callback = move |o: &dyn AsyncInstrument<u64>| {
            for s in a.metrics().sinks {
                o.observe(read(&s), &[KeyValue::new("audit.sink", s.name)]);
            }
        };
        if counter {
            meter
                .u64_observable_counter(name)
                .with_description(description)
                .with_callback(callback)
                .build();
        } else {
            meter
                .u64_observable_gauge(name)
                .with_description(description)
                .with_callback(callback)
                .build();
        }
    }
}
