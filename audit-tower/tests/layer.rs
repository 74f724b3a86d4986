//! The AuditLayer end to end: what lands in the sink for requests through a real axum router
//! and a real hyper server.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use audit_core::{Actor, AuditEvent, Auditor, Category, Outcome};
use audit_sinks::MemorySink;
use audit_tower::classify::{Rule, Rules};
use audit_tower::net::IpNet;
use audit_tower::request_id::{RequestIdPolicy, TrustInbound};
use audit_tower::{AuditContext, AuditLayer, RequestBody, RequestId};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::{Extension, Router};
use http::{HeaderValue, StatusCode};
use tower::ServiceExt;

struct Harness {
    memory: MemorySink,
    auditor: Auditor,
}

impl Harness {
    fn new() -> Harness {
        let memory = MemorySink::new(1000);
        let auditor = Auditor::builder()
            .service("vector-api")
            .sink(memory.clone())
            .build()
            .unwrap();
        Harness { memory, auditor }
    }

    async fn events(&self) -> Vec<Arc<AuditEvent>> {
        assert!(self.auditor.flush(Duration::from_secs(5)).await);
        self.memory.events()
    }
}

/// Sends `head` (a request's head, ended by an empty line) over a new connection to `addr`
/// and reads the whole answer, as a client of the served application would.
async fn send_raw(addr: SocketAddr, head: String) -> Vec<u8> {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(head.as_bytes()).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        raw
    })
    .await
    .unwrap()
}

/// Auth middleware as an application would write it: inside the audit layer, it records
/// the actor it established (here from a header, standing in for a verified token).
async fn fake_auth(req: Request, next: Next) -> Response {
    let user = req
        .headers()
        .get("x-test-user")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match (user, req.extensions().get::<AuditContext>().cloned()) {
        (Some(user), Some(ctx)) => {
            ctx.set_actor(Actor::user(&user).with_role("admin"));
            ctx.set_organization_id("acme");
            next.run(req).await
        }
        (None, _) if req.uri().path().starts_with("/v1") => Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .body(Body::empty())
            .unwrap(),
        _ => next.run(req).await,
    }
}

fn rules() -> Rules {
    Rules::new()
        .rule(
            Rule::post("/auth/login")
                .event_type("auth.login")
                .outcome_suffix(),
        )
        .rule(
            Rule::delete("/v1/indexes/{name}")
                .event_type("data.index.delete")
                .target("index", "name"),
        )
        .rule(
            Rule::post("/v1/api-keys")
                .event_type("admin.api_key.create")
                .target_type("api_key"),
        )
}

fn app(layer: AuditLayer) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route(
            "/auth/login",
            post(|body: String| async move {
                if body == "right" {
                    StatusCode::OK
                } else {
                    StatusCode::UNAUTHORIZED
                }
            }),
        )
        .route(
            "/v1/indexes/{name}",
            delete(|| async { StatusCode::NO_CONTENT }),
        )
        .route(
            "/v1/api-keys",
            post(|Extension(ctx): Extension<AuditContext>| async move {
                ctx.set_target(audit_core::Target::new("api_key", "key_1"));
                ctx.detail("scopes", 2);
                "created"
            }),
        )
        .route(
            "/v1/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route(
            "/v1/limited",
            get(|| async { StatusCode::TOO_MANY_REQUESTS }),
        )
        .route(
            "/v1/boom",
            get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .layer(middleware::from_fn(fake_auth))
        .layer(layer.rules(rules()))
}

fn request(method: &str, uri: &str) -> http::request::Builder {
    http::Request::builder()
        .method(method)
        .uri(uri)
        .header("x-test-user", "user-123")
        .header("user-agent", "curl/8.5")
}

#[tokio::test]
async fn rules_actor_tenant_target_and_request_id_land_in_the_event() {
    let h = Harness::new();
    let app = app(AuditLayer::new(h.auditor.clone()));
    let resp = app
        .oneshot(
            request("DELETE", "/v1/indexes/products")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let echoed = resp.headers()["x-request-id"].to_str().unwrap().to_owned();

    let events = h.events().await;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.event_type.as_str(), "data.index.delete");
    assert_eq!(e.category, Category::Data);
    assert_eq!(e.result, Some(Outcome::Success));
    let actor = e.actor.as_ref().unwrap();
    assert_eq!(actor.id.as_deref(), Some("user-123"));
    assert_eq!(actor.user_agent.as_deref(), Some("curl/8.5"));
    assert_eq!(e.organization_id(), Some("acme"));
    let target = e.target.as_ref().unwrap();
    assert_eq!(
        (target.kind.as_deref(), target.id.as_deref()),
        (Some("index"), Some("products"))
    );
    let ctx = e.context.as_ref().unwrap();
    assert_eq!(ctx.request_id.as_deref(), Some(echoed.as_str()));
    assert_eq!(ctx.service.as_deref(), Some("vector-api"));
    assert_eq!(ctx.trace_id.as_ref().map(|t| t.len()), Some(32));
    let http = e.http.as_ref().unwrap();
    assert_eq!(http.route.as_deref(), Some("/v1/indexes/{name}"));
    assert_eq!(http.path.as_deref(), Some("/v1/indexes/products"));
    assert_eq!(http.status_code, Some(204));
    assert!(
        http.duration_ms
            .is_some_and(|ms| ms.is_finite() && ms >= 0.0)
    );
}

