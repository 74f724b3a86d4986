//! [`CloudWatchSink`]: Amazon CloudWatch Logs `PutLogEvents` (feature `cloudwatch`).
//!
//! Requests are signed with AWS Signature Version 4 by `aws-sigv4`, the signing crate the AWS
//! SDK itself uses: maintained by AWS and tested against AWS's signature suite, without
//! pulling in the SDK's runtime, HTTP stack and credential chain (this sink already has an
//! HTTP client). Credentials come from [`Credentials`] — e.g. [`Credentials::from_env`]
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).
//!
//! The service's limits are enforced before sending: at most 10,000 events and 1,048,576
//! bytes per call, counting each message's UTF-8 bytes plus 26; events sorted by time; no
//! call spanning more than 24 hours. An event is sent whole up to the service's 1 MB event
//! limit; a larger one is replaced by a small, valid JSON stub naming it (`id`, `timestamp`,
//! `eventType`, `truncated: true`, `originalBytes`, `sha256` of the whole), never a cut
//! document.
//! `ThrottlingException` and 5xx are retried; a missing log stream is created once
//! (`CreateLogStream`) and the call repeated; events CloudWatch refuses as too old or too new
//! fail the batch visibly.
//!
//! ```no_run
//! use audit_sinks::cloudwatch::{CloudWatchSink, Credentials};
//!
//! let cw = CloudWatchSink::new("eu-west-1", "/audit/vector-api", "instance-1", Credentials::from_env()?)?;
//! # Ok::<(), audit_core::Error>(())
//! ```

use std::fmt;
use std::time::{Duration, SystemTime};

use audit_core::{AuditEvent, Batch, Sink, SinkError};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use serde_json::{Value, json};

use crate::http::{self, Answer};

/// Most events per call.
pub const MAX_EVENTS: usize = 10_000;
/// Most bytes per call (messages plus 26 per event).
pub const MAX_BYTES: usize = 1_048_576;
/// Bytes CloudWatch adds to each event's size.
pub const EVENT_OVERHEAD: usize = 26;
/// Longest span of one call.
pub const MAX_SPAN_MS: i64 = 24 * 3600 * 1000;
/// Longest message sent whole: CloudWatch's 1 MB event limit, less its per-event overhead.
pub const MAX_MESSAGE_BYTES: usize = 1_048_576 - EVENT_OVERHEAD;

/// AWS credentials. The secret parts are never shown.
#[derive(Clone)]
pub struct Credentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Static credentials.
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Credentials {
        Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token,
        }
    }

    /// From `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and (optionally)
    /// `AWS_SESSION_TOKEN`.
    pub fn from_env() -> Result<Credentials, audit_core::Error> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => Ok(Credentials::new(id, secret, var("AWS_SESSION_TOKEN"))),
            _ => Err(audit_core::Error::config(
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set",
            )),
        }
    }
}

/// Sends events to a CloudWatch Logs stream.
#[derive(Clone)]
pub struct CloudWatchSink {
    client: reqwest::Client,
    region: String,
    endpoint: String,
    group: String,
    stream: String,
    credentials: Credentials,
    progress: http::Progress,
}

impl fmt::Debug for CloudWatchSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudWatchSink")
            .field("region", &self.region)
            .field("group", &self.group)
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

/// One log event ready to send.
struct Entry {
    timestamp: i64,
    message: String,
}

/// Splits entries (sorted by time) into calls within every PutLogEvents limit.
fn calls(entries: &[Entry]) -> Vec<std::ops::Range<usize>> {
    http::chunks_where(
        entries,
        MAX_EVENTS,
        MAX_BYTES,
        |e| e.message.len() + EVENT_OVERHEAD,
        |first, e| e.timestamp - first.timestamp > MAX_SPAN_MS,
    )
}

impl CloudWatchSink {
    /// A sink for `group`/`stream` in `region`.
    pub fn new(
        region: &str,
        group: &str,
        stream: &str,
        credentials: Credentials,
    ) -> Result<CloudWatchSink, audit_core::Error> {
        if region.is_empty() || group.is_empty() || stream.is_empty() {
            return Err(audit_core::Error::config(
                "CloudWatch needs a region, a log group and a log stream",
            ));
        }
        if stream.contains(':') || stream.contains('*') {
            return Err(audit_core::Error::config(
                "a CloudWatch log stream name cannot contain ':' or '*'",
            ));
        }
        Ok(CloudWatchSink {
            client: http::client(Duration::from_secs(30))?,
            region: region.to_owned(),
            endpoint: format!("https://logs.{region}.amazonaws.com/"),
            group: group.to_owned(),
            stream: stream.to_owned(),
            credentials,
            progress: http::Progress::default(),
        })
    }

