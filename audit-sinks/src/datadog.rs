//! [`DatadogSink`]: Datadog Logs intake `POST /api/v2/logs` (feature `datadog`).
//!
//! Payloads are JSON arrays of log entries, gzip-compressed, with `DD-API-KEY`. The intake's
//! limits are enforced here so they are never discovered in production: at most 1,000
//! entries and 5 MB (uncompressed) per payload, and an entry over 1 MB is truncated — its
//! `message` replaced by the event's identifying fields plus `"truncated": true` and the
//! original size — rather than rejected. Each entry carries `ddsource` (default `audit`),
//! `service`, `hostname` and `ddtags` (`category:…,tenant:…,outcome:…` plus your own), and the
//! event JSON as `message`. For facets and Datadog's standard attributes, the entry also
//! carries at its top level: `evt.name` (the event type), `evt.id`, `evt.outcome` (the
//! result), `evt.category`; `usr.id`, `usr.email` (the actor); `network.client.ip`;
//! `http.method`, `http.status_code`, `http.useragent`, `http.url_details.path`,
//! `http.request_id`; `trace_id`; `status` (the severity); and `audit.tenant`,
//! `audit.actor.type`, `audit.actor.role`, `audit.target.type`, `audit.target.id`,
//! `audit.rpc.service`, `audit.rpc.method` where the event has them.
//!
//! 429 and 5xx are retried (after `Retry-After`), 403 (a bad key) is retried so an operator
//! can fix it, 413 splits the payload, 400 rejects the batch.
//!
//! ```no_run
//! use audit_sinks::DatadogSink;
//!
//! let dd = DatadogSink::new("datadoghq.eu", "0123456789abcdef0123456789abcdef")?.tags("env:prod");
//! # Ok::<(), audit_core::Error>(())
//! ```

use std::fmt;
use std::io::Write as _;
use std::time::Duration;

use audit_core::{AuditEvent, Batch, Sink, SinkError};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

use crate::http;

/// Most entries per payload.
pub const MAX_ENTRIES: usize = 1000;
/// Most uncompressed bytes per payload.
pub const MAX_PAYLOAD_BYTES: usize = 5_000_000;
/// Largest single entry; larger ones are truncated.
pub const MAX_ENTRY_BYTES: usize = 1_000_000;

/// Puts `value` at `path` of `entry` (objects made on the way) when there is one.
fn put(entry: &mut Value, path: &[&str], value: Option<Value>) {
    let Some(value) = value else { return };
    let mut at = entry;
    for key in &path[..path.len() - 1] {
        if !at.get(*key).is_some_and(Value::is_object) {
            at[*key] = json!({});
        }
        at = &mut at[*key];
    }
    at[path[path.len() - 1]] = value;
}

/// The event's fields Datadog facets and standard attributes use, at the entry's top level.
fn facets(entry: &mut Value, e: &AuditEvent) {
    let text = |s: Option<&str>| s.map(|s| json!(s));
    let actor = e.actor.as_ref();
    let target = e.target.as_ref();
    let ctx = e.context.as_ref();
    let http = e.http.as_ref();
    put(
        entry,
        &["evt", "outcome"],
        text(e.result.map(|r| r.as_str())),
    );
    put(
        entry,
        &["usr", "id"],
        text(actor.and_then(|a| a.id.as_deref())),
    );
    put(
        entry,
        &["usr", "email"],
        text(actor.and_then(|a| a.email.as_deref())),
    );
    put(
        entry,
        &["network", "client", "ip"],
        text(actor.and_then(|a| a.ip_address.as_deref())),
    );
    put(
        entry,
        &["http", "method"],
        text(http.and_then(|h| h.method.as_deref())),
    );
    put(
        entry,
        &["http", "status_code"],
        http.and_then(|h| h.status_code).map(|c| json!(c)),
    );
    put(
        entry,
        &["http", "useragent"],
        text(actor.and_then(|a| a.user_agent.as_deref())),
    );
    put(
        entry,
        &["http", "url_details", "path"],
        text(http.and_then(|h| h.path.as_deref())),
    );
    put(
        entry,
        &["http", "request_id"],
        text(ctx.and_then(|c| c.request_id.as_deref())),
    );
    put(
        entry,
        &["trace_id"],
        text(ctx.and_then(|c| c.trace_id.as_deref())),
    );
    put(
        entry,
        &["audit", "tenant"],
        text(ctx.and_then(|c| c.organization_id.as_deref())),
    );
    put(
        entry,
        &["audit", "actor", "type"],
        text(actor.and_then(|a| a.kind.as_deref())),
    );
    put(
        entry,
        &["audit", "actor", "role"],
        text(actor.and_then(|a| a.role.as_deref())),
    );
    put(
        entry,
        &["audit", "target", "type"],
        text(target.and_then(|t| t.kind.as_deref())),
    );
    put(
        entry,
        &["audit", "target", "id"],
        text(target.and_then(|t| t.id.as_deref())),
    );
    let rpc = e.rpc.as_deref();
    put(
        entry,
        &["audit", "rpc", "service"],
        text(rpc.and_then(|r| r.service.as_deref())),
    );
    put(
        entry,
        &["audit", "rpc", "method"],
        text(rpc.and_then(|r| r.method.as_deref())),
    );
}

