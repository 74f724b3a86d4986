//! `GET /stream`: live events as server-sent events, with the same filters and tenant scope
//! as `GET /logs`.

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
        let filter = params.into_query(tenants)?.filter;
        state.record(&parts.extensions, access);

        let sub = feed.subscribe();
        let events =
            futures_util::stream::unfold((sub, filter), move |(mut sub, filter)| async move {
                loop {
                    let next = tokio::time::timeout(KEEP_ALIVE, sub.next()).await;
                    let frame = match next {
                        Err(_) => Bytes::from_static(b": keep-alive\n\n"),
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
                            let json = serde_json::to_string(&*e).unwrap_or_default();
                            Bytes::from(format!("id: {}\nevent: audit\ndata: {json}\n\n", e.id))
                        }
                    };
                    return Some((Ok::<_, Infallible>(frame), (sub, filter)));
                }
            });
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
