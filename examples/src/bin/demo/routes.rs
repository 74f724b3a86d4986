//! The demo's HTTP API, its authentication middleware, and the audit rules that name each
//! route's event.

use std::sync::Arc;

use audit_core::live::LiveFeed;
use audit_core::store::Store;
use audit_core::{Actor, Auditor, Outcome, Target};
use audit_tower::api::{self, AuditApi};
use audit_tower::classify::{AuditRoute, Delivery, Level, Rule, Rules};
use audit_tower::{AuditContext, AuditLayer};
use audit_tracing::audit;
use axum::extract::{Path, Request, State as Extract};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::state::{self, MIN_PASSWORD, Principal, ROLES, State};

type Shared = Arc<State>;

/// The audit rules for authentication and administration, which are strict: with the spool
/// (the default) a response is released only once its event is on disk, and refused with
/// 503 when that cannot happen in time. Data routes carry their meaning on the route itself
/// (`AuditRoute`, see [`app`]).
pub(crate) fn rules() -> Rules {
    Rules::new()
        .rule(
            Rule::post("/auth/login")
                .event_type("auth.login")
                .outcome_suffix()
                .keep_on_denial()
                .delivery(Delivery::Strict),
        )
        .rule(
            Rule::post("/auth/logout")
                .event_type("auth.logout")
                .delivery(Delivery::Strict),
        )
        .rule(
            Rule::post("/auth/mfa/enroll")
                .event_type("auth.mfa.enroll")
                .delivery(Delivery::Strict),
        )
        .rule(
            Rule::post("/auth/password")
                .event_type("auth.password.change")
                .delivery(Delivery::Strict),
        )
        .rule(
            Rule::post("/v1/api-keys")
                .event_type("admin.api_key.create")
                .target_type("api_key")
                .delivery(Delivery::Strict),
        )
        .rule(
            Rule::delete("/v1/api-keys/{id}")
                .event_type("admin.api_key.revoke")
                .target("api_key", "id")
                .delivery(Delivery::Strict),
        )
        .rule(
            Rule::post("/v1/members/invite")
                .event_type("admin.member.invite")
                .target_type("member")
                .delivery(Delivery::Strict),
        )
        .rule(
            Rule::put("/v1/members/{userId}/role")
                .event_type("admin.role.assign")
                .target("user", "userId")
                .delivery(Delivery::Strict),
        )
        .rule(
            Rule::put("/v1/config")
                .event_type("admin.config.change")
                .target_type("config")
                .delivery(Delivery::Strict),
        )
        .rule(Rule::get("/health").level(Level::None))
        .rule(Rule::get("/ready").level(Level::None))
}

/// What the native audit API serves besides the store.
pub(crate) struct Extras {
    /// The live feed for `GET /stream` and `GET /ws`.
    pub(crate) live: LiveFeed,
    /// Keys `GET /verify` trusts.
    pub(crate) keys: audit_core::integrity::Keyring,
    /// Where `POST /export` may write.
    pub(crate) destinations: api::Destinations,
}

