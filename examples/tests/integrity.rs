//! The trail's integrity, end to end through the demo as a real server: the chain and signed
//! checkpoints it writes, an authorized deletion through the API, `GET /api/audit/verify`
//! and `/keys`, and the written file checked by the Rust verifier and by the independent
//! stdlib-only Python verifier, untouched and tampered with, which must agree.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use audit_core::integrity::{Keyring, Report, Verifier, hash_prefix, split_chained};
use audit_core::store::verify_store;
use common::{Demo, login};
use serde_json::{Value, json};

/// The Rust verifier over a file.
fn rust_verify(lines: &[String], keys: &Keyring) -> Report {
    let mut v = Verifier::new(Some(keys.clone()));
    for l in lines {
        v.push_line(l);
    }
    v.finish()
}

/// The Python verifier over a file: its exit status and JSON report, or `None` without a
/// Python 3 (a failure when services are required).
fn python_verify(file: &Path, keys: &Path) -> Option<(i32, Value)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("verify/verify_trail.py");
    let out = match Command::new("python3")
        .arg(&script)
        .arg("--keys")
        .arg(keys)
        .arg("--json")
        .arg(file)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            assert!(
                std::env::var_os("AUDIT_REQUIRE_SERVICES").is_none(),
                "python3 required: {e}"
            );
            eprintln!("skipping the Python verifier: {e}");
            return None;
        }
    };
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify_trail.py printed no report ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    Some((out.status.code().unwrap(), report))
}

/// What both verifiers must agree on: each problem's kind and seq, and the counts.
fn rust_summary(r: &Report) -> Value {
    json!({
        "problems": r.problems.iter().map(|p| json!([p.kind.as_str(), p.seq])).collect::<Vec<_>>(),
        "verified": r.verified,
        "unverifiable": r.unverifiable,
        "closed": r.streams.iter().map(|s| s.closed).collect::<Vec<_>>(),
        "exit": if r.is_fully_verified() { 0 } else if r.is_intact() { 2 } else { 1 },
    })
}

fn python_summary(exit: i32, r: &Value) -> Value {
    json!({
        "problems": r["problems"].as_array().unwrap().iter()
            .map(|p| json!([p["kind"], p["seq"]])).collect::<Vec<_>>(),
        "verified": r["verified"],
        "unverifiable": r["unverifiable"],
        "closed": r["streams"].as_array().unwrap().iter().map(|s| s["closed"].clone()).collect::<Vec<_>>(),
        "exit": exit,
    })
}

/// acme's export and its manifest: verified on their own; nothing of globex's events but
/// hashes; every tampering named.
fn check_export(export: &str, manifest: &Value, keys_file: &Path) {
    use audit_core::export::read_events;
    use audit_core::integrity::{Manifest, verify_export};
    let keys = Keyring::load(keys_file).unwrap();
    let manifest_text = manifest.to_string();
    assert!(!manifest_text.contains("secret-globex"), "{manifest_text}");
    assert!(!manifest_text.contains("globex"), "{manifest_text}");
    let manifest: Manifest = serde_json::from_value(manifest.clone()).unwrap();
    let others = manifest.streams[0]
        .entries
        .iter()
        .filter(|e| !e.exported && !e.deleted)
        .count();
    assert!(others >= 4, "the segment holds globex's events, as hashes");
    assert!(manifest.streams[0].entries.iter().any(|e| e.deleted));
    let events = read_events(export).unwrap();
    assert_eq!(events.len(), 4, "five created, one deleted");
    let r = verify_export(&manifest, &events, Some(&keys));
    assert!(r.is_fully_verified(), "{r:#?}");
    assert_eq!(r.verified, 4);

    // An edited event, a missing one, one from elsewhere.
    let mut edited = events.clone();
    edited[1].description = Some("nothing happened".into());
    let r = verify_export(&manifest, &edited, Some(&keys));
    assert_eq!(r.problems[0].kind.as_str(), "modified", "{r:#?}");
    let r = verify_export(&manifest, &events[1..], Some(&keys));
    assert_eq!(r.problems[0].kind.as_str(), "deleted", "{r:#?}");
    let mut foreign = events.clone();
    let mut extra = events[0].clone();
    extra.integrity.as_mut().unwrap().seq += 1_000;
    foreign.push(extra);
    let r = verify_export(&manifest, &foreign, Some(&keys));
    assert!(
        r.problems.iter().any(|p| p.kind.as_str() == "inserted"),
        "{r:#?}"
    );
    // A manifest whose checkpoint signature was tampered with.
    let mut forged = manifest;
    let cp = &mut forged.streams[0].checkpoints[0];
    *cp = cp.replace("\"final\":false", "\"final\":true");
    let r = verify_export(&forged, &events, Some(&keys));
    assert!(!r.is_intact(), "{r:#?}");
}

fn seq_of(line: &str) -> u64 {
    serde_json::from_str::<Value>(line).unwrap()["integrity"]["seq"]
        .as_u64()
        .unwrap()
}

