//! What every request of one layer shares: its settings, and the route template the router
//! matched.

use audit_core::Auditor;
use http::Request;

use crate::classify::Rules;
use crate::net::IpNet;
use crate::request_id::RequestIdPolicy;

/// An [`AuditLayer`](super::AuditLayer)'s settings.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) auditor: Auditor,
    pub(crate) rules: Rules,
    pub(crate) request_id: RequestIdPolicy,
    pub(crate) trusted_proxies: Vec<IpNet>,
    /// Services whose request ids and origin claims are believed.
    pub(crate) peers: Option<crate::origin::TrustedPeers>,
}

/// The route template the router matched (axum's `MatchedPath`), shared rather than copied.
#[cfg(feature = "axum")]
pub(crate) type RouteTemplate = axum::extract::MatchedPath;

/// The route template the router matched: none without axum.
#[cfg(not(feature = "axum"))]
#[derive(Debug, Clone)]
pub(crate) enum RouteTemplate {}

#[cfg(not(feature = "axum"))]
impl RouteTemplate {
    pub(crate) fn as_str(&self) -> &str {
        match *self {}
    }
}

pub(crate) fn route_template<B>(req: &Request<B>) -> Option<RouteTemplate> {
    #[cfg(feature = "axum")]
    if let Some(m) = req.extensions().get::<axum::extract::MatchedPath>() {
        return Some(m.clone());
    }
    let _ = req;
    None
}
