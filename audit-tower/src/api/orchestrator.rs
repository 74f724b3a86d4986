//! The orchestrator profile ([`Profile::Orchestrator`](super::Profile::Orchestrator)):
//! `POST /search` and `GET /tenant/{tenant_id}` with snake_case bodies, offset pages and
//! flat entries.

use std::sync::Arc;

use audit_core::store::{MAX_LIMIT, MAX_OFFSET, QueryError, QueryParams, TenantScope};
use audit_core::{AuditEvent, Outcome, Timestamp};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;
use http::request::Parts;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::routes::{self, failed, guard, json_response};
use super::{Access, ApiError, ApiState, SCOPE_READ};

/// Page size of `POST /search` when none is given.
const SEARCH_LIMIT: usize = 100;
/// Page size of `GET /tenant/{tenant_id}` when none is given.
const TENANT_LIMIT: usize = 50;

/// The routes under `p`.
pub(crate) fn routes(p: &str) -> Router<Arc<ApiState>> {
    let wrong = routes::method_not_allowed;
    Router::new()
        .route(&format!("{p}/search"), post(search).fallback(wrong))
        .route(
            &format!("{p}/tenant/{{tenant_id}}"),
            get(tenant).fallback(wrong),
        )
}

/// The body of `POST /search`. Unknown fields are refused.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct SearchBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    user_email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<i64>,
}

/// The query string of `GET /tenant/{tenant_id}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantParams {
    limit: Option<String>,
    offset: Option<String>,
}

fn parse_search(body: &Bytes) -> Result<SearchBody, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ApiError::invalid("Invalid JSON in request body")
        } else {
            ApiError::invalid(format!("Invalid request body: {e}"))
        }
    })
}

/// `POST /search`.
async fn search(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let mut access = Access::new("admin.audit_log.read", "Audit log searched");
    access.detail("endpoint", "POST /search");
    let run = async {
        let tenants = guard(&state, &parts, SCOPE_READ, None, &mut access).await?;
        let body = match routes::read_body(body).await.and_then(|b| parse_search(&b)) {
            Ok(b) => b,
            Err(e) => return Err(failed(&state, &parts, access, e)),
        };
        access.detail(
            "filters",
            serde_json::to_value(&body).unwrap_or(Value::Null),
        );
        let (limit, offset) = match window(body.limit, body.offset, SEARCH_LIMIT) {
            Ok(w) => w,
            Err(e) => return Err(failed(&state, &parts, access, e)),
        };
        let mut params = QueryParams::default();
        params.actor_email = body.user_email;
        params.client_id = body.client_id;
        params.start_time = body.start_time;
        params.end_time = body.end_time;
        run_search(
            &state,
            &parts,
            access,
            Search {
                tenants,
                params,
                request_type: body.request_type,
                limit,
                offset,
            },
        )
        .await
    };
    run.await.into_response()
}

/// `GET /tenant/{tenant_id}`.
async fn tenant(
    State(state): State<Arc<ApiState>>,
    Path(tenant): Path<String>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let mut access = Access::new("admin.audit_log.read", "Audit log searched");
    access.detail("endpoint", "GET /tenant/{tenant_id}");
    access.org_header_names_caller = true;
    let run = async {
        let tenants = guard(&state, &parts, SCOPE_READ, Some(&tenant), &mut access).await?;
        let params: TenantParams = match serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
        {
            Ok(p) => p,
            Err(e) => {
                let e = ApiError::invalid(format!("invalid query string: {e}"));
                return Err(failed(&state, &parts, access, e));
            }
        };
        let parsed = digits("limit", params.limit)
            .and_then(|l| Ok((l, digits("offset", params.offset)?)))
            .and_then(|(l, o)| window(l, o, TENANT_LIMIT));
        let (limit, offset) = match parsed {
            Ok(w) => w,
            Err(e) => return Err(failed(&state, &parts, access, e)),
        };
        run_search(
            &state,
            &parts,
            access,
            Search {
                tenants,
                params: QueryParams::default(),
                request_type: None,
                limit,
                offset,
            },
        )
        .await
    };
    run.await.into_response()
}

/// The page both routes answer: `limit` (default `default`, at least 1, larger values lowered
/// to [`MAX_LIMIT`]) and `offset` (0 to [`MAX_OFFSET`]).
fn window(
    limit: Option<i64>,
    offset: Option<i64>,
    default: usize,
) -> Result<(usize, usize), ApiError> {
    let limit = match limit {
        None => default,
        Some(l) if l < 1 => return Err(ApiError::invalid("limit must be at least 1")),
        Some(l) => usize::try_from(l).unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
    };
    let offset = match offset {
        None => 0,
        Some(o) => usize::try_from(o)
            .ok()
            .filter(|o| *o <= MAX_OFFSET)
            .ok_or_else(|| ApiError::invalid(format!("offset must be from 0 to {MAX_OFFSET}")))?,
    };
    Ok((limit, offset))
}

/// A query-string number: digits only (`+5`, ` 5` and `5.0` are refused).
fn digits(name: &str, v: Option<String>) -> Result<Option<i64>, ApiError> {
    v.filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<i64>()
                .ok()
                .filter(|_| s.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| ApiError::invalid(format!("{name} must be a whole number")))
        })
        .transpose()
}

/// One validated call of either route.
struct Search {
    tenants: TenantScope,
    params: QueryParams,
    request_type: Option<String>,
    limit: usize,
    offset: usize,
}

