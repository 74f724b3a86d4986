//! The demo service end to end: start the binary, drive every route over real HTTP, stop it
//! with SIGTERM, and check the audit file event by event.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Demo, login, postgres_url, wait_for};
use serde_json::{Value, json};

/// What one call must have produced in the audit trail.
struct Expect {
    request_id: String,
    event_type: &'static str,
    result: &'static str,
    actor: Option<&'static str>,
    org: Option<&'static str>,
    target: Option<(&'static str, String)>,
}

#[test]
fn every_route_produces_the_expected_event() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let demo = Demo::start(&file);
    let mut expected: Vec<Expect> = Vec::new();
    let mut expect = |(status, rid, _): &(u16, String, Value),
                      want_status: u16,
                      event_type,
                      result,
                      actor,
                      org,
                      target: Option<(&'static str, String)>| {
        assert_eq!(*status, want_status, "{event_type}");
        expected.push(Expect {
            request_id: rid.clone(),
            event_type,
            result,
            actor,
            org,
            target,
        });
    };

    let creds = |e: &str, p: &str| Some(json!({"email": e, "password": p}));
    let r = demo.call(
        "POST",
        "/auth/login",
        None,
        creds("admin@acme.test", "wrong"),
    );
    // A guess at a known account is filed under the account's tenant, the account as target.
    expect(
        &r,
        401,
        "auth.login.failure",
        "failure",
        None,
        Some("acme"),
        Some(("user", "user-acme-admin".into())),
    );
    let r = demo.call(
        "POST",
        "/auth/login",
        None,
        creds("admin@acme.test", "admin-password"),
    );
    let admin = r.2["token"].as_str().unwrap().to_owned();
    expect(
        &r,
        200,
        "auth.login.success",
        "success",
        Some("user-acme-admin"),
        Some("acme"),
        None,
    );
    let r = demo.call(
        "POST",
        "/auth/login",
        None,
        creds("member@acme.test", "member-password"),
    );
    let member = r.2["token"].as_str().unwrap().to_owned();
    expect(
        &r,
        200,
        "auth.login.success",
        "success",
        Some("user-acme-member"),
        Some("acme"),
        None,
    );
    let r = demo.call(
        "POST",
        "/auth/login",
        None,
        creds("admin@globex.test", "globex-password"),
    );
    let globex = r.2["token"].as_str().unwrap().to_owned();
    expect(
        &r,
        200,
        "auth.login.success",
        "success",
        Some("user-globex-admin"),
        Some("globex"),
        None,
    );

    let (a, m, g) = (
        Some(admin.as_str()),
        Some(member.as_str()),
        Some(globex.as_str()),
    );
    let acme_admin = (Some("user-acme-admin"), Some("acme"));

