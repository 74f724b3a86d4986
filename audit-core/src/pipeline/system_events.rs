//! The events the pipeline records about itself.
//!
//! | event type | when | details |
//! |---|---|---|
//! | `system.audit.dropped` | events were lost to a full buffer, a full sink queue, or events a sink gave up on | `count`, `firstSeq`, `lastSeq`, `reason`, `sink` (absent for the shared buffer); for events a sink gave up on, also `eventIds` (the first 100), one report per tenant filed under that tenant |
//! | `system.sink.unhealthy` | a sink's delivery failed after succeeding | `sink`, `error` |
//! | `system.sink.stalled` | a delivery has gone unanswered for `stall_after`, said while it hangs | `sink`, `stalledForMs`, `events` |
//! | `system.sink.recovered` | a delivery succeeded after failures | `sink`, `failedAttempts`, `downForMs` |
//! | `system.audit.undelivered` | at a shutdown whose deadline passed, a sink still held events | `sink`, `count`, `firstSeq`, `lastSeq` |
//! | `system.audit.build_failed` | the recipe given to `record_deferred` panicked | — |

use std::time::Duration;

use crate::{AuditEvent, Category, Severity, SinkError, Target};

fn system(event_type: &str) -> crate::AuditEventBuilder {
    AuditEvent::builder(event_type).category(Category::System)
}

fn sink_target(name: &str) -> Target {
    Target::new("audit_sink", name)
}

fn build(builder: crate::AuditEventBuilder) -> AuditEvent {
    match builder.build() {
        Ok(e) => e,
        // The event types above are constants that pass validation; a test proves it.
        Err(e) => unreachable!("pipeline event failed validation: {e}"),
    }
}

pub(crate) fn dropped(run: DropRun, sink: Option<&str>, reason: &str) -> AuditEvent {
    let mut b = system("system.audit.dropped")
        .severity(Severity::Critical)
        .description(match sink {
            Some(s) => format!("{} audit events were not delivered to sink {s}", run.count),
            None => format!("{} audit events were dropped: buffer full", run.count),
        })
        .detail("count", run.count)
        .detail("firstSeq", run.first_seq)
        .detail("lastSeq", run.last_seq)
        .detail("reason", reason);
    if let Some(s) = sink {
        b = b.detail("sink", s).target(sink_target(s));
    }
    build(b)
}

/// Most event ids listed in one drop report; the count is always exact.
pub(crate) const MAX_LISTED_IDS: usize = 100;

/// Named events a sink gave up on, reported under their tenant (when they had one) so the
/// tenant's own admins see the gap.
pub(crate) fn dropped_events(
    run: DropRun,
    sink: &str,
    reason: &str,
    tenant: Option<&str>,
    ids: impl Iterator<Item = String>,
) -> AuditEvent {
    let mut e = dropped(run, Some(sink), reason);
    let ids: Vec<String> = ids.take(MAX_LISTED_IDS).collect();
    e.details.insert("eventIds".into(), ids.into());
    if let Some(t) = tenant {
        e.context
            .get_or_insert_with(Default::default)
            .organization_id = Some(t.into());
    }
    e
}

/// At a shutdown that ran out of time: events still owed to a sink.
pub(crate) fn undelivered(run: DropRun, sink: &str) -> AuditEvent {
    build(
        system("system.audit.undelivered")
            .severity(Severity::Critical)
            .description(format!(
                "{} audit events were still waiting for sink {sink} when the auditor stopped",
                run.count
            ))
            .target(sink_target(sink))
            .detail("sink", sink)
            .detail("count", run.count)
            .detail("firstSeq", run.first_seq)
            .detail("lastSeq", run.last_seq),
    )
}

pub(crate) fn sink_unhealthy(name: &str, err: &SinkError) -> AuditEvent {
    build(
        system("system.sink.unhealthy")
            .severity(Severity::Error)
            .description(format!("audit sink {name} failed: {err}"))
            .target(sink_target(name))
            .detail("sink", name)
            .detail("error", err.message())
            .detail("permanent", err.is_permanent()),
    )
}

pub(crate) fn sink_stalled(name: &str, after: Duration, events: usize) -> AuditEvent {
    build(
        system("system.sink.stalled")
            .severity(Severity::Warning)
            .description(format!(
                "audit sink {name} has not answered a delivery for {} ms",
                after.as_millis()
            ))
            .target(sink_target(name))
            .detail("sink", name)
            .detail("stalledForMs", after.as_millis() as u64)
            .detail("events", events as u64),
    )
}

pub(crate) fn sink_recovered(name: &str, failed_attempts: u32, down_for: Duration) -> AuditEvent {
    build(
        system("system.sink.recovered")
            .severity(Severity::Notice)
            .description(format!("audit sink {name} recovered"))
            .target(sink_target(name))
            .detail("sink", name)
            .detail("failedAttempts", failed_attempts)
            .detail("downForMs", down_for.as_millis() as u64),
    )
}

/// A deferred event's recipe panicked (a bug in the code that recorded it).
pub(crate) fn build_failed() -> AuditEvent {
    build(
        system("system.audit.build_failed")
            .severity(Severity::Critical)
            .description("an audit event could not be built: its recipe panicked"),
    )
}

/// A run of consecutive losses, reported as one `system.audit.dropped` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DropRun {
    pub(crate) count: u64,
    pub(crate) first_seq: u64,
    pub(crate) last_seq: u64,
}

impl DropRun {
    /// Folds `other` into `run` (counts add; the range widens).
    pub(crate) fn merge(run: &mut Option<DropRun>, other: DropRun) {
        *run = Some(match *run {
            None => other,
            Some(r) => DropRun {
                count: r.count + other.count,
                first_seq: r.first_seq.min(other.first_seq),
                last_seq: r.last_seq.max(other.last_seq),
            },
        });
    }

    pub(crate) fn note(run: &mut Option<DropRun>, seq: u64) {
        match run {
            Some(r) => {
                r.count += 1;
                r.last_seq = seq;
            }
            None => {
                *run = Some(DropRun {
                    count: 1,
                    first_seq: seq,
                    last_seq: seq,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_events_are_valid() {
        let run = DropRun {
            count: 3,
            first_seq: 5,
            last_seq: 9,
        };
        let e = dropped(run, None, "buffer_full");
        assert_eq!(e.event_type.as_str(), "system.audit.dropped");
        assert_eq!(e.details["count"], 3);
        assert!(e.details.get("sink").is_none());
        let e = sink_unhealthy("file", &SinkError::retryable("disk full"));
        assert_eq!(e.details["error"], "disk full");
        let e = sink_recovered("file", 2, Duration::from_millis(1500));
        assert_eq!(e.details["downForMs"], 1500);
    }
}
