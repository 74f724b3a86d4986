//! [`SyslogSink`]: RFC 5424 syslog over UDP or TCP (feature `syslog`).
//!
//! Each event is one message: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG`, where
//! the priority is the facility (default 13, *log audit*) × 8 plus the event's severity, the
//! timestamp is the event's (RFC 3339, milliseconds), `MSGID` the event type (cut to 32
//! characters), and `MSG` the event as JSON or as a [CEF](crate::format::cef) line. Header
//! fields keep to the printable ASCII RFC 5424 allows (anything else becomes `_`).
//!
//! - **TCP** frames messages by octet counting (RFC 6587: `LEN SP MSG`). Syslog has no
//!   acknowledgements: a write succeeds once the bytes are in the kernel, even if the
//!   receiver then drops the connection without reading them. So the sink keeps the last
//!   256 KiB it sent; before each batch (and at shutdown, after a short grace period) it checks
//!   whether the receiver closed the connection, and if so reconnects and sends that tail again
//!   with the new batch. Nothing is lost to a dropped connection noticed this way; a receiver
//!   may see some messages twice (at-least-once).
//! - **UDP** sends one datagram per message. It has no acknowledgement at all, so use it only
//!   where the network is trusted; messages over [`max_datagram`](SyslogSink::max_datagram)
//!   (default 8 KiB) are cut (CEF survives a cut better than JSON).
//!
//! - **TLS** (RFC 5425) is TCP's framing inside TLS (rustls on `ring`), with the same
//!   reconnect-and-resend behaviour; the server is verified against the platform's trust
//!   store, or only against a private CA given with [`ca_pem`](SyslogSink::ca_pem); a
//!   receiver that asks for a client certificate gets the one given with
//!   [`client_cert_pem`](SyslogSink::client_cert_pem).
//!
//! ```no_run
//! use audit_sinks::syslog::{Body, SyslogSink, Transport};
//!
//! let siem = SyslogSink::new(Transport::Tcp, "siem.example.com:6514").body(Body::Cef);
//! ```

use std::fmt;
use std::io;
use std::time::Duration;

use audit_core::{AuditEvent, Batch, Sink, SinkError};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

use crate::format::cef::Cef;

/// How messages travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// One datagram per message, unacknowledged.
    Udp,
    /// A stream, octet-counted frames.
    Tcp,
    /// TCP inside TLS (RFC 5425), the server verified against the platform's trust store or
    /// the CA given to [`ca_pem`](SyslogSink::ca_pem).
    Tls,
}

/// What the message body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Body {
    /// The event JSON (the default).
    #[default]
    Json,
    /// A CEF line.
    Cef,
}

enum Conn {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Udp(UdpSocket),
}

/// Sends events as RFC 5424 syslog messages.
pub struct SyslogSink {
    transport: Transport,
    addr: String,
    facility: u8,
    hostname: String,
    app_name: Option<String>,
    body: Body,
    cef: Cef,
    max_datagram: usize,
    ca_pem: Option<Vec<u8>>,
    /// For mutual TLS: the client's certificate chain and private key, as PEM.
    client_pem: Option<(Vec<u8>, Vec<u8>)>,
    conn: Option<Conn>,
    /// The most recent messages sent over TCP, re-sent if the connection turns out closed.
    tail: std::collections::VecDeque<String>,
    /// The tail must be sent again before anything new (the connection it went over was
    /// found closed, and no new one has taken it yet).
    resend: bool,
    tail_bytes: usize,
}

/// How much recently sent TCP data is kept for re-sending.
const TAIL_BYTES: usize = 256 * 1024;

impl fmt::Debug for SyslogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyslogSink")
            .field("transport", &self.transport)
            .field("addr", &self.addr)
            .field("body", &self.body)
            .finish_non_exhaustive()
    }
}

