//! [`ElasticsearchSink`]: the `_bulk` API of Elasticsearch and OpenSearch (feature
//! `elasticsearch`).
//!
//! Each event is a `create` action with `_id` = the event id, so a retried batch can never
//! index an event twice: the receiver answers 409 for ids it has, which counts as delivered.
//! The body is NDJSON with the final newline `_bulk` requires. Items that fail with 429 or
//! 5xx are re-sent on their own (up to three times, with backoff) before the batch is handed
//! back to the pipeline for a later retry; items the receiver rejects (mapping errors, 400)
//! fail the batch permanently and are reported as lost — the report counts the whole batch,
//! which can overstate the loss but never hides one.
//!
//! The target is an index or data stream name; `{date}` in it becomes the event's UTC date
//! (`audit-{date}` → `audit-2026.11.22`). Documents are ECS by default
//! ([`DocFormat::Ecs`]), or the native event JSON.
//!
//! ```no_run
//! use audit_sinks::elasticsearch::{DocFormat, ElasticsearchSink};
//!
//! let es = ElasticsearchSink::new("https://es.example.com:9200", "audit-{date}")?
//!     .api_key("base64-api-key")
//!     .format(DocFormat::Ecs);
//! # Ok::<(), audit_core::Error>(())
//! ```

use std::fmt;
use std::time::Duration;

use audit_core::{AuditEvent, Batch, Sink, SinkError};
use serde_json::Value;

use crate::format::ecs;
use crate::http::{self, Answer};

/// The document written for each event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DocFormat {
    /// Elastic Common Schema (the default).
    #[default]
    Ecs,
    /// The event's own JSON.
    Native,
}

#[derive(Clone)]
enum Auth {
    None,
    ApiKey(String),
    Basic(String, String),
}

/// Indexes events through `_bulk`.
#[derive(Clone)]
pub struct ElasticsearchSink {
    client: reqwest::Client,
    url: reqwest::Url,
    target: String,
    format: DocFormat,
    auth: Auth,
    max_body_bytes: usize,
}

impl fmt::Debug for ElasticsearchSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ElasticsearchSink")
            .field("url", &self.url.as_str())
            .field("target", &self.target)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// An item's fate in one `_bulk` response.
enum Item {
    Done,
    Retry(String),
    Rejected(String),
}

impl ElasticsearchSink {
    /// A sink for the cluster at `base_url` writing to `target` (an index or data stream
    /// name, optionally with `{date}`).
    pub fn new(base_url: &str, target: &str) -> Result<ElasticsearchSink, audit_core::Error> {
        let mut url = reqwest::Url::parse(base_url).map_err(|e| {
            audit_core::Error::config(format!("Elasticsearch URL is not valid: {e}"))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(audit_core::Error::config(
                "Elasticsearch URL must be http or https",
            ));
        }
        let ok = !target.is_empty()
            && !target.starts_with(['-', '_', '+'])
            && target
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.{}".contains(c));
        if !ok {
            return Err(audit_core::Error::config(format!(
                "Elasticsearch index {target:?} must be lowercase letters, digits, -, _, . \
                 (and {{date}})"
            )));
        }
        url.set_path("/_bulk");
        url.set_query(None);
        Ok(ElasticsearchSink {
            client: http::client(Duration::from_secs(60))?,
            url,
            target: target.to_owned(),
            format: DocFormat::Ecs,
            auth: Auth::None,
            max_body_bytes: 5 << 20,
        })
    }

    /// Authenticates with an API key (`Authorization: ApiKey …`).
    #[must_use]
    pub fn api_key(mut self, key: impl Into<String>) -> ElasticsearchSink {
        self.auth = Auth::ApiKey(key.into());
        self
    }

    /// Authenticates with a user and password.
    #[must_use]
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Auth::Basic(user.into(), password.into());
        self
    }

    /// The document format.
    #[must_use]
    pub fn format(mut self, format: DocFormat) -> ElasticsearchSink {
        self.format = format;
        self
    }

