//! A scriptable HTTP receiver on loopback for the shipping sinks' tests: it records every
//! request and answers from a script (status, headers, body), or with a handler that
//! inspects the request the way the real receiver would.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// What the receiver answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
        }
    }
    pub fn body(mut self, body: impl Into<String>) -> Reply {
        self.body = body.into();
        self
    }
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

type Handler = dyn Fn(&Received) -> Reply + Send + Sync;

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
}

struct Shared {
    log: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    handler: Box<Handler>,
}

async fn any(State(s): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let r = Received {
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers,
        body,
    };
    let scripted = s.script.lock().unwrap().pop_front();
    let reply = scripted.unwrap_or_else(|| (s.handler)(&r));
    s.log.lock().unwrap().push(r);
    let mut resp = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (k, v) in reply.headers {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}

impl Receiver {
    /// Starts a receiver answering with `handler` once the script is used up.
    pub async fn start(handler: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> Receiver {
        let log = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let shared = Arc::new(Shared {
            log: log.clone(),
            script: script.clone(),
            handler: Box::new(handler),
        });
        let app = axum::Router::new().fallback(any).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { addr, log, script }
    }

    /// Answers the next requests with these replies, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.script.lock().unwrap().extend(replies);
    }

    pub fn requests(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// Test pipeline options: small, fast retries.
pub fn fast_retry() -> audit_core::SinkOptions {
    audit_core::SinkOptions::new().retry(
        audit_core::RetryPolicy::default()
            .initial_backoff(std::time::Duration::from_millis(10))
            .max_backoff(std::time::Duration::from_millis(50)),
    )
}

/// `n` events with distinct ids and a detail of `pad` bytes.
pub fn events(n: usize, pad: usize) -> Vec<audit_core::AuditEvent> {
    (0..n)
        .map(|i| {
            audit_core::AuditEvent::builder("data.vector.delete")
                .organization_id(if i % 2 == 0 { "acme" } else { "globex" })
                .detail("i", i as u64)
                .detail("pad", "x".repeat(pad))
                .build()
                .unwrap()
        })
        .collect()
}
