//! The event's JSON contract: seed 000's example reads and writes back unchanged, and every
//! event we build round-trips through serde without loss.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use audit_core::{
    Actor, AuditEvent, Category, Context, HttpFacts, Outcome, Severity, Target, Timestamp,
};
use serde_json::{Value, json};

const SEED_EVENT: &str = include_str!("testdata/seed000_event.json");

#[test]
fn seed_000_example_round_trips_to_the_same_json() {
    let original: Value = serde_json::from_str(SEED_EVENT).unwrap();
    let event: AuditEvent = serde_json::from_str(SEED_EVENT).unwrap();
    assert_eq!(event.category, Category::Authentication);
    assert_eq!(event.result, Some(Outcome::Success));
    assert_eq!(event.organization_id(), Some("org-456"));
    assert_eq!(serde_json::to_value(&event).unwrap(), original);
}

#[test]
fn full_event_round_trips_and_uses_camel_case() {
    let event = AuditEvent::builder("data.index.delete")
        .timestamp("2024-12-22T10:30:00.123Z".parse().unwrap())
        .severity(Severity::Notice)
        .description("Index deleted")
        .actor(
            Actor::user("user-1")
                .with_email("a@acme.test")
                .with_role("admin")
                .with_ip_address("10.0.0.1")
                .with_user_agent("curl/8")
                .with_client_id("app_1"),
        )
        .target(Target::new("index", "products").with_name("Products"))
        .context(
            Context::default()
                .with_request_id("req-1")
                .with_trace_id("4bf92f3577b34da6a3ce929d0e0e4736")
                .with_span_id("00f067aa0ba902b7")
                .with_session_id("sess-1")
                .with_organization_id("acme")
                .with_service("vector-api"),
        )
        .http(
            HttpFacts::default()
                .with_method("DELETE")
                .with_route("/v1/indexes/{name}")
                .with_path("/v1/indexes/products")
                .with_status_code(204)
                .with_duration_ms(3.25),
        )
        .detail("vectors", 1200)
        .detail("nested", json!({"a": [1, 2, {"b": null}]}))
        .result(Outcome::Success)
        .build()
        .unwrap();
    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(json["eventType"], "data.index.delete");
    assert_eq!(json["timestamp"], "2024-12-22T10:30:00.123Z");
    assert_eq!(json["severity"], "notice");
    assert_eq!(json["actor"]["type"], "user");
    assert_eq!(json["actor"]["ipAddress"], "10.0.0.1");
    assert_eq!(json["actor"]["userAgent"], "curl/8");
    assert_eq!(json["actor"]["clientId"], "app_1");
    assert_eq!(json["context"]["organizationId"], "acme");
    assert_eq!(json["http"]["statusCode"], 204);
    assert_eq!(json["http"]["durationMs"], 3.25);
    assert_eq!(json["result"], "success");
    // The only null anywhere is the one the caller put in details.
    assert_eq!(
        serde_json::to_string(&event)
            .unwrap()
            .matches("null")
            .count(),
        1
    );
    let back: AuditEvent = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, event);
    assert_eq!(serde_json::to_value(&back).unwrap(), json);
}

#[test]
fn ids_are_uuid_v7_and_timestamps_have_milliseconds() {
    let event = AuditEvent::builder("auth.logout").build().unwrap();
    let json = serde_json::to_value(&event).unwrap();
    let id = json["id"].as_str().unwrap();
    let uuid = uuid::Uuid::parse_str(id).unwrap();
    assert_eq!(uuid.get_version_num(), 7);
    let ts = json["timestamp"].as_str().unwrap();
    assert_eq!(ts.len(), 24, "{ts}");
    assert!(ts.ends_with('Z'));
    let parsed: Timestamp = ts.parse().unwrap();
    assert_eq!(parsed, event.timestamp);
}

#[test]
fn invalid_json_is_a_clear_error() {
    let bad_type = r#"{"id":"x","timestamp":"2024-12-22T10:30:00.123Z","eventType":"Login",
        "category":"authentication","severity":"info"}"#;
    let err = serde_json::from_str::<AuditEvent>(bad_type).unwrap_err();
    assert!(err.to_string().contains("invalid event type"), "{err}");
    let bad_enum = r#"{"id":"x","timestamp":"2024-12-22T10:30:00.123Z","eventType":"auth.login",
        "category":"authn","severity":"info"}"#;
    assert!(serde_json::from_str::<AuditEvent>(bad_enum).is_err());
    let bad_time = r#"{"id":"x","timestamp":"yesterday","eventType":"auth.login",
        "category":"authentication","severity":"info"}"#;
    let err = serde_json::from_str::<AuditEvent>(bad_time).unwrap_err();
    assert!(err.to_string().contains("RFC 3339"), "{err}");
}
