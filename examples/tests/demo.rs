//! The demo service end to end: start the binary, drive every route over real HTTP, stop it
//! with SIGTERM, and check the audit file event by event.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

struct Demo {
    child: Option<Child>,
    addr: SocketAddr,
}

impl Drop for Demo {
    /// A failing assertion must not leave the demo running.
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Demo {
    fn start(audit_file: &std::path::Path) -> Demo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_demo"))
            .args(["--addr", "127.0.0.1:0", "--audit-file"])
            .arg(audit_file)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let addr = first
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .parse()
            .unwrap();
        // Keep draining stdout so the demo never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Demo {
            child: Some(child),
            addr,
        }
    }

    /// One request; returns status, `x-request-id`, JSON body.
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, String, Value) {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let auth = token
            .map(|t| format!("authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nhost: x\r\nuser-agent: demo-e2e\r\nconnection: close\r\n\
             content-type: application/json\r\n{auth}content-length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let request_id = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("x-request-id: ")
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        (
            status,
            request_id,
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    }

    fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = child.wait().unwrap();
        assert!(
            exit.success(),
            "the demo exits cleanly after flushing: {exit}"
        );
    }
}

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
    expect(&r, 401, "auth.login.failure", "failure", None, None, None);
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
    demo.stop();

    let lines: Vec<Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
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
        .args(["--addr", "127.0.0.1:0", "--simulate", "1", "--audit-file"])
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
