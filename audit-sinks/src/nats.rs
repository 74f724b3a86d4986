//! [`NatsSink`]: NATS JetStream (feature `nats`).
//!
//! Each event is published to `<prefix>.<tenant>.<category>` (tenant `_` when there is
//! none; characters a subject token cannot hold become `_`), with the event id as
//! `Nats-Msg-Id`, so JetStream drops a re-published event within the stream's duplicate
//! window. A batch is published in one go and then every acknowledgement awaited: delivery
//! means the stream stored the event. A stream must exist for the subjects (creating it is an
//! operator's decision: retention, replicas, limits); without one, publishing fails with a
//! retryable error naming the subject.
//!
//! ```no_run
//! use audit_sinks::NatsSink;
//!
//! # async fn run() -> Result<(), String> {
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
    /// Connects to `url` and publishes under `prefix` (e.g. `audit`).
    pub async fn connect(url: &str, prefix: &str) -> Result<NatsSink, String> {
        if prefix.is_empty()
            || prefix
                .split('.')
                .any(|t| t.is_empty() || t.contains(['*', '>', ' ']))
        {
            return Err(format!(
                "NATS subject prefix {prefix:?} must be dot-separated tokens without * or >"
            ));
        }
        let client = async_nats::connect(url)
            .await
            .map_err(|e| format!("cannot connect to NATS: {e}"))?;
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