#[test]
fn the_demo_trail_verifies_and_every_tampering_is_named_by_both_verifiers() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let keys_file = dir.path().join("audit-keys.json");
    let demo = Demo::start_args(
        &file,
        &format!("sqlite:{}", dir.path().join("audit.db").display()),
        &["--checkpoint-interval", "0.2"],
    );
    let acme = login(&demo, "admin@acme.test", "admin-password");
    let ops = login(&demo, "ops@platform.test", "ops-password");
    let globex = login(&demo, "admin@globex.test", "globex-password");
    for i in 0..5 {
        let (status, _, _) = demo.call(
            "POST",
            "/v1/indexes",
            Some(&acme),
            Some(json!({"name": format!("idx-{i}")})),
        );
        assert_eq!(status, 201);
        // Another tenant's events between them, in the same chain.
        let (status, _, _) = demo.call(
            "POST",
            "/v1/indexes",
            Some(&globex),
            Some(json!({"name": format!("secret-globex-{i}")})),
        );
        assert_eq!(status, 201);
    }

    // The published keys are the keys file's.
    let (status, _, body) = demo.call("GET", "/api/audit/keys", Some(&ops), None);
    assert_eq!(status, 200, "{body}");
    let keys = Keyring::load(&keys_file).unwrap();
    assert_eq!(body["keys"][0]["keyId"], keys.keys()[0].key_id());

    // An authorized deletion through the API, of an index creation.
    let created = common::wait_for(
        &demo,
        &acme,
        "/api/audit/logs?eventType=data.index.create",
        5,
    );
    let victim = created["logs"][0]["id"].as_str().unwrap().to_owned();
    let (status, _, _) = demo.call(
        "DELETE",
        &format!("/api/audit/logs/{victim}"),
        Some(&acme),
        None,
    );
    assert_eq!(status, 204);

    // Only an all-tenant operator may verify; the verification sees the deletion as
    // authorized. Wait until a checkpoint covers the delete's own record.
    let (status, _, _) = demo.call("GET", "/api/audit/verify", Some(&acme), None);
    assert_eq!(status, 403);
    let mut report = Value::Null;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(100));
        let (status, _, body) = demo.call("GET", "/api/audit/verify", Some(&ops), None);
        assert_eq!(status, 200, "{body}");
        report = body;
        if report["tombstoned"] == 1 && report["status"] == "verified" {
            break;
        }
    }
    assert_eq!(report["problems"], json!([]), "{report:#}");
    assert_eq!(report["tombstoned"], 1, "{report:#}");
    assert_eq!(report["status"], "verified", "{report:#}");

    // acme's export, verified on its own with its manifest.
    let filters = json!({"format": "ndjson", "filters": {"eventType": "data.index.*"}});
    std::thread::sleep(Duration::from_millis(600)); // a checkpoint covers the last one
    let export = demo.request(
        "POST",
        "/api/audit/export",
        &[
            ("authorization", &format!("Bearer {acme}")),
            ("content-type", "application/json"),
        ],
        &filters.to_string(),
    );
    assert_eq!(export.status, 200, "{}", export.body);
    let (status, _, manifest) = demo.call(
        "POST",
        "/api/audit/export/manifest",
        Some(&acme),
        Some(filters),
    );
    assert_eq!(status, 200, "{manifest}");
    check_export(&export.content(), &manifest, &keys_file);
    demo.stop();

    // After a clean stop: the file is fully verified and closed by its final checkpoint.
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let r = rust_verify(&lines, &keys);
    assert!(r.is_fully_verified(), "{r:#?}");
    assert!(r.streams.iter().all(|s| s.closed));
    // So is the store, with the deletion's tombstone.
    let store = audit_sinks::SqliteStore::open(dir.path().join("audit.db")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sr = rt
        .block_on(verify_store(&store, Some(keys.clone()), |_| {}))
        .unwrap();
    assert!(sr.is_fully_verified(), "{sr:#?}");
    assert_eq!(sr.tombstoned, 1);

    // Tampered copies: both verifiers name the same problems.
    let data = |l: &String| l.contains("\"eventType\":\"data.index.create\"");
    let at = |pred: &dyn Fn(&String) -> bool| lines.iter().position(pred).unwrap();
    let first_data = at(&data);
    let mut cases: Vec<(&str, Vec<String>, &str)> = vec![("untouched", lines.clone(), "")];
    let mut edited = lines.clone();
    edited[first_data] = edited[first_data].replace("idx-", "idy-");
    cases.push(("edited", edited, "modified"));
    let mut deleted = lines.clone();
    deleted.remove(first_data);
    cases.push(("deleted", deleted, "deleted"));
    let mut swapped = lines.clone();
    swapped.swap(first_data, first_data + 1);
    cases.push(("swapped", swapped, "reordered"));
    let mut forged = lines.clone();
    let fake = lines[first_data].replace("idx-", "evil-");
    let (prefix, _) = split_chained(&fake).unwrap();
    forged.insert(
        first_data + 1,
        format!("{prefix},\"hash\":\"{}\"}}}}", hash_prefix(prefix)),
    );
    cases.push(("forged", forged, "inserted"));
    let cut = lines[..lines.len() - 2].to_vec();
    cases.push(("cut tail", cut, ""));
    for (name, case, expected) in cases {
        let r = rust_verify(&case, &keys);
        if expected.is_empty() {
            assert!(r.is_intact(), "{name}: {r:#?}");
        } else {
            assert_eq!(r.problems[0].kind.as_str(), expected, "{name}: {r:#?}");
            assert_eq!(
                r.problems[0].seq,
                Some(seq_of(&lines[first_data])),
                "{name}: {r:#?}"
            );
        }
        if name == "cut tail" {
            // What is left holds; only the missing final checkpoint says the end is gone.
            assert!(!r.streams[0].closed, "{r:#?}");
        }
        let path = dir.path().join("case.jsonl");
        std::fs::write(&path, case.join("\n") + "\n").unwrap();
        if let Some((exit, py)) = python_verify(&path, &keys_file) {
            assert_eq!(
                python_summary(exit, &py),
                rust_summary(&r),
                "{name}: the Python verifier disagrees"
            );
        }
    }
}
