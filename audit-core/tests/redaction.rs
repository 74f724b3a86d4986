//! Redaction proved by properties: generated secrets of every supported kind, placed at random
//! paths and positions, never survive serialisation, and `redactedFields` names where they
//! were; values that must stay readable are left alone; no input makes the redactor panic.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::sync::{Arc, Mutex};
use std::time::Duration;

use audit_core::redact::{Action, HmacKeys, Redactor, SecretKind};
use audit_core::{AuditEvent, Auditor, Batch, CapturedBody, HttpFacts, Sink, SinkError};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

// ------------------------------------------------------------------------------------------
// Secret generators. Each yields (the text to plant, the secret part that must vanish).

fn luhn_complete(mut digits: Vec<u8>) -> Vec<u8> {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    digits.push(((10 - sum % 10) % 10) as u8);
    digits
}

fn base64(input: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn secret() -> impl Strategy<Value = (String, String)> {
    let same = |s: String| (s.clone(), s);
    prop_oneof![
        (
            "[A-Za-z0-9_-]{17,40}",
            "[A-Za-z0-9_-]{10,60}",
            "[A-Za-z0-9_-]{20,43}"
        )
            .prop_map(move |(h, p, s)| same(format!("eyJ{h}.eyJ{p}.{s}"))),
        "[A-Za-z0-9._~+/-]{20,40}".prop_map(|t| (format!("Bearer {t}"), t)),
        ("[a-z]{3,10}", "[A-Za-z0-9!#]{6,16}").prop_map(|(u, p)| {
            let cred = base64(format!("{u}:{p}").as_bytes());
            (format!("Basic {cred}"), cred)
        }),
        "[A-Z0-9]{16}".prop_map(move |k| same(format!("AKIA{k}"))),
        "[A-Z0-9]{16}".prop_map(move |k| same(format!("ASIA{k}"))),
        ("[A-Z0-9]{16}", "[A-Za-z0-9/+]{38}").prop_map(|(k, s)| {
            let secret = format!("Qz{s}");
            (format!("aws AKIA{k} secret {secret}"), secret)
        }),
        "[A-Za-z0-9]{36}".prop_map(move |t| same(format!("ghp_{t}"))),
        "[A-Za-z0-9_]{82}".prop_map(move |t| same(format!("github_pat_{t}"))),
        ("[0-9]{12}", "[A-Za-z0-9]{24}").prop_map(move |(a, b)| same(format!("xoxb-{a}-{b}"))),
        "[A-Za-z0-9]{24,40}".prop_map(move |t| same(format!("sk_live_{t}"))),
        "[A-Za-z0-9]{24}".prop_map(move |t| same(format!("rk_live_{t}"))),
        "[A-Za-z0-9_-]{35}".prop_map(move |t| same(format!("AIza{t}"))),
        "[A-Za-z0-9]{48}".prop_map(move |t| same(format!("sk-{t}"))),
        "[A-Za-z0-9+/]{64}".prop_map(move |b| same(format!(
            "-----BEGIN PRIVATE KEY-----\n{b}\n{b}\n-----END PRIVATE KEY-----"
        ))),
        ("[a-z]{3,8}", "[A-Za-z0-9]{8,16}")
            .prop_map(|(u, p)| (format!("https://{u}:{p}@db.example.com/x"), p)),
        (
            prop::collection::vec(0u8..10, 14),
            prop::sample::select(vec!["", " ", "-"])
        )
            .prop_map(|(mut d, sep)| {
                d.insert(0, 4);
                let digits = luhn_complete(d);
                let text: String = digits
                    .chunks(4)
                    .map(|c| c.iter().map(|d| char::from(b'0' + d)).collect::<String>())
                    .collect::<Vec<_>>()
                    .join(sep);
                (text.clone(), text)
            }),
        "[A-Za-z0-9]{6,20}".prop_map(|p| (format!("password={p}"), p)),
        (
            prop::sample::select(vec![
                "PassWord=",
                "Passwd=",
                "pass=",
                "passphrase=",
                "pin: ",
                "\"password\"=>\"",
                "{\"pass\":\"",
                "{\"\\u0070assword\":\"",
                "token[0]=",
                "pass[]=",
                "otp=",
                "signature=",
                "jwt=",
                "access_key=",
            ]),
            "[A-Za-z0-9]{6,20}"
        )
            .prop_map(|(k, p)| (format!("{k}{p}"), p)),
        "[A-Za-z0-9]{6,20}".prop_map(|p| (format!("{{\"api_key\": \"{p}\"}}"), p)),
    ]
}

/// Words that never form or touch a secret.
fn filler() -> impl Strategy<Value = String> {
    "[a-z]{0,8}( [a-z]{1,8}){0,3}"
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// How a planted string is wrapped.
#[derive(Debug, Clone)]
enum Wrap {
    Alone,
    InText(String, String),
    UrlEncoded,
    DoubleUrlEncoded,
    /// The text as the key of a JSON object held in a string.
    JsonKey,
    /// The text as the first of two values of a duplicated JSON key.
    DuplicateKey,
}

fn wrap() -> impl Strategy<Value = Wrap> {
    prop_oneof![
        Just(Wrap::Alone),
        (filler(), filler()).prop_map(|(a, b)| Wrap::InText(a, b)),
        Just(Wrap::UrlEncoded),
        Just(Wrap::DoubleUrlEncoded),
        Just(Wrap::JsonKey),
        Just(Wrap::DuplicateKey),
    ]
}

fn apply(w: &Wrap, text: &str) -> String {
    match w {
        Wrap::Alone => text.to_owned(),
        Wrap::InText(a, b) => format!("{a} {text} {b}"),
        Wrap::UrlEncoded => percent_encode(text),
        Wrap::DoubleUrlEncoded => percent_encode(&percent_encode(text)),
        Wrap::JsonKey => json!({ text: 1 }).to_string(),
        Wrap::DuplicateKey => format!(r#"{{"a":{},"a":"x"}}"#, json!(text)),
    }
}

/// Where in the event a string is planted; returns the path redaction should report.
#[derive(Debug, Clone)]
enum Place {
    Details(Vec<String>),
    DetailsArray(Vec<String>, usize),
    Description,
    UserAgent,
    Header(String),
    Query(String),
    /// The text as a query parameter's name.
    QueryName,
    /// The text as a key of `details`.
    DetailsKey,
    FormBody(String),
    JsonBody(Vec<String>),
}

/// Keys that are not secret-like, so the reported path is the planted one.
fn plain_key() -> BoxedStrategy<String> {
    prop::sample::select(vec![
        "note", "info", "meta", "user", "items", "payload", "context", "x", "data", "extra",
    ])
    .prop_map(str::to_owned)
    .boxed()
}

fn place() -> impl Strategy<Value = Place> {
    let keys = prop::collection::vec(plain_key(), 1..4);
    prop_oneof![
        keys.clone().prop_map(Place::Details),
        (keys.clone(), 0usize..3).prop_map(|(k, i)| Place::DetailsArray(k, i)),
        Just(Place::Description),
        Just(Place::UserAgent),
        prop::sample::select(vec!["x-custom", "x-forwarded-client-cert", "referer"])
            .prop_map(|h| Place::Header(h.to_owned())),
        plain_key().prop_map(Place::Query),
        Just(Place::QueryName),
        Just(Place::DetailsKey),
        plain_key().prop_map(Place::FormBody),
        keys.prop_map(Place::JsonBody),
    ]
}

fn nest(keys: &[String], leaf: Value) -> Value {
    keys.iter()
        .rev()
        .fold(leaf, |acc, k| json!({ k.clone(): acc }))
}

fn plant(place: &Place, text: &str) -> (AuditEvent, String) {
    let b = AuditEvent::builder("data.item.update").detail("count", 3);
    let (b, path) = match place {
        Place::Details(keys) => {
            let Value::Object(m) = nest(keys, Value::String(text.into())) else {
                unreachable!()
            };
            let mut merged = m;
            merged.insert("count".into(), json!(3));
            (b.details(merged), format!("details.{}", keys.join(".")))
        }
        Place::DetailsArray(keys, i) => {
            let mut items = vec![json!("ok"); 3];
            items[*i] = Value::String(text.into());
            let Value::Object(m) = nest(keys, Value::Array(items)) else {
                unreachable!()
            };
            (b.details(m), format!("details.{}[{i}]", keys.join(".")))
        }
        Place::Description => (b.description(text), "description".into()),
        Place::UserAgent => (
            b.actor(audit_core::Actor::user("u1").with_user_agent(text)),
            "actor.userAgent".into(),
        ),
        Place::Header(h) => (
            b.http(HttpFacts::default().with_header(h, text)),
            format!("http.headers.{h}"),
        ),
        Place::Query(k) => (
            b.http(HttpFacts::default().with_query(format!("page=2&{k}={}", percent_encode(text)))),
            format!("http.query.{k}"),
        ),
        Place::QueryName => (
            b.http(HttpFacts::default().with_query(format!("page=2&{}=1", percent_encode(text)))),
            "http.query".into(),
        ),
        Place::DetailsKey => {
            let mut m = serde_json::Map::new();
            m.insert(text.into(), json!("v"));
            (b.details(m), "details".into())
        }
        Place::FormBody(k) => (
            b.http(HttpFacts::default().with_request_body(CapturedBody::new(
                Some("application/x-www-form-urlencoded"),
                100,
                Value::String(format!("a=1&{k}={}", percent_encode(text))),
            ))),
            format!("http.requestBody.{k}"),
        ),
        Place::JsonBody(keys) => (
            b.http(HttpFacts::default().with_request_body(CapturedBody::new(
                Some("application/json"),
                100,
                nest(keys, Value::String(text.into())),
            ))),
            format!("http.requestBody.content.{}", keys.join(".")),
        ),
    };
    (b.build().unwrap(), path)
}

/// Every string (keys included) of the serialised event, after a JSON round trip.
fn all_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|v| all_strings(v, out)),
        Value::Object(m) => m.iter().for_each(|(k, v)| {
            out.push(k.clone());
            all_strings(v, out);
        }),
        Value::Number(n) => out.push(n.to_string()),
        _ => {}
    }
}

