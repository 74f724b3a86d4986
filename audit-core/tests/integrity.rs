//! The hash chain, checkpoints and the verifier, through a real pipeline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use audit_core::integrity::{
    CheckpointKey, CheckpointPolicy, GENESIS, Keyring, ProblemKind, Report, Tombstone, Verifier,
};
use audit_core::{AuditEvent, Auditor, Batch, Sink, SinkError};

/// Keeps every event as the JSON line a file sink would write.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl Sink for Lines {
    fn name(&self) -> &str {
        "lines"
    }
    async fn deliver(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let mut out = self.0.lock().unwrap();
        for e in batch {
            let mut line = Vec::new();
            e.write_json(&mut line).unwrap();
            out.push(String::from_utf8(line).unwrap());
        }
        Ok(())
    }
}

fn flush(auditor: &Auditor) -> bool {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(auditor.flush(Duration::from_secs(5)))
}

fn event(n: u64) -> AuditEvent {
    AuditEvent::builder("data.document.read")
        .organization_id(if n.is_multiple_of(2) {
            "org-a"
        } else {
            "org-b"
        })
        .detail("n", n)
        .build()
        .unwrap()
}

/// `n` events through a pipeline with checkpoints every 4 events, cleanly shut down.
fn trail(n: u64, key: &CheckpointKey) -> Vec<String> {
    let sink = Lines::default();
    let auditor = Auditor::builder()
        .stream("svc-1")
        .checkpoints(key.clone())
        .checkpoint_policy(CheckpointPolicy::new(4, Duration::from_secs(3600)))
        .dispatch_interval(Duration::from_millis(1))
        .sink(sink.clone())
        .build()
        .unwrap();
    for i in 1..=n {
        auditor.record(event(i)).unwrap();
        if i % 3 == 0 {
            // Let the worker run, so checkpoints fall between events.
            assert!(flush(&auditor));
        }
    }
    let report = auditor.shutdown_blocking(Duration::from_secs(5));
    assert!(report.complete);
    sink.0.lock().unwrap().clone()
}

fn verify(lines: &[String], keys: Option<&Keyring>) -> Report {
    let mut v = Verifier::new(keys.cloned());
    for l in lines {
        v.push_line(l);
    }
    v.finish()
}

fn ring(key: &CheckpointKey) -> Keyring {
    let mut r = Keyring::default();
    r.add(key.public_key());
    r
}

fn kinds(r: &Report) -> Vec<(ProblemKind, Option<u64>, Option<u64>)> {
    r.problems
        .iter()
        .map(|p| (p.kind, p.seq, p.last_seq))
        .collect()
}

fn seq_of(line: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v["integrity"]["seq"].as_u64().unwrap()
}

#[test]
fn an_untouched_trail_is_fully_verified_and_closed() {
    let key = CheckpointKey::generate().unwrap();
    let lines = trail(10, &key);
    let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["integrity"]["prevHash"], GENESIS);
    assert!(lines.iter().any(|l| l.contains("system.audit.checkpoint")));
    let r = verify(&lines, Some(&ring(&key)));
    assert!(r.is_fully_verified(), "{r:#?}");
    assert_eq!(r.verified, lines.len() as u64);
    assert!(r.streams[0].closed);

    // Without keys the chain holds but nothing is proven.
    let r = verify(&lines, None);
    assert!(r.is_intact());
    assert!(!r.is_fully_verified());
    assert_eq!(r.unverifiable, lines.len() as u64);
}

#[test]
fn each_kind_of_tampering_is_named() {
    let key = CheckpointKey::generate().unwrap();
    let keys = ring(&key);
    let lines = trail(12, &key);
    let at = |seq: u64| lines.iter().position(|l| seq_of(l) == seq).unwrap();

    // An edited field.
    let mut t = lines.clone();
    t[at(5)] = t[at(5)].replace("\"n\":", "\"n\":1");
    assert_eq!(
        kinds(&verify(&t, Some(&keys)))[0],
        (ProblemKind::Modified, Some(5), None)
    );

    // A deleted line.
    let mut t = lines.clone();
    t.remove(at(6));
    assert!(kinds(&verify(&t, Some(&keys))).contains(&(ProblemKind::Deleted, Some(6), Some(6))));

    // Two lines swapped.
    let mut t = lines.clone();
    t.swap(at(3), at(4));
    let r = verify(&t, Some(&keys));
    assert_eq!(kinds(&r), vec![(ProblemKind::Reordered, Some(3), None)]);

    // A forged line with a seq already taken (rehashed, so its own hash holds).
    let mut t = lines.clone();
    let i = (6..).find(|&s| lines[at(s)].contains("org-b")).unwrap();
    let forged = rehash(&t[at(i)].replace("org-b", "org-x"));
    t.insert(at(i) + 1, forged);
    assert_eq!(
        kinds(&verify(&t, Some(&keys)))[0],
        (ProblemKind::Inserted, Some(i), None)
    );

    // An event replaced by a rehashed one: the next link breaks, and the checkpoint over it
    // no longer matches.
    let mut t = lines.clone();
    t[at(2)] = rehash(&t[at(2)].replace("org-a", "org-x"));
    let k = kinds(&verify(&t, Some(&keys)));
    assert_eq!(k[0], (ProblemKind::BrokenLink, Some(3), None));

    // The tail cut (the final checkpoint with it): nothing wrong in what is left, but the
    // events after the last checkpoint are not proven and the stream is not closed.
    let t = &lines[..lines.len() - 3];
    let r = verify(t, Some(&keys));
    assert!(r.is_intact(), "{r:#?}");
    assert!(r.unverifiable > 0);
    assert!(!r.streams[0].closed);

    // A checkpoint checked against a keyring that does not hold its key.
    let other = ring(&CheckpointKey::generate().unwrap());
    let r = verify(&lines, Some(&other));
    assert_eq!(r.problems[0].kind, ProblemKind::UnknownKey);
}

