//! What counts as a secret (kinds, key names) and what is done with it (actions).

use std::fmt;

/// The kind of secret found; each kind has an [`Action`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SecretKind {
    /// A value under a password-like key. Only [`Action::Mask`] or [`Action::Remove`] apply:
    /// passwords are never kept in any form, not even hashed.
    Password,
    /// A value under another secret-like key (token, api key, cookie, session, …).
    SecretField,
    /// A JSON Web Token.
    Jwt,
    /// The credential after `Bearer`.
    BearerToken,
    /// The base64 `user:password` after `Basic`.
    BasicCredential,
    /// An AWS access key id (`AKIA…`, `ASIA…`).
    AwsAccessKey,
    /// A 40-character AWS secret key next to an access key id.
    AwsSecretKey,
    /// A GitHub token (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`).
    GithubToken,
    /// A Slack token (`xoxb-`, `xoxp-`, …).
    SlackToken,
    /// A Stripe secret or restricted key (`sk_live_`, `rk_live_`, `sk_test_`, `rk_test_`).
    StripeKey,
    /// A Google API key (`AIza…`).
    GoogleApiKey,
    /// An OpenAI-style key (`sk-…`).
    OpenAiKey,
    /// A PEM private key block.
    PrivateKey,
    /// The password in `scheme://user:password@host`.
    UrlPassword,
    /// A payment card number (Luhn-checked).
    CardNumber,
    /// A `key=value` or `"key": "value"` pair inside free text whose key is secret-like.
    InlineSecret,
    /// An e-mail address (only when e-mail masking is on).
    Email,
    /// An IP address (only when IP masking is on).
    IpAddress,
    /// A match of a user-supplied pattern, by its name.
    Custom(String),
}

impl SecretKind {
    /// The tag written by [`Action::Tag`], e.g. `JWT` → `[JWT]`.
    pub fn tag(&self) -> String {
        let s = match self {
            SecretKind::Password => "PASSWORD",
            SecretKind::SecretField => "SECRET",
            SecretKind::Jwt => "JWT",
            SecretKind::BearerToken => "BEARER_TOKEN",
            SecretKind::BasicCredential => "BASIC_CREDENTIAL",
            SecretKind::AwsAccessKey => "AWS_ACCESS_KEY",
            SecretKind::AwsSecretKey => "AWS_SECRET_KEY",
            SecretKind::GithubToken => "GITHUB_TOKEN",
            SecretKind::SlackToken => "SLACK_TOKEN",
            SecretKind::StripeKey => "STRIPE_KEY",
            SecretKind::GoogleApiKey => "GOOGLE_API_KEY",
            SecretKind::OpenAiKey => "OPENAI_KEY",
            SecretKind::PrivateKey => "PRIVATE_KEY",
            SecretKind::UrlPassword => "URL_PASSWORD",
            SecretKind::CardNumber => "CARD_NUMBER",
            SecretKind::InlineSecret => "SECRET",
            SecretKind::Email => "EMAIL",
            SecretKind::IpAddress => "IP",
            SecretKind::Custom(name) => return name.to_ascii_uppercase(),
        };
        s.to_owned()
    }
}

impl fmt::Display for SecretKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.tag())
    }
}

/// What redaction does with a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// Delete it: a key-matched field disappears; a span inside text is cut out.
    Remove,
    /// Replace it with `[REDACTED]`.
    Mask,
    /// Keep the last four characters: `****4242`. For e-mail addresses, the first letter and
    /// the domain (`a***@acme.test`); for IP addresses, the network (`192.0.2.0/24`,
    /// `2001:db8:85a3::/48`).
    Partial,
    /// Replace it with its kind: `[JWT]`, `[AWS_ACCESS_KEY]`.
    Tag,
    /// Replace it with `hmac-sha256:<keyId>:<hex>` under the current key, so equal values
    /// correlate across events without being exposed. Needs a key
    /// ([`RedactorBuilder::hmac_keys`](super::RedactorBuilder::hmac_keys)).
    Hash,
}

/// The replacement text of [`Action::Mask`].
pub const MASK: &str = "[REDACTED]";