fn assert_gone(event: &AuditEvent, secret: &str) -> Result<(), TestCaseError> {
    let text = serde_json::to_string(event).unwrap();
    let value: Value = serde_json::from_str(&text).unwrap();
    let mut strings = Vec::new();
    all_strings(&value, &mut strings);
    let encoded = percent_encode(secret);
    for s in &strings {
        prop_assert!(!s.contains(secret), "secret {secret:?} survives in {s:?}");
        prop_assert!(!s.contains(&encoded), "encoded secret survives in {s:?}");
    }
    prop_assert!(!text.contains(secret));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn secrets_never_survive_and_their_path_is_named(
        (text, secret) in secret(),
        w in wrap(),
        place in place(),
    ) {
        let planted = apply(&w, &text);
        let (mut event, path) = plant(&place, &planted);
        prop_assert!(Redactor::default().redact(&mut event));
        assert_gone(&event, &secret)?;
        prop_assert!(
            event.redacted_fields.iter().any(|p| path == *p
                || path.starts_with(&format!("{p}."))
                || p.starts_with(&format!("{path}."))),
            "path {path} not in {:?}", event.redacted_fields
        );
        // Redaction is stable: a second pass finds nothing more.
        let before = event.clone();
        prop_assert!(!Redactor::default().redact(&mut event));
        prop_assert_eq!(event, before);
    }

    #[test]
    fn readable_values_stay_readable(values in prop::collection::vec(clean_value(), 1..8)) {
        let mut details = Map::new();
        for (i, v) in values.iter().enumerate() {
            details.insert(format!("field{i}"), Value::String(v.clone()));
        }
        let mut event = AuditEvent::builder("data.item.read")
            .details(details)
            .request_id(values[0].clone())
            .description(values.join(" "))
            .build()
            .unwrap();
        let before = event.clone();
        prop_assert!(!Redactor::default().redact(&mut event), "{:?}", event.redacted_fields);
        prop_assert_eq!(event, before);
    }

    #[test]
    fn arbitrary_input_never_panics(
        details in arbitrary_json(),
        text in "\\PC{0,200}",
        bytes in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let lossy = String::from_utf8_lossy(&bytes).into_owned();
        let Value::Object(details) = json!({ "d": details, "t": text, "b": lossy }) else {
            unreachable!()
        };
        let mut event = AuditEvent::builder("data.item.read")
            .details(details)
            .description(text.clone())
            .http(HttpFacts::default().with_query(lossy).with_header("x", text))
            .build()
            .unwrap();
        let r = Redactor::builder().mask_emails(true).mask_ips(true).build().unwrap();
        r.redact(&mut event);
        let json = serde_json::to_string(&event).unwrap();
        let _: AuditEvent = serde_json::from_str(&json).unwrap();
    }
}