/// The whole application: routes and the audit API, authentication inside the audit layer.
pub(crate) fn app(
    state: Shared,
    auditor: Auditor,
    store: Option<Arc<dyn Store>>,
    extras: Extras,
) -> Router {
    let routes = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready).with_state(auditor.clone()))
        .route("/auth/login", post(login))
        .route("/auth/logout", post(logout))
        .route("/auth/mfa/enroll", post(mfa_enroll))
        .route("/auth/password", post(change_password))
        .route("/v1/api-keys", post(create_key))
        .route("/v1/api-keys/{id}", delete(revoke_key))
        .route("/v1/members/invite", post(invite))
        .route("/v1/members/{user_id}/role", put(set_role))
        .route("/v1/config", put(set_config))
        // Data routes carry their audit meaning themselves; the strict ones above are rules.
        .route(
            "/v1/indexes",
            post(create_index).layer(AuditRoute::new("data.index.create").target_type("index")),
        )
        .route(
            "/v1/indexes/{name}",
            delete(delete_index)
                .layer(AuditRoute::new("data.index.delete").target("index", "name")),
        )
        .route(
            "/v1/indexes/{name}/vectors/{id}",
            put(upsert_vector)
                .layer(AuditRoute::new("data.vector.update").target("vector", "id"))
                .merge(
                    delete(delete_vector)
                        .layer(AuditRoute::new("data.vector.delete").target("vector", "id")),
                ),
        )
        .route(
            "/v1/indexes/{name}/query",
            post(query).layer(AuditRoute::new("data.search.query").target("index", "name")),
        )
        .route(
            "/v1/indexes/{name}/import",
            post(import).layer(AuditRoute::new("data.bulk.import").target("index", "name")),
        )
        .route(
            "/v1/assistant/complete",
            post(complete).layer(AuditRoute::new("data.completion.create").target_type("model")),
        )
        .with_state(Arc::clone(&state));
    // The audit API checks the bearer token itself (so a live stream notices a logout or a
    // demotion); its calls are recorded on the audit layer's event for each request.
    // Beside it, the same trail in two other dialects, for clients written against them:
    // an orchestrator's search (HTTP Basic client credentials) and a REST resource (the
    // bearer tokens, API keys included for reads).
    let routes = match store {
        Some(store) => routes
            .merge(
                AuditApi::new(store.clone(), Sessions(Arc::clone(&state)), auditor.clone())
                    .trusted_keys(extras.keys)
                    .live(extras.live)
                    .export_destinations(extras.destinations)
                    .viewer_login("/auth/login")
                    .router(),
            )
            .merge(
                AuditApi::new(store.clone(), orchestrator_clients(), auditor.clone())
                    .profile(api::Profile::orchestrator())
                    .prefix(ORCHESTRATOR_PREFIX)
                    .router(),
            )
            .merge(
                AuditApi::new(store, ResourceReaders(Arc::clone(&state)), auditor.clone())
                    .profile(api::Profile::Resource)
                    .prefix(RESOURCE_PREFIX)
                    .router(),
            ),
        None => routes,
    };
    routes
        .layer(middleware::from_fn_with_state(state, authenticate))
        .layer(AuditLayer::new(auditor).rules(rules()))
}

/// Where the orchestrator-dialect audit search is mounted.
pub(crate) const ORCHESTRATOR_PREFIX: &str = "/api/v1/audit";
/// Where the REST-resource dialect is mounted.
pub(crate) const RESOURCE_PREFIX: &str = "/api/logging/audit";

/// The orchestrator search's clients (HTTP Basic `clientId:clientSecret`): one per
/// organisation, and a platform client that reads every tenant.
fn orchestrator_clients() -> api::BasicClients {
    let client = |id: &str| api::Principal::new("client", id).scope(api::SCOPE_READ);
    api::BasicClients::new()
        .client(
            "acme-orchestrator",
            "acme-client-secret",
            client("acme-orchestrator").tenant("acme"),
        )
        .client(
            "globex-orchestrator",
            "globex-client-secret",
            client("globex-orchestrator").tenant("globex"),
        )
        .client(
            "platform-orchestrator",
            "platform-client-secret",
            client("platform-orchestrator").all_tenants(),
        )
}

/// The REST resource's view of the demo's callers: like [`Sessions`], and an organisation's
/// API keys may read that organisation's trail there.
struct ResourceReaders(Shared);

impl api::Authorizer for ResourceReaders {
    fn authorize<'a>(&'a self, parts: &'a http::request::Parts) -> api::AuthFuture<'a> {
        let result = match bearer_token(&parts.headers) {
            None => Err(api::AuthError::Missing),
            Some(token) => match self.0.principal(token) {
                Some(Principal::ApiKey { id, org }) => Ok(api::Principal::new("api_key", id)
                    .tenant(org)
                    .scope(api::SCOPE_READ)),
                Some(p) => Ok(audit_principal(&p)),
                None => Err(api::AuthError::Invalid),
            },
        };
        Box::pin(std::future::ready(result))
    }
}