/// Sends events to Datadog Logs.
#[derive(Clone)]
pub struct DatadogSink {
    client: reqwest::Client,
    url: reqwest::Url,
    api_key: String,
    source: String,
    tags: Option<String>,
    hostname: Option<String>,
    progress: http::Progress,
}

impl fmt::Debug for DatadogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatadogSink")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

impl DatadogSink {
    /// A sink for the Datadog `site` (`datadoghq.com`, `datadoghq.eu`, `us3.datadoghq.com`, …)
    /// or a full intake URL (`https://…/api/v2/logs`, e.g. a proxy), with `api_key`.
    pub fn new(site_or_url: &str, api_key: &str) -> Result<DatadogSink, audit_core::Error> {
        if api_key.is_empty() {
            return Err(audit_core::Error::config("Datadog needs an API key"));
        }
        let url = if site_or_url.contains("://") {
            site_or_url.to_owned()
        } else {
            format!("https://http-intake.logs.{site_or_url}/api/v2/logs")
        };
        let url = reqwest::Url::parse(&url)
            .map_err(|e| audit_core::Error::config(format!("Datadog URL is not valid: {e}")))?;
        Ok(DatadogSink {
            client: http::client(Duration::from_secs(30))?,
            url,
            api_key: api_key.to_owned(),
            source: "audit".into(),
            tags: None,
            hostname: None,
            progress: http::Progress::default(),
        })
    }

    /// Extra `ddtags`, comma-separated (`env:prod,team:core`).
    #[must_use]
    pub fn tags(mut self, tags: impl Into<String>) -> DatadogSink {
        self.tags = Some(tags.into());
        self
    }

    /// `ddsource` (default `audit`).
    #[must_use]
    pub fn source(mut self, source: impl Into<String>) -> DatadogSink {
        self.source = source.into();
        self
    }

    /// `hostname` (default: none).
    #[must_use]
    pub fn hostname(mut self, hostname: impl Into<String>) -> DatadogSink {
        self.hostname = Some(hostname.into());
        self
    }

