//! The syslog sink against loopback receivers: RFC 5424 headers, octet-counted TCP frames,
//! a connection the receiver drops mid-batch, UDP datagrams, CEF bodies.
#![cfg(feature = "syslog")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use audit_core::{Auditor, Severity};
use audit_sinks::format::cef;
use audit_sinks::syslog::{Body, SyslogSink, Transport};
use common::{events, fast_retry};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, UdpSocket};

/// Splits an RFC 5424 message into (pri, version, timestamp, host, app, procid, msgid, msg).
fn parse(m: &str) -> (u16, String, String, String, String, String, String, String) {
    let (pri, rest) = m.strip_prefix('<').unwrap().split_once('>').unwrap();
    let mut parts = rest.splitn(8, ' ');
    let mut next = || parts.next().unwrap().to_owned();
    let (ver, ts, host, app, pid, msgid, sd, msg) = (
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
    );
    assert_eq!(sd, "-");
    (pri.parse().unwrap(), ver, ts, host, app, pid, msgid, msg)
}

/// Reads octet-counted frames from every connection; the first connection is cut after
/// `cut_after` frames to force a reconnect.
async fn tcp_receiver(cut_after: usize) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (addr, receive_on(listener, cut_after))
}

/// [`tcp_receiver`] on a listener of the caller's.
fn receive_on(listener: TcpListener, cut_after: usize) -> Arc<Mutex<Vec<String>>> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let store = got.clone();
    tokio::spawn(async move {
        let mut first = true;
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let store = store.clone();
            let limit = if first { cut_after } else { usize::MAX };
            first = false;
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut frames = 0;
                let mut chunk = [0u8; 65536];
                loop {
                    // Parse complete frames.
                    while let Some(sp) = buf.iter().position(|b| *b == b' ') {
                        let len: usize = std::str::from_utf8(&buf[..sp]).unwrap().parse().unwrap();
                        if buf.len() < sp + 1 + len {
                            break;
                        }
                        let msg = String::from_utf8(buf[sp + 1..sp + 1 + len].to_vec()).unwrap();
                        buf.drain(..sp + 1 + len);
                        frames += 1;
                        if frames > limit {
                            return; // drop the connection, losing this frame
                        }
                        store.lock().unwrap().push(msg);
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    got
}

/// A receiver that stops reading (frozen), then dies with unread messages in its socket and
/// stays down while the next batch is tried, then comes back on the same port: every
/// message, those written while it was frozen included, reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_written_to_a_frozen_receiver_survive_its_restart() {
    use audit_core::{Batch, Sink as _};
    let frozen = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = frozen.local_addr().unwrap();
    let mut sink = SyslogSink::new(Transport::Tcp, addr.to_string());
    let sent = events(12, 10);
    let accept = tokio::spawn(async move {
        let (s, _) = frozen.accept().await.unwrap();
        (frozen, s)
    });
    // Written into the kernel's buffers; the receiver never reads them.
    sink.deliver(&Batch::from(sent[..6].to_vec()))
        .await
        .unwrap();
    let (listener, socket) = accept.await.unwrap();
    drop(socket);
    drop(listener);
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The receiver is down: this batch fails, and the pipeline will try it again.
    let second = Batch::from(sent[6..].to_vec());
    assert!(sink.deliver(&second).await.is_err());
    assert!(sink.deliver(&second).await.is_err());
    // Back on the same port.
    let got = receive_on(TcpListener::bind(addr).await.unwrap(), usize::MAX);
    sink.deliver(&second).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = got.lock().unwrap();
    let ids: HashSet<String> = got
        .iter()
        .map(|m| {
            let e: serde_json::Value = serde_json::from_str(&parse(m).7).unwrap();
            e["id"].as_str().unwrap().to_owned()
        })
        .collect();
    let missing: Vec<usize> = (0..sent.len())
        .filter(|i| !ids.contains(&sent[*i].id.to_string()))
        .collect();
    assert!(
        missing.is_empty(),
        "lost across the restart: events {missing:?}"
    );
}

/// An auditor delivering only the test's events (not the pipeline's own) to `sink`.
fn auditor_with(sink: SyslogSink, options: audit_core::SinkOptions) -> Auditor {
    Auditor::builder()
        .sink_with(
            sink,
            options.filter(|e| e.event_type.as_str() == "data.vector.delete"),
        )
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_frames_survive_a_dropped_connection() {
    let (addr, got) = tcp_receiver(5).await;
    let sink = SyslogSink::new(Transport::Tcp, &addr)
        .hostname("web-1")
        .app_name("vector-api");
    let auditor = auditor_with(sink, fast_retry().max_batch_events(20));
    let mut sent = events(60, 30);
    sent[0].severity = Severity::Warning;
    for (i, e) in sent.iter().enumerate() {
        auditor.record(e.clone()).unwrap();
        // Spread over several batches so a batch is in flight when the connection drops.
        if i.is_multiple_of(7) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    assert!(auditor.shutdown(Duration::from_secs(10)).await.complete);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let got = got.lock().unwrap();
    let mut ids = HashSet::new();
    for m in got.iter() {
        let (pri, ver, ts, host, app, pid, msgid, msg) = parse(m);
        assert_eq!(ver, "1");
        assert_eq!(
            (host.as_str(), app.as_str(), msgid.as_str()),
            ("web-1", "vector-api", "data.vector.delete")
        );
        assert_eq!(pid, std::process::id().to_string());
        let e: serde_json::Value = serde_json::from_str(&msg).unwrap();
        assert_eq!(e["timestamp"], ts.as_str());
        let sev = if e["severity"] == "warning" { 4 } else { 6 };
        assert_eq!(pri, 13 * 8 + sev);
        ids.insert(e["id"].as_str().unwrap().to_owned());
    }
    let missing = sent
        .iter()
        .filter(|e| !ids.contains(&e.id.to_string()))
        .count();
    for e in &sent {
        assert!(
            ids.contains(&e.id.to_string()),
            "nothing lost across the reconnect: {missing} missing of {}, {} received",
            sent.len(),
            got.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_datagrams_carry_cef_and_are_cut_to_size() {
    let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = rx.local_addr().unwrap().to_string();
    let sink = SyslogSink::new(Transport::Udp, &addr)
        .body(Body::Cef)
        .facility(10)
        .max_datagram(600);
    let auditor = auditor_with(sink, fast_retry());
    let sent = events(3, 10);
    let mut big = events(1, 2000).remove(0);
    big.description = Some("x".repeat(2000).into());
    for e in sent.iter().chain(std::iter::once(&big)) {
        auditor.record(e.clone()).unwrap();
    }
    assert!(auditor.shutdown(Duration::from_secs(5)).await.complete);
    let mut buf = [0u8; 65536];
    let mut msgs = Vec::new();
    for _ in 0..4 {
        let n = tokio::time::timeout(Duration::from_secs(2), rx.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        msgs.push(String::from_utf8(buf[..n].to_vec()).unwrap());
    }
    for m in &msgs[..3] {
        let (pri, _, _, _, _, _, msgid, msg) = parse(m);
        assert_eq!(pri, 10 * 8 + 6);
        assert_eq!(msgid, "data.vector.delete");
        let (headers, _) = cef::parse(&msg).unwrap();
        assert_eq!(headers[3], "data.vector.delete");
    }
    assert_eq!(msgs[3].len(), 600, "cut to the datagram size");
}

/// A receiver on IPv6 loopback gets its datagrams (the socket is bound in its family), in CEF
/// with the vendor and product the spec names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_reaches_an_ipv6_receiver() {
    let rx = UdpSocket::bind("[::1]:0").await.unwrap();
    let addr = rx.local_addr().unwrap().to_string();
    let spec = format!("syslog+udp://{addr}?format=cef&vendor=Acme&product=vector-api");
    let sink = audit_sinks::spec::build(&spec).await.unwrap();
    let auditor = audit_core::Auditor::builder().sink(sink).build().unwrap();
    auditor.record(events(1, 10).remove(0)).unwrap();
    assert!(auditor.shutdown(Duration::from_secs(5)).await.complete);
    let mut buf = [0u8; 65536];
    let n = tokio::time::timeout(Duration::from_secs(2), rx.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let line = String::from_utf8_lossy(&buf[..n]);
    assert!(line.contains("CEF:0|Acme|vector-api|"), "{line}");
    assert!(line.contains("data.vector.delete"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_a_retryable_error() {
    use audit_core::{Batch, Sink};
    let mut sink = SyslogSink::new(Transport::Tcp, "127.0.0.1:1");
    let err = sink.deliver(&Batch::from(events(1, 1))).await.unwrap_err();
    assert!(!err.is_permanent());
    assert!(err.message().contains("127.0.0.1:1"));
}

/// How each connection to the TLS receiver ended: `true` for a TLS `close_notify`.
type Ends = Arc<Mutex<Vec<bool>>>;

/// A TLS syslog receiver with a certificate for `localhost` signed by a private CA; returns
/// the port, the CA's PEM, what it received and how its connections ended.
async fn tls_receiver() -> (u16, String, Arc<Mutex<Vec<String>>>, Ends) {
    let (port, ca, got, ends, _) = tls_receiver_with(false).await;
    (port, ca, got, ends)
}

/// A client certificate and its key, as PEM.
type ClientPem = (String, String);

/// [`tls_receiver`]; with `mutual`, it accepts only clients presenting a certificate of its
/// CA, and returns one such certificate.
async fn tls_receiver_with(
    mutual: bool,
) -> (
    u16,
    String,
    Arc<Mutex<Vec<String>>>,
    Ends,
    Option<ClientPem>,
) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use tokio_rustls::rustls;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let builder = rustls::ServerConfig::builder();
    let (builder, client) = if mutual {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .unwrap();
        let client_key = KeyPair::generate().unwrap();
        let client_cert = CertificateParams::new(vec!["audit-client".to_owned()])
            .unwrap()
            .signed_by(&client_key, &ca)
            .unwrap();
        (
            builder.with_client_cert_verifier(verifier),
            Some((client_cert.pem(), client_key.serialize_pem())),
        )
    } else {
        (builder.with_no_client_auth(), None)
    };
    let config = builder
        .with_single_cert(
            vec![server_cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let store = got.clone();
    let ends: Ends = Arc::default();
    let ended = ends.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            let store = store.clone();
            let ended = ended.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 65536];
                loop {
                    while let Some(sp) = buf.iter().position(|b| *b == b' ') {
                        let len: usize = std::str::from_utf8(&buf[..sp]).unwrap().parse().unwrap();
                        if buf.len() < sp + 1 + len {
                            break;
                        }
                        store
                            .lock()
                            .unwrap()
                            .push(String::from_utf8(buf[sp + 1..sp + 1 + len].to_vec()).unwrap());
                        buf.drain(..sp + 1 + len);
                    }
                    match s.read(&mut chunk).await {
                        // rustls reads a clean end only after the peer's close_notify; a
                        // connection closed without one is an UnexpectedEof error.
                        Ok(0) => return ended.lock().unwrap().push(true),
                        Err(_) => return ended.lock().unwrap().push(false),
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (port, ca.pem(), got, ends, client)
}

/// A receiver that requires a client certificate (mutual TLS) gets the sink's; a sink
/// without one is refused, retryably.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_presents_the_client_certificate() {
    use audit_core::{Batch, Sink};
    let (port, ca, got, _, client) = tls_receiver_with(true).await;
    let (cert, key) = client.unwrap();
    let mut sink = SyslogSink::new(Transport::Tls, format!("localhost:{port}"))
        .ca_pem(ca.clone())
        .client_cert_pem(cert, key);
    sink.deliver(&Batch::from(events(3, 3))).await.unwrap();
    sink.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(got.lock().unwrap().len(), 3);
    // Without one the receiver refuses the session (under TLS 1.3 after the handshake, so
    // the write itself may look sent): none of its messages is stored.
    let mut anonymous = SyslogSink::new(Transport::Tls, format!("localhost:{port}")).ca_pem(ca);
    let _ = anonymous.deliver(&Batch::from(events(1, 1))).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = anonymous.flush().await;
    assert_eq!(
        got.lock().unwrap().len(),
        3,
        "nothing from the anonymous client"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_delivers_to_a_server_signed_by_the_given_ca_only() {
    let (port, ca, got, ends) = tls_receiver().await;
    let sink = SyslogSink::new(Transport::Tls, format!("localhost:{port}")).ca_pem(ca);
    let auditor = auditor_with(sink, fast_retry());
    let sent = events(30, 20);
    for e in &sent {
        auditor.record(e.clone()).unwrap();
    }
    assert!(auditor.shutdown(Duration::from_secs(10)).await.complete);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ids: HashSet<String> = got
        .lock()
        .unwrap()
        .iter()
        .map(|m| {
            let msg = parse(m).7;
            serde_json::from_str::<serde_json::Value>(&msg).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), sent.len());
    // At shutdown the sink ends its TLS session properly (close_notify), so the receiver
    // does not log a truncated connection.
    assert_eq!(*ends.lock().unwrap(), [true]);

    // The same server is not trusted through the platform's store: a retryable failure.
    use audit_core::{Batch, Sink};
    let mut untrusted = SyslogSink::new(Transport::Tls, format!("localhost:{port}"));
    let err = untrusted
        .deliver(&Batch::from(events(1, 1)))
        .await
        .unwrap_err();
    assert!(!err.is_permanent(), "{err}");
}
