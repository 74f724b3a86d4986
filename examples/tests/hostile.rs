//! Hostile clients against the demo, as a real server on a random port with real SQLite and
//! PostgreSQL stores: each finding of the hostile-input review replayed end to end. No
//! client may erase, forge, flood or leak through the trail.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Demo, login, postgres_url, wait_for};
use serde_json::{Value, json};

/// A name no earlier run (sharing a PostgreSQL trail) can have used.
fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("r{}x{nanos}", std::process::id())
}

/// The events in the audit file so far. The sink may be writing while this reads: only the
/// lines already ended count.
fn events(file: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The event a request produced, found by its request id (waits for the pipeline).
fn event_of(file: &Path, request_id: &str) -> Value {
    let start = Instant::now();
    loop {
        if let Some(e) = events(file)
            .into_iter()
            .find(|e| e["context"]["requestId"] == request_id && e["http"].is_object())
        {
            return e;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no event for {request_id}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `n` events through the pipeline and waits until the audit file holds the last, so
/// everything recorded before is in the file (and, one batch later, in the store).
fn settle(demo: &Demo, file: &Path) {
    let r = demo.request("GET", "/settle-marker", &[], "");
    let rid = r.header("x-request-id").unwrap();
    event_of(file, &rid);
}

/// A live stream's raw text, read on a thread until the server closes it or `until`.
struct Stream {
    text: Arc<Mutex<String>>,
    done: std::thread::JoinHandle<()>,
}

impl Stream {
    fn open(demo: &Demo, token: &str, until: Duration) -> Stream {
        let mut s = TcpStream::connect(demo.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        write!(
            s,
            "GET /api/audit/stream HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\r\n"
        )
        .unwrap();
        let text = Arc::new(Mutex::new(String::new()));
        let out = Arc::clone(&text);
        let done = std::thread::spawn(move || {
            let start = Instant::now();
            let mut buf = [0u8; 65536];
            while start.elapsed() < until {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => out
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n])),
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break,
                }
            }
        });
        // Wait until the stream is open (its headers arrived).
        let start = Instant::now();
        while !text.lock().unwrap().contains("text/event-stream") {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "stream never opened"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Stream { text, done }
    }

    fn finish(self) -> String {
        self.done.join().unwrap();
        self.text.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------------------------------
// 1. Erasure: one bad event never takes others down.

/// NUL in a login e-mail, in a path and in filters, while an admin creates indexes: every
/// index event reaches the store, the NUL events too (made storable), filters with NUL are
/// refused.
fn nul_never_erases(store: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let demo = match store {
        Some(s) => Demo::start_with(&file, s),
        None => Demo::start(&file),
    };
    let admin = login(&demo, "admin@acme.test", "admin-password");
    let bearer = format!("Bearer {admin}");
    let run = run_id();
    let n = 10;
    for i in 0..n {
        for _ in 0..3 {
            let r = demo.request(
                "POST",
                "/auth/login",
                &[("content-type", "application/json")],
                r#"{"email":"\u0000","password":"x"}"#,
            );
            assert_eq!(r.status, 401);
        }
        let r = demo.request(
            "DELETE",
            &format!("/v1/indexes/a%00b{run}"),
            &[("authorization", &bearer)],
            "",
        );
        assert_eq!(r.status, 404);
        let (status, _, _) = demo.call(
            "POST",
            "/v1/indexes",
            Some(&admin),
            Some(json!({"name": format!("idx-{run}-{i}")})),
        );
        assert_eq!(status, 201);
        // A name with NUL: the handler sets it as the event's target.
        let (status, _, _) = demo.call(
            "POST",
            "/v1/indexes",
            Some(&admin),
            Some(json!({"name": format!("nul\u{0}-{run}-{i}")})),
        );
        assert_eq!(status, 201);
    }
    // Every index event is in the store: none was taken down by a NUL in its batch, and the
    // NUL ones are stored too, the NUL shown as U+2400.
    let body = wait_for(
        &demo,
        &admin,
        &format!("/api/audit/logs?eventType=data.index.create&q={run}&limit=1000"),
        2 * n,
    );
    assert_eq!(body["summary"]["totalEvents"], 2 * n);
    let nul = body["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["target"]["id"]
                .as_str()
                .unwrap()
                .starts_with("nul\u{2400}-")
        })
        .count();
    assert_eq!(nul, n as usize);
    wait_for(
        &demo,
        &admin,
        &format!("/api/audit/logs?eventType=data.index.delete&q={run}"),
        n,
    );
    // Filters and ids holding NUL are refused, never widened.
    for path in [
        "/api/audit/logs?q=%00".to_owned(),
        "/api/audit/logs?actorEmail=a%00".to_owned(),
        "/api/audit/tenants/x%00/logs".to_owned(),
        "/api/audit/logs/a%00b".to_owned(),
    ] {
        let r = demo.request("GET", &path, &[("authorization", &bearer)], "");
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert_eq!(r.json()["error"]["code"], "INVALID_REQUEST", "{path}");
    }
    demo.stop();
    let all = events(&file);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("\\u0000"), "no NUL in the file");
    assert!(
        all.iter()
            .filter(|e| e["eventType"] == "auth.login.failure" && e["actor"]["email"] == "\u{2400}")
            .count()
            >= 3 * n as usize
    );
    assert!(
        !all.iter().any(|e| e["eventType"] == "system.audit.dropped"),
        "nothing was dropped"
    );
}

#[test]
fn nul_never_erases_events_on_sqlite() {
    nul_never_erases(None);
}

#[test]
fn nul_never_erases_events_on_postgres() {
    let Some(url) = postgres_url() else { return };
    nul_never_erases(Some(&format!("postgres:{url}")));
}

// ---------------------------------------------------------------------------------------
// 2. Leaks: every client-influenced string is scanned.

#[test]
fn secrets_reach_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let demo = Demo::start(&file);
    let admin = login(&demo, "admin@acme.test", "admin-password");
    let bearer = format!("Bearer {admin}");
    let stream = Stream::open(&demo, &admin, Duration::from_secs(6));

    let ghp = format!("ghp_{}", "a1B2".repeat(9));
    let akia = "AKIAZAZ7KJX7A2OYCWK1";
    let sk = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ";
    let aws_secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let opaque: Vec<String> = (0..16).map(|i| format!("Opq{i}Zx8vT2mK9")).collect();
    let mut secrets: Vec<String> = vec![
        ghp.clone(),
        akia.to_owned(),
        akia.to_ascii_lowercase(),
        sk.to_owned(),
        jwt.to_owned(),
        aws_secret.to_owned(),
        "s3cr3t".to_owned(),
        "4539148803436467".to_owned(),
    ];
    secrets.extend(opaque.iter().cloned());
    let o = |i: usize| opaque[i].as_str();
    let keyed = format!(
        "token[]={}&token[0]={}&user[token]={}&pass[]={}&pwd[]={}&session[]={}&token%20={}\
         &otp={}&signature={}&sig={}&jwt={}&bearer={}&access_key={}&%2570assword={}",
        o(0),
        o(1),
        o(2),
        o(3),
        o(4),
        o(5),
        o(6),
        o(7),
        o(8),
        o(9),
        o(10),
        o(11),
        o(12),
        o(13)
    );
    let ua_text = format!(r#"PassWord={} "password"=>"{}""#, o(14), o(15));
    let auth = ("authorization", bearer.as_str());
    let carriers: Vec<(String, Vec<(&str, String)>)> = vec![
        (format!("/v1/indexes?{ghp}"), vec![]),
        (format!("/v1/indexes?{akia}=1"), vec![]),
        (
            "/v1/indexes".into(),
            vec![("user-agent", format!(r#"{{"{sk}":1}}"#))],
        ),
        (
            "/v1/indexes".into(),
            vec![("user-agent", format!(r#"{{"a":"{jwt}","a":"x"}}"#))],
        ),
        (format!("/v1/indexes?{keyed}"), vec![]),
        ("/v1/indexes".into(), vec![("user-agent", ua_text)]),
        (
            "/v1/indexes?dsn=postgres%253A%252F%252Fapp%253As3cr3t%2540db".into(),
            vec![],
        ),
        (
            "/v1/indexes?id=AKIAIOSFODNN7EXAMPLE".into(),
            vec![("user-agent", aws_secret.to_owned())],
        ),
        ("/4539148803436467".into(), vec![]),
    ];
    let mut ids = Vec::new();
    for (path, headers) in &carriers {
        let mut h: Vec<(&str, &str)> = vec![auth];
        h.extend(headers.iter().map(|(k, v)| (*k, v.as_str())));
        let r = demo.request("GET", path, &h, "");
        ids.push(r.header("x-request-id").unwrap());
    }
    // The login e-mail field, with a duplicated key hiding a JWT.
    let r = demo.request(
        "POST",
        "/auth/login",
        &[("content-type", "application/json")],
        &json!({"email": format!(r#"{{"a":"{jwt}","a":"x"}}"#), "password": "x"}).to_string(),
    );
    assert_eq!(r.status, 401);

    for id in &ids {
        event_of(&file, id);
    }
    settle(&demo, &file);
    // Everything the store and the API hand out.
    let mut outputs: Vec<(String, String)> = Vec::new();
    let logs = wait_for(
        &demo,
        &admin,
        "/api/audit/logs?limit=1000",
        ids.len() as u64,
    );
    outputs.push(("GET /logs".into(), logs.to_string()));
    for format in ["csv", "json", "ndjson"] {
        let r = demo.request(
            "POST",
            "/api/audit/export",
            &[auth, ("content-type", "application/json")],
            &json!({"format": format, "filters": {}}).to_string(),
        );
        assert_eq!(r.status, 200, "{format}: {}", r.body);
        outputs.push((format!("export {format}"), r.body));
    }
    let filters = demo.request("GET", "/api/audit/filters", &[auth], "");
    outputs.push(("GET /filters".into(), filters.body));
    for name in ["audit.db", "audit.db-wal"] {
        let bytes = std::fs::read(dir.path().join(name)).unwrap_or_default();
        outputs.push((name.into(), String::from_utf8_lossy(&bytes).into_owned()));
    }
    outputs.push(("SSE".into(), stream.finish()));
    demo.stop();
    outputs.push((
        "audit.jsonl".into(),
        std::fs::read_to_string(&file).unwrap(),
    ));
    // The carriers did arrive (so their absence below means something).
    let jsonl = &outputs.last().unwrap().1;
    assert!(jsonl.contains("%5BGITHUB_TOKEN%5D"), "{jsonl}");
    assert!(
        outputs
            .iter()
            .any(|(n, t)| n == "SSE" && t.contains("event: audit"))
    );
    for (name, text) in &outputs {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{secret} reached {name}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// 3. Forgery: the client does not choose the taxonomy.

#[test]
fn clients_cannot_choose_event_types() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let demo = Demo::start(&file);
    let admin = login(&demo, "admin@acme.test", "admin-password");
    let bearer = format!("Bearer {admin}");
    let paths = [
        ("GET", "/wp-admin/setup.php"),
        ("POST", "/v1/login"),
        ("GET", "/4539148803436467"),
        ("GET", "/AKIAZAZ7KJX7A2OYCWK1"),
        ("GET", "/v1/admin/users/delete"),
        ("GET", "/api/oauth/token"),
    ];
    let mut ids = Vec::new();
    for (method, path) in paths {
        let r = demo.request(method, path, &[("authorization", &bearer)], "");
        ids.push((path, r.header("x-request-id").unwrap()));
    }
    // A gRPC content type does not make a path name a service and method: only a gRPC
    // answer does, and the demo gives none.
    let r = demo.request(
        "POST",
        "/x.Admin/DeleteEverything",
        &[
            ("authorization", &bearer),
            ("content-type", "application/grpc"),
        ],
        "",
    );
    ids.push((
        "/x.Admin/DeleteEverything",
        r.header("x-request-id").unwrap(),
    ));
    for i in 0..50 {
        demo.request("GET", &format!("/random-{i}/thing"), &[], "");
    }
    for (path, id) in &ids {
        let e = event_of(&file, id);
        assert_eq!(e["eventType"], "data.request.unmatched", "{path}: {e}");
        assert!(e["target"].is_null(), "{path}: {e}");
        assert_eq!(e["http"]["statusCode"], 404, "{path}");
    }
    settle(&demo, &file);
    let filters = wait_for(&demo, &admin, "/api/audit/logs?eventType=data.request.*", 1);
    assert!(filters["logs"].is_array());
    let r = demo.request(
        "GET",
        "/api/audit/filters",
        &[("authorization", &bearer)],
        "",
    );
    let types: Vec<String> = r.json()["eventTypes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    for t in &types {
        for word in [
            "wp_admin", "random", "r4539", "akia", "oauth", "users", "login",
        ] {
            assert!(
                !t.contains(word) || t == "auth.login.success",
                "client text {word} named {t}"
            );
        }
    }
    demo.stop();
    let kinds: std::collections::BTreeSet<String> = events(&file)
        .iter()
        .map(|e| e["eventType"].as_str().unwrap().to_owned())
        .collect();
    assert!(kinds.len() < 8, "a client grew the event types: {kinds:?}");
}

// ---------------------------------------------------------------------------------------
// 4. Flooding: every field and every event is bounded.

#[test]
fn no_request_makes_a_large_event() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let demo = Demo::start(&file);
    let hops = "1,".repeat(2000);
    let mut headers: Vec<(&str, &str)> = vec![("user-agent", "x")];
    for _ in 0..90 {
        headers.push(("x-forwarded-for", &hops));
    }
    let r = demo.request("GET", "/v1/indexes", &headers, "");
    assert_ne!(r.status, 431, "hyper accepted the request");
    let xff = r.header("x-request-id").unwrap();
    let ua = "Mozilla/5.0;".repeat(25_000); // 300 KB
    let r = demo.request("GET", "/v1/indexes", &[("user-agent", &ua)], "");
    let long_ua = r.header("x-request-id").unwrap();
    let path = format!("/{}", "p".repeat(65_000));
    let r = demo.request("GET", &path, &[], "");
    let long_path = r.header("x-request-id").unwrap();
    let fat_hops = vec!["h".repeat(3000); 20].join(",");
    let r = demo.request(
        "GET",
        "/v1/indexes",
        &[
            ("x-forwarded-for", &fat_hops),
            ("user-agent", &"u".repeat(8000)),
        ],
        "",
    );
    let fat = r.header("x-request-id").unwrap();
    let query = format!("/v1/indexes?q={}", "q".repeat(60_000));
    let r = demo.request("GET", &query, &[], "");
    let long_query = r.header("x-request-id").unwrap();

    let e = event_of(&file, &xff);
    let chain = e["details"]["forwardedFor"].as_array().unwrap();
    assert!(chain.len() <= 18, "{} hops", chain.len());
    assert!(
        chain[0]
            .as_str()
            .unwrap()
            .starts_with("…[truncated: 180000 hops, sha256:"),
        "{}",
        chain[0]
    );
    // Hops that are not addresses are recorded by their length: with a user agent at its
    // cap, the whole unauthenticated event stays small.
    let e = event_of(&file, &fat);
    assert!(
        e.to_string().len() < 8 * 1024,
        "{} bytes",
        e.to_string().len()
    );
    let e = event_of(&file, &long_ua);
    let got = e["actor"]["userAgent"].as_str().unwrap();
    assert!(got.len() <= 512);
    assert!(got.contains(&format!("…[truncated: {} bytes, sha256:", ua.len())));
    let e = event_of(&file, &long_path);
    let got = e["http"]["path"].as_str().unwrap();
    assert!(got.len() <= 2048 && got.contains("…[truncated: 65001 bytes"));
    let e = event_of(&file, &long_query);
    let got = e["http"]["query"].as_str().unwrap();
    assert!(got.len() <= 2048 && got.contains("…[truncated: 60002 bytes"));
    demo.stop();
    for line in std::fs::read_to_string(&file).unwrap().lines() {
        assert!(line.len() <= 64 * 1024, "a {}-byte event", line.len());
    }
}

// ---------------------------------------------------------------------------------------
// 5. Tenancy of the trail itself.

#[test]
fn refusals_are_filed_under_the_caller_and_guesses_under_the_account() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let demo = Demo::start(&file);
    let acme = login(&demo, "admin@acme.test", "admin-password");
    let globex = login(&demo, "admin@globex.test", "globex-password");
    let bearer = format!("Bearer {acme}");
    let mut refused = Vec::new();
    for org in ["globex", "*", "ACME", "%"] {
        let r = demo.request(
            "GET",
            "/api/audit/logs",
            &[("authorization", &bearer), ("x-org-id", org)],
            "",
        );
        assert_eq!(r.status, 403, "{org}");
        refused.push((org, r.header("x-request-id").unwrap()));
    }
    let r = demo.request(
        "GET",
        "/api/audit/tenants/globex/logs",
        &[("authorization", &bearer)],
        "",
    );
    assert_eq!(r.status, 403);
    refused.push(("globex", r.header("x-request-id").unwrap()));
    // Password guessing on an acme account.
    for _ in 0..3 {
        let (status, _, _) = demo.call(
            "POST",
            "/auth/login",
            None,
            Some(json!({"email": "admin@acme.test", "password": "guess"})),
        );
        assert_eq!(status, 401);
    }
    for (org, id) in &refused {
        let e = event_of(&file, id);
        assert_eq!(e["context"]["organizationId"], "acme", "{org}: {e}");
        assert_eq!(e["details"]["requestedTenant"], *org, "{e}");
        assert_eq!(e["result"], "denied");
    }
    settle(&demo, &file);
    // acme's admins see the refusals and the guesses; globex's see none of it.
    let body = wait_for(
        &demo,
        &acme,
        "/api/audit/logs?eventType=auth.login.failure",
        3,
    );
    assert_eq!(body["logs"][0]["target"]["id"], "user-acme-admin");
    let (_, _, body) = demo.call("GET", "/api/audit/logs?limit=1000", Some(&globex), None);
    let seen: Vec<&Value> = body["logs"].as_array().unwrap().iter().collect();
    assert!(!seen.is_empty());
    for e in seen {
        assert_eq!(e["context"]["organizationId"], "globex", "{e}");
        assert_ne!(e["actor"]["id"], "user-acme-admin", "{e}");
    }
    demo.stop();
}

// ---------------------------------------------------------------------------------------
// 6. Streams and sessions.

#[test]
fn a_stream_ends_with_its_session_and_deletion_records_stay() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let demo = Demo::start(&file);
    let watcher = login(&demo, "admin@acme.test", "admin-password");
    let actor = login(&demo, "admin@acme.test", "admin-password");
    let stream = Stream::open(&demo, &watcher, Duration::from_secs(8));
    let before = format!("before-{}", run_id());
    demo.call(
        "POST",
        "/v1/indexes",
        Some(&actor),
        Some(json!({"name": before})),
    );
    std::thread::sleep(Duration::from_millis(300));
    let (status, _, _) = demo.call("POST", "/auth/logout", Some(&watcher), None);
    assert_eq!(status, 204);
    std::thread::sleep(Duration::from_millis(1500));
    let after: Vec<String> = (0..5).map(|i| format!("after-{i}-{}", run_id())).collect();
    for name in &after {
        demo.call(
            "POST",
            "/v1/indexes",
            Some(&actor),
            Some(json!({"name": name})),
        );
    }
    let started = Instant::now();
    let text = stream.finish();
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "the stream was closed by the server"
    );
    assert!(text.contains(&before), "the stream worked while authorized");
    assert!(
        text.contains("event: closed") && text.contains("revoked"),
        "{text}"
    );
    for name in &after {
        assert!(!text.contains(name.as_str()), "{name} sent after logout");
    }

    // A deletion is recorded; that record cannot be deleted.
    let body = wait_for(
        &demo,
        &actor,
        &format!("/api/audit/logs?eventType=data.index.create&q={before}"),
        1,
    );
    let id = body["logs"][0]["id"].as_str().unwrap().to_owned();
    let (status, _, _) = demo.call(
        "DELETE",
        &format!("/api/audit/logs/{id}"),
        Some(&actor),
        None,
    );
    assert_eq!(status, 204);
    let body = wait_for(
        &demo,
        &actor,
        &format!("/api/audit/logs?eventType=admin.audit_log.delete&targetId={id}"),
        1,
    );
    let record = body["logs"][0]["id"].as_str().unwrap().to_owned();
    let (status, _, body) = demo.call(
        "DELETE",
        &format!("/api/audit/logs/{record}"),
        Some(&actor),
        None,
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "FORBIDDEN");
    let (status, _, _) = demo.call(
        "GET",
        &format!("/api/audit/logs/{record}"),
        Some(&actor),
        None,
    );
    assert_eq!(status, 200, "the record is still there");
    demo.stop();
}

// ---------------------------------------------------------------------------------------
// 7. Smaller findings.

#[test]
fn api_errors_are_json_and_recorded_as_audit_log_access() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let demo = Demo::start(&file);
    let admin = login(&demo, "admin@acme.test", "admin-password");
    let bearer = format!("Bearer {admin}");
    let auth = [("authorization", bearer.as_str())];
    let r = demo.request("GET", "/api/audit/nope", &auth, "");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "NOT_FOUND");
    let r = demo.request("PUT", "/api/audit/logs", &auth, "");
    assert_eq!(r.status, 405);
    assert_eq!(r.json()["error"]["code"], "METHOD_NOT_ALLOWED");
    for bad in ["limit=+5", "limit=%205", "limit=5.0", "sort=sideways"] {
        let r = demo.request("GET", &format!("/api/audit/logs?{bad}"), &auth, "");
        assert_eq!(r.status, 400, "{bad}");
        let e = event_of(&file, &r.header("x-request-id").unwrap());
        assert_eq!(e["eventType"], "admin.audit_log.read", "{bad}: {e}");
        assert_eq!(e["result"], "failure");
        assert_eq!(e["details"]["error"], "INVALID_REQUEST");
    }
    let r = demo.request(
        "POST",
        "/api/audit/search",
        &[auth[0], ("content-type", "application/json")],
        r#"{"limit": "+5"}"#,
    );
    assert_eq!(r.status, 400);
    let e = event_of(&file, &r.header("x-request-id").unwrap());
    assert_eq!(e["eventType"], "admin.audit_log.read");

    // Index names built to run as formulas in a spreadsheet.
    let names = [
        " =1+1",
        "\n=1+1",
        "\u{b}=1+1",
        "\u{c}=1+1",
        "\u{a0}=1+1",
        "\u{200b}=1+1",
        "\u{2028}=1+1",
        "\u{ff1d}1+1",
        "x;=1+1",
        "=cmd|' /C calc'!A0",
    ];
    for name in names {
        let (status, _, _) = demo.call(
            "POST",
            "/v1/indexes",
            Some(&admin),
            Some(json!({"name": name})),
        );
        assert_eq!(status, 201, "{name:?}");
    }
    settle(&demo, &file);
    wait_for(
        &demo,
        &admin,
        "/api/audit/logs?eventType=data.index.create",
        names.len() as u64,
    );
    let r = demo.request(
        "POST",
        "/api/audit/export",
        &[auth[0], ("content-type", "application/json")],
        &json!({"format": "csv", "filters": {"eventType": "data.index.create"}}).to_string(),
    );
    assert_eq!(r.status, 200);
    for name in names {
        assert!(
            r.body.contains(&format!("\"'{name}")),
            "{name:?} not neutralised in:\n{}",
            r.body
        );
    }
    demo.stop();
}

#[test]
fn the_demo_resists_slow_clients_and_guards_its_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let store = format!("sqlite:{}", dir.path().join("audit.db").display());
    let demo = Demo::start_args(&file, &store, &["--header-timeout", "1"]);

    // Connections that never finish their headers are closed.
    let mut slow: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = TcpStream::connect(demo.addr).unwrap();
            s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n").unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s
        })
        .collect();
    let start = Instant::now();
    for s in &mut slow {
        let mut buf = [0u8; 1024];
        // Closed (EOF or reset), possibly after a 408, within the timeout and some slack.
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    let (status, _, _) = demo.call("GET", "/health", None, None);
    assert_eq!(status, 200);
    // A kept-alive connection that goes quiet after a request is closed too.
    let mut idle = TcpStream::connect(demo.addr).unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 4096];
    let n = idle.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let quiet = Instant::now();
    assert!(matches!(idle.read(&mut buf), Ok(0) | Err(_)));
    assert!(
        quiet.elapsed() < Duration::from_secs(3),
        "{:?}",
        quiet.elapsed()
    );

    // A login's time does not tell whether the e-mail has an account.
    let time = |email: &str| {
        let mut t: Vec<Duration> = (0..7)
            .map(|_| {
                let start = Instant::now();
                demo.call(
                    "POST",
                    "/auth/login",
                    None,
                    Some(json!({"email": email, "password": "wrong-password"})),
                );
                start.elapsed()
            })
            .collect();
        t.sort();
        t[3]
    };
    let known = time("admin@acme.test");
    let unknown = time("nobody@acme.test");
    let ratio = known.as_secs_f64() / unknown.as_secs_f64();
    assert!(
        (0.5..2.0).contains(&ratio),
        "known {known:?}, unknown {unknown:?}"
    );

    // A password change ends the user's other sessions; weak passwords and unknown roles
    // are refused.
    let first = login(&demo, "member@acme.test", "member-password");
    let second = login(&demo, "member@acme.test", "member-password");
    let (status, _, _) = demo.call(
        "POST",
        "/auth/password",
        Some(&first),
        Some(json!({"old": "member-password", "new": ""})),
    );
    assert_eq!(status, 400, "an empty password");
    let (status, _, _) = demo.call(
        "POST",
        "/auth/password",
        Some(&first),
        Some(json!({"old": "member-password", "new": "a-new-password"})),
    );
    assert_eq!(status, 204);
    let (status, _, _) = demo.call("POST", "/auth/mfa/enroll", Some(&second), None);
    assert_eq!(status, 401, "the other session ended");
    let (status, _, _) = demo.call("POST", "/auth/mfa/enroll", Some(&first), None);
    assert_eq!(status, 200, "the session that changed it goes on");
    let admin = login(&demo, "admin@acme.test", "admin-password");
    for role in ["owner", "", "ADMIN", "admin "] {
        let (status, _, _) = demo.call(
            "PUT",
            "/v1/members/user-acme-member/role",
            Some(&admin),
            Some(json!({"role": role})),
        );
        assert_eq!(status, 400, "{role:?}");
    }
    demo.stop();
}