/// A header field: printable US-ASCII only, at most `max` characters, `-` when empty.
fn field(s: &str, max: usize) -> String {
    let f: String = s
        .chars()
        .map(|c| if ('!'..='~').contains(&c) { c } else { '_' })
        .take(max)
        .collect();
    if f.is_empty() { "-".into() } else { f }
}

impl SyslogSink {
    /// A sink sending to `addr` (`host:port`) over `transport`.
    pub fn new(transport: Transport, addr: impl Into<String>) -> SyslogSink {
        let hostname = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        SyslogSink {
            transport,
            addr: addr.into(),
            facility: 13,
            hostname,
            app_name: None,
            body: Body::Json,
            cef: Cef::default(),
            max_datagram: 8192,
            ca_pem: None,
            conn: None,
            client_pem: None,
            tail: std::collections::VecDeque::new(),
            resend: false,
            tail_bytes: 0,
        }
    }

    /// The facility (0–23; default 13, *log audit*; 10 is *authpriv*).
    #[must_use]
    pub fn facility(mut self, facility: u8) -> SyslogSink {
        self.facility = facility.min(23);
        self
    }

    /// The message body format.
    #[must_use]
    pub fn body(mut self, body: Body) -> SyslogSink {
        self.body = body;
        self
    }

    /// The CEF header's vendor, product and version (for [`Body::Cef`]).
    #[must_use]
    pub fn cef(mut self, cef: Cef) -> SyslogSink {
        self.cef = cef;
        self
    }

    /// `APP-NAME` (default: the event's service, else `audit`).
    #[must_use]
    pub fn app_name(mut self, name: impl Into<String>) -> SyslogSink {
        self.app_name = Some(name.into());
        self
    }

    /// `HOSTNAME` (default: this machine's).
    #[must_use]
    pub fn hostname(mut self, name: impl Into<String>) -> SyslogSink {
        self.hostname = name.into();
        self
    }

    /// Largest UDP datagram (default 8192 bytes); longer messages are cut.
    #[must_use]
    pub fn max_datagram(mut self, bytes: usize) -> SyslogSink {
        self.max_datagram = bytes.max(480);
        self
    }

    /// Trusts only the CA certificates in `pem` for TLS (an internal SIEM's private CA).
    #[must_use]
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> SyslogSink {
        self.ca_pem = Some(pem.into());
        self
    }