/// What the audit API may show this principal: admins read and delete their organisation's
/// events; members and API keys are known but hold no audit scope (403).
fn audit_principal(p: &Principal) -> api::Principal {
    match p {
        Principal::User(u) if u.role == "admin" => api::Principal::new("user", &u.id)
            .tenant(&u.org)
            .scope(api::SCOPE_READ)
            .scope(api::SCOPE_WRITE),
        // Read-only across tenants: search every trail, verify the chain.
        Principal::User(u) if u.role == "operator" => api::Principal::new("user", &u.id)
            .all_tenants()
            .scope(api::SCOPE_READ),
        Principal::User(u) => api::Principal::new("user", &u.id).tenant(&u.org),
        Principal::ApiKey { id, org } => api::Principal::new("api_key", id).tenant(org),
    }
}

/// The audit API's view of the demo's sessions and API keys: the bearer token, resolved
/// afresh on every call (and every second of a live stream).
struct Sessions(Shared);

impl api::Authorizer for Sessions {
    fn authorize<'a>(&'a self, parts: &'a http::request::Parts) -> api::AuthFuture<'a> {
        let result = match bearer_token(&parts.headers) {
            None => Err(api::AuthError::Missing),
            Some(token) => self
                .0
                .principal(token)
                .map(|p| audit_principal(&p))
                .ok_or(api::AuthError::Invalid),
        };
        Box::pin(std::future::ready(result))
    }
}

fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

/// Resolves the bearer token; records the actor and tenant on the audit context. Routes
/// under `/v1` and the session routes need a valid token.
async fn authenticate(Extract(state): Extract<Shared>, mut req: Request, next: Next) -> Response {
    let bearer = bearer_token(req.headers()).map(str::to_owned);
    let principal = bearer.as_deref().and_then(|b| state.principal(b));
    if let (Some(p), Some(ctx)) = (&principal, req.extensions().get::<AuditContext>()) {
        match p {
            Principal::User(u) => {
                ctx.set_actor(Actor::user(&u.id).with_email(&u.email).with_role(&u.role));
                ctx.set_organization_id(&u.org);
            }
            Principal::ApiKey { id, org } => {
                ctx.set_actor(Actor::new("api_key", id));
                ctx.set_organization_id(org);
            }
        }
    }
    let path = req.uri().path();
    // The audit API answers unauthenticated calls itself, in its own error format.
    let public = path == "/health"
        || path == "/ready"
        || path == "/auth/login"
        || [api::DEFAULT_PREFIX, ORCHESTRATOR_PREFIX, RESOURCE_PREFIX]
            .iter()
            .any(|p| {
                path.strip_prefix(p)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            });
    match principal {
        Some(p) => {
            req.extensions_mut().insert(p);
            if let Some(token) = bearer {
                req.extensions_mut().insert(Bearer(token));
            }
            next.run(req).await
        }
        None if public => next.run(req).await,
        None => error(StatusCode::UNAUTHORIZED, "missing or invalid bearer token"),
    }
}

#[derive(Debug, Clone)]
struct Bearer(String);

fn org_of(p: &Principal) -> &str {
    match p {
        Principal::User(u) => &u.org,
        Principal::ApiKey { org, .. } => org,
    }
}

fn is_admin(p: &Principal) -> bool {
    matches!(p, Principal::User(u) if u.role == "admin")
}

#[derive(Deserialize)]
struct Login {
    email: String,
    password: String,
}

