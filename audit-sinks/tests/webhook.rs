//! The webhook sink against a loopback receiver that checks what a real one would: the
//! HMAC signature over the exact body, the idempotency key, the body size limit.
#![cfg(feature = "webhook")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use audit_core::Auditor;
use audit_sinks::WebhookSink;
use audit_sinks::webhook::signature;
use common::{Receiver, Reply, events, fast_retry};
use serde_json::Value;

const SECRET: &str = "whsec_test_0123456789";

/// Verifies the signature the way a receiver does; rejects bodies over `limit` with 413.
fn verifying(limit: usize) -> impl Fn(&common::Received) -> Reply + Send + Sync {
    move |r| {
        let sig = r.headers["x-audit-signature"].to_str().unwrap();
        if sig != format!("sha256={}", signature(SECRET.as_bytes(), &r.body)) {
            return Reply::status(401).body("bad signature");
        }
        if r.body.len() > limit {
            return Reply::status(413);
        }
        Reply::status(200)
    }
}

/// Every event id the receiver accepted, deduplicated by idempotency key as a receiver
/// would; panics if one key carried different events.
fn accepted(rx: &Receiver) -> Vec<String> {
    let mut by_key: HashMap<String, Vec<String>> = HashMap::new();
    for r in rx.requests() {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let ids: Vec<String> = body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect();
        let key = r.headers["idempotency-key"].to_str().unwrap().to_owned();
        if let Some(prev) = by_key.insert(key, ids.clone()) {
            assert_eq!(prev, ids, "one idempotency key, one set of events");
        }
    }
    by_key.into_values().flatten().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_after_failures_without_duplicates_and_signs_every_body() {
    let rx = Receiver::start(verifying(usize::MAX)).await;
    rx.script([
        Reply::status(500),
        Reply::status(503).header("retry-after", "1"),
    ]);
    let sink = WebhookSink::new(&rx.url("/hooks/audit"))
        .unwrap()
        .secret(SECRET);
    // Retry-After is honoured up to the sink's maximum backoff.
    let options = audit_core::SinkOptions::new().retry(
        audit_core::RetryPolicy::default()
            .initial_backoff(Duration::from_millis(10))
            .max_backoff(Duration::from_secs(5)),
    );
    let auditor = Auditor::builder().sink_with(sink, options).build().unwrap();
    let sent = events(50, 10);
    let started = Instant::now();
    for e in &sent {
        auditor.record(e.clone()).unwrap();
    }
    let report = auditor.shutdown(Duration::from_secs(20)).await;
    assert!(report.complete, "{report}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    let got = accepted(&rx);
    let unique: HashSet<_> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "no event accepted twice");
    for e in &sent {
        assert!(unique.contains(&e.id.to_string()));
    }
    let reqs = rx.requests();
    assert!(reqs.len() >= 3);
    assert_eq!(reqs[0].headers["content-type"], "application/json");
    // The retries carried the same events under the same key.
    assert_eq!(
        reqs[0].headers["idempotency-key"],
        reqs[2].headers["idempotency-key"]
    );
    // The seq audit of what the receiver got, in arrival order, each event once (a retry
    // carries the same events): one unbroken chain.
    let mut seen = HashSet::new();
    let mut trail = Vec::new();
    for r in &reqs {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        for e in body["events"].as_array().unwrap() {
            let event: audit_core::AuditEvent = serde_json::from_value(e.clone()).unwrap();
            if seen.insert(event.id.to_string()) {
                let mut line = Vec::new();
                event.write_json(&mut line).unwrap();
                trail.push(String::from_utf8(line).unwrap());
            }
        }
    }
    let audit =
        audit_core::integrity::Verifier::verify_lines(trail.iter().map(String::as_str), None);
    assert!(audit.is_intact(), "{:?}", audit.problems);
    assert_eq!(audit.dropped, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_413_splits_the_body_until_it_fits() {
    let rx = Receiver::start(verifying(8 * 1024)).await;
    // The sink itself allows far more per body than the receiver does.
    let sink = WebhookSink::new(&rx.url("/hooks/audit"))
        .unwrap()
        .secret(SECRET)
        .max_body_bytes(1 << 20);
    let auditor = Auditor::builder()
        .sink_with(sink, fast_retry())
        .build()
        .unwrap();
    let sent = events(200, 300);
    for e in &sent {
        auditor.record(e.clone()).unwrap();
    }
    assert!(auditor.shutdown(Duration::from_secs(20)).await.complete);
    let reqs = rx.requests();
    assert!(
        reqs.iter().any(|r| r.body.len() > 8 * 1024),
        "the first try was too large"
    );
    let got = accepted(&rx);
    // Bodies refused with 413 were not accepted; everything arrived in smaller ones.
    let accepted_ok: HashSet<_> = reqs
        .iter()
        .filter(|r| r.body.len() <= 8 * 1024)
        .flat_map(|r| {
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            v["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(accepted_ok.len(), sent.len());
    assert!(got.len() >= sent.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_payload_is_reported_as_lost_not_retried_forever() {
    let rx = Receiver::start(|_| Reply::status(400).body("schema mismatch")).await;
    let sink = WebhookSink::new(&rx.url("/hooks/audit")).unwrap();
    let auditor = Auditor::builder()
        .sink_with(sink, fast_retry())
        .build()
        .unwrap();
    for e in events(5, 10) {
        auditor.record(e).unwrap();
    }
    let report = auditor.shutdown(Duration::from_secs(10)).await;
    let m = &report.metrics.sinks[0];
    // The five events, plus the pipeline's own reports of the loss, which go to this sink
    // too and are rejected the same way; all counted.
    assert!(m.failed >= 5, "{report}");
    assert_eq!(m.delivered, 0);
    assert!(m.last_error.as_deref().unwrap().contains("400"));
    let keys: Vec<_> = rx
        .requests()
        .iter()
        .map(|r| r.headers["idempotency-key"].clone())
        .collect();
    let unique: HashSet<_> = keys.iter().collect();
    assert_eq!(
        unique.len(),
        keys.len(),
        "a permanent rejection is not retried"
    );
}

#[test]
fn bad_urls_are_clear_errors_and_debug_hides_secrets() {
    assert!(
        WebhookSink::new("ftp://x/y")
            .unwrap_err()
            .to_string()
            .contains("http or https")
    );
    assert!(
        WebhookSink::new("not a url")
            .unwrap_err()
            .to_string()
            .contains("not valid")
    );
    let sink = WebhookSink::new("https://h.example/hook?token=abc")
        .unwrap()
        .secret("s3cret");
    let shown = format!("{sink:?}");
    assert!(
        !shown.contains("s3cret") && !shown.contains("abc"),
        "{shown}"
    );
}
