//! A full disk: the file sink reports itself unhealthy, leaves no half line behind, and
//! delivers every event once space returns.
//!
//! Needs root to mount a small tmpfs. Without it the test prints why and passes, unless
//! `AUDIT_REQUIRE_SERVICES=1` (set by CI) demands that it runs.

#![cfg(feature = "file")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use audit_core::{AuditEvent, Auditor, RetryPolicy, SinkOptions};
use audit_sinks::file::{FileSink, FsyncPolicy};

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(Tmpfs(dir.to_path_buf()))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn required() -> bool {
    std::env::var("AUDIT_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

#[test]
fn a_full_disk_delays_but_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let _fs = match Tmpfs::mount(dir.path(), "1m") {
        Ok(fs) => fs,
        Err(why) if !required() => {
            eprintln!("skipping a_full_disk_delays_but_loses_nothing: cannot mount tmpfs ({why})");
            return;
        }
        Err(why) => panic!("AUDIT_REQUIRE_SERVICES=1 but tmpfs cannot be mounted: {why}"),
    };
    // Fill the filesystem, then give back a little room.
    let filler = dir.path().join("filler");
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&filler)
        .unwrap();
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    let len = f.metadata().unwrap().len();
    f.set_len(len.saturating_sub(16 * 1024)).unwrap();
    drop(f);

    let path = dir.path().join("audit.jsonl");
    let sink = FileSink::builder(&path)
        .fsync(FsyncPolicy::EveryBatch)
        .build()
        .unwrap();
    let auditor = Auditor::builder()
        .sink_with(
            sink,
            SinkOptions::new()
                .max_batch_events(20)
                .max_wait(Duration::from_millis(1))
                .retry(
                    RetryPolicy::default()
                        .initial_backoff(Duration::from_millis(5))
                        .max_backoff(Duration::from_millis(50)),
                ),
        )
        .build()
        .unwrap();
    let recorded: Vec<u64> = (0..1_000)
        .map(|i| {
            auditor
                .record(
                    AuditEvent::builder("data.item.create")
                        .detail("n", i)
                        .detail("padding", "p".repeat(200))
                        .build()
                        .unwrap(),
                )
                .unwrap()
        })
        .collect();

    let start = Instant::now();
    while auditor.metrics().sinks[0].healthy {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "disk never filled"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let error = auditor.metrics().sinks[0].last_error.clone().unwrap();
    assert!(error.contains("No space left"), "{error}");
    std::fs::remove_file(&filler).unwrap();

    let report = auditor.shutdown_blocking(Duration::from_secs(20));
    assert!(report.complete, "{report}");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("half line {l:?}: {e}")))
        .collect();
    let seqs: Vec<u64> = lines
        .iter()
        .filter(|v| v["eventType"] == "data.item.create")
        .map(|v| v["integrity"]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, recorded, "every event exactly once, in order");
    let types: Vec<&str> = lines
        .iter()
        .filter_map(|v| v["eventType"].as_str())
        .filter(|t| t.starts_with("system.sink."))
        .collect();
    assert_eq!(types, ["system.sink.unhealthy", "system.sink.recovered"]);
    // The file proves itself: every link holds and no seq is missing.
    let audit = audit_core::integrity::Verifier::verify_lines(text.lines(), None);
    assert!(audit.is_intact(), "{:?}", audit.problems);
    assert_eq!(audit.dropped, 0);
}
