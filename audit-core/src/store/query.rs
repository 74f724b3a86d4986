//! What a search asks for: filters, order, page size and the keyset cursor.
//!
//! [`QueryParams`] is the wire form (query-string or JSON body, camelCase, every field a
//! string or number as a client sends it); [`QueryParams::into_query`] validates it into a
//! [`Query`] or explains, as a [`QueryError`], what is wrong. Stores translate a [`Query`] into
//! their own language; [`Filter::matches`] is the reference semantics they must agree with.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{AuditEvent, Category, Outcome, Severity, Timestamp};

/// Default page size.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page a client may ask for.
pub const MAX_LIMIT: usize = 1000;
/// Largest offset a client may ask for ([`Query::offset`]).
pub const MAX_OFFSET: usize = 100_000;

/// Which tenants' events a query may see. Set by the caller's authorisation, never by the
/// client's filters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TenantScope {
    /// Every event, including events without a tenant (operators only).
    All,
    /// Only events whose `context.organizationId` is one of these. Empty: nothing.
    Only(Vec<String>),
    /// Nothing at all (the default, so a forgotten scope leaks nothing).
    #[default]
    None,
}

impl TenantScope {
    /// A scope of exactly one tenant.
    pub fn tenant(id: impl Into<String>) -> TenantScope {
        TenantScope::Only(vec![id.into()])
    }

    /// True when an event of tenant `tenant` is visible in this scope.
    pub fn allows(&self, tenant: Option<&str>) -> bool {
        match self {
            TenantScope::All => true,
            TenantScope::Only(list) => tenant.is_some_and(|t| list.iter().any(|l| l == t)),
            TenantScope::None => false,
        }
    }
}

/// An event-type filter: an exact type or a glob where `*` matches any run of characters
/// (`auth.*`, `*.delete`, `data.*.read`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTypePattern(String);

impl EventTypePattern {
    /// Validates a pattern: 1–128 characters from `a-z 0-9 _ . *`.
    pub fn new(pattern: &str) -> Result<EventTypePattern, QueryError> {
        let ok = !pattern.is_empty()
            && pattern.len() <= 128
            && pattern
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'*'));
        if ok {
            Ok(EventTypePattern(pattern.to_owned()))
        } else {
            Err(QueryError::invalid(format!(
                "eventType {pattern:?} is not a valid pattern: use lowercase letters, digits, \
                 `_`, `.` and `*` (e.g. `auth.*`), at most 128 characters"
            )))
        }
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when the pattern has a `*`.
    pub fn is_glob(&self) -> bool {
        self.0.contains('*')
    }

    /// True when `event_type` matches.
    pub fn matches(&self, event_type: &str) -> bool {
        glob_match(self.0.as_bytes(), event_type.as_bytes())
    }
}

/// Iterative glob with backtracking to the last `*`: linear in practice, no recursion.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// A set of event types given as alternatives: an event type is in the set when it meets
/// any clause, and a clause is met when the type matches its pattern (or the clause has none)
/// and none of its exclusions.
///
/// It expresses "the types whose first matching rule is this one" for an ordered rule list,
/// as the audit API's profiles need to filter by a derived type name:
///
/// ```
/// use audit_core::store::{EventTypePattern, EventTypeSet};
/// let p = |s| EventTypePattern::new(s).unwrap();
/// // Rules in order: `admin.audit_log.*` → other, `admin.*` → config_change.
/// let config_change = EventTypeSet::empty().clause(Some(p("admin.*")), vec![p("admin.audit_log.*")]);
/// assert!(config_change.matches("admin.role.assign"));
/// assert!(!config_change.matches("admin.audit_log.read"));
/// assert!(!EventTypeSet::empty().matches("admin.role.assign"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventTypeSet {
    clauses: Vec<(Option<EventTypePattern>, Vec<EventTypePattern>)>,
}

impl EventTypeSet {
    /// The empty set: no event type is in it.
    pub fn empty() -> EventTypeSet {
        EventTypeSet::default()
    }

    /// Adds the types that match `include` (every type when `None`) and none of `exclude`.
    #[must_use]
    pub fn clause(
        mut self,
        include: Option<EventTypePattern>,
        exclude: Vec<EventTypePattern>,
    ) -> EventTypeSet {
        self.clauses.push((include, exclude));
        self
    }