    /// Largest `_bulk` body (default 5 MiB).
    #[must_use]
    pub fn max_body_bytes(mut self, bytes: usize) -> ElasticsearchSink {
        self.max_body_bytes = bytes.max(1024);
        self
    }

    fn index_for(&self, e: &AuditEvent) -> String {
        if !self.target.contains("{date}") {
            return self.target.clone();
        }
        let ts = e.timestamp.to_string(); // 2026-11-22T05:41:14.000Z
        let date = ts.get(..10).unwrap_or("1970-01-01").replace('-', ".");
        self.target.replace("{date}", &date)
    }

    /// The two NDJSON lines of one event.
    fn encode(&self, e: &AuditEvent) -> Result<Vec<u8>, SinkError> {
        let action =
            serde_json::json!({"create": {"_index": self.index_for(e), "_id": e.id.to_string()}});
        let doc = match self.format {
            DocFormat::Ecs => ecs::encode(e),
            _ => serde_json::to_value(e)
                .map_err(|err| SinkError::permanent(format!("cannot encode event: {err}")))?,
        };
        let mut out = action.to_string().into_bytes();
        out.push(b'\n');
        serde_json::to_writer(&mut out, &doc)
            .map_err(|err| SinkError::permanent(format!("cannot encode event: {err}")))?;
        out.push(b'\n');
        Ok(out)
    }

    /// Sends items; returns each item's fate, or an error for the whole request.
    async fn bulk(&self, items: &[&Vec<u8>]) -> Result<Vec<Item>, Answer> {
        let body: Vec<u8> = items.iter().flat_map(|i| i.iter().copied()).collect();
        let mut req = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(body);
        req = match &self.auth {
            Auth::None => req,
            Auth::ApiKey(k) => req.header(reqwest::header::AUTHORIZATION, format!("ApiKey {k}")),
            Auth::Basic(u, p) => req.basic_auth(u, Some(p)),
        };
        let resp = req
            .send()
            .await
            .map_err(|e| Answer::Failed(http::transport("elasticsearch", e)))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        match http::classify("elasticsearch", status, &headers, &text) {
            Answer::Ok => {}
            other => return Err(other),
        }
        let v: Value = serde_json::from_str(&text).map_err(|_| {
            Answer::Failed(SinkError::retryable(
                "elasticsearch: unreadable _bulk response",
            ))
        })?;
        let results = v["items"].as_array().cloned().unwrap_or_default();
        if results.len() != items.len() {
            return Err(Answer::Failed(SinkError::retryable(format!(
                "elasticsearch: _bulk answered {} items for {}",
                results.len(),
                items.len()
            ))));
        }
        Ok(results
            .iter()
            .map(|r| {
                let r = r
                    .as_object()
                    .and_then(|o| o.values().next())
                    .cloned()
                    .unwrap_or_default();
                let status = r["status"].as_u64().unwrap_or(0);
                let reason = || {
                    r["error"]["reason"]
                        .as_str()
                        .or(r["error"]["type"].as_str())
                        .unwrap_or("unknown")
                        .chars()
                        .take(200)
                        .collect::<String>()
                };
                match status {
                    200..=299 | 409 => Item::Done,
                    429 | 500..=599 => Item::Retry(format!("{status}: {}", reason())),
                    _ => Item::Rejected(format!("{status}: {}", reason())),
                }
            })
            .collect())
    }
}

impl Sink for ElasticsearchSink {
    fn name(&self) -> &str {
        "elasticsearch"
    }

