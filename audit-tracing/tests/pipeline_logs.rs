//! The pipeline's reports about itself reach the operator's logs too: a sink failing and
//! recovering, as `tracing` lines (audit-core's `tracing` feature, on with audit-tracing).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use audit_core::{AuditEvent, Auditor, Batch, RetryPolicy, Sink, SinkError, SinkOptions};

/// Fails its first two deliveries.
struct Flaky(Arc<AtomicUsize>);

impl Sink for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }

    async fn deliver(&mut self, _batch: &Batch) -> Result<(), SinkError> {
        if self.0.fetch_add(1, Ordering::SeqCst) < 2 {
            Err(SinkError::retryable("connection refused"))
        } else {
            Ok(())
        }
    }
}

#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn sink_failures_and_recoveries_are_logged() {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // The pipeline's worker thread logs through the global subscriber (this test binary has
    // this one test).
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let auditor = Auditor::builder()
        .sink_with(
            Flaky(Arc::default()),
            SinkOptions::new().retry(
                RetryPolicy::default()
                    .initial_backoff(Duration::from_millis(2))
                    .max_backoff(Duration::from_millis(10)),
            ),
        )
        .build()
        .unwrap();
    auditor
        .record(AuditEvent::builder("data.item.create").build().unwrap())
        .unwrap();
    assert!(auditor.shutdown_blocking(Duration::from_secs(5)).complete);
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("ERROR") && text.contains("audit sink flaky failed: connection refused"),
        "{text}"
    );
    assert!(text.contains("audit sink flaky recovered"), "{text}");
    assert!(!text.contains("system.audit.checkpoint"));
}
