//! The durable spool in-process: durable records, what is on disk, redelivery of what a sink
//! had not acknowledged, and a file sink that gets each event once. The crash itself (a real
//! SIGKILL under load) is tested against the demo in `examples/tests/crash.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use audit_core::{AuditEvent, Auditor, Batch, Sink, SinkError, SpoolOptions};
use audit_sinks::FileSink;

/// Collects events; refuses everything while `down` is set.
#[derive(Clone, Default)]
struct Flaky {
    down: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<AuditEvent>>>,
}

impl Sink for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }
    async fn deliver(&mut self, batch: &Batch) -> Result<(), SinkError> {
        if self.down.load(Ordering::Relaxed) {
            return Err(SinkError::retryable("down"));
        }
        self.got.lock().unwrap().extend(batch.iter().cloned());
        Ok(())
    }
}

fn event(n: u64) -> AuditEvent {
    AuditEvent::builder("auth.login.success")
        .detail("n", n)
        .build()
        .unwrap()
}

fn spool(dir: &Path) -> SpoolOptions {
    SpoolOptions::new(dir.join("spool")).recovery_wait(Duration::from_secs(5))
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_record_is_on_disk_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Flaky::default();
    sink.down.store(true, Ordering::Relaxed);
    let auditor = Auditor::builder()
        .stream("svc-a")
        .spool(spool(dir.path()))
        .sink(sink.clone())
        .build()
        .unwrap();
    assert!(auditor.is_spooled());
    let seq = auditor.record_durable(event(1)).await.unwrap();
    // The sink has nothing, the spool has the event, chained, as a JSON line.
    assert!(sink.got.lock().unwrap().is_empty());
    let seg = std::fs::read_dir(dir.path().join("spool"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "spool"))
        .unwrap();
    let text = std::fs::read_to_string(&seg).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["integrity"]["seq"], seq);
    assert!(first["integrity"]["hash"].is_string());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&seg), 0o600);
        assert_eq!(mode(&dir.path().join("spool")), 0o700);
    }
    // Without a spool there is nothing to wait for.
    let plain = Auditor::builder().build().unwrap();
    assert!(
        plain
            .record_durable(event(2))
            .await
            .unwrap_err()
            .is_not_durable()
    );
    sink.down.store(false, Ordering::Relaxed);
    assert!(auditor.shutdown(Duration::from_secs(5)).await.complete);
    // Everything delivered: the stream's spool files are gone.
    assert_eq!(
        std::fs::read_dir(dir.path().join("spool")).unwrap().count(),
        0
    );
}

