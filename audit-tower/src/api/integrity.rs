//! `GET /verify` and `GET /keys`: the trail's integrity, checked by the server over its own
//! store, and the public keys its checkpoints are signed with.

use std::sync::Arc;
use std::time::Duration;

use audit_core::integrity::Keyring;
use audit_core::store::{TenantScope, verify_store};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;

use super::routes::{failed, guard, json_response};
use super::{Access, ApiError, ApiState, SCOPE_READ};

/// The keys a verification trusts: the configured ones and every key this process's auditor
/// has signed with.
pub(crate) fn keyring(state: &ApiState) -> Keyring {
    let mut keys = state.trusted_keys.clone();
    for k in state.auditor.keyring().keys() {
        keys.add(k.clone());
    }
    keys
}

/// `GET /keys`: the public keyring (any caller with `audit:read`).
pub(crate) async fn keys(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let run = async {
        let mut access = Access::new("admin.audit_log.read", "Audit checkpoint keys read");
        access.detail("endpoint", "GET /keys");
        guard(&state, &parts, SCOPE_READ, None, &mut access).await?;
        state.record(&parts.extensions, access);
        let ring = keyring(&state);
        let body: serde_json::Value =
            serde_json::from_str(&ring.to_json()).map_err(|_| ApiError::internal())?;
        Ok::<_, ApiError>(json_response(StatusCode::OK, &body))
    };
    run.await.into_response()
}

/// `GET /verify`: verifies the whole store (operators only: principals that see every
/// tenant). One verification runs at a time; another request meanwhile is a 429.
pub(crate) async fn verify(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let run = async {
        let mut access = Access::new("admin.audit_log.verify", "Audit trail verified");
        access.detail("endpoint", "GET /verify");
        guard(&state, &parts, SCOPE_READ, None, &mut access).await?;
        let operator = access
            .principal
            .as_ref()
            .is_some_and(|p| matches!(p.tenants, TenantScope::All));
        if !operator {
            access.outcome = audit_core::Outcome::Denied;
            let err = ApiError::forbidden(
                "verifying the trail reads every tenant's events: operators only",
            );
            access.detail("error", err.code);
            state.record(&parts.extensions, access);
            return Err(err);
        }
        let Ok(_running) = state.verifying.try_lock() else {
            let err = ApiError::rate_limited(Duration::from_secs(5));
            access.outcome = audit_core::Outcome::Failure;
            access.detail("error", err.code);
            state.record(&parts.extensions, access);
            return Err(err);
        };
        let report = match verify_store(&*state.store, Some(keyring(&state)), |_| {}).await {
            Ok(r) => r,
            Err(e) => {
                state.store_failed("GET /verify", &e);
                return Err(failed(&state, &parts, access, ApiError::internal()));
            }
        };
        // This process's own stream is still being written: its newest events await the
        // next checkpoint, and it has no final one yet.
        let status = if report.is_verified_except_live(state.auditor.stream()) {
            "verified"
        } else if report.is_intact() {
            "intact"
        } else {
            "failed"
        };
        access.detail("status", status);
        access.detail("events", report.events);
        access.detail("problems", report.problems.len());
        if !report.is_intact() {
            access.outcome = audit_core::Outcome::Failure;
        }
        state.record(&parts.extensions, access);
        let mut body = serde_json::to_value(&report).map_err(|_| ApiError::internal())?;
        if let Some(o) = body.as_object_mut() {
            o.insert("status".into(), json!(status));
        }
        Ok(json_response(StatusCode::OK, &body))
    };
    run.await.into_response()
}
