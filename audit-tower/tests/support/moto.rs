//! moto (PyPI `moto[server]`) as an S3 peer on loopback, for the export-destination tests:
//! buckets made and objects read back through boto3 (installed with moto), and a plain
//! HTTP/1.1 client for the API under test.

#![allow(dead_code)] // each test binary uses part of it
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)] // test helpers may panic and say why they skip

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto S3 server.
pub(crate) struct Moto {
    child: Child,
    /// Its port on 127.0.0.1.
    pub(crate) port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts moto on a free loopback port. With `enforce_auth`, it checks every request's
    /// credentials (and knows none). `None`, after saying why, when python3 or moto is
    /// missing and `AUDIT_REQUIRE_SERVICES` is unset.
    pub(crate) fn start(enforce_auth: bool) -> Option<Moto> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new("python3");
        cmd.args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        if enforce_auth {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", "0");
        }
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return Moto::missing(&format!("python3: {e}")),
        };
        let mut moto = Moto { child, port };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                return Moto::missing(&format!("moto.server exited: {status}"));
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "moto did not start listening"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(moto)
    }

    fn missing(why: &str) -> Option<Moto> {
        assert!(
            std::env::var_os("AUDIT_REQUIRE_SERVICES").is_none(),
            "moto required (AUDIT_REQUIRE_SERVICES) but unavailable: {why} \
             (pip install 'moto[server]')"
        );
        eprintln!("skipping: moto unavailable ({why}); pip install 'moto[server]'");
        None
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs `script` with `s3`, a boto3 client of this server signed with the credentials
    /// `test`/`test`, and `args` as `sys.argv[1:]`; returns its standard output.
    fn boto3(&self, script: &str, args: &[&str]) -> Vec<u8> {
        let program = format!(
            "import sys, boto3\n\
             s3 = boto3.client('s3', endpoint_url='{}', aws_access_key_id='test', \
             aws_secret_access_key='test', region_name='us-east-1')\n{script}",
            self.endpoint()
        );
        let out = Command::new("python3")
            .args(["-c", &program])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "boto3: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Creates a bucket.
    pub(crate) fn create_bucket(&self, bucket: &str) {
        self.boto3("s3.create_bucket(Bucket=sys.argv[1])", &[bucket]);
    }

    /// An object's bytes and its ETag (a multipart upload's ends in `-<parts>`).
    pub(crate) fn object(&self, bucket: &str, key: &str) -> (Vec<u8>, String) {
        let etag = self.boto3(
            "print(s3.head_object(Bucket=sys.argv[1], Key=sys.argv[2])['ETag'])",
            &[bucket, key],
        );
        let body = self.boto3(
            "sys.stdout.buffer.write(s3.get_object(Bucket=sys.argv[1], Key=sys.argv[2])['Body'].read())",
            &[bucket, key],
        );
        (body, String::from_utf8(etag).unwrap().trim().to_owned())
    }
}

/// One HTTP/1.1 request over a fresh connection: status, head, body (de-chunked).
pub(crate) fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap().trim(), 16)
                .unwrap();
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
            rest = &rest[eol + 2 + size + 2..];
        }
        body = out;
    }
    (status, head, body)
}