#[test]
fn what_a_sink_never_acknowledged_is_delivered_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let down = Flaky::default();
    down.down.store(true, Ordering::Relaxed);
    let first = Auditor::builder()
        .stream("run-1")
        .spool(spool(dir.path()))
        .sink(down)
        .build()
        .unwrap();
    for i in 0..10 {
        first.record(event(i)).unwrap();
    }
    let report = first.shutdown_blocking(Duration::from_millis(500));
    assert!(!report.complete, "the sink was down");
    // Pretend the run was killed rather than stopped.
    let positions = dir.path().join("spool/run-1.positions.json");
    let text = std::fs::read_to_string(&positions).unwrap();
    std::fs::write(
        &positions,
        text.replace("\"closed\":true", "\"closed\":false"),
    )
    .unwrap();

    let up = Flaky::default();
    let second = Auditor::builder()
        .stream("run-2")
        .spool(spool(dir.path()))
        .sink(up.clone())
        .build()
        .unwrap();
    // The build waited for the redelivery.
    let got: Vec<(String, u64)> = up
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|e| {
            let i = e.integrity.as_ref().unwrap();
            (i.stream.to_string(), i.seq)
        })
        .collect();
    // The ten events, then the first run's own reports: the sink unhealthy, and the final
    // account of what it still held when that run stopped.
    assert_eq!(
        got,
        (1..=12)
            .map(|s| ("run-1".to_owned(), s))
            .collect::<Vec<_>>()
    );
    let types: Vec<String> = up.got.lock().unwrap()[10..12]
        .iter()
        .map(|e| e.event_type.to_string())
        .collect();
    assert_eq!(types, ["system.sink.unhealthy", "system.audit.undelivered"]);
    assert!(second.shutdown_blocking(Duration::from_secs(5)).complete);
    let all = up.got.lock().unwrap().clone();
    let unclean = all
        .iter()
        .find(|e| e.event_type.as_str() == "system.audit.unclean_shutdown")
        .expect("the unclean end is recorded");
    assert_eq!(unclean.details["previousStream"], "run-1");
    assert_eq!(unclean.details["redelivered"]["flaky"], 12);
    // The seq audit of everything the sink got across both runs: both chains whole.
    let audit = audit_core::integrity::Verifier::verify_events(&all, None);
    assert!(audit.is_intact(), "{:?}", audit.problems);
    assert_eq!(audit.streams.len(), 2);
    // The first run's files are gone once delivered.
    assert!(!positions.exists());
    // A later run may not take a stream name the spool still holds.
    let _third = Auditor::builder()
        .stream("run-3")
        .spool(spool(dir.path()))
        .sink(Flaky::default())
        .build()
        .unwrap();
    let reused = Auditor::builder()
        .stream("run-3")
        .spool(spool(dir.path()))
        .build()
        .unwrap_err();
    assert!(
        reused.to_string().contains("must not be reused"),
        "{reused}"
    );
}

#[test]
fn a_file_sink_gets_each_event_once_across_a_redelivery() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let first = Auditor::builder()
        .stream("run-1")
        .spool(spool(dir.path()))
        .sink(FileSink::new(&file).unwrap())
        .build()
        .unwrap();
    for i in 0..20 {
        first.record(event(i)).unwrap();
    }
    // Make the spool keep the stream as if the process had died before the file sink's
    // acknowledgements were saved: stop with the positions file rewritten afterwards.
    assert!(first.shutdown_blocking(Duration::from_secs(5)).complete);
    let spool_dir = dir.path().join("spool");
    assert_eq!(std::fs::read_dir(&spool_dir).unwrap().count(), 0);
    // Re-create the state a crash leaves: a segment with every event and no acknowledgement.
    let written: String = std::fs::read_to_string(&file).unwrap();
    std::fs::write(spool_dir.join("run-1.00000000000000000001.spool"), &written).unwrap();
    std::fs::write(
        spool_dir.join("run-1.positions.json"),
        r#"{"stream":"run-1","closed":false,"spooledThrough":20,"sinks":{"file":0}}"#,
    )
    .unwrap();
    // And a torn last line, cut mid-event.
    let torn = &written.lines().last().unwrap()[..40];
    let kept: Vec<&str> = written.lines().collect();
    std::fs::write(&file, kept[..kept.len() - 1].join("\n") + "\n" + torn).unwrap();

    let second = Auditor::builder()
        .stream("run-2")
        .spool(spool(dir.path()))
        .sink(FileSink::new(&file).unwrap())
        .build()
        .unwrap();
    assert!(second.shutdown_blocking(Duration::from_secs(5)).complete);
    let all = lines(&file);
    let run1: Vec<u64> = all
        .iter()
        .filter(|v| v["integrity"]["stream"] == "run-1")
        .map(|v| v["integrity"]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        run1,
        (1..=20).collect::<Vec<_>>(),
        "each event once, in order"
    );
    // The seq audit of the file: both runs' chains hold, nothing missing, nothing repeated.
    let audit = audit_core::integrity::Verifier::verify_lines(
        std::fs::read_to_string(&file).unwrap().lines(),
        None,
    );
    assert!(audit.is_intact(), "{:?}", audit.problems);
    assert_eq!((audit.dropped, audit.duplicates), (0, 0));
}
