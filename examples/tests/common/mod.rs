//! The demo binary as a test fixture: started on a random port, driven over real HTTP,
//! stopped with SIGTERM (or killed).

#![allow(dead_code)] // each test binary uses part of the harness
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)] // test helpers may panic and say why they skip

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

pub(crate) struct Demo {
    pub(crate) child: Option<Child>,
    pub(crate) addr: SocketAddr,
    /// The audit file it writes.
    pub(crate) audit_file: std::path::PathBuf,
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
    /// Starts the demo with its SQLite store beside `audit_file`.
    pub(crate) fn start(audit_file: &std::path::Path) -> Demo {
        let db = audit_file.with_extension("db");
        Demo::start_with(audit_file, &format!("sqlite:{}", db.display()))
    }

    pub(crate) fn start_with(audit_file: &std::path::Path, store: &str) -> Demo {
        Demo::start_args(audit_file, store, &[])
    }

    pub(crate) fn start_args(audit_file: &std::path::Path, store: &str, extra: &[&str]) -> Demo {
        Demo::start_env(audit_file, store, extra, &[])
    }

    /// Starts the demo with `extra` arguments and `env` added to its environment.
    pub(crate) fn start_env(
        audit_file: &std::path::Path,
        store: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Demo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_demo"))
            .args(["--addr", "127.0.0.1:0", "--store", store, "--audit-file"])
            .arg(audit_file)
            .args(extra)
            .envs(env.iter().copied())
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
            audit_file: audit_file.to_owned(),
        }
    }

    /// One request; returns status, `x-request-id`, JSON body.
    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, String, Value) {
        self.try_call(method, path, token, body)
            .unwrap_or_else(|| panic!("{method} {path}: no complete answer"))
    }

    /// [`call`](Self::call), or `None` when the connection fails or the answer is cut off
    /// (the server was killed).
    pub(crate) fn try_call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Option<(u16, String, Value)> {
        let mut s = TcpStream::connect(self.addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
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
        .ok()?;
        let mut raw = String::new();
        s.read_to_string(&mut raw).ok()?;
        let (head, body) = raw.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        let request_id = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("x-request-id: ")
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        Some((
            status,
            request_id,
            serde_json::from_str(body).unwrap_or(Value::Null),
        ))
    }

    pub(crate) fn stop(mut self) {
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
        // The seq audit of every run's audit file: every hash and link holds, and every gap
        // in a stream is explained in the file itself.
        let text = std::fs::read_to_string(&self.audit_file).unwrap_or_default();
        let audit = audit_core::integrity::Verifier::verify_lines(text.lines(), None);
        assert!(
            audit.is_intact(),
            "{}: {:?}",
            self.audit_file.display(),
            audit.problems
        );
    }
}

/// A raw answer: status, head (status line and headers) and body text.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) head: String,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The body, with a chunked transfer encoding undone.
    pub(crate) fn content(&self) -> String {
        if !self
            .header("transfer-encoding")
            .is_some_and(|v| v.contains("chunked"))
        {
            return self.body.clone();
        }
        let mut out = String::new();
        let mut rest = self.body.as_str();
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&after[..n]);
            rest = &after[n..];
            rest = rest.strip_prefix("\r\n").unwrap_or(rest);
        }
        out
    }

    pub(crate) fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}: ", name.to_ascii_lowercase());
        self.head.lines().find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix(&prefix)
                .map(str::to_owned)
        })
    }
}

impl Demo {
    /// One request with any path (sent as given, not encoded), headers and body.
    pub(crate) fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut head = format!("{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body.as_bytes()).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        Reply {
            status: head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            head: head.to_owned(),
            body: body.to_owned(),
        }
    }
}

pub(crate) fn login(demo: &Demo, email: &str, password: &str) -> String {
    let (status, _, body) = demo.call(
        "POST",
        "/auth/login",
        None,
        Some(json!({"email": email, "password": password})),
    );
    assert_eq!(status, 200);
    body["token"].as_str().unwrap().to_owned()
}

/// Polls the API until `path` reports at least `n` events (the store is written by the
/// pipeline, a moment after the response).
pub(crate) fn wait_for(demo: &Demo, token: &str, path: &str, n: u64) -> Value {
    for _ in 0..100 {
        let (status, _, body) = demo.call("GET", path, Some(token), None);
        assert_eq!(status, 200, "{body}");
        if body["summary"]["totalEvents"].as_u64().unwrap_or(0) >= n {
            return body;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{path} never reached {n} events");
}

/// The local PostgreSQL's URL, or `None` (after saying why) when it is unreachable and not
/// required.
pub(crate) fn postgres_url() -> Option<String> {
    let url = std::env::var("AUDIT_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let host = url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("127.0.0.1:5432")
        .to_owned();
    if TcpStream::connect(&host).is_err() {
        assert!(
            std::env::var_os("AUDIT_REQUIRE_SERVICES").is_none(),
            "PostgreSQL required (AUDIT_REQUIRE_SERVICES) but {host} is unreachable"
        );
        eprintln!("skipping: PostgreSQL not reachable at {host}; set AUDIT_POSTGRES_URL");
        return None;
    }
    Some(url)
}
