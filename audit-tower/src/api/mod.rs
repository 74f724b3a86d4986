//! The audit HTTP API (feature `api`): search, read, export and delete stored events, as an
//! axum [`Router`] that mounts in any Tower stack.
//!
//! | method & path (under the prefix, default `/api/audit`) | scope | what |
//! |---|---|---|
//! | `GET /logs?…filters` | `audit:read` | a page of events, newest first |
//! | `POST /search` (filters as JSON) | `audit:read` | the same |
//! | `GET /logs/{id}` | `audit:read` | one event |
//! | `DELETE /logs/{id}` | `audit:write` | deletes one event (204) |
//! | `GET /filters` | `audit:read` | filter, operator and sort metadata; event types present |
//! | `GET /tenants/{tenantId}/logs` | `audit:read` | a page of one tenant's events (403 unless allowed) |
//! | `POST /export` `{format, filters}` | `audit:read` | `csv`, `json` or `ndjson`, streamed, rate-limited per tenant |
//! | `POST /export` `{format, filters, destination}` | `audit:read` | with feature `object-store`: the export written to an allowed destination (`s3://bucket/prefix/`, `file:///dir/`) by a background job; `202` with its id ([`AuditApi::export_destinations`]) |
//! | `GET /exports/{id}` | `audit:read` | an export job's state: `running`, `completed` (object key, location, size, SHA-256) or `failed` (why) |
//! | `POST /export/manifest` `{filters}` | `audit:read` | the [`Manifest`](audit_core::integrity::Manifest) that lets the caller verify that export on its own (same rate limit) |
//! | `GET /stream?…filters` | `audit:read` | live events as server-sent events (with [`AuditApi::live`]) |
//! | `GET /verify` | `audit:read`, every tenant | verifies the whole store's hash chain, checkpoints and tombstones ([`audit_core::integrity`]); `status` is `verified` (every stream proven by its signed checkpoints, the running one up to its latest), `intact` (nothing wrong, but not everything covered by a verified checkpoint) or `failed`, with the problems found |
//! | `GET /keys` | `audit:read` | the public keys checkpoints are signed with (a [`Keyring`](audit_core::integrity::Keyring) as JSON) |
//!
//! Filters: `startTime` (inclusive) and `endTime` (exclusive) in RFC 3339, `eventType` (exact
//! or a glob such as `auth.*` or `*.delete`), `category`, `severity`, `actorId`, `actorEmail`,
//! `clientId`, `result`, `resourceType`, `targetId`, `requestId`, `q` (free text over the
//! description and ids), `sort` (`desc` default, or `asc`), `limit` (default 100, at most
//! 1000) and `cursor` (the previous page's `nextCursor`, opaque). Unknown filter names are
//! rejected. A page answers
//! `{"logs": [...], "pagination": {"nextCursor", "hasMore"}, "summary": {"totalEvents", "byCategory"}}`,
//! where the summary counts the whole filtered set, not the page.
//!
//! Errors answer `{"error": {"code", "message"}}`: `INVALID_REQUEST` and `INVALID_TIME_RANGE`
//! (400), `UNAUTHORIZED` (401), `FORBIDDEN` (403), `NOT_FOUND` (404), `RATE_LIMITED` (429, with
//! `Retry-After`), `INTERNAL_ERROR` (500; the store's own message goes to the audit trail as
//! `system.audit_api.error`, not to the client).
//!
//! **Tenants.** A caller sees only the tenants its [`Principal`] allows. The `X-Org-ID`
//! header narrows a request to one of them; naming any other tenant is a 403, so the header
//! can never widen what a caller sees. An event of another tenant is a 404 on `GET` and
//! `DELETE`, exactly like one that does not exist.
//!
//! **Access is audited.** Every call records `admin.audit_log.read`, `admin.audit_log.export`
//! or `admin.audit_log.delete` with the caller as actor, the filters used and how many events
//! were returned; refused calls are recorded with result `denied`. When the API runs inside
//! an [`AuditLayer`](crate::AuditLayer), these facts go on the layer's event for the request
//! (one event per call, with its request id and latency); otherwise the API records them with
//! its own [`Auditor`].
//!
//! ```
//! use std::sync::Arc;
//! use audit_core::{AuditEvent, Auditor};
//! use audit_core::store::Store;
//! use audit_sinks::SqliteStore;
//! use audit_tower::api::{ApiKeys, AuditApi, Principal, SCOPE_READ};
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = Arc::new(SqliteStore::in_memory().unwrap());
//! let event = AuditEvent::builder("auth.login.success").organization_id("acme").build().unwrap();
//! store.append(&[Arc::new(event)]).await.unwrap();
//!
//! let auditor = Auditor::builder().build().unwrap();
//! let keys = ApiKeys::new().key("key-123", Principal::new("api_key", "k1").tenant("acme").scope(SCOPE_READ));
//! let app = AuditApi::new(store, keys, auditor).router();
//!
//! let req = http::Request::get("/api/audit/logs?eventType=auth.*")
//!     .header("authorization", "Bearer key-123")
//!     .body(axum::body::Body::empty())
//!     .unwrap();
//! let resp = app.oneshot(req).await.unwrap();
//! assert_eq!(resp.status(), 200);
//! let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
//! let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
//! assert_eq!(json["summary"]["totalEvents"], 1);
//! # });
//! ```

