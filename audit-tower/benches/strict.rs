//! What a strict rule with the durable spool adds to a request's latency, against a
//! best-effort rule, over real HTTP on loopback.
//!
//! ```text
//! cargo bench -p audit-tower --bench strict
//! ```
//!
//! One axum server with the `AuditLayer` (a discarding sink, the spool in a temporary
//! directory under `SPOOL_DIR`, default the system's temporary directory): `PUT /strict` has a strict rule, `PUT /best` the default
//! best-effort one. Clients send requests over keep-alive connections, alternating the two
//! routes, first one client at a time (the latency of a lone request: one fsync each), then
//! eight at once (group commit shares an fsync between requests). Prints p50 and p99 per route
//! and concurrency.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout
)]

use std::time::{Duration, Instant};

use audit_core::{Auditor, Batch, Sink, SinkError, SpoolOptions};
use audit_tower::AuditLayer;
use audit_tower::classify::{Delivery, Rule, Rules};
use axum::Router;
use axum::routing::put;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

struct Discard;

impl Sink for Discard {
    fn name(&self) -> &str {
        "discard"
    }
    async fn deliver(&mut self, _: &Batch) -> Result<(), SinkError> {
        Ok(())
    }
}

const PER_CLIENT: usize = 500;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // The spool goes where `SPOOL_DIR` says (default: the system's temporary directory);
    // what is measured is that file system's fsync.
    let dir = match std::env::var_os("SPOOL_DIR") {
        Some(d) => tempfile::tempdir_in(d).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let auditor = Auditor::builder()
        .spool(SpoolOptions::new(dir.path().join("spool")))
        .sink(Discard)
        .build()
        .unwrap();
    let rules = Rules::new()
        .rule(Rule::put("/strict").delivery(Delivery::Strict))
        .rule(Rule::put("/best"));
    let app = Router::new()
        .route("/strict", put(|| async { "ok" }))
        .route("/best", put(|| async { "ok" }))
        .layer(AuditLayer::new(auditor.clone()).rules(rules));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    println!("spool in {}", dir.path().display());
    for clients in [1usize, 8] {
        let mut lat: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                tokio::spawn(async move {
                    let client =
                        Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
                    let mut out: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
                    for i in 0..PER_CLIENT * 2 {
                        let path = if i % 2 == 0 { "strict" } else { "best" };
                        let req = http::Request::put(format!("http://{addr}/{path}"))
                            .body(Empty::new())
                            .unwrap();
                        let t = Instant::now();
                        let resp = client.request(req).await.unwrap();
                        assert_eq!(resp.status(), 200);
                        resp.into_body().collect().await.unwrap();
                        out[i % 2].push(t.elapsed());
                    }
                    out
                })
            })
            .collect();
        for t in tasks {
            let [s, b] = t.await.unwrap();
            lat[0].extend(s);
            lat[1].extend(b);
        }
        for (name, l) in ["strict (durable)", "best effort"].iter().zip(&mut lat) {
            l.sort();
            println!(
                "{clients} client(s), {name:<16}: p50 {:>9.3?}  p99 {:>9.3?}  ({} requests)",
                percentile(l, 0.5),
                percentile(l, 0.99),
                l.len()
            );
        }
    }
    auditor.shutdown(Duration::from_secs(10)).await;
}