    let r = demo.call("POST", "/auth/mfa/enroll", a, None);
    expect(
        &r,
        200,
        "auth.mfa.enroll",
        "success",
        acme_admin.0,
        acme_admin.1,
        None,
    );
    let r = demo.call("POST", "/v1/api-keys", a, None);
    let key_id = r.2["id"].as_str().unwrap().to_owned();
    let key = r.2["key"].as_str().unwrap().to_owned();
    expect(
        &r,
        201,
        "admin.api_key.create",
        "success",
        acme_admin.0,
        acme_admin.1,
        Some(("api_key", key_id.clone())),
    );
    // The new key authenticates as itself.
    let r = demo.call(
        "POST",
        "/v1/indexes",
        Some(&key),
        Some(json!({"name": "by-key"})),
    );
    expect(
        &r,
        201,
        "data.index.create",
        "success",
        Some("api-key-actor"),
        Some("acme"),
        Some(("index", "by-key".into())),
    );
    let r = demo.call("DELETE", &format!("/v1/api-keys/{key_id}"), a, None);
    expect(
        &r,
        204,
        "admin.api_key.revoke",
        "success",
        acme_admin.0,
        acme_admin.1,
        Some(("api_key", key_id)),
    );
    let r = demo.call(
        "POST",
        "/v1/members/invite",
        a,
        Some(json!({"email": "new@acme.test"})),
    );
    expect(
        &r,
        201,
        "admin.member.invite",
        "success",
        acme_admin.0,
        acme_admin.1,
        Some(("member", "new@acme.test".into())),
    );
    let r = demo.call(
        "PUT",
        "/v1/members/user-acme-member/role",
        a,
        Some(json!({"role": "admin"})),
    );
    expect(
        &r,
        204,
        "admin.role.assign",
        "success",
        acme_admin.0,
        acme_admin.1,
        Some(("user", "user-acme-member".into())),
    );
    let r = demo.call(
        "PUT",
        "/v1/members/user-acme-member/role",
        a,
        Some(json!({"role": "member"})),
    );
    expect(
        &r,
        204,
        "admin.role.assign",
        "success",
        acme_admin.0,
        acme_admin.1,
        Some(("user", "user-acme-member".into())),
    );
    let r = demo.call("PUT", "/v1/config", m, Some(json!({"retentionDays": 7})));
    expect(
        &r,
        403,
        "security.access.denied",
        "denied",
        Some("user-acme-member"),
        Some("acme"),
        None,
    );
    let r = demo.call("PUT", "/v1/config", a, Some(json!({"retentionDays": 90})));
    expect(
        &r,
        204,
        "admin.config.change",
        "success",
        acme_admin.0,
        acme_admin.1,
        None,
    );

    let r = demo.call("POST", "/v1/indexes", a, Some(json!({"name": "products"})));
    expect(
        &r,
        201,
        "data.index.create",
        "success",
        acme_admin.0,
        acme_admin.1,
        Some(("index", "products".into())),
    );
    let r = demo.call(
        "PUT",
        "/v1/indexes/products/vectors/v1",
        a,
        Some(json!({"values": [1.0, 0.0], "metadata": {"sku": 1}})),
    );
    expect(
        &r,
        200,
        "data.vector.update",
        "success",
        acme_admin.0,
        acme_admin.1,
        Some(("vector", "v1".into())),
    );
    let r = demo.call(
        "POST",
        "/v1/indexes/products/import",
        a,
        Some(json!({"vectors": [{"id": "v2", "values": [0.0, 1.0]}, {"bad": true}]})),
    );
    expect(
        &r,
        200,
        "data.bulk.import",
        "success",
        acme_admin.0,
        acme_admin.1,
        Some(("index", "products".into())),
    );
    let r = demo.call(
        "POST",
        "/v1/indexes/products/query",
        a,
        Some(json!({"vector": [1.0, 0.0], "topK": 1})),
    );
    assert_eq!(r.2["matches"][0]["id"], "v1");
    expect(
        &r,
        200,
        "data.search.query",
        "success",
        acme_admin.0,
        acme_admin.1,
        Some(("index", "products".into())),
    );
    let r = demo.call("DELETE", "/v1/indexes/products/vectors/v1", a, None);
    expect(
        &r,
        204,
        "data.vector.delete",
        "success",
        acme_admin.0,
        acme_admin.1,
        Some(("vector", "v1".into())),
    );
    // Tenant isolation: globex cannot see acme's index.
    let r = demo.call("DELETE", "/v1/indexes/products", g, None);
    expect(
        &r,
        404,
        "data.index.delete",
        "failure",
        Some("user-globex-admin"),
        Some("globex"),
        Some(("index", "products".into())),
    );
    let r = demo.call("DELETE", "/v1/indexes/products", a, None);
    expect(
        &r,
        204,
        "data.index.delete",
        "success",
        acme_admin.0,
        acme_admin.1,
        Some(("index", "products".into())),
    );
    let r = demo.call(
        "POST",
        "/auth/password",
        m,
        Some(json!({"old": "member-password", "new": "member-password-2"})),
    );
    expect(
        &r,
        204,
        "auth.password.change",
        "success",
        Some("user-acme-member"),
        Some("acme"),
        None,
    );
    let r = demo.call("POST", "/auth/logout", g, None);
    expect(
        &r,
        204,
        "auth.logout",
        "success",
        Some("user-globex-admin"),
        Some("globex"),
        None,
    );
    let r = demo.call(
        "POST",
        "/v1/indexes",
        g,
        Some(json!({"name": "after-logout"})),
    );
    expect(
        &r,
        401,
        "security.access.denied",
        "denied",
        None,
        None,
        None,
    );
    let (status, rid, _) = demo.call("GET", "/health", None, None);
    assert_eq!(status, 200);
    let (status, _, ready) = demo.call("GET", "/ready", None, None);
    assert_eq!((status, ready), (200, json!({"ready": true})));
    demo.stop();