mod auth;
#[cfg(feature = "object-store")]
mod destination;
mod error;
mod export;
mod integrity;
mod jobs;
mod orchestrator;
mod profile;
mod resource;
mod routes;
mod stream;
mod viewer;
mod watch;
mod ws;

pub use auth::{
    ApiKeys, AuthError, AuthFuture, Authorizer, BasicClients, ExtensionPrincipal, FirstOf,
    Principal, SCOPE_READ, SCOPE_WRITE,
};
#[cfg(feature = "object-store")]
pub use destination::{DestinationError, Destinations, PART_SIZE as EXPORT_PART_SIZE};
pub use error::ApiError;
pub use profile::{Profile, RequestTypes};
pub use viewer::CONTENT_SECURITY_POLICY;
pub use ws::{PROTOCOL as WS_PROTOCOL, SEND_TIMEOUT as WS_SEND_TIMEOUT};

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use audit_core::live::LiveFeed;
use audit_core::store::Store;
use audit_core::{Actor, AuditEvent, Auditor, Outcome, Target};
use axum::Router;
use axum::routing::{any, get, post};
use http::Extensions;
use serde_json::{Map, Value};

use crate::{AuditContext, RequestId};
use export::RateLimiter;

/// The default mount point.
pub const DEFAULT_PREFIX: &str = "/api/audit";

/// Builds the audit API router.
pub struct AuditApi {
    store: Arc<dyn Store>,
    authorizer: Arc<dyn Authorizer>,
    auditor: Auditor,
    prefix: String,
    exports_per_window: u32,
    export_window: Duration,
    live: Option<LiveFeed>,
    stream_reauthorize: Duration,
    stream_lifetime: Duration,
    viewer_login: Option<String>,
    trusted_keys: audit_core::integrity::Keyring,
    profile: Profile,
    #[cfg(feature = "object-store")]
    destinations: Destinations,
}

