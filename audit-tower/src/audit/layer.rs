//! [`AuditLayer`] and its settings.

use std::sync::Arc;

use audit_core::Auditor;
use tower::Layer;

use super::config::Config;
use super::service::Audit;
use crate::classify::Rules;
use crate::net::IpNet;
use crate::request_id::RequestIdPolicy;

/// Records an audit event for every request that a rule (or the defaults) says to audit.
///
/// ```
/// use std::time::Duration;
/// use audit_core::Auditor;
/// use audit_sinks::MemorySink;
/// use audit_tower::{AuditLayer, classify::{Rule, Rules}};
/// use axum::{routing::delete, Router};
///
/// let memory = MemorySink::new(100);
/// let auditor = Auditor::builder().sink(memory.clone()).build().unwrap();
/// let app: Router = Router::new()
///     .route("/v1/indexes/{name}", delete(|| async { "deleted" }))
///     .layer(AuditLayer::new(auditor.clone()).rules(
///         Rules::new().rule(
///             Rule::delete("/v1/indexes/{name}")
///                 .event_type("data.index.delete")
///                 .target("index", "name"),
///         ),
///     ));
/// # let _ = app;
/// ```
///
/// # Ordering
/// Put the audit layer *outside* your authentication middleware, so the auth middleware
/// finds the [`AuditContext`](crate::AuditContext) in the request and can record the actor
/// and tenant. With axum, `Router::layer` applies it inside routing, which also gives the
/// layer the route template (`MatchedPath`); around the whole router it matches rule
/// patterns against the concrete path instead, and requests no rule matches are recorded as
/// [`UNMATCHED`](crate::classify::UNMATCHED) (a client's path never names an event).
///
/// # Trust boundaries
/// The request id is taken from the client only under its [`RequestIdPolicy`]; forwarding
/// headers only through [`trusted_proxies`](Self::trusted_proxies) (the chain is recorded,
/// its 16 hops nearest the service); the user agent is recorded as sent, within the
/// pipeline's [`Limits`](audit_core::Limits). None of these decide access.
#[derive(Debug, Clone)]
pub struct AuditLayer {
    config: Arc<Config>,
}

impl AuditLayer {
    /// Audits into `auditor` with the default [`Rules`], [`RequestIdPolicy`] and no trusted
    /// proxies.
    pub fn new(auditor: Auditor) -> AuditLayer {
        AuditLayer {
            config: Arc::new(Config {
                auditor,
                rules: Rules::new(),
                request_id: RequestIdPolicy::default(),
                trusted_proxies: Vec::new(),
                peers: None,
            }),
        }
    }

    /// The rule table.
    ///
    /// # Panics
    ///
    /// When [`Rules::check`] finds a problem (a malformed pattern, a target parameter the
    /// pattern does not capture, an invalid event type, or a pattern naming none of the
    /// routes given to [`Rules::routes`]), with the problems in the message: a mistake in
    /// the table is caught when the service starts, like axum's own route checks, rather
    /// than leaving requests to the defaults in silence. Call `check` first to handle it as
    /// an error instead.
    #[must_use]
    pub fn rules(mut self, rules: Rules) -> Self {
        if let Err(e) = rules.check() {
            panic!("{e}");
        }
        Arc::make_mut(&mut self.config).rules = rules;
        self
    }

    /// How request ids are read, generated and echoed.
    #[must_use]
    pub fn request_id(mut self, policy: RequestIdPolicy) -> Self {
        Arc::make_mut(&mut self.config).request_id = policy;
        self
    }

    /// The services this one continues requests for, in one call: a request from one of
    /// them (by its address, or by a claim signed with the shared key) keeps the caller's
    /// request id, and the user and tenant it was made for are recorded as
    /// `details.origin` (see [`origin`](crate::origin)).
    #[must_use]
    pub fn trust_peers(mut self, peers: crate::origin::TrustedPeers) -> Self {
        Arc::make_mut(&mut self.config).peers = Some(peers);
        self
    }

    /// Networks whose `X-Forwarded-For` / `Forwarded` headers are believed.
    #[must_use]
    pub fn trusted_proxies(mut self, nets: Vec<IpNet>) -> Self {
        Arc::make_mut(&mut self.config).trusted_proxies = nets;
        self
    }
}

impl<S> Layer<S> for AuditLayer {
    type Service = Audit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Audit::new(inner, Arc::clone(&self.config))
    }
}
