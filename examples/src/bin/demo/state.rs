//! The demo's in-memory domain: two organisations, their users, sessions, API keys and vector
//! indexes. Passwords are stored as salted PBKDF2-HMAC-SHA256 hashes, session tokens are
//! random and opaque, API keys are shown once and kept only as a hash.

use audit_core::sync::LockExt;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

const PBKDF2_ROUNDS: u32 = 10_000;

/// A user of the demo.
/// The roles a member can hold.
pub(crate) const ROLES: [&str; 2] = ["admin", "member"];

/// The shortest password accepted.
pub(crate) const MIN_PASSWORD: usize = 8;

#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) id: String,
    pub(crate) email: String,
    pub(crate) org: String,
    pub(crate) role: String,
    salt: [u8; 16],
    hash: [u8; 32],
}

/// Who a request is from, once its bearer token checked out.
/// How a login attempt ended.
#[derive(Debug)]
pub(crate) enum Login {
    Ok(User),
    /// The account exists; the password was wrong.
    WrongPassword(User),
    /// No account has this e-mail.
    Unknown,
}

#[derive(Debug, Clone)]
pub(crate) enum Principal {
    User(User),
    ApiKey { id: String, org: String },
}

#[derive(Debug)]
struct ApiKey {
    org: String,
    hash: [u8; 32],
}

#[derive(Debug, Default)]
pub(crate) struct Index {
    pub(crate) vectors: HashMap<String, (Vec<f32>, Value)>,
}

#[derive(Debug, Default)]
struct Inner {
    users: Vec<User>,
    sessions: HashMap<String, String>,
    keys: HashMap<String, ApiKey>,
    indexes: HashMap<(String, String), Index>,
    config: HashMap<String, Value>,
}

