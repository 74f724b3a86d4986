//! The README's first command works: it writes the events and says where.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::process::Command;

#[test]
fn quickstart_writes_events_and_prints_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("recorded 4 audit events into"), "{stdout}");
    assert!(stdout.contains("audit.jsonl"), "{stdout}");

    let text = std::fs::read_to_string(&path).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "auth.login.failure",
            "auth.login.success",
            "admin.api_key.create",
            "data.index.delete"
        ]
    );
    assert!(
        events
            .iter()
            .all(|e| e["context"]["service"] == "quickstart")
    );
    assert_eq!(events[2]["target"]["id"], "key_7f3a");
}
