//! The read and delete handlers, and the authorisation every route shares.

use std::sync::Arc;

use audit_core::store::{
    DEFAULT_LIMIT, DistinctField, MAX_LIMIT, Page, QueryParams, TenantScope, check_id,
};
use audit_core::{Category, Outcome, Severity};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use super::{Access, ApiError, ApiState, Principal, SCOPE_READ, SCOPE_WRITE};

/// Largest JSON body accepted by `POST /search` and `POST /export`.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// Authenticates, checks `scope`, and works out the tenants this call may see: the
/// principal's, narrowed to `path_tenant` and then to `X-Org-ID` when given. On refusal the
/// access is recorded as denied, under the caller's own tenant (never the one asked for,
/// which is kept in `details.requestedTenant`).
pub(crate) async fn guard(
    state: &ApiState,
    parts: &Parts,
    scope: &str,
    path_tenant: Option<&str>,
    access: &mut Access,
) -> Result<TenantScope, ApiError> {
    let result = decide(state, parts, scope, path_tenant, access).await;
    if result.is_err() {
        access.outcome = Outcome::Denied;
        let fresh = Access::new(access.event_type, access.description);
        state.record(&parts.extensions, std::mem::replace(access, fresh));
    }
    result
}

pub(crate) async fn decide(
    state: &ApiState,
    parts: &Parts,
    scope: &str,
    path_tenant: Option<&str>,
    access: &mut Access,
) -> Result<TenantScope, ApiError> {
    let principal: Principal = state
        .authorizer
        .authorize(parts)
        .await
        .map_err(|e| ApiError::unauthorized(e.to_string()))?;
    access.principal = Some(principal.clone());
    if access.api_keys_refused && principal.kind == "api_key" {
        return Err(ApiError::forbidden("this call does not accept API keys"));
    }
    if !principal.has_scope(scope) {
        return Err(ApiError::forbidden(format!(
            "this call needs the {scope} scope"
        )));
    }
    let mut tenants = principal.tenants.clone();
    if let Some(t) = path_tenant {
        check_id("tenantId", t)?;
        access.detail("requestedTenant", t);
        if !principal.may_see(t) {
            return Err(ApiError::forbidden(format!(
                "Access denied to tenant '{t}'"
            )));
        }
        access.tenant = Some(t.to_owned());
        tenants = TenantScope::tenant(t);
    }
    if let Some(value) = parts.headers.get("x-org-id") {
        let org = value
            .to_str()
            .ok()
            .filter(|s| check_id("X-Org-ID", s).is_ok())
            .ok_or_else(|| ApiError::invalid("X-Org-ID must be a tenant id"))?;
        if access.org_header_names_caller {
            // The header says which of its tenants the caller acts as; the path names the
            // tenant it reads.
            if !principal.may_see(org) {
                return Err(ApiError::forbidden(format!(
                    "Access denied to tenant '{org}'"
                )));
            }
            access.detail("callerTenant", org);
            return Ok(tenants);
        }
        access.detail("requestedTenant", org);
        if !tenants.allows(Some(org)) {
            return Err(ApiError::forbidden(format!(
                "Access denied to tenant '{org}'"
            )));
        }
        access.tenant = Some(org.to_owned());
        tenants = TenantScope::tenant(org);
    }
    Ok(tenants)
}

/// Records a call that failed after it was authorized (a bad filter, a missing entry, a
/// store error) as the access it was, with the error's code, and passes the error on.
pub(crate) fn failed(
    state: &ApiState,
    parts: &Parts,
    mut access: Access,
    err: ApiError,
) -> ApiError {
    access.outcome = if err.status.is_server_error() {
        Outcome::Error
    } else {
        Outcome::Failure
    };
    access.detail("error", err.code);
    state.record(&parts.extensions, access);
    err
}

/// The filters a client used, for the access event (the cursor is position, not intent).
pub(crate) fn filters_detail(params: &QueryParams) -> Value {
    let mut v = serde_json::to_value(params).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        map.retain(|k, v| !v.is_null() && k != "cursor");
    }
    v
}

pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response {
    let mut resp = Response::new(Body::from(value.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub(crate) fn page_body(page: &Page) -> Value {
    json!({
        "logs": page.events,
        "pagination": {
            "nextCursor": page.next_cursor.as_ref().map(|c| c.encode()),
            "hasMore": page.next_cursor.is_some(),
        },
        "summary": page.summary.clone().unwrap_or_default(),
    })
}

pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("Invalid JSON in request body: {e}")))
}

pub(crate) async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        ApiError::invalid(format!(
            "the request body is unreadable or larger than {MAX_BODY} bytes"
        ))
    })
}

pub(crate) fn query_params(parts: &Parts) -> Result<QueryParams, ApiError> {
    serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
        .map_err(|e| ApiError::invalid(format!("invalid query string: {e}")))
}

/// Runs a search for any of the listing routes, records the read, and answers the page in
/// `shape`.
pub(crate) async fn respond_page(
    state: &ApiState,
    parts: &Parts,
    params: Result<QueryParams, ApiError>,
    path_tenant: Option<&str>,
    endpoint: &'static str,
    shape: impl FnOnce(&Page, Option<&str>) -> Value,
) -> Result<Response, ApiError> {
    let mut access = Access::new("admin.audit_log.read", "Audit log searched");
    access.detail("endpoint", endpoint);
    let tenants = guard(state, parts, SCOPE_READ, path_tenant, &mut access).await?;
    let params = match params {
        Ok(p) => p,
        Err(e) => return Err(failed(state, parts, access, e)),
    };
    access.detail("filters", filters_detail(&params));
    let cursor = params.cursor.clone().filter(|c| !c.is_empty());
    let query = match params.into_query(tenants) {
        Ok(q) => q,
        Err(e) => return Err(failed(state, parts, access, e.into())),
    };
    let page = match state.store.search(&query).await {
        Ok(p) => p,
        Err(e) => {
            state.store_failed(endpoint, &e);
            return Err(failed(state, parts, access, ApiError::internal()));
        }
    };
    access.detail("returned", page.events.len());
    access.detail(
        "totalEvents",
        page.summary.as_ref().map_or(0, |s| s.total_events),
    );
    let body = shape(&page, cursor.as_deref());
    state.record(&parts.extensions, access);
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET /logs`.
pub(crate) async fn list(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let params = query_params(&parts);
    respond_page(&state, &parts, params, None, "GET /logs", |p, _| {
        page_body(p)
    })
    .await
    .into_response()
}

/// `POST /search`.
pub(crate) async fn search(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let params = match read_body(body).await {
        Ok(bytes) => parse_body(&bytes),
        Err(e) => Err(e),
    };
    respond_page(&state, &parts, params, None, "POST /search", |p, _| {
        page_body(p)
    })
    .await
    .into_response()
}

/// `GET /tenants/{tenant}/logs`.
pub(crate) async fn tenant_logs(
    State(state): State<Arc<ApiState>>,
    Path(tenant): Path<String>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let params = query_params(&parts);
    respond_page(
        &state,
        &parts,
        params,
        Some(&tenant),
        "GET /tenants/{tenantId}/logs",
        |p, _| page_body(p),
    )
    .await
    .into_response()
}

/// `GET /logs/{id}`.
pub(crate) async fn get_one(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    read_one(&state, &parts, &id, "GET /logs/{id}")
        .await
        .into_response()
}

/// Reads one event for `GET …/{id}` routes.
pub(crate) async fn read_one(
    state: &ApiState,
    parts: &Parts,
    id: &str,
    endpoint: &'static str,
) -> Result<Response, ApiError> {
    let id = id.to_owned();
    let mut access = Access::new("admin.audit_log.read", "Audit log entry read");
    access.detail("endpoint", endpoint);
    let tenants = guard(state, parts, SCOPE_READ, None, &mut access).await?;
    if let Err(e) = check_id("id", &id) {
        return Err(failed(state, parts, access, e.into()));
    }
    access.target_id = Some(id.clone());
    let found = match state.store.get(&id, &tenants).await {
        Ok(f) => f,
        Err(e) => {
            state.store_failed(endpoint, &e);
            return Err(failed(state, parts, access, ApiError::internal()));
        }
    };
    access.detail("found", found.is_some());
    if found.is_none() {
        access.outcome = Outcome::Failure;
    }
    state.record(&parts.extensions, access);
    match found {
        Some(event) => Ok(json_response(StatusCode::OK, &json!(event))),
        None => Err(ApiError::not_found(format!("no audit log entry {id:?}"))),
    }
}

/// `DELETE /logs/{id}`.
pub(crate) async fn delete_one(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let access = Access::new("admin.audit_log.delete", "Audit log entry deleted");
    delete(&state, &parts, &id, access, "DELETE /logs/{id}")
        .await
        .into_response()
}

/// Deletes one event (keeping a tombstone) for `DELETE …/{id}` routes.
pub(crate) async fn delete(
    state: &ApiState,
    parts: &Parts,
    id: &str,
    mut access: Access,
    endpoint: &'static str,
) -> Result<Response, ApiError> {
    let id = id.to_owned();
    let tenants = guard(state, parts, SCOPE_WRITE, None, &mut access).await?;
    if let Err(e) = check_id("id", &id) {
        return Err(failed(state, parts, access, e.into()));
    }
    access.target_id = Some(id.clone());
    // The trail's record of its own administration and losses is not deletable here:
    // deleting a deletion's record would leave no trace of either.
    match state.store.get(&id, &tenants).await {
        Ok(Some(event)) if is_protected(event.event_type.as_str()) => {
            access.outcome = Outcome::Denied;
            access.detail("protected", event.event_type.as_str());
            let err = ApiError::forbidden(format!(
                "{} records are part of the audit log's own trail and cannot be deleted",
                event.event_type.as_str()
            ));
            access.detail("error", err.code);
            state.record(&parts.extensions, access);
            return Err(err);
        }
        Ok(_) => {}
        Err(e) => {
            state.store_failed(endpoint, &e);
            return Err(failed(state, parts, access, ApiError::internal()));
        }
    }
    // The tombstone names who deleted the event; the trail records it as well.
    let by = access
        .principal
        .as_ref()
        .map_or_else(String::new, |p| p.id.clone());
    let deleted = match state.store.delete(&id, &tenants, &by).await {
        Ok(d) => d,
        Err(e) => {
            state.store_failed(endpoint, &e);
            return Err(failed(state, parts, access, ApiError::internal()));
        }
    };
    if !deleted {
        access.outcome = Outcome::Failure;
        access.detail("found", false);
    }
    state.record(&parts.extensions, access);
    if deleted {
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        Ok(resp)
    } else {
        Err(ApiError::not_found(format!("no audit log entry {id:?}")))
    }
}

/// Event types that record the audit trail's own administration and losses: what an
/// attacker who can delete would want gone first.
pub(crate) fn is_protected(event_type: &str) -> bool {
    event_type.starts_with("admin.audit_log.") || event_type.starts_with("system.audit.")
}

/// Any other path under the prefix: 404 in the API's error shape, recorded as a read of the
/// audit log that failed.
pub(crate) async fn not_found(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let mut access = Access::new("admin.audit_log.read", "Audit API call to an unknown path");
    access.outcome = Outcome::Failure;
    let err = ApiError::not_found("no such audit API endpoint");
    access.detail("error", err.code);
    state.record(&parts.extensions, access);
    err.into_response()
}

/// A known path with a method it does not serve: 405 in the API's error shape.
pub(crate) async fn method_not_allowed(
    State(state): State<Arc<ApiState>>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let mut access = Access::new("admin.audit_log.read", "Audit API call with a wrong method");
    access.outcome = Outcome::Failure;
    let err = ApiError::method_not_allowed(format!(
        "{} is not served on this audit API endpoint",
        parts.method
    ));
    access.detail("error", err.code);
    state.record(&parts.extensions, access);
    err.into_response()
}

/// `GET /filters`.
pub(crate) async fn filters(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let access = Access::new("admin.audit_log.read", "Audit log filters read");
    filter_metadata(&state, &parts, access, Naming::Camel)
        .await
        .into_response()
}

/// How a profile spells filter names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Naming {
    /// `startTime`, `sort`: the native API.
    Camel,
    /// `start_time`, `sort_order`: the resource profile.
    Snake,
}

impl Naming {
    fn name(self, camel: &str) -> String {
        match self {
            Naming::Camel => camel.to_owned(),
            Naming::Snake => {
                let mut out = String::with_capacity(camel.len() + 4);
                for c in camel.chars() {
                    if c.is_ascii_uppercase() {
                        out.push('_');
                        out.push(c.to_ascii_lowercase());
                    } else {
                        out.push(c);
                    }
                }
                out
            }
        }
    }
}

/// The filter, operator and sort metadata, with the event and resource types present.
pub(crate) async fn filter_metadata(
    state: &ApiState,
    parts: &Parts,
    mut access: Access,
    naming: Naming,
) -> Result<Response, ApiError> {
    access.detail("endpoint", "GET /filters");
    let tenants = guard(state, parts, SCOPE_READ, None, &mut access).await?;
    let distinct = |field| {
        let store = state.store.clone();
        let tenants = tenants.clone();
        async move { store.distinct(field, &tenants, 500).await }
    };
    let (types, kinds) = match (
        distinct(DistinctField::EventType).await,
        distinct(DistinctField::ResourceType).await,
    ) {
        (Ok(t), Ok(k)) => (t, k),
        (Err(e), _) | (_, Err(e)) => {
            state.store_failed("GET /filters", &e);
            return Err(failed(state, parts, access, ApiError::internal()));
        }
    };
    state.record(&parts.extensions, access);
    let n = |camel: &str| naming.name(camel);
    let text = |name: &str| json!({"name": n(name), "type": "string", "operators": ["eq"]});
    let mut body = json!({
        "filters": [
            {"name": n("startTime"), "type": "datetime", "operators": ["gte"]},
            {"name": n("endTime"), "type": "datetime", "operators": ["lt"]},
            {"name": n("eventType"), "type": "string", "operators": ["eq", "glob"], "values": types},
            {"name": "category", "type": "enum", "operators": ["eq"],
             "values": Category::ALL.map(Category::as_str)},
            {"name": "severity", "type": "enum", "operators": ["eq"],
             "values": Severity::ALL.map(Severity::as_str)},
            {"name": "result", "type": "enum", "operators": ["eq"],
             "values": Outcome::ALL.map(Outcome::as_str)},
            text("actorId"),
            text("actorEmail"),
            text("clientId"),
            {"name": n("resourceType"), "type": "string", "operators": ["eq"], "values": kinds},
            text("targetId"),
            text("requestId"),
            {"name": "q", "type": "text", "operators": ["contains"],
             "fields": ["description", "id", "actorId", "actorEmail", "targetId", "requestId"]},
        ],
        "limit": {"default": DEFAULT_LIMIT, "max": MAX_LIMIT},
    });
    match naming {
        Naming::Camel => {
            body["sort"] =
                json!({"fields": ["timestamp"], "orders": ["desc", "asc"], "default": "desc"});
            body["eventTypes"] = json!(types);
            body["exportFormats"] = json!(["csv", "json", "ndjson"]);
        }
        Naming::Snake => {
            body["sort_by"] = json!({"values": ["timestamp"], "default": "timestamp"});
            body["sort_order"] = json!({"values": ["desc", "asc"], "default": "desc"});
            body["event_types"] = json!(types);
        }
    }
    Ok(json_response(StatusCode::OK, &body))
}
