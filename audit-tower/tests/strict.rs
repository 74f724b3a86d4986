//! Strict rules with a durable spool, through a real server: a response is released once its
//! event is on disk, and refused (503) when the spool cannot take it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use audit_core::{Auditor, Batch, Sink, SinkError, SpoolOptions};
use audit_sinks::MemorySink;
use audit_tower::AuditLayer;
use audit_tower::classify::{Delivery, Rule, Rules};
use axum::Router;
use axum::routing::put;

struct Discard;

impl Sink for Discard {
    fn name(&self) -> &str {
        "discard"
    }
    async fn deliver(&mut self, _: &Batch) -> Result<(), SinkError> {
        Ok(())
    }
}

/// One `PUT` over a fresh connection: status and body.
async fn put_path(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("PUT {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    let status = raw.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, raw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_response_waits_for_the_spool_and_is_refused_when_it_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let trail = MemorySink::new(1000);
    // Room for a few events only: the segment being written is never trimmed.
    let auditor = Auditor::builder()
        .spool(
            SpoolOptions::new(dir.path().join("spool"))
                .max_bytes(4096)
                .durable_timeout(Duration::from_millis(500)),
        )
        .sink(Discard)
        .sink(trail.clone())
        .build()
        .unwrap();
    let rules = Rules::new()
        .rule(Rule::put("/strict").delivery(Delivery::Strict))
        .rule(Rule::put("/best"));
    let app = Router::new()
        .route("/strict", put(|| async { "done" }))
        .route("/best", put(|| async { "done" }))
        .layer(AuditLayer::new(auditor.clone()).rules(rules));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // While there is room: released, and the event is on disk by then.
    let (status, body) = put_path(addr, "/strict").await;
    assert_eq!(status, 200, "{body}");
    let spooled = std::fs::read_dir(dir.path().join("spool"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "spool"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect::<String>();
    assert!(spooled.contains("\"route\":\"/strict\""), "{spooled}");

    // Fill the spool with best-effort requests (never refused), then a strict one is.
    let mut refused = None;
    for _ in 0..20 {
        let (status, _) = put_path(addr, "/best").await;
        assert_eq!(status, 200);
        let (status, body) = put_path(addr, "/strict").await;
        if status == 503 {
            refused = Some(body);
            break;
        }
    }
    let body = refused.expect("a full spool refuses strict requests");
    assert!(body.contains("AUDIT_UNAVAILABLE"), "{body}");
    assert!(body.contains("durable"), "{body}");
    auditor.shutdown(Duration::from_secs(5)).await;
    // The trail says which events were not spooled, and why.
    let failed = trail.events_of_type("system.audit.spool_failed");
    assert!(!failed.is_empty());
    assert!(
        failed[0].details["error"]
            .as_str()
            .unwrap()
            .contains("the spool is full")
    );
}
