//! [`SplunkSink`]: Splunk HTTP Event Collector (feature `splunk`).
//!
//! `POST /services/collector/event` with `Authorization: Splunk <token>`, the body a
//! concatenation of HEC event objects (no array): `{"time": <epoch seconds.millis>, "host",
//! "source", "sourcetype", "index", "event": <the audit event>}`. Bodies stay under
//! [`max_body_bytes`](SplunkSink::max_body_bytes) (default 1 MiB, Splunk Cloud's recommended
//! ceiling); a 413 splits the body and retries each half. HEC's busy answers (503, code 9;
//! 429) are retried after `Retry-After`; a rejected token (401/403) is retried so an operator
//! can fix it without losing events; malformed-data answers (400) reject the batch. When a
//! batch fails after some of its bodies were accepted, the retry sends only the rest, so a
//! retried batch is not indexed twice.
//!
//! ```no_run
//! use audit_sinks::SplunkSink;
//!
//! let hec = SplunkSink::new("https://splunk.example.com:8088", "00000000-0000-0000-0000-000000000000")?
//!     .index("audit")
//!     .sourcetype("audit:json");
//! # Ok::<(), audit_core::Error>(())
//! ```

use std::fmt;
use std::time::Duration;

use audit_core::{Batch, Sink, SinkError};

use crate::http;

/// Sends events to a Splunk HTTP Event Collector.
#[derive(Clone)]
pub struct SplunkSink {
    client: reqwest::Client,
    url: reqwest::Url,
    token: String,
    index: Option<String>,
    source: String,
    sourcetype: String,
    host: Option<String>,
    max_body_bytes: usize,
    progress: http::Progress,
}

impl fmt::Debug for SplunkSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SplunkSink")
            .field("url", &self.url.as_str())
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl SplunkSink {
    /// A sink for the collector at `base_url` (scheme, host and port; the HEC path is added)
    /// authenticating with `token`.
    pub fn new(base_url: &str, token: &str) -> Result<SplunkSink, audit_core::Error> {
        let mut url = reqwest::Url::parse(base_url)
            .map_err(|e| audit_core::Error::config(format!("Splunk HEC URL is not valid: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(audit_core::Error::config(
                "Splunk HEC URL must be http or https",
            ));
        }
        if token.is_empty() {
            return Err(audit_core::Error::config("Splunk HEC needs a token"));
        }
        url.set_path("/services/collector/event");
        url.set_query(None);
        Ok(SplunkSink {
            client: http::client(Duration::from_secs(30))?,
            url,
            token: token.to_owned(),
            index: None,
            source: "audit".into(),
            sourcetype: "_json".into(),
            host: None,
            max_body_bytes: 1 << 20,
            progress: http::Progress::default(),
        })
    }

    /// The index (else the token's default index).
    #[must_use]
    pub fn index(mut self, index: impl Into<String>) -> SplunkSink {
        self.index = Some(index.into());
        self
    }

    /// The `source` field (default `audit`).
    #[must_use]
    pub fn source(mut self, source: impl Into<String>) -> SplunkSink {
        self.source = source.into();
        self
    }

    /// The `sourcetype` field (default `_json`).
    #[must_use]
    pub fn sourcetype(mut self, sourcetype: impl Into<String>) -> SplunkSink {
        self.sourcetype = sourcetype.into();
        self
    }

    /// The `host` field (default: none, Splunk uses the sender's).
    #[must_use]
    pub fn host(mut self, host: impl Into<String>) -> SplunkSink {
        self.host = Some(host.into());
        self
    }

    /// Largest body sent (default 1 MiB).
    #[must_use]
    pub fn max_body_bytes(mut self, bytes: usize) -> SplunkSink {
        self.max_body_bytes = bytes.max(1024);
        self
    }

    fn encode(&self, e: &audit_core::AuditEvent) -> Result<Vec<u8>, SinkError> {
        let ms = e.timestamp.unix_millis();
        let mut out = format!(
            "{{\"time\":{}.{:03},\"source\":{},\"sourcetype\":{}",
            ms.div_euclid(1000),
            ms.rem_euclid(1000),
            serde_json::Value::from(self.source.as_str()),
            serde_json::Value::from(self.sourcetype.as_str())
        )
        .into_bytes();
        if let Some(i) = &self.index {
            out.extend_from_slice(
                format!(",\"index\":{}", serde_json::Value::from(i.as_str())).as_bytes(),
            );
        }
        if let Some(h) = &self.host {
            out.extend_from_slice(
                format!(",\"host\":{}", serde_json::Value::from(h.as_str())).as_bytes(),
            );
        }
        out.extend_from_slice(b",\"event\":");
        e.write_json(&mut out)
            .map_err(|err| SinkError::permanent(format!("cannot encode event: {err}")))?;
        out.extend_from_slice(b"}\n");
        Ok(out)
    }
}

