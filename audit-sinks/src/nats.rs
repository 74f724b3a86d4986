//! [`NatsSink`]: NATS JetStream (feature `nats`).
//!
//! Each event is published to `<prefix>.<tenant>.<category>` (tenant `_` when there is
//! none; characters a subject token cannot hold become `_`), with the event id as
//! `Nats-Msg-Id`, so JetStream drops a re-published event within the stream's duplicate
//! window. A batch is published in one go and then every acknowledgement awaited: delivery
//! means the stream stored the event. A stream must store `<prefix>.>`: creating one is
//! usually an operator's decision (retention, replicas, limits), so
//! [`connect`](NatsSink::connect) fails when there is none, saying so, rather than letting
//! every publish wait for an acknowledgement that cannot come;
//! [`connect_creating`](NatsSink::connect_creating) (spec `?stream=NAME`) creates one with
//! the server's defaults and a 2-minute duplicate window when it is missing.
//!
//! ```no_run
//! use audit_sinks::NatsSink;
//!
//! # async fn run() -> Result<(), audit_core::Error> {
//! let nats = NatsSink::connect("nats://127.0.0.1:4222", "audit").await?;
//! # Ok(()) }
//! ```

use std::fmt;

use async_nats::jetstream;
use audit_core::{Batch, Sink, SinkError};
use bytes::Bytes;

/// Publishes events to JetStream.
#[derive(Clone)]
pub struct NatsSink {
    js: jetstream::Context,
    prefix: String,
    format: crate::format::Format,
}

impl fmt::Debug for NatsSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsSink")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// A subject token from free text: `.`, `*`, `>` and whitespace become `_`.
fn token(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| {
            if c == '.' || c == '*' || c == '>' || c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if t.is_empty() { "_".into() } else { t }
}

impl NatsSink {
    /// Connects to `url` and publishes under `prefix` (e.g. `audit`); fails when no
    /// JetStream stream stores `<prefix>.>`.
    pub async fn connect(url: &str, prefix: &str) -> Result<NatsSink, audit_core::Error> {
        let sink = NatsSink::connect_only(url, prefix).await?;
        let subjects = format!("{prefix}.>");
        match sink.js.stream_by_subject(subjects.clone()).await {
            Ok(_) => Ok(sink),
            Err(e) => Err(audit_core::Error::config(format!(
                "no JetStream stream stores {subjects} ({e}): create one, or add ?stream=NAME \
                 to the sink spec to have it created"
            ))),
        }
    }

    /// [`connect`](Self::connect), creating stream `stream` for `<prefix>.>` when no stream
    /// of that name exists (server defaults for limits and storage, a 2-minute duplicate
    /// window for the event ids). An existing stream of that name is used as it is.
    pub async fn connect_creating(
        url: &str,
        prefix: &str,
        stream: &str,
    ) -> Result<NatsSink, audit_core::Error> {
        let sink = NatsSink::connect_only(url, prefix).await?;
        sink.js
            .get_or_create_stream(jetstream::stream::Config {
                name: stream.to_owned(),
                subjects: vec![format!("{prefix}.>")],
                duplicate_window: std::time::Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(|e| {
                audit_core::Error::config(format!("cannot create JetStream stream {stream:?}: {e}"))
            })?;
        NatsSink::connect(url, prefix).await
    }

    async fn connect_only(url: &str, prefix: &str) -> Result<NatsSink, audit_core::Error> {
        if prefix.is_empty()
            || prefix
                .split('.')
                .any(|t| t.is_empty() || t.contains(['*', '>', ' ']))
        {
            return Err(audit_core::Error::config(format!(
                "NATS subject prefix {prefix:?} must be dot-separated tokens without * or >"
            )));
        }
        let client = async_nats::connect(url)
            .await
            .map_err(|e| audit_core::Error::config(format!("cannot connect to NATS: {e}")))?;
        Ok(NatsSink {
            js: jetstream::new(client),
            prefix: prefix.to_owned(),
            format: crate::format::Format::Native,
        })
    }

    /// The payload format (default: the canonical event JSON).
    #[must_use]
    pub fn format(mut self, format: crate::format::Format) -> NatsSink {
        self.format = format;
        self
    }

    /// The subject an event goes to.
    pub fn subject(&self, e: &audit_core::AuditEvent) -> String {
        format!(
            "{}.{}.{}",
            self.prefix,
            token(e.organization_id().unwrap_or("_")),
            e.category.as_str()
        )
    }
}

impl Sink for NatsSink {
    fn name(&self) -> &str {
        "nats"
    }

    async fn deliver(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let mut acks = Vec::with_capacity(batch.len());
        for e in batch {
            let mut payload = Vec::with_capacity(512);
            self.format.write(&mut payload, e)?;
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", e.id.to_string().as_str());
            let subject = self.subject(e);
            let ack = self
                .js
                .publish_with_headers(subject.clone(), headers, Bytes::from(payload))
                .await
                .map_err(|err| SinkError::retryable(format!("nats publish to {subject}: {err}")))?;
            acks.push((subject, ack));
        }
        for (subject, ack) in acks {
            ack.await.map_err(|err| {
                SinkError::retryable(format!("nats: {subject} not stored: {err}"))
            })?;
        }
        Ok(())
    }
}

use crate::spec::params::{Params, SpecError, format_of};

/// What a `nats://host:port/PREFIX` spec says (see [`crate::spec`]).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NatsSpec {
    /// Server URL.
    pub url: String,
    /// Subject prefix.
    pub prefix: String,
    /// Payload format (`format=`; native by default).
    pub format: Option<String>,
    /// A stream to create for `<prefix>.>` when missing (`stream=`).
    pub stream: Option<String>,
}

crate::spec::params::opaque_debug!(NatsSpec);

impl NatsSpec {
    pub(crate) fn parse(scheme: &str, rest: &str) -> Result<NatsSpec, SpecError> {
        // Parameters are checked like every other sink's: a query is never part of the
        // subject.
        let (base, mut p) = Params::split("nats", rest, &["format", "stream"])?;
        let after = base
            .strip_prefix("//")
            .ok_or_else(|| SpecError::new("nats: expected nats://host:port/PREFIX"))?;
        let (host, prefix) = after.split_once('/').unwrap_or((after, ""));
        if host.is_empty() || prefix.is_empty() {
            return Err(SpecError::new(
                "nats: expected nats://host:port/PREFIX (the subject prefix)",
            ));
        }
        let stream = p.take("stream");
        if stream
            .as_deref()
            .is_some_and(|s| s.is_empty() || s.contains(['.', '*', '>', ' ', '/']))
        {
            return Err(SpecError::new(
                "nats: stream must be a JetStream stream name (no . * > / or spaces)",
            ));
        }
        Ok(NatsSpec {
            url: format!("{scheme}://{host}"),
            prefix: prefix.to_owned(),
            format: p.format()?,
            stream,
        })
    }

    pub(crate) async fn build(self) -> Result<NatsSink, SpecError> {
        let sink = match &self.stream {
            Some(name) => NatsSink::connect_creating(&self.url, &self.prefix, name).await,
            None => NatsSink::connect(&self.url, &self.prefix).await,
        };
        sink.map(|sink| sink.format(format_of(self.format.as_deref())))
            .map_err(SpecError::from)
    }
}
