//! Redaction: secrets are found and rewritten before an event leaves memory.
//!
//! The [`Auditor`](crate::Auditor)'s worker passes every event through its [`Redactor`]
//! before anything else sees it: no sink, spool, stream or export can receive the original,
//! and no sink can opt out. What was rewritten is listed in the event's `redactedFields` as
//! paths (`details.password`, `http.headers.authorization`, `http.query.api_key`,
//! `details.items[2].token`).
//!
//! ```
//! use audit_core::{AuditEvent, HttpFacts};
//! use audit_core::redact::Redactor;
//!
//! let redactor = Redactor::default();
//! let mut event = AuditEvent::builder("auth.login.failure")
//!     .detail("password", "hunter2")
//!     .detail("note", "retried with Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl")
//!     .http(HttpFacts::default().with_query("user=bob&api_key=abc123"))
//!     .build()?;
//! assert!(redactor.redact(&mut event));
//!
//! let json = serde_json::to_string(&event).unwrap();
//! assert!(!json.contains("hunter2") && !json.contains("abc123") && !json.contains("eyJ"));
//! assert_eq!(event.details["password"], "[REDACTED]");
//! assert_eq!(event.details["note"], "retried with Bearer [JWT]");
//! assert_eq!(event.http.unwrap().query.unwrap(), "user=bob&api_key=%5BREDACTED%5D");
//! assert_eq!(event.redacted_fields, ["http.query.api_key", "details.note", "details.password"]);
//! # Ok::<(), audit_core::Error>(())
//! ```
//!
//! # What is found
//! - **By key name** (case-insensitive, `-`/`_` ignored) at any depth of `details`, headers,
//!   query strings and form bodies (URL-decoded), and JSON bodies — including JSON held in a
//!   string: password, passwd, passphrase, pwd, pass, secret (client_secret, …), `*token`
//!   (access_token, refresh_token, id_token, …), api_key/apikey/x-api-key, authorization,
//!   proxy-authorization, cookie, set-cookie, session, private_key, ssn, card_number, cvv,
//!   credential. Extend it with [`RedactorBuilder::key`].
//! - **By value**, in every string of the event (also after `%XX` decoding): JWTs; `Bearer`
//!   tokens; `Basic` credentials that decode to `user:password`; AWS access keys and the
//!   secret key next to one; GitHub, Slack, Stripe (secret/restricted), Google API and
//!   OpenAI-style keys; PEM private keys; the password in `scheme://user:password@host`;
//!   Luhn-valid card numbers (13–19 digits, spaces or dashes allowed); `key=value` and
//!   `"key": "value"` pairs in free text whose key is secret-like; optionally e-mail and IPv4
//!   addresses ([`RedactorBuilder::mask_emails`], [`RedactorBuilder::mask_ips`]; the actor's
//!   IP field is masked for IPv6 too); and your own patterns ([`RedactorBuilder::pattern`]).
//!
//! UUIDs, request and trace ids, ISO timestamps, hex digests and ordinary words are left
//! alone; the property tests in `tests/redaction.rs` hold both lists to account. The
//! context's request, trace and span ids are not scanned at all when they have the form the
//! layer mints and W3C `traceparent` carries (a lowercase hyphenated UUID, 32 or 16
//! lowercase hex digits) and no custom pattern is configured: no built-in detector can find
//! a secret in one, only mistake sixteen digits for a card number. Ids in any other form (a
//! client's own `x-request-id`) are scanned like every other string.
//!
//! # What is done
//! Each [`SecretKind`] has an [`Action`]. Defaults: key-named values are masked
//! (`[REDACTED]`); card numbers, e-mail and IP addresses are partially kept (`****4242`,
//! `a***@acme.test`, `192.0.2.0/24`); everything else found by value is replaced by its type
//! tag (`[JWT]`, `[AWS_ACCESS_KEY]`). [`Action::Hash`] writes `hmac-sha256:<keyId>:<hex>`
//! with the current key of an [`HmacKeys`] ring, so equal secrets correlate across events;
//! [`Redactor::token_for`] computes the token for a known value under any kept key id.
//! Passwords are only ever masked or removed — never kept, not even hashed — and a body
//! that held a secret loses its `sha256`.
//!
//! # Limits
//! JSON nested deeper than 32 levels is replaced whole with `[REDACTED: nested too deep]`
//! rather than walked. IPv6 addresses inside free text are not detected.

