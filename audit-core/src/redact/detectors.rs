//! Finding secrets inside text.
//!
//! One aho-corasick automaton holds the literal that every built-in secret starts with
//! (`eyJ`, `AKIA`, `ghp_`, `-----BEGIN`, `://`, `Bearer`, …) and the words of secret-like
//! key names (for `password=…` inside free text). Clean text costs one pass of its SIMD
//! prefilter; each hit is then checked by a small exact matcher. Card numbers have no literal
//! prefix: a word-at-a-time digit count skips text with fewer than 13 digits in any 32 bytes
//! before the exact Luhn check runs.

use std::ops::ControlFlow;

use aho_corasick::{AhoCorasick, MatchKind};
use regex::Regex;

use super::cards::cards;
use super::finding::Finding;
use super::finding::{boundary_before, is_alnum, run};
use super::rules::{KeyRules, SecretKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Jwt,
    Bearer,
    Basic,
    Aws,
    Github,
    GithubPat,
    Slack,
    Stripe,
    Google,
    OpenAi,
    Pem,
    Url,
}

/// The literal each built-in secret starts with.
const VALUE_TRIGGERS: &[(&str, Trigger)] = &[
    ("eyJ", Trigger::Jwt),
    ("Bearer", Trigger::Bearer),
    ("bearer", Trigger::Bearer),
    ("BEARER", Trigger::Bearer),
    ("Basic", Trigger::Basic),
    ("basic", Trigger::Basic),
    ("BASIC", Trigger::Basic),
    ("AKIA", Trigger::Aws),
    ("ASIA", Trigger::Aws),
    ("ghp_", Trigger::Github),
    ("gho_", Trigger::Github),
    ("ghu_", Trigger::Github),
    ("ghs_", Trigger::Github),
    ("ghr_", Trigger::Github),
    ("github_pat_", Trigger::GithubPat),
    ("xoxa-", Trigger::Slack),
    ("xoxb-", Trigger::Slack),
    ("xoxp-", Trigger::Slack),
    ("xoxr-", Trigger::Slack),
    ("xoxs-", Trigger::Slack),
    ("sk_live_", Trigger::Stripe),
    ("rk_live_", Trigger::Stripe),
    ("sk_test_", Trigger::Stripe),
    ("rk_test_", Trigger::Stripe),
    ("AIza", Trigger::Google),
    ("sk-", Trigger::OpenAi),
    ("-----BEGIN", Trigger::Pem),
    ("://", Trigger::Url),
];

/// Finds secrets in text; built once per redactor.
#[derive(Debug, Clone)]
pub(crate) struct Scanner {
    ac: AhoCorasick,
    triggers: Vec<Trigger>,
    keys: KeyRules,
    emails: bool,
    ips: bool,
    custom: Vec<(Regex, SecretKind)>,
}

impl Scanner {
    pub(crate) fn new(
        keys: KeyRules,
        emails: bool,
        ips: bool,
        custom: Vec<(Regex, SecretKind)>,
    ) -> Result<Scanner, String> {
        let patterns: Vec<&'static str> = VALUE_TRIGGERS.iter().map(|(p, _)| *p).collect();
        let triggers: Vec<Trigger> = VALUE_TRIGGERS.iter().map(|(_, t)| *t).collect();
        // Case-sensitive literals keep the automaton's SIMD prefilter (Teddy): an
        // ASCII-case-insensitive build of the same set fell back to a DFA and cost the worker
        // about 1,400 instructions per event (callgrind, the overhead bench's events). Key
        // names in free text are found from their separator instead, in any case.
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(&patterns)
            .map_err(|e| format!("cannot build the redaction automaton: {e}"))?;
        Ok(Scanner {
            ac,
            triggers,
            keys,
            emails,
            ips,
            custom,
        })
    }

    /// Every finding in `s`, sorted by start, overlapping ones merged.
    pub(crate) fn find_all(&self, s: &str, out: &mut Vec<Finding>) {
        out.clear();
        let _ = self.scan(s, &mut |f| {
            out.push(f);
            ControlFlow::Continue(())
        });
        out.sort_by_key(|f| (f.start, std::cmp::Reverse(f.end)));
        let mut merged: Vec<Finding> = Vec::with_capacity(out.len());
        for f in out.drain(..) {
            match merged.last_mut() {
                Some(last) if f.start < last.end => {
                    // The same span found twice (two trigger words) is not a merge.
                    last.merged |= (f.start, f.end) != (last.start, last.end);
                    last.end = last.end.max(f.end);
                }
                _ => merged.push(f),
            }
        }
        *out = merged;
    }