    let all: Vec<Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The final checkpoint seals the trail.
    let (checkpoints, all): (Vec<Value>, Vec<Value>) = all
        .into_iter()
        .partition(|e| e["eventType"] == "system.audit.checkpoint");
    assert_eq!(checkpoints.last().unwrap()["details"]["final"], true);
    // The retention task runs once at start and records what it purged.
    let (purges, lines): (Vec<Value>, Vec<Value>) = all
        .into_iter()
        .partition(|e| e["eventType"] == "system.retention.purge");
    assert_eq!(purges.len(), 1);
    assert_eq!(purges[0]["details"]["deleted"], 0);
    assert_eq!(
        lines.len(),
        expected.len(),
        "one event per audited call, none for /health"
    );
    assert!(
        lines
            .iter()
            .all(|e| e["context"]["requestId"] != rid.as_str())
    );
    for (e, x) in lines.iter().zip(&expected) {
        let what = format!("{} {}", x.event_type, e);
        assert_eq!(e["eventType"], x.event_type, "{what}");
        assert_eq!(e["result"], x.result, "{what}");
        assert_eq!(e["context"]["requestId"], x.request_id.as_str(), "{what}");
        assert_eq!(e["context"]["service"], "vector-api", "{what}");
        assert_eq!(e["actor"]["ipAddress"], "127.0.0.1", "{what}");
        assert_eq!(e["actor"]["userAgent"], "demo-e2e", "{what}");
        let category = x.event_type.split('.').next().unwrap();
        let category = if category == "auth" {
            "authentication"
        } else {
            category
        };
        assert_eq!(e["category"], category, "{what}");
        match x.actor {
            Some("api-key-actor") => assert_eq!(e["actor"]["type"], "api_key", "{what}"),
            Some(id) => assert_eq!(e["actor"]["id"], id, "{what}"),
            None => assert!(e["actor"].get("id").is_none(), "{what}"),
        }
        assert_eq!(e["context"]["organizationId"].as_str(), x.org, "{what}");
        if let Some((kind, id)) = &x.target {
            assert_eq!(e["target"]["type"], *kind, "{what}");
            assert_eq!(e["target"]["id"], id.as_str(), "{what}");
        }
    }
    let import = lines
        .iter()
        .find(|e| e["eventType"] == "data.bulk.import")
        .unwrap();
    assert_eq!(
        (
            import["details"]["imported"].clone(),
            import["details"]["rejected"].clone()
        ),
        (json!(1), json!(1))
    );
    let failed_login = &lines[0];
    assert_eq!(failed_login["actor"]["email"], "admin@acme.test");
    // No secret reached the file: passwords, session tokens, the API key.
    let text = std::fs::read_to_string(&file).unwrap();
    for secret in [
        "admin-password",
        "member-password",
        "globex-password",
        admin.as_str(),
        key.as_str(),
    ] {
        assert!(!text.contains(secret), "{secret} reached the audit file");
    }
}

