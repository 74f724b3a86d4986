//! [`AuditIdentity`]: the actor and tenant from credentials your authentication has already
//! accepted, without writing `set_actor` yourself.
//!
//! Place it *inside* your authentication (axum: `.layer(AuditIdentity::…)` before
//! `.layer(your_auth)`), so it only ever sees requests your authentication let through: it
//! reads the credentials, it does not verify them. What a handler or your middleware sets on
//! the [`AuditContext`] is kept; the identity fills only what is still unset.
//!
//! ```
//! use audit_core::Auditor;
//! use audit_tower::AuditLayer;
//! use audit_tower::identity::AuditIdentity;
//! use axum::{Router, middleware, routing::get};
//!
//! # async fn verify_token(req: axum::extract::Request, next: middleware::Next) -> axum::response::Response { next.run(req).await }
//! let auditor = Auditor::builder().build().unwrap();
//! let app: Router = Router::new()
//!     .route("/v1/things", get(|| async { "ok" }))
//!     .layer(AuditIdentity::jwt_bearer().tenant_claim("org_id")) // reads the verified token's claims
//!     .layer(middleware::from_fn(verify_token))                  // your authentication
//!     .layer(AuditLayer::new(auditor));
//! # let _ = app;
//! ```
//!
//! | source | actor | tenant |
//! |---|---|---|
//! | [`jwt_bearer`](AuditIdentity::jwt_bearer) | `Authorization: Bearer <JWT>`: `sub` as id, `email`, `role` (or the first of `roles`), type `user` | the claim named by [`tenant_claim`](AuditIdentity::tenant_claim) (default `org_id`, else `tenant`, else `tid`) |
//! | [`basic`](AuditIdentity::basic) | `Authorization: Basic`: the user name as id (never the password), type `client` | — |
//! | [`api_key`](AuditIdentity::api_key) | the named header's key: id `key-` and the first 12 hex digits of its SHA-256 (never the key), type `api_key` | — |
//! | [`from_fn`](AuditIdentity::from_fn) | your function of the request's headers and extensions | yours |
//!
//! Every value read is bounded like an id (at most 256 bytes, no control characters);
//! anything else is ignored.

use std::sync::Arc;
use std::task::{Context, Poll};

use audit_core::Actor;
use base64::Engine as _;
use http::{HeaderMap, HeaderName, Request};
use sha2::{Digest, Sha256};
use tower::{Layer, Service};

use crate::AuditContext;

/// Who made a request, as [`AuditIdentity`] found it.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Identity {
    /// The actor.
    pub actor: Option<Actor>,
    /// The tenant.
    pub tenant: Option<String>,
}

impl Identity {
    /// An identity of `actor`.
    pub fn actor(actor: Actor) -> Identity {
        Identity {
            actor: Some(actor),
            tenant: None,
        }
    }

    /// With the tenant.
    #[must_use]
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Identity {
        self.tenant = Some(tenant.into());
        self
    }
}

type Extract = dyn Fn(&HeaderMap, &http::Extensions) -> Option<Identity> + Send + Sync;

/// A layer that sets the actor and tenant on the request's [`AuditContext`] from accepted
/// credentials (see the [module docs](self)).
#[derive(Clone)]
pub struct AuditIdentity {
    extract: Arc<Extract>,
    tenant_claims: Arc<[String]>,
}

impl std::fmt::Debug for AuditIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditIdentity").finish_non_exhaustive()
    }
}

/// A value fit to be an id: 1–256 bytes, no control characters.
fn bounded(s: &str) -> Option<&str> {
    audit_core::store::check_id("identity", s).ok().map(|()| s)
}

fn authorization<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (given, rest) = value.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

impl AuditIdentity {
    /// Your own extraction, from the request's headers and extensions (for example the
    /// claims your authentication left there).
    pub fn from_fn(
        f: impl Fn(&HeaderMap, &http::Extensions) -> Option<Identity> + Send + Sync + 'static,
    ) -> AuditIdentity {
        AuditIdentity {
            extract: Arc::new(f),
            tenant_claims: Arc::from(Vec::new()),
        }
    }

    /// The claims of a bearer JWT (read, not verified: your authentication has done that).
    pub fn jwt_bearer() -> AuditIdentity {
        let mut id = AuditIdentity::from_fn(|_, _| None);
        id.tenant_claims = ["org_id", "tenant", "tid"]
            .map(str::to_owned)
            .to_vec()
            .into();
        id.with_jwt()
    }