    /// The clauses, each an optional pattern and its exclusions.
    pub fn clauses(&self) -> &[(Option<EventTypePattern>, Vec<EventTypePattern>)] {
        &self.clauses
    }

    /// True when `event_type` is in the set.
    pub fn matches(&self, event_type: &str) -> bool {
        self.clauses.iter().any(|(include, exclude)| {
            include.as_ref().is_none_or(|p| p.matches(event_type))
                && !exclude.iter().any(|p| p.matches(event_type))
        })
    }
}

/// The conditions an event must meet. Every set field must match (AND); unset fields match
/// anything.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Filter {
    /// Tenants visible to the caller (from authorisation).
    pub tenants: TenantScope,
    /// Inclusive lower bound.
    pub start_time: Option<Timestamp>,
    /// Exclusive upper bound.
    pub end_time: Option<Timestamp>,
    /// Event type or glob.
    pub event_type: Option<EventTypePattern>,
    /// One of a set of event types (besides `event_type`, which must match as well).
    pub event_types: Option<EventTypeSet>,
    /// Category.
    pub category: Option<Category>,
    /// Severity (exact).
    pub severity: Option<Severity>,
    /// `actor.id`.
    pub actor_id: Option<String>,
    /// `actor.email`.
    pub actor_email: Option<String>,
    /// `actor.clientId`.
    pub client_id: Option<String>,
    /// `result`.
    pub result: Option<Outcome>,
    /// `target.type`.
    pub resource_type: Option<String>,
    /// `target.id`.
    pub target_id: Option<String>,
    /// `context.requestId`.
    pub request_id: Option<String>,
    /// Case-insensitive (ASCII) substring of the description, the event id, `actor.id`,
    /// `actor.email`, `target.id` or `context.requestId`.
    pub text: Option<String>,
}

impl Filter {
    /// A filter that sees `tenants` and is otherwise open.
    pub fn scoped(tenants: TenantScope) -> Filter {
        Filter {
            tenants,
            ..Filter::default()
        }
    }

    /// The reference semantics: true when `event` passes every set condition.
    pub fn matches(&self, event: &AuditEvent) -> bool {
        let actor = event.actor.as_ref();
        let target = event.target.as_ref();
        let ctx = event.context.as_ref();
        let ts = event.timestamp;
        let eq = |want: &Option<String>, got: Option<&crate::Text>| {
            want.as_ref().is_none_or(|w| got.is_some_and(|g| g == w))
        };
        self.tenants.allows(event.organization_id())
            && self.start_time.is_none_or(|s| ts >= s)
            && self.end_time.is_none_or(|e| ts < e)
            && self
                .event_type
                .as_ref()
                .is_none_or(|p| p.matches(event.event_type.as_str()))
            && self
                .event_types
                .as_ref()
                .is_none_or(|set| set.matches(event.event_type.as_str()))
            && self.category.is_none_or(|c| c == event.category)
            && self.severity.is_none_or(|s| s == event.severity)
            && eq(&self.actor_id, actor.and_then(|a| a.id.as_ref()))
            && eq(&self.actor_email, actor.and_then(|a| a.email.as_ref()))
            && eq(&self.client_id, actor.and_then(|a| a.client_id.as_ref()))
            && self.result.is_none_or(|r| Some(r) == event.result)
            && eq(&self.resource_type, target.and_then(|t| t.kind.as_ref()))
            && eq(&self.target_id, target.and_then(|t| t.id.as_ref()))
            && eq(&self.request_id, ctx.and_then(|c| c.request_id.as_ref()))
            && self.text.as_ref().is_none_or(|q| text_matches(q, event))
    }
}

fn text_matches(q: &str, event: &AuditEvent) -> bool {
    let q = q.to_ascii_lowercase();
    let hit = |s: Option<&str>| s.is_some_and(|s| s.to_ascii_lowercase().contains(&q));
    let actor = event.actor.as_ref();
    hit(event.description.as_deref())
        || hit(Some(&event.id.to_string()))
        || hit(actor.and_then(|a| a.id.as_deref()))
        || hit(actor.and_then(|a| a.email.as_deref()))
        || hit(event.target.as_ref().and_then(|t| t.id.as_deref()))
        || hit(event.context.as_ref().and_then(|c| c.request_id.as_deref()))
}