impl fmt::Debug for AuditApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditApi")
            .field("store", &self.store.name())
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl AuditApi {
    /// An API over `store`, admitting callers `authorizer` identifies, recording every access
    /// with `auditor`.
    pub fn new(store: Arc<dyn Store>, authorizer: impl Authorizer, auditor: Auditor) -> AuditApi {
        AuditApi {
            store,
            authorizer: Arc::new(authorizer),
            auditor,
            prefix: DEFAULT_PREFIX.to_owned(),
            exports_per_window: 10,
            export_window: Duration::from_secs(60),
            live: None,
            stream_reauthorize: Duration::from_secs(1),
            stream_lifetime: Duration::from_secs(3600),
            viewer_login: None,
            trusted_keys: audit_core::integrity::Keyring::default(),
            profile: Profile::Native,
            #[cfg(feature = "object-store")]
            destinations: Destinations::empty(),
        }
    }

    /// Where `POST /export` may write when its body names a `destination` (feature
    /// `object-store`; default: nowhere, every destination is refused with 403). Such an
    /// export runs as a background job: the call answers `202` with `{"jobId", "status",
    /// "statusUrl"}`, `GET /exports/{id}` shows the job (`running`, `completed` or `failed`,
    /// with the object's key and location, its size and SHA-256, or the error), and its end
    /// is recorded as `admin.audit_log.export`.
    #[cfg(feature = "object-store")]
    #[must_use]
    pub fn export_destinations(mut self, destinations: Destinations) -> AuditApi {
        self.destinations = destinations;
        self
    }

    /// The dialect this mount speaks (default [`Profile::Native`]). To serve clients of
    /// several dialects, build one `AuditApi` per profile, each with its own prefix (and, if
    /// they authenticate differently, its own authorizer), over the same store and auditor,
    /// and merge their routers.
    #[must_use]
    pub fn profile(mut self, profile: Profile) -> AuditApi {
        self.profile = profile;
        self
    }

    /// Public keys `GET /verify` trusts and `GET /keys` publishes besides the auditor's own
    /// ([`Auditor::keyring`]): the keys of earlier runs and of other instances writing to the
    /// same store. A verifier outside the service should keep its own copy rather than trust
    /// what the service publishes.
    pub fn trusted_keys(mut self, keys: audit_core::integrity::Keyring) -> AuditApi {
        self.trusted_keys = keys;
        self
    }

    /// Lets the viewer page (`GET <prefix>/ui`) sign users in with an e-mail and password:
    /// it posts `{"email", "password"}` as JSON to `path` (your login route) and takes the
    /// `token` of the answer as its bearer token. Without it the page asks for a token.
    #[must_use]
    pub fn viewer_login(mut self, path: impl Into<String>) -> AuditApi {
        self.viewer_login = Some(path.into());
        self
    }

    /// How often a live stream's caller is authorized again (default 1 s, at least 10 ms),
    /// and how long a stream may stay open at all (default 1 hour). See `GET /stream`.
    #[must_use]
    pub fn stream_limits(
        mut self,
        reauthorize_every: Duration,
        max_lifetime: Duration,
    ) -> AuditApi {
        self.stream_reauthorize = reauthorize_every.max(Duration::from_millis(10));
        self.stream_lifetime = max_lifetime;
        self
    }

    /// Serves `GET /stream` (server-sent events) and `GET /ws` (WebSocket) from `feed`, a
    /// [`LiveFeed`] registered as a sink of the same pipeline. Without it, both answer 404.
    #[must_use]
    pub fn live(mut self, feed: LiveFeed) -> AuditApi {
        self.live = Some(feed);
        self
    }

    /// Mounts the routes under `prefix` instead of `/api/audit` (`""` for the root).
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> AuditApi {
        self.prefix = prefix.into().trim_end_matches('/').to_owned();
        self
    }

    /// Allows each tenant `count` exports per `window` (default 10 per minute); more are
    /// answered 429 with `Retry-After`.
    #[must_use]
    pub fn export_rate_limit(mut self, count: u32, window: Duration) -> AuditApi {
        self.exports_per_window = count.max(1);
        self.export_window = window.max(Duration::from_millis(1));
        self
    }

    /// The router, with every route under the prefix; merge it into your app, whatever its
    /// state type (`app.merge(api.router())`).
    pub fn router<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        let p = &self.prefix;
        let state = Arc::new(ApiState {
            limiter: RateLimiter::new(self.exports_per_window, self.export_window),
            store: self.store,
            authorizer: self.authorizer,
            auditor: self.auditor,
            live: self.live,
            stream_reauthorize: self.stream_reauthorize,
            stream_lifetime: self.stream_lifetime,
            trusted_keys: self.trusted_keys,
            verifying: tokio::sync::Mutex::new(()),
            jobs: jobs::Jobs::default(),
            #[cfg(feature = "object-store")]
            destinations: self.destinations,
            prefix: self.prefix.clone(),
            request_types: match &self.profile {
                Profile::Orchestrator(types) => types.clone(),
                _ => RequestTypes::default(),
            },
        });
        let router = match &self.profile {
            Profile::Native => native_routes(p, self.viewer_login.as_deref()),
            Profile::Orchestrator(_) => orchestrator::routes(p),
            Profile::Resource => resource::routes(p),
        };
        // Every other path under the prefix answers in the API's own error shape (mounted at
        // the root, the application's own fallback keeps the unknown paths).
        let router = if p.is_empty() {
            router
        } else if matches!(self.profile, Profile::Resource) {
            // `{p}/{id}` takes every single segment already.
            router.route(&format!("{p}/{{id}}/{{*rest}}"), any(routes::not_found))
        } else {
            router.route(&format!("{p}/{{*rest}}"), any(routes::not_found))
        };
        router.with_state(state)
    }
}