/// How a key name is compared with a rule, after both are normalised (ASCII lowercase,
/// `-` and `_` removed, so `API-Key`, `api_key` and `apiKey` are all `apikey`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyMatch {
    /// The whole key equals the rule.
    Exact,
    /// The key ends with the rule (`access_token`, `x-auth-token` for `token`).
    Suffix,
    /// The key contains the rule anywhere (`newPassword` for `password`).
    Contains,
}

/// One key-name rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyRule {
    pub(crate) name: String,
    pub(crate) matching: KeyMatch,
    pub(crate) kind: SecretKind,
}

impl KeyRule {
    pub(crate) fn new(name: &str, matching: KeyMatch, kind: SecretKind) -> KeyRule {
        let mut buf = [0u8; 64];
        KeyRule {
            name: normalize(name, &mut buf).unwrap_or(name).to_owned(),
            matching,
            kind,
        }
    }
}

/// The default key rules: the documented list of secret-like names.
///
/// | match | names | kind |
/// |---|---|---|
/// | contains | password, passwd, passphrase | password |
/// | exact | pwd, pass | password |
/// | contains | secret, apikey, privatekey, authorization, cookie, cardnumber, credential | secret field |
/// | suffix | token | secret field |
/// | exact | session, sessionkey, ssn, cvv, cvc, pin, otp, sig, bearer | secret field |
/// | suffix | signature, jwt, accesskey | secret field |
///
/// Keys are compared after taking off up to four layers of `%XX` encoding and surrounding
/// white space; a bracketed or dotted key (`user[token]`, `token[0]`, `pass[]`,
/// `user.pwd`) is secret when any of its parts is.
pub(crate) fn default_key_rules() -> Vec<KeyRule> {
    use KeyMatch::{Contains, Exact, Suffix};
    let mut rules = Vec::new();
    for n in ["password", "passwd", "passphrase"] {
        rules.push(KeyRule::new(n, Contains, SecretKind::Password));
    }
    for n in ["pwd", "pass"] {
        rules.push(KeyRule::new(n, Exact, SecretKind::Password));
    }
    for n in [
        "secret",
        "apikey",
        "privatekey",
        "authorization",
        "cookie",
        "cardnumber",
        "credential",
    ] {
        rules.push(KeyRule::new(n, Contains, SecretKind::SecretField));
    }
    rules.push(KeyRule::new("token", Suffix, SecretKind::SecretField));
    for n in [
        "session",
        "sessionkey",
        "ssn",
        "cvv",
        "cvc",
        "pin",
        "otp",
        "sig",
        "bearer",
    ] {
        rules.push(KeyRule::new(n, Exact, SecretKind::SecretField));
    }
    for n in ["signature", "jwt", "accesskey"] {
        rules.push(KeyRule::new(n, Suffix, SecretKind::SecretField));
    }
    rules
}

/// Lowercases `key` and drops `-` and `_` into `buf`; `None` when it does not fit (keys
/// longer than 64 bytes are compared as they are, lowercased by the caller's fallback).
pub(crate) fn normalize<'b>(key: &str, buf: &'b mut [u8; 64]) -> Option<&'b str> {
    let mut n = 0;
    for &b in key.as_bytes() {
        if b == b'-' || b == b'_' {
            continue;
        }
        if n == buf.len() {
            return None;
        }
        buf[n] = b.to_ascii_lowercase();
        n += 1;
    }
    std::str::from_utf8(&buf[..n]).ok()
}

/// The key rules in force; answers "is this key secret, and what kind".
///
/// Rules are indexed by their first byte, so classifying a short key costs one table look-up
/// per byte and a comparison only where a rule could start.
#[derive(Debug, Clone)]
pub(crate) struct KeyRules {
    rules: Vec<KeyRule>,
    by_first: Vec<Vec<u16>>,
}

impl KeyRules {
    pub(crate) fn new(rules: Vec<KeyRule>) -> Result<KeyRules, String> {
        if rules.len() > usize::from(u16::MAX) {
            return Err("too many key rules".to_owned());
        }
        let mut by_first = vec![Vec::new(); 256];
        for (i, r) in rules.iter().enumerate() {
            match r.name.as_bytes().first() {
                Some(&b) => by_first[usize::from(b)].push(i as u16),
                None => return Err("a key rule is empty".to_owned()),
            }
        }
        Ok(KeyRules { rules, by_first })
    }