    /// Sends to another endpoint (a VPC endpoint, LocalStack, a test receiver).
    #[must_use]
    pub fn endpoint(mut self, url: impl Into<String>) -> CloudWatchSink {
        self.endpoint = url.into();
        self
    }

    fn entry(e: &AuditEvent) -> Result<Entry, SinkError> {
        let mut message = serde_json::to_string(e)
            .map_err(|err| SinkError::permanent(format!("cannot encode event: {err}")))?;
        if message.len() > MAX_MESSAGE_BYTES {
            use sha2::Digest as _;
            let digest = sha2::Sha256::digest(message.as_bytes());
            message = json!({
                "id": e.id.to_string(),
                "timestamp": e.timestamp.to_string(),
                "eventType": e.event_type.as_str(),
                "truncated": true,
                "originalBytes": message.len(),
                "sha256": hex::encode(digest),
            })
            .to_string();
        }
        Ok(Entry {
            timestamp: e.timestamp.unix_millis(),
            message,
        })
    }

    /// One signed call of `action` with a JSON body; returns the status, `__type` and body.
    async fn call(&self, action: &str, body: &Value) -> Result<(u16, String, String), SinkError> {
        let body = serde_json::to_vec(body)
            .map_err(|e| SinkError::permanent(format!("cannot encode request: {e}")))?;
        let target = format!("Logs_20140328.{action}");
        let mut req = ::http::Request::post(&self.endpoint)
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", &target)
            .body(body)
            .map_err(|e| SinkError::permanent(format!("cloudwatch: bad endpoint: {e}")))?;
        let identity = aws_credential_types::Credentials::new(
            &self.credentials.access_key_id,
            &self.credentials.secret_access_key,
            self.credentials.session_token.clone(),
            None,
            "audit-sinks",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("logs")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| SinkError::permanent(format!("cloudwatch: cannot sign: {e}")))?
            .into();
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let signable = SignableRequest::new(
            "POST",
            self.endpoint.as_str(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(req.body()),
        )
        .map_err(|e| SinkError::permanent(format!("cloudwatch: cannot sign: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| SinkError::permanent(format!("cloudwatch: cannot sign: {e}")))?
            .into_parts();
        instructions.apply_to_request_http1x(&mut req);
        let req = reqwest::Request::try_from(req)
            .map_err(|e| SinkError::permanent(format!("cloudwatch: bad request: {e}")))?;
        let resp = self
            .client
            .execute(req)
            .await
            .map_err(|e| http::transport("cloudwatch", e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let kind = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["__type"].as_str().map(str::to_owned))
            .map(|t| t.rsplit('#').next().unwrap_or(&t).to_owned())
            .unwrap_or_default();
        if status >= 400 && kind == "ThrottlingException" {
            let mut e = SinkError::retryable(format!("cloudwatch: throttled ({status})"));
            if let Some(after) = http::retry_after(&headers) {
                e = e.with_retry_after(after);
            }
            return Err(e);
        }
        Ok((status, kind, text))
    }
}

impl Sink for CloudWatchSink {
    fn name(&self) -> &str {
        "cloudwatch"
    }

    async fn deliver(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let skip = self.progress.skip(batch);
        let mut entries = batch
            .iter()
            .skip(skip)
            .map(CloudWatchSink::entry)
            .collect::<Result<Vec<_>, _>>()?;
        // PutLogEvents wants chronological order within a call. Progress through a batch can
        // only be remembered when sorting kept the batch's own order.
        let in_order = entries.windows(2).all(|w| w[0].timestamp <= w[1].timestamp);
        entries.sort_by_key(|e| e.timestamp);
        let mut created = false;
        let mut rejected = 0usize;
        for range in calls(&entries) {
            let body = json!({
                "logGroupName": self.group,
                "logStreamName": self.stream,
                "logEvents": entries[range.clone()]
                    .iter()
                    .map(|e| json!({"timestamp": e.timestamp, "message": e.message}))
                    .collect::<Vec<_>>(),
            });
            loop {
                let (status, kind, text) = self.call("PutLogEvents", &body).await?;
                if status < 300 {
                    if let Ok(v) = serde_json::from_str::<Value>(&text) {
                        let info = &v["rejectedLogEventsInfo"];
                        let n = range.len() as i64;
                        let too_new = info["tooNewLogEventStartIndex"]
                            .as_i64()
                            .map_or(0, |i| n - i);
                        let too_old = info["tooOldLogEventEndIndex"].as_i64().map_or(0, |i| i + 1);
                        let expired = info["expiredLogEventEndIndex"]
                            .as_i64()
                            .map_or(0, |i| i + 1);
                        rejected += usize::try_from(too_new + too_old.max(expired)).unwrap_or(0);
                    }
                    break;
                }
                if kind == "ResourceNotFoundException" && !created {
                    // The stream (not the group: creating groups is an operator's choice of
                    // retention and encryption) is created once.
                    created = true;
                    let (s, k, _) = self
                        .call(
                            "CreateLogStream",
                            &json!({"logGroupName": self.group, "logStreamName": self.stream}),
                        )
                        .await?;
                    if s < 300 || k == "ResourceAlreadyExistsException" {
                        continue;
                    }
                }
                let status = reqwest::StatusCode::from_u16(status)
                    .unwrap_or(reqwest::StatusCode::BAD_GATEWAY);
                return Err(
                    match http::classify(
                        "cloudwatch",
                        status,
                        &reqwest::header::HeaderMap::new(),
                        &format!("{kind} {text}"),
                    ) {
                        Answer::Failed(e) => e,
                        _ => SinkError::retryable(format!("cloudwatch answered {status}")),
                    },
                );
            }
            if in_order {
                self.progress.accepted(batch, skip + range.end);
            }
        }
        self.progress.clear();
        if rejected > 0 {
            return Err(SinkError::permanent(format!(
                "cloudwatch rejected {rejected} events as outside its accepted time range"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_up_to_the_limit_go_whole_and_larger_ones_become_a_valid_stub() {
        let e = |n: usize| {
            AuditEvent::builder("data.blob.write")
                .detail("blob", "z".repeat(n))
                .build()
                .unwrap()
        };
        let whole = e(300 * 1024);
        let entry = CloudWatchSink::entry(&whole).unwrap();
        assert_eq!(entry.message, serde_json::to_string(&whole).unwrap());
        let big = e(1_100_000);
        let entry = CloudWatchSink::entry(&big).unwrap();
        assert!(entry.message.len() < 1024);
        let stub: Value = serde_json::from_str(&entry.message).unwrap();
        assert_eq!(stub["id"], big.id.to_string());
        assert_eq!(stub["truncated"], true);
        assert!(stub["originalBytes"].as_u64().unwrap() > 1_100_000);
        assert_eq!(stub["sha256"].as_str().unwrap().len(), 64);
    }

    #[test]
    fn calls_respect_count_bytes_and_span() {
        let e = |t: i64, n: usize| Entry {
            timestamp: t,
            message: "x".repeat(n),
        };
        let many: Vec<Entry> = (0..25_000).map(|i| e(i, 10)).collect();
        let c = calls(&many);
        assert_eq!(
            c.iter().map(|r| r.len()).collect::<Vec<_>>(),
            vec![10_000, 10_000, 5_000]
        );
        let big: Vec<Entry> = (0..10).map(|i| e(i, 200_000)).collect();
        assert!(
            calls(&big)
                .iter()
                .all(|r| r.len() * (200_000 + 26) <= MAX_BYTES)
        );
        let spread = vec![e(0, 1), e(MAX_SPAN_MS, 1), e(MAX_SPAN_MS + 1, 1)];
        assert_eq!(calls(&spread), vec![0..2, 2..3]);
    }
}

use crate::spec::params::{Params, SpecError};

/// What a `cloudwatch://REGION/GROUP/STREAM` spec says (see [`crate::spec`]); the credentials
/// come from the environment when it is built.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CloudWatchSpec {
    /// AWS region.
    pub region: String,
    /// Log group, as written (`cloudwatch://REGION//aws/app/STREAM` names `/aws/app`).
    pub group: String,
    /// Log stream.
    pub stream: String,
    /// Another endpoint (`endpoint=`).
    pub endpoint: Option<String>,
}

crate::spec::params::opaque_debug!(CloudWatchSpec);

impl CloudWatchSpec {
    pub(crate) fn parse(_scheme: &str, rest: &str) -> Result<CloudWatchSpec, SpecError> {
        let (base, mut p) = Params::split("cloudwatch", rest, &["endpoint"])?;
        let path = base.strip_prefix("//").unwrap_or(base);
        let mut parts = path.splitn(2, '/');
        let region = parts.next().unwrap_or("");
        let (group, stream) = parts
            .next()
            .and_then(|gs| gs.rsplit_once('/'))
            .filter(|(g, s)| !region.is_empty() && !g.is_empty() && !s.is_empty())
            .ok_or_else(|| {
                SpecError::new("cloudwatch: expected cloudwatch://REGION/GROUP/STREAM")
            })?;
        Ok(CloudWatchSpec {
            region: region.to_owned(),
            group: group.to_owned(),
            stream: stream.to_owned(),
            endpoint: p.take("endpoint"),
        })
    }

    pub(crate) async fn build(self) -> Result<CloudWatchSink, SpecError> {
        let credentials =
            Credentials::from_env().map_err(|e| SpecError::new(format!("cloudwatch: {e}")))?;
        let mut s = CloudWatchSink::new(&self.region, &self.group, &self.stream, credentials)
            .map_err(SpecError::from)?;
        if let Some(e) = self.endpoint {
            s = s.endpoint(e);
        }
        Ok(s)
    }
}
