//! Two services, one user action: `orders` calls `inventory` through the client-side
//! propagation layer, and both audit trails carry the same request id and trace id.
//!
//! ```text
//! cargo run -p audit-examples --bin cross_service [-- --dir DIR]
//! ```
//!
//! Starts both services on loopback, places one order, shuts down, and prints every event
//! of both trails (`DIR/orders.jsonl`, `DIR/inventory.jsonl`) with its correlation ids.
//!
//! One call on each side makes the ids line up and carries who the order was for:
//! - `orders` wraps its HTTP client in [`PropagateLayer`] `with_origin(key)`: the current
//!   request's `x-request-id` and `traceparent` go onto the outgoing call, with the user and
//!   tenant its authentication established, signed with a key the two services share.
//! - `inventory` trusts peers holding that key ([`TrustedPeers::signed`]): it continues the
//!   caller's request id, records `details.origin` (the user and tenant) and files its
//!   events under that tenant. A claim without the key is ignored and its refusal recorded.
//! - Both handlers record with `audit!`, which takes the ids from the request being served.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::error::Error;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use audit_core::{Auditor, Outcome};
use audit_sinks::FileSink;
use audit_tower::AuditLayer;
use audit_tower::origin::{OriginKey, TrustedPeers};
use audit_tower::propagate::PropagateLayer;
use audit_tower::{AuditContext, classify::AuditRoute};
use audit_tracing::audit;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tower::{Service, ServiceBuilder, ServiceExt};

type BoxError = Box<dyn Error + Send + Sync>;

/// A one-connection-per-call HTTP/1 client as a Tower service.
async fn send(req: Request<Full<Bytes>>) -> Result<Response<Incoming>, BoxError> {
    let authority = req
        .uri()
        .authority()
        .ok_or("the request URI has no host")?
        .to_string();
    let stream = tokio::net::TcpStream::connect(&authority).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let (mut parts, body) = req.into_parts();
    parts.headers.insert(http::header::HOST, authority.parse()?);
    parts.uri = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()?;
    Ok(sender
        .send_request(Request::from_parts(parts, body))
        .await?)
}

