//! OCSF, ECS and CEF output checked against the receivers' own definitions: the OCSF 1.8.0
//! JSON Schemas of each class, the ECS 9.4.0 allowed values and field types, and a CEF
//! parser that undoes the escapes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use audit_core::{Actor, AuditEvent, HttpFacts, Outcome, Severity, Target};
use audit_sinks::format::cef::{self, Cef};
use audit_sinks::format::ecs;
use audit_sinks::format::ocsf::{Class, Ocsf, Product, class_of};
use serde_json::Value;

fn load(path: &str) -> Value {
    let text = std::fs::read_to_string(format!("{}/tests/data/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A varied set of events: every event type of the seeds' catalogue, with and without actor,
/// target, HTTP facts and context, in every outcome.
fn events() -> Vec<AuditEvent> {
    let types = [
        "auth.login.success",
        "auth.login.failure",
        "auth.logout",
        "auth.token.refresh",
        "auth.mfa.enroll",
        "auth.password.change",
        "auth.password.reset",
        "auth.session.expire",
        "admin.role.assign",
        "admin.permission.revoke",
        "admin.member.invite",
        "admin.user.create",
        "admin.user.disable",
        "admin.api_key.create",
        "admin.api_key.revoke",
        "admin.config.change",
        "data.index.create",
        "data.vector.read",
        "data.vector.update",
        "data.vector.delete",
        "data.search.query",
        "data.bulk.import",
        "data.report.export",
        "data.document.share",
        "security.access.denied",
        "security.rate_limit.triggered",
        "system.audit.dropped",
        "system.retention.purge",
    ];
    let mut out = Vec::new();
    for (i, t) in types.iter().enumerate() {
        for variant in 0..4 {
            let mut b = AuditEvent::builder(*t)
                .result(Outcome::ALL[(i + variant) % Outcome::ALL.len()])
                .severity(Severity::ALL[(i + variant) % Severity::ALL.len()]);
            if variant > 0 {
                b = b
                    .actor(
                        Actor::user(format!("user-{i}"))
                            .with_email("alice@acme.test")
                            .with_role("admin")
                            .with_ip_address("203.0.113.7")
                            .with_user_agent("curl/8.1"),
                    )
                    .organization_id("acme")
                    .request_id("01a20197-4d3a-77f3-acd9-842c4ec391f9")
                    .trace_id("4bf92f3577b34da6a3ce929d0e0e4736")
                    .span_id("00f067aa0ba902b7")
                    .service("vector-api")
                    .description(format!("Did {t}"))
                    .detail("role", "editor")
                    .detail("count", 3);
            }
            if variant == 3 {
                // An anonymous caller refused (a 401): known only by its kind and address.
                b = b.actor(
                    Actor::default()
                        .with_kind("anonymous")
                        .with_ip_address("198.51.100.4"),
                );
            }
            if variant == 2 {
                b = b
                    .target(
                        Target::new(if t.contains("user") { "user" } else { "vector" }, "t-1")
                            .with_name("Thing"),
                    )
                    .http(
                        HttpFacts::default()
                            .with_status_code(200)
                            .with_duration_ms(12.5),
                    );
                let mut e = b.build().unwrap();
                let h = e.http.as_mut().unwrap();
                h.method = Some("post".into());
                h.path = Some("/v1/things/t-1".into());
                h.route = Some("/v1/things/{id}".into());
                out.push(e);
            } else {
                out.push(b.build().unwrap());
            }
        }
    }
    out
}

#[test]
fn ocsf_output_validates_against_the_ocsf_1_8_schemas() {
    let schemas: Vec<(Class, &str)> = vec![
        (Class::Authentication, "ocsf/authentication.schema.json"),
        (Class::AccountChange, "ocsf/account_change.schema.json"),
        (Class::UserAccess, "ocsf/user_access.schema.json"),
        (
            Class::WebResourcesActivity,
            "ocsf/web_resources_activity.schema.json",
        ),
        (Class::ApiActivity, "ocsf/api_activity.schema.json"),
    ];
    let validators: Vec<(Class, jsonschema::Validator, Value)> = schemas
        .into_iter()
        .map(|(c, path)| {
            let schema = load(path);
            let constraints = schema["x-ocsf-constraints"].clone();
            (c, jsonschema::draft7::new(&schema).unwrap(), constraints)
        })
        .collect();
    let enc = Ocsf::new(Product::new("vector-api", "Acme", "1.4.2"));
    let mut seen = std::collections::BTreeSet::new();
    for e in events() {
        let class = class_of(&e);
        seen.insert(class.uid());
        let out = enc.encode(&e);
        let (_, validator, constraints) = validators.iter().find(|(c, _, _)| *c == class).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&out)
            .map(|err| format!("{err} at {}", err.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{} as {class:?}: {errors:?}\n{out:#}",
            e.event_type
        );
        // The class's at_least_one constraints (not expressible in the JSON Schema).
        if let Some(groups) = constraints["class"]["at_least_one"].as_array() {
            assert!(
                groups.iter().any(|k| !out[k.as_str().unwrap()].is_null()),
                "{}: needs one of {groups:?}",
                e.event_type
            );
        }
        assert_eq!(
            out["type_uid"],
            out["class_uid"].as_u64().unwrap() * 100 + out["activity_id"].as_u64().unwrap()
        );
        // The actor object needs one of its identifying members; a user one of its own.
        let actor = &out["actor"];
        assert!(
            [
                "user",
                "session",
                "app_name",
                "process",
                "invoked_by",
                "app_uid"
            ]
            .iter()
            .any(|k| !actor[k].is_null())
        );
        if let Some(user) = actor.get("user") {
            assert!(
                ["account", "name", "uid"]
                    .iter()
                    .any(|k| !user[k].is_null()),
                "actor.user needs one of account, name, uid: {out}"
            );
        }
        if let Some(user) = out.get("user") {
            assert!(
                ["account", "name", "uid"]
                    .iter()
                    .any(|k| !user[k].is_null()),
                "{out}"
            );
        }
        assert_eq!(out["metadata"]["version"], "1.8.0");
    }
    assert_eq!(seen.len(), 5, "every class is exercised: {seen:?}");
}

#[test]
fn ocsf_classes_and_activities_follow_the_event_type() {
    let enc = Ocsf::default();
    let check = |t: &str, class: u64, activity: u64| {
        let e = AuditEvent::builder(t).build().unwrap();
        let out = enc.encode(&e);
        assert_eq!(
            (
                out["class_uid"].as_u64().unwrap(),
                out["activity_id"].as_u64().unwrap()
            ),
            (class, activity),
            "{t}"
        );
    };
    check("auth.login.success", 3002, 1);
    check("auth.logout", 3002, 2);
    check("auth.password.change", 3001, 3);
    check("auth.mfa.enroll", 3001, 10);
    check("admin.role.assign", 3005, 1);
    check("admin.permission.revoke", 3005, 2);
    check("admin.api_key.create", 3001, 1);
    check("admin.api_key.revoke", 3001, 6);
    check("data.vector.delete", 6001, 4);
    check("data.search.query", 6001, 5);
    check("data.bulk.import", 6001, 6);
    check("admin.config.change", 6003, 3);
    check("security.access.denied", 6003, 99);
}

#[test]
fn ecs_output_uses_allowed_values_and_field_types() {
    let ref_ = load("ecs/ecs-audit-fields.json");
    let cat = &ref_["categorization"];
    let allowed = |field: &str| -> Vec<String> {
        cat[field]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    let fields = &ref_["fields"];
    let base = &ref_["base_fields"];
    for e in events() {
        let doc = ecs::encode(&e);
        let event = &doc["event"];
        assert!(allowed("event.kind").contains(&event["kind"].as_str().unwrap().to_owned()));
        assert!(allowed("event.outcome").contains(&event["outcome"].as_str().unwrap().to_owned()));
        let categories = event["category"].as_array().unwrap();
        let types = event["type"].as_array().unwrap();
        for c in categories {
            let c = c.as_str().unwrap();
            assert!(allowed("event.category").contains(&c.to_owned()), "{c}");
            let expected = &cat["event.category"]["expected_event_types"][c];
            for t in types {
                assert!(
                    expected.as_array().unwrap().contains(t),
                    "{}: {c}/{t} is not a pair ECS expects",
                    e.event_type
                );
            }
        }
        // Every ECS field we wrote has the JSON type and shape ECS defines.
        let mut flat = Vec::new();
        flatten("", &doc, &mut flat);
        for (path, value) in flat {
            if path.starts_with("audit.") || path.starts_with("labels.") {
                continue; // custom namespace / free-form labels
            }
            let def = if fields[&path].is_object() {
                &fields[&path]
            } else {
                &base[&path]
            };
            assert!(
                def.is_object(),
                "{path} is not an ECS field we checked against"
            );
            let want = def["json_type"].as_str().unwrap();
            let shape = def["json_shape"].as_str().unwrap_or("scalar");
            let check = |v: &Value| match want {
                "string" => v.is_string(),
                "integer" => v.is_i64() || v.is_u64(),
                "number" => v.is_number(),
                "boolean" => v.is_boolean(),
                "object" => v.is_object(),
                _ => true,
            };
            match (&value, shape) {
                (Value::Array(items), _) => assert!(items.iter().all(check), "{path}: {value}"),
                (v, "array") => panic!("{path} must be an array, got {v}"),
                (v, _) => assert!(check(v), "{path}: {v} is not {want}"),
            }
        }
        assert!(doc["@timestamp"].is_string());
        assert_eq!(doc["ecs"]["version"], "9.4.0");
    }
}

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) if prefix != "audit.details" => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, v, out);
            }
        }
        other => out.push((prefix.to_owned(), other.clone())),
    }
}

