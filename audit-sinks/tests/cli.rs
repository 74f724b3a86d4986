//! `audit verify` as a user runs it: a real child process over a rotated JSON-lines trail and
//! a SQLite store, its report and its exit status.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use audit_core::integrity::{CheckpointKey, CheckpointPolicy, Keyring};
use audit_core::store::{Store, StoreSink};
use audit_core::{AuditEvent, Auditor};
use audit_sinks::{FileSink, SqliteStore};

fn audit(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_audit"))
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap(), text)
}

/// A trail in a file that rotates every few KiB, and in a SQLite store.
fn write_trail(dir: &Path) -> Keyring {
    let key = CheckpointKey::generate().unwrap();
    let mut keys = Keyring::default();
    keys.add(key.public_key());
    std::fs::write(dir.join("keys.json"), keys.to_json()).unwrap();
    let file = FileSink::builder(dir.join("audit.jsonl"))
        .max_bytes(4096)
        .build()
        .unwrap();
    let store = Arc::new(SqliteStore::open(dir.join("audit.db")).unwrap());
    let auditor = Auditor::builder()
        .checkpoints(key)
        .checkpoint_policy(CheckpointPolicy::new(25, Duration::from_secs(3600)))
        .sink(file)
        .sink(StoreSink::new(store))
        .build()
        .unwrap();
    for i in 0..100u64 {
        let e = AuditEvent::builder("data.document.read")
            .organization_id("org-1")
            .detail("n", i)
            .build()
            .unwrap();
        auditor.record(e).unwrap();
    }
    assert!(auditor.shutdown_blocking(Duration::from_secs(10)).complete);
    keys
}

#[test]
fn verify_reads_rotated_files_and_stores_and_exits_by_what_it_found() {
    let dir = tempfile::tempdir().unwrap();
    write_trail(dir.path());
    let live = dir.path().join("audit.jsonl");
    let rotated = audit_sinks::file::rotated_files(&live);
    assert!(rotated.len() > 2, "the trail spans several files");
    let keys = dir.path().join("keys.json");
    let (k, l) = (keys.to_str().unwrap(), live.to_str().unwrap());

    // The live file brings its rotated files with it.
    let (code, out) = audit(&["verify", "--keys", k, l]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK: complete and unaltered"), "{out}");

    // Without keys: the chain holds, nothing is proven.
    let (code, out) = audit(&["verify", l]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("signatures not checked"), "{out}");

    // A rotated file edited: exit 1, the problem named.
    let victim = &rotated[1];
    let text = std::fs::read_to_string(victim).unwrap();
    std::fs::write(victim, text.replacen("\"n\":", "\"n\":9", 1)).unwrap();
    let (code, out) = audit(&["verify", "--keys", k, l]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("PROBLEM modified"), "{out}");

    // The JSON report.
    let (code, out) = audit(&["verify", "--json", "--keys", k, l]);
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["problems"][0]["kind"], "modified");

    // The store holds the same trail, untouched.
    let db = format!("sqlite:{}", dir.path().join("audit.db").display());
    let (code, out) = audit(&["verify", "--keys", k, &db]);
    assert_eq!(code, 0, "{out}");

    // An export with its manifest, checked on its own.
    let store = SqliteStore::open(dir.path().join("audit.db")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let query = audit_core::store::Query::new(audit_core::store::Filter::scoped(
        audit_core::store::TenantScope::tenant("org-1"),
    ));
    let events = rt.block_on(store.search(&query)).unwrap().events;
    let positions: Vec<(String, u64)> = events
        .iter()
        .map(|e| {
            let i = e.integrity.as_ref().unwrap();
            (i.stream.to_string(), i.seq)
        })
        .collect();
    let manifest = rt
        .block_on(audit_core::integrity::build_manifest(&store, &positions))
        .unwrap();
    let mut enc = audit_core::export::Encoder::new(audit_core::export::ExportFormat::Csv);
    let mut csv = enc.begin();
    for e in &events {
        enc.event(e, &mut csv);
    }
    let (m, x) = (
        dir.path().join("manifest.json"),
        dir.path().join("export.csv"),
    );
    std::fs::write(&m, serde_json::to_vec(&manifest).unwrap()).unwrap();
    std::fs::write(&x, &csv).unwrap();
    let (m, x) = (m.to_str().unwrap(), x.to_str().unwrap());
    let (code, out) = audit(&["verify", "--manifest", m, "--keys", k, x]);
    assert_eq!(code, 0, "{out}");
    let text = String::from_utf8(csv).unwrap();
    std::fs::write(
        x,
        text.replacen("data.document.read", "data.document.reed", 2),
    )
    .unwrap();
    let (code, out) = audit(&["verify", "--manifest", m, "--keys", k, x]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("PROBLEM modified"), "{out}");

    // A forged line cannot drive the terminal: what it names is printed escaped.
    let evil = dir.path().join("evil.jsonl");
    std::fs::write(
        &evil,
        "{\"id\":\"e1\",\"eventType\":\"auth.logout\",\"integrity\":{\"stream\":\"s\\u001b[2J\",\"seq\":1}}\n",
    )
    .unwrap();
    let (code, out) = audit(&["verify", evil.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("PROBLEM unchained"), "{out}");
    assert!(!out.contains('\u{1b}') && out.contains("\\u{1b}"), "{out}");

    // Unreadable sources and bad usage: exit 3 with the reason.
    let (code, out) = audit(&["verify", "sqlite:/nonexistent/audit.db"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("no SQLite database"), "{out}");
    let (code, out) = audit(&["verify", "--keys", "/nonexistent/keys.json", l]);
    assert_eq!(code, 3, "{out}");
    let (code, out) = audit(&["frobnicate"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("usage: audit verify"), "{out}");
}