/// The demo's state, shared by all handlers.
#[derive(Debug, Default)]
pub(crate) struct State {
    inner: Mutex<Inner>,
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // The OS random source does not fail on supported platforms; a zeroed buffer would only
    // make demo tokens guessable, so refuse to continue instead.
    if getrandom::fill(&mut buf).is_err() {
        std::process::abort();
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn pbkdf2(password: &str, salt: &[u8; 16]) -> [u8; 32] {
    let mac = |data: &[u8]| -> [u8; 32] {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(password.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        m.update(data);
        m.finalize().into_bytes().into()
    };
    let mut first = salt.to_vec();
    first.extend_from_slice(&1u32.to_be_bytes());
    let mut u = mac(&first);
    let mut out = u;
    for _ in 1..PBKDF2_ROUNDS {
        u = mac(&u);
        for (o, x) in out.iter_mut().zip(u) {
            *o ^= x;
        }
    }
    out
}

fn key_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Compares without an early exit, so timing says nothing about where a guess went wrong.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl State {
    /// The two demo organisations and their users, and the platform's operator.
    pub(crate) fn seeded() -> State {
        let state = State::default();
        for (id, email, password, org, role) in [
            (
                "user-acme-admin",
                "admin@acme.test",
                "admin-password",
                "acme",
                "admin",
            ),
            (
                "user-acme-member",
                "member@acme.test",
                "member-password",
                "acme",
                "member",
            ),
            (
                "user-globex-admin",
                "admin@globex.test",
                "globex-password",
                "globex",
                "admin",
            ),
            // The platform's operator: reads every tenant's audit trail and verifies it.
            (
                "user-platform-operator",
                "ops@platform.test",
                "ops-password",
                "platform",
                "operator",
            ),
        ] {
            state.add_user(id, email, password, org, role);
        }
        state
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock_ignore_poison()
    }

    fn add_user(&self, id: &str, email: &str, password: &str, org: &str, role: &str) {
        let mut salt = [0u8; 16];
        if getrandom::fill(&mut salt).is_err() {
            std::process::abort();
        }
        self.lock().users.push(User {
            id: id.into(),
            email: email.into(),
            org: org.into(),
            role: role.into(),
            hash: pbkdf2(password, &salt),
            salt,
        });
    }

    /// The user with this e-mail, if the password matches.
    /// The user with this e-mail and password. The hash is computed whether or not the
    /// e-mail exists, so the answer's timing does not tell which addresses have accounts.
    pub(crate) fn check_password(&self, email: &str, password: &str) -> Option<User> {
        match self.login(email, password) {
            Login::Ok(user) => Some(user),
            _ => None,
        }
    }

    /// Like [`check_password`](Self::check_password), but a wrong password for a known
    /// account names the account, so the failure can be filed under its tenant.
    pub(crate) fn login(&self, email: &str, password: &str) -> Login {
        let user = self.lock().users.iter().find(|u| u.email == email).cloned();
        let (salt, hash) = match &user {
            Some(u) => (u.salt, u.hash),
            None => ([0u8; 16], [0u8; 32]),
        };
        let matches = same(&pbkdf2(password, &salt), &hash);
        match user {
            Some(u) if matches => Login::Ok(u),
            Some(u) => Login::WrongPassword(u),
            None => Login::Unknown,
        }
    }

    /// Sets a user's password and ends every other session of theirs (`keep` is the
    /// session that made the change).
    pub(crate) fn set_password(&self, user_id: &str, password: &str, keep: &str) {
        let mut inner = self.lock();
        if let Some(u) = inner.users.iter_mut().find(|u| u.id == user_id) {
            u.hash = pbkdf2(password, &u.salt);
        }
        inner
            .sessions
            .retain(|token, user| user != user_id || token == keep);
    }

    /// Starts a session; returns its opaque token.
    pub(crate) fn open_session(&self, user_id: &str) -> String {
        let token = random_hex(32);
        self.lock().sessions.insert(token.clone(), user_id.into());
        token
    }

    pub(crate) fn close_session(&self, token: &str) {
        self.lock().sessions.remove(token);
    }

    /// Who a bearer token (session token or API key) belongs to.
    pub(crate) fn principal(&self, bearer: &str) -> Option<Principal> {
        let inner = self.lock();
        // `ak_<id>_<secret>`: the id has an underscore of its own, the secret is hex.
        if let Some(rest) = bearer.strip_prefix("ak_")
            && let Some((id, _)) = rest.rsplit_once('_')
        {
            let key = inner.keys.get(id)?;
            return same(&key_hash(bearer), &key.hash).then(|| Principal::ApiKey {
                id: id.into(),
                org: key.org.clone(),
            });
        }
        let user_id = inner.sessions.get(bearer)?;
        inner
            .users
            .iter()
            .find(|u| &u.id == user_id)
            .cloned()
            .map(Principal::User)
    }

    /// Creates an API key; returns its id and the key itself (shown once, never stored).
    pub(crate) fn create_key(&self, org: &str) -> (String, String) {
        let id = format!("key_{}", random_hex(6));
        let key = format!("ak_{id}_{}", random_hex(24));
        self.lock().keys.insert(
            id.clone(),
            ApiKey {
                org: org.into(),
                hash: key_hash(&key),
            },
        );
        (id, key)
    }

    pub(crate) fn revoke_key(&self, org: &str, id: &str) -> bool {
        let mut inner = self.lock();
        match inner.keys.get(id) {
            Some(k) if k.org == org => inner.keys.remove(id).is_some(),
            _ => false,
        }
    }

    /// Changes a member's role; only the roles in [`ROLES`] exist.
    pub(crate) fn set_role(&self, org: &str, user_id: &str, role: &str) -> bool {
        let mut inner = self.lock();
        match inner
            .users
            .iter_mut()
            .find(|u| u.id == user_id && u.org == org)
        {
            Some(u) => {
                u.role = role.into();
                true
            }
            None => false,
        }
    }

    pub(crate) fn set_config(&self, org: &str, config: Value) {
        self.lock().config.insert(org.into(), config);
    }

    pub(crate) fn create_index(&self, org: &str, name: &str) -> bool {
        let mut inner = self.lock();
        let key = (org.to_owned(), name.to_owned());
        if inner.indexes.contains_key(&key) {
            return false;
        }
        inner.indexes.insert(key, Index::default());
        true
    }

    pub(crate) fn delete_index(&self, org: &str, name: &str) -> bool {
        self.lock()
            .indexes
            .remove(&(org.to_owned(), name.to_owned()))
            .is_some()
    }

    /// Indexes and vectors per organisation, for the usage report.
    pub(crate) fn usage(&self) -> Vec<(String, usize, usize)> {
        let inner = self.lock();
        let mut per_org: HashMap<String, (usize, usize)> = HashMap::new();
        for ((org, _), index) in &inner.indexes {
            let e = per_org.entry(org.clone()).or_default();
            e.0 += 1;
            e.1 += index.vectors.len();
        }
        let mut out: Vec<_> = per_org.into_iter().map(|(o, (i, v))| (o, i, v)).collect();
        out.sort();
        out
    }

    /// Runs `f` on an organisation's index, if it exists.
    pub(crate) fn with_index<T>(
        &self,
        org: &str,
        name: &str,
        f: impl FnOnce(&mut Index) -> T,
    ) -> Option<T> {
        self.lock()
            .indexes
            .get_mut(&(org.to_owned(), name.to_owned()))
            .map(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_tokens_and_keys() {
        let s = State::seeded();
        assert!(
            s.check_password("admin@acme.test", "admin-password")
                .is_some()
        );
        assert!(s.check_password("admin@acme.test", "wrong").is_none());
        let token = s.open_session("user-acme-admin");
        assert_eq!(token.len(), 64);
        assert!(matches!(s.principal(&token), Some(Principal::User(_))));
        let (id, key) = s.create_key("acme");
        assert!(matches!(s.principal(&key), Some(Principal::ApiKey { .. })));
        assert!(s.principal(&format!("ak_{id}_forged")).is_none());
        assert!(s.revoke_key("acme", &id));
        assert!(s.principal(&key).is_none());
    }
}
