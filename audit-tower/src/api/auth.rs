//! Who may read the audit log: [`Principal`], the [`Authorizer`] trait and its built-ins.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use audit_core::store::TenantScope;
use base64::Engine as _;
use http::request::Parts;
use sha2::{Digest, Sha256};

/// Scope needed to list, search, read and export audit logs and see filter values.
pub const SCOPE_READ: &str = "audit:read";
/// Scope needed to delete audit log entries.
pub const SCOPE_WRITE: &str = "audit:write";

/// An authenticated caller of the audit API: who, which tenants, which scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Principal {
    /// Stable id (client id, key id, user id), recorded as the actor of access events.
    pub id: String,
    /// What kind of caller: `client`, `api_key`, `user`, `service`.
    pub kind: String,
    /// The tenants whose events it may see.
    pub tenants: TenantScope,
    /// Granted scopes, e.g. [`SCOPE_READ`].
    pub scopes: BTreeSet<String>,
}

impl Principal {
    /// A principal with no tenants and no scopes yet.
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Principal {
        Principal {
            id: id.into(),
            kind: kind.into(),
            tenants: TenantScope::None,
            scopes: BTreeSet::new(),
        }
    }

    /// Allows one more tenant.
    #[must_use]
    pub fn tenant(mut self, tenant: impl Into<String>) -> Principal {
        let tenant = tenant.into();
        match &mut self.tenants {
            TenantScope::Only(list) => list.push(tenant),
            TenantScope::None => self.tenants = TenantScope::Only(vec![tenant]),
            TenantScope::All => {}
        }
        self
    }

    /// Allows every tenant, and events without one (operators).
    #[must_use]
    pub fn all_tenants(mut self) -> Principal {
        self.tenants = TenantScope::All;
        self
    }

    /// Grants a scope.
    #[must_use]
    pub fn scope(mut self, scope: impl Into<String>) -> Principal {
        self.scopes.insert(scope.into());
        self
    }

    /// True when the scope was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }

    /// True when the principal may see `tenant`'s events.
    pub fn may_see(&self, tenant: &str) -> bool {
        self.tenants.allows(Some(tenant))
    }
}

/// Why a request carries no usable identity (answered 401).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    /// No credentials this authorizer understands.
    Missing,
    /// Credentials were given but are wrong, expired or malformed.
    Invalid,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthError::Missing => "Missing authentication",
            AuthError::Invalid => "Invalid credentials",
        })
    }
}

impl std::error::Error for AuthError {}

/// The future an [`Authorizer`] returns.
pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = Result<Principal, AuthError>> + Send + 'a>>;

/// Decides who is calling the audit API.
///
/// The API then checks scopes and tenants itself, so an authorizer only establishes identity
/// and grants.
pub trait Authorizer: Send + Sync + 'static {
    /// The principal behind the request, from its headers or extensions.
    fn authorize<'a>(&'a self, parts: &'a Parts) -> AuthFuture<'a>;
}

impl<A: Authorizer + ?Sized> Authorizer for Arc<A> {
    fn authorize<'a>(&'a self, parts: &'a Parts) -> AuthFuture<'a> {
        (**self).authorize(parts)
    }
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Compares two digests in time independent of where they differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn credentials<'a>(parts: &'a Parts, scheme: &str) -> Option<&'a str> {
    let value = parts
        .headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (s, rest) = value.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// HTTP Basic client credentials (`Authorization: Basic base64(clientId:clientSecret)`).
///
/// Secrets are kept only as SHA-256 digests and compared in constant time.
///
/// ```
/// use audit_tower::api::{BasicClients, Principal, SCOPE_READ};
///
/// let clients = BasicClients::new()
///     .client("reporting", "s3cret", Principal::new("client", "reporting").tenant("acme").scope(SCOPE_READ));
/// ```
#[derive(Default)]
pub struct BasicClients {
    clients: HashMap<String, ([u8; 32], Principal)>,
}

impl BasicClients {
    /// No clients yet.
    pub fn new() -> BasicClients {
        BasicClients::default()
    }

    /// Adds a client.
    #[must_use]
    pub fn client(mut self, id: impl Into<String>, secret: &str, principal: Principal) -> Self {
        self.clients.insert(id.into(), (digest(secret), principal));
        self
    }
}

impl fmt::Debug for BasicClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicClients")
            .field("clients", &self.clients.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Authorizer for BasicClients {
    fn authorize<'a>(&'a self, parts: &'a Parts) -> AuthFuture<'a> {
        let result = (|| {
            let encoded = credentials(parts, "basic").ok_or(AuthError::Missing)?;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| AuthError::Invalid)?;
            let text = String::from_utf8(decoded).map_err(|_| AuthError::Invalid)?;
            let (id, secret) = text.split_once(':').ok_or(AuthError::Invalid)?;
            // Hash even for unknown ids, so timing does not tell which ids exist.
            let given = digest(secret);
            match self.clients.get(id) {
                Some((expected, principal)) if same(expected, &given) => Ok(principal.clone()),
                _ => Err(AuthError::Invalid),
            }
        })();
        Box::pin(std::future::ready(result))
    }
}