#[test]
fn cef_lines_parse_back_and_hostile_values_cannot_forge_fields() {
    let enc = Cef::new("Ac|me", "vector\\api", "1.0");
    let e = AuditEvent::builder("auth.login.failure")
        .actor(Actor::user("eve suser=admin act=auth.login.success").with_ip_address("203.0.113.7"))
        .description("line one\nline two | with = signs \\ and pipes")
        .organization_id("acme")
        .result(Outcome::Failure)
        .build()
        .unwrap();
    let line = enc.encode(&e);
    assert!(!line.contains('\n'), "one line: {line}");
    let (headers, pairs) = cef::parse(&line).unwrap();
    assert_eq!(headers[0], "Ac|me");
    assert_eq!(headers[1], "vector\\api");
    assert_eq!(headers[3], "auth.login.failure");
    assert_eq!(headers[5], "5", "a failure weighs at least 5");
    let get = |k: &str| {
        pairs
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(get("suid"), ["eve suser=admin act=auth.login.success"]);
    assert_eq!(get("act"), ["auth.login.failure"], "no forged act: {line}");
    assert!(get("suser").is_empty(), "no forged suser: {line}");
    assert_eq!(
        get("msg"),
        ["line one\nline two | with = signs \\ and pipes"]
    );
    assert_eq!(get("cs1"), ["acme"]);
    assert_eq!(get("cs1Label"), ["tenant"]);
    assert_eq!(get("src"), ["203.0.113.7"]);
    // A user target is a destination user; any other resource is a labelled custom string.
    let fields = |target: Target| {
        let e = AuditEvent::builder("data.index.delete")
            .target(target)
            .build()
            .unwrap();
        cef::parse(&Cef::default().encode(&e)).unwrap().1
    };
    let index = fields(Target::new("index", "products").with_name("Products"));
    let keys: Vec<&str> = index.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        !keys.contains(&"duid") && !keys.contains(&"duser"),
        "{index:?}"
    );
    assert!(index.contains(&("cs4".into(), "index".into())));
    assert!(index.contains(&("cs5Label".into(), "targetId".into())));
    assert!(index.contains(&("cs5".into(), "products".into())));
    assert!(index.contains(&("cs6".into(), "Products".into())));
    let user = fields(Target::new("user", "u-7"));
    assert!(user.contains(&("duid".into(), "u-7".into())), "{user:?}");
    // Every event gets a severity within 0–10 and its type as the signature.
    for e in events() {
        let (h, _) = cef::parse(&Cef::default().encode(&e)).unwrap();
        let sev: u8 = h[5].parse().unwrap();
        assert!(sev <= 10);
        assert_eq!(h[3], e.event_type.as_str());
    }
}