/// Recomputes a line's hash, as a forger who knows the algorithm would.
fn rehash(line: &str) -> String {
    let (prefix, _) = audit_core::integrity::split_chained(line).unwrap();
    let h = audit_core::integrity::hash_prefix(prefix);
    format!("{prefix},\"hash\":\"{h}\"}}}}")
}

#[test]
fn a_tombstone_carries_the_chain_across_an_authorized_deletion() {
    let key = CheckpointKey::generate().unwrap();
    let lines = trail(8, &key);
    let victim = lines.iter().position(|l| seq_of(l) == 4).unwrap();
    let v: serde_json::Value = serde_json::from_str(&lines[victim]).unwrap();
    let tomb = Tombstone {
        id: v["id"].as_str().unwrap().into(),
        stream: "svc-1".into(),
        seq: 4,
        prev_hash: v["integrity"]["prevHash"].as_str().unwrap().into(),
        hash: v["integrity"]["hash"].as_str().unwrap().into(),
        deleted_at: "2026-12-07T00:00:00.000Z".into(),
        deleted_by: "retention".into(),
        reason: "retention".into(),
    };
    let mut t = lines;
    t.remove(victim);
    let mut ver = Verifier::new(Some(ring(&key)));
    ver.add_tombstones([tomb.clone()]);
    for l in &t {
        ver.push_line(l);
    }
    let r = ver.finish();
    assert!(r.is_intact(), "{r:#?}");
    assert_eq!(r.tombstoned, 1);

    // The same deletion claimed through the API, with no audit record of it.
    let mut ver = Verifier::new(Some(ring(&key)));
    ver.add_tombstones([Tombstone {
        reason: "api".into(),
        deleted_by: "admin-1".into(),
        ..tomb
    }]);
    for l in &t {
        ver.push_line(l);
    }
    let r = ver.finish();
    assert_eq!(r.problems[0].kind, ProblemKind::UnrecordedDeletion);
}

#[test]
fn a_rotated_key_signs_later_checkpoints_and_old_ones_still_verify() {
    let first = CheckpointKey::generate().unwrap();
    let second = CheckpointKey::generate().unwrap();
    let sink = Lines::default();
    let auditor = Auditor::builder()
        .stream("svc-2")
        .checkpoints(first.clone())
        .checkpoint_policy(CheckpointPolicy::new(2, Duration::from_secs(3600)))
        .sink(sink.clone())
        .build()
        .unwrap();
    for i in 0..4 {
        auditor.record(event(i)).unwrap();
    }
    assert!(flush(&auditor));
    auditor.rotate_checkpoint_key(second.clone()).unwrap();
    for i in 0..4 {
        auditor.record(event(i)).unwrap();
    }
    let keys = auditor.keyring();
    assert_eq!(keys.len(), 2);
    auditor.shutdown_blocking(Duration::from_secs(5));
    let lines = sink.0.lock().unwrap().clone();
    let used: Vec<String> = lines
        .iter()
        .filter(|l| l.contains("system.audit.checkpoint"))
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["details"]["keyId"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(used.contains(&first.key_id().to_owned()));
    assert_eq!(used.last().unwrap(), second.key_id());
    let r = verify(&lines, Some(&keys));
    assert!(r.is_fully_verified(), "{r:#?}");
    // Only the new key: the old checkpoints are now signed by an unknown key.
    let r = verify(&lines, Some(&ring(&second)));
    assert_eq!(r.problems[0].kind, ProblemKind::UnknownKey);
}

#[test]
fn a_chain_off_auditor_writes_no_hashes() {
    let sink = Lines::default();
    let auditor = Auditor::builder()
        .hash_chain(false)
        .sink(sink.clone())
        .build()
        .unwrap();
    auditor.record(event(1)).unwrap();
    auditor.shutdown_blocking(Duration::from_secs(5));
    let lines = sink.0.lock().unwrap().clone();
    assert!(!lines[0].contains("prevHash"));
    assert_eq!(
        verify(&lines, None).problems[0].kind,
        ProblemKind::Unchained
    );
    let err = Auditor::builder()
        .hash_chain(false)
        .checkpoints(CheckpointKey::generate().unwrap())
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("hash_chain"));
}

/// Takes the pipeline's lines and compares each with its event's own encoding.
#[derive(Clone, Default)]
struct LineChecker(Arc<Mutex<(usize, usize)>>);

impl Sink for LineChecker {
    fn name(&self) -> &str {
        "lines-checker"
    }
    fn wants_lines(&self) -> bool {
        true
    }
    async fn deliver(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let mut seen = self.0.lock().unwrap();
        for (i, e) in batch.iter().enumerate() {
            let mut own = Vec::new();
            e.write_json(&mut own).unwrap();
            own.push(b'\n');
            match batch.line(i) {
                Some(line) if line == own.as_slice() => seen.0 += 1,
                Some(_) => panic!("a line differs from its event"),
                None => seen.1 += 1,
            }
        }
        Ok(())
    }
}

#[test]
fn a_sink_that_wants_lines_gets_the_chains_encoding_of_each_event() {
    let sink = LineChecker::default();
    let auditor = Auditor::builder().sink(sink.clone()).build().unwrap();
    for i in 0..50 {
        auditor.record(event(i)).unwrap();
    }
    auditor.shutdown_blocking(Duration::from_secs(5));
    let (with, without) = *sink.0.lock().unwrap();
    assert_eq!((with, without), (50, 0));
}