/// Result order, by `(timestamp, id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    /// Newest first (the default).
    #[default]
    Desc,
    /// Oldest first.
    Asc,
}

/// A position in a result list: the `(timestamp, id)` of the last event of the previous page
/// and the order it was taken in. Opaque on the wire ([`Cursor::encode`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Timestamp of the last event returned.
    pub timestamp: Timestamp,
    /// Id of the last event returned.
    pub id: String,
    /// The order the cursor walks.
    pub order: SortOrder,
}

impl Cursor {
    /// The cursor after `event` in `order`.
    pub fn after(event: &AuditEvent, order: SortOrder) -> Cursor {
        Cursor {
            timestamp: event.timestamp,
            id: event.id.to_string(),
            order,
        }
    }

    /// The opaque wire form (hex of a versioned text form).
    pub fn encode(&self) -> String {
        let dir = match self.order {
            SortOrder::Desc => 'd',
            SortOrder::Asc => 'a',
        };
        let raw = format!("v1:{dir}:{}:{}", self.timestamp.unix_millis(), self.id);
        hex::encode(raw)
    }

    /// Reads a cursor produced by [`encode`](Cursor::encode); anything else is an
    /// `INVALID_REQUEST` error.
    pub fn decode(s: &str) -> Result<Cursor, QueryError> {
        let bad = || QueryError::invalid("cursor is malformed; pass back nextCursor unchanged");
        // Lowercase hex only, as `encode` writes it.
        if s.len() > 400 || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad());
        }
        let bytes = hex::decode(s).map_err(|_| bad())?;
        let raw = String::from_utf8(bytes).map_err(|_| bad())?;
        let mut parts = raw.splitn(4, ':');
        let (Some("v1"), Some(dir), Some(millis), Some(id)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let order = match dir {
            "d" => SortOrder::Desc,
            "a" => SortOrder::Asc,
            _ => return Err(bad()),
        };
        let millis: i64 = millis.parse().map_err(|_| bad())?;
        let timestamp = Timestamp::from_unix_millis(millis).map_err(|_| bad())?;
        if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
            return Err(bad());
        }
        Ok(Cursor {
            timestamp,
            id: id.to_owned(),
            order,
        })
    }
}

/// A validated search: filter, order, page size and position.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Query {
    /// Which events.
    pub filter: Filter,
    /// In which order.
    pub order: SortOrder,
    /// Page size, 1–[`MAX_LIMIT`].
    pub limit: usize,
    /// Where the previous page ended.
    pub cursor: Option<Cursor>,
    /// How many matching events to skip before the page (after the cursor, if any); at most
    /// [`MAX_OFFSET`]. Offsets cost the store a walk over the skipped rows: cursors are the
    /// way to page deep.
    pub offset: usize,
    /// Whether to count the whole filtered set ([`Summary`](super::Summary)); exports skip it.
    pub include_summary: bool,
}

impl Query {
    /// A first page of [`DEFAULT_LIMIT`] events, newest first, matching `filter`.
    pub fn new(filter: Filter) -> Query {
        Query {
            filter,
            order: SortOrder::Desc,
            limit: DEFAULT_LIMIT,
            cursor: None,
            offset: 0,
            include_summary: true,
        }
    }

    /// Sets the order.
    #[must_use]
    pub fn order(mut self, order: SortOrder) -> Query {
        self.order = order;
        self
    }

    /// Sets the page size (clamped to 1–[`MAX_LIMIT`]; [`QueryParams`] rejects instead).
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Query {
        self.limit = limit.clamp(1, MAX_LIMIT);
        self
    }

    /// Continues after `cursor`.
    #[must_use]
    pub fn cursor(mut self, cursor: Option<Cursor>) -> Query {
        self.cursor = cursor;
        self
    }

    /// Skips `offset` matching events (clamped to [`MAX_OFFSET`]).
    #[must_use]
    pub fn offset(mut self, offset: usize) -> Query {
        self.offset = offset.min(MAX_OFFSET);
        self
    }

    /// True when `event` lies strictly after the cursor in this query's order.
    pub fn after_cursor(&self, event: &AuditEvent) -> bool {
        let Some(c) = &self.cursor else { return true };
        let key = (event.timestamp, event.id.to_string());
        let at = (c.timestamp, c.id.clone());
        match self.order {
            SortOrder::Desc => key < at,
            SortOrder::Asc => key > at,
        }
    }
}

