//! The Elasticsearch sink against a loopback `_bulk` endpoint that parses NDJSON as the
//! real one does (final newline required, action + document pairs) and keeps documents by
//! `_id`, answering 409 for ids it has and scripted per-item failures.
#![cfg(feature = "elasticsearch")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use audit_core::Auditor;
use audit_sinks::ElasticsearchSink;
use audit_sinks::elasticsearch::DocFormat;
use common::{Receiver, Reply, events, fast_retry};
use serde_json::{Value, json};

type Index = Arc<Mutex<HashMap<String, (String, Value)>>>;

/// A `_bulk` endpoint: the first item of every request whose number is in `throttle` gets
/// 429; a document with `"reject": true` in its details gets a 400 mapping error.
fn bulk(
    index: Index,
    throttle: Arc<Mutex<HashSet<usize>>>,
) -> impl Fn(&common::Received) -> Reply + Send + Sync {
    let calls = Arc::new(Mutex::new(0usize));
    move |r| {
        if r.path != "/_bulk" {
            return Reply::status(404);
        }
        if r.headers["content-type"] != "application/x-ndjson" {
            return Reply::status(406);
        }
        let text = std::str::from_utf8(&r.body).unwrap();
        if !text.ends_with('\n') {
            return Reply::status(400)
                .body(r#"{"error":"The bulk request must be terminated by a newline [\n]"}"#);
        }
        let n = {
            let mut c = calls.lock().unwrap();
            *c += 1;
            *c
        };
        let lines: Vec<&str> = text.lines().collect();
        let mut items = Vec::new();
        let mut errors = false;
        for (k, pair) in lines.chunks(2).enumerate() {
            let action: Value = serde_json::from_str(pair[0]).unwrap();
            let doc: Value = serde_json::from_str(pair[1]).unwrap();
            let create = &action["create"];
            let id = create["_id"].as_str().unwrap().to_owned();
            let idx = create["_index"].as_str().unwrap().to_owned();
            let status = if k == 0 && throttle.lock().unwrap().contains(&n) {
                errors = true;
                json!({"create": {"_id": id, "status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "queue full"}}})
            } else if doc["audit"]["details"]["reject"] == true || doc["details"]["reject"] == true
            {
                errors = true;
                json!({"create": {"_id": id, "status": 400, "error": {"type": "mapper_parsing_exception", "reason": "failed to parse field"}}})
            } else {
                let mut idx_map = index.lock().unwrap();
                if idx_map.contains_key(&id) {
                    errors = true;
                    json!({"create": {"_id": id, "status": 409, "error": {"type": "version_conflict_engine_exception"}}})
                } else {
                    idx_map.insert(id.clone(), (idx, doc));
                    json!({"create": {"_id": id, "status": 201}})
                }
            };
            items.push(status);
        }
        Reply::status(200).body(json!({"took": 1, "errors": errors, "items": items}).to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_failed_items_alone_and_never_indexes_twice() {
    let index: Index = Arc::default();
    let throttle = Arc::new(Mutex::new(HashSet::from([1usize, 2])));
    let rx = Receiver::start(bulk(index.clone(), throttle)).await;
    // The whole first request also fails once at the HTTP level.
    rx.script([Reply::status(503)]);
    let sink = ElasticsearchSink::new(&format!("http://{}", rx.addr), "audit-{date}").unwrap();
    let auditor = Auditor::builder()
        .sink_with(sink, fast_retry())
        .build()
        .unwrap();
    let sent = events(120, 50);
    for e in &sent {
        auditor.record(e.clone()).unwrap();
    }
    let report = auditor.shutdown(Duration::from_secs(20)).await;
    assert!(report.complete, "{report}");
    let idx = index.lock().unwrap();
    for e in &sent {
        let (name, doc) = idx.get(&e.id.to_string()).expect("indexed");
        let date = e.timestamp.to_string()[..10].replace('-', ".");
        assert_eq!(name, &format!("audit-{date}"));
        assert_eq!(doc["event"]["id"], e.id.to_string(), "ECS document");
        assert_eq!(doc["ecs"]["version"], "9.4.0");
    }
    // After the throttled item, the next request carried that item alone.
    let reqs = rx.requests();
    let lens: Vec<usize> = reqs
        .iter()
        .map(|r| std::str::from_utf8(&r.body).unwrap().lines().count() / 2)
        .collect();
    assert!(lens.iter().skip(1).any(|n| *n == 1), "{lens:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_documents_fail_the_batch_visibly() {
    let index: Index = Arc::default();
    let rx = Receiver::start(bulk(index.clone(), Arc::default())).await;
    let sink = ElasticsearchSink::new(&format!("http://{}", rx.addr), "audit-events")
        .unwrap()
        .format(DocFormat::Native);
    let auditor = Auditor::builder()
        .sink_with(
            sink,
            fast_retry().filter(|e| e.event_type.as_str() != "system.audit.dropped"),
        )
        .build()
        .unwrap();
    let mut sent = events(3, 10);
    sent[1].details.insert("reject".into(), Value::Bool(true));
    for e in &sent {
        auditor.record(e.clone()).unwrap();
    }
    let report = auditor.shutdown(Duration::from_secs(10)).await;
    let m = &report.metrics.sinks[0];
    assert!(m.failed >= 1, "{report}");
    assert!(
        m.last_error.as_deref().unwrap().contains("rejected 1 of"),
        "{report}"
    );
    // The other two are stored (native documents), once.
    let idx = index.lock().unwrap();
    assert!(idx.contains_key(&sent[0].id.to_string()));
    assert!(idx.contains_key(&sent[2].id.to_string()));
    assert_eq!(
        idx[&sent[0].id.to_string()].1["eventType"],
        "data.vector.delete"
    );
}

#[test]
fn bad_targets_are_clear_errors() {
    assert!(
        ElasticsearchSink::new("http://h:9200", "Audit")
            .unwrap_err()
            .to_string()
            .contains("lowercase")
    );
    assert!(ElasticsearchSink::new("http://h:9200", "").is_err());
    assert!(ElasticsearchSink::new("h:9200", "audit").is_err());
}
