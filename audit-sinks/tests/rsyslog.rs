//! The syslog sink against rsyslog itself (Debian's `rsyslogd`, imtcp), a receiver nobody
//! here wrote: every event arrives, parsed by rsyslog into the RFC 5424 fields we sent,
//! including across a restart of rsyslog in the middle of the run (where the sink re-sends
//! what it sent just before, as documented: at least once, never lost), and over mutual TLS
//! through rsyslog's own TLS driver (gtls), with every session ended cleanly.
#![cfg(feature = "syslog")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use audit_core::{AuditEvent, Auditor, RetryPolicy, SinkOptions};
use audit_sinks::syslog::{SyslogSink, Transport};

/// `rsyslogd`, or `None` (with the reason printed) when it is not installed and not required.
fn rsyslogd() -> Option<PathBuf> {
    for p in ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"] {
        if Path::new(p).exists() {
            return Some(p.into());
        }
    }
    if std::env::var_os("AUDIT_REQUIRE_SERVICES").is_some() {
        panic!("rsyslogd required (AUDIT_REQUIRE_SERVICES) but not installed");
    }
    eprintln!("skipping: rsyslogd is not installed (apt-get install rsyslog)");
    None
}

/// Whether something listens on 127.0.0.1:`port`, read from the kernel's table rather than
/// by connecting (a probe connection would be a session rsyslog logs as broken).
fn listening(port: u16) -> bool {
    let local = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1] == local && f[3] == "0A"
        })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One rsyslogd of the test's own, listening on `port`: each message of our app written as
/// the fields rsyslog parsed from it, one line each, to `out.log`; rsyslog's own messages
/// (its errors included) to `internal.log`.
struct Rsyslog {
    child: Child,
}

impl Rsyslog {
    /// Plain TCP (imtcp).
    fn start(bin: &Path, dir: &Path, port: u16) -> Rsyslog {
        Rsyslog::start_with(
            bin,
            dir,
            port,
            &format!(
                r#"module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{port}")"#
            ),
            "",
        )
    }

    /// `input` loads and configures the listener; `global` adds to the global settings.
    fn start_with(bin: &Path, dir: &Path, port: u16, input: &str, global: &str) -> Rsyslog {
        let out = dir.join("out.log");
        let internal = dir.join("internal.log");
        let conf = dir.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{dir}" processInternalMessages="on" {global})
{input}
template(name="fields" type="string"
         string="%pri%|%protocol-version%|%timereported:::date-rfc3339%|%hostname%|%app-name%|%procid%|%msgid%|%msg%\n")
if $app-name == "vector-api" then {{
  action(type="omfile" file="{out}" template="fields")
}} else {{
  action(type="omfile" file="{internal}")
}}
"#,
                dir = dir.display(),
                out = out.display(),
                internal = internal.display(),
            ),
        )
        .unwrap();
        let child = Command::new(bin)
            .args(["-n", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !listening(port) {
            assert!(
                Instant::now() < deadline,
                "rsyslogd did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Rsyslog { child }
    }

    /// Stops it as an operator would (SIGTERM), so it writes what it took.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn event(n: u64) -> AuditEvent {
    AuditEvent::builder("data.vector.delete")
        .organization_id("acme")
        .detail("n", n)
        .build()
        .unwrap()
}

/// The copies rsyslog wrote of each event (its parsed fields), by the event's `seq`.
fn received(path: &Path) -> BTreeMap<u64, Vec<Vec<String>>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut by_seq: BTreeMap<u64, Vec<Vec<String>>> = BTreeMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.splitn(8, '|').collect();
        let msg: serde_json::Value = serde_json::from_str(fields[7].trim_start())
            .unwrap_or_else(|e| panic!("rsyslog's msg is not our JSON ({e}): {line}"));
        let seq = msg["integrity"]["seq"].as_u64().unwrap();
        by_seq
            .entry(seq)
            .or_default()
            .push(fields[..7].iter().map(|f| (*f).to_owned()).collect());
        assert_eq!(
            msg["eventType"], fields[6],
            "MSGID is the event type: {line}"
        );
    }
    by_seq
}

/// The seq audit of what rsyslog wrote: each message is the event's canonical line, so the
/// trail verifies through rsyslog.
fn seq_audit(path: &Path) -> audit_core::integrity::Report {
    let text = std::fs::read_to_string(path).unwrap();
    audit_core::integrity::Verifier::verify_lines(
        text.lines()
            .map(|line| line.splitn(8, '|').nth(7).unwrap().trim_start()),
        None,
    )
}

