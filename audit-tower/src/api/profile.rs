//! Profiles: the request dialect and response shape one mount of the audit API speaks, over
//! the same store, authorization, tenancy, access auditing and error contract.

use audit_core::store::{EventTypePattern, EventTypeSet};

/// Which dialect a mount of [`AuditApi`](super::AuditApi) speaks ([`AuditApi::profile`](super::AuditApi::profile)).
/// Mount the API once per profile, each under its own prefix; they share the store and the
/// auditor you give them.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum Profile {
    /// The native API: camelCase filters (snake_case aliases accepted), cursor pages with a
    /// summary, export, streams, verification and the viewer (the routes in the
    /// [module docs](super)).
    #[default]
    Native,
    /// An orchestrator's audit search, for clients written against that dialect:
    ///
    /// | method & path | what |
    /// |---|---|
    /// | `POST /search` `{user_email, client_id, start_time, end_time, request_type, limit, offset}` | `limit` 100 by default, at most 1000 (larger values are lowered; the answer says which was used); `end_time` inclusive |
    /// | `GET /tenant/{tenant_id}?limit=&offset=` | one tenant's latest events, `limit` 50 by default; `X-Org-ID` names the caller's own tenant and must be one it belongs to |
    ///
    /// Both answer `{"entries": [...], "total", "limit", "offset"}`, newest first. An entry
    /// has `id`, `request_id`, `timestamp`, `user_id` (a number when the actor id is one),
    /// `user_email`, `user_role`, `client_id`, `tenant_id`, `request_type` (from
    /// [`RequestTypes`]), `policy_decision` (`details.policyDecision`, else `allowed` for a
    /// success and `blocked` for a denial), `response_time_ms` (the HTTP duration, else
    /// `details.responseTimeMs`), `redacted_fields` (always present), and `query`,
    /// `query_hash`, `policy_details`, `provider`, `model`, `tokens_used`, `cost`,
    /// `response_sample`, `compliance_flags`, `security_metrics` and `error_message` when
    /// the event's details hold them (camelCase or snake_case keys); missing or empty fields
    /// are omitted. Errors: `INVALID_REQUEST` (`Invalid JSON in request body`),
    /// `INVALID_TIME_RANGE` (`start_time must be before end_time`), `UNAUTHORIZED`
    /// (`Missing authentication`), `FORBIDDEN` (`Access denied to tenant '…'`),
    /// `INTERNAL_ERROR` (`Audit search failed`).
    Orchestrator(RequestTypes),
    /// An audit-log REST resource, for clients written against that dialect:
    ///
    /// | method & path | scope | what |
    /// |---|---|---|
    /// | `GET /` | `audit:read` (API keys accepted) | a cursor page: `sort_by` (`timestamp`), `sort_order` (`desc` default, `asc`), `limit`, `cursor` and the native filters in snake_case |
    /// | `GET /filters` | `audit:read` | filter, operator and sort options |
    /// | `GET /{id}` | `audit:read` (API keys accepted) | one entry |
    /// | `DELETE /{id}` | `audit:write` | deletes one entry (204) |
    ///
    /// A page answers `{"items": [...], "total", "current_page", "next_page",
    /// "previous_page"}` (the shape of a cursor page in Python's fastapi-pagination):
    /// `next_page` is the cursor for the next page or `null`, `previous_page` is always
    /// `null` (pages only go forward). Entries are the canonical events. Callers whose
    /// principal is an API key (`kind` `api_key`) are refused (403) on `/filters` and
    /// `DELETE`.
    Resource,
}

impl Profile {
    /// The orchestrator profile with the default [`RequestTypes`].
    pub fn orchestrator() -> Profile {
        Profile::Orchestrator(RequestTypes::default())
    }
}