fn clean_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
        any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).simple().to_string()),
        "[0-9a-f]{32}",
        "[0-9a-f]{16}",
        "[0-9a-f]{40}",
        "[0-9a-f]{64}",
        (
            2000u32..2100,
            1u32..13,
            1u32..29,
            0u32..24,
            0u32..60,
            0u32..1000
        )
            .prop_map(|(y, mo, d, h, mi, ms)| format!(
                "{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:07.{ms:03}Z"
            )),
        "[a-z]{2,10}( [a-z]{2,10}){0,6}".prop_map(|s| base64(s.as_bytes())),
        "[a-z]{2,10}( [a-z]{2,10}){0,6}",
        "[a-z]{2,8}@[a-z]{2,8}\\.(com|test|org)",
        "/v1/indexes/[a-z]{2,8}/vectors/[0-9]{1,6}",
        "req-[a-z0-9]{8}",
        "1[0-9]{12}",
    ]
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        "\\PC{0,40}".prop_map(Value::String),
        secret().prop_map(|(t, _)| Value::String(t)),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_-]{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

// ------------------------------------------------------------------------------------------
// Examples a reader can check by eye.

#[test]
fn key_names_at_any_depth_in_any_spelling() {
    let mut e = AuditEvent::builder("auth.login.failure")
        .details(
            json!({
                "user": "bob",
                "Password": "hunter2",
                "nested": {"deeper": [{"Client-Secret": "cs", "refreshToken": "rt"}]},
                "max_tokens": 100,
                "sessionId": "sess-1"
            })
            .as_object()
            .unwrap()
            .clone(),
        )
        .http(
            HttpFacts::default()
                .with_header("authorization", "Basic dXNlcjpwYXNz")
                .with_header("cookie", "sid=abc")
                .with_header("accept", "application/json")
                .with_query("q=hello+world&access_token=abc%2Fdef"),
        )
        .build()
        .unwrap();
    assert!(Redactor::default().redact(&mut e));
    assert_eq!(e.details["Password"], "[REDACTED]");
    assert_eq!(
        e.details["nested"]["deeper"][0]["Client-Secret"],
        "[REDACTED]"
    );
    assert_eq!(
        e.details["nested"]["deeper"][0]["refreshToken"],
        "[REDACTED]"
    );
    assert_eq!(e.details["max_tokens"], 100);
    assert_eq!(e.details["sessionId"], "sess-1");
    let http = e.http.as_ref().unwrap();
    assert_eq!(http.headers["authorization"], "[REDACTED]");
    assert_eq!(http.headers["accept"], "application/json");
    assert_eq!(
        http.query.as_deref(),
        Some("q=hello+world&access_token=%5BREDACTED%5D")
    );
    let mut paths = e.redacted_fields.clone();
    paths.sort();
    assert_eq!(
        paths,
        [
            "details.Password",
            "details.nested.deeper[0].Client-Secret",
            "details.nested.deeper[0].refreshToken",
            "http.headers.authorization",
            "http.headers.cookie",
            "http.query.access_token",
        ]
    );
}

#[test]
fn actions_are_configurable_and_hashes_correlate() {
    let keys = HmacKeys::new("2026-11", b"a-32-byte-key-for-hmac-testing!!").unwrap();
    let r = Redactor::builder()
        .hmac_keys(keys)
        .action(SecretKind::SecretField, Action::Hash)
        .action(SecretKind::Jwt, Action::Remove)
        .action(SecretKind::GithubToken, Action::Partial)
        .build()
        .unwrap();
    let gh = format!("ghp_{}", "x".repeat(32) + "WXYZ");
    let mut a = AuditEvent::builder("admin.api_key.create")
        .detail("api_key", "key-123")
        .detail(
            "note",
            format!("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig here, gh {gh}"),
        )
        .detail("password", "pw")
        .build()
        .unwrap();
    let mut b = a.clone();
    r.redact(&mut a);
    r.redact(&mut b);
    let token = r.token_for("key-123", "2026-11").unwrap();
    assert!(token.starts_with("hmac-sha256:2026-11:"));
    assert_eq!(a.details["api_key"], token.as_str());
    assert_eq!(
        a.details["api_key"], b.details["api_key"],
        "same value, same token"
    );
    assert_eq!(a.details["note"], "jwt  here, gh ****WXYZ");
    assert_eq!(
        a.details["password"], "[REDACTED]",
        "passwords are never hashed"
    );
    assert!(r.token_for("x", "unknown").is_err());
}

#[test]
fn removal_drops_the_key_and_bodies_lose_their_hash() {
    let r = Redactor::builder()
        .action(SecretKind::Password, Action::Remove)
        .build()
        .unwrap();
    let mut body = CapturedBody::new(
        Some("application/json"),
        200_000,
        json!({"email": "a@b.test", "password": "hunter2"}),
    );
    body.truncated = true;
    body.sha256 = Some("ab".repeat(32).into());
    let mut e = AuditEvent::builder("auth.login.success")
        .detail("password", "hunter2")
        .http(HttpFacts::default().with_request_body(body))
        .build()
        .unwrap();
    r.redact(&mut e);
    assert!(e.details.get("password").is_none());
    let body = e.http.as_ref().unwrap().request_body.as_ref().unwrap();
    assert!(body.sha256.is_none());
    assert_eq!(body.content.as_ref().unwrap()["email"], "a@b.test");
    assert!(
        e.redacted_fields
            .contains(&"http.requestBody.sha256".to_owned())
    );
    assert!(!serde_json::to_string(&e).unwrap().contains("hunter2"));
}

#[test]
fn optional_email_and_ip_masking() {
    let r = Redactor::builder()
        .mask_emails(true)
        .mask_ips(true)
        .build()
        .unwrap();
    let mut e = AuditEvent::builder("auth.login.success")
        .actor(
            audit_core::Actor::user("u1")
                .with_email("alice@acme.test")
                .with_ip_address("2001:db8:85a3::8a2e:370:7334"),
        )
        .description("from 192.0.2.44 as bob@globex.test")
        .build()
        .unwrap();
    r.redact(&mut e);
    let actor = e.actor.as_ref().unwrap();
    assert_eq!(actor.email.as_deref(), Some("a***@acme.test"));
    assert_eq!(actor.ip_address.as_deref(), Some("2001:db8:85a3::/48"));
    assert_eq!(
        e.description.as_deref(),
        Some("from 192.0.2.0/24 as b***@globex.test")
    );
    // Off by default.
    let mut plain = AuditEvent::builder("auth.logout")
        .description("bob@globex.test from 192.0.2.44")
        .build()
        .unwrap();
    assert!(!Redactor::default().redact(&mut plain));
}

#[test]
fn deep_nesting_is_bounded() {
    // Redaction of a value nested 5,000 deep must neither recurse that deep nor drop it
    // recursively; run it on a thread with an ordinary 2 MiB stack to prove it.
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(deep_nesting_on_a_small_stack)
        .unwrap()
        .join()
        .unwrap();
}

fn deep_nesting_on_a_small_stack() {
    let mut v = json!("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln");
    for _ in 0..5_000 {
        v = Value::Array(vec![v]);
    }
    let mut e = AuditEvent::builder("data.item.read")
        .detail("deep", v)
        .build()
        .unwrap();
    assert!(Redactor::default().redact(&mut e));
    let text = serde_json::to_string(&e).unwrap();
    assert!(text.contains("[REDACTED: nested too deep]"));
    assert!(!text.contains("eyJ"));
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let err = Redactor::builder().pattern("x", "(").build().unwrap_err();
    assert!(err.to_string().contains("\"x\""), "{err}");
    let err = Redactor::builder()
        .action(SecretKind::Jwt, Action::Hash)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("no HMAC keys"), "{err}");
    let err = Redactor::builder()
        .action(SecretKind::Password, Action::Partial)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("never kept"), "{err}");
}