    fn with_jwt(mut self) -> AuditIdentity {
        let tenant_claims = Arc::clone(&self.tenant_claims);
        self.extract = Arc::new(move |headers, _| {
            let token = authorization(headers, "bearer")?;
            let payload = token.split('.').nth(1)?;
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload.trim_end_matches('='))
                .ok()?;
            let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
            let text = |name: &str| claims.get(name)?.as_str().and_then(bounded);
            let mut actor = Actor::user(text("sub")?);
            if let Some(email) = text("email") {
                actor = actor.with_email(email);
            }
            let role = text("role").or_else(|| {
                claims
                    .get("roles")?
                    .as_array()?
                    .first()?
                    .as_str()
                    .and_then(bounded)
            });
            if let Some(role) = role {
                actor = actor.with_role(role);
            }
            let tenant = tenant_claims
                .iter()
                .find_map(|c| text(c))
                .map(str::to_owned);
            Some(Identity {
                actor: Some(actor),
                tenant,
            })
        });
        self
    }

    /// For [`jwt_bearer`](Self::jwt_bearer): the claim naming the tenant (instead of
    /// `org_id`, `tenant`, `tid`).
    #[must_use]
    pub fn tenant_claim(mut self, claim: &str) -> AuditIdentity {
        self.tenant_claims = vec![claim.to_owned()].into();
        self.with_jwt()
    }

    /// The user name of HTTP Basic credentials, as a `client` actor (the password is never
    /// read into the event).
    pub fn basic() -> AuditIdentity {
        AuditIdentity::from_fn(|headers, _| {
            let encoded = authorization(headers, "basic")?;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (user, _) = text.split_once(':')?;
            let user = bounded(user)?;
            Some(Identity::actor(
                Actor::new("client", user).with_client_id(user),
            ))
        })
    }

    /// The key in header `name` (say `x-api-key`), as an `api_key` actor named by a
    /// fingerprint of the key (`key-` and 12 hex digits of its SHA-256), never the key.
    pub fn api_key(name: HeaderName) -> AuditIdentity {
        AuditIdentity::from_fn(move |headers, _| {
            let key = headers.get(&name)?.as_bytes();
            if key.is_empty() {
                return None;
            }
            let digest = Sha256::digest(key);
            let id = format!("key-{}", &hex::encode(digest)[..12]);
            Some(Identity::actor(Actor::new("api_key", id)))
        })
    }
}

impl<S> Layer<S> for AuditIdentity {
    type Service = AuditIdentityService<S>;

    fn layer(&self, inner: S) -> AuditIdentityService<S> {
        AuditIdentityService {
            inner,
            identity: self.clone(),
        }
    }
}

/// The service [`AuditIdentity`] makes.
#[derive(Debug, Clone)]
pub struct AuditIdentityService<S> {
    inner: S,
    identity: AuditIdentity,
}

impl<S, B> Service<Request<B>> for AuditIdentityService<S>
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
        if let Some(ctx) = req.extensions().get::<AuditContext>()
            && let Some(found) = (self.identity.extract)(req.headers(), req.extensions())
        {
            if let Some(actor) = found.actor
                && ctx.actor().is_none()
            {
                ctx.set_actor(actor);
            }
            if let Some(tenant) = found.tenant
                && ctx.organization_id().is_none()
            {
                ctx.set_organization_id(tenant);
            }
        }
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn found(id: &AuditIdentity, h: &HeaderMap) -> Option<Identity> {
        (id.extract)(h, &http::Extensions::new())
    }

    #[test]
    fn credentials_name_the_actor_never_the_secret() {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let jwt = format!(
            "{}.{}.sig",
            b64(r#"{"alg":"HS256"}"#),
            b64(
                r#"{"sub":"u-1","email":"a@acme.test","roles":["admin"],"org_id":"acme","team":"t9"}"#
            )
        );
        let h = headers(&[("authorization", &format!("Bearer {jwt}"))]);
        let got = found(&AuditIdentity::jwt_bearer(), &h).unwrap();
        let actor = got.actor.unwrap();
        assert_eq!(actor.id.as_deref(), Some("u-1"));
        assert_eq!(actor.email.as_deref(), Some("a@acme.test"));
        assert_eq!(actor.role.as_deref(), Some("admin"));
        assert_eq!(got.tenant.as_deref(), Some("acme"));
        let got = found(&AuditIdentity::jwt_bearer().tenant_claim("team"), &h).unwrap();
        assert_eq!(got.tenant.as_deref(), Some("t9"));
        assert!(
            found(
                &AuditIdentity::jwt_bearer(),
                &headers(&[("authorization", "Bearer nonsense")])
            )
            .is_none()
        );

        let basic = base64::engine::general_purpose::STANDARD.encode("reporting:s3cret");
        let h = headers(&[("authorization", &format!("Basic {basic}"))]);
        let actor = found(&AuditIdentity::basic(), &h).unwrap().actor.unwrap();
        assert_eq!(actor.id.as_deref(), Some("reporting"));
        assert!(!format!("{actor:?}").contains("s3cret"));

        let h = headers(&[("x-api-key", "ak_live_secret_value")]);
        let id = AuditIdentity::api_key(HeaderName::from_static("x-api-key"));
        let actor = found(&id, &h).unwrap().actor.unwrap();
        let name = actor.id.as_deref().unwrap();
        assert!(name.starts_with("key-") && name.len() == 16, "{name}");
        assert!(!name.contains("secret"));
    }
}
