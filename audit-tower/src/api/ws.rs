//! `GET /ws`: live events over WebSocket, with the same authorization, tenant scope, filters,
//! re-authorization and lifetime as `GET /stream`.
//!
//! A browser cannot set an `Authorization` header on a WebSocket, and credentials do not
//! belong in URLs. A client therefore offers two subprotocols, `audit.v1` and
//! `bearer.<token>`: the token is put through the [`Authorizer`](super::Authorizer) as
//! `Authorization: Bearer <token>` (for the upgrade and every re-authorization), and the
//! server selects `audit.v1`, so the token is never echoed. Clients that can set headers send
//! `Authorization` as usual.
//!
//! Messages are JSON text frames: `{"type":"event","event":{…}}`; `{"type":"lagged",
//! "missed":n}` when the client fell behind the live feed (`true` instead of a count for
//! tenant-scoped callers); and, last, `{"type":"closed","reason":…}` before the close frame,
//! with `revoked` (the credentials no longer grant what they did), `expired` (the maximum
//! lifetime) or `slow`. A client that does not take a message within [`SEND_TIMEOUT`] is
//! disconnected (`slow`): the live feed never waits for a client, so no client can slow the
//! pipeline.

use std::sync::Arc;
use std::time::Duration;

use audit_core::live::Live;
use audit_core::store::{Filter, TenantScope};
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use serde_json::json;

use super::routes::{filters_detail, guard, query_params};
use super::watch::{Credentials, Watch};
use super::{Access, ApiError, ApiState, SCOPE_READ};

/// The subprotocol the server speaks.
pub const PROTOCOL: &str = "audit.v1";
/// Longest wait for a client to take one message before it is disconnected as slow.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /ws`.
pub(crate) async fn ws(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    let (mut parts, _) = req.into_parts();
    bearer_from_protocol(&mut parts.headers);
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(u) => u,
        Err(_) => {
            return ApiError::invalid("this endpoint speaks WebSocket (Upgrade: websocket)")
                .into_response();
        }
    };
    let mut access = Access::new("admin.audit_log.read", "Audit log streamed");
    access.detail("endpoint", "GET /ws");
    let tenants = match guard(&state, &parts, SCOPE_READ, None, &mut access).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let Some(feed) = state.live.clone() else {
        return super::routes::failed(
            &state,
            &parts,
            access,
            ApiError::not_found("live streaming is not enabled on this service"),
        )
        .into_response();
    };
    let filter = match query_params(&parts).and_then(|params| {
        if params.cursor.is_some() || params.limit.is_some() || params.sort.is_some() {
            return Err(ApiError::invalid(
                "a live stream takes filters only, not sort, limit or cursor",
            ));
        }
        access.detail("filters", filters_detail(&params));
        Ok(params.into_query(tenants.clone())?.filter)
    }) {
        Ok(f) => f,
        Err(e) => return super::routes::failed(&state, &parts, access, e).into_response(),
    };
    state.record(&parts.extensions, access);
    let watch = Watch::new(Arc::clone(&state), Credentials::of(&parts), tenants.clone());
    let counts_visible = tenants == TenantScope::All;
    let sub = feed.subscribe();
    upgrade
        .protocols([PROTOCOL])
        .on_upgrade(move |socket| run(socket, sub, filter, watch, counts_visible))
}

/// Moves a `bearer.<token>` subprotocol into `Authorization: Bearer <token>` (when no
/// `Authorization` was sent) and leaves only the other protocols offered.
fn bearer_from_protocol(headers: &mut http::HeaderMap) {
    let Some(offered) = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return;
    };
    let mut rest = Vec::new();
    let mut token = None;
    for p in offered.split(',').map(str::trim) {
        match p.strip_prefix("bearer.") {
            Some(t) if !t.is_empty() => token = Some(t.to_owned()),
            _ => rest.push(p),
        }
    }
    if let Some(t) = token {
        if !headers.contains_key(header::AUTHORIZATION)
            && let Ok(v) = HeaderValue::from_str(&format!("Bearer {t}"))
        {
            headers.insert(header::AUTHORIZATION, v);
        }
        match HeaderValue::from_str(&rest.join(", ")) {
            Ok(v) if !rest.is_empty() => {
                headers.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
            }
            _ => {
                headers.remove(header::SEC_WEBSOCKET_PROTOCOL);
            }
        }
    }
}

/// Sends `text`, giving up after [`SEND_TIMEOUT`]; false when the client is gone or slow.
async fn send(socket: &mut WebSocket, text: String) -> bool {
    matches!(
        tokio::time::timeout(
            SEND_TIMEOUT,
            socket.send(Message::Text(Utf8Bytes::from(text)))
        )
        .await,
        Ok(Ok(()))
    )
}

async fn close(socket: &mut WebSocket, reason: &str) {
    if send(
        socket,
        json!({"type": "closed", "reason": reason}).to_string(),
    )
    .await
    {
        let _ = tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Close(None))).await;
    }
}

async fn run(
    mut socket: WebSocket,
    mut sub: audit_core::live::Subscription,
    filter: Filter,
    mut watch: Watch,
    counts_visible: bool,
) {
    let tick = watch.state().stream_reauthorize;
    loop {
        if let Some(reason) = watch.check().await {
            close(&mut socket, reason).await;
            return;
        }
        let next = tokio::select! {
            incoming = socket.recv() => match incoming {
                // The client closed, went away, or broke the protocol.
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                // Pings are answered by the protocol layer; nothing else is expected.
                Some(Ok(_)) => continue,
            },
            next = tokio::time::timeout(tick, sub.next()) => next,
        };
        let message = match next {
            Err(_) => continue,
            Ok(None) => {
                close(&mut socket, "ended").await;
                return;
            }
            Ok(Some(Live::Lagged(n))) => {
                let missed = if counts_visible {
                    json!(n)
                } else {
                    json!(true)
                };
                json!({"type": "lagged", "missed": missed}).to_string()
            }
            Ok(Some(Live::Event(e))) => {
                if !filter.matches(&e) {
                    continue;
                }
                // Checked again before this event goes out, if it is time.
                if let Some(reason) = watch.check().await {
                    close(&mut socket, reason).await;
                    return;
                }
                json!({"type": "event", "event": &*e}).to_string()
            }
        };
        if !send(&mut socket, message).await {
            // Slow or gone: the socket is dropped, the live feed never waited for it.
            return;
        }
    }
}