/// The native filter names in a validation message, as this profile's clients spell them.
fn in_our_names(e: QueryError) -> ApiError {
    let mut err = ApiError::from(e);
    for (native, ours) in [
        ("startTime", "start_time"),
        ("endTime", "end_time"),
        ("actorEmail", "user_email"),
        ("clientId", "client_id"),
    ] {
        err.message = err.message.replace(native, ours);
    }
    err
}

async fn run_search(
    state: &ApiState,
    parts: &Parts,
    mut access: Access,
    search: Search,
) -> Result<Response, ApiError> {
    let mut query = match search.params.into_query(search.tenants) {
        Ok(q) => q,
        Err(e) => return Err(failed(state, parts, access, in_our_names(e))),
    };
    // `end_time` names the last instant included (`…T23:59:59Z`); the store's bound is
    // exclusive, one millisecond later.
    if let Some(end) = query.filter.end_time {
        query.filter.end_time = Timestamp::from_unix_millis(end.unix_millis() + 1).ok();
    }
    if let Some(name) = search.request_type.filter(|s| !s.is_empty()) {
        if name.len() > 256 || name.chars().any(char::is_control) {
            let e = ApiError::invalid("request_type must be at most 256 characters of text");
            return Err(failed(state, parts, access, e));
        }
        query.filter.event_types = Some(state.request_types.event_types(&name));
    }
    query.limit = search.limit;
    query.offset = search.offset;
    let page = match state.store.search(&query).await {
        Ok(p) => p,
        Err(e) => {
            state.store_failed("audit search", &e);
            let mut err = ApiError::internal();
            err.message = "Audit search failed".into();
            return Err(failed(state, parts, access, err));
        }
    };
    let total = page.summary.as_ref().map_or(0, |s| s.total_events);
    access.detail("returned", page.events.len());
    access.detail("totalEvents", total);
    let entries: Vec<Value> = page
        .events
        .iter()
        .map(|e| entry(e, &state.request_types))
        .collect();
    state.record(&parts.extensions, access);
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "entries": entries,
            "total": total,
            "limit": search.limit,
            "offset": search.offset,
        }),
    ))
}

/// A detail under its camelCase or snake_case key.
fn detail<'a>(e: &'a AuditEvent, camel: &str, snake: &str) -> Option<&'a Value> {
    e.details
        .get(camel)
        .or_else(|| e.details.get(snake))
        .filter(|v| !v.is_null())
}

/// An event as an orchestrator entry (the field list is in [`Profile::Orchestrator`]).
///
/// [`Profile::Orchestrator`]: super::Profile::Orchestrator
pub(crate) fn entry(e: &AuditEvent, types: &super::RequestTypes) -> Value {
    let mut out = Map::new();
    fn text(out: &mut Map<String, Value>, key: &str, v: Option<&str>) {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            out.insert(key.to_owned(), Value::from(v));
        }
    }
    let actor = e.actor.as_ref();
    let ctx = e.context.as_ref();
    text(&mut out, "id", Some(&e.id.to_string()));
    text(
        &mut out,
        "request_id",
        ctx.and_then(|c| c.request_id.as_deref()),
    );
    text(&mut out, "timestamp", Some(&e.timestamp.to_string()));
    let user_id = actor.and_then(|a| a.id.as_deref());
    match user_id.and_then(|id| {
        id.parse::<i64>()
            .ok()
            .filter(|_| id.bytes().all(|b| b.is_ascii_digit()))
    }) {
        Some(n) => {
            out.insert("user_id".into(), Value::from(n));
        }
        None => text(&mut out, "user_id", user_id),
    }
    text(
        &mut out,
        "user_email",
        actor.and_then(|a| a.email.as_deref()),
    );
    text(&mut out, "user_role", actor.and_then(|a| a.role.as_deref()));
    text(
        &mut out,
        "client_id",
        actor.and_then(|a| a.client_id.as_deref()),
    );
    text(&mut out, "tenant_id", e.organization_id());
    text(
        &mut out,
        "request_type",
        Some(types.name_of(e.event_type.as_str())),
    );
    let decision = detail(e, "policyDecision", "policy_decision")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| match e.result {
            Some(Outcome::Success) => Some("allowed".to_owned()),
            Some(Outcome::Denied) => Some("blocked".to_owned()),
            _ => None,
        });
    text(&mut out, "policy_decision", decision.as_deref());
    let error = detail(e, "errorMessage", "error_message")
        .and_then(Value::as_str)
        .or_else(|| match e.result {
            Some(Outcome::Error | Outcome::Failure) => {
                e.details.get("error").and_then(Value::as_str)
            }
            _ => None,
        })
        .map(str::to_owned);
    text(&mut out, "error_message", error.as_deref());
    let latency = e
        .http
        .as_ref()
        .and_then(|h| h.duration_ms)
        .map(|ms| Value::from(ms.round() as u64))
        .or_else(|| detail(e, "responseTimeMs", "response_time_ms").cloned());
    if let Some(ms) = latency {
        out.insert("response_time_ms".into(), ms);
    }
    for (key, camel) in [
        ("query", "query"),
        ("query_hash", "queryHash"),
        ("policy_details", "policyDetails"),
        ("provider", "provider"),
        ("model", "model"),
        ("tokens_used", "tokensUsed"),
        ("cost", "cost"),
        ("response_sample", "responseSample"),
        ("compliance_flags", "complianceFlags"),
        ("security_metrics", "securityMetrics"),
    ] {
        if let Some(v) = detail(e, camel, key) {
            out.insert(key.to_owned(), v.clone());
        }
    }
    out.insert("redacted_fields".into(), json!(e.redacted_fields));
    Value::Object(out)
}
