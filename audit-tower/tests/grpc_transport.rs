//! A tonic `transport::Server` with the `AuditLayer` and no rules, called by a tonic client
//! over TCP (HTTP/2): what a gRPC team gets out of the box. Each call is one event named
//! from its service and method, with its status, message counts and client address; a
//! status in trailers completes the event (no false `responseIncomplete`); a client that
//! drops a stream is `cancelled`.

#![cfg(feature = "tonic")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use audit_core::{AuditEvent, Auditor, Outcome};
use audit_sinks::MemorySink;
use audit_tower::AuditLayer;
use common::Raw;
use http::uri::PathAndQuery;
use tonic::{Request, Response, Status};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Event type, result, gRPC status and method of one event.
type Seen<'a> = (&'a str, Option<Outcome>, Option<i32>, Option<&'a str>);

/// A Greeter with unary and server-streaming methods, written against tonic's server
/// machinery directly.
#[derive(Clone)]
struct Greeter;

impl tonic::server::NamedService for Greeter {
    const NAME: &'static str = "demo.v1.Greeter";
}

impl<B> tower::Service<http::Request<B>> for Greeter
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_owned();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(Raw);
            let unary = |result: Result<Vec<u8>, Status>| {
                tower::service_fn(move |_: Request<Vec<u8>>| {
                    let result = result.clone();
                    async move { result.map(Response::new) }
                })
            };
            let resp = match path.as_str() {
                "/demo.v1.Greeter/SayHello" => grpc.unary(unary(Ok(b"hi".to_vec())), req).await,
                "/demo.v1.Greeter/DeleteThing" => {
                    grpc.unary(unary(Err(Status::permission_denied("no"))), req)
                        .await
                }
                "/demo.v1.Greeter/GetThing" => {
                    grpc.unary(unary(Err(Status::not_found("none"))), req).await
                }
                "/demo.v1.Greeter/Login" => {
                    grpc.unary(unary(Err(Status::unauthenticated("who"))), req)
                        .await
                }
                "/demo.v1.Greeter/Crash" => {
                    grpc.unary(unary(Err(Status::internal("boom"))), req).await
                }
                "/demo.v1.Greeter/ListThings" => {
                    let handler = tower::service_fn(|_: Request<Vec<u8>>| async {
                        let items = (0..3).map(|i| Ok(vec![i; 4]));
                        Ok::<_, Status>(Response::new(futures_util::stream::iter(items)))
                    });
                    grpc.server_streaming(handler, req).await
                }
                "/demo.v1.Greeter/WatchThings" => {
                    // Endless: one message every 10 ms until the client goes away.
                    let handler = tower::service_fn(|_: Request<Vec<u8>>| async {
                        let ticks = futures_util::stream::unfold(0u8, |i| async move {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            Some((Ok::<_, Status>(vec![i]), i.wrapping_add(1)))
                        });
                        Ok::<_, Status>(Response::new(ticks))
                    });
                    grpc.server_streaming(handler, req).await
                }
                _ => Status::unimplemented("no such method").into_http(),
            };
            Ok(resp)
        })
    }
}

struct Setup {
    memory: MemorySink,
    auditor: Auditor,
    client: tonic::client::Grpc<tonic::transport::Channel>,
}

async fn setup() -> Setup {
    let memory = MemorySink::new(1000);
    let auditor = Auditor::builder()
        .service("greeter")
        .sink(memory.clone())
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let layer = AuditLayer::new(auditor.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(Greeter)
            .serve_with_incoming(incoming)
            .await
            .unwrap();
    });
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Setup {
        memory,
        auditor,
        client: tonic::client::Grpc::new(channel),
    }
}

impl Setup {
    async fn unary(&mut self, method: &'static str) -> Result<Vec<u8>, Status> {
        self.client.ready().await.unwrap();
        let path = PathAndQuery::from_static(method);
        self.client
            .unary(Request::new(b"req".to_vec()), path, Raw)
            .await
            .map(Response::into_inner)
    }