    /// True when the user added patterns of their own (which may match anything).
    pub(crate) fn has_custom(&self) -> bool {
        !self.custom.is_empty()
    }

    /// True as soon as anything in `s` is a secret.
    pub(crate) fn any(&self, s: &str) -> bool {
        self.scan(s, &mut |_| ControlFlow::Break(())).is_break()
    }

    fn scan(&self, s: &str, emit: &mut dyn FnMut(Finding) -> ControlFlow<()>) -> ControlFlow<()> {
        let b = s.as_bytes();
        for m in self.ac.find_iter(b) {
            let at = m.start();
            let found = match self.triggers[m.pattern().as_usize()] {
                Trigger::Jwt => jwt(b, at),
                Trigger::Bearer => bearer(b, at),
                Trigger::Basic => basic(b, at),
                Trigger::Aws => {
                    if let Some(f) = aws_access_key(b, at) {
                        emit(f)?;
                        if let Some(secret) = aws_secret_key(b) {
                            emit(secret)?;
                        }
                    }
                    None
                }
                Trigger::Github => prefixed(b, at, 4, 36, is_alnum, SecretKind::GithubToken),
                Trigger::GithubPat => prefixed(b, at, 11, 22, is_word, SecretKind::GithubToken),
                Trigger::Slack => prefixed(b, at, 5, 10, is_slack, SecretKind::SlackToken),
                Trigger::Stripe => prefixed(b, at, 8, 10, is_alnum, SecretKind::StripeKey),
                Trigger::Google => prefixed(b, at, 4, 30, is_b64url, SecretKind::GoogleApiKey),
                Trigger::OpenAi => prefixed(b, at, 3, 20, is_b64url, SecretKind::OpenAiKey),
                Trigger::Pem => pem(b, at),
                Trigger::Url => url_password(b, at),
            };
            if let Some(f) = found {
                emit(f)?;
            }
        }
        for sep in memchr::memchr2_iter(b'=', b':', b) {
            if let Some(f) = self.pair_at(b, sep) {
                emit(f)?;
            }
        }
        cards(b, emit)?;
        if self.emails {
            emails(b, emit)?;
        }
        if self.ips {
            ipv4s(b, emit)?;
        }
        for (re, kind) in &self.custom {
            for m in re.find_iter(s) {
                if !m.is_empty() {
                    emit(Finding {
                        start: m.start(),
                        end: m.end(),
                        kind: kind.clone(),
                        merged: false,
                    })?;
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// `password=…`, `"api_key": "…"`, `Authorization: Bearer …`, `PassWord: …`,
    /// `token[0]=…`, `"password" => "…"` inside free text: the key before the separator at
    /// `sep` (`=` or `:`), in any letter case, is one the key rules call secret.
    fn pair_at(&self, b: &[u8], sep: usize) -> Option<Finding> {
        let mut i = sep;
        while i > 0 && matches!(b[i - 1], b' ' | b'\t') {
            i -= 1;
        }
        if i > 0 && matches!(b[i - 1], b'"' | b'\'') {
            i -= 1;
        }
        // `token[0]=…`, `pass[]=…`: an index or empty bracket after the name.
        if i > 0 && b[i - 1] == b']' {
            let open = b[i.saturating_sub(34)..i - 1]
                .iter()
                .rposition(|&c| c == b'[')?;
            i = i.saturating_sub(34) + open;
        }
        let key_end = i;
        let mut key_start = key_end;
        while key_start > 0 && is_key_char(b[key_start - 1]) && key_end - key_start <= 64 {
            key_start -= 1;
        }
        if key_start == key_end || key_end - key_start > 64 {
            return None;
        }
        let key = std::str::from_utf8(&b[key_start..key_end]).ok()?;
        let kind = self.keys.classify(key)?.clone();
        let mut i = sep + 1;
        // `"password" => "…"` (Ruby, PHP, Perl hashes); `::` is not a separator.
        if b[sep] == b'=' && b.get(i) == Some(&b'>') {
            i += 1;
        } else if b.get(i) == Some(&b[sep]) {
            return None;
        }
        i = run(b, i, |c| c == b' ' || c == b'\t');
        let (vstart, vend) = match b.get(i) {
            Some(&q @ (b'"' | b'\'')) => {
                // A quoted value ends at its closing quote on the same line; without one it
                // is read like an unquoted value, so its extent never depends on a quote
                // somewhere far away.
                let mut j = i + 1;
                while j < b.len() && b[j] != q && b[j] != b'\n' && b[j] != 0 {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                if b.get(j) == Some(&q) {
                    (i + 1, j)
                } else {
                    (i + 1, value_end(b, i + 1))
                }
            }
            _ => {
                let end = value_end(b, i);
                // `Bearer abc`, `Basic abc`: the credential is the word after the scheme.
                let word = &b[i..end];
                let scheme = [&b"bearer"[..], b"basic", b"digest", b"token"]
                    .iter()
                    .any(|s| word.eq_ignore_ascii_case(s));
                if scheme && b.get(end) == Some(&b' ') {
                    (i, value_end(b, end + 1))
                } else {
                    (i, end)
                }
            }
        };
        (vend > vstart).then_some(Finding {
            start: vstart,
            end: vend,
            kind,
            merged: false,
        })
    }
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn is_b64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

fn is_slack(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-'
}

fn is_key_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.'
}

/// The end of an unquoted value at `i`. A bracketed value (`[REDACTED]`) is taken whole up
/// to its `]` on the same line, so a second pass reads exactly what the first wrote.
fn value_end(b: &[u8], i: usize) -> usize {
    if b.get(i) == Some(&b'[') {
        let close = b[i..]
            .iter()
            .position(|&c| c == b']' || c == b'\n' || c == 0)
            .map(|p| i + p);
        if let Some(c) = close
            && b[c] == b']'
        {
            return c + 1;
        }
    }
    run(b, i, is_value_char)
}

fn is_value_char(c: u8) -> bool {
    !(c.is_ascii_whitespace() || b"&,;\"'})]>\0".contains(&c))
}

/// `prefix` of `plen` bytes at `at`, then at least `min` bytes of `body`, on word boundaries.
fn prefixed(
    b: &[u8],
    at: usize,
    plen: usize,
    min: usize,
    body: fn(u8) -> bool,
    kind: SecretKind,
) -> Option<Finding> {
    if !boundary_before(b, at, is_alnum) {
        return None;
    }
    let end = run(b, at + plen, body);
    (end - (at + plen) >= min).then_some(Finding {
        start: at,
        end,
        kind,
        merged: false,
    })
}

fn jwt(b: &[u8], at: usize) -> Option<Finding> {
    if !boundary_before(b, at, is_b64url) {
        return None;
    }
    let h = run(b, at, is_b64url);
    if h - at < 10 || b.get(h) != Some(&b'.') {
        return None;
    }
    let p = run(b, h + 1, is_b64url);
    if p - (h + 1) < 4 || b.get(p) != Some(&b'.') {
        return None;
    }
    Some(Finding {
        start: at,
        end: run(b, p + 1, is_b64url),
        kind: SecretKind::Jwt,
        merged: false,
    })
}

fn token68(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-._~+/".contains(&c)
}

/// The token after `Bearer` (at least 16 characters, so prose like "bearer of" is left).
fn bearer(b: &[u8], at: usize) -> Option<Finding> {
    if !boundary_before(b, at, is_alnum) {
        return None;
    }
    let sp = at + 6;
    let start = run(b, sp, |c| c == b' ');
    if start == sp {
        return None;
    }
    let end = run(b, run(b, start, token68), |c| c == b'=');
    // A JWT after `Bearer` is reported (and tagged) as the JWT it is.
    let is_jwt = b[start..end].starts_with(b"eyJ") && jwt(b, start).is_some();
    (end - start >= 16 && !is_jwt).then_some(Finding {
        start,
        end,
        kind: SecretKind::BearerToken,
        merged: false,
    })
}

/// The credential after `Basic`, only when it decodes to `user:password`.
fn basic(b: &[u8], at: usize) -> Option<Finding> {
    if !boundary_before(b, at, is_alnum) {
        return None;
    }
    let sp = at + 5;
    let start = run(b, sp, |c| c == b' ');
    if start == sp {
        return None;
    }
    let end = run(
        b,
        run(b, start, |c| {
            c.is_ascii_alphanumeric() || c == b'+' || c == b'/'
        }),
        |c| c == b'=',
    );
    if end - start < 8 {
        return None;
    }
    let decoded = base64_decode(&b[start..end])?;
    let printable = decoded.iter().all(|c| (0x20..0x7f).contains(c));
    (printable && decoded.contains(&b':')).then_some(Finding {
        start,
        end,
        kind: SecretKind::BasicCredential,
        merged: false,
    })
}

fn base64_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in s.iter().take_while(|c| **c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

fn aws_access_key(b: &[u8], at: usize) -> Option<Finding> {
    if !boundary_before(b, at, is_alnum) {
        return None;
    }
    let end = at + 20;
    let body = b.get(at + 4..end)?;
    let ok = body
        .iter()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        && b.get(end).is_none_or(|c| !is_alnum(*c));
    ok.then_some(Finding {
        start: at,
        end,
        kind: SecretKind::AwsAccessKey,
        merged: false,
    })
}

/// A 40-character secret key in the same text as an access key: mixed case (so hex digests
/// are not taken for one), delimited by non-key characters.
fn aws_secret_key(b: &[u8]) -> Option<Finding> {
    let key_char = |c: u8| c.is_ascii_alphanumeric() || c == b'/' || c == b'+';
    let mut i = 0;
    while i < b.len() {
        if key_char(b[i]) {
            let end = run(b, i, key_char);
            let word = &b[i..end];
            if word.len() == 40
                && word.iter().any(u8::is_ascii_lowercase)
                && word.iter().any(u8::is_ascii_uppercase)
                && b.get(end) != Some(&b'=')
            {
                return Some(Finding {
                    start: i,
                    end,
                    kind: SecretKind::AwsSecretKey,
                    merged: false,
                });
            }
            i = end;
        } else {
            i += 1;
        }
    }
    None
}

fn pem(b: &[u8], at: usize) -> Option<Finding> {
    let head_end = at + 80.min(b.len() - at);
    let header = &b[at..head_end];
    let marker = b"PRIVATE KEY-----";
    header.windows(marker.len()).position(|w| w == marker)?;
    let end = find(b, at + 10, b"-----END")
        .and_then(|e| find(b, e + 8, b"-----").map(|f| f + 5))
        .unwrap_or(b.len());
    Some(Finding {
        start: at,
        end,
        kind: SecretKind::PrivateKey,
        merged: false,
    })
}

fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// The password of `scheme://user:password@host`.
fn url_password(b: &[u8], at: usize) -> Option<Finding> {
    let scheme_start = (0..at)
        .rev()
        .find(|&i| !(b[i].is_ascii_alphanumeric() || b"+.-".contains(&b[i])))
        .map_or(0, |i| i + 1);
    if scheme_start == at || !b[scheme_start].is_ascii_alphabetic() {
        return None;
    }
    let auth = at + 3;
    let end = run(b, auth, |c| {
        !(c.is_ascii_whitespace() || b"/?#@\"'<>\0".contains(&c))
    });
    if b.get(end) != Some(&b'@') {
        return None;
    }
    let colon = b[auth..end].iter().position(|&c| c == b':')? + auth;
    (end > colon + 1).then_some(Finding {
        start: colon + 1,
        end,
        kind: SecretKind::UrlPassword,
        merged: false,
    })
}

fn emails(b: &[u8], emit: &mut dyn FnMut(Finding) -> ControlFlow<()>) -> ControlFlow<()> {
    let local = |c: u8| c.is_ascii_alphanumeric() || b"._%+-".contains(&c);
    let domain = |c: u8| c.is_ascii_alphanumeric() || c == b'.' || c == b'-';
    for at in memchr::memchr_iter(b'@', b) {
        let start = (0..at).rev().find(|&i| !local(b[i])).map_or(0, |i| i + 1);
        let mut end = run(b, at + 1, domain);
        while end > at + 1 && b[end - 1] == b'.' {
            end -= 1;
        }
        let host = &b[at + 1..end];
        let tld_ok = host.iter().rposition(|&c| c == b'.').is_some_and(|dot| {
            host.len() - dot > 2 && host[dot + 1..].iter().all(u8::is_ascii_alphabetic)
        });
        if start < at && tld_ok {
            emit(Finding {
                start,
                end,
                kind: SecretKind::Email,
                merged: false,
            })?;
        }
    }
    ControlFlow::Continue(())
}

fn ipv4s(b: &[u8], emit: &mut dyn FnMut(Finding) -> ControlFlow<()>) -> ControlFlow<()> {
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() && boundary_before(b, i, |c| is_alnum(c) || c == b'.') {
            if let Some(end) = ipv4_at(b, i) {
                emit(Finding {
                    start: i,
                    end,
                    kind: SecretKind::IpAddress,
                    merged: false,
                })?;
                i = end;
                continue;
            }
            i = run(b, i, |c| c.is_ascii_digit() || c == b'.');
        } else {
            i += 1;
        }
    }
    ControlFlow::Continue(())
}

fn ipv4_at(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    for part in 0..4 {
        let end = run(b, i, |c| c.is_ascii_digit());
        if end == i || end - i > 3 {
            return None;
        }
        let v: u32 = std::str::from_utf8(&b[i..end]).ok()?.parse().ok()?;
        if v > 255 {
            return None;
        }
        i = end;
        if part < 3 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
    }
    let next_is_part = b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit);
    // A CIDR suffix (`/24`) belongs to the address: it is a network, not a path.
    if b.get(i) == Some(&b'/') {
        let end = run(b, i + 1, |c| c.is_ascii_digit());
        if (i + 2..=i + 3).contains(&end) {
            i = end;
        }
    }
    (b.get(i).is_none_or(|c| !is_alnum(*c)) && !next_is_part).then_some(i)
}

/// True when `s` holds an AWS access key id: the event then has its AWS secret keys looked
/// for in every field, not only next to the id.
pub(crate) fn has_aws_access_key(s: &str) -> bool {
    let b = s.as_bytes();
    let finder = |needle: &[u8]| {
        memchr::memmem::find_iter(b, needle).any(|at| aws_access_key(b, at).is_some())
    };
    finder(b"AKIA") || finder(b"ASIA")
}

/// Every AWS secret-key-shaped word in `s` (see [`aws_secret_key`]).
pub(crate) fn aws_secret_keys(s: &str, out: &mut Vec<Finding>) {
    let b = s.as_bytes();
    let mut from = 0;
    while from < b.len() {
        match aws_secret_key(&b[from..]) {
            Some(mut f) => {
                f.start += from;
                f.end += from;
                from = f.end;
                out.push(f);
            }
            None => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::rules::default_key_rules;

    /// What lets the redactor leave canonical ids unscanned (`walk::skips_id`): no trigger can
    /// occur inside a lowercase hex id or UUID.
    #[test]
    fn no_trigger_can_occur_inside_a_canonical_id() {
        let id_byte = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-';
        for (p, _) in VALUE_TRIGGERS {
            assert!(!p.bytes().all(id_byte), "{p}");
        }
        // Key-value pairs start from a separator no canonical id holds.
        assert!(!id_byte(b'=') && !id_byte(b':'));
    }

    fn scanner() -> Scanner {
        Scanner::new(
            KeyRules::new(default_key_rules()).unwrap(),
            true,
            true,
            Vec::new(),
        )
        .unwrap()
    }

    fn kinds(s: &str) -> Vec<(String, SecretKind)> {
        let mut out = Vec::new();
        scanner().find_all(s, &mut out);
        out.into_iter()
            .map(|f| (s[f.start..f.end].to_owned(), f.kind))
            .collect()
    }

    #[test]
    fn finds_each_builtin_kind() {
        let jwt =
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        assert_eq!(
            kinds(&format!("token {jwt} end")),
            [(jwt.into(), SecretKind::Jwt)]
        );
        assert_eq!(
            kinds("Authorization: Bearer abcdefghij0123456789"),
            [(
                "Bearer abcdefghij0123456789".into(),
                SecretKind::SecretField
            )]
        );
        assert_eq!(
            kinds("sent Bearer abcdefghij0123456789"),
            [("abcdefghij0123456789".into(), SecretKind::BearerToken)]
        );
        assert_eq!(
            kinds("hdr Basic dXNlcjpwYXNz"),
            [("dXNlcjpwYXNz".into(), SecretKind::BasicCredential)]
        );
        let aws = kinds("id AKIAIOSFODNN7EXAMPLE with wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        assert_eq!(
            aws[0],
            ("AKIAIOSFODNN7EXAMPLE".into(), SecretKind::AwsAccessKey)
        );
        assert_eq!(
            aws[1],
            (
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
                SecretKind::AwsSecretKey
            )
        );
        let gh = format!("ghp_{}", "a1B2".repeat(9));
        assert_eq!(kinds(&gh), [(gh.clone(), SecretKind::GithubToken)]);
        let slack = "xoxb-123456789012-abcdefABCDEF";
        assert_eq!(kinds(slack), [(slack.into(), SecretKind::SlackToken)]);
        let stripe = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";
        assert_eq!(kinds(stripe), [(stripe.into(), SecretKind::StripeKey)]);
        let google = format!("AIza{}", "Sy-abcdefghijklmnopqrstuvwxyz01234");
        assert_eq!(kinds(&google), [(google.clone(), SecretKind::GoogleApiKey)]);
        let openai = "sk-proj-abcdefghijklmnopqrstuvwxyz012345";
        assert_eq!(kinds(openai), [(openai.into(), SecretKind::OpenAiKey)]);
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----";
        assert_eq!(
            kinds(&format!("x {pem} y")),
            [(pem.into(), SecretKind::PrivateKey)]
        );
        assert_eq!(
            kinds("postgres://app:s3cr3t@db:5432/x"),
            [("s3cr3t".into(), SecretKind::UrlPassword)]
        );
        assert_eq!(
            kinds("card 4111 1111 1111 1111."),
            [("4111 1111 1111 1111".into(), SecretKind::CardNumber)]
        );
        assert_eq!(
            kinds("mail alice@acme.test now"),
            [("alice@acme.test".into(), SecretKind::Email)]
        );
        assert_eq!(
            kinds("from 192.168.1.100:443"),
            [("192.168.1.100".into(), SecretKind::IpAddress)]
        );
        assert_eq!(
            kinds(r#"{"password": "hunter2", "user": "bob"}"#),
            [("hunter2".into(), SecretKind::Password)]
        );
        assert_eq!(
            kinds("login failed password=hunter2&user=bob"),
            [("hunter2".into(), SecretKind::Password)]
        );
    }

    #[test]
    fn ordinary_text_is_clean() {
        let s = scanner();
        for clean in [
            "0193f0c4-7a1b-7c3d-8e4f-0123456789ab",
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "2024-12-22T10:30:00.123Z",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "da39a3ee5e6b4b0d3255bfef95601890afd80709",
            "SGVsbG8gd29ybGQ=",
            "The bearer of this letter is welcome. Basic information follows.",
            "task-force meeting about risk-management",
            "max_tokens=100 tokens_used=42 session_id=abc",
            "1734863400123",
            "order 12345678901234 shipped",
            "https://example.com/path?q=1",
            "user@ no domain and @handle",
            "version 1.2.3.4.5",
            "key points: none",
        ] {
            assert!(!s.any(clean), "{clean}");
        }
    }

    #[test]
    fn cards_are_found_at_every_alignment() {
        let s = scanner();
        for pad in 1..16 {
            for card in [
                "4242424242424242",
                "4242 4242 4242 4242",
                "3782-822463-10005",
            ] {
                let text = format!("{}{card} x", "a".repeat(pad));
                // A letter right before the number makes it part of a word: not a card.
                assert!(!s.any(&text), "{text}");
                let text = format!("{} {card} x", "a".repeat(pad));
                let mut out = Vec::new();
                s.find_all(&text, &mut out);
                assert_eq!(out.len(), 1, "{text}");
                assert_eq!(&text[out[0].start..out[0].end], card);
            }
        }
    }

    #[test]
    fn key_value_pairs_in_any_spelling() {
        for text in [
            "PassWord=hunter2",
            "Passwd=hunter2",
            "pass=hunter2",
            "passphrase=hunter2",
            "pin: hunter2",
            r#""password"=>"hunter2""#,
            r#"{"pass":"hunter2"}"#,
            "token[0]=hunter2",
            "pass[]=hunter2",
            "otp=hunter2",
            "sig=hunter2",
            "bearer=hunter2",
            "access_key=hunter2",
        ] {
            let found = kinds(&format!("login failed {text} end"));
            assert_eq!(found.len(), 1, "{text}: {found:?}");
            assert_eq!(found[0].0, "hunter2", "{text}");
        }
        // Lowercase look-alikes of case-sensitive prefixes are not secrets.
        assert!(kinds("akiaiosfodnn7example eyjhbgcioijiuzi1nij9").is_empty());
    }
}