/// A search as a client sends it, in a query string (`GET /logs?eventType=auth.*`) or a JSON
/// body (`POST /search`). Names are camelCase; each also has a snake_case alias
/// (`start_time`, `event_type`, `actor_id`, …, and `sort_order` for `sort`). Unknown fields
/// are rejected, and so is a field given under both of its names, so a misspelt filter is an
/// error rather than a silently wider result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct QueryParams {
    /// RFC 3339, inclusive.
    #[serde(alias = "start_time")]
    pub start_time: Option<String>,
    /// RFC 3339, exclusive.
    #[serde(alias = "end_time")]
    pub end_time: Option<String>,
    /// Event type or glob.
    #[serde(alias = "event_type")]
    pub event_type: Option<String>,
    /// Category name.
    pub category: Option<String>,
    /// Severity name.
    pub severity: Option<String>,
    /// `actor.id`.
    #[serde(alias = "actor_id")]
    pub actor_id: Option<String>,
    /// `actor.email`.
    #[serde(alias = "actor_email")]
    pub actor_email: Option<String>,
    /// `actor.clientId`.
    #[serde(alias = "client_id")]
    pub client_id: Option<String>,
    /// Outcome name.
    pub result: Option<String>,
    /// `target.type`.
    #[serde(alias = "resource_type")]
    pub resource_type: Option<String>,
    /// `target.id`.
    #[serde(alias = "target_id")]
    pub target_id: Option<String>,
    /// `context.requestId`.
    #[serde(alias = "request_id")]
    pub request_id: Option<String>,
    /// Free text.
    pub q: Option<String>,
    /// `asc` or `desc`.
    #[serde(alias = "sortOrder", alias = "sort_order")]
    pub sort: Option<String>,
    /// The field to sort by: only `timestamp` (the order is always by time, then id).
    #[serde(alias = "sort_by")]
    pub sort_by: Option<String>,
    /// Page size; a number, or its decimal text in a query string.
    #[serde(default, deserialize_with = "number_or_text")]
    pub limit: Option<String>,
    /// `nextCursor` from the previous page.
    pub cursor: Option<String>,
}

fn number_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrText {
        Num(serde_json::Number),
        Text(String),
    }
    Ok(Option::<NumOrText>::deserialize(d)?.map(|v| match v {
        NumOrText::Num(n) => n.to_string(),
        NumOrText::Text(s) => s,
    }))
}