/// How the orchestrator profile names an event's `request_type`: an ordered list of
/// event-type patterns, the first match deciding, and a name for everything else.
///
/// The default:
///
/// | event type | `request_type` |
/// |---|---|
/// | `admin.audit_log.*` | `api_call` |
/// | `auth.*` | `auth_event` |
/// | `*.policy.*` | `policy_evaluation` |
/// | `*.llm.*` | `llm_request` |
/// | `*.mcp.query` | `mcp_query` |
/// | `*.mcp.*` | `mcp_execute` |
/// | `*.workflow.*` | `workflow_execution` |
/// | `admin.*` | `config_change` |
/// | anything else | `api_call` |
///
/// A search by `request_type` becomes a store query over the event types whose first
/// matching rule has that name, so it pages and counts in the store like any filter.
///
/// ```
/// use audit_tower::api::RequestTypes;
/// let types = RequestTypes::new("api_call").rule("data.completion.*", "llm_request").unwrap();
/// assert_eq!(types.name_of("data.completion.create"), "llm_request");
/// assert_eq!(types.name_of("data.index.create"), "api_call");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTypes {
    rules: Vec<(EventTypePattern, String)>,
    fallback: String,
}

impl Default for RequestTypes {
    fn default() -> RequestTypes {
        let mut types = RequestTypes::new("api_call");
        for (pattern, name) in [
            ("admin.audit_log.*", "api_call"),
            ("auth.*", "auth_event"),
            ("*.policy.*", "policy_evaluation"),
            ("*.llm.*", "llm_request"),
            ("*.mcp.query", "mcp_query"),
            ("*.mcp.*", "mcp_execute"),
            ("*.workflow.*", "workflow_execution"),
            ("admin.*", "config_change"),
        ] {
            if let Ok(pattern) = EventTypePattern::new(pattern) {
                types.rules.push((pattern, name.to_owned()));
            }
        }
        types
    }
}

impl RequestTypes {
    /// No rules yet: every event is `fallback`.
    pub fn new(fallback: impl Into<String>) -> RequestTypes {
        RequestTypes {
            rules: Vec::new(),
            fallback: fallback.into(),
        }
    }

    /// Adds a rule after the existing ones: events whose type matches `pattern` (an exact
    /// type or a glob such as `data.llm.*`) are `name`. Fails on an invalid pattern.
    pub fn rule(
        mut self,
        pattern: &str,
        name: impl Into<String>,
    ) -> Result<RequestTypes, audit_core::store::QueryError> {
        self.rules
            .push((EventTypePattern::new(pattern)?, name.into()));
        Ok(self)
    }

    /// The `request_type` of an event of type `event_type`.
    pub fn name_of(&self, event_type: &str) -> &str {
        self.rules
            .iter()
            .find(|(p, _)| p.matches(event_type))
            .map_or(self.fallback.as_str(), |(_, name)| name.as_str())
    }

    /// The event types whose `request_type` is `name`: for each rule of that name, its
    /// pattern minus every earlier rule's; for the fallback name, whatever no rule matches.
    /// A name no rule gives is the empty set.
    pub fn event_types(&self, name: &str) -> EventTypeSet {
        let mut set = EventTypeSet::empty();
        for (i, (pattern, rule_name)) in self.rules.iter().enumerate() {
            if rule_name == name {
                let earlier = self.rules[..i].iter().map(|(p, _)| p.clone()).collect();
                set = set.clause(Some(pattern.clone()), earlier);
            }
        }
        if self.fallback == name {
            let all = self.rules.iter().map(|(p, _)| p.clone()).collect();
            set = set.clause(None, all);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The set for a name holds exactly the types `name_of` gives that name.
    #[test]
    fn event_types_agree_with_name_of() {
        let types = RequestTypes::default();
        let samples = [
            "admin.audit_log.read",
            "admin.role.assign",
            "auth.login.success",
            "data.policy.evaluate",
            "auth.policy.check",
            "data.llm.request",
            "data.mcp.query",
            "data.mcp.execute",
            "data.workflow.run",
            "data.index.create",
            "system.audit.dropped",
        ];
        for name in [
            "api_call",
            "auth_event",
            "policy_evaluation",
            "llm_request",
            "mcp_query",
            "mcp_execute",
            "workflow_execution",
            "config_change",
            "nothing_gives_this",
        ] {
            let set = types.event_types(name);
            for t in samples {
                assert_eq!(set.matches(t), types.name_of(t) == name, "{name} / {t}");
            }
        }
    }
}
