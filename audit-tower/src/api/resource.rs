//! The REST-resource profile ([`Profile::Resource`](super::Profile::Resource)): `GET /`,
//! `GET /filters`, `GET /{id}`, `DELETE /{id}`, with fastapi-pagination-style cursor pages.

use std::sync::Arc;

use audit_core::store::Page;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::Access;
use super::ApiState;
use super::routes::{self, Naming};

/// The routes under `p`: the list answers on `p` and `p/`.
pub(crate) fn routes(p: &str) -> Router<Arc<ApiState>> {
    let wrong = routes::method_not_allowed;
    let root = if p.is_empty() { "/" } else { p };
    let router = Router::new()
        .route(root, get(list).fallback(wrong))
        .route(&format!("{p}/filters"), get(filters).fallback(wrong))
        .route(
            &format!("{p}/{{id}}"),
            get(read_one).delete(delete_one).fallback(wrong),
        );
    if p.is_empty() {
        router
    } else {
        router.route(&format!("{p}/"), get(list).fallback(wrong))
    }
}

/// A cursor page: `items`, `total`, `current_page`, `next_page`, `previous_page`.
fn page_body(page: &Page, current: Option<&str>) -> Value {
    json!({
        "items": page.events,
        "total": page.summary.as_ref().map_or(0, |s| s.total_events),
        "current_page": current,
        "next_page": page.next_cursor.as_ref().map(|c| c.encode()),
        "previous_page": Value::Null,
    })
}

/// `GET /`.
async fn list(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let params = routes::query_params(&parts);
    routes::respond_page(&state, &parts, params, None, "GET /", page_body)
        .await
        .into_response()
}

/// `GET /filters` (no API keys).
async fn filters(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let mut access = Access::new("admin.audit_log.read", "Audit log filters read");
    access.api_keys_refused = true;
    routes::filter_metadata(&state, &parts, access, Naming::Snake)
        .await
        .into_response()
}

/// `GET /{id}`.
async fn read_one(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    routes::read_one(&state, &parts, &id, "GET /{id}")
        .await
        .into_response()
}

/// `DELETE /{id}` (no API keys).
async fn delete_one(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let mut access = Access::new("admin.audit_log.delete", "Audit log entry deleted");
    access.api_keys_refused = true;
    routes::delete(&state, &parts, &id, access, "DELETE /{id}")
        .await
        .into_response()
}