    /// For mutual TLS: presents the client certificate chain in `cert_pem` with the private
    /// key in `key_pem` (PKCS#8, PKCS#1 or SEC1 PEM) to receivers that ask for one.
    #[must_use]
    pub fn client_cert_pem(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> SyslogSink {
        self.client_pem = Some((cert_pem.into(), key_pem.into()));
        self
    }

    fn tls_config(&self) -> io::Result<rustls::ClientConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        // Already installed (by us or the application) is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let builder = match &self.ca_pem {
            Some(pem) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(pem) {
                    let cert = cert.map_err(|e| io::Error::other(format!("CA PEM: {e}")))?;
                    roots
                        .add(cert)
                        .map_err(|e| io::Error::other(format!("CA: {e}")))?;
                }
                rustls::ClientConfig::builder().with_root_certificates(roots)
            }
            None => {
                use rustls_platform_verifier::BuilderVerifierExt;
                rustls::ClientConfig::builder()
                    .with_platform_verifier()
                    .map_err(|e| io::Error::other(format!("platform trust store: {e}")))?
            }
        };
        match &self.client_pem {
            None => Ok(builder.with_no_client_auth()),
            Some((cert_pem, key_pem)) => {
                let chain = CertificateDer::pem_slice_iter(cert_pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| io::Error::other(format!("client certificate PEM: {e}")))?;
                let key = PrivateKeyDer::from_pem_slice(key_pem)
                    .map_err(|e| io::Error::other(format!("client key PEM: {e}")))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| io::Error::other(format!("client certificate: {e}")))
            }
        }
    }

    /// One RFC 5424 message.
    pub fn message(&self, e: &AuditEvent) -> Result<String, SinkError> {
        let pri =
            u16::from(self.facility) * 8 + u16::from(crate::format::syslog_severity(e.severity));
        let app = self
            .app_name
            .as_deref()
            .or_else(|| e.context.as_ref().and_then(|c| c.service.as_deref()))
            .unwrap_or("audit");
        let msg = match self.body {
            Body::Cef => self.cef.encode(e),
            _ => serde_json::to_string(e)
                .map_err(|err| SinkError::permanent(format!("cannot encode event: {err}")))?,
        };
        Ok(format!(
            "<{pri}>1 {} {} {} {} {} - {msg}",
            e.timestamp,
            field(&self.hostname, 255),
            field(app, 48),
            std::process::id(),
            field(e.event_type.as_str(), 32),
        ))
    }

    /// True when the stream receiver has closed (or reset) the connection.
    async fn peer_closed(&mut self) -> bool {
        use tokio::io::AsyncReadExt;
        match &mut self.conn {
            Some(Conn::Tcp(s)) => {
                let mut probe = [0u8; 64];
                match s.try_read(&mut probe) {
                    Ok(0) => true,
                    Ok(_) => false, // the receiver talks back; ignored
                    Err(e) => e.kind() != io::ErrorKind::WouldBlock,
                }
            }
            Some(Conn::Tls(s)) => {
                // Reading through TLS consumes session tickets and sees close_notify; a
                // read that would wait means the connection is open.
                let mut probe = [0u8; 256];
                match tokio::time::timeout(Duration::ZERO, s.read(&mut probe)).await {
                    Err(_) => false,
                    Ok(Ok(0)) | Ok(Err(_)) => true,
                    Ok(Ok(_)) => false,
                }
            }
            _ => false,
        }
    }

    fn remember(&mut self, messages: &[String]) {
        for m in messages {
            self.tail_bytes += m.len();
            self.tail.push_back(m.clone());
        }
        while self.tail_bytes > TAIL_BYTES {
            match self.tail.pop_front() {
                Some(m) => self.tail_bytes -= m.len(),
                None => break,
            }
        }
    }

    async fn connect(&mut self) -> io::Result<&mut Conn> {
        if self.conn.is_none() {
            let conn = match self.transport {
                Transport::Tcp => {
                    let s = tokio::time::timeout(
                        Duration::from_secs(10),
                        TcpStream::connect(&self.addr),
                    )
                    .await
                    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
                    s.set_nodelay(true)?;
                    Conn::Tcp(s)
                }
                Transport::Tls => {
                    let tcp = tokio::time::timeout(
                        Duration::from_secs(10),
                        TcpStream::connect(&self.addr),
                    )
                    .await
                    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
                    tcp.set_nodelay(true)?;
                    let host = self
                        .addr
                        .rsplit_once(':')
                        .map_or(self.addr.as_str(), |(h, _)| h)
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_owned();
                    let name = rustls::pki_types::ServerName::try_from(host)
                        .map_err(|e| io::Error::other(format!("TLS server name: {e}")))?;
                    let connector =
                        tokio_rustls::TlsConnector::from(std::sync::Arc::new(self.tls_config()?));
                    let tls =
                        tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
                            .await
                            .map_err(|_| {
                                io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
                            })??;
                    Conn::Tls(Box::new(tls))
                }
                Transport::Udp => {
                    // Bound in the receiver's address family: an IPv4 socket cannot send to
                    // `[::1]`.
                    let target = tokio::net::lookup_host(&self.addr)
                        .await?
                        .next()
                        .ok_or_else(|| {
                            io::Error::other(format!("{} resolves to no address", self.addr))
                        })?;
                    let local: std::net::SocketAddr = if target.is_ipv6() {
                        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                    } else {
                        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
                    };
                    let s = UdpSocket::bind(local).await?;
                    s.connect(target).await?;
                    Conn::Udp(s)
                }
            };
            self.conn = Some(conn);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| io::Error::other("no connection"))
    }
}