mod cards;
mod decode;
mod detectors;
mod finding;
mod hmac;
mod rules;
mod walk;

use std::collections::HashMap;
use std::sync::Arc;

use regex::Regex;

use crate::{AuditEvent, Error};

pub use self::hmac::HmacKeys;
pub use rules::{Action, KeyMatch, MASK, SecretKind};

use detectors::Scanner;
use rules::{KeyRule, KeyRules, default_key_rules};

/// Finds and rewrites secrets in events; cheap to clone (shared configuration).
///
/// [`Redactor::default`] applies the documented rules; [`Redactor::builder`] extends them.
#[derive(Debug, Clone)]
pub struct Redactor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) keys: KeyRules,
    pub(crate) scanner: Scanner,
    actions: HashMap<SecretKind, Action>,
    hmac: Option<HmacKeys>,
    pub(crate) mask_ips: bool,
}

impl Inner {
    pub(crate) fn action_for(&self, kind: &SecretKind) -> Action {
        if let Some(a) = self.actions.get(kind) {
            return *a;
        }
        match kind {
            SecretKind::Password | SecretKind::SecretField => Action::Mask,
            SecretKind::CardNumber | SecretKind::Email | SecretKind::IpAddress => Action::Partial,
            _ => Action::Tag,
        }
    }

    /// A well-formed `hmac-sha256:<keyId>:<64 hex>` under one of the configured key ids.
    pub(crate) fn is_token(&self, text: &str) -> bool {
        let Some(keys) = &self.hmac else { return false };
        let Some(rest) = text.strip_prefix("hmac-sha256:") else {
            return false;
        };
        match rest.split_once(':') {
            Some((id, hex)) => {
                keys.has_id(id)
                    && hex.len() == 64
                    && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            }
            None => false,
        }
    }

    pub(crate) fn hash(&self, value: &[u8]) -> String {
        match &self.hmac {
            Some(keys) => keys.token(value),
            // The builder refuses Hash without keys; mask rather than leak if it ever happens.
            None => MASK.to_owned(),
        }
    }
}

impl Default for Redactor {
    fn default() -> Self {
        // The default configuration is valid by construction; a test proves it.
        match Redactor::builder().build() {
            Ok(r) => r,
            Err(e) => unreachable!("default redactor failed to build: {e}"),
        }
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

impl Redactor {
    /// Starts from the default rules.
    pub fn builder() -> RedactorBuilder {
        RedactorBuilder::default()
    }

    /// Rewrites every secret in `event` and records the paths in `redactedFields`. Returns
    /// true when anything changed.
    pub fn redact(&self, event: &mut AuditEvent) -> bool {
        let needed = SCRATCH.with(|buf| match buf.try_borrow_mut() {
            Ok(mut buf) => {
                let needed = walk::needs_redaction(&self.inner, event, &mut buf);
                if buf.capacity() > 1 << 20 {
                    *buf = String::new();
                }
                needed
            }
            // Re-entered (cannot happen today): check with a fresh buffer.
            Err(_) => walk::needs_redaction(&self.inner, event, &mut String::new()),
        });
        needed && walk::Apply::new(&self.inner, walk::aws_context(event)).event(event)
    }

    /// The keyed-hash token [`Action::Hash`] writes for `value`, under `key_id` (current or
    /// kept older key). Use it to find events about a known value without storing the value.
    pub fn token_for(&self, value: &str, key_id: &str) -> Result<String, Error> {
        match &self.inner.hmac {
            Some(keys) => keys.token_with(key_id, value.as_bytes()),
            None => Err(Error::config("no HMAC keys are configured for redaction")),
        }
    }
}

/// Configures a [`Redactor`].
///
/// ```
/// use audit_core::redact::{Action, HmacKeys, KeyMatch, Redactor, SecretKind};
/// use audit_core::AuditEvent;
///
/// let redactor = Redactor::builder()
///     .key("internal_ref", KeyMatch::Exact)
///     .pattern("employee_id", r"\bEMP-\d{6}\b")
///     .hmac_keys(HmacKeys::new("k1", b"0123456789abcdef0123456789abcdef")?)
///     .action(SecretKind::CardNumber, Action::Hash)
///     .mask_emails(true)
///     .build()?;
///
/// let mut e = AuditEvent::builder("data.order.create")
///     .detail("internal_ref", "R-1")
///     .detail("note", "for EMP-123456 (bob@acme.test), card 4242 4242 4242 4242")
///     .build()?;
/// redactor.redact(&mut e);
/// let token = redactor.token_for("4242 4242 4242 4242", "k1")?;
/// assert_eq!(e.details["internal_ref"], "[REDACTED]");
/// assert_eq!(
///     e.details["note"],
///     format!("for [EMPLOYEE_ID] (b***@acme.test), card {token}")
/// );
///
/// // Passwords are never hashed, whatever the configuration says.
/// assert!(Redactor::builder().action(SecretKind::Password, Action::Hash).build().is_err());
/// # Ok::<(), audit_core::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct RedactorBuilder {
    keys: Vec<KeyRule>,
    patterns: Vec<(String, String)>,
    actions: HashMap<SecretKind, Action>,
    hmac: Option<HmacKeys>,
    emails: bool,
    ips: bool,
}

impl Default for RedactorBuilder {
    fn default() -> Self {
        RedactorBuilder {
            keys: default_key_rules(),
            patterns: Vec::new(),
            actions: HashMap::new(),
            hmac: None,
            emails: false,
            ips: false,
        }
    }
}

impl RedactorBuilder {
    /// Treats keys matching `name` (normalised like the defaults) as secret fields.
    pub fn key(mut self, name: &str, matching: KeyMatch) -> Self {
        self.keys
            .push(KeyRule::new(name, matching, SecretKind::SecretField));
        self
    }

