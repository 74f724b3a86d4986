//! The Datadog sink against a loopback intake that checks what Datadog's does: the API key
//! header, gzip, a JSON array, at most 1,000 entries and 5 MB uncompressed per payload, and
//! no entry over 1 MB.
#![cfg(feature = "datadog")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use audit_core::Auditor;
use audit_sinks::DatadogSink;
use common::{Receiver, Reply, events, fast_retry};
use serde_json::Value;

const KEY: &str = "0123456789abcdef0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_respect_the_intake_limits_and_nothing_is_lost() {
    let accepted = Arc::new(Mutex::new(Vec::<Value>::new()));
    let store = accepted.clone();
    let rx = Receiver::start(move |r| {
        if r.path != "/api/v2/logs"
            || r.headers.get("dd-api-key").map(|v| v.as_bytes()) != Some(KEY.as_bytes())
        {
            return Reply::status(403);
        }
        if r.headers["content-encoding"] != "gzip" {
            return Reply::status(400);
        }
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&r.body[..])
            .read_to_end(&mut raw)
            .unwrap();
        if raw.len() > 5_000_000 {
            return Reply::status(413);
        }
        let entries: Vec<Value> = serde_json::from_slice(&raw).unwrap();
        if entries.len() > 1000 {
            return Reply::status(400).body("too many entries");
        }
        for e in &entries {
            if serde_json::to_vec(e).unwrap().len() > 1_000_000 {
                return Reply::status(400).body("entry too large");
            }
        }
        store.lock().unwrap().extend(entries);
        Reply::status(202).body("{}")
    })
    .await;
    rx.script([Reply::status(500)]);
    let sink = DatadogSink::new(&rx.url("/api/v2/logs"), KEY)
        .unwrap()
        .tags("env:test");
    // The pipeline's own caps would cut the oversized event first; raise them so the sink's
    // handling of an entry over Datadog's limit is what is tested.
    let auditor = Auditor::builder()
        .limits(
            audit_core::Limits::default()
                .text(2_000_000)
                .event_bytes(4 << 20),
        )
        .sink_with(
            sink,
            fast_retry()
                .max_batch_events(10_000)
                .max_batch_bytes(64 << 20)
                .queue_bytes(256 << 20)
                .filter(|e| e.event_type.as_str() == "data.vector.delete"),
        )
        .build()
        .unwrap();
    let mut sent = events(2500, 2000);
    sent[1].actor = Some(
        audit_core::Actor::user("user-7")
            .with_email("u7@globex.test")
            .with_ip_address("203.0.113.9"),
    );
    sent[1].target = Some(audit_core::Target::new("vector", "v-1"));
    sent[1].result = Some(audit_core::Outcome::Denied);
    sent[1].http = Some(
        audit_core::HttpFacts::default()
            .with_method("DELETE")
            .with_path("/v1/vectors/v-1")
            .with_status_code(403),
    );
    // One event far over the 1 MB entry limit.
    sent[7]
        .details
        .insert("blob".into(), Value::String("y".repeat(1_500_000)));
    for e in &sent {
        auditor.record(e.clone()).unwrap();
    }
    let report = auditor.shutdown(Duration::from_secs(30)).await;
    assert!(report.complete, "{report}");
    let got = accepted.lock().unwrap();
    let ids: Vec<String> = got
        .iter()
        .map(|e| e["evt"]["id"].as_str().unwrap().to_owned())
        .collect();
    let unique: HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no duplicates after the 500");
    assert_eq!(unique.len(), sent.len(), "nothing lost");
    let big = got
        .iter()
        .find(|e| e["evt"]["id"] == sent[7].id.to_string())
        .unwrap();
    assert_eq!(big["truncated"], true);
    let msg: Value = serde_json::from_str(big["message"].as_str().unwrap()).unwrap();
    assert!(msg["originalBytes"].as_u64().unwrap() > 1_000_000);
    let normal = got
        .iter()
        .find(|e| e["evt"]["id"] == sent[0].id.to_string())
        .unwrap();
    assert!(normal["ddtags"].as_str().unwrap().contains("tenant:acme"));
    assert!(normal["ddtags"].as_str().unwrap().ends_with("env:test"));
    let full: Value = serde_json::from_str(normal["message"].as_str().unwrap()).unwrap();
    assert_eq!(full["id"], sent[0].id.to_string());
    // The fields facets use, where Datadog's standard attributes put them.
    let faceted = got
        .iter()
        .find(|e| e["evt"]["id"] == sent[1].id.to_string())
        .unwrap();
    assert_eq!(faceted["usr"]["id"], "user-7");
    assert_eq!(faceted["usr"]["email"], "u7@globex.test");
    assert_eq!(faceted["network"]["client"]["ip"], "203.0.113.9");
    assert_eq!(faceted["evt"]["outcome"], "denied");
    assert_eq!(faceted["evt"]["category"], "data");
    assert_eq!(faceted["evt"]["name"], "data.vector.delete");
    assert_eq!(faceted["audit"]["tenant"], "globex");
    assert_eq!(faceted["audit"]["target"]["type"], "vector");
    assert_eq!(faceted["audit"]["target"]["id"], "v-1");
    assert_eq!(faceted["http"]["status_code"], 403);
    assert_eq!(faceted["http"]["url_details"]["path"], "/v1/vectors/v-1");
    // 2500 entries cannot go in fewer than three payloads.
    assert!(rx.requests().len() >= 4);
}

#[test]
fn configuration_errors() {
    assert!(
        DatadogSink::new("datadoghq.com", "")
            .unwrap_err()
            .to_string()
            .contains("API key")
    );
    assert!(DatadogSink::new("datadoghq.eu", KEY).is_ok());
}