/// Bearer API keys with scopes (`Authorization: Bearer <key>`); keys are kept only as SHA-256
/// digests.
///
/// ```
/// use audit_tower::api::{ApiKeys, Principal, SCOPE_READ, SCOPE_WRITE};
///
/// let keys = ApiKeys::new().key(
///     "ak_live_7Hq…",
///     Principal::new("api_key", "key-1").tenant("acme").scope(SCOPE_READ).scope(SCOPE_WRITE),
/// );
/// ```
#[derive(Default)]
pub struct ApiKeys {
    keys: HashMap<[u8; 32], Principal>,
}

impl ApiKeys {
    /// No keys yet.
    pub fn new() -> ApiKeys {
        ApiKeys::default()
    }

    /// Adds a key.
    #[must_use]
    pub fn key(mut self, key: &str, principal: Principal) -> Self {
        self.keys.insert(digest(key), principal);
        self
    }
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Authorizer for ApiKeys {
    fn authorize<'a>(&'a self, parts: &'a Parts) -> AuthFuture<'a> {
        let result = match credentials(parts, "bearer") {
            None => Err(AuthError::Missing),
            Some(key) => self
                .keys
                .get(&digest(key))
                .cloned()
                .ok_or(AuthError::Invalid),
        };
        Box::pin(std::future::ready(result))
    }
}

/// Trusts a [`Principal`] that the application's own authentication middleware placed in the
/// request extensions (that middleware must run before the API router).
///
/// A live stream (`GET /stream`) re-authorizes its caller every second, but with this
/// authorizer it can only see the principal placed when the stream opened: a logout or a
/// demotion goes unnoticed until the stream's maximum lifetime. Where streams are served,
/// prefer an [`Authorizer`] that checks the credential itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExtensionPrincipal;

impl Authorizer for ExtensionPrincipal {
    fn authorize<'a>(&'a self, parts: &'a Parts) -> AuthFuture<'a> {
        let result = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or(AuthError::Missing);
        Box::pin(std::future::ready(result))
    }
}

/// Tries authorizers in order: the first that finds credentials decides (a wrong credential
/// is not retried against the next authorizer).
#[derive(Default)]
pub struct FirstOf {
    inner: Vec<Box<dyn Authorizer>>,
}

impl FirstOf {
    /// None yet (rejects everything as missing).
    pub fn new() -> FirstOf {
        FirstOf::default()
    }

    /// Adds an authorizer after the others.
    #[must_use]
    pub fn or(mut self, authorizer: impl Authorizer) -> FirstOf {
        self.inner.push(Box::new(authorizer));
        self
    }
}

impl fmt::Debug for FirstOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FirstOf")
            .field("authorizers", &self.inner.len())
            .finish()
    }
}

impl Authorizer for FirstOf {
    fn authorize<'a>(&'a self, parts: &'a Parts) -> AuthFuture<'a> {
        Box::pin(async move {
            for a in &self.inner {
                match a.authorize(parts).await {
                    Err(AuthError::Missing) => continue,
                    other => return other,
                }
            }
            Err(AuthError::Missing)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(auth: Option<&str>) -> Parts {
        let mut b = http::Request::builder();
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn block<T>(f: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn basic_and_bearer() {
        let p = Principal::new("client", "c1")
            .tenant("t1")
            .scope(SCOPE_READ);
        let auth = FirstOf::new()
            .or(BasicClients::new().client("c1", "pw", p.clone()))
            .or(ApiKeys::new().key("k1", p.clone()));
        let basic = base64::engine::general_purpose::STANDARD.encode("c1:pw");
        let wrong = base64::engine::general_purpose::STANDARD.encode("c1:nope");
        assert_eq!(
            block(auth.authorize(&parts(Some(&format!("Basic {basic}"))))),
            Ok(p.clone())
        );
        assert_eq!(
            block(auth.authorize(&parts(Some(&format!("Basic {wrong}"))))),
            Err(AuthError::Invalid)
        );
        assert_eq!(block(auth.authorize(&parts(Some("Bearer k1")))), Ok(p));
        assert_eq!(
            block(auth.authorize(&parts(Some("Bearer k2")))),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            block(auth.authorize(&parts(Some("Basic !!!")))),
            Err(AuthError::Invalid)
        );
        assert_eq!(block(auth.authorize(&parts(None))), Err(AuthError::Missing));
    }
}
