//! The Splunk HEC sink against a loopback collector that checks what HEC checks: the path,
//! `Authorization: Splunk <token>`, a body of concatenated event objects with `time` in
//! epoch seconds, and a maximum content length.
#![cfg(feature = "splunk")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use audit_core::Auditor;
use audit_sinks::SplunkSink;
use common::{Receiver, Reply, events, fast_retry};
use serde_json::Value;

const TOKEN: &str = "11111111-2222-3333-4444-555555555555";

fn hec(limit: usize) -> impl Fn(&common::Received) -> Reply + Send + Sync {
    move |r| {
        if r.path != "/services/collector/event" {
            return Reply::status(404).body(r#"{"text":"Not found","code":404}"#);
        }
        if r.headers.get("authorization").and_then(|v| v.to_str().ok())
            != Some(&format!("Splunk {TOKEN}"))
        {
            return Reply::status(401).body(r#"{"text":"Invalid authorization","code":3}"#);
        }
        if r.body.len() > limit {
            return Reply::status(413).body(r#"{"text":"Content too large","code":27}"#);
        }
        for item in serde_json::Deserializer::from_slice(&r.body).into_iter::<Value>() {
            let Ok(item) = item else {
                return Reply::status(400).body(r#"{"text":"Invalid data format","code":6}"#);
            };
            if !item["time"].is_number() || !item["event"].is_object() {
                return Reply::status(400).body(r#"{"text":"Event field is required","code":12}"#);
            }
        }
        Reply::status(200).body(r#"{"text":"Success","code":0}"#)
    }
}

/// The event ids in a body.
fn ids(body: &[u8]) -> Vec<String> {
    serde_json::Deserializer::from_slice(body)
        .into_iter::<Value>()
        .map(|v| v.unwrap()["event"]["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_collector_and_oversize_bodies_lose_and_duplicate_nothing() {
    const LIMIT: usize = 16 * 1024;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let accepted = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let store = accepted.clone();
    let check = hec(LIMIT);
    // Busy once at the start, and once more on a later body (after others were accepted).
    let rx = Receiver::start(move |r| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        if n == 0 || n == 4 {
            return Reply::status(503).body(r#"{"text":"Server is busy","code":9}"#);
        }
        let reply = check(r);
        if reply.status == 200 {
            store.lock().unwrap().extend(ids(&r.body));
        }
        reply
    })
    .await;
    let sink = SplunkSink::new(&format!("http://{}", rx.addr), TOKEN)
        .unwrap()
        .index("audit")
        .sourcetype("audit:json")
        .max_body_bytes(64 * 1024);
    let auditor = Auditor::builder()
        .sink_with(sink, fast_retry().max_batch_events(10_000))
        .build()
        .unwrap();
    let sent = events(300, 200);
    for e in &sent {
        auditor.record(e.clone()).unwrap();
    }
    assert!(auditor.shutdown(Duration::from_secs(20)).await.complete);
    let got = accepted.lock().unwrap().clone();
    assert!(
        rx.requests().iter().any(|r| r.body.len() > LIMIT),
        "a body was refused as too large"
    );
    let unique: HashSet<_> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "nothing indexed twice");
    for e in &sent {
        assert!(unique.contains(&e.id.to_string()), "nothing lost");
    }
    let first = rx
        .requests()
        .into_iter()
        .find(|r| r.body.len() <= LIMIT)
        .unwrap();
    let item: Value = serde_json::Deserializer::from_slice(&first.body)
        .into_iter::<Value>()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(item["index"], "audit");
    assert_eq!(item["sourcetype"], "audit:json");
    let t = item["time"].as_f64().unwrap();
    let ms = sent[0].timestamp.unix_millis() as f64 / 1000.0;
    assert!(
        (t - ms).abs() < 0.002,
        "time is epoch seconds with millis: {t}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_keeps_events_queued_rather_than_dropping_them() {
    let rx = Receiver::start(hec(usize::MAX)).await;
    let sink = SplunkSink::new(&format!("http://{}", rx.addr), "wrong-token").unwrap();
    let auditor = Auditor::builder()
        .sink_with(sink, fast_retry())
        .build()
        .unwrap();
    auditor.record(events(1, 10).remove(0)).unwrap();
    let report = auditor.shutdown(Duration::from_millis(500)).await;
    let m = &report.metrics.sinks[0];
    assert_eq!(m.failed, 0, "not given up: {report}");
    assert!(m.pending >= 1 || m.retried >= 1, "{report}");
    assert!(m.last_error.as_deref().unwrap_or("").contains("401"));
    assert!(
        !m.last_error
            .as_deref()
            .unwrap_or("")
            .contains("wrong-token")
    );
}

#[test]
fn bad_configuration_is_a_clear_error() {
    assert!(
        SplunkSink::new("https://h:8088", "")
            .unwrap_err()
            .to_string()
            .contains("token")
    );
    assert!(SplunkSink::new("h:8088", "t").is_err());
}
