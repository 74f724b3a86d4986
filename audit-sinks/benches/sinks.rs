//! End-to-end throughput of each shipping sink against a receiver on loopback that accepts
//! everything: `record` → pipeline → encode → HTTP/TCP → acknowledged, until `shutdown`
//! reports every event delivered. The file sink (no network) runs in the same process as
//! the reference.
//!
//! ```text
//! cargo bench -p audit-sinks --all-features --bench sinks
//! AUDIT_BENCH_EVENTS=100000 cargo bench -p audit-sinks --all-features --bench sinks
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use audit_core::{Auditor, Sink};
use audit_sinks::syslog::{Body, SyslogSink, Transport};
use audit_sinks::{DatadogSink, ElasticsearchSink, FileSink, SplunkSink, WebhookSink};
use common::{Receiver, Reply, events};
use tokio::io::AsyncReadExt;

async fn run<S: Sink>(name: &str, sink: S, n: usize, reference: Option<f64>) -> f64 {
    // A queue that holds the whole burst: this measures throughput, not load shedding.
    let options = sink
        .default_options()
        .queue_bytes(1 << 30)
        .filter(|e| e.event_type.as_str() == "data.vector.delete");
    let auditor = Auditor::builder().sink_with(sink, options).build().unwrap();
    let sent = events(n, 100);
    let started = Instant::now();
    for e in sent {
        while auditor.record(e.clone()).is_err() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let report = auditor.shutdown(Duration::from_secs(300)).await;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    assert!(
        report.complete && report.metrics.sinks[0].delivered as usize == n,
        "{name}: {report}"
    );
    match reference {
        Some(r) => println!(
            "{name:<28} {rate:>10.0} events/s   ({:.2}x the file sink)",
            rate / r
        ),
        None => println!("{name:<28} {rate:>10.0} events/s"),
    }
    rate
}

fn main() {
    let n: usize = std::env::var("AUDIT_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let file = FileSink::new(dir.path().join("bench.jsonl")).unwrap();
        let reference = run("file (reference)", file, n, None).await;
        let ok = Receiver::start(|r| {
            if r.path == "/_bulk" {
                // Every item created.
                let items = std::str::from_utf8(&r.body).unwrap().lines().count() / 2;
                let body = format!(
                    "{{\"errors\":false,\"items\":[{}]}}",
                    vec![r#"{"create":{"status":201}}"#; items].join(",")
                );
                Reply::status(200).body(body)
            } else {
                Reply::status(200).body(r#"{"text":"Success","code":0}"#)
            }
        })
        .await;
        let url = |p: &str| ok.url(p);
        run(
            "webhook",
            WebhookSink::new(&url("/hook")).unwrap().secret("s"),
            n,
            Some(reference),
        )
        .await;
        run(
            "splunk HEC",
            SplunkSink::new(&url(""), "token").unwrap(),
            n,
            Some(reference),
        )
        .await;
        run(
            "elasticsearch _bulk (ECS)",
            ElasticsearchSink::new(&url(""), "audit").unwrap(),
            n,
            Some(reference),
        )
        .await;
        run(
            "datadog (gzip)",
            DatadogSink::new(&url("/api/v2/logs"), "key").unwrap(),
            n,
            Some(reference),
        )
        .await;
        // A TCP syslog receiver that reads and discards.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 1 << 16];
                    while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
                });
            }
        });
        run(
            "syslog TCP (JSON)",
            SyslogSink::new(Transport::Tcp, &addr),
            n,
            Some(reference),
        )
        .await;
        run(
            "syslog TCP (CEF)",
            SyslogSink::new(Transport::Tcp, &addr).body(Body::Cef),
            n,
            Some(reference),
        )
        .await;
    });
}