#[test]
fn simulate_drives_a_mix_and_prints_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_demo"))
        .args(["--addr", "127.0.0.1:0", "--simulate", "1", "--store"])
        .arg(format!("sqlite:{}", dir.path().join("audit.db").display()))
        .arg("--audit-file")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    for row in [
        "auth.login.failure",
        "security.access.denied",
        "data.bulk.import",
        "admin.api_key.revoke",
        "audit shutdown complete",
    ] {
        assert!(stdout.contains(row), "{row} missing from:\n{stdout}");
    }
    let lines = std::fs::read_to_string(&file).unwrap().lines().count();
    assert!(lines >= 20, "{lines} events");
}

/// Drives the demo's audit API: admins see their organisation only, members get 403, the
/// API's own error format, deletion, and reading the log is itself in the log.
fn exercise_audit_api(demo: &Demo) {
    let acme = login(demo, "admin@acme.test", "admin-password");
    let globex = login(demo, "admin@globex.test", "globex-password");
    let member = login(demo, "member@acme.test", "member-password");
    // A shared PostgreSQL trail may hold earlier runs' events: name this run's index uniquely.
    let index = format!(
        "docs-{}-{:?}",
        std::process::id(),
        std::time::Instant::now()
    )
    .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "");
    let (status, _, _) = demo.call(
        "POST",
        "/v1/indexes",
        Some(&acme),
        Some(json!({"name": index})),
    );
    assert_eq!(status, 201);

    let body = wait_for(
        demo,
        &acme,
        &format!("/api/audit/logs?eventType=data.index.create&targetId={index}"),
        1,
    );
    let logs = body["logs"].as_array().unwrap();
    assert_eq!(logs[0]["target"]["id"], index.as_str());
    let body = wait_for(
        demo,
        &acme,
        "/api/audit/logs?eventType=auth.*&limit=1000",
        2,
    );
    assert!(
        body["logs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["context"]["organizationId"] == "acme"),
        "an admin sees only their organisation"
    );
    let (_, _, body) = demo.call("GET", "/api/audit/logs?limit=1000", Some(&globex), None);
    assert!(
        body["logs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["context"]["organizationId"] == "globex")
    );
    let (status, _, body) = demo.call("GET", "/api/audit/tenants/globex/logs", Some(&acme), None);
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "FORBIDDEN");
    let (status, _, body) = demo.call("GET", "/api/audit/logs", Some(&member), None);
    assert_eq!(status, 403, "members hold no audit scope");
    assert_eq!(body["error"]["code"], "FORBIDDEN");
    let (status, _, body) = demo.call("GET", "/api/audit/logs", None, None);
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "UNAUTHORIZED");
    let (status, _, body) = demo.call(
        "POST",
        "/api/audit/search",
        Some(&acme),
        Some(json!({"startTime": "2026-01-02T00:00:00Z", "endTime": "2026-01-01T00:00:00Z"})),
    );
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "INVALID_TIME_RANGE");

    // Reading the log is itself audited, with the admin as actor.
    let body = wait_for(
        demo,
        &acme,
        "/api/audit/logs?eventType=admin.audit_log.read",
        2,
    );
    let read = &body["logs"][0];
    assert_eq!(read["actor"]["id"], "user-acme-admin");
    assert!(read["context"]["requestId"].is_string());
    let denied = wait_for(
        demo,
        &acme,
        "/api/audit/logs?eventType=admin.audit_log.read&result=denied",
        1,
    );
    assert!(denied["summary"]["totalEvents"].as_u64().unwrap() >= 1);

    // Admins may delete one of their events; the deletion is audited.
    let id = logs[0]["id"].as_str().unwrap().to_owned();
    let (status, _, _) = demo.call(
        "DELETE",
        &format!("/api/audit/logs/{id}"),
        Some(&globex),
        None,
    );
    assert_eq!(status, 404, "another organisation's event looks absent");
    let (status, _, _) = demo.call(
        "DELETE",
        &format!("/api/audit/logs/{id}"),
        Some(&acme),
        None,
    );
    assert_eq!(status, 204);
    let body = wait_for(
        demo,
        &acme,
        &format!("/api/audit/logs?eventType=admin.audit_log.delete&targetId={id}&result=success"),
        1,
    );
    assert_eq!(body["logs"][0]["actor"]["id"], "user-acme-admin");
}