/// The native profile's routes under `p`.
fn native_routes(p: &str, viewer_login: Option<&str>) -> Router<Arc<ApiState>> {
    let wrong = routes::method_not_allowed;
    let page = viewer::page(p, viewer_login);
    Router::new()
        .route(
            &format!("{p}/ui"),
            get(move || {
                let page = Arc::clone(&page);
                async move { viewer::html(&page) }
            })
            .fallback(wrong),
        )
        .route(
            &format!("{p}/ui/app.js"),
            get(|| async { viewer::script() }).fallback(wrong),
        )
        .route(
            &format!("{p}/ui/app.css"),
            get(|| async { viewer::style() }).fallback(wrong),
        )
        .route(
            &format!("{p}/ui/icon.svg"),
            get(|| async { viewer::icon() }).fallback(wrong),
        )
        .route(&format!("{p}/logs"), get(routes::list).fallback(wrong))
        .route(&format!("{p}/search"), post(routes::search).fallback(wrong))
        .route(
            &format!("{p}/logs/{{id}}"),
            get(routes::get_one)
                .delete(routes::delete_one)
                .fallback(wrong),
        )
        .route(
            &format!("{p}/filters"),
            get(routes::filters).fallback(wrong),
        )
        .route(
            &format!("{p}/tenants/{{tenant}}/logs"),
            get(routes::tenant_logs).fallback(wrong),
        )
        .route(&format!("{p}/export"), post(export::export).fallback(wrong))
        .route(
            &format!("{p}/exports/{{id}}"),
            get(jobs::status).fallback(wrong),
        )
        .route(
            &format!("{p}/export/manifest"),
            post(export::manifest).fallback(wrong),
        )
        .route(&format!("{p}/stream"), get(stream::stream).fallback(wrong))
        .route(&format!("{p}/ws"), get(ws::ws).fallback(wrong))
        .route(
            &format!("{p}/verify"),
            get(integrity::verify).fallback(wrong),
        )
        .route(&format!("{p}/keys"), get(integrity::keys).fallback(wrong))
}

pub(crate) struct ApiState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) authorizer: Arc<dyn Authorizer>,
    pub(crate) auditor: Auditor,
    pub(crate) limiter: RateLimiter,
    pub(crate) live: Option<LiveFeed>,
    pub(crate) stream_reauthorize: Duration,
    pub(crate) stream_lifetime: Duration,
    pub(crate) trusted_keys: audit_core::integrity::Keyring,
    /// Held while a verification runs: one at a time.
    pub(crate) verifying: tokio::sync::Mutex<()>,
    /// How the orchestrator profile names request types.
    pub(crate) request_types: RequestTypes,
    /// Export jobs writing to destinations.
    pub(crate) jobs: jobs::Jobs,
    /// Where exports may be written.
    #[cfg(feature = "object-store")]
    pub(crate) destinations: Destinations,
    /// The mount point, for addresses in answers.
    #[cfg_attr(not(feature = "object-store"), allow(dead_code))]
    pub(crate) prefix: String,
}

