//! Seed 000's export to a destination, against the demo as a real server with moto as the S3
//! peer on loopback: the credentials and endpoint come from the demo's environment, the
//! request is the seed's own, and the object lands in the bucket with its job visible through
//! the API and its end in the trail.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;
#[path = "../../audit-tower/tests/support/moto.rs"]
mod moto;

use std::time::{Duration, Instant};

use common::{Demo, login, wait_for};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Waits for an export job to end.
fn job(demo: &Demo, token: &str, id: &str) -> Value {
    let start = Instant::now();
    loop {
        let (status, _, job) = demo.call(
            "GET",
            &format!("/api/audit/exports/{id}"),
            Some(token),
            None,
        );
        assert_eq!(status, 200, "{job}");
        if job["status"] != "running" {
            return job;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{job}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn seed_000_export_lands_in_the_bucket() {
    let Some(s3) = moto::Moto::start(false) else {
        return;
    };
    s3.create_bucket("bucket");
    let dir = tempfile::tempdir().unwrap();
    let endpoint = s3.endpoint();
    let demo = Demo::start_env(
        &dir.path().join("audit.jsonl"),
        &format!("sqlite:{}", dir.path().join("audit.db").display()),
        &["--export-destination", "s3://bucket/audit-logs/"],
        &[
            ("AWS_ACCESS_KEY_ID", "demo"),
            ("AWS_SECRET_ACCESS_KEY", "demo-secret"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT", &endpoint),
            ("AWS_ALLOW_HTTP", "true"),
        ],
    );
    let admin = login(&demo, "admin@acme.test", "admin-password");
    for i in 0..3 {
        demo.call(
            "POST",
            "/v1/indexes",
            Some(&admin),
            Some(json!({"name": format!("ix{i}")})),
        );
    }
    wait_for(
        &demo,
        &admin,
        "/api/audit/logs?eventType=data.index.create",
        3,
    );

    // The seed's request as documented (its `filters` left open).
    let (status, _, started) = demo.call(
        "POST",
        "/api/audit/export",
        Some(&admin),
        Some(json!({"format": "csv", "filters": {}, "destination": "s3://bucket/audit-logs/"})),
    );
    assert_eq!(status, 202, "{started}");
    let done = job(&demo, &admin, started["jobId"].as_str().unwrap());
    assert_eq!(done["status"], "completed", "{done}");
    let key = done["key"].as_str().unwrap();
    assert!(key.starts_with("audit-logs/audit-export-") && key.ends_with(".csv"));
    let (object, _) = s3.object("bucket", key);
    assert!(object.starts_with(b"id,timestamp,"), "a CSV export");
    assert_eq!(done["sha256"], hex_sha256(&object));

    // The same filters straight to the client give the same bytes.
    let filters = json!({"eventType": "data.index.create"});
    let (status, _, started) = demo.call(
        "POST",
        "/api/audit/export",
        Some(&admin),
        Some(json!({"format": "ndjson", "filters": filters, "destination": "s3://bucket/audit-logs/acme"})),
    );
    assert_eq!(status, 202);
    let done = job(&demo, &admin, started["jobId"].as_str().unwrap());
    assert_eq!(done["events"], 3);
    let (object, _) = s3.object("bucket", done["key"].as_str().unwrap());
    let direct = demo.request(
        "POST",
        "/api/audit/export",
        &[
            ("authorization", &format!("Bearer {admin}")),
            ("content-type", "application/json"),
        ],
        &json!({"format": "ndjson", "filters": filters}).to_string(),
    );
    assert_eq!(direct.status, 200);
    assert_eq!(String::from_utf8(object).unwrap(), direct.content());

    // Anywhere else is refused before any work.
    let (status, _, refused) = demo.call(
        "POST",
        "/api/audit/export",
        Some(&admin),
        Some(json!({"format": "csv", "destination": "s3://elsewhere/audit-logs/"})),
    );
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (403, Some("FORBIDDEN"))
    );

    // Each job's end is in the trail, under the tenant, with the object's digest.
    let ends = wait_for(
        &demo,
        &admin,
        "/api/audit/logs?eventType=admin.audit_log.export&resourceType=audit_export",
        2,
    );
    for e in ends["logs"].as_array().unwrap() {
        assert_eq!(e["result"], "success");
        assert_eq!(e["context"]["organizationId"], "acme");
        assert_eq!(e["details"]["sha256"].as_str().unwrap().len(), 64);
    }
    demo.stop();
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