#[tokio::test]
async fn handlers_fill_the_context_and_admin_events_classify() {
    let h = Harness::new();
    let app = app(AuditLayer::new(h.auditor.clone()));
    app.oneshot(request("POST", "/v1/api-keys").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let e = &h.events().await[0];
    assert_eq!(e.event_type.as_str(), "admin.api_key.create");
    assert_eq!(e.category, Category::Admin);
    assert_eq!(e.target.as_ref().unwrap().id.as_deref(), Some("key_1"));
    assert_eq!(e.details["scopes"], 2);
}

#[tokio::test]
async fn outcomes_denials_rate_limits_errors_and_login_suffixes() {
    let h = Harness::new();
    let app = app(AuditLayer::new(h.auditor.clone()));
    let send = |method: &'static str, uri: &'static str, body: &'static str, user: bool| {
        let app = app.clone();
        async move {
            let mut b = http::Request::builder().method(method).uri(uri);
            if user {
                b = b.header("x-test-user", "u1");
            }
            app.oneshot(b.body(Body::from(body)).unwrap())
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(send("POST", "/auth/login", "wrong", false).await, 401);
    assert_eq!(send("POST", "/auth/login", "right", false).await, 200);
    assert_eq!(send("DELETE", "/v1/indexes/x", "", false).await, 401);
    assert_eq!(send("GET", "/v1/limited", "", true).await, 429);
    assert_eq!(send("GET", "/v1/boom", "", true).await, 500);
    assert_eq!(send("GET", "/health", "", false).await, 200);

    let got: Vec<(String, Option<Outcome>)> = h
        .events()
        .await
        .iter()
        .map(|e| (e.event_type.to_string(), e.result))
        .collect();
    assert_eq!(
        got,
        [
            ("security.access.denied".to_owned(), Some(Outcome::Denied)),
            ("auth.login.success".to_owned(), Some(Outcome::Success)),
            ("security.access.denied".to_owned(), Some(Outcome::Denied)),
            (
                "security.rate_limit.triggered".to_owned(),
                Some(Outcome::Failure)
            ),
            ("data.boom.read".to_owned(), Some(Outcome::Error)),
        ],
        "the health check is not audited"
    );
}

#[tokio::test]
async fn inbound_request_ids_follow_the_trust_policy() {
    let h = Harness::new();
    let trusting = app(AuditLayer::new(h.auditor.clone())
        .request_id(RequestIdPolicy::default().trust(TrustInbound::Always)));
    let default = app(AuditLayer::new(h.auditor.clone()));
    let long = [b'x'; 129];
    let cases: Vec<(&Router, &[u8], bool, Option<&str>)> = vec![
        (&trusting, b"req-abc-123", true, None),
        (&trusting, b"has space", false, Some("malformed")),
        (&trusting, &long, false, Some("malformed")),
        (&default, b"req-abc-123", false, Some("untrusted_sender")),
    ];
    for (app, inbound, kept, why) in cases {
        let resp = app
            .clone()
            .oneshot(
                request("DELETE", "/v1/indexes/a")
                    .header("x-request-id", HeaderValue::from_bytes(inbound).unwrap())
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let echoed = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(echoed.as_bytes() == inbound, kept);
        let events = h.events().await;
        let e = events.last().unwrap();
        assert_eq!(
            e.context.as_ref().unwrap().request_id.as_deref(),
            Some(echoed.as_str())
        );
        assert_eq!(
            e.details
                .get("inboundRequestIdRejected")
                .and_then(|v| v.as_str()),
            why
        );
        h.memory.take();
    }
}

#[tokio::test]
async fn traceparent_becomes_the_trace_id_and_the_request_id_reaches_handlers() {
    let h = Harness::new();
    let app = Router::new()
        .route(
            "/v1/echo",
            get(|Extension(id): Extension<RequestId>| async move { id.to_string() }),
        )
        .layer(AuditLayer::new(h.auditor.clone()));
    let resp = app
        .oneshot(
            http::Request::get("/v1/echo")
                .header(
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let echoed = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
    assert_eq!(body, echoed.as_bytes());
    let e = &h.events().await[0];
    let ctx = e.context.as_ref().unwrap();
    assert_eq!(
        ctx.trace_id.as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert_ne!(ctx.span_id.as_deref(), Some("00f067aa0ba902b7"));
}

#[tokio::test]
async fn client_ip_honours_forwarding_only_through_trusted_proxies() {
    let h = Harness::new();
    let make = |proxies: Vec<IpNet>| {
        Router::new()
            .route("/v1/x", get(|| async { "x" }))
            .layer(AuditLayer::new(h.auditor.clone()).trusted_proxies(proxies))
    };
    let peer: SocketAddr = "10.0.0.5:41000".parse().unwrap();
    for (proxies, expected) in [
        (vec!["10.0.0.0/8".parse().unwrap()], "203.0.113.9"),
        (vec![], "10.0.0.5"),
    ] {
        let mut req = http::Request::get("/v1/x")
            .header("x-forwarded-for", "203.0.113.9")
            .body(Body::empty())
            .unwrap();
        req.extensions_mut().insert(ConnectInfo(peer));
        make(proxies).oneshot(req).await.unwrap();
        let events = h.events().await;
        let e = events.last().unwrap();
        assert_eq!(
            e.actor.as_ref().unwrap().ip_address.as_deref(),
            Some(expected)
        );
        assert_eq!(
            e.details["forwardedFor"],
            serde_json::json!(["203.0.113.9", "10.0.0.5"])
        );
        h.memory.take();
    }
}

#[tokio::test]
async fn a_dropped_request_is_recorded_as_cancelled() {
    let h = Harness::new();
    let app = app(AuditLayer::new(h.auditor.clone()));
    let fut = app.oneshot(request("GET", "/v1/slow").body(Body::empty()).unwrap());
    assert!(
        tokio::time::timeout(Duration::from_millis(50), fut)
            .await
            .is_err()
    );
    let events = h.events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].result, Some(Outcome::Cancelled));
    assert_eq!(events[0].http.as_ref().unwrap().status_code, None);
}

#[tokio::test]
async fn outgoing_calls_carry_the_request_id_and_trace() {
    use audit_tower::propagate::PropagateLayer;
    let h = Harness::new();
    let seen = Arc::new(std::sync::Mutex::new(None::<http::HeaderMap>));
    let seen2 = Arc::clone(&seen);
    let app = Router::new()
        .route(
            "/v1/call",
            get(move || {
                let seen = Arc::clone(&seen2);
                async move {
                    // An outgoing client, wrapped in the propagation layer.
                    let client = tower::ServiceBuilder::new()
                        .layer(PropagateLayer::new())
                        .service_fn(move |req: http::Request<()>| {
                            let seen = Arc::clone(&seen);
                            async move {
                                *seen.lock().unwrap() = Some(req.headers().clone());
                                Ok::<_, std::convert::Infallible>(http::Response::new(()))
                            }
                        });
                    client.oneshot(http::Request::new(())).await.unwrap();
                    "called"
                }
            }),
        )
        .layer(AuditLayer::new(h.auditor.clone()));
    let resp = app
        .oneshot(
            http::Request::get("/v1/call")
                .header(
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let echoed = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let headers = seen.lock().unwrap().clone().unwrap();
    assert_eq!(headers["x-request-id"], echoed.as_str());
    let tp = headers["traceparent"].to_str().unwrap();
    assert!(
        tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{tp}"
    );
    let e = &h.events().await[0];
    assert!(tp.contains(e.context.as_ref().unwrap().span_id.as_deref().unwrap()));
}

#[tokio::test]
async fn a_real_hyper_server_and_client_on_loopback() {
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::TokioIo;

    let h = Harness::new();
    // A plain hyper-style service (no axum): hyper's Incoming in (as the layer's
    // RequestBody), Full<Bytes> out.
    let svc =
        tower::ServiceBuilder::new()
            .layer(
                AuditLayer::new(h.auditor.clone()).rules(
                    Rules::new().rule(
                        Rule::put("/v1/vectors/{id}")
                            .event_type("data.vector.update")
                            .target("vector", "id"),
                    ),
                ),
            )
            .service_fn(
                |req: http::Request<RequestBody<hyper::body::Incoming>>| async move {
                    let id = req.extensions().get::<RequestId>().map(ToString::to_string);
                    let body = req.into_body().collect().await?.to_bytes();
                    Ok::<_, hyper::Error>(http::Response::new(Full::new(bytes::Bytes::from(
                        format!("{} {}", body.len(), id.unwrap_or_default()),
                    ))))
                },
            );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        hyper::server::conn::http1::Builder::new()
            .serve_connection(
                TokioIo::new(stream),
                hyper_util::service::TowerToHyperService::new(svc),
            )
            .await
            .unwrap();
    });
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = sender
        .send_request(
            http::Request::put("/v1/vectors/42")
                .header("host", "localhost")
                .body(Full::new(bytes::Bytes::from_static(b"[0.1,0.2]")))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let echoed = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, format!("9 {echoed}").as_bytes());
    drop(sender);
    let _ = server.await;

    let e = &h.events().await[0];
    assert_eq!(e.event_type.as_str(), "data.vector.update");
    assert_eq!(e.target.as_ref().unwrap().id.as_deref(), Some("42"));
    assert_eq!(
        e.context.as_ref().unwrap().request_id.as_deref(),
        Some(echoed.as_str())
    );
    assert_eq!(
        e.http.as_ref().unwrap().route.as_deref(),
        Some("/v1/vectors/{id}")
    );
}

/// A sink that always fails, to make the pipeline unable to promise anything.
struct Down;

impl audit_core::Sink for Down {
    fn name(&self) -> &str {
        "down"
    }
    async fn deliver(&mut self, _: &audit_core::Batch) -> Result<(), audit_core::SinkError> {
        Err(audit_core::SinkError::retryable("receiver unreachable"))
    }
}

#[tokio::test]
async fn strict_routes_refuse_with_503_and_never_run_when_the_trail_cannot_take_them() {
    use audit_tower::classify::Delivery;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let runs = Arc::new(AtomicUsize::new(0));
    let make = |auditor: Auditor| {
        let runs = Arc::clone(&runs);
        Router::new()
            .route(
                "/v1/config",
                axum::routing::put(move || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    async { "changed" }
                }),
            )
            .layer(
                AuditLayer::new(auditor).rules(
                    Rules::new().rule(
                        Rule::put("/v1/config")
                            .event_type("admin.config.change")
                            .delivery(Delivery::Strict),
                    ),
                ),
            )
    };

    // Healthy: the handler runs and the event is recorded.
    let h = Harness::new();
    let resp = make(h.auditor.clone())
        .oneshot(
            http::Request::put("/v1/config")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(
        h.events().await[0].event_type.as_str(),
        "admin.config.change"
    );

    // Every sink down: refused before the handler, with a JSON error and the request id.
    let down = Auditor::builder()
        .sink_with(
            Down,
            audit_core::SinkOptions::new().max_wait(Duration::from_millis(1)),
        )
        .build()
        .unwrap();
    down.record(AuditEvent::builder("system.test.ping").build().unwrap())
        .unwrap();
    while down.metrics().sinks[0].healthy {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let resp = make(down.clone())
        .oneshot(
            http::Request::put("/v1/config")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("x-request-id"));
    let body = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["error"]["code"], "AUDIT_UNAVAILABLE");
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the handler did not run");
}

/// The captured response body of an event.
fn response_body(e: &AuditEvent) -> &audit_core::CapturedBody {
    e.http.as_ref().unwrap().response_body.as_ref().unwrap()
}

/// Routes whose response bodies are captured: a small JSON one, a 100,000-byte one, and an
/// empty 204.
fn capturing_app(h: &Harness) -> Router {
    use audit_tower::classify::Level;
    Router::new()
        .route(
            "/v1/small",
            get(|| async { axum::Json(serde_json::json!({"n": 1})) }),
        )
        .route("/v1/big", get(|| async { "z".repeat(100_000) }))
        .route("/v1/empty", get(|| async { StatusCode::NO_CONTENT }))
        .layer(
            AuditLayer::new(h.auditor.clone())
                .rules(Rules::new().rule(Rule::get("/v1/{what}").level(Level::RequestResponse))),
        )
}

#[tokio::test]
async fn request_response_level_captures_the_response_body_with_a_cap() {
    let h = Harness::new();
    let app = capturing_app(&h);
    for uri in ["/v1/small", "/v1/big"] {
        let resp = app
            .clone()
            .oneshot(http::Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
    }
    let events = h.events().await;
    let small = response_body(&events[0]);
    assert_eq!(small.content, Some(serde_json::json!({"n": 1})));
    assert!(!small.truncated);
    let big = response_body(&events[1]);
    assert!(big.truncated);
    assert_eq!(big.size, 100_000);
    assert_eq!(
        big.content.as_ref().unwrap().as_str().unwrap().len(),
        16 * 1024
    );
    assert_eq!(big.sha256.as_ref().unwrap().len(), 64);
}

#[tokio::test]
async fn grpc_status_in_trailers_decides_the_outcome() {
    use http_body_util::StreamBody;
    let h = Harness::new();
    let svc = tower::ServiceBuilder::new()
        .layer(AuditLayer::new(h.auditor.clone()))
        .service_fn(|_req: http::Request<RequestBody<Body>>| async move {
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", HeaderValue::from_static("7"));
            let frames = vec![
                Ok::<_, std::convert::Infallible>(http_body::Frame::data(
                    bytes::Bytes::from_static(b"\0\0\0\0\0"),
                )),
                Ok(http_body::Frame::trailers(trailers)),
            ];
            let body = StreamBody::new(futures_util::stream::iter(frames));
            Ok::<_, std::convert::Infallible>(
                http::Response::builder()
                    .header("content-type", "application/grpc")
                    .body(body)
                    .unwrap(),
            )
        });
    let resp = svc
        .oneshot(
            http::Request::post("/pkg.Service/Method")
                .header("content-type", "application/grpc")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    // Nothing is recorded until the trailers have been read.
    use http_body_util::BodyExt;
    let collected = resp.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["grpc-status"], "7");
    let e = &h.events().await[0];
    assert_eq!(e.result, Some(Outcome::Denied));
    let rpc = e.rpc.as_ref().unwrap();
    assert_eq!(rpc.grpc_status_code, Some(7));
    assert_eq!(rpc.response_messages, Some(1), "one empty message");
    assert_eq!(e.event_type.as_str(), "security.access.denied");
}

#[tokio::test]
async fn request_level_captures_the_body_up_to_the_cap_and_redacts_it() {
    use audit_tower::classify::Level;
    let h = Harness::new();
    let app = Router::new()
        .route(
            "/v1/login-ish",
            post(|body: String| async move { body.len().to_string() }),
        )
        .route(
            "/v1/upload",
            post(|body: bytes::Bytes| async move { body.len().to_string() }),
        )
        .route("/v1/ignore", post(|| async { "not read" }))
        .layer(
            AuditLayer::new(h.auditor.clone())
                .rules(Rules::new().rule(Rule::post("/v1/{what}").level(Level::Request))),
        );
    let send = |uri: &'static str, ct: &'static str, body: Vec<u8>| {
        let app = app.clone();
        async move {
            let resp = app
                .oneshot(
                    http::Request::post(uri)
                        .header("content-type", ct)
                        .header("content-length", body.len())
                        .body(Body::from(body))
                        .unwrap(),
                )
                .await
                .unwrap();
            axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap()
        }
    };
    let json = br#"{"email":"a@acme.test","password":"hunter2"}"#.to_vec();
    assert_eq!(
        send("/v1/login-ish", "application/json", json.clone()).await,
        json.len().to_string()
    );
    let big = vec![b'q'; 200_000];
    assert_eq!(
        send("/v1/upload", "application/octet-stream", big).await,
        "200000"
    );
    send("/v1/ignore", "text/plain", b"unread body".to_vec()).await;

    let events = h.events().await;
    let body = |i: usize| {
        events[i]
            .http
            .as_ref()
            .unwrap()
            .request_body
            .clone()
            .unwrap()
    };
    // JSON kept and redacted on the way out: the password never reaches the sink.
    let login = body(0);
    assert_eq!(login.content.as_ref().unwrap()["email"], "a@acme.test");
    assert_eq!(login.content.as_ref().unwrap()["password"], "[REDACTED]");
    assert!(
        events[0]
            .redacted_fields
            .contains(&"http.requestBody.content.password".to_owned())
    );
    // Cut at the cap, with the whole body's size and hash.
    let upload = body(1);
    assert!(upload.truncated);
    assert_eq!(upload.size, 200_000);
    assert_eq!(
        upload.content.as_ref().unwrap().as_str().unwrap().len(),
        16 * 1024
    );
    assert_eq!(upload.sha256.as_ref().unwrap().len(), 64);
    // Never read by the handler: nothing kept, the declared size recorded, no hash.
    let ignored = body(2);
    assert!(ignored.truncated && ignored.sha256.is_none());
    assert_eq!(ignored.size, 11);
}

#[tokio::test]
async fn latency_is_the_handler_s_not_the_time_until_the_worker_builds_the_event() {
    let memory = MemorySink::new(10);
    // The worker wakes only when flushed, long after the response.
    let auditor = Auditor::builder()
        .sink(memory.clone())
        .dispatch_interval(Duration::from_secs(60))
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/v1/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(40)).await;
                "done"
            }),
        )
        .layer(AuditLayer::new(auditor.clone()));
    let resp = app
        .oneshot(request("GET", "/v1/slow").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(auditor.flush(Duration::from_secs(5)).await);
    let events = memory.events();
    let ms = events[0].http.as_ref().unwrap().duration_ms.unwrap();
    assert!((40.0..400.0).contains(&ms), "durationMs {ms}");
}

/// Served by `axum::serve` on a random port and read over TCP as a client would: hyper stops
/// polling a body once it says it has ended, so completion must not wait for the `None` it
/// never asks for. No event of a response read to its end is marked incomplete.
#[tokio::test]
async fn responses_served_by_axum_serve_are_complete() {
    let h = Harness::new();
    let app = capturing_app(&h);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    for path in ["/v1/small", "/v1/big", "/v1/empty", "/v1/small"] {
        let raw = send_raw(
            addr,
            format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"),
        )
        .await;
        assert!(raw.starts_with(b"HTTP/1.1 2"), "{path}");
    }
    let events = h.events().await;
    assert_eq!(events.len(), 4);
    for e in &events {
        assert!(
            e.details.get("responseIncomplete").is_none(),
            "{}",
            serde_json::to_string(&**e).unwrap()
        );
        assert_eq!(e.result, Some(Outcome::Success));
    }
    let big = response_body(&events[1]);
    assert_eq!(big.size, 100_000);
    server.abort();
}

/// Without a rule, a nested route names the resource acted on and keeps its parent.
#[tokio::test]
async fn nested_resources_name_the_last_one_and_keep_the_parent() {
    let h = Harness::new();
    let app = Router::new()
        .route(
            "/v1/indexes/{name}/vectors/{id}",
            axum::routing::put(|| async { "ok" }),
        )
        .layer(AuditLayer::new(h.auditor.clone()));
    app.oneshot(
        http::Request::put("/v1/indexes/products/vectors/42")
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    let e = &h.events().await[0];
    assert_eq!(e.event_type.as_str(), "data.vector.update");
    let target = e.target.as_ref().unwrap();
    assert_eq!(
        (target.kind.as_deref(), target.id.as_deref()),
        (Some("vector"), Some("42"))
    );
    assert_eq!(
        e.details["parent"],
        serde_json::json!({"type": "index", "id": "products"})
    );
}

/// The audit meaning attached to the route itself (`AuditRoute`), served by `axum::serve` on
/// a random port: it names the event and its target from the route's own parameter, wins over
/// a rule for the same route, yields to what a handler sets, keeps the type on denial when
/// asked, and skips a route.
#[tokio::test]
async fn routes_carry_their_own_audit_meaning() {
    use audit_tower::classify::AuditRoute;
    let h = Harness::new();
    let app = Router::new()
        .route(
            "/v1/indexes/{name}",
            delete(|| async { "deleted" })
                .layer(AuditRoute::new("data.index.drop").target("index", "name")),
        )
        .route(
            "/v1/indexes/{name}/vectors/{id}",
            axum::routing::put(|| async { "ok" })
                .layer(AuditRoute::new("data.embedding.write").target("embedding", "id")),
        )
        .route(
            "/auth/login",
            post(|| async { StatusCode::UNAUTHORIZED }).layer(
                AuditRoute::new("auth.login")
                    .outcome_suffix()
                    .keep_on_denial(),
            ),
        )
        .route(
            "/handler-knows-better",
            post(|Extension(ctx): Extension<AuditContext>| async move {
                ctx.set_event_type("admin.config.change");
                "ok"
            })
            .layer(AuditRoute::new("data.thing.create")),
        )
        .route(
            "/internal/ping",
            get(|| async { "pong" }).layer(AuditRoute::skip()),
        )
        .layer(AuditLayer::new(h.auditor.clone()).rules(
            Rules::new().rule(Rule::delete("/v1/indexes/{name}").event_type("data.index.delete")),
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    for (method, path) in [
        ("DELETE", "/v1/indexes/products"),
        ("PUT", "/v1/indexes/products/vectors/v-9"),
        ("POST", "/auth/login"),
        ("POST", "/handler-knows-better"),
        ("GET", "/internal/ping"),
    ] {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
        let raw = send_raw(addr, head).await;
        assert!(raw.starts_with(b"HTTP/1.1 "), "{path}");
    }
    let events = h.events().await;
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "data.index.drop",
            "data.embedding.write",
            "auth.login.failure",
            "admin.config.change"
        ],
        "the route's meaning wins over the rule, the handler's over the route's; skipped routes record nothing"
    );
    let target = |i: usize| {
        let t = events[i].target.as_ref().unwrap();
        (t.kind.as_deref().unwrap(), t.id.as_deref())
    };
    assert_eq!(target(0), ("index", Some("products")));
    assert_eq!(target(1), ("embedding", Some("v-9")));
    assert!(events[1].details.get("parent").is_none());
    // A refused sign-in failed to authenticate: `failure`, not `denied`.
    assert_eq!(events[2].result, Some(Outcome::Failure));
    assert_eq!(
        events[0].http.as_ref().unwrap().route.as_deref(),
        Some("/v1/indexes/{name}")
    );
    server.abort();
}

/// Origin claims between services over a real server: a claim signed with the shared key
/// continues the caller's request id and names the user and tenant; a forged, unsigned,
/// replayed or expired one changes nothing but is recorded as refused.
#[tokio::test]
async fn only_signed_origin_claims_are_believed() {
    use audit_core::Timestamp;
    use audit_tower::origin::{ORIGIN_HEADER, OriginKey, TrustedPeers};
    let key = OriginKey::new(&[7u8; 32]).unwrap();
    let h = Harness::new();
    let app = Router::new()
        .route("/v1/stock", post(|| async { "ok" }))
        .layer(AuditLayer::new(h.auditor.clone()).trust_peers(TrustedPeers::signed(key)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    // A claim as the calling service's PropagateLayer makes it.
    let claim = |rid: &str, tenant: &str, issued: i64, secret: Option<[u8; 32]>| {
        let json = serde_json::json!({"actorId": "alice", "actorType": "user", "tenant": tenant,
            "requestId": rid, "issuedAt": issued})
        .to_string();
        let mut v = format!("v1.{}", hex::encode(&json));
        if let Some(secret) = secret {
            use hmac::{KeyInit, Mac};
            let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&secret).unwrap();
            mac.update(json.as_bytes());
            v.push('.');
            v.push_str(&hex::encode(mac.finalize().into_bytes()));
        }
        v
    };
    let (right, wrong) = (Some([7u8; 32]), Some([9u8; 32]));
    let now = Timestamp::now().unix_millis();
    let cases = [
        ("rid-good", claim("rid-good", "acme", now, right)),
        ("rid-forged", claim("rid-forged", "globex", now, wrong)),
        ("rid-unsigned", claim("rid-unsigned", "globex", now, None)),
        ("rid-replayed", claim("rid-good", "acme", now, right)),
        ("rid-old", claim("rid-old", "acme", now - 3_600_000, right)),
    ];
    for (rid, value) in &cases {
        let header = ORIGIN_HEADER;
        let head = format!(
            "POST /v1/stock HTTP/1.1\r\nhost: x\r\nx-request-id: {rid}\r\n{header}: {value}\r\n\
             content-length: 0\r\nconnection: close\r\n\r\n"
        );
        send_raw(addr, head).await;
    }
    let events = h.events().await;
    assert_eq!(events.len(), 5);
    let good = &events[0];
    assert_eq!(
        good.context.as_ref().unwrap().request_id.as_deref(),
        Some("rid-good")
    );
    assert_eq!(good.organization_id(), Some("acme"));
    assert_eq!(good.details["origin"]["actorId"], "alice");
    assert_ne!(good.actor.as_ref().unwrap().id.as_deref(), Some("alice"));
    for (e, why, rid) in [
        (&events[1], "bad_signature", "rid-forged"),
        (&events[2], "untrusted_sender", "rid-unsigned"),
        (&events[3], "other_request", "rid-replayed"),
        (&events[4], "expired", "rid-old"),
    ] {
        assert_eq!(e.details["originRejected"], why, "{rid}");
        assert!(e.details.get("origin").is_none(), "{rid}");
        assert_eq!(e.organization_id(), None, "{rid}");
        assert_ne!(
            e.context.as_ref().unwrap().request_id.as_deref(),
            Some(rid),
            "{rid}"
        );
        assert_eq!(
            e.details["inboundRequestIdRejected"], "untrusted_sender",
            "{rid}"
        );
    }
    server.abort();

    // Trusted by address instead: an unsigned claim from loopback is believed, with the
    // caller's request id.
    let h2 = Harness::new();
    let app = Router::new()
        .route("/v1/stock", post(|| async { "ok" }))
        .layer(
            AuditLayer::new(h2.auditor.clone())
                .trust_peers(TrustedPeers::networks(vec!["127.0.0.0/8".parse().unwrap()])),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let header = ORIGIN_HEADER;
    let value = claim("rid-peer", "acme", now, None);
    let head = format!(
        "POST /v1/stock HTTP/1.1\r\nhost: x\r\nx-request-id: rid-peer\r\n{header}: {value}\r\n\
         content-length: 0\r\nconnection: close\r\n\r\n"
    );
    send_raw(addr, head).await;
    let e = &h2.events().await[0];
    assert_eq!(
        e.context.as_ref().unwrap().request_id.as_deref(),
        Some("rid-peer")
    );
    assert_eq!(e.organization_id(), Some("acme"));
    assert_eq!(e.details["origin"]["actorId"], "alice");
    server.abort();
}

/// `AuditIdentity` inside the application's authentication, over a real server: an accepted
/// token's claims name the actor and tenant; a request authentication refused never reaches
/// it, so a forged token names no one.
#[tokio::test]
async fn identity_comes_from_accepted_credentials_only() {
    use audit_tower::identity::AuditIdentity;
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let good = format!(
        "{}.{}.valid",
        b64(r#"{"alg":"HS256"}"#),
        b64(r#"{"sub":"u-7","email":"u7@acme.test","org_id":"acme"}"#)
    );
    let forged = format!(
        "{}.{}.forged",
        b64(r#"{"alg":"none"}"#),
        b64(r#"{"sub":"admin","org_id":"globex"}"#)
    );
    // Stands in for verification: only signatures spelled `valid` pass.
    async fn verify(req: Request, next: Next) -> Response {
        let ok = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.ends_with(".valid"));
        if ok {
            next.run(req).await
        } else {
            axum::response::IntoResponse::into_response(StatusCode::UNAUTHORIZED)
        }
    }
    let h = Harness::new();
    let app = Router::new()
        .route("/v1/things", get(|| async { "ok" }))
        .layer(AuditIdentity::jwt_bearer())
        .layer(middleware::from_fn(verify))
        .layer(AuditLayer::new(h.auditor.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    for token in [good, forged] {
        let head = format!(
            "GET /v1/things HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n"
        );
        send_raw(addr, head).await;
    }
    let events = h.events().await;
    let actor = events[0].actor.as_ref().unwrap();
    assert_eq!(actor.id.as_deref(), Some("u-7"));
    assert_eq!(actor.email.as_deref(), Some("u7@acme.test"));
    assert_eq!(events[0].organization_id(), Some("acme"));
    assert_eq!(events[1].event_type.as_str(), "security.access.denied");
    assert_eq!(events[1].actor.as_ref().unwrap().id, None);
    assert_eq!(events[1].organization_id(), None);
    server.abort();
}

/// A handler that learns the target only as it runs can name it in its response's
/// extensions; the rule's target type yields to it, the handler's own context wins over both.
#[tokio::test]
async fn a_response_can_name_the_target() {
    use audit_core::Target;
    use axum::response::IntoResponse;
    let h = Harness::new();
    let app = Router::new()
        .route(
            "/v1/indexes",
            post(|| async {
                let mut resp = (StatusCode::CREATED, "made").into_response();
                resp.extensions_mut().insert(Target::new("index", "ix-42"));
                resp
            }),
        )
        .route(
            "/v1/both",
            post(|Extension(ctx): Extension<AuditContext>| async move {
                ctx.set_target(Target::new("index", "from-context"));
                let mut resp = "ok".into_response();
                resp.extensions_mut()
                    .insert(Target::new("index", "from-response"));
                resp
            }),
        )
        .layer(
            AuditLayer::new(h.auditor.clone()).rules(
                Rules::new().rule(
                    Rule::post("/v1/indexes")
                        .event_type("data.index.create")
                        .target_type("index"),
                ),
            ),
        );
    for path in ["/v1/indexes", "/v1/both"] {
        let resp = app
            .clone()
            .oneshot(http::Request::post(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert!(
            resp.extensions().get::<Target>().is_none(),
            "taken, not passed on"
        );
    }
    let events = h.events().await;
    assert_eq!(
        events[0].target.as_ref().unwrap().id.as_deref(),
        Some("ix-42")
    );
    assert_eq!(
        events[1].target.as_ref().unwrap().id.as_deref(),
        Some("from-context")
    );
}

/// With `share_with_inner_layers`, tower-http's `SetRequestIdLayer` inside the audit layer
/// uses the audit layer's id, over a real server: one id in the handler, the echo and the
/// event, and a client's refused id reaches neither.
#[tokio::test]
async fn tower_http_request_ids_follow_the_audit_layer() {
    use tower_http::request_id::{MakeRequestUuid, RequestId as TowerRequestId, SetRequestIdLayer};
    let h = Harness::new();
    let app = Router::new()
        .route(
            "/v1/echo",
            get(|Extension(id): Extension<TowerRequestId>| async move {
                id.header_value().to_str().unwrap().to_owned()
            }),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(
            AuditLayer::new(h.auditor.clone())
                .request_id(RequestIdPolicy::default().share_with_inner_layers()),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let mut seen = Vec::new();
    for extra in ["", "x-request-id: evil-client-id\r\n"] {
        let head = format!("GET /v1/echo HTTP/1.1\r\nhost: x\r\n{extra}connection: close\r\n\r\n");
        let raw = String::from_utf8(send_raw(addr, head).await).unwrap();
        let echoed = raw
            .lines()
            .find_map(|l| l.strip_prefix("x-request-id: "))
            .unwrap()
            .to_owned();
        let body = raw.rsplit("\r\n\r\n").next().unwrap().to_owned();
        assert_eq!(body, echoed, "the handler saw the id the client got back");
        assert_ne!(body, "evil-client-id");
        seen.push(body);
    }
    let events = h.events().await;
    for (e, id) in events.iter().zip(&seen) {
        assert_eq!(
            e.context.as_ref().unwrap().request_id.as_deref(),
            Some(id.as_str())
        );
    }
    server.abort();
}

/// A mistake in the rule table stops the service at start, naming the rule, instead of
/// leaving its requests to the defaults.
#[test]
#[should_panic(expected = "audit rules: rule 4 (`/v1/indexs/{name}`) names none of the routes")]
fn a_rule_naming_no_route_is_refused_at_start() {
    let auditor = Auditor::builder().build().unwrap();
    let _ = AuditLayer::new(auditor).rules(
        rules()
            .routes(["/v1/indexes/{name}", "/auth/login", "/v1/api-keys"])
            .rule(Rule::delete("/v1/indexs/{name}").target("index", "name")),
    );
}

#[test]
#[should_panic(expected = "old `:name`/`*name` syntax")]
fn a_pattern_in_old_syntax_is_refused_at_start() {
    let auditor = Auditor::builder().build().unwrap();
    let _ = AuditLayer::new(auditor).rules(Rules::new().rule(Rule::get("/v1/indexes/:name")));
}

/// A function chooses the rule for one endpoint serving many actions, over a real server:
/// the action header picks among event types the application chose; what the client sends
/// never becomes an event type itself.
#[tokio::test]
async fn a_chooser_function_names_actions_one_route_serves() {
    let h = Harness::new();
    let rules = Rules::new().choose_with(|req| {
        if req.template != Some("/rpc/{index}") {
            return None;
        }
        let action = req.headers.get("x-rpc-action")?.to_str().ok()?;
        let event_type = match action {
            "index.drop" => "data.index.delete",
            "key.rotate" => "admin.api_key.rotate",
            _ => "data.rpc.call",
        };
        Some(
            Rule::any("/rpc/{index}")
                .event_type(event_type)
                .target("index", "index"),
        )
    });
    let app = Router::new()
        .route("/rpc/{index}", post(|| async { "ok" }))
        .layer(AuditLayer::new(h.auditor.clone()).rules(rules));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    for action in ["index.drop", "key.rotate", "admin.everything.delete"] {
        let raw = send_raw(
            addr,
            format!(
                "POST /rpc/products HTTP/1.1\r\nhost: x\r\nx-rpc-action: {action}\r\n\
                 content-length: 0\r\nconnection: close\r\n\r\n"
            ),
        )
        .await;
        assert!(raw.starts_with(b"HTTP/1.1 200"));
    }
    let events = h.events().await;
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        ["data.index.delete", "admin.api_key.rotate", "data.rpc.call"]
    );
    assert!(
        events
            .iter()
            .all(|e| e.target.as_ref().and_then(|t| t.id.as_deref()) == Some("products"))
    );
}

/// Ids made by the application's own function, over a real server: echoed and recorded; a
/// malformed one made by the function is replaced, never sent or recorded.
#[tokio::test]
async fn request_ids_made_by_a_function_are_echoed_and_recorded() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let h = Harness::new();
    let policy = RequestIdPolicy::default().make_with(|| {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        if n == 2 {
            "not valid".to_owned()
        } else {
            format!("req_{n:06}")
        }
    });
    let app = Router::new()
        .route("/v1/items", get(|| async { "ok" }))
        .layer(AuditLayer::new(h.auditor.clone()).request_id(policy));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut echoed = Vec::new();
    for _ in 0..2 {
        let raw = send_raw(
            addr,
            "GET /v1/items HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".to_owned(),
        )
        .await;
        let text = String::from_utf8(raw).unwrap();
        let id = text
            .lines()
            .find_map(|l| l.strip_prefix("x-request-id: "))
            .unwrap()
            .to_owned();
        echoed.push(id);
    }
    assert_eq!(echoed[0], "req_000001");
    assert_eq!(echoed[1].len(), 36, "a UUIDv7 replaced the malformed id");
    let events = h.events().await;
    let recorded: Vec<&str> = events
        .iter()
        .map(|e| e.context.as_ref().unwrap().request_id.as_deref().unwrap())
        .collect();
    assert_eq!(recorded, echoed);
}