    /// The kind of secret a key names, if any: the key as it is, then (only for keys with
    /// `%`, `+`, brackets, dots or surrounding white space) decoded, trimmed and split into
    /// its parts.
    pub(crate) fn classify(&self, key: &str) -> Option<&SecretKind> {
        if let Some(kind) = self.classify_plain(key) {
            return Some(kind);
        }
        let decorated = key
            .bytes()
            .any(|b| matches!(b, b'%' | b'+' | b'[' | b']' | b'.' | b' ' | b'\t'));
        if !decorated {
            return None;
        }
        let mut decoded = key.replace('+', " ");
        for _ in 0..super::decode::MAX_DECODE_ROUNDS {
            match super::decode::percent_decode(&decoded) {
                Some(d) => decoded = d,
                None => break,
            }
        }
        let decoded = decoded.trim();
        if let Some(kind) = self.classify_plain(decoded) {
            return Some(kind);
        }
        decoded
            .split(['[', ']', '.'])
            .map(str::trim)
            .filter(|p| !p.is_empty() && p != &decoded)
            .find_map(|p| self.classify_plain(p))
    }

    fn classify_plain(&self, key: &str) -> Option<&SecretKind> {
        let mut buf = [0u8; 64];
        match normalize(key, &mut buf) {
            Some(k) => self.classify_normalized(k.as_bytes()),
            None => {
                let long: Vec<u8> = key
                    .bytes()
                    .filter(|b| *b != b'-' && *b != b'_')
                    .map(|b| b.to_ascii_lowercase())
                    .collect();
                self.classify_normalized(&long)
            }
        }
    }

    /// The first rule (in order) that matches; rule order is the priority.
    fn classify_normalized(&self, key: &[u8]) -> Option<&SecretKind> {
        let mut best: Option<u16> = None;
        for (at, &b) in key.iter().enumerate() {
            for &i in &self.by_first[usize::from(b)] {
                let rule = &self.rules[usize::from(i)];
                let name = rule.name.as_bytes();
                let fits = key[at..].starts_with(name)
                    && match rule.matching {
                        KeyMatch::Exact => at == 0 && key.len() == name.len(),
                        KeyMatch::Suffix => at + name.len() == key.len(),
                        KeyMatch::Contains => true,
                    };
                if fits && best.is_none_or(|b| i < b) {
                    best = Some(i);
                }
            }
        }
        best.map(|i| &self.rules[usize::from(i)].kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rules_cover_the_documented_names_in_any_spelling() {
        let rules = KeyRules::new(default_key_rules()).unwrap();
        for key in [
            "password",
            "Password",
            "newPassword",
            "password_confirmation",
            "passwd",
            "pwd",
            "secret",
            "client_secret",
            "token",
            "access_token",
            "refreshToken",
            "id_token",
            "api_key",
            "apikey",
            "X-API-Key",
            "authorization",
            "Proxy-Authorization",
            "cookie",
            "Set-Cookie",
            "session",
            "private_key",
            "ssn",
            "card_number",
            "aws_secret_access_key",
            "token[]",
            "token[0]",
            "user[token]",
            "pass[]",
            "pwd[]",
            "session[]",
            "token%20",
            "token+",
            "otp",
            "signature",
            "x-amz-signature",
            "sig",
            "jwt",
            "bearer",
            "access_key",
            "aws_access_key",
            "%2570assword",
            "user.pwd",
            " password ",
        ] {
            assert!(rules.classify(key).is_some(), "{key}");
        }
        assert_eq!(rules.classify("oldPassword"), Some(&SecretKind::Password));
    }

    #[test]
    fn ordinary_keys_are_left_alone() {
        let rules = KeyRules::new(default_key_rules()).unwrap();
        for key in [
            "sessionId",
            "requestId",
            "max_tokens",
            "tokens_used",
            "tokenizer",
            "user",
            "email",
            "passenger",
            "compass",
            "spinner",
            "count",
            "signatureVersion",
            "design",
            "pinned",
            "user[name]",
            "items[0]",
            "a.b.c",
            "password_policy_version_is_really_long_key_name_over_sixty_four_bytes_ok",
        ] {
            let hit = rules.classify(key);
            let expected = key.starts_with("password_policy");
            assert_eq!(hit.is_some(), expected, "{key}");
        }
    }
}
