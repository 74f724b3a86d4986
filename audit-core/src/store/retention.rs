//! Retention: how long events are kept, per event type, category and tenant, and the task
//! that purges older ones and records that it did.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use super::{EventTypePattern, Store, StoreError};
use crate::{AuditEvent, Auditor, Category, Outcome, Severity, Timestamp};

/// One retention rule: events it matches are kept for `max_age`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RetentionRule {
    /// Matches event types (glob), when set.
    pub event_type: Option<EventTypePattern>,
    /// Matches a category, when set.
    pub category: Option<Category>,
    /// Matches one tenant, when set.
    pub tenant: Option<String>,
    /// How long matching events are kept.
    pub max_age: Duration,
}

impl RetentionRule {
    /// A rule matching every event (narrow it with the `for_*` methods).
    pub fn keep_for(max_age: Duration) -> RetentionRule {
        RetentionRule {
            event_type: None,
            category: None,
            tenant: None,
            max_age,
        }
    }

    /// Only events whose type matches `pattern` (e.g. `data.search.*`).
    pub fn for_event_type(mut self, pattern: &str) -> Result<RetentionRule, crate::Error> {
        let p = EventTypePattern::new(pattern)
            .map_err(|e| crate::Error::config(format!("retention rule: {}", e.message)))?;
        self.event_type = Some(p);
        Ok(self)
    }

    /// Only events of `category`.
    #[must_use]
    pub fn for_category(mut self, category: Category) -> RetentionRule {
        self.category = Some(category);
        self
    }

    /// Only events of `tenant`.
    #[must_use]
    pub fn for_tenant(mut self, tenant: impl Into<String>) -> RetentionRule {
        self.tenant = Some(tenant.into());
        self
    }

    /// True when the rule applies to `event`.
    pub fn matches(&self, event: &AuditEvent) -> bool {
        self.event_type
            .as_ref()
            .is_none_or(|p| p.matches(event.event_type.as_str()))
            && self.category.is_none_or(|c| c == event.category)
            && self
                .tenant
                .as_deref()
                .is_none_or(|t| event.organization_id() == Some(t))
    }

    /// A readable description, used in purge reports.
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        if let Some(p) = &self.event_type {
            parts.push(format!("eventType={}", p.as_str()));
        }
        if let Some(c) = self.category {
            parts.push(format!("category={c}"));
        }
        if let Some(t) = &self.tenant {
            parts.push(format!("tenant={t}"));
        }
        if parts.is_empty() {
            parts.push("all".into());
        }
        parts.push(format!("maxAge={}s", self.max_age.as_secs()));
        parts.join(" ")
    }
}

/// Retention periods: ordered rules (the first that matches an event decides) and a default
/// for events no rule matches (`None`: keep them).
///
/// ```
/// use std::time::Duration;
/// use audit_core::store::{RetentionPolicy, RetentionRule};
///
/// const DAY: Duration = Duration::from_secs(86_400);
/// let policy = RetentionPolicy::keep_for(180 * DAY)
///     .rule(RetentionRule::keep_for(90 * DAY).for_event_type("data.search.*")?);
/// # Ok::<(), audit_core::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct RetentionPolicy {
    /// Checked in order; the first match decides.
    pub rules: Vec<RetentionRule>,
    /// For events no rule matches; `None` keeps them forever.
    pub default_max_age: Option<Duration>,
}

impl RetentionPolicy {
    /// Keeps events `max_age` unless a rule says otherwise.
    pub fn keep_for(max_age: Duration) -> RetentionPolicy {
        RetentionPolicy {
            rules: Vec::new(),
            default_max_age: Some(max_age),
        }
    }

    /// Keeps events forever unless a rule says otherwise.
    pub fn keep_forever() -> RetentionPolicy {
        RetentionPolicy::default()
    }

    /// Adds a rule after the existing ones.
    #[must_use]
    pub fn rule(mut self, rule: RetentionRule) -> RetentionPolicy {
        self.rules.push(rule);
        self
    }