impl QueryParams {
    /// Validates the parameters into a [`Query`] seeing `tenants`.
    ///
    /// Errors: `INVALID_TIME_RANGE` when `startTime` is not before `endTime`;
    /// `INVALID_REQUEST` for an unparsable time, an unknown category/severity/result/sort, a
    /// limit outside 1–1000, a bad event-type pattern or a malformed cursor (or one taken in
    /// the other order).
    pub fn into_query(self, tenants: TenantScope) -> Result<Query, QueryError> {
        let time = |name: &str, v: Option<String>| -> Result<Option<Timestamp>, QueryError> {
            v.filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<Timestamp>().map_err(|_| {
                        QueryError::invalid(format!(
                            "{name} {s:?} is not an RFC 3339 time such as 2025-01-02T00:00:00Z"
                        ))
                    })
                })
                .transpose()
        };
        let start_time = time("startTime", self.start_time)?;
        let end_time = time("endTime", self.end_time)?;
        if let (Some(s), Some(e)) = (start_time, end_time)
            && s >= e
        {
            return Err(QueryError {
                code: QueryErrorCode::InvalidTimeRange,
                message: "startTime must be before endTime".into(),
            });
        }
        fn parsed<T: std::str::FromStr>(
            name: &str,
            v: Option<String>,
            allowed: &str,
        ) -> Result<Option<T>, QueryError> {
            nonempty(v)
                .map(|s| {
                    s.parse::<T>().map_err(|_| {
                        QueryError::invalid(format!("{name} {s:?} is not one of {allowed}"))
                    })
                })
                .transpose()
        }
        let filter = Filter {
            tenants,
            start_time,
            end_time,
            event_type: nonempty(self.event_type)
                .map(|p| EventTypePattern::new(&p))
                .transpose()?,
            category: parsed(
                "category",
                self.category,
                "authentication, data, admin, security, system",
            )?,
            severity: parsed(
                "severity",
                self.severity,
                "debug, info, notice, warning, error, critical",
            )?,
            actor_id: bounded("actorId", self.actor_id)?,
            actor_email: bounded("actorEmail", self.actor_email)?,
            client_id: bounded("clientId", self.client_id)?,
            result: parsed(
                "result",
                self.result,
                "success, failure, denied, error, cancelled",
            )?,
            resource_type: bounded("resourceType", self.resource_type)?,
            target_id: bounded("targetId", self.target_id)?,
            request_id: bounded("requestId", self.request_id)?,
            text: bounded("q", self.q)?,
            event_types: None,
        };
        match nonempty(self.sort_by).as_deref() {
            None | Some("timestamp") => {}
            Some(other) => {
                return Err(QueryError::invalid(format!(
                    "sortBy {other:?} is not supported: events sort by timestamp"
                )));
            }
        }
        let order = match nonempty(self.sort).as_deref() {
            None | Some("desc") => SortOrder::Desc,
            Some("asc") => SortOrder::Asc,
            Some(other) => {
                return Err(QueryError::invalid(format!(
                    "sort {other:?} is not one of asc, desc"
                )));
            }
        };
        let limit = match nonempty(self.limit) {
            None => DEFAULT_LIMIT,
            // Digits only: `+5`, ` 5` and `5.0` are refused rather than read leniently.
            Some(s) => match s.parse::<usize>() {
                Ok(n) if s.bytes().all(|b| b.is_ascii_digit()) && (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(QueryError::invalid(format!(
                        "limit {s:?} must be a whole number from 1 to {MAX_LIMIT}"
                    )));
                }
            },
        };
        let cursor = nonempty(self.cursor)
            .map(|c| Cursor::decode(&c))
            .transpose()?;
        if cursor.as_ref().is_some_and(|c| c.order != order) {
            return Err(QueryError::invalid(
                "cursor was taken in the other sort order; keep sort unchanged while paging",
            ));
        }
        Ok(Query {
            filter,
            order,
            limit,
            cursor,
            offset: 0,
            include_summary: true,
        })
    }
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

/// Longest accepted free-form filter value.
const MAX_FILTER_LEN: usize = 256;

/// A free-form filter value: at most 256 bytes, no control character (a NUL would end the
/// text early in SQLite's string functions and is refused by PostgreSQL; stored events never
/// hold one, see [`crate::limits`]).
fn bounded(name: &str, v: Option<String>) -> Result<Option<String>, QueryError> {
    match nonempty(v) {
        Some(s) if s.len() > MAX_FILTER_LEN => Err(QueryError::invalid(format!(
            "{name} is longer than {MAX_FILTER_LEN} bytes"
        ))),
        Some(s) if s.chars().any(char::is_control) => Err(QueryError::invalid(format!(
            "{name} must not contain control characters"
        ))),
        v => Ok(v),
    }
}