// ------------------------------------------------------------------------------------------
// Through the pipeline: no sink can see the original.

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<String>>>);

impl Sink for Collect {
    fn name(&self) -> &str {
        "collect"
    }
    async fn deliver(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let mut out = self.0.lock().unwrap();
        for e in batch {
            out.push(serde_json::to_string(e).unwrap());
        }
        Ok(())
    }
}

#[test]
fn the_pipeline_redacts_before_any_sink() {
    let sink = Collect::default();
    let auditor = Auditor::builder().sink(sink.clone()).build().unwrap();
    auditor
        .record(
            AuditEvent::builder("auth.password.change")
                .detail("old", "hunter2")
                .detail("new_password", "correct horse battery staple")
                .description("used token ghp_abcdefghijklmnopqrstuvwxyz0123456789")
                .build()
                .unwrap(),
        )
        .unwrap();
    assert!(auditor.shutdown_blocking(Duration::from_secs(5)).complete);
    let lines = sink.0.lock().unwrap().clone();
    assert_eq!(lines.len(), 1);
    let line = &lines[0];
    assert!(!line.contains("correct horse"), "{line}");
    assert!(!line.contains("ghp_abcdef"), "{line}");
    let v: Value = serde_json::from_str(line).unwrap();
    assert_eq!(
        v["redactedFields"],
        json!(["description", "details.new_password"])
    );
    // A key named `old` is not secret-like: the default list cannot know every schema,
    // which is why it can be extended.
    assert_eq!(v["details"]["old"], "hunter2");
}

