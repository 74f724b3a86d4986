//! [`AuditRoute`]: the audit meaning of one route, attached to the route itself, so the
//! pattern is written once (in the router) and cannot be mistyped in a second place.

use std::sync::Arc;
use std::task::{Context, Poll};

use audit_core::{Category, Severity, Text};
use http::Request;
use tower::{Layer, Service};

use crate::AuditContext;

/// What a route means, as [`AuditRoute`] holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Meaning {
    pub(crate) event_type: Option<Text>,
    pub(crate) outcome_suffix: bool,
    pub(crate) keep_on_denial: bool,
    pub(crate) category: Option<Category>,
    pub(crate) severity: Option<Severity>,
    /// The target type and the path parameter holding its id.
    pub(crate) target: Option<(Text, Option<String>)>,
    skip: bool,
}

/// A route's meaning for one request: the meaning and the target id its path held.
#[derive(Debug, Clone)]
pub(crate) struct RouteMeaning {
    pub(crate) meaning: Arc<Meaning>,
    pub(crate) target_id: Option<Text>,
}

/// The audit meaning of a route, as a layer on that route (axum's `MethodRouter::layer`),
/// read by the [`AuditLayer`](crate::AuditLayer) around the router.
///
/// ```
/// use audit_core::Auditor;
/// use audit_tower::AuditLayer;
/// use audit_tower::classify::AuditRoute;
/// use axum::{Router, routing::{delete, get, post}};
///
/// let auditor = Auditor::builder().build().unwrap();
/// let app: Router = Router::new()
///     .route(
///         "/v1/indexes/{name}",
///         delete(|| async { "deleted" })
///             .layer(AuditRoute::new("data.index.delete").target("index", "name")),
///     )
///     .route("/auth/login", post(|| async { "ok" }).layer(AuditRoute::new("auth.login").outcome_suffix()))
///     .route("/internal/ping", get(|| async { "pong" }).layer(AuditRoute::skip()))
///     .layer(AuditLayer::new(auditor));
/// # let _ = app;
/// ```
///
/// It names the event: event type, outcome suffix, keeping the type on 401/403/429,
/// category, severity, and the target (its id from a path parameter of the matched route),
/// or skips the request. It takes precedence over [`Rules`](super::Rules) and the defaults;
/// what a handler sets on its [`AuditContext`] takes precedence over it. How much is recorded
/// ([`Level`](super::Level)) and [`Delivery`](super::Delivery) act before the request reaches
/// the route, so they stay with [`Rules`](super::Rules).
///
/// Without an `AuditLayer` outside (no [`AuditContext`] in the request) it does nothing.
#[derive(Debug, Clone)]
pub struct AuditRoute {
    meaning: Arc<Meaning>,
}

impl AuditRoute {
    /// A route whose events have type `event_type` (dotted lowercase; validated when the
    /// event is built, like a rule's).
    pub fn new(event_type: &str) -> AuditRoute {
        AuditRoute {
            meaning: Arc::new(Meaning {
                event_type: Some(Text::new(event_type)),
                ..Meaning::default()
            }),
        }
    }

    /// A route that is not audited (its requests record no event).
    pub fn skip() -> AuditRoute {
        AuditRoute {
            meaning: Arc::new(Meaning {
                skip: true,
                ..Meaning::default()
            }),
        }
    }

    fn with(mut self, change: impl FnOnce(&mut Meaning)) -> AuditRoute {
        change(Arc::make_mut(&mut self.meaning));
        self
    }

    /// Appends `.success` or `.failure` by outcome (`auth.login` → `auth.login.failure`).
    #[must_use]
    pub fn outcome_suffix(self) -> AuditRoute {
        self.with(|m| m.outcome_suffix = true)
    }

    /// Keeps this event type on 401/403/429 answers instead of the security event types.
    #[must_use]
    pub fn keep_on_denial(self) -> AuditRoute {
        self.with(|m| m.keep_on_denial = true)
    }

    /// The category (default: from the event type's first segment).
    #[must_use]
    pub fn category(self, category: Category) -> AuditRoute {
        self.with(|m| m.category = Some(category))
    }

    /// The severity (default: by outcome).
    #[must_use]
    pub fn severity(self, severity: Severity) -> AuditRoute {
        self.with(|m| m.severity = Some(severity))
    }

    /// The target's type, and the path parameter of the route that holds its id.
    #[must_use]
    pub fn target(self, kind: &str, id_param: &str) -> AuditRoute {
        self.with(|m| m.target = Some((Text::new(kind), Some(id_param.to_owned()))))
    }

    /// The target's type, without an id from the path.
    #[must_use]
    pub fn target_type(self, kind: &str) -> AuditRoute {
        self.with(|m| m.target = Some((Text::new(kind), None)))
    }
}

impl<S> Layer<S> for AuditRoute {
    type Service = AuditRouteService<S>;

    fn layer(&self, inner: S) -> AuditRouteService<S> {
        AuditRouteService {
            inner,
            meaning: Arc::clone(&self.meaning),
        }
    }
}

/// The service [`AuditRoute`] makes.
#[derive(Debug, Clone)]
pub struct AuditRouteService<S> {
    inner: S,
    meaning: Arc<Meaning>,
}

impl<S, B> Service<Request<B>> for AuditRouteService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> S::Future {
        if let Some(ctx) = req.extensions().get::<AuditContext>() {
            if self.meaning.skip {
                ctx.skip();
            } else {
                let target_id = self
                    .meaning
                    .target
                    .as_ref()
                    .and_then(|(_, param)| param.as_deref())
                    .and_then(|param| path_param(&req, param));
                ctx.set_route(RouteMeaning {
                    meaning: Arc::clone(&self.meaning),
                    target_id,
                });
            }
        }
        self.inner.call(req)
    }
}

/// The value of the matched route's parameter `name` in the request's path (axum's
/// `MatchedPath` names the route; without axum there is none).
fn path_param<B>(req: &Request<B>, name: &str) -> Option<Text> {
    #[cfg(feature = "axum")]
    {
        let template = req.extensions().get::<axum::extract::MatchedPath>()?;
        super::RoutePattern::new(template.as_str())
            .captures(req.uri().path())?
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| Text::new(v))
    }
    #[cfg(not(feature = "axum"))]
    {
        let _ = (req, name);
        None
    }
}