/// Calls `uri` with a JSON body (as `bearer`, when given); returns the status, the
/// response's request id and body.
async fn post_json<S>(
    client: &mut S,
    uri: &str,
    bearer: Option<&str>,
    body: &Value,
) -> Result<(u16, String, Value), BoxError>
where
    S: Service<Request<Full<Bytes>>, Response = Response<Incoming>, Error = BoxError>,
{
    let mut req = Request::post(uri).header("content-type", "application/json");
    if let Some(token) = bearer {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let req = req.body(Full::new(Bytes::from(body.to_string())))?;
    let resp = client.ready().await?.call(req).await?;
    let status = resp.status().as_u16();
    let request_id = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((
        status,
        request_id,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

async fn reserve(Json(body): Json<Value>) -> Json<Value> {
    let sku = body["sku"].as_str().unwrap_or("unknown").to_owned();
    let quantity = body["quantity"].as_u64().unwrap_or(0);
    audit!(
        event_type = "data.stock.reserve",
        target.kind = "sku",
        target.id = %sku,
        details.quantity = quantity,
        result = Outcome::Success,
        "Reserved {quantity} of {sku}"
    );
    Json(json!({"reserved": quantity}))
}

async fn place_order(State(inventory): State<String>, Json(body): Json<Value>) -> Json<Value> {
    // The client is wrapped in the propagation layer: the call continues this request.
    let mut client = ServiceBuilder::new()
        .layer(PropagateLayer::new().with_origin(Some(shared_key())))
        .service(tower::service_fn(send));
    let reserved = match post_json(
        &mut client,
        &format!("http://{inventory}/v1/reservations"),
        None,
        &json!({"sku": body["sku"], "quantity": body["quantity"]}),
    )
    .await
    {
        Ok((200, _, reply)) => reply["reserved"].as_u64().unwrap_or(0),
        _ => 0,
    };
    let outcome = if reserved > 0 {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    audit!(
        event_type = "data.order.create",
        target.kind = "order",
        target.id = "order-1001",
        details.reserved = reserved,
        result = outcome,
        "Placed an order"
    );
    Json(json!({"order": "order-1001", "reserved": reserved}))
}

/// The key `orders` signs origin claims with and `inventory` checks them with (in a real
/// deployment: a secret both read from their configuration).
fn shared_key() -> OriginKey {
    OriginKey::new(b"example-only origin key, 32+ bytes long")
        .unwrap_or_else(|e| unreachable!("a constant key of the right length: {e}"))
}

/// Stands in for `orders`' authentication: the bearer token names the user, and the
/// user's tenant is the part of the address after `@`.
async fn authenticate(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let user = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    if let (Some(user), Some(ctx)) = (user, req.extensions().get::<AuditContext>()) {
        ctx.set_actor(audit_core::Actor::user(&user));
        if let Some((_, org)) = user.split_once('@') {
            ctx.set_organization_id(org);
        }
    }
    next.run(req).await
}

fn auditor(service: &str, file: &Path) -> Result<Auditor, BoxError> {
    Ok(Auditor::builder()
        .service(service)
        .sink(FileSink::new(file)?)
        .build()?)
}

async fn serve(app: Router) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    Ok((addr, task))
}

async fn run(dir: PathBuf) -> Result<(), BoxError> {
    let inventory_audit = auditor("inventory", &dir.join("inventory.jsonl"))?;
    let orders_audit = auditor("orders", &dir.join("orders.jsonl"))?;

    let inventory = Router::new()
        .route(
            "/v1/reservations",
            post(reserve).layer(AuditRoute::new("data.reservation.create")),
        )
        .layer(
            AuditLayer::new(inventory_audit.clone())
                .trust_peers(TrustedPeers::signed(shared_key())),
        );
    let (inventory_addr, inventory_task) = serve(inventory).await?;

    let orders = Router::new()
        .route(
            "/v1/orders",
            post(place_order).layer(AuditRoute::new("data.order.submit")),
        )
        .with_state(inventory_addr.to_string())
        .layer(axum::middleware::from_fn(authenticate))
        .layer(AuditLayer::new(orders_audit.clone()));
    let (orders_addr, orders_task) = serve(orders).await?;

    // The user's action: no request id, no trace yet.
    let mut client = tower::service_fn(send);
    let (status, request_id, reply) = post_json(
        &mut client,
        &format!("http://{orders_addr}/v1/orders"),
        Some("alice@acme"),
        &json!({"sku": "sku-7", "quantity": 2}),
    )
    .await?;
    println!("POST /v1/orders -> {status} {reply} (x-request-id: {request_id})");

    orders_task.abort();
    inventory_task.abort();
    for (name, a) in [("orders", &orders_audit), ("inventory", &inventory_audit)] {
        let report = a.shutdown(Duration::from_secs(10)).await;
        if !report.complete {
            return Err(format!("{name}: not every audit event was delivered").into());
        }
    }

    println!(
        "{:<10} {:<24} {:<38} {:<34} span",
        "service", "eventType", "requestId", "traceId"
    );
    for name in ["orders", "inventory"] {
        let text = std::fs::read_to_string(dir.join(format!("{name}.jsonl")))?;
        for line in text.lines() {
            let e: Value = serde_json::from_str(line)?;
            let ctx = &e["context"];
            println!(
                "{:<10} {:<24} {:<38} {:<34} {}",
                ctx["service"].as_str().unwrap_or(""),
                e["eventType"].as_str().unwrap_or(""),
                ctx["requestId"].as_str().unwrap_or(""),
                ctx["traceId"].as_str().unwrap_or(""),
                ctx["spanId"].as_str().unwrap_or(""),
            );
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let mut dir = PathBuf::from(".");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--dir", Some(d)) => dir = PathBuf::from(d),
            _ => {
                eprintln!("usage: cross_service [--dir DIR]");
                return std::process::ExitCode::from(2);
            }
        }
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(dir)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cross_service failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
