//! The file sink through the whole pipeline: rotation loses and repeats nothing, a file
//! deleted or moved away mid-run is noticed, reported and replaced without losing events.

#![cfg(feature = "file")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use audit_core::integrity::Verifier;
use audit_core::{AuditEvent, Auditor, SinkOptions};
use audit_sinks::file::{self, FileSink, FsyncPolicy};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(20);

fn item(n: usize) -> AuditEvent {
    AuditEvent::builder("data.item.create")
        .detail("n", n)
        .detail("padding", "x".repeat(n % 97))
        .build()
        .unwrap()
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

fn user_seqs(lines: &[Value]) -> Vec<u64> {
    lines
        .iter()
        .filter(|v| v["eventType"] == "data.item.create")
        .map(|v| v["integrity"]["seq"].as_u64().unwrap())
        .collect()
}

fn of_type<'a>(lines: &'a [Value], t: &str) -> Vec<&'a Value> {
    lines.iter().filter(|v| v["eventType"] == t).collect()
}

fn quick() -> SinkOptions {
    SinkOptions::new()
        .max_batch_events(16)
        .max_wait(Duration::from_millis(1))
        .retry(
            audit_core::RetryPolicy::default()
                .initial_backoff(Duration::from_millis(5))
                .max_backoff(Duration::from_millis(50)),
        )
}

#[test]
fn size_rotation_loses_and_duplicates_no_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let max = 8 * 1024;
    let sink = FileSink::builder(&path)
        .max_bytes(max)
        .max_files(1000)
        .fsync(FsyncPolicy::Never)
        .build()
        .unwrap();
    let auditor = Auditor::builder().sink_with(sink, quick()).build().unwrap();
    let n = 3_000;
    let recorded: Vec<u64> = (0..n).map(|i| auditor.record(item(i)).unwrap()).collect();
    assert!(auditor.shutdown_blocking(DEADLINE).complete);

    let mut files = file::rotated_files(&path);
    assert!(
        files.len() > 20,
        "expected many rotations, got {}",
        files.len()
    );
    files.push(path);
    let mut all = Vec::new();
    let mut trail = String::new();
    for f in &files {
        let len = std::fs::metadata(f).unwrap().len();
        assert!(len <= max, "{} is {len} bytes", f.display());
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{} ends mid-line",
            f.display()
        );
        all.extend(read_lines(f));
        trail.push_str(&text);
    }
    assert_eq!(user_seqs(&all), recorded, "every line once, in order");
    // The rotated files, oldest first, are one unbroken chain.
    let audit = Verifier::verify_lines(trail.lines(), None);
    assert!(audit.is_intact(), "{:?}", audit.problems);
}

#[test]
fn retention_keeps_only_the_newest_rotated_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let sink = FileSink::builder(&path)
        .max_bytes(2 * 1024)
        .max_files(3)
        .build()
        .unwrap();
    let auditor = Auditor::builder().sink_with(sink, quick()).build().unwrap();
    let recorded: Vec<u64> = (0..2_000)
        .map(|i| auditor.record(item(i)).unwrap())
        .collect();
    assert!(auditor.shutdown_blocking(DEADLINE).complete);
    let rotated = file::rotated_files(&path);
    assert_eq!(rotated.len(), 3, "{rotated:?}");
    // What is kept is the newest stretch, contiguous up to the last event.
    let mut kept = Vec::new();
    for f in rotated.iter().chain([&path]) {
        kept.extend(user_seqs(&read_lines(f)));
    }
    assert_eq!(kept[..], recorded[recorded.len() - kept.len()..]);
}

#[test]
fn time_rotation_starts_a_new_file_each_period() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let sink = FileSink::builder(&path)
        .rotate_every(Duration::from_secs(1))
        .build()
        .unwrap();
    let auditor = Auditor::builder().sink_with(sink, quick()).build().unwrap();
    let mut recorded = vec![auditor.record(item(0)).unwrap()];
    std::thread::sleep(Duration::from_millis(1100));
    recorded.push(auditor.record(item(1)).unwrap());
    assert!(auditor.shutdown_blocking(DEADLINE).complete);
    let rotated = file::rotated_files(&path);
    assert!(!rotated.is_empty());
    let mut seqs = Vec::new();
    for f in rotated.iter().chain([&path]) {
        seqs.extend(user_seqs(&read_lines(f)));
    }
    assert_eq!(seqs, recorded);
    assert_eq!(user_seqs(&read_lines(&path)), [recorded[1]]);
}