    /// Treats keys matching `name` as passwords (masked or removed, never kept).
    pub fn password_key(mut self, name: &str, matching: KeyMatch) -> Self {
        self.keys
            .push(KeyRule::new(name, matching, SecretKind::Password));
        self
    }

    /// Adds a regular expression; its matches are secrets of kind
    /// [`SecretKind::Custom`]`(name)` (tagged `[NAME]` by default).
    pub fn pattern(mut self, name: &str, regex: &str) -> Self {
        self.patterns.push((name.to_owned(), regex.to_owned()));
        self
    }

    /// Sets the action for one kind of secret.
    pub fn action(mut self, kind: SecretKind, action: Action) -> Self {
        self.actions.insert(kind, action);
        self
    }

    /// The keys for [`Action::Hash`].
    pub fn hmac_keys(mut self, keys: HmacKeys) -> Self {
        self.hmac = Some(keys);
        self
    }

    /// Also finds e-mail addresses in text (off by default: they are often the actor's
    /// identity, which an audit trail needs).
    pub fn mask_emails(mut self, on: bool) -> Self {
        self.emails = on;
        self
    }

    /// Also finds IP addresses (off by default, for the same reason).
    pub fn mask_ips(mut self, on: bool) -> Self {
        self.ips = on;
        self
    }

    /// Validates and builds. Errors on an invalid pattern, on a password action other than
    /// mask or remove, and on a hash action without keys.
    pub fn build(self) -> Result<Redactor, Error> {
        if let Some(a) = self.actions.get(&SecretKind::Password)
            && !matches!(a, Action::Mask | Action::Remove)
        {
            return Err(Error::config(format!(
                "passwords can only be masked or removed, never kept in any form (asked: {a:?})"
            )));
        }
        if self.hmac.is_none()
            && let Some((kind, _)) = self.actions.iter().find(|(_, a)| **a == Action::Hash)
        {
            return Err(Error::config(format!(
                "{kind} is set to Action::Hash but no HMAC keys are configured"
            )));
        }
        let mut custom = Vec::new();
        for (name, re) in &self.patterns {
            let regex = Regex::new(re).map_err(|e| {
                Error::config(format!(
                    "redaction pattern {name:?} is not a valid regex: {e}"
                ))
            })?;
            custom.push((regex, SecretKind::Custom(name.clone())));
        }
        let keys = KeyRules::new(self.keys).map_err(Error::config)?;
        let scanner =
            Scanner::new(keys.clone(), self.emails, self.ips, custom).map_err(Error::config)?;
        Ok(Redactor {
            inner: Arc::new(Inner {
                keys,
                scanner,
                actions: self.actions,
                hmac: self.hmac,
                mask_ips: self.ips,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_builds() {
        let _ = Redactor::default();
    }
}
