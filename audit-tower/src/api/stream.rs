//! `GET /stream`: live events as server-sent events, with the same filters and tenant scope
//! as `GET /logs`.
//!
//! A stream outlives the request that opened it, so its authorization is checked again: at
//! least every [`AuditApi::stream_limits`](super::AuditApi::stream_limits) interval (1 s by
//! default) and before any event is sent once that interval has passed, the caller's
//! credentials are put through the [`Authorizer`](super::Authorizer) again. When they no
//! longer grant `audit:read` on the same tenants (a session logged out, a role taken away, a
//! key revoked), the stream sends `event: closed` with `{"reason":"revoked"}` and ends; the
//! close is recorded as a denied `admin.audit_log.read`. Every stream ends after its maximum
//! lifetime (1 hour by default) with `{"reason":"expired"}`; clients reconnect with fresh
//! credentials. An [`ExtensionPrincipal`](super::ExtensionPrincipal) authorizer only sees the
//! principal the application's middleware placed when the stream opened, so it cannot notice
//! a revocation: use an authorizer that checks the credential itself for streams.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use audit_core::live::Live;
use audit_core::store::TenantScope;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};

use super::routes::{filters_detail, guard, query_params};
use super::watch::{Credentials, Watch};
use super::{Access, ApiError, ApiState, SCOPE_READ};

/// How often an idle stream sends a comment, so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `GET /stream`.
pub(crate) async fn stream(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let run = async {
        let mut access = Access::new("admin.audit_log.read", "Audit log streamed");
        access.detail("endpoint", "GET /stream");
        let tenants = guard(&state, &parts, SCOPE_READ, None, &mut access).await?;
        let Some(feed) = state.live.clone() else {
            return Err(ApiError::not_found(
                "live streaming is not enabled on this service",
            ));
        };
        let params = query_params(&parts)?;
        if params.cursor.is_some() || params.limit.is_some() || params.sort.is_some() {
            return Err(ApiError::invalid(
                "a live stream takes filters only, not sort, limit or cursor",
            ));
        }
        access.detail("filters", filters_detail(&params));
        // A principal limited to some tenants learns nothing of others' volume: lag notices
        // carry a count only for principals who may see everything.
        let counts_visible = tenants == TenantScope::All;
        let scope = tenants.clone();
        let filter = params.into_query(tenants)?.filter;
        state.record(&parts.extensions, access);

        let sub = feed.subscribe();
        let watch = Watch::new(Arc::clone(&state), Credentials::of(&parts), scope);
        let events = futures_util::stream::unfold(
            (sub, filter, watch),
            move |(mut sub, filter, mut watch): (_, _, Watch)| async move {
                if watch.ended {
                    return None;
                }
                let mut idle = Duration::ZERO;
                loop {
                    if let Some(reason) = watch.check().await {
                        watch.ended = true;
                        let frame = format!("event: closed\ndata: {{\"reason\":\"{reason}\"}}\n\n");
                        return Some((Ok(Bytes::from(frame)), (sub, filter, watch)));
                    }
                    let wait = watch.state().stream_reauthorize.min(KEEP_ALIVE);
                    let next = tokio::time::timeout(wait, sub.next()).await;
                    let frame = match next {
                        Err(_) => {
                            idle += wait;
                            if idle < KEEP_ALIVE {
                                continue;
                            }
                            Bytes::from_static(b": keep-alive\n\n")
                        }
                        Ok(None) => return None,
                        Ok(Some(Live::Lagged(n))) => {
                            let data = if counts_visible {
                                format!("{{\"missed\":{n}}}")
                            } else {
                                "{\"missed\":true}".to_owned()
                            };
                            Bytes::from(format!("event: lagged\ndata: {data}\n\n"))
                        }
                        Ok(Some(Live::Event(e))) => {
                            if !filter.matches(&e) {
                                continue;
                            }
                            // Checked again before this event goes out, if it is time.
                            if let Some(reason) = watch.check().await {
                                watch.ended = true;
                                let frame =
                                    format!("event: closed\ndata: {{\"reason\":\"{reason}\"}}\n\n");
                                return Some((Ok(Bytes::from(frame)), (sub, filter, watch)));
                            }
                            let json = serde_json::to_string(&*e).unwrap_or_default();
                            Bytes::from(format!("id: {}\nevent: audit\ndata: {json}\n\n", e.id))
                        }
                    };
                    return Some((Ok::<_, Infallible>(frame), (sub, filter, watch)));
                }
            },
        );
        let mut resp = Response::new(Body::from_stream(events));
        *resp.status_mut() = StatusCode::OK;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
        Ok::<_, ApiError>(resp)
    };
    run.await.into_response()
}