impl Sink for SplunkSink {
    fn name(&self) -> &str {
        "splunk"
    }

    async fn deliver(&mut self, batch: &Batch) -> Result<(), SinkError> {
        // Events a previous attempt of this batch got accepted are not sent again: HEC
        // would index them twice.
        let skip = self.progress.skip(batch);
        let encoded = batch
            .iter()
            .skip(skip)
            .map(|e| self.encode(e))
            .collect::<Result<Vec<_>, _>>()?;
        let mut split = http::Splitter::new(http::chunks(
            &encoded,
            usize::MAX,
            self.max_body_bytes,
            Vec::len,
        ));
        while let Some(range) = split.next_range() {
            // Everything before this range is accepted (ranges are sent in order).
            self.progress.accepted(batch, skip + range.start);
            let body: Vec<u8> = encoded[range.clone()].concat();
            let resp = self
                .client
                .post(self.url.clone())
                .header(
                    reqwest::header::AUTHORIZATION,
                    format!("Splunk {}", self.token),
                )
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await
                .map_err(|e| http::transport("splunk", e))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let text = resp.text().await.unwrap_or_default();
            let answer = http::classify("splunk HEC", status, &headers, &text);
            split.answered("splunk HEC", range, answer)?;
        }
        self.progress.clear();
        Ok(())
    }
}

use crate::spec::params::{Params, SpecError, http_url};

/// What a `splunk+https://` spec says (see [`crate::spec`]).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SplunkSpec {
    /// Scheme, host and port.
    pub url: String,
    /// HEC token (`token=`).
    pub token: String,
    /// `index=`.
    pub index: Option<String>,
    /// `source=`.
    pub source: Option<String>,
    /// `sourcetype=`.
    pub sourcetype: Option<String>,
}

crate::spec::params::opaque_debug!(SplunkSpec);

impl SplunkSpec {
    pub(crate) fn parse(scheme: &str, rest: &str) -> Result<SplunkSpec, SpecError> {
        let (base, mut p) =
            Params::split("splunk", rest, &["token", "index", "source", "sourcetype"])?;
        let url = format!("{}:{base}", &scheme["splunk+".len()..]);
        http_url("splunk", &url)?;
        let token = p
            .take("token")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| SpecError::new("splunk: needs token=…"))?;
        Ok(SplunkSpec {
            url,
            token,
            index: p.take("index"),
            source: p.take("source"),
            sourcetype: p.take("sourcetype"),
        })
    }

    pub(crate) async fn build(self) -> Result<SplunkSink, SpecError> {
        let mut s = SplunkSink::new(&self.url, &self.token).map_err(SpecError::from)?;
        if let Some(i) = self.index {
            s = s.index(i);
        }
        if let Some(v) = self.source {
            s = s.source(v);
        }
        if let Some(v) = self.sourcetype {
            s = s.sourcetype(v);
        }
        Ok(s)
    }
}
