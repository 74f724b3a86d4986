//! [`WebhookSink`]: JSON batches POSTed to your endpoint (feature `webhook`).
//!
//! Each request carries `{"events": [...]}` with:
//! - `X-Audit-Signature: sha256=<hex>` — HMAC-SHA256 of the exact body under the shared
//!   secret, so the receiver can check the batch came from you, unchanged;
//! - `Idempotency-Key` — derived from the ids of the events in the body, identical when the
//!   same events are sent again, so a receiver can drop a retried duplicate.
//!
//! 2xx accepts; 429 and 503 are retried after `Retry-After`; other 5xx, 401/403 (a rotated
//! secret an operator can fix) and timeouts are retried with backoff; 413 splits the body in
//! halves and sends each; any other 4xx rejects the batch (reported as lost). Bodies are kept
//! under [`max_body_bytes`](WebhookSink::max_body_bytes) (default 1 MiB).
//!
//! ```no_run
//! use audit_core::Auditor;
//! use audit_sinks::WebhookSink;
//!
//! let hook = WebhookSink::new("https://hooks.example.com/audit")?.secret("s3cret");
//! let auditor = Auditor::builder().sink(hook).build()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::time::Duration;

use audit_core::{Batch, Sink, SinkError};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::http;

/// POSTs batches of events as JSON to an HTTP endpoint.
#[derive(Clone)]
pub struct WebhookSink {
    client: reqwest::Client,
    url: reqwest::Url,
    secret: Option<Vec<u8>>,
    max_body_bytes: usize,
    max_events: usize,
    format: crate::format::Format,
}

impl fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret is never shown; the URL without its query (which may hold a token).
        let mut url = self.url.clone();
        url.set_query(None);
        f.debug_struct("WebhookSink")
            .field("url", &url.as_str())
            .field("signed", &self.secret.is_some())
            .finish_non_exhaustive()
    }
}

/// Hex of the HMAC-SHA256 of `body` under `key`.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

impl WebhookSink {
    /// A sink posting to `url` (`http` or `https`).
    pub fn new(url: &str) -> Result<WebhookSink, audit_core::Error> {
        let url = reqwest::Url::parse(url)
            .map_err(|e| audit_core::Error::config(format!("webhook URL is not valid: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(audit_core::Error::config(format!(
                "webhook URL must be http or https, not {:?}",
                url.scheme()
            )));
        }
        Ok(WebhookSink {
            client: http::client(Duration::from_secs(30))?,
            url,
            secret: None,
            max_body_bytes: 1 << 20,
            max_events: 1000,
            format: crate::format::Format::Native,
        })
    }

    /// Signs every body with HMAC-SHA256 under `secret`.
    #[must_use]
    pub fn secret(mut self, secret: impl AsRef<[u8]>) -> WebhookSink {
        self.secret = Some(secret.as_ref().to_vec());
        self
    }

    /// Largest body sent (default 1 MiB); a larger batch goes in several requests.
    #[must_use]
    pub fn max_body_bytes(mut self, bytes: usize) -> WebhookSink {
        self.max_body_bytes = bytes.max(1024);
        self
    }

    /// The format of each element of `events` (default: the canonical event JSON; CEF lines
    /// become JSON strings).
    #[must_use]
    pub fn format(mut self, format: crate::format::Format) -> WebhookSink {
        self.format = format;
        self
    }

    /// Most events per request (default 1000).
    #[must_use]
    pub fn max_events(mut self, n: usize) -> WebhookSink {
        self.max_events = n.max(1);
        self
    }

    /// Sends `events[range]` (already encoded), splitting on 413.
    async fn send(&self, ids: &[String], encoded: &[Vec<u8>]) -> Result<(), SinkError> {
        let mut split = http::Splitter::new(http::chunks(
            encoded,
            self.max_events,
            self.max_body_bytes,
            |e| e.len() + 1,
        ));
        while let Some(range) = split.next_range() {
            let mut body = Vec::with_capacity(self.max_body_bytes.min(1 << 20));
            body.extend_from_slice(b"{\"events\":[");
            for (i, e) in encoded[range.clone()].iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(e);
            }
            body.extend_from_slice(b"]}");
            let key = hex::encode(&Sha256::digest(ids[range.clone()].join("\n").as_bytes())[..16]);
            let mut req = self
                .client
                .post(self.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header("Idempotency-Key", key);
            if let Some(secret) = &self.secret {
                req = req.header(
                    "X-Audit-Signature",
                    format!("sha256={}", signature(secret, &body)),
                );
            }
            let resp = req
                .body(body)
                .send()
                .await
                .map_err(|e| http::transport("webhook", e))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let text = resp.text().await.unwrap_or_default();
            let answer = http::classify("webhook", status, &headers, &text);
            split.answered("webhook", range, answer)?;
        }
        Ok(())
    }
}

impl Sink for WebhookSink {
    fn name(&self) -> &str {
        "webhook"
    }

    async fn deliver(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let mut ids = Vec::with_capacity(batch.len());
        let mut encoded = Vec::with_capacity(batch.len());
        for e in batch {
            ids.push(e.id.to_string());
            let mut one = Vec::with_capacity(512);
            self.format.write(&mut one, e)?;
            if !self.format.is_json() {
                // A CEF line goes in as a JSON string.
                let text = String::from_utf8_lossy(&one).into_owned();
                one = serde_json::to_vec(&text)
                    .map_err(|err| SinkError::permanent(format!("cannot encode event: {err}")))?;
            }
            encoded.push(one);
        }
        self.send(&ids, &encoded).await
    }
}

use crate::spec::params::{Params, SpecError, format_of, http_url};

/// What a `webhook+https://` spec says (see [`crate::spec`]).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebhookSpec {
    /// The endpoint.
    pub url: String,
    /// HMAC secret (`secret=`).
    pub secret: Option<String>,
    /// Largest body (`max_bytes=`).
    pub max_bytes: Option<usize>,
    /// Element format (`format=`).
    pub format: Option<String>,
}

crate::spec::params::opaque_debug!(WebhookSpec);

impl WebhookSpec {
    pub(crate) fn parse(scheme: &str, rest: &str) -> Result<WebhookSpec, SpecError> {
        let (base, mut p) = Params::split("webhook", rest, &["secret", "max_bytes", "format"])?;
        let url = format!("{}:{base}", &scheme["webhook+".len()..]);
        http_url("webhook", &url)?;
        let max_bytes = p
            .take("max_bytes")
            .map(|v| {
                v.parse::<usize>()
                    .map_err(|_| SpecError::new("webhook: max_bytes must be a number of bytes"))
            })
            .transpose()?;
        Ok(WebhookSpec {
            url,
            secret: p.take("secret"),
            max_bytes,
            format: p.format()?,
        })
    }

    pub(crate) async fn build(self) -> Result<WebhookSink, SpecError> {
        let mut s = WebhookSink::new(&self.url)
            .map_err(SpecError::from)?
            .format(format_of(self.format.as_deref()));
        if let Some(secret) = self.secret {
            s = s.secret(secret);
        }
        if let Some(n) = self.max_bytes {
            s = s.max_body_bytes(n);
        }
        Ok(s)
    }
}