impl Sink for SyslogSink {
    fn name(&self) -> &str {
        "syslog"
    }

    async fn deliver(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let mut messages = batch
            .iter()
            .map(|e| self.message(e))
            .collect::<Result<Vec<_>, _>>()?;
        self.send(&mut messages).await
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        if matches!(self.conn, Some(Conn::Tcp(_) | Conn::Tls(_))) {
            // Give a receiver that is about to drop the connection time to do so, then
            // re-send what it may not have read.
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.send(&mut Vec::new()).await?;
        }
        // Called at shutdown: end the session properly (TLS: close_notify, so the receiver
        // does not log a truncated connection; TCP: FIN after everything written).
        let closed = match self.conn.take() {
            Some(Conn::Tls(mut s)) => s.shutdown().await,
            Some(Conn::Tcp(mut s)) => s.shutdown().await,
            _ => Ok(()),
        };
        closed.map_err(|e| SinkError::retryable(format!("syslog {}: closing: {e}", self.addr)))
    }
}

impl SyslogSink {
    /// Sends `messages` (after re-sending the tail if the TCP receiver closed on us).
    async fn send(&mut self, messages: &mut Vec<String>) -> Result<(), SinkError> {
        // A connection found closed, or lost on an earlier write: what was sent over it may
        // never have been read. The tail stays kept until a new connection has taken it: a
        // reconnect that fails must not lose it.
        if self.peer_closed().await || self.conn.is_none() {
            self.conn = None;
            self.resend = !self.tail.is_empty();
        }
        let resend = std::mem::take(&mut self.resend);
        if resend {
            let mut again: Vec<String> = self.tail.iter().cloned().collect();
            again.append(messages);
            *messages = again;
        }
        if messages.is_empty() {
            return Ok(());
        }
        // What is new in `messages` (after the tail, when it is re-sent).
        let fresh_from = if resend { self.tail.len() } else { 0 };
        let max = self.max_datagram;
        let addr = self.addr.clone();
        let fail = |e: io::Error| SinkError::retryable(format!("syslog {addr}: {e}"));
        let framed = || {
            let mut buf = Vec::with_capacity(messages.iter().map(|m| m.len() + 8).sum());
            for m in messages.iter() {
                buf.extend_from_slice(format!("{} ", m.len()).as_bytes());
                buf.extend_from_slice(m.as_bytes());
            }
            buf
        };
        let conn = match self.connect().await {
            Ok(c) => c,
            Err(e) => {
                self.resend = resend;
                messages.drain(..fresh_from);
                return Err(fail(e));
            }
        };
        let result = match conn {
            Conn::Tcp(s) => match s.write_all(&framed()).await {
                Ok(()) => s.flush().await,
                Err(e) => Err(e),
            },
            Conn::Tls(s) => match s.write_all(&framed()).await {
                Ok(()) => s.flush().await,
                Err(e) => Err(e),
            },
            Conn::Udp(s) => {
                let mut r = Ok(());
                for m in messages.iter() {
                    let mut end = m.len().min(max);
                    while !m.is_char_boundary(end) {
                        end -= 1;
                    }
                    if let Err(e) = s.send(&m.as_bytes()[..end]).await {
                        r = Err(e);
                        break;
                    }
                }
                r
            }
        };
        if let Err(e) = result {
            // Re-open on the next attempt (re-sending the tail); the pipeline retries this
            // batch.
            self.conn = None;
            self.resend = resend || !self.tail.is_empty();
            return Err(fail(e));
        }
        if self.transport != Transport::Udp {
            self.remember(&messages[fresh_from..]);
        }
        Ok(())
    }
}

use crate::spec::params::{Params, SpecError};