#[test]
fn secrets_that_look_like_redaction_output_are_still_replaced() {
    let r = Redactor::default();
    let mut e = AuditEvent::builder("auth.password.change")
        .detail("password", "[HUNTER2]")
        .detail("note", "password=[hunter2] and password=****abcd")
        .http(HttpFacts::default().with_query("ssn=%5B123-45-6789%5D"))
        .build()
        .unwrap();
    assert!(r.redact(&mut e));
    let text = serde_json::to_string(&e).unwrap();
    for secret in ["HUNTER2", "hunter2", "****abcd", "123-45-6789"] {
        assert!(!text.contains(secret), "{secret} kept: {text}");
    }
}

#[test]
fn redacting_redacted_output_changes_nothing() {
    // Found by the fuzz target: an empty secret parameter.
    let r = Redactor::default();
    let mut e = AuditEvent::builder("data.item.read")
        .http(HttpFacts::default().with_query("ssn="))
        .detail("token", "")
        .build()
        .unwrap();
    assert!(r.redact(&mut e));
    let once = e.clone();
    assert!(!r.redact(&mut e));
    assert_eq!(e, once);
}

#[test]
fn overlapping_findings_are_masked_whole_and_stay_fixed() {
    // Found by the fuzz target: `@`-chains are not addresses; merged spans are not kept
    // partially.
    let r = Redactor::builder().mask_emails(true).build().unwrap();
    for text in ["w@.lw@.lk", "a@b.co@c.de", "x a@b.co b@c.de y"] {
        let mut e = AuditEvent::builder("data.item.read")
            .description(text)
            .build()
            .unwrap();
        r.redact(&mut e);
        let once = e.clone();
        assert!(!r.redact(&mut e), "{text} -> {:?}", once.description);
    }
}

