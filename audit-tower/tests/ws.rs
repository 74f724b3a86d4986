//! `GET /ws` over a real server on a random port with a real WebSocket client: the token
//! travels as a subprotocol, events are scoped to the caller's tenant and filters, a revoked
//! credential closes the socket, every socket has a lifetime, and a client that does not read
//! is disconnected without slowing anything else.

#![cfg(feature = "api")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use audit_core::live::LiveFeed;
use audit_core::{AuditEvent, Auditor};
use audit_sinks::{MemorySink, SqliteStore};
use audit_tower::api::{AuditApi, AuthError, AuthFuture, Authorizer, Principal, SCOPE_READ};
use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// Bearer tokens that can be revoked while a socket is open.
#[derive(Clone, Default)]
struct Tokens(Arc<Mutex<HashMap<String, Principal>>>);

impl Authorizer for Tokens {
    fn authorize<'a>(&'a self, parts: &'a http::request::Parts) -> AuthFuture<'a> {
        let token = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let result = match token {
            None => Err(AuthError::Missing),
            Some(t) => self
                .0
                .lock()
                .unwrap()
                .get(t)
                .cloned()
                .ok_or(AuthError::Invalid),
        };
        Box::pin(std::future::ready(result))
    }
}

struct Server {
    addr: std::net::SocketAddr,
    tokens: Tokens,
    publisher: Auditor,
}

async fn server(configure: impl FnOnce(AuditApi) -> AuditApi) -> Server {
    let feed = LiveFeed::new(8192);
    let publisher = Auditor::builder().sink(feed.clone()).build().unwrap();
    let trail = Auditor::builder()
        .sink(MemorySink::new(100))
        .build()
        .unwrap();
    let tokens = Tokens::default();
    for (token, tenant, scoped) in [
        ("a", "org-a", true),
        ("b", "org-b", true),
        ("none", "org-a", false),
    ] {
        let mut p = Principal::new("api_key", token).tenant(tenant);
        if scoped {
            p = p.scope(SCOPE_READ);
        }
        tokens.0.lock().unwrap().insert(token.to_owned(), p);
    }
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let app = configure(AuditApi::new(store, tokens.clone(), trail).live(feed)).router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server {
        addr,
        tokens,
        publisher,
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects as a browser would: the token as a `bearer.` subprotocol.
async fn connect(s: &Server, token: &str, query: &str) -> Result<(Socket, String), WsError> {
    let mut req = format!("ws://{}/api/audit/ws{query}", s.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        format!("audit.v1, bearer.{token}").parse().unwrap(),
    );
    let (socket, resp) = tokio_tungstenite::connect_async(req).await?;
    let protocol = resp.headers()["sec-websocket-protocol"]
        .to_str()
        .unwrap()
        .to_owned();
    Ok((socket, protocol))
}

fn event(tenant: &str, event_type: &str, n: usize) -> AuditEvent {
    AuditEvent::builder(event_type)
        .organization_id(tenant)
        .detail("n", n)
        .build()
        .unwrap()
}

/// The next JSON message, or `None` once the socket closed.
async fn next(socket: &mut Socket, wait: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(wait, socket.next()).await {
            Err(_) => panic!("nothing within {wait:?}"),
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return None,
            Ok(Some(Ok(Message::Text(t)))) => return Some(serde_json::from_str(&t).unwrap()),
            Ok(Some(Ok(_))) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_the_callers_tenant_and_filters_only() {
    let s = server(|api| api).await;
    let (mut socket, protocol) = connect(&s, "a", "?eventType=data.*").await.unwrap();
    assert_eq!(protocol, "audit.v1", "the token is never echoed");
    for e in [
        event("org-b", "data.secret.read", 1),
        event("org-a", "auth.login.success", 2),
        event("org-a", "data.vector.delete", 3),
    ] {
        s.publisher.record(e).unwrap();
    }
    s.publisher.flush(Duration::from_secs(5)).await;
    let msg = next(&mut socket, Duration::from_secs(5)).await.unwrap();
    assert_eq!(msg["type"], "event");
    assert_eq!(msg["event"]["eventType"], "data.vector.delete");
    assert_eq!(msg["event"]["context"]["organizationId"], "org-a");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), socket.next())
            .await
            .is_err(),
        "nothing else was for this caller"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_come_before_the_upgrade() {
    let s = server(|api| api).await;
    for (token, query, status) in [
        ("wrong", "", 401),
        ("none", "", 403),
        ("a", "?limit=5", 400),
        ("a", "?category=nope", 400),
    ] {
        match connect(&s, token, query).await {
            Err(WsError::Http(resp)) => assert_eq!(resp.status(), status, "{token} {query}"),
            other => panic!("{token} {query}: {:?}", other.map(|_| ())),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_credential_closes_the_socket() {
    let s =
        server(|api| api.stream_limits(Duration::from_millis(50), Duration::from_secs(3600))).await;
    let (mut socket, _) = connect(&s, "a", "").await.unwrap();
    s.tokens.0.lock().unwrap().remove("a");
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.publisher
        .record(event("org-a", "data.vector.delete", 1))
        .unwrap();
    let msg = next(&mut socket, Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        msg,
        serde_json::json!({"type": "closed", "reason": "revoked"})
    );
    assert!(next(&mut socket, Duration::from_secs(5)).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_socket_has_a_lifetime() {
    let s = server(|api| api.stream_limits(Duration::from_millis(50), Duration::from_millis(300)))
        .await;
    let (mut socket, _) = connect(&s, "a", "").await.unwrap();
    let msg = next(&mut socket, Duration::from_secs(5)).await.unwrap();
    assert_eq!(msg["reason"], "expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_is_dropped_and_slows_nothing() {
    let s = server(|api| api).await;
    let (mut slow, _) = connect(&s, "a", "").await.unwrap();
    let (mut fast, _) = connect(&s, "a", "").await.unwrap();
    let reader = tokio::spawn(async move {
        let mut seen = 0;
        while let Some(msg) = next(&mut fast, Duration::from_secs(20)).await {
            if msg["type"] == "event" {
                seen += 1;
            }
            if seen == 3000 {
                break;
            }
        }
        seen
    });
    let pad = "p".repeat(3000);
    let started = std::time::Instant::now();
    for i in 0..3000 {
        let mut e = event("org-a", "data.vector.delete", i);
        e.details.insert("pad".into(), pad.clone().into());
        s.publisher.record(e).unwrap();
        if i % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert!(s.publisher.flush(Duration::from_secs(10)).await);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the pipeline did not wait for the slow client"
    );
    assert_eq!(
        reader.await.unwrap(),
        3000,
        "a reading client gets everything"
    );
    // The slow client held about 9 MB unread: the server gave up on it after the send
    // timeout and closed the connection; what it reads now ends before the last event.
    tokio::time::sleep(audit_tower::api::WS_SEND_TIMEOUT + Duration::from_secs(1)).await;
    let mut read = 0;
    while let Some(msg) = next(&mut slow, Duration::from_secs(10)).await {
        if msg["type"] == "event" {
            read += 1;
        }
    }
    assert!(
        read < 3000,
        "the slow client was disconnected ({read} read)"
    );
}