async fn login(
    Extract(state): Extract<Shared>,
    Extension(ctx): Extension<AuditContext>,
    Json(body): Json<Login>,
) -> Response {
    match state.login(&body.email, &body.password) {
        state::Login::Ok(user) => {
            ctx.set_actor(
                Actor::user(&user.id)
                    .with_email(&user.email)
                    .with_role(&user.role),
            );
            ctx.set_organization_id(&user.org);
            ctx.detail("authMethod", "password");
            let token = state.open_session(&user.id);
            Json(json!({"token": token})).into_response()
        }
        failed => {
            // The attempted identity is worth auditing; the password never is. A guess at a
            // known account belongs to that account's tenant, so its admins see it.
            ctx.set_actor(Actor::default().with_kind("user").with_email(&body.email));
            if let state::Login::WrongPassword(user) = failed {
                ctx.set_target(Target::new("user", &user.id));
                ctx.set_organization_id(&user.org);
            }
            ctx.set_outcome(Outcome::Failure);
            error(StatusCode::UNAUTHORIZED, "wrong e-mail or password")
        }
    }
}

async fn logout(
    Extract(state): Extract<Shared>,
    Extension(bearer): Extension<Bearer>,
) -> StatusCode {
    state.close_session(&bearer.0);
    StatusCode::NO_CONTENT
}

async fn mfa_enroll(Extension(ctx): Extension<AuditContext>) -> Json<Value> {
    ctx.detail("mfaType", "totp");
    Json(json!({"enrolled": true, "type": "totp"}))
}

#[derive(Deserialize)]
struct PasswordChange {
    old: String,
    new: String,
}

async fn change_password(
    Extract(state): Extract<Shared>,
    Extension(p): Extension<Principal>,
    Extension(bearer): Extension<Bearer>,
    Json(body): Json<PasswordChange>,
) -> Response {
    let Principal::User(user) = p else {
        return error(StatusCode::FORBIDDEN, "only users have passwords");
    };
    if body.new.chars().count() < MIN_PASSWORD {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("the new password needs at least {MIN_PASSWORD} characters"),
        );
    }
    if state.check_password(&user.email, &body.old).is_none() {
        return error(StatusCode::BAD_REQUEST, "the old password is wrong");
    }
    // Every other session of this user ends: a stolen token must not outlive the change.
    state.set_password(&user.id, &body.new, &bearer.0);
    StatusCode::NO_CONTENT.into_response()
}

async fn create_key(
    Extract(state): Extract<Shared>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<AuditContext>,
) -> Response {
    if !is_admin(&p) {
        return error(StatusCode::FORBIDDEN, "admins only");
    }
    let (id, key) = state.create_key(org_of(&p));
    // The key's id is the target; the key itself never goes into the event.
    ctx.set_target(Target::new("api_key", &id));
    (StatusCode::CREATED, Json(json!({"id": id, "key": key}))).into_response()
}

async fn revoke_key(
    Extract(state): Extract<Shared>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    if !is_admin(&p) {
        return error(StatusCode::FORBIDDEN, "admins only");
    }
    if state.revoke_key(org_of(&p), &id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(StatusCode::NOT_FOUND, "no such key")
    }
}

#[derive(Deserialize)]
struct Invite {
    email: String,
}

async fn invite(
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<AuditContext>,
    Json(body): Json<Invite>,
) -> Response {
    if !is_admin(&p) {
        return error(StatusCode::FORBIDDEN, "admins only");
    }
    ctx.set_target(Target::new("member", &body.email));
    (StatusCode::CREATED, Json(json!({"invited": body.email}))).into_response()
}

#[derive(Deserialize)]
struct RoleChange {
    role: String,
}

async fn set_role(
    Extract(state): Extract<Shared>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<AuditContext>,
    Path(user_id): Path<String>,
    Json(body): Json<RoleChange>,
) -> Response {
    if !is_admin(&p) {
        return error(StatusCode::FORBIDDEN, "admins only");
    }
    if !ROLES.contains(&body.role.as_str()) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("role must be one of {}", ROLES.join(", ")),
        );
    }
    ctx.detail("role", body.role.clone());
    if state.set_role(org_of(&p), &user_id, &body.role) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(StatusCode::NOT_FOUND, "no such member")
    }
}

