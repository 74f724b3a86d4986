//! A trail that can be proven complete and unaltered: the hash chain, signed checkpoints and
//! the verifier.
//!
//! # The hash chain
//! Every event the pipeline stamps carries `integrity.stream`, `integrity.seq`,
//! `integrity.prevHash` and `integrity.hash` (on by default; see
//! [`AuditorBuilder::hash_chain`](crate::AuditorBuilder::hash_chain)):
//!
//! - The hash covers the event as written, after redaction and the limits, before any sink's
//!   format: the event's canonical JSON ([`AuditEvent::write_json`](crate::AuditEvent::write_json),
//!   the JSON lines format, and the `event` column of the stores) **without** its
//!   `"hash"` member. `integrity` is the event's last member and `hash` the last member of
//!   `integrity`, so a chained line always ends with `,"hash":"<64 hex digits>"}}`; the
//!   covered bytes are the line up to that member, followed by `}}`.
//! - `hash` is the SHA-256 of those UTF-8 bytes, written as 64 lowercase hex digits.
//! - `prevHash` is the previous event's `hash` in the same stream (it is inside the covered
//!   bytes, which links the two). The first event of a stream has seq 1 and a `prevHash` of
//!   64 zeros ([`GENESIS`]).
//! - Every [`Auditor`](crate::Auditor) is one stream, named `<service>-<8 hex digits>` unless
//!   configured: a restart begins a new stream at seq 1.
//! - Sequence numbers lost before the chain (a full buffer) leave a gap whose neighbours still
//!   link; numbers a sink lost after the chain leave a gap that does not link. Either way a
//!   `system.audit.dropped` event in the same stream names the range (`firstSeq`, `lastSeq`).
//!
//! # Checkpoints
//! With a [`CheckpointKey`], the auditor records `system.audit.checkpoint` events
//! ([`CheckpointPolicy`]: every 10,000 events or 10 s by default, and a final one at
//! shutdown). Their details: `stream`, `seq` and `head` (the position and hash of the last
//! event covered), `time`, `keyId`, `algorithm` (`Ed25519`), `final`, and `signatureHex`: 128
//! hex digits, the Ed25519 signature of [`CheckpointClaim::message`]. A checkpoint is itself an
//! event of the stream and is chained like any other.
//!
//! A key's id is the first 16 hex digits of the SHA-256 of its 32-byte public key. Rotating
//! ([`Auditor::rotate_checkpoint_key`](crate::Auditor::rotate_checkpoint_key)) signs every
//! later checkpoint with the new key; keep the old public keys in the [`Keyring`] a verifier
//! uses and old checkpoints stay verifiable.
//!
//! # Verifying
//! [`Verifier`] takes events as written (JSON lines, or the stores' rows in stream and seq
//! order) plus the stores' tombstones and names what it finds: see [`Problem`]. An export
//! a tenant received is verified on its own against its [`Manifest`] ([`verify_export`]).
//!
//! ```
//! use audit_core::integrity::{split_chained, hash_prefix};
//!
//! let line = r#"{"id":"e1","eventType":"auth.logout","integrity":{"stream":"s","seq":1,"prevHash":"0000000000000000000000000000000000000000000000000000000000000000","hash":"4a2bdbd6f4d6fd5b06bf00f2e1f47a42c16de2a52c9e26d9f9cb24ae2c9d3ae9"}}"#;
//! let (covered, claimed) = split_chained(line).unwrap();
//! // This line was typed by hand, so its hash is wrong: the verifier would call it modified.
//! assert_ne!(hash_prefix(covered), claimed);
//! ```

mod chain;
mod checkpoint;
mod keys;
mod manifest;
mod verify;

pub(crate) use chain::Chain;
pub use chain::{GENESIS, hash_prefix, split_chained};
pub(crate) use checkpoint::checkpoint_event;
pub use checkpoint::{CHECKPOINT_EVENT, CheckpointClaim, CheckpointPolicy};
pub use keys::{CheckpointKey, Keyring, PublicKey};
pub use manifest::{Manifest, ManifestEntry, ManifestStream, build_manifest, verify_export};
pub use verify::{Problem, ProblemKind, Report, StoredColumns, StreamReport, Tombstone, Verifier};