/// Inputs the fuzz target (`fuzz/fuzz_targets/redact.rs`) once failed on, replayed with
/// the same invariants: no panic, the result reads back, a second pass changes nothing.
#[test]
fn fuzz_regressions_stay_fixed() {
    let r = Redactor::builder()
        .mask_emails(true)
        .mask_ips(true)
        .pattern("ticket", r"\bTCK-\d{4,}\b")
        .build()
        .unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/redact-fuzz");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&data).into_owned();
        let mut b = AuditEvent::builder("data.fuzz.input")
            .description(text.clone())
            .actor(
                audit_core::Actor::user("u")
                    .with_ip_address(text.clone())
                    .with_user_agent(text.clone()),
            )
            .http(
                HttpFacts::default()
                    .with_query(text.clone())
                    .with_header("x-fuzz", text.clone())
                    .with_request_body(CapturedBody::new(
                        Some("application/x-www-form-urlencoded"),
                        data.len() as u64,
                        Value::String(text.clone()),
                    )),
            );
        b = match serde_json::from_slice::<Value>(&data) {
            Ok(Value::Object(d)) => b.details(d),
            _ => b.detail("text", text),
        };
        let mut e = b.build().unwrap();
        r.redact(&mut e);
        let back: AuditEvent = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        let mut again = back.clone();
        assert!(!r.redact(&mut again), "{:?}", again.redacted_fields);
        assert_eq!(again, back);
        seen += 1;
    }
    assert!(seen >= 5);
}