async fn set_config(
    Extract(state): Extract<Shared>,
    Extension(p): Extension<Principal>,
    Json(body): Json<Value>,
) -> Response {
    if !is_admin(&p) {
        return error(StatusCode::FORBIDDEN, "admins only");
    }
    state.set_config(org_of(&p), body);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct NewIndex {
    name: String,
}

async fn create_index(
    Extract(state): Extract<Shared>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<AuditContext>,
    Json(body): Json<NewIndex>,
) -> Response {
    ctx.set_target(Target::new("index", &body.name));
    if state.create_index(org_of(&p), &body.name) {
        (StatusCode::CREATED, Json(json!({"name": body.name}))).into_response()
    } else {
        error(StatusCode::CONFLICT, "index exists")
    }
}

async fn delete_index(
    Extract(state): Extract<Shared>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> Response {
    if state.delete_index(org_of(&p), &name) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(StatusCode::NOT_FOUND, "no such index")
    }
}

#[derive(Deserialize)]
struct Vector {
    values: Vec<f32>,
    #[serde(default)]
    metadata: Value,
}

async fn upsert_vector(
    Extract(state): Extract<Shared>,
    Extension(p): Extension<Principal>,
    Path((name, id)): Path<(String, String)>,
    Json(body): Json<Vector>,
) -> Response {
    match state.with_index(org_of(&p), &name, |ix| {
        ix.vectors.insert(id, (body.values, body.metadata))
    }) {
        Some(_) => StatusCode::OK.into_response(),
        None => error(StatusCode::NOT_FOUND, "no such index"),
    }
}

async fn delete_vector(
    Extract(state): Extract<Shared>,
    Extension(p): Extension<Principal>,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    match state.with_index(org_of(&p), &name, |ix| ix.vectors.remove(&id)) {
        Some(Some(_)) => StatusCode::NO_CONTENT.into_response(),
        _ => error(StatusCode::NOT_FOUND, "no such vector"),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Query {
    vector: Vec<f32>,
    top_k: usize,
}

async fn query(
    Extract(state): Extract<Shared>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<AuditContext>,
    Path(name): Path<String>,
    Json(body): Json<Query>,
) -> Response {
    let hits = state.with_index(org_of(&p), &name, |ix| {
        let mut scored: Vec<(f32, String)> = ix
            .vectors
            .iter()
            .map(|(id, (v, _))| {
                (
                    v.iter().zip(&body.vector).map(|(a, b)| a * b).sum(),
                    id.clone(),
                )
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.truncate(body.top_k);
        scored
    });
    match hits {
        Some(hits) => {
            ctx.detail("topK", body.top_k);
            ctx.detail("returned", hits.len());
            Json(json!({"matches": hits.iter().map(|(s, id)| json!({"id": id, "score": s})).collect::<Vec<_>>()}))
                .into_response()
        }
        None => error(StatusCode::NOT_FOUND, "no such index"),
    }
}

#[derive(Deserialize)]
struct Import {
    vectors: Vec<Value>,
}

/// A bulk import says more than its route: how many vectors went in and how many were
/// rejected. The handler records the event itself with `audit!` (request id, trace, actor and
/// tenant come from the request) and skips the route's generic one; when the index does not
/// exist, the route's event (a failure) is kept.
async fn import(
    Extract(state): Extract<Shared>,
    Extension(p): Extension<Principal>,
    Extension(ctx): Extension<AuditContext>,
    Path(name): Path<String>,
    Json(body): Json<Import>,
) -> Response {
    let result = state.with_index(org_of(&p), &name, |ix| {
        let (mut imported, mut rejected) = (0usize, 0usize);
        for v in body.vectors {
            let id = v.get("id").and_then(Value::as_str).map(str::to_owned);
            let values: Option<Vec<f32>> = v
                .get("values")
                .and_then(|x| serde_json::from_value(x.clone()).ok());
            match (id, values) {
                (Some(id), Some(values)) => {
                    ix.vectors.insert(id, (values, Value::Null));
                    imported += 1;
                }
                _ => rejected += 1,
            }
        }
        (imported, rejected)
    });
    match result {
        Some((imported, rejected)) => {
            audit!(
                event_type = "data.bulk.import",
                target.kind = "index",
                target.id = %name,
                details.imported = imported,
                details.rejected = rejected,
                result = Outcome::Success,
                "Imported {imported} vectors into {name} ({rejected} rejected)"
            );
            ctx.skip();
            Json(json!({"imported": imported, "rejected": rejected})).into_response()
        }
        None => error(StatusCode::NOT_FOUND, "no such index"),
    }
}

#[derive(Deserialize)]
struct Completion {
    query: String,
}

/// Phrases the demo's prompt policy blocks.
const BLOCKED_PHRASES: [&str; 2] = ["ignore previous instructions", "reveal the system prompt"];

/// A stand-in for an LLM gateway: checks the prompt against a policy, answers with a canned
/// summary, and records what an orchestrator's audit trail holds (policy decision, provider,
/// model, tokens, cost) with `audit!` in place of the route's generic event.
async fn complete(
    Extension(ctx): Extension<AuditContext>,
    Json(body): Json<Completion>,
) -> Response {
    use sha2::Digest as _;
    let started = std::time::Instant::now();
    let lowered = body.query.to_lowercase();
    let matched: Vec<&str> = BLOCKED_PHRASES
        .iter()
        .copied()
        .filter(|p| lowered.contains(p))
        .collect();
    let blocked = !matched.is_empty();
    let digest = sha2::Sha256::digest(body.query.as_bytes());
    let query_hash: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    let policy_details = json!({
        "evaluated": ["prompt.injection", "compliance.pii_check"],
        "matched_policies": if blocked { vec!["prompt.injection"] } else { Vec::new() },
        "risk_score": if blocked { 0.9 } else { 0.1 },
    });
    let prompt_tokens = body.query.split_whitespace().count() * 4 / 3 + 1;
    let (decision, answer, tokens) = if blocked {
        ("blocked", String::new(), prompt_tokens)
    } else {
        let answer = format!(
            "Summary of {} words of input.",
            body.query.split_whitespace().count()
        );
        ("allowed", answer, prompt_tokens + 12)
    };
    // Price of the demo model: 0.02 USD per 1,000 tokens.
    let cost = tokens as f64 * 0.00002;
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    audit!(
        event_type = "data.llm.request",
        target.kind = "model",
        target.id = "demo-small",
        details.query = %body.query,
        details.query_hash = %query_hash,
        details.policy_decision = decision,
        details.policy_details = policy_details,
        details.provider = "demo",
        details.model = "demo-small",
        details.tokens_used = tokens,
        details.cost = cost,
        details.response_sample = %answer,
        details.response_time_ms = elapsed_ms,
        result = if blocked { Outcome::Denied } else { Outcome::Success },
        "LLM completion {decision}"
    );
    ctx.skip();
    if blocked {
        return error(StatusCode::FORBIDDEN, "blocked by the prompt policy");
    }
    Json(json!({"answer": answer, "model": "demo-small", "tokens_used": tokens})).into_response()
}

/// Readiness for an orchestrator's probe: 200 when the audit pipeline can take and deliver
/// events, else 503 naming what is not ready (sink names only, never their errors).
async fn ready(Extract(auditor): Extract<Auditor>) -> Response {
    match auditor.readiness() {
        Ok(()) => Json(json!({"ready": true})).into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reasons": why})),
        )
            .into_response(),
    }
}
