//! JSON lines: one canonical event per line.
//!
//! ```
//! use audit_core::AuditEvent;
//! use audit_sinks::format::jsonl;
//!
//! let event = AuditEvent::builder("auth.logout").build().unwrap();
//! let mut out = Vec::new();
//! jsonl::write_event(&mut out, &event).unwrap();
//! assert_eq!(out.last(), Some(&b'\n'));
//! let back: AuditEvent = serde_json::from_slice(&out).unwrap();
//! assert_eq!(back, event);
//! ```

use audit_core::{AuditEvent, SinkError};

/// Appends `event` as one JSON line to `out`; on error nothing is appended.
///
/// Serialising an [`AuditEvent`] has no failing case today; the error is still passed on
/// rather than skipping the event silently.
pub fn write_event(out: &mut Vec<u8>, event: &AuditEvent) -> Result<(), serde_json::Error> {
    event.write_json(out)?;
    out.push(b'\n');
    Ok(())
}

/// Appends every event of `events` as JSON lines, or reports the first that cannot be
/// encoded as a permanent sink error naming it.
pub fn write_all<'a>(
    out: &mut Vec<u8>,
    events: impl IntoIterator<Item = &'a AuditEvent>,
) -> Result<(), SinkError> {
    for event in events {
        write_event(out, event).map_err(|e| {
            SinkError::permanent(format!("cannot encode event {} as JSON: {e}", event.id))
        })?;
    }
    Ok(())
}