/// Ids in the forms the layer mints and W3C `traceparent` carries are not scanned: a span id
/// of sixteen decimal digits that also passes the card check stays whole (it was masked as a
/// card before). An id in any other form is scanned, and custom patterns see every id.
#[test]
fn canonical_ids_are_left_whole_and_other_ids_are_scanned() {
    let card_like = "4111111111111111"; // a valid span id, and a Luhn-valid card number
    let event = |request_id: &str| {
        AuditEvent::builder("data.item.read")
            .request_id(request_id)
            .trace_id(format!("{card_like}{card_like}"))
            .span_id(card_like)
            .build()
            .unwrap()
    };
    let context = |e: &AuditEvent| serde_json::to_value(e.context.as_ref().unwrap()).unwrap();

    let mut e = event("0193f0c4-7a1b-7c3d-8e4f-0123456789ab");
    let before = context(&e);
    assert!(
        !Redactor::default().redact(&mut e),
        "{:?}",
        e.redacted_fields
    );
    assert_eq!(context(&e), before);

    // Not canonical: a request id a client chose is scanned like any text.
    let mut e = event(&format!("tok-{card_like}"));
    assert!(Redactor::default().redact(&mut e));
    assert_eq!(e.redacted_fields, ["context.requestId"]);
    assert_eq!(context(&e)["spanId"], card_like);

    // A custom pattern is the user's own rule: it applies to canonical ids too.
    let custom = Redactor::builder()
        .pattern("hex-id", "[0-9a-f]{16}")
        .build()
        .unwrap();
    let mut e = event("0193f0c4-7a1b-7c3d-8e4f-0123456789ab");
    assert!(custom.redact(&mut e));
    assert!(
        e.redacted_fields.contains(&"context.spanId".to_owned()),
        "{:?}",
        e.redacted_fields
    );
}

