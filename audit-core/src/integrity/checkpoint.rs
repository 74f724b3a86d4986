//! Signed checkpoints: `system.audit.checkpoint` events that sign a stream's chain head.

use std::time::Duration;

use super::CheckpointKey;
use crate::{AuditEvent, Category, Severity, Timestamp};

/// The event type of a checkpoint.
pub const CHECKPOINT_EVENT: &str = "system.audit.checkpoint";

/// When an auditor with a [`CheckpointKey`] records a checkpoint: after this many events or
/// this much time since the last one (whichever comes first, and only when events were
/// recorded since), and always at shutdown.
///
/// Defaults: every 10,000 events or 10 seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckpointPolicy {
    /// Events between checkpoints.
    pub every_events: u64,
    /// Time between checkpoints.
    pub every: Duration,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        CheckpointPolicy {
            every_events: 10_000,
            every: Duration::from_secs(10),
        }
    }
}

impl CheckpointPolicy {
    /// A checkpoint after `events` events or `every` time, whichever comes first.
    pub fn new(events: u64, every: Duration) -> CheckpointPolicy {
        CheckpointPolicy {
            every_events: events.max(1),
            every,
        }
    }
}

/// What a checkpoint signs, as it appears in the event's `details`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointClaim<'a> {
    /// The stream.
    pub stream: &'a str,
    /// The seq of the last event the checkpoint covers.
    pub seq: u64,
    /// That event's `integrity.hash` (the chain head).
    pub head: &'a str,
    /// When the checkpoint was made, as in the event's `timestamp`.
    pub time: &'a str,
    /// The signing key's id.
    pub key_id: &'a str,
    /// True for the checkpoint written at a clean shutdown: nothing follows it in the stream.
    pub last: bool,
}

impl CheckpointClaim<'_> {
    /// The signed message: UTF-8, fields separated by one `\n`, no trailing newline:
    /// `audit-checkpoint-v1`, stream, seq (decimal), head, time, key id, and `final` or
    /// `interval`.
    pub fn message(&self) -> Vec<u8> {
        format!(
            "audit-checkpoint-v1\n{}\n{}\n{}\n{}\n{}\n{}",
            self.stream,
            self.seq,
            self.head,
            self.time,
            self.key_id,
            if self.last { "final" } else { "interval" }
        )
        .into_bytes()
    }
}

/// The checkpoint event for a stream position, signed with `key`.
pub(crate) fn checkpoint_event(
    key: &CheckpointKey,
    stream: &str,
    seq: u64,
    head: &str,
    last: bool,
) -> AuditEvent {
    let now = Timestamp::now();
    let time = now.to_string();
    let claim = CheckpointClaim {
        stream,
        seq,
        head,
        time: &time,
        key_id: key.key_id(),
        last,
    };
    let signature = key.sign_hex(&claim.message());
    let built = AuditEvent::builder(CHECKPOINT_EVENT)
        .category(Category::System)
        .severity(Severity::Info)
        .timestamp(now)
        .description(format!("checkpoint of stream {stream} at seq {seq}"))
        .detail("stream", stream)
        .detail("seq", seq)
        .detail("head", head)
        .detail("time", time.as_str())
        .detail("keyId", key.key_id())
        .detail("algorithm", "Ed25519")
        .detail("final", last)
        .detail("signatureHex", signature)
        .build();
    match built {
        Ok(e) => e,
        Err(e) => unreachable!("the checkpoint event type is valid: {e}"),
    }
}