    /// One entry, truncated to [`MAX_ENTRY_BYTES`] if needed.
    fn entry(&self, e: &AuditEvent) -> Result<Vec<u8>, SinkError> {
        let message = serde_json::to_string(e)
            .map_err(|err| SinkError::permanent(format!("cannot encode event: {err}")))?;
        let ctx = e.context.as_ref();
        let mut tags = format!("category:{}", e.category.as_str());
        if let Some(t) = ctx.and_then(|c| c.organization_id.as_deref()) {
            tags.push_str(&format!(",tenant:{t}"));
        }
        if let Some(r) = e.result {
            tags.push_str(&format!(",outcome:{}", r.as_str()));
        }
        if let Some(extra) = &self.tags {
            tags.push(',');
            tags.push_str(extra);
        }
        let mut entry = json!({
            "ddsource": self.source,
            "ddtags": tags,
            "service": ctx.and_then(|c| c.service.as_deref()).unwrap_or("audit"),
            "message": message,
            "evt": {
                "name": e.event_type.as_str(),
                "id": e.id.to_string(),
                "category": e.category.as_str(),
            },
            "status": e.severity.as_str(),
        });
        facets(&mut entry, e);
        if let Some(h) = &self.hostname {
            entry["hostname"] = json!(h);
        }
        let mut bytes = serde_json::to_vec(&entry)
            .map_err(|err| SinkError::permanent(format!("cannot encode entry: {err}")))?;
        if bytes.len() > MAX_ENTRY_BYTES {
            let original = bytes.len();
            entry["message"] = Value::String(
                json!({
                    "id": e.id.to_string(),
                    "eventType": e.event_type.as_str(),
                    "timestamp": e.timestamp.to_string(),
                    "truncated": true,
                    "originalBytes": original,
                })
                .to_string(),
            );
            entry["truncated"] = json!(true);
            bytes = serde_json::to_vec(&entry)
                .map_err(|err| SinkError::permanent(format!("cannot encode entry: {err}")))?;
        }
        Ok(bytes)
    }
}

fn gzip(body: &[u8]) -> Result<Vec<u8>, SinkError> {
    let mut enc = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
    enc.write_all(body)
        .and_then(|()| enc.finish())
        .map_err(|e| SinkError::retryable(format!("gzip failed: {e}")))
}

impl Sink for DatadogSink {
    fn name(&self) -> &str {
        "datadog"
    }

    async fn deliver(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let skip = self.progress.skip(batch);
        let entries = batch
            .iter()
            .skip(skip)
            .map(|e| self.entry(e))
            .collect::<Result<Vec<_>, _>>()?;
        // Brackets and commas count towards the limit too.
        let mut split = http::Splitter::new(http::chunks(
            &entries,
            MAX_ENTRIES,
            MAX_PAYLOAD_BYTES - 2,
            |e| e.len() + 1,
        ));
        while let Some(range) = split.next_range() {
            self.progress.accepted(batch, skip + range.start);
            let mut body = Vec::with_capacity(MAX_PAYLOAD_BYTES.min(1 << 20));
            body.push(b'[');
            for (i, e) in entries[range.clone()].iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(e);
            }
            body.push(b']');
            let resp = self
                .client
                .post(self.url.clone())
                .header("DD-API-KEY", &self.api_key)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(reqwest::header::CONTENT_ENCODING, "gzip")
                .body(gzip(&body)?)
                .send()
                .await
                .map_err(|e| http::transport("datadog", e))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let text = resp.text().await.unwrap_or_default();
            let answer = http::classify("datadog", status, &headers, &text);
            split.answered("datadog", range, answer)?;
        }
        self.progress.clear();
        Ok(())
    }
}

use crate::spec::params::{Params, SpecError, http_url};

/// What a `datadog+https://` spec says (see [`crate::spec`]).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DatadogSpec {
    /// The intake URL.
    pub url: String,
    /// `api_key=`.
    pub api_key: String,
    /// Extra tags (`tags=`).
    pub tags: Option<String>,
}

crate::spec::params::opaque_debug!(DatadogSpec);

impl DatadogSpec {
    pub(crate) fn parse(scheme: &str, rest: &str) -> Result<DatadogSpec, SpecError> {
        let (base, mut p) = Params::split("datadog", rest, &["api_key", "tags"])?;
        let mut url = format!("{}:{base}", &scheme["datadog+".len()..]);
        http_url("datadog", &url)?;
        if url.split_once("://").is_some_and(|(_, r)| !r.contains('/')) {
            url.push_str("/api/v2/logs");
        }
        let api_key = p
            .take("api_key")
            .filter(|k| !k.is_empty())
            .ok_or_else(|| SpecError::new("datadog: needs api_key=…"))?;
        Ok(DatadogSpec {
            url,
            api_key,
            tags: p.take("tags"),
        })
    }

    pub(crate) async fn build(self) -> Result<DatadogSink, SpecError> {
        let mut s = DatadogSink::new(&self.url, &self.api_key).map_err(SpecError::from)?;
        if let Some(t) = self.tags {
            s = s.tags(t);
        }
        Ok(s)
    }
}