    async fn deliver(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let encoded = batch
            .iter()
            .map(|e| self.encode(e))
            .collect::<Result<Vec<_>, _>>()?;
        let mut rejected: Vec<String> = Vec::new();
        let mut pending: Vec<std::ops::Range<usize>> =
            http::chunks(&encoded, usize::MAX, self.max_body_bytes, Vec::len);
        pending.reverse();
        while let Some(range) = pending.pop() {
            let mut todo: Vec<usize> = range.clone().collect();
            for attempt in 0..4u32 {
                let items: Vec<&Vec<u8>> = todo.iter().map(|i| &encoded[*i]).collect();
                let fates = match self.bulk(&items).await {
                    Ok(f) => f,
                    Err(Answer::TooLarge) if range.len() > 1 => {
                        let mid = range.start + range.len() / 2;
                        pending.push(mid..range.end);
                        pending.push(range.start..mid);
                        todo.clear();
                        break;
                    }
                    Err(Answer::TooLarge) => {
                        return Err(SinkError::permanent(
                            "elasticsearch refused a single event as too large (413)",
                        ));
                    }
                    Err(Answer::Failed(e)) => return Err(e),
                    Err(Answer::Ok) => unreachable!("Ok is not an error"),
                };
                let mut retry = Vec::new();
                let mut last = String::new();
                for (i, fate) in todo.iter().zip(fates) {
                    match fate {
                        Item::Done => {}
                        Item::Retry(why) => {
                            retry.push(*i);
                            last = why;
                        }
                        Item::Rejected(why) => rejected.push(why),
                    }
                }
                todo = retry;
                if todo.is_empty() {
                    break;
                }
                if attempt == 3 {
                    return Err(SinkError::retryable(format!(
                        "elasticsearch: {} items still failing ({last})",
                        todo.len()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
        }
        match rejected.first() {
            None => Ok(()),
            Some(first) => Err(SinkError::permanent(format!(
                "elasticsearch rejected {} of {} events (first: {first})",
                rejected.len(),
                batch.len()
            ))),
        }
    }
}

use crate::spec::params::{Params, SpecError, http_url};

/// What an `elasticsearch+https://` (or `opensearch+https://`) spec says (see
/// [`crate::spec`]).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ElasticsearchSpec {
    /// Scheme, host and port.
    pub url: String,
    /// Index or data stream (the path).
    pub target: String,
    /// `api_key=`.
    pub api_key: Option<String>,
    /// `user=` and `password=`.
    pub user: Option<(String, String)>,
    /// `format=native` (else ECS).
    pub native: bool,
}

crate::spec::params::opaque_debug!(ElasticsearchSpec);

impl ElasticsearchSpec {
    pub(crate) fn parse(scheme: &str, rest: &str) -> Result<ElasticsearchSpec, SpecError> {
        let name = scheme.split('+').next().unwrap_or("elasticsearch");
        let (base, mut p) = Params::split(name, rest, &["api_key", "user", "password", "format"])?;
        let url = format!("{}:{base}", scheme.split('+').nth(1).unwrap_or("https"));
        http_url(name, &url)?;
        let (transport, after_scheme) = url.split_once("://").unwrap_or(("https", ""));
        let (host, target) = after_scheme.split_once('/').unwrap_or((after_scheme, ""));
        if target.is_empty() {
            return Err(SpecError::new(format!(
                "{name}: needs an index or data stream as the path, e.g. …:9200/audit-{{date}}"
            )));
        }
        let native = match p.take("format").as_deref() {
            None | Some("ecs") => false,
            Some("native") => true,
            Some(_) => {
                return Err(SpecError::new(format!(
                    "{name}: format must be ecs or native"
                )));
            }
        };
        let user = match (p.take("user"), p.take("password")) {
            (Some(u), Some(pw)) => Some((u, pw)),
            (None, None) => None,
            _ => {
                return Err(SpecError::new(format!(
                    "{name}: user and password go together"
                )));
            }
        };
        Ok(ElasticsearchSpec {
            url: format!("{transport}://{host}"),
            target: target.to_owned(),
            api_key: p.take("api_key"),
            user,
            native,
        })
    }

    pub(crate) async fn build(self) -> Result<ElasticsearchSink, SpecError> {
        let mut s = ElasticsearchSink::new(&self.url, &self.target).map_err(SpecError::from)?;
        if let Some(k) = self.api_key {
            s = s.api_key(k);
        }
        if let Some((u, p)) = self.user {
            s = s.basic_auth(u, p);
        }
        if self.native {
            s = s.format(DocFormat::Native);
        }
        Ok(s)
    }
}
