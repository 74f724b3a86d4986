//! `POST /export`: a streamed file of every matching event, rate-limited per tenant; and
//! `POST /export/manifest`: what lets the caller verify that file on its own.

use audit_core::sync::LockExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use audit_core::Timestamp;
use audit_core::export::{Encoder, ExportFormat};
use audit_core::store::{ExportPages, MAX_LIMIT, QueryParams, TenantScope};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use serde::Deserialize;

use super::routes::{filters_detail, guard, parse_body, read_body};
use super::{Access, ApiError, ApiState, SCOPE_READ};

/// The body of `POST /export`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportRequest {
    format: String,
    #[serde(default)]
    filters: QueryParams,
    /// Where to write the export instead of the response (an allowed destination).
    #[serde(default)]
    destination: Option<String>,
}

/// A token bucket per key: `capacity` exports, one more every `window / capacity`.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    capacity: f64,
    refill_per_sec: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Buckets kept before idle ones are forgotten.
const MAX_BUCKETS: usize = 10_000;

impl RateLimiter {
    pub(crate) fn new(count: u32, window: Duration) -> RateLimiter {
        RateLimiter {
            capacity: f64::from(count),
            refill_per_sec: f64::from(count) / window.as_secs_f64(),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`, or says how long until one is available.
    pub(crate) fn take(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock_ignore_poison();
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(key) {
            let (capacity, rate) = (self.capacity, self.refill_per_sec);
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < capacity
            });
        }
        let (tokens, at) = buckets
            .entry(key.to_owned())
            .or_insert((self.capacity, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.refill_per_sec)
            .min(self.capacity);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - *tokens) / self.refill_per_sec,
            ))
        }
    }
}

fn limiter_key(tenants: &TenantScope) -> String {
    match tenants {
        TenantScope::All => "*".to_owned(),
        TenantScope::Only(list) => list.join(","),
        TenantScope::None => String::new(),
    }
}

/// `POST /export`.
pub(crate) async fn export(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let run = async {
        let mut access = Access::new("admin.audit_log.export", "Audit log exported");
        let tenants = guard(&state, &parts, SCOPE_READ, None, &mut access).await?;
        let request: ExportRequest = parse_body(&read_body(body).await?)?;
        let format: ExportFormat = request
            .format
            .parse()
            .map_err(|e: audit_core::Error| ApiError::invalid(e.to_string()))?;
        access.detail("format", format.extension());
        if let Some(destination) = request.destination {
            access.detail("destination", destination.as_str());
            return to_destination(
                &state,
                &parts,
                access,
                &destination,
                request.filters,
                &tenants,
                format,
            );
        }
        let query = match export_query(&state, request.filters, &tenants, &mut access) {
            Ok(q) => q,
            Err(e) => return Err(refused(&state, &parts, access, e)),
        };
        state.record(&parts.extensions, access);

        let pages = ExportPages::new(state.store.clone(), query);
        let encoder = Encoder::new(format);
        let stream = futures_util::stream::unfold(
            (pages, encoder, Stage::Start, state.clone()),
            |(mut pages, mut encoder, stage, state)| async move {
                match stage {
                    Stage::Start => {
                        let head = Bytes::from(encoder.begin());
                        Some((Ok(head), (pages, encoder, Stage::Body, state)))
                    }
                    Stage::Body => match pages.next_page().await {
                        Ok(Some(events)) => {
                            let mut out = Vec::with_capacity(events.len() * 600);
                            for e in &events {
                                encoder.event(e, &mut out);
                            }
                            Some((Ok(Bytes::from(out)), (pages, encoder, Stage::Body, state)))
                        }
                        Ok(None) => {
                            let tail = Bytes::from(encoder.end());
                            Some((Ok(tail), (pages, encoder, Stage::Done, state)))
                        }
                        Err(e) => {
                            // Failing the body aborts the response, so a client never
                            // mistakes a cut-off export for a complete one.
                            state.store_failed("POST /export", &e);
                            Some((
                                Err(std::io::Error::other("audit store failed mid-export")),
                                (pages, encoder, Stage::Done, state),
                            ))
                        }
                    },
                    Stage::Done => None,
                }
            },
        );
        let mut resp = Response::new(Body::from_stream(stream));
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        );
        let name = format!(
            "attachment; filename=\"audit-export-{}.{}\"",
            Timestamp::now().unix_millis(),
            format.extension()
        );
        if let Ok(v) = HeaderValue::from_str(&name) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        *resp.status_mut() = StatusCode::OK;
        Ok::<_, ApiError>(resp)
    };
    run.await.into_response()
}

/// `POST /export` with a destination: refused unless allowed, else a job is started and
/// answered 202.
#[cfg(feature = "object-store")]
fn to_destination(
    state: &Arc<ApiState>,
    parts: &Parts,
    mut access: Access,
    destination: &str,
    filters: QueryParams,
    tenants: &TenantScope,
    format: ExportFormat,
) -> Result<Response, ApiError> {
    use super::destination::{Requester, plan, run};
    let planned = match plan(state, destination, tenants, format) {
        Ok(p) => p,
        Err(e) => {
            access.outcome = audit_core::Outcome::Denied;
            return Err(refused(state, parts, access, e));
        }
    };
    let query = match export_query(state, filters, tenants, &mut access) {
        Ok(q) => q,
        Err(e) => return Err(refused(state, parts, access, e)),
    };
    let id = planned.job.id.clone();
    access.detail("jobId", id.as_str());
    access.detail("location", planned.job.location.as_str());
    let requester = Requester {
        principal: access.principal.clone(),
        tenant: access.tenant.clone().or_else(|| match tenants {
            TenantScope::Only(list) if list.len() == 1 => Some(list[0].clone()),
            _ => None,
        }),
        request_id: parts
            .extensions
            .get::<crate::RequestId>()
            .map(|r| r.as_str().to_owned()),
    };
    let job = state.jobs.add(planned.job.clone());
    state.record(&parts.extensions, access);
    tokio::spawn(run(
        Arc::clone(state),
        planned,
        job,
        query,
        format,
        requester,
    ));
    let body = serde_json::json!({
        "jobId": id,
        "status": "running",
        "statusUrl": format!("{}/exports/{id}", state.prefix),
    });
    Ok(super::routes::json_response(StatusCode::ACCEPTED, &body))
}

/// Without the `object-store` feature, no destination is allowed.
#[cfg(not(feature = "object-store"))]
fn to_destination(
    state: &Arc<ApiState>,
    parts: &Parts,
    mut access: Access,
    destination: &str,
    _filters: QueryParams,
    _tenants: &TenantScope,
    _format: ExportFormat,
) -> Result<Response, ApiError> {
    access.outcome = audit_core::Outcome::Denied;
    let err = ApiError::forbidden(format!(
        "exports to {destination:?} are not allowed: this service writes exports to no destination"
    ));
    Err(refused(state, parts, access, err))
}

/// The query of an export (every page of the filters, in the caller's tenants), once the
/// caller's tenant is within its export rate; a rate refusal marks `access` denied.
fn export_query(
    state: &ApiState,
    filters: QueryParams,
    tenants: &TenantScope,
    access: &mut Access,
) -> Result<audit_core::store::Query, ApiError> {
    access.detail("filters", filters_detail(&filters));
    let mut filters = filters;
    filters.limit = None;
    let mut query = filters.into_query(tenants.clone())?;
    query.limit = MAX_LIMIT;
    if let Err(wait) = state.limiter.take(&limiter_key(tenants)) {
        access.outcome = audit_core::Outcome::Denied;
        access.detail("reason", "rate limited");
        return Err(ApiError::rate_limited(wait));
    }
    Ok(query)
}

/// Records an export that [`export_query`] refused: denied when rate-limited, failed for a
/// bad filter.
fn refused(state: &ApiState, parts: &Parts, access: Access, err: ApiError) -> ApiError {
    if access.outcome == audit_core::Outcome::Denied {
        state.record(&parts.extensions, access);
        err
    } else {
        super::routes::failed(state, parts, access, err)
    }
}

/// The body of `POST /export/manifest`: the export's filters (its format does not matter).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestRequest {
    #[serde(default)]
    #[allow(dead_code)] // accepted so an export's body can be sent as it is
    format: Option<String>,
    #[serde(default)]
    filters: QueryParams,
}

/// `POST /export/manifest`: the [`Manifest`](audit_core::integrity::Manifest) of the export
/// the same filters produce: the chain segments around the caller's events, with only hashes
/// of everyone else's. Counts against the same rate limit as an export.
pub(crate) async fn manifest(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let run = async {
        let mut access = Access::new("admin.audit_log.export", "Audit export manifest made");
        access.detail("manifest", true);
        let tenants = guard(&state, &parts, SCOPE_READ, None, &mut access).await?;
        let request: ManifestRequest = parse_body(&read_body(body).await?)?;
        let query = match export_query(&state, request.filters, &tenants, &mut access) {
            Ok(q) => q,
            Err(e) => return Err(refused(&state, &parts, access, e)),
        };
        // The export's positions, then the chain around them; one store failure path.
        let built = async {
            let mut pages = ExportPages::new(state.store.clone(), query);
            let mut positions = Vec::new();
            while let Some(events) = pages.next_page().await? {
                positions.extend(events.iter().filter_map(|e| {
                    let i = e.integrity.as_ref()?;
                    Some((i.stream.to_string(), i.seq))
                }));
            }
            let manifest = audit_core::integrity::build_manifest(&*state.store, &positions).await?;
            Ok::<_, audit_core::store::StoreError>((manifest, positions))
        };
        let (manifest, positions) = match built.await {
            Ok(b) => b,
            Err(e) => {
                state.store_failed("POST /export/manifest", &e);
                return Err(super::routes::failed(
                    &state,
                    &parts,
                    access,
                    ApiError::internal(),
                ));
            }
        };
        access.detail("events", positions.len());
        state.record(&parts.extensions, access);
        let body = serde_json::to_value(&manifest).map_err(|_| ApiError::internal())?;
        Ok(super::routes::json_response(StatusCode::OK, &body))
    };
    run.await.into_response()
}

#[derive(Debug, Clone, Copy)]
enum Stage {
    Start,
    Body,
    Done,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills() {
        let l = RateLimiter::new(2, Duration::from_millis(200));
        assert!(l.take("a").is_ok());
        assert!(l.take("a").is_ok());
        let wait = l.take("a").unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        assert!(l.take("b").is_ok(), "tenants have separate buckets");
        std::thread::sleep(Duration::from_millis(120));
        assert!(l.take("a").is_ok());
    }
}