/// What a `syslog+tcp://`, `syslog+tls://` or `syslog+udp://` spec says (see
/// [`crate::spec`]).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyslogSpec {
    /// The transport.
    pub transport: Transport,
    /// For TLS: a PEM file of the CA to trust instead of the platform's roots (`ca=`).
    pub ca: Option<String>,
    /// For mutual TLS: PEM files of the client certificate chain and its key (`cert=`,
    /// `key=`).
    pub client: Option<(String, String)>,
    /// `host:port`.
    pub addr: String,
    /// CEF body (`format=cef`; else JSON).
    pub cef: bool,
    /// The CEF header's vendor, product and version (`vendor=`, `product=`, `version=`; CEF
    /// only), each defaulting to this crate's.
    pub cef_names: [Option<String>; 3],
    /// Facility 0–23 (`facility=`).
    pub facility: Option<u8>,
}

crate::spec::params::opaque_debug!(SyslogSpec);

impl SyslogSpec {
    pub(crate) fn parse(scheme: &str, rest: &str) -> Result<SyslogSpec, SpecError> {
        let allowed = [
            "format", "facility", "ca", "cert", "key", "vendor", "product", "version",
        ];
        let (base, mut p) = Params::split("syslog", rest, &allowed)?;
        let transport = match scheme {
            "syslog+tls" => Transport::Tls,
            "syslog+udp" => Transport::Udp,
            _ => Transport::Tcp,
        };
        let tls = transport == Transport::Tls;
        let addr = base
            .strip_prefix("//")
            .map(|a| a.trim_end_matches('/'))
            .filter(|a| a.contains(':') && !a.contains('/'))
            .ok_or_else(|| SpecError::new("syslog: expected syslog+tcp://host:port"))?;
        let cef = match p.take("format").as_deref() {
            None | Some("json") => false,
            Some("cef") => true,
            Some(_) => return Err(SpecError::new("syslog: format must be json or cef")),
        };
        let facility = p
            .take("facility")
            .map(|f| {
                f.parse::<u8>()
                    .ok()
                    .filter(|f| *f <= 23)
                    .ok_or_else(|| SpecError::new("syslog: facility must be 0-23"))
            })
            .transpose()?;
        let ca = p.take("ca");
        if ca.is_some() && !tls {
            return Err(SpecError::new("syslog: ca= only applies to syslog+tls"));
        }
        let client = match (p.take("cert"), p.take("key")) {
            (None, None) => None,
            (Some(c), Some(k)) if tls => Some((c, k)),
            (Some(_), Some(_)) => {
                return Err(SpecError::new(
                    "syslog: cert= and key= only apply to syslog+tls",
                ));
            }
            _ => return Err(SpecError::new("syslog: cert= and key= go together")),
        };
        let cef_names = ["vendor", "product", "version"].map(|k| p.take(k));
        if !cef && cef_names.iter().any(Option::is_some) {
            return Err(SpecError::new(
                "syslog: vendor=, product= and version= only apply to format=cef",
            ));
        }
        Ok(SyslogSpec {
            transport,
            ca,
            client,
            addr: addr.to_owned(),
            cef,
            cef_names,
            facility,
        })
    }

    pub(crate) async fn build(self) -> Result<SyslogSink, SpecError> {
        let read = |path: &str| {
            std::fs::read(path)
                .map_err(|e| SpecError::new(format!("syslog: cannot read {path}: {e}")))
        };
        let mut s = SyslogSink::new(self.transport, self.addr);
        if let Some(path) = self.ca {
            s = s.ca_pem(read(&path)?);
        }
        if let Some((cert, key)) = self.client {
            s = s.client_cert_pem(read(&cert)?, read(&key)?);
        }
        if self.cef {
            s = s.body(Body::Cef);
            if self.cef_names.iter().any(Option::is_some) {
                let default = Cef::default();
                let (dv, dp, dver) = default.names();
                let [vendor, product, version] = self.cef_names;
                s = s.cef(Cef::new(
                    vendor.as_deref().unwrap_or(dv),
                    product.as_deref().unwrap_or(dp),
                    version.as_deref().unwrap_or(dver),
                ));
            }
        }
        if let Some(f) = self.facility {
            s = s.facility(f);
        }
        Ok(s)
    }
}