/// What one API call did, for its access event.
#[derive(Debug)]
pub(crate) struct Access {
    pub(crate) event_type: &'static str,
    pub(crate) description: &'static str,
    pub(crate) principal: Option<Principal>,
    pub(crate) tenant: Option<String>,
    pub(crate) target_id: Option<String>,
    pub(crate) details: Map<String, Value>,
    pub(crate) outcome: Outcome,
    /// The route refuses principals of kind `api_key` (checked by the guard).
    pub(crate) api_keys_refused: bool,
    /// `X-Org-ID` names the caller's own tenant rather than narrowing the call to one.
    pub(crate) org_header_names_caller: bool,
}

impl Access {
    pub(crate) fn new(event_type: &'static str, description: &'static str) -> Access {
        Access {
            event_type,
            description,
            principal: None,
            tenant: None,
            target_id: None,
            details: Map::new(),
            outcome: Outcome::Success,
            api_keys_refused: false,
            org_header_names_caller: false,
        }
    }

    pub(crate) fn detail(&mut self, key: &str, value: impl Into<Value>) {
        self.details.insert(key.to_owned(), value.into());
    }
}

fn actor_of(p: &Principal) -> Actor {
    let actor = Actor::new(p.kind.clone(), p.id.clone());
    if p.kind == "client" {
        actor.with_client_id(p.id.clone())
    } else {
        actor
    }
}

impl ApiState {
    /// Records the access: on the request's [`AuditContext`] when an `AuditLayer` is outside,
    /// else as an event of its own.
    ///
    /// The event's tenant is the one the call was allowed to act on, else the principal's
    /// own (when it has exactly one): a refused call is filed under the caller's tenant, never
    /// under the tenant it asked for.
    pub(crate) fn record(&self, extensions: &Extensions, access: Access) {
        let tenant = access.tenant.clone().or_else(|| {
            access.principal.as_ref().and_then(|p| match &p.tenants {
                audit_core::store::TenantScope::Only(list) if list.len() == 1 => {
                    Some(list[0].clone())
                }
                _ => None,
            })
        });
        let target = access
            .target_id
            .as_ref()
            .map(|id| Target::new("audit_log", id.clone()));
        if let Some(ctx) = extensions.get::<AuditContext>() {
            ctx.set_event_type(access.event_type);
            ctx.set_description(access.description);
            if let Some(p) = &access.principal {
                ctx.set_actor(actor_of(p));
            }
            if let Some(t) = tenant {
                ctx.set_organization_id(t);
            }
            if let Some(t) = target {
                ctx.set_target(t);
            }
            for (k, v) in access.details {
                ctx.detail(k, v);
            }
            ctx.set_outcome(access.outcome);
            return;
        }
        let mut b = AuditEvent::builder(access.event_type)
            .description(access.description)
            .result(access.outcome)
            .details(access.details);
        if let Some(p) = &access.principal {
            b = b.actor(actor_of(p));
        }
        if let Some(t) = tenant {
            b = b.organization_id(t);
        }
        if let Some(t) = target {
            b = b.target(t);
        }
        if let Some(id) = extensions.get::<RequestId>() {
            b = b.request_id(id.as_str());
        }
        if let Ok(event) = b.build() {
            // A full pipeline reports its own losses as system.audit.dropped.
            let _ = self.auditor.record(event);
        }
    }

    /// Records a store failure (the client only sees `INTERNAL_ERROR`).
    pub(crate) fn store_failed(&self, operation: &str, error: &audit_core::store::StoreError) {
        if let Ok(event) = AuditEvent::builder("system.audit_api.error")
            .description("The audit store failed to answer an API call")
            .result(Outcome::Error)
            .severity(audit_core::Severity::Error)
            .detail("operation", operation)
            .detail("store", self.store.name())
            .detail("error", error.message())
            .build()
        {
            let _ = self.auditor.record(event);
        }
    }
}