/// The carriers a hostile client used to get secrets past redaction, each replayed.
#[test]
fn hostile_carriers_are_redacted() {
    let ghp = format!("ghp_{}", "a1B2".repeat(9));
    let akia = "AKIAZAZ7KJX7A2OYCWK1";
    let sk = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ";
    let opaque = "Zq8vT2mK9xLp";
    let mut cases: Vec<(AuditEvent, String)> = Vec::new();
    let query = |q: String| {
        AuditEvent::builder("data.index.read")
            .http(HttpFacts::default().with_query(q))
            .build()
            .unwrap()
    };
    // Query parameter names.
    cases.push((query(ghp.clone()), ghp));
    cases.push((query(format!("{akia}=1")), akia.to_owned()));
    // JSON keys and duplicate keys in a string field.
    let ua = |ua: String| {
        AuditEvent::builder("data.index.read")
            .actor(audit_core::Actor::user("u").with_user_agent(ua))
            .build()
            .unwrap()
    };
    cases.push((ua(format!(r#"{{"{sk}":1}}"#)), sk.to_owned()));
    cases.push((ua(format!(r#"{{"a":"{jwt}","a":"x"}}"#)), jwt.to_owned()));
    let email = AuditEvent::builder("auth.login.failure")
        .actor(audit_core::Actor::default().with_email(format!(r#"{{"a":"{jwt}","a":"x"}}"#)))
        .build()
        .unwrap();
    cases.push((email, jwt.to_owned()));
    // Key names whose values no detector can recognise.
    for key in [
        "token[]",
        "token[0]",
        "user[token]",
        "pass[]",
        "pwd[]",
        "session[]",
        "token%20",
        "otp",
        "signature",
        "sig",
        "jwt",
        "bearer",
        "access_key",
        "%2570assword",
    ] {
        cases.push((query(format!("a=1&{key}={opaque}")), opaque.to_owned()));
        let details = AuditEvent::builder("data.index.read")
            .detail(key, opaque)
            .build()
            .unwrap();
        cases.push((details, opaque.to_owned()));
    }
    // Key-value pairs inside free text.
    for text in [
        format!("PassWord={opaque}"),
        format!("Passwd={opaque}"),
        format!("pass={opaque}"),
        format!("passphrase={opaque}"),
        format!("pin: {opaque}"),
        format!(r#""password"=>"{opaque}""#),
        format!(r#"{{"pass":"{opaque}"}}"#),
        format!(r#"{{"\u0070assword":"{opaque}"}}"#),
        format!(r#"login {{"\u0070assword":"{opaque}"}}"#),
    ] {
        let e = AuditEvent::builder("data.index.read")
            .description(text.clone())
            .build()
            .unwrap();
        cases.push((e, opaque.to_owned()));
    }
    // A credential encoded twice, and an AWS key pair sent in two fields.
    let e = AuditEvent::builder("data.index.read")
        .detail("dsn", "postgres%253A%252F%252Fapp%253As3cr3t%2540db")
        .build()
        .unwrap();
    cases.push((e, "s3cr3t".to_owned()));
    let aws_secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let e = AuditEvent::builder("data.index.read")
        .detail("id", "AKIAIOSFODNN7EXAMPLE")
        .detail("other", aws_secret)
        .build()
        .unwrap();
    cases.push((e, aws_secret.to_owned()));
    // An event type a rule or handler built from client text.
    let e = AuditEvent::builder("data.sk_live_4ec39hqlyjwdarjtt1zdp7dc.read")
        .build()
        .unwrap();
    cases.push((e, "4ec39hqlyjwdarjtt1zdp7dc".to_owned()));

    for (mut event, secret) in cases {
        let before = serde_json::to_string(&event).unwrap();
        assert!(Redactor::default().redact(&mut event), "{before}");
        let after = serde_json::to_string(&event).unwrap();
        assert!(!after.contains(&secret), "{secret} kept in {after}");
        assert!(!event.redacted_fields.is_empty(), "{after}");
        let again = event.clone();
        assert!(
            !Redactor::default().redact(&mut event),
            "not stable: {after}"
        );
        assert_eq!(event, again);
    }
}