/// Records `n` events slowly, running `mid` once half-way, and returns the recorded seqs.
/// Past `n`, it goes on recording until the sink has written `system.sink.recovered` to
/// `path` (at most 10 s more), so the recovery falls within the run however slow the machine.
fn record_with_interruption(
    auditor: &Auditor,
    path: &Path,
    n: usize,
    mid: impl FnOnce(),
) -> Vec<u64> {
    let mut mid = Some(mid);
    let mut recorded = Vec::new();
    let recovered =
        || std::fs::read_to_string(path).is_ok_and(|t| t.contains("system.sink.recovered"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut i = 0;
    while i < n || (!recovered() && std::time::Instant::now() < deadline) {
        recorded.push(auditor.record(item(i)).unwrap());
        if i == n / 2
            && let Some(f) = mid.take()
        {
            f();
        }
        if i % 10 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        i += 1;
    }
    // One more after the recovery is in the file.
    recorded.push(auditor.record(item(i)).unwrap());
    recorded
}

#[test]
fn deleting_the_file_mid_run_is_reported_and_loses_nothing_after() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let sink = FileSink::builder(&path)
        .fsync(FsyncPolicy::Never)
        .build()
        .unwrap();
    let auditor = Auditor::builder().sink_with(sink, quick()).build().unwrap();
    let recorded = record_with_interruption(&auditor, &path, 2_000, || {
        std::fs::remove_file(&path).unwrap();
    });
    let report = auditor.shutdown_blocking(DEADLINE);
    assert!(report.complete, "{report}");

    let lines = read_lines(&path);
    let unhealthy = of_type(&lines, "system.sink.unhealthy");
    let recovered = of_type(&lines, "system.sink.recovered");
    assert_eq!(unhealthy.len(), 1, "{unhealthy:?}");
    assert_eq!(recovered.len(), 1);
    assert!(
        unhealthy[0]["details"]["error"]
            .as_str()
            .unwrap()
            .contains("deleted"),
        "{}",
        unhealthy[0]
    );
    assert_eq!(recovered[0]["details"]["sink"], "file");

    // The new file holds an unbroken tail of what was recorded: nothing after the first
    // event it holds is missing, and that includes everything after the recovery.
    let seqs = user_seqs(&lines);
    let first = seqs[0];
    let expected: Vec<u64> = recorded.iter().copied().filter(|s| *s >= first).collect();
    assert_eq!(seqs, expected);
    let recovered_seq = recovered[0]["integrity"]["seq"].as_u64().unwrap();
    assert!(
        recovered_seq < *recorded.last().unwrap(),
        "recovery happened mid-run"
    );
    assert!(first <= recovered_seq);
    // The seq audit of the new file names exactly what the deletion took (everything before
    // its first line, which the trail's `system.sink.unhealthy` says was deleted) and finds
    // nothing else wrong.
    let audit = Verifier::verify_lines(std::fs::read_to_string(&path).unwrap().lines(), None);
    let first_in_file = lines[0]["integrity"]["seq"].as_u64().unwrap();
    assert_eq!(audit.problems.len(), 1, "{:?}", audit.problems);
    let gap = &audit.problems[0];
    assert_eq!(gap.kind.as_str(), "deleted");
    assert_eq!((gap.seq, gap.last_seq), (Some(1), Some(first_in_file - 1)));
}

#[test]
fn moving_the_file_away_mid_run_splits_events_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let moved = dir.path().join("moved-by-logrotate.jsonl");
    let sink = FileSink::builder(&path)
        .fsync(FsyncPolicy::Never)
        .build()
        .unwrap();
    let auditor = Auditor::builder().sink_with(sink, quick()).build().unwrap();
    let recorded = record_with_interruption(&auditor, &path, 2_000, || {
        std::fs::rename(&path, &moved).unwrap();
    });
    assert!(auditor.shutdown_blocking(DEADLINE).complete);

    let old = read_lines(&moved);
    let new = read_lines(&path);
    let mut seqs = user_seqs(&old);
    let old_count = seqs.len();
    seqs.extend(user_seqs(&new));
    assert!(old_count > 0 && old_count < recorded.len());
    assert_eq!(
        seqs, recorded,
        "each event in exactly one of the two files, in order"
    );
    assert_eq!(of_type(&new, "system.sink.unhealthy").len(), 1);
    assert_eq!(of_type(&new, "system.sink.recovered").len(), 1);
    // The two files, read in the order they were written, are one unbroken chain.
    let text = std::fs::read_to_string(&moved).unwrap() + &std::fs::read_to_string(&path).unwrap();
    let audit = Verifier::verify_lines(text.lines(), None);
    assert!(audit.is_intact(), "{:?}", audit.problems);
    assert_eq!(audit.dropped, 0);
}