#[test]
fn rsyslog_receives_every_event_once_with_the_fields_we_sent_across_its_restart() {
    let Some(bin) = rsyslogd() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let first = Rsyslog::start(&bin, dir.path(), port);
    let sink = SyslogSink::new(Transport::Tcp, format!("127.0.0.1:{port}"))
        .hostname("web-1")
        .app_name("vector-api");
    let auditor = Auditor::builder()
        .sink_with(
            sink,
            SinkOptions::new()
                .max_batch_events(10)
                .max_wait(Duration::from_millis(5))
                .retry(
                    RetryPolicy::default()
                        .initial_backoff(Duration::from_millis(20))
                        .max_backoff(Duration::from_millis(200)),
                ),
        )
        .build()
        .unwrap();
    for n in 0..100 {
        auditor.record(event(n)).unwrap();
    }
    let out = dir.path().join("out.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    while received(&out).len() < 100 {
        assert!(
            Instant::now() < deadline,
            "rsyslog wrote {}",
            received(&out).len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // rsyslog is restarted (an upgrade, say) while the service keeps recording.
    first.stop();
    for n in 100..150 {
        auditor.record(event(n)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let second = Rsyslog::start(&bin, dir.path(), port);
    for n in 150..200 {
        auditor.record(event(n)).unwrap();
    }
    let report = auditor.shutdown_blocking(Duration::from_secs(20));
    assert!(report.complete, "{report}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while received(&out).len() < 200 {
        assert!(
            Instant::now() < deadline,
            "rsyslog wrote {}",
            received(&out).len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    second.stop();
    // What rsyslog wrote is the trail itself: each message is the event's canonical line, so
    // its hash chain verifies through rsyslog (the re-sent copies count as repeats).
    let report = seq_audit(&out);
    assert!(report.is_intact(), "{:?}", report.problems);

    let got = received(&out);
    // The stream has no gap: the 200 events, then the pipeline's own reports of the outage
    // (the sink failing, then recovering), each with its seq.
    let last = *got.keys().last().unwrap();
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        (1..=last).collect::<Vec<_>>()
    );
    let of_type = |t: &str| got.values().filter(|c| c[0][6] == t).count();
    assert_eq!(of_type("data.vector.delete"), 200);
    assert_eq!(of_type("system.sink.unhealthy"), 1, "{got:?}");
    assert_eq!(of_type("system.sink.recovered"), 1, "{got:?}");
    for (seq, copies) in &got {
        // Only what was sent before the restart may come twice (the re-sent tail), and
        // every copy is the same message.
        if *seq > 100 {
            assert_eq!(
                copies.len(),
                1,
                "event {seq} was sent after the restart: {copies:?}"
            );
        }
        assert!(copies.iter().all(|c| c == &copies[0]), "{copies:?}");
        let fields = &copies[0];
        if fields[6] != "data.vector.delete" {
            continue;
        }
        // facility 13 (log audit), severity 6 (info)
        assert_eq!(fields[0], (13 * 8 + 6).to_string());
        assert_eq!(fields[1], "1", "RFC 5424");
        assert_eq!(fields[3], "web-1");
        assert_eq!(fields[4], "vector-api");
        assert_eq!(fields[5], std::process::id().to_string());
    }
}

/// The rsyslog TLS driver (`rsyslog-gnutls`), or `None` when it is not installed and not
/// required.
fn gtls_driver() -> Option<()> {
    let found = [
        "/usr/lib/x86_64-linux-gnu/rsyslog",
        "/usr/lib/rsyslog",
        "/usr/lib64/rsyslog",
    ]
    .iter()
    .any(|d| Path::new(d).join("lmnsd_gtls.so").exists());
    if found {
        return Some(());
    }
    if std::env::var_os("AUDIT_REQUIRE_SERVICES").is_some() {
        panic!("rsyslog's TLS driver required (AUDIT_REQUIRE_SERVICES) but not installed");
    }
    eprintln!("skipping: rsyslog-gnutls is not installed (apt-get install rsyslog-gnutls)");
    None
}

/// Over TLS with client certificates (rsyslog's gtls driver, `x509/certvalid`): every event
/// arrives and verifies, and rsyslog logs no error about how the sessions ended (it names a
/// session closed without TLS `close_notify` as `non-properly terminated`).
#[test]
fn rsyslog_over_mutual_tls_receives_everything_and_every_session_ends_cleanly() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let (Some(bin), Some(())) = (rsyslogd(), gtls_driver()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let issue = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = issue("localhost");
    let (client_cert, client_key) = issue("audit-client");
    let file = |name: &str, pem: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path.display().to_string()
    };
    let global = format!(
        r#"DefaultNetstreamDriver="gtls" DefaultNetstreamDriverCAFile="{}"
           DefaultNetstreamDriverCertFile="{}" DefaultNetstreamDriverKeyFile="{}""#,
        file("ca.pem", &ca.pem()),
        file("server.pem", &server_cert),
        file("server-key.pem", &server_key)
    );
    let port = free_port();
    let rsyslog = Rsyslog::start_with(
        &bin,
        dir.path(),
        port,
        &format!(
            r#"module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1"
       StreamDriver.AuthMode="x509/certvalid")
input(type="imtcp" address="127.0.0.1" port="{port}")"#
        ),
        &global,
    );
    let sink = SyslogSink::new(Transport::Tls, format!("localhost:{port}"))
        .hostname("web-1")
        .app_name("vector-api")
        .ca_pem(ca.pem())
        .client_cert_pem(client_cert, client_key);
    let auditor = Auditor::builder()
        .sink_with(
            sink,
            SinkOptions::new()
                .max_batch_events(10)
                .max_wait(Duration::from_millis(5)),
        )
        .build()
        .unwrap();
    for n in 0..100 {
        auditor.record(event(n)).unwrap();
    }
    let report = auditor.shutdown_blocking(Duration::from_secs(20));
    assert!(report.complete, "{report}");
    let out = dir.path().join("out.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    while received(&out).len() < 100 {
        assert!(
            Instant::now() < deadline,
            "rsyslog wrote {}; its own log: {}",
            received(&out).len(),
            std::fs::read_to_string(dir.path().join("internal.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Give rsyslog the moment it takes to log how the session ended, then stop it.
    std::thread::sleep(Duration::from_millis(300));
    rsyslog.stop();
    let got = received(&out);
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        (1..=100).collect::<Vec<_>>()
    );
    assert!(got.values().all(|copies| copies.len() == 1));
    let audit = seq_audit(&out);
    assert!(audit.is_intact(), "{:?}", audit.problems);
    let internal = std::fs::read_to_string(dir.path().join("internal.log")).unwrap_or_default();
    for complaint in ["non-properly terminated", "GnuTLS error", "error -110"] {
        assert!(
            !internal.contains(complaint),
            "rsyslog complained ({complaint}): {internal}"
        );
    }
}