    async fn events(&self, n: usize) -> Vec<Arc<AuditEvent>> {
        for _ in 0..200 {
            assert!(self.auditor.flush(Duration::from_secs(5)).await);
            let events = self.memory.events();
            if events.len() >= n {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("fewer than {n} events");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tonic_server_gets_meaningful_events_without_rules() {
    let mut s = setup().await;
    assert_eq!(s.unary("/demo.v1.Greeter/SayHello").await.unwrap(), b"hi");
    for (method, code) in [
        (
            "/demo.v1.Greeter/DeleteThing",
            tonic::Code::PermissionDenied,
        ),
        ("/demo.v1.Greeter/GetThing", tonic::Code::NotFound),
        ("/demo.v1.Greeter/Login", tonic::Code::Unauthenticated),
        ("/demo.v1.Greeter/Crash", tonic::Code::Internal),
        ("/demo.v1.Greeter/DropAllTables", tonic::Code::Unimplemented),
    ] {
        assert_eq!(s.unary(method).await.unwrap_err().code(), code, "{method}");
    }
    let events = s.events(6).await;
    let got: Vec<Seen<'_>> = events
        .iter()
        .map(|e| {
            let rpc = e.rpc.as_ref().unwrap();
            assert_eq!(rpc.system.as_deref(), Some("grpc"));
            assert_eq!(rpc.service.as_deref(), Some("demo.v1.Greeter"));
            (
                e.event_type.as_str(),
                e.result,
                rpc.grpc_status_code,
                rpc.method.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "data.greeter.call",
                Some(Outcome::Success),
                Some(0),
                Some("SayHello")
            ),
            (
                "security.access.denied",
                Some(Outcome::Denied),
                Some(7),
                Some("DeleteThing")
            ),
            (
                "data.thing.read",
                Some(Outcome::Failure),
                Some(5),
                Some("GetThing")
            ),
            (
                "security.access.denied",
                Some(Outcome::Denied),
                Some(16),
                Some("Login")
            ),
            (
                "data.greeter.call",
                Some(Outcome::Error),
                Some(13),
                Some("Crash")
            ),
            (
                "data.request.unmatched",
                Some(Outcome::Failure),
                Some(12),
                Some("DropAllTables")
            ),
        ]
    );
    for e in &events {
        let json = serde_json::to_string(&**e).unwrap();
        assert!(e.details.get("responseIncomplete").is_none(), "{json}");
        assert_eq!(
            e.actor.as_ref().unwrap().ip_address.as_deref(),
            Some("127.0.0.1"),
            "{json}"
        );
        assert!(e.context.as_ref().unwrap().request_id.is_some());
        assert_eq!(e.http.as_ref().unwrap().status_code, Some(200));
    }
    let hello = events[0].rpc.as_ref().unwrap();
    assert_eq!(
        (hello.request_messages, hello.response_messages),
        (Some(1), Some(1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_count_messages_and_a_dropped_stream_is_cancelled() {
    let mut s = setup().await;
    s.client.ready().await.unwrap();
    let mut list = s
        .client
        .server_streaming(
            Request::new(b"all".to_vec()),
            PathAndQuery::from_static("/demo.v1.Greeter/ListThings"),
            Raw,
        )
        .await
        .unwrap()
        .into_inner();
    let mut n = 0;
    while list.message().await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 3);

    s.client.ready().await.unwrap();
    let mut follow = s
        .client
        .server_streaming(
            Request::new(b"all".to_vec()),
            PathAndQuery::from_static("/demo.v1.Greeter/WatchThings"),
            Raw,
        )
        .await
        .unwrap()
        .into_inner();
    for _ in 0..2 {
        follow.message().await.unwrap().unwrap();
    }
    drop(follow);

    let events = s.events(2).await;
    let listed = &events[0];
    assert_eq!(listed.event_type.as_str(), "data.thing.read");
    assert_eq!(listed.result, Some(Outcome::Success));
    let rpc = listed.rpc.as_ref().unwrap();
    assert_eq!(
        (rpc.request_messages, rpc.response_messages),
        (Some(1), Some(3))
    );
    assert_eq!(rpc.grpc_status_code, Some(0));
    assert!(listed.details.get("responseIncomplete").is_none());

    let followed = &events[1];
    assert_eq!(followed.event_type.as_str(), "data.thing.read");
    assert_eq!(followed.result, Some(Outcome::Cancelled));
    let rpc = followed.rpc.as_ref().unwrap();
    assert_eq!(rpc.grpc_status_code, None);
    assert!(rpc.response_messages.unwrap() >= 2);
}

/// Mutual TLS: the subject of the client certificate the handshake verified names the
/// caller, with its address (feature `tonic-tls`).
#[cfg(feature = "tonic-tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_names_the_caller() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params
        .distinguished_name
        .push(DnType::CommonName, "orders");
    client_params
        .distinguished_name
        .push(DnType::OrganizationName, "acme");
    let client_cert = client_params.signed_by(&client_key, &ca).unwrap();

    let memory = MemorySink::new(100);
    let auditor = Auditor::builder().sink(memory.clone()).build().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(
            server_cert.pem(),
            server_key.serialize_pem(),
        ))
        .client_ca_root(Certificate::from_pem(ca.pem()));
    let layer = AuditLayer::new(auditor.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .tls_config(tls)
            .unwrap()
            .layer(layer)
            .add_service(Greeter)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    let channel = tonic::transport::Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(ca.pem()))
                .identity(Identity::from_pem(
                    client_cert.pem(),
                    client_key.serialize_pem(),
                ))
                .domain_name("localhost"),
        )
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    client
        .unary(
            Request::new(b"hi".to_vec()),
            PathAndQuery::from_static("/demo.v1.Greeter/SayHello"),
            Raw,
        )
        .await
        .unwrap();
    assert!(auditor.flush(Duration::from_secs(5)).await);
    let events = memory.events();
    let actor = events[0].actor.as_ref().unwrap();
    assert_eq!(actor.kind.as_deref(), Some("service"));
    assert_eq!(actor.id.as_deref(), Some("CN=orders, O=acme"));
    assert_eq!(actor.ip_address.as_deref(), Some("127.0.0.1"));
    assert_eq!(events[0].result, Some(Outcome::Success));
}
