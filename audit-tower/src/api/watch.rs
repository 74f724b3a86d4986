//! A live view's authorization and lifetime, shared by `GET /stream` (server-sent events)
//! and `GET /ws` (WebSocket).

use std::sync::Arc;
use std::time::Instant;

use audit_core::store::TenantScope;

use super::routes::decide;
use super::{Access, ApiState, SCOPE_READ};

/// What is needed to put a stream's caller through the authorizer again.
pub(crate) struct Credentials {
    method: http::Method,
    uri: http::Uri,
    headers: http::HeaderMap,
    extensions: http::Extensions,
}

impl Credentials {
    pub(crate) fn of(parts: &http::request::Parts) -> Credentials {
        Credentials {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
            extensions: parts.extensions.clone(),
        }
    }

    fn parts(&self) -> http::request::Parts {
        let mut req = http::Request::new(());
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        *req.extensions_mut() = self.extensions.clone();
        req.into_parts().0
    }
}

/// A live stream's authorization and lifetime.
pub(crate) struct Watch {
    state: Arc<ApiState>,
    credentials: Credentials,
    /// The tenants the stream was opened for.
    tenants: TenantScope,
    opened: Instant,
    checked: Instant,
    pub(crate) ended: bool,
}

impl Watch {
    /// Watches a view opened now by the caller behind `credentials`, for `tenants`.
    pub(crate) fn new(
        state: Arc<ApiState>,
        credentials: Credentials,
        tenants: TenantScope,
    ) -> Watch {
        Watch {
            state,
            credentials,
            tenants,
            opened: Instant::now(),
            checked: Instant::now(),
            ended: false,
        }
    }

    /// The API's state (limits, store, auditor).
    pub(crate) fn state(&self) -> &ApiState {
        &self.state
    }
}

impl Watch {
    /// Why the stream must end now, if it must: its lifetime is over, or (when a check is
    /// due) the caller's credentials no longer grant what they granted.
    pub(crate) async fn check(&mut self) -> Option<&'static str> {
        if self.opened.elapsed() >= self.state.stream_lifetime {
            return Some("expired");
        }
        if self.checked.elapsed() < self.state.stream_reauthorize {
            return None;
        }
        self.checked = Instant::now();
        let parts = self.credentials.parts();
        let mut access = Access::new("admin.audit_log.read", "Audit log stream closed");
        access.detail("endpoint", "GET /stream");
        let still = decide(&self.state, &parts, SCOPE_READ, None, &mut access).await;
        if still.as_ref().is_ok_and(|t| *t == self.tenants) {
            return None;
        }
        access.outcome = audit_core::Outcome::Denied;
        access.detail("reason", "authorization revoked");
        self.state.record(&parts.extensions, access);
        Some("revoked")
    }
}