/// Checks an identifier taken from a path or header (an event id, a tenant id): 1 to 256
/// bytes, no control character.
pub fn check_id(name: &str, value: &str) -> Result<(), QueryError> {
    if value.is_empty() || value.len() > MAX_FILTER_LEN {
        return Err(QueryError::invalid(format!(
            "{name} must be 1 to {MAX_FILTER_LEN} bytes"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(QueryError::invalid(format!(
            "{name} must not contain control characters"
        )));
    }
    Ok(())
}

/// Why a query was refused; the code is the API's error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// The API error code.
    pub code: QueryErrorCode,
    /// What is wrong, for the person who wrote the query.
    pub message: String,
}

impl QueryError {
    /// An `INVALID_REQUEST` error.
    pub fn invalid(message: impl Into<String>) -> QueryError {
        QueryError {
            code: QueryErrorCode::InvalidRequest,
            message: message.into(),
        }
    }
}

/// The error codes a query can fail with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueryErrorCode {
    /// `INVALID_REQUEST`.
    InvalidRequest,
    /// `INVALID_TIME_RANGE`.
    InvalidTimeRange,
}

impl QueryErrorCode {
    /// The wire code.
    pub fn as_str(self) -> &'static str {
        match self {
            QueryErrorCode::InvalidRequest => "INVALID_REQUEST",
            QueryErrorCode::InvalidTimeRange => "INVALID_TIME_RANGE",
        }
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for QueryError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// snake_case names are aliases: accepted alike, and never both at once.
    #[test]
    fn snake_case_aliases() {
        let parse = |q: &str| serde_urlencoded::from_str::<QueryParams>(q);
        let camel = parse("startTime=2025-01-01T00:00:00Z&eventType=auth.*&sort=asc").unwrap();
        let snake =
            parse("start_time=2025-01-01T00:00:00Z&event_type=auth.*&sort_order=asc").unwrap();
        assert_eq!(camel, snake);
        assert!(parse("eventType=auth.*&event_type=data.*").is_err());
        assert!(parse("event_typ=auth.*").is_err());
        let q = parse("sort_by=timestamp")
            .unwrap()
            .into_query(TenantScope::All);
        assert!(q.is_ok());
        let e = parse("sort_by=severity")
            .unwrap()
            .into_query(TenantScope::All);
        assert!(e.is_err());
        let body: QueryParams =
            serde_json::from_str(r#"{"actor_id": "u1", "request_id": "r1"}"#).unwrap();
        assert_eq!(body.actor_id.as_deref(), Some("u1"));
        assert_eq!(body.request_id.as_deref(), Some("r1"));
    }

    #[test]
    fn globs() {
        let p = |s: &str| EventTypePattern::new(s).unwrap();
        assert!(p("auth.*").matches("auth.login.success"));
        assert!(!p("auth.*").matches("admin.user.create"));
        assert!(p("*.delete").matches("data.vector.delete"));
        assert!(!p("*.delete").matches("data.vector.deleted"));
        assert!(p("data.*.read").matches("data.vector.read"));
        assert!(p("auth.login").matches("auth.login"));
        assert!(!p("auth.login").matches("auth.login.success"));
        assert!(p("*").matches("anything.at.all"));
        assert!(EventTypePattern::new("Auth.*").is_err());
        assert!(EventTypePattern::new("auth.%").is_err());
    }

    #[test]
    fn cursor_round_trip_and_rejects_garbage() {
        let c = Cursor {
            timestamp: Timestamp::from_unix_millis(1_700_000_000_123).unwrap(),
            id: "0190-abc:with:colons".into(),
            order: SortOrder::Asc,
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        for bad in ["", "zz", "abc", "763130", &"76".repeat(300)] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn params_validate() {
        let ok = QueryParams {
            start_time: Some("2025-01-01T00:00:00Z".into()),
            end_time: Some("2025-01-02T00:00:00Z".into()),
            limit: Some("1000".into()),
            ..QueryParams::default()
        };
        assert_eq!(ok.into_query(TenantScope::All).unwrap().limit, 1000);
        let reversed = QueryParams {
            start_time: Some("2025-01-02T00:00:00Z".into()),
            end_time: Some("2025-01-02T00:00:00Z".into()),
            ..QueryParams::default()
        };
        let err = reversed.into_query(TenantScope::All).unwrap_err();
        assert_eq!(err.code, QueryErrorCode::InvalidTimeRange);
        for params in [
            QueryParams {
                limit: Some("1001".into()),
                ..QueryParams::default()
            },
            QueryParams {
                limit: Some("0".into()),
                ..QueryParams::default()
            },
            QueryParams {
                category: Some("nope".into()),
                ..QueryParams::default()
            },
            QueryParams {
                start_time: Some("yesterday".into()),
                ..QueryParams::default()
            },
            QueryParams {
                cursor: Some("not-a-cursor".into()),
                ..QueryParams::default()
            },
        ] {
            let err = params.into_query(TenantScope::All).unwrap_err();
            assert_eq!(err.code, QueryErrorCode::InvalidRequest);
        }
        let json: QueryParams = serde_json::from_str(r#"{"limit": 5, "actorId": "u1"}"#).unwrap();
        assert_eq!(json.limit.as_deref(), Some("5"));
        assert!(serde_json::from_str::<QueryParams>(r#"{"actor": "u1"}"#).is_err());
    }

    #[test]
    fn like_escapes() {}
}