#[cfg(unix)]
#[test]
fn new_files_are_owner_only_and_the_mode_is_configurable() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    FileSink::new(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let shared = dir.path().join("shared.jsonl");
    FileSink::builder(&shared).mode(0o640).build().unwrap();
    let mode = std::fs::metadata(&shared).unwrap().permissions().mode() & 0o777;
    // (Assumes a umask that keeps group read, as the usual 022 and 027 do.)
    assert_eq!(mode, 0o640);
}

#[test]
fn an_unusable_path_fails_at_build_time() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be.
    let err = FileSink::new(dir.path()).unwrap_err();
    assert!(!err.to_string().is_empty());
    // A file where a parent directory should be.
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, b"").unwrap();
    assert!(FileSink::new(blocker.join("audit.jsonl")).is_err());
}

#[test]
fn restart_appends_to_the_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut all = BTreeSet::new();
    for round in 0..2 {
        let auditor = Auditor::builder()
            .stream(format!("run-{round}"))
            .sink(FileSink::new(&path).unwrap())
            .build()
            .unwrap();
        for i in 0..10 {
            let e = item(i);
            all.insert(e.id.to_string());
            auditor.record(e).unwrap();
        }
        assert!(auditor.shutdown_blocking(DEADLINE).complete);
    }
    let ids: BTreeSet<String> = read_lines(&path)
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, all);
}

#[test]
fn secrets_never_reach_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let auditor = Auditor::builder()
        .sink(FileSink::new(&path).unwrap())
        .build()
        .unwrap();
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.aGVsbG8td29ybGQtc2lnbmF0dXJl";
    auditor
        .record(
            AuditEvent::builder("auth.login.success")
                .detail("password", "hunter2-but-longer")
                .detail("echo", format!("Authorization: Bearer {jwt}"))
                .http(
                    audit_core::HttpFacts::default()
                        .with_header("cookie", "session=s3cr3t-cookie-value")
                        .with_query("api_key=AKIAIOSFODNN7EXAMPLE"),
                )
                .build()
                .unwrap(),
        )
        .unwrap();
    assert!(auditor.shutdown_blocking(DEADLINE).complete);
    let text = std::fs::read_to_string(&path).unwrap();
    for secret in [
        "hunter2-but-longer",
        jwt,
        "s3cr3t-cookie-value",
        "AKIAIOSFODNN7EXAMPLE",
    ] {
        assert!(!text.contains(secret), "{secret} reached the file: {text}");
    }
    let line: Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(line["redactedFields"].as_array().unwrap().len(), 4);
}

/// Rotations within one millisecond get `-N` suffixes; the tenth must still come after the
/// ninth (a name sort put `-10` before `-2`, and a reader got lines out of order).
#[test]
fn rotated_files_are_ordered_by_age_past_nine_collisions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let stamp = "2026-12-07T06-59-01.123Z";
    let mut names = vec![format!("audit.jsonl.{stamp}")];
    names.extend((1..=11).map(|n| format!("audit.jsonl.{stamp}-{n}")));
    names.push("audit.jsonl.2026-12-07T06-59-01.124Z".to_owned());
    for n in names.iter().rev() {
        std::fs::write(dir.path().join(n), "").unwrap();
    }
    let got: Vec<String> = file::rotated_files(&path)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(got, names);
}
