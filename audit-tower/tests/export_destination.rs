//! `POST /export` with a destination, over a real server on a random port, against moto as
//! the S3 peer on loopback and a local directory: the object's bytes equal a direct export,
//! large exports go up in parts, the job is visible through the API, failures say why in the
//! job, and the allow-list decides where exports may go.
#![cfg(feature = "object-store")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

#[path = "support/moto.rs"]
mod moto;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use audit_core::store::{Store, TenantScope};
use audit_core::{AuditEvent, Auditor, Timestamp};
use audit_sinks::{MemorySink, SqliteStore};
use audit_tower::api::{ApiKeys, AuditApi, Destinations, EXPORT_PART_SIZE, Principal, SCOPE_READ};
use moto::{Moto, http};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const BASE_MS: i64 = 1_760_000_000_000;

/// Events of `tenant`, `n` of them, each over 1.2 KB as JSON.
fn events(tenant: &str, n: usize) -> Vec<Arc<AuditEvent>> {
    (0..n)
        .map(|i| {
            Arc::new(
                AuditEvent::builder("data.vector.read")
                    .timestamp(Timestamp::from_unix_millis(BASE_MS + i as i64).unwrap())
                    .organization_id(tenant)
                    .description(format!("Read {i}: {}", "v".repeat(600)))
                    .detail("n", i as u64)
                    .detail("note", "n".repeat(600))
                    .build()
                    .unwrap(),
            )
        })
        .collect()
}

fn s3(moto: &Moto, bucket: &str) -> Arc<dyn object_store::ObjectStore> {
    Arc::new(
        AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_endpoint(moto.endpoint())
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()
            .unwrap(),
    )
}