    /// How long `event` is kept (`None`: forever).
    pub fn max_age_for(&self, event: &AuditEvent) -> Option<Duration> {
        match self.rules.iter().find(|r| r.matches(event)) {
            Some(r) => Some(r.max_age),
            None => self.default_max_age,
        }
    }

    /// True when `event` is past its retention at `now`.
    pub fn is_expired(&self, event: &AuditEvent, now: Timestamp) -> bool {
        self.max_age_for(event)
            .is_some_and(|age| event.timestamp < cutoff(now, age))
    }
}

/// The instant before which events kept `age` have expired at `now`.
pub(crate) fn cutoff(now: Timestamp, age: Duration) -> Timestamp {
    let ms = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
    Timestamp::from_unix_millis(now.unix_millis().saturating_sub(ms))
        .unwrap_or_else(|_| Timestamp::from_unix_millis(-62_167_219_200_000).unwrap_or(now))
}

impl RetentionRule {
    /// The instant before which events this rule governs have expired at `now`.
    pub fn cutoff(&self, now: Timestamp) -> Timestamp {
        cutoff(now, self.max_age)
    }
}

impl RetentionPolicy {
    /// The instant before which events no rule matches have expired at `now`.
    pub fn default_cutoff(&self, now: Timestamp) -> Option<Timestamp> {
        self.default_max_age.map(|age| cutoff(now, age))
    }
}

/// What one purge deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PurgeReport {
    /// All deleted events.
    pub deleted: u64,
    /// Deleted per rule, in rule order, then the default (label `default`).
    pub by_rule: Vec<RuleCount>,
}

/// Events one retention rule deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleCount {
    /// The rule's [`label`](RetentionRule::label), or `default`.
    pub rule: String,
    /// How many it deleted.
    pub deleted: u64,
}

impl PurgeReport {
    /// Adds one rule's count.
    pub fn push(&mut self, rule: String, deleted: u64) {
        self.deleted += deleted;
        self.by_rule.push(RuleCount { rule, deleted });
    }
}

/// Runs one purge and records it as a `system.retention.purge` event (`result` success with
/// the counts, or error with the message).
pub async fn purge_once(
    store: &dyn Store,
    policy: &RetentionPolicy,
    auditor: &Auditor,
) -> Result<PurgeReport, StoreError> {
    let started = Instant::now();
    let outcome = store.purge(policy, Timestamp::now()).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let builder = AuditEvent::builder("system.retention.purge").detail("store", store.name());
    let event = match &outcome {
        Ok(report) => builder
            .description(format!("Retention purge deleted {} events", report.deleted))
            .result(Outcome::Success)
            .detail("deleted", report.deleted)
            .detail("byRule", json!(report.by_rule))
            .detail("durationMs", ms),
        Err(e) => builder
            .description("Retention purge failed")
            .result(Outcome::Error)
            .severity(Severity::Error)
            .detail("error", e.message())
            .detail("durationMs", ms),
    }
    .build();
    if let Ok(event) = event {
        // The purge already happened; a full pipeline is reported by the pipeline itself.
        let _ = auditor.record(event);
    }
    outcome
}

/// The background purge task started by [`RetentionHandle::spawn`]; dropping the handle
/// stops it.
pub struct RetentionHandle {
    task: tokio::task::JoinHandle<()>,
}

impl RetentionHandle {
    /// Purges `store` under `policy` now and then every `interval`, on the current Tokio
    /// runtime, recording each run with `auditor`.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn spawn(
        store: Arc<dyn Store>,
        policy: RetentionPolicy,
        interval: Duration,
        auditor: Auditor,
    ) -> RetentionHandle {
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval.max(Duration::from_secs(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let _ = purge_once(&*store, &policy, &auditor).await;
            }
        });
        RetentionHandle { task }
    }

    /// Stops the task.
    pub fn stop(self) {}
}

impl Drop for RetentionHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl fmt::Debug for RetentionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetentionHandle")
            .field("finished", &self.task.is_finished())
            .finish()
    }
}
