//! The pipeline's counters read through the OpenTelemetry SDK, as a metrics backend would
//! receive them: a healthy sink and one that is down, per sink and for the auditor.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use audit_core::{AuditEvent, Auditor, Batch, RetryPolicy, Sink, SinkError, SinkOptions};
use opentelemetry::metrics::MeterProvider;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

#[derive(Clone)]
struct Switch {
    name: &'static str,
    up: Arc<AtomicBool>,
}

impl Sink for Switch {
    fn name(&self) -> &str {
        self.name
    }
    async fn deliver(&mut self, _batch: &Batch) -> Result<(), SinkError> {
        if self.up.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(SinkError::retryable("connection refused"))
        }
    }
}

/// Every data point collected, as `name{sink}` → value.
fn collect(provider: &SdkMeterProvider, exporter: &InMemoryMetricExporter) -> HashMap<String, u64> {
    provider.force_flush().unwrap();
    let mut out = HashMap::new();
    let exported = exporter.get_finished_metrics().unwrap();
    for rm in exported.iter() {
        for sm in rm.scope_metrics() {
            for m in sm.metrics() {
                let AggregatedMetrics::U64(data) = m.data() else {
                    continue;
                };
                let points: Vec<(String, u64)> = match data {
                    MetricData::Sum(s) => s
                        .data_points()
                        .map(|p| (sink_of(p.attributes()), p.value()))
                        .collect(),
                    MetricData::Gauge(g) => g
                        .data_points()
                        .map(|p| (sink_of(g_attrs(p)), p.value()))
                        .collect(),
                    _ => continue,
                };
                for (sink, v) in points {
                    let key = if sink.is_empty() {
                        m.name().to_owned()
                    } else {
                        format!("{}{{{sink}}}", m.name())
                    };
                    out.insert(key, v);
                }
            }
        }
    }
    out
}

fn g_attrs<T>(
    p: &opentelemetry_sdk::metrics::data::GaugeDataPoint<T>,
) -> impl Iterator<Item = &opentelemetry::KeyValue> {
    p.attributes()
}

fn sink_of<'a>(attrs: impl Iterator<Item = &'a opentelemetry::KeyValue>) -> String {
    attrs
        .filter(|kv| kv.key.as_str() == "audit.sink")
        .map(|kv| kv.value.to_string())
        .next()
        .unwrap_or_default()
}

#[test]
fn the_pipelines_counters_reach_a_meter_provider() {
    let up = Switch {
        name: "file",
        up: Arc::new(AtomicBool::new(true)),
    };
    let down = Switch {
        name: "webhook",
        up: Arc::new(AtomicBool::new(false)),
    };
    let fast = SinkOptions::new().max_wait(Duration::from_millis(1)).retry(
        RetryPolicy::default()
            .initial_backoff(Duration::from_millis(5))
            .max_backoff(Duration::from_millis(20)),
    );
    let auditor = Auditor::builder()
        .sink_with(up, fast.clone())
        // A small queue, so that the sink that is down overflows.
        .sink_with(down.clone(), fast.queue_bytes(8 << 10))
        .build()
        .unwrap();
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    audit_core::otel_metrics::register(&auditor, &provider.meter("audit"));

    for i in 0..200 {
        auditor
            .record(
                AuditEvent::builder("data.item.create")
                    .detail("n", i)
                    .build()
                    .unwrap(),
            )
            .unwrap();
    }
    // Wait until the healthy sink has everything and the other has failed and overflowed.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = auditor.metrics();
        if m.sinks[0].delivered >= 200 && m.sinks[1].dropped > 0 && m.sinks[1].retried > 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{m:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    let got = collect(&provider, &exporter);
    let m = auditor.metrics();
    assert!(got["audit.events.recorded"] >= 200, "{got:?}");
    assert_eq!(got["audit.events.dropped"], 0);
    assert!(got["audit.sink.delivered{file}"] >= 200, "{got:?}");
    assert_eq!(got["audit.sink.healthy{file}"], 1);
    assert_eq!(got["audit.sink.healthy{webhook}"], 0);
    assert_eq!(got["audit.sink.delivered{webhook}"], 0);
    assert!(got["audit.sink.dropped{webhook}"] > 0, "{got:?}");
    assert!(got["audit.sink.retries{webhook}"] > 0, "{got:?}");
    assert!(got["audit.sink.pending{webhook}"] > 0, "{got:?}");
    assert_eq!(got["audit.sink.stalled{webhook}"], 0);
    assert_eq!(got["audit.ready"], 0, "a sink is down: not ready");
    assert!(got["audit.sink.dropped{webhook}"] <= m.sinks[1].dropped);

    // The sink comes back: what it could keep is delivered, and readiness returns.
    down.up.store(true, Ordering::SeqCst);
    assert!(
        auditor
            .shutdown_blocking(Duration::from_secs(10))
            .metrics
            .sinks[1]
            .healthy
    );
    let got = collect(&provider, &exporter);
    assert_eq!(got["audit.sink.healthy{webhook}"], 1);
    assert_eq!(got["audit.sink.pending{webhook}"], 0);
    assert!(got["audit.sink.delivered{webhook}"] > 0);
}
