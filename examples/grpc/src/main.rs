//! A tonic gRPC service audited by the [`AuditLayer`], with no rules, and a client calling
//! it over TCP. Run it with `cargo run -p audit-examples-grpc`; it prints every audit event
//! as one JSON line.
//!
//! - The server is `tonic::transport::Server::builder().layer(AuditLayer::new(auditor))`:
//!   each call becomes one event named from its method (`ListThings` → `data.thing.read`),
//!   with `rpc.service`, `rpc.method`, `rpc.grpcStatusCode` and message counts, the client's
//!   address (the `tonic` feature reads tonic's connect info), and the result from the
//!   gRPC status (`PERMISSION_DENIED` is `security.access.denied`, as a 403 would be).
//! - The handlers record the caller on the request's [`AuditContext`], as an authentication
//!   interceptor would.
//! - The server trusts an inbound `x-request-id` only from loopback callers (its own
//!   services), and echoes it: the client's request id continues into the server's trail.
//! - Two instances run, `greeter-front` and `greeter-back`: the front's `SayHello` calls the
//!   back's `GetThing` through a channel wrapped in [`PropagateLayer`], so the back's event
//!   carries the front's request id and trace id — one user action followed across services.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a program that reports what it did

use std::time::Duration;

use audit_core::{Actor, Auditor};
use audit_sinks::MemorySink;
use audit_tower::net::IpNet;
use audit_tower::propagate::{Propagate, PropagateLayer};
use audit_tower::request_id::{RequestIdPolicy, TrustInbound};
use audit_tower::{AuditContext, AuditLayer};
use tonic::{Request, Response, Status};

/// The code generated from `proto/greeter.proto`.
mod pb {
    #![allow(missing_docs, unreachable_pub, clippy::all)]
    tonic::include_proto!("demo.v1");
}

use pb::greeter_client::GreeterClient;
use pb::greeter_server::{Greeter, GreeterServer};

/// A client whose calls continue the current request (its id and trace).
type Downstream = GreeterClient<Propagate<tonic::transport::Channel>>;

/// The service: who calls is read from the `x-user` metadata (standing in for a verified
/// token) and recorded on the audit context. The front instance has a downstream service.
#[derive(Debug, Default)]
struct Things {
    downstream: Option<Downstream>,
}

fn caller<T>(req: &Request<T>) -> Option<String> {
    let user = req.metadata().get("x-user")?.to_str().ok()?.to_owned();
    if let Some(ctx) = req.extensions().get::<AuditContext>() {
        ctx.set_actor(Actor::user(&user));
        ctx.set_organization_id("acme");
    }
    Some(user)
}

#[tonic::async_trait]
impl Greeter for Things {
    async fn say_hello(
        &self,
        req: Request<pb::HelloRequest>,
    ) -> Result<Response<pb::HelloReply>, Status> {
        let user = caller(&req).unwrap_or_default();
        let name = req.into_inner().name;
        if let Some(mut downstream) = self.downstream.clone() {
            // Inside this request: the layer adds its request id and traceparent. The
            // template may not exist; the call is what matters here.
            let _ = downstream
                .get_thing(with_user(
                    pb::ThingRef {
                        id: "greeting-template".into(),
                    },
                    &user,
                ))
                .await;
        }
        Ok(Response::new(pb::HelloReply {
            message: format!("hello, {name}"),
        }))
    }

    async fn delete_thing(
        &self,
        req: Request<pb::ThingRef>,
    ) -> Result<Response<pb::Deleted>, Status> {
        match caller(&req).as_deref() {
            Some("admin") => Ok(Response::new(pb::Deleted {})),
            _ => Err(Status::permission_denied("only admins delete things")),
        }
    }

    async fn get_thing(&self, req: Request<pb::ThingRef>) -> Result<Response<pb::Thing>, Status> {
        caller(&req);
        Err(Status::not_found(format!("no thing {}", req.get_ref().id)))
    }

    type ListThingsStream = tokio_stream::Iter<std::vec::IntoIter<Result<pb::Thing, Status>>>;

    async fn list_things(
        &self,
        req: Request<pb::ListRequest>,
    ) -> Result<Response<Self::ListThingsStream>, Status> {
        caller(&req);
        let things = (0..req.get_ref().limit.min(10))
            .map(|i| {
                Ok(pb::Thing {
                    id: format!("thing-{i}"),
                    name: format!("Thing {i}"),
                })
            })
            .collect::<Vec<_>>();
        Ok(Response::new(tokio_stream::iter(things)))
    }
}

fn with_user<T>(message: T, user: &str) -> Request<T> {
    let mut req = Request::new(message);
    if let Ok(v) = user.parse() {
        req.metadata_mut().insert("x-user", v);
    }
    req
}

/// Starts one audited instance; returns its address and the sink holding its trail.
async fn instance(
    name: &str,
    downstream: Option<Downstream>,
) -> Result<(std::net::SocketAddr, MemorySink, Auditor), Box<dyn std::error::Error>> {
    let memory = MemorySink::new(100);
    let auditor = Auditor::builder()
        .service(name)
        .sink(memory.clone())
        .build()?;
    // Request ids are trusted only from our own services (loopback here).
    let loopback: IpNet = "127.0.0.1".parse()?;
    let layer = AuditLayer::new(auditor.clone())
        .request_id(RequestIdPolicy::default().trust(TrustInbound::FromProxies(vec![loopback])));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(GreeterServer::new(Things { downstream }))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    Ok((addr, memory, auditor))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (back_addr, back_trail, back_auditor) = instance("greeter-back", None).await?;
    let channel = tonic::transport::Channel::from_shared(format!("http://{back_addr}"))?
        .connect()
        .await?;
    let downstream = GreeterClient::new(
        tower::ServiceBuilder::new()
            .layer(PropagateLayer::new())
            .service(channel),
    );
    let (addr, memory, auditor) = instance("greeter-front", Some(downstream)).await?;

    let mut client = GreeterClient::connect(format!("http://{addr}")).await?;
    let mut hello = with_user(
        pb::HelloRequest {
            name: "audit".into(),
        },
        "alice",
    );
    hello.metadata_mut().insert(
        "x-request-id",
        "0193f0c4-7a1b-7c3d-8e4f-0123456789ab".parse()?,
    );
    let reply = client.say_hello(hello).await?;
    let echoed = reply
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let refused = client
        .delete_thing(with_user(pb::ThingRef { id: "t1".into() }, "alice"))
        .await
        .err()
        .map(|s| s.code());
    let missing = client
        .get_thing(with_user(pb::ThingRef { id: "t9".into() }, "alice"))
        .await
        .err()
        .map(|s| s.code());
    let mut stream = client
        .list_things(with_user(pb::ListRequest { limit: 3 }, "alice"))
        .await?
        .into_inner();
    let mut listed = 0;
    while stream.message().await?.is_some() {
        listed += 1;
    }
    eprintln!(
        "server echoed x-request-id {echoed}; DeleteThing: {refused:?}; GetThing: {missing:?}; \
         ListThings: {listed} things"
    );

    let report = auditor.shutdown(Duration::from_secs(5)).await;
    let back_report = back_auditor.shutdown(Duration::from_secs(5)).await;
    for event in memory.events().iter().chain(back_trail.events().iter()) {
        println!("{}", serde_json::to_string(&**event)?);
    }
    if report.complete && back_report.complete {
        Ok(())
    } else {
        Err(format!("not every audit event was delivered: {report}").into())
    }
}