/// Calls the API over TCP as `key`; returns status and body bytes.
fn call(addr: SocketAddr, method: &str, path: &str, key: &str, body: &Value) -> (u16, Vec<u8>) {
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    let auth = format!("Bearer {key}");
    let (status, _, out) = http(
        &addr.to_string(),
        method,
        path,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        &body,
    );
    (status, out)
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

/// Starts an export job and waits for it to end; returns the job.
fn run_job(addr: SocketAddr, key: &str, body: &Value) -> Value {
    let (status, answer) = call(addr, "POST", "/api/audit/export", key, body);
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&answer));
    let answer = json_of(&answer);
    assert_eq!(answer["status"], "running");
    let url = answer["statusUrl"].as_str().unwrap().to_owned();
    assert_eq!(
        url,
        format!("/api/audit/exports/{}", answer["jobId"].as_str().unwrap())
    );
    let start = Instant::now();
    loop {
        let (status, job) = call(addr, "GET", &url, key, &Value::Null);
        assert_eq!(status, 200);
        let job = json_of(&job);
        if job["status"] != "running" {
            return job;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "{job}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_land_in_object_storage_as_jobs() {
    let Some(moto) = Moto::start(false) else {
        return;
    };
    let Some(locked) = Moto::start(true) else {
        return;
    };
    moto.create_bucket("audit-bucket");

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("audit.db")).unwrap());
    // Over two parts of JSON lines for acme; a few events of another tenant beside them.
    let many = 2 * EXPORT_PART_SIZE / 1200 + 500;
    for chunk in events("acme", many).chunks(5000) {
        store.append(chunk).await.unwrap();
    }
    store.append(&events("globex", 20)).await.unwrap();

    let memory = MemorySink::new(1000);
    let auditor = Auditor::builder().sink(memory.clone()).build().unwrap();
    let local = dir.path().join("exports");
    // First: it installs the TLS provider the S3 clients are built with.
    let destinations = Destinations::new();
    let destinations = destinations
        .allow_store(
            "s3://audit-bucket/audit-logs/",
            s3(&moto, "audit-bucket"),
            Path::from("audit-logs"),
            TenantScope::tenant("acme"),
        )
        .allow_store(
            "s3://missing-bucket/x/",
            s3(&moto, "missing-bucket"),
            Path::from("x"),
            TenantScope::All,
        )
        .allow_store(
            "s3://locked/",
            s3(&locked, "locked"),
            Path::default(),
            TenantScope::All,
        )
        .allow(&format!("file://{}/", local.display()), TenantScope::All)
        .unwrap();
    let read = |tenant: &str| {
        Principal::new("api_key", tenant)
            .tenant(tenant)
            .scope(SCOPE_READ)
    };
    let keys = ApiKeys::new()
        .key("acme-key", read("acme"))
        .key("globex-key", read("globex"));
    let app = AuditApi::new(store.clone(), keys, auditor.clone())
        .export_destinations(destinations)
        .export_rate_limit(100, Duration::from_secs(60))
        .router::<()>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let outcome = tokio::task::spawn_blocking(move || {
        let filters = json!({"eventType": "data.vector.read"});
        // A large export to S3: the object equals a direct export, byte for byte.
        let job = run_job(
            addr,
            "acme-key",
            &json!({"format": "ndjson", "filters": filters, "destination": "s3://audit-bucket/audit-logs/"}),
        );
        assert_eq!(job["status"], "completed", "{job}");
        assert_eq!(job["events"], many as u64);
        let key = job["key"].as_str().unwrap();
        assert_eq!(
            key,
            format!("audit-logs/audit-export-{}.ndjson", job["id"].as_str().unwrap())
        );
        assert_eq!(job["location"], format!("s3://audit-bucket/{key}"));
        let (object, etag) = moto.object("audit-bucket", key);
        let (status, direct) = call(
            addr,
            "POST",
            "/api/audit/export",
            "acme-key",
            &json!({"format": "ndjson", "filters": filters}),
        );
        assert_eq!(status, 200);
        assert!(object.len() > 2 * EXPORT_PART_SIZE);
        assert!(object == direct, "the object is the export");
        assert_eq!(job["size"], object.len() as u64);
        assert_eq!(job["sha256"], hex::encode(Sha256::digest(&object)));
        assert!(etag.ends_with("-3\""), "uploaded in three parts: {etag}");

        // Another tenant cannot see the job, nor export there.
        let id = job["id"].as_str().unwrap();
        let (status, _) = call(addr, "GET", &format!("/api/audit/exports/{id}"), "globex-key", &Value::Null);
        assert_eq!(status, 404);
        let (status, body) = call(
            addr,
            "POST",
            "/api/audit/export",
            "globex-key",
            &json!({"format": "csv", "destination": "s3://audit-bucket/audit-logs/"}),
        );
        assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
        // Only allowed addresses, and plain sub-paths below them.
        for (destination, want) in [
            ("s3://other-bucket/", 403),
            ("s3://audit-bucket/", 403),
            ("s3://audit-bucket/audit-logs-x/", 403),
            ("s3://audit-bucket/audit-logs/../secret/", 400),
            ("s3://audit-bucket/audit-logs/a%2Fb/", 400),
            ("https://example.com/upload", 403),
        ] {
            let (status, _) = call(
                addr,
                "POST",
                "/api/audit/export",
                "acme-key",
                &json!({"format": "csv", "destination": destination}),
            );
            assert_eq!(status, want, "{destination}");
        }
        let small = json!({"eventType": "data.vector.read", "startTime": "2025-10-09T08:53:20.000Z", "endTime": "2025-10-09T08:53:20.010Z"});
        let job = run_job(
            addr,
            "acme-key",
            &json!({"format": "csv", "filters": small, "destination": "s3://audit-bucket/audit-logs/2026/q4"}),
        );
        assert_eq!(job["status"], "completed", "{job}");
        assert!(job["key"].as_str().unwrap().starts_with("audit-logs/2026/q4/audit-export-"));
        assert_eq!(job["events"], 10);

        // The local file system.
        let job = run_job(
            addr,
            "acme-key",
            &json!({"format": "csv", "filters": small, "destination": format!("file://{}/daily/", local.display())}),
        );
        assert_eq!(job["status"], "completed", "{job}");
        let written = std::fs::read(local.join(job["key"].as_str().unwrap())).unwrap();
        let (_, direct) = call(
            addr,
            "POST",
            "/api/audit/export",
            "acme-key",
            &json!({"format": "csv", "filters": small}),
        );
        assert!(written == direct);

        // Failures are the job's state, with the peer's reason.
        let job = run_job(
            addr,
            "acme-key",
            &json!({"format": "json", "filters": small, "destination": "s3://missing-bucket/x/"}),
        );
        assert_eq!(job["status"], "failed");
        let error = job["error"].as_str().unwrap();
        assert!(error.contains("NoSuchBucket"), "{error}");
        let job = run_job(
            addr,
            "acme-key",
            &json!({"format": "json", "filters": small, "destination": "s3://locked/"}),
        );
        assert_eq!(job["status"], "failed");
        let error = job["error"].as_str().unwrap();
        assert!(error.contains("403") || error.contains("InvalidAccessKeyId"), "{error}");
        drop(locked);
        drop(moto);
    })
    .await;
    outcome.unwrap();

    // Each job's end is in the trail.
    assert!(auditor.flush(Duration::from_secs(5)).await);
    let ends: Vec<_> = memory
        .events_of_type("admin.audit_log.export")
        .into_iter()
        .filter(|e| e.details.contains_key("jobId") && e.target.is_some())
        .collect();
    assert_eq!(ends.len(), 5, "{ends:?}");
    let ok: Vec<_> = ends
        .iter()
        .filter(|e| e.result == Some(audit_core::Outcome::Success))
        .collect();
    assert_eq!(ok.len(), 3);
    assert!(
        ok.iter()
            .all(|e| e.details["sha256"].as_str().unwrap().len() == 64)
    );
    assert!(ends.iter().all(|e| e.organization_id() == Some("acme")));
    assert!(
        ends.iter()
            .filter(|e| e.result == Some(audit_core::Outcome::Error))
            .all(|e| e.details["error"].is_string())
    );
}
