//! The syslog sink against rsyslog itself (Debian's `rsyslogd`, imtcp), a receiver nobody
//! here wrote: every event arrives, parsed by rsyslog into the RFC 5424 fields we sent,
//! including across a restart of rsyslog in the middle of the run (where the sink re-sends
//! what it sent just before, as documented: at least once, never lost).
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One rsyslogd of the test's own: TCP on `port`, each message written as the fields rsyslog
/// parsed from it, one line each.
struct Rsyslog {
    child: Child,
}

impl Rsyslog {
    fn start(bin: &Path, dir: &Path, port: u16) -> Rsyslog {
        let out = dir.join("out.log");
        let conf = dir.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{dir}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{port}")
template(name="fields" type="string"
         string="%pri%|%protocol-version%|%timereported:::date-rfc3339%|%hostname%|%app-name%|%procid%|%msgid%|%msg%\n")
action(type="omfile" file="{out}" template="fields")
"#,
                dir = dir.display(),
                out = out.display()
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
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
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
    let text = std::fs::read_to_string(&out).unwrap();
    let report = audit_core::integrity::Verifier::verify_lines(
        text.lines()
            .map(|line| line.splitn(8, '|').nth(7).unwrap().trim_start()),
        None,
    );
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