#[test]
fn audit_api_on_the_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let demo = Demo::start(&file);
    exercise_audit_api(&demo);
    demo.stop();
    assert!(dir.path().join("audit.db").exists());
}

#[test]
fn audit_api_on_the_postgres_store() {
    let Some(url) = postgres_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let demo = Demo::start_with(&file, &format!("postgres:{url}"));
    exercise_audit_api(&demo);
    demo.stop();
}

#[test]
fn bad_store_spec_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_demo"))
        .args(["--store", "mysql://x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sqlite:PATH, postgres:URL or none"), "{err}");
}

#[test]
fn the_background_usage_report_is_audited_without_request_context() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let store = format!("sqlite:{}", dir.path().join("audit.db").display());
    let demo = Demo::start_args(&file, &store, &["--report-interval", "1"]);
    let admin = login(&demo, "admin@acme.test", "admin-password");
    let (status, _, _) = demo.call(
        "POST",
        "/v1/indexes",
        Some(&admin),
        Some(json!({"name": "a"})),
    );
    assert_eq!(status, 201);
    std::thread::sleep(Duration::from_millis(1600));
    demo.stop();
    let reports: Vec<Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["eventType"] == "data.usage.report")
        .collect();
    assert!(!reports.is_empty());
    let r = &reports[0];
    assert_eq!(r["context"]["organizationId"], "acme");
    assert_eq!(r["details"]["indexes"], 1);
    assert!(
        r["context"]["requestId"].is_null(),
        "a background job has no request: {r}"
    );
    assert_eq!(r["context"]["service"], "vector-api");
}

#[test]
fn extra_sinks_come_from_flags_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let (copy_a, copy_b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    let store = format!("sqlite:{}", dir.path().join("audit.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_demo"))
        .args(["--addr", "127.0.0.1:0", "--store", &store, "--audit-file"])
        .arg(&file)
        .arg("--sink")
        .arg(format!("file:{}", copy_a.display()))
        .env("AUDIT_SINKS", format!("file:{}", copy_b.display()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr: SocketAddr = lines
        .next()
        .unwrap()
        .unwrap()
        .strip_prefix("listening on http://")
        .unwrap()
        .parse()
        .unwrap();
    std::thread::spawn(move || for _ in lines {});
    let demo = Demo {
        child: Some(child),
        addr,
        audit_file: file.clone(),
    };
    login(&demo, "admin@acme.test", "admin-password");
    demo.stop();
    let count = |p: &std::path::Path| std::fs::read_to_string(p).unwrap().lines().count();
    assert!(count(&file) >= 1);
    assert_eq!(count(&copy_a), count(&file), "--sink file gets every event");
    assert_eq!(
        count(&copy_b),
        count(&file),
        "AUDIT_SINKS file gets every event"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_demo"))
        .args(["--sink", "splunk+https://h:8088?token=hunter2&indx=a"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown parameter `indx`"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

/// `/ready` answers 503 once a sink fails, naming the sink and nothing of its error, for an
/// orchestrator's readiness probe.
#[test]
fn readiness_names_a_failing_sink() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    // Nothing listens on port 9 of loopback: every delivery fails.
    let demo = Demo::start_args(
        &file,
        &format!("sqlite:{}", dir.path().join("audit.db").display()),
        &["--sink", "webhook+http://127.0.0.1:9/hook"],
    );
    let start = std::time::Instant::now();
    loop {
        let (status, _, body) = demo.call("GET", "/ready", None, None);
        if status == 503 {
            assert_eq!(body["ready"], false);
            let reasons = body["reasons"].as_array().unwrap();
            assert!(
                reasons.iter().any(|r| r == "sink webhook#1 failing"),
                "{body}"
            );
            assert!(
                !body.to_string().contains("127.0.0.1"),
                "no error text: {body}"
            );
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "{body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
