//! tonic 0.14 through the AuditLayer: a tonic client calls a tonic server handler, in
//! process, and the gRPC status (in trailers for answers, in headers for trailers-only
//! errors) decides the event's result. A raw-bytes codec stands in for protobuf, so no
//! code generation is needed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use std::convert::Infallible;
use std::time::Duration;

use audit_core::{Auditor, Outcome};
use audit_sinks::MemorySink;
use audit_tower::classify::{Rule, Rules};
use audit_tower::{AuditLayer, RequestBody};
use common::Raw;
use http::uri::PathAndQuery;
use tonic::{Request, Response, Status};

#[tokio::test]
async fn tonic_client_and_server_through_the_layer() {
    let memory = MemorySink::new(100);
    let auditor = Auditor::builder().sink(memory.clone()).build().unwrap();

    // The server: tonic's unary handler machinery behind our layer.
    let server = tower::service_fn(
        |req: http::Request<RequestBody<tonic::body::Body>>| async move {
            let handler = tower::service_fn(|r: Request<Vec<u8>>| async move {
                if r.get_ref() == b"open sesame" {
                    Ok(Response::new(b"welcome".to_vec()))
                } else {
                    Err(Status::permission_denied("wrong phrase"))
                }
            });
            Ok::<_, Infallible>(tonic::server::Grpc::new(Raw).unary(handler, req).await)
        },
    );
    let svc = tower::ServiceBuilder::new()
        .layer(AuditLayer::new(auditor.clone()).rules(
            Rules::new().rule(Rule::post("/vault.Vault/Open").event_type("data.vault.open")),
        ))
        .service(server);

    // The client: tonic's unary call over the layered service.
    let mut client = tonic::client::Grpc::new(svc);
    for phrase in [&b"open sesame"[..], b"let me in"] {
        client.ready().await.unwrap();
        let result = client
            .unary(
                Request::new(phrase.to_vec()),
                PathAndQuery::from_static("/vault.Vault/Open"),
                Raw,
            )
            .await;
        match phrase {
            b"open sesame" => assert_eq!(result.unwrap().into_inner(), b"welcome"),
            _ => assert_eq!(result.unwrap_err().code(), tonic::Code::PermissionDenied),
        }
    }
    assert!(auditor.flush(Duration::from_secs(5)).await);
    let events = memory.events();
    let got: Vec<(&str, Option<Outcome>, Option<i32>)> = events
        .iter()
        .map(|e| {
            let rpc = e.rpc.as_ref().unwrap();
            assert_eq!(rpc.service.as_deref(), Some("vault.Vault"));
            assert_eq!(rpc.method.as_deref(), Some("Open"));
            assert_eq!(rpc.request_messages, Some(1));
            (e.event_type.as_str(), e.result, rpc.grpc_status_code)
        })
        .collect();
    // PERMISSION_DENIED is a denial like HTTP 403, whatever the rule named the call.
    assert_eq!(
        got,
        [
            ("data.vault.open", Some(Outcome::Success), Some(0)),
            ("security.access.denied", Some(Outcome::Denied), Some(7)),
        ]
    );
    assert_eq!(events[0].rpc.as_ref().unwrap().response_messages, Some(1));
}
