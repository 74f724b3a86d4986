//! SQL shared by the SQLite and PostgreSQL stores: one table layout, one translation of a
//! [`Query`] into `WHERE`/`ORDER BY`, differing only in placeholder syntax and
//! case-insensitive matching.
//!
//! Every value reaches the database as a bound parameter; the only text spliced into SQL is
//! column names and operators chosen here.

use std::fmt::Write as _;

use audit_core::store::{
    EventTypePattern, EventTypeSet, Filter, MAX_OFFSET, Query, RetentionPolicy, RetentionRule,
    SortOrder, TenantScope,
};
use audit_core::{AuditEvent, Timestamp};

/// An event-type pattern as a SQL `LIKE` pattern with `\` as the escape character (`*` →
/// `%`; `_` escaped; patterns hold no `%` or `\`).
fn like_pattern(p: &EventTypePattern) -> String {
    let mut out = String::with_capacity(p.as_str().len() + 4);
    for c in p.as_str().chars() {
        match c {
            '*' => out.push('%'),
            '_' => out.push_str("\\_"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes `%`, `_` and `\` for a SQL `LIKE ... ESCAPE '\'` substring search, lowercased.
fn like_contains(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c.to_ascii_lowercase());
    }
    out.push('%');
    out
}

/// The dialect differences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(all(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The `ts` column as Unix milliseconds (SQLite stores them; PostgreSQL a `timestamptz`).
    pub(crate) fn ts_millis(self) -> &'static str {
        match self {
            Dialect::Sqlite => "ts",
            Dialect::Postgres => "(extract(epoch FROM ts) * 1000)::bigint",
        }
    }
}

/// A bound parameter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Text(String),
    Int(i64),
    /// A point in time, Unix milliseconds: an integer in SQLite, a `timestamptz` in
    /// PostgreSQL.
    Time(i64),
}

/// A SQL fragment under construction with its parameters.
#[derive(Debug)]
pub(crate) struct Sql {
    pub(crate) dialect: Dialect,
    pub(crate) text: String,
    pub(crate) params: Vec<Param>,
}

impl Sql {
    pub(crate) fn new(dialect: Dialect, text: &str) -> Sql {
        Sql {
            dialect,
            text: text.to_owned(),
            params: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, s: &str) -> &mut Sql {
        self.text.push_str(s);
        self
    }

    /// Appends a placeholder bound to `p`.
    pub(crate) fn bind(&mut self, p: Param) -> &mut Sql {
        self.params.push(p);
        let n = self.params.len();
        match self.dialect {
            Dialect::Sqlite => write!(self.text, "?{n}"),
            Dialect::Postgres => write!(self.text, "${n}"),
        }
        .unwrap_or(());
        self
    }

    fn text(&mut self, s: &str) -> &mut Sql {
        self.bind(Param::Text(s.to_owned()))
    }

    fn eq(&mut self, column: &str, value: &str) {
        self.push(" AND ").push(column).push(" = ");
        self.text(value);
    }

    /// ` AND <tenant condition>`.
    pub(crate) fn scope(&mut self, scope: &TenantScope) {
        self.scope_on("tenant", scope);
    }

    /// ` AND <tenant condition>` on `column`; `+tenant` keeps SQLite from choosing the
    /// low-cardinality tenant index when a more selective one applies.
    fn scope_on(&mut self, column: &str, scope: &TenantScope) {
        match scope {
            TenantScope::All => {}
            TenantScope::None => {
                self.push(" AND 1 = 0");
            }
            TenantScope::Only(list) if list.is_empty() => {
                self.push(" AND 1 = 0");
            }
            TenantScope::Only(list) => {
                self.push(" AND ").push(column).push(" IN (");
                for (i, t) in list.iter().enumerate() {
                    if i > 0 {
                        self.push(", ");
                    }
                    self.text(t);
                }
                self.push(")");
            }
        }
    }

    /// ` AND <every condition of the filter>`.
    pub(crate) fn filter(&mut self, f: &Filter) {
        let selective = f.actor_id.is_some() || f.request_id.is_some() || f.target_id.is_some();
        if selective && self.dialect == Dialect::Sqlite {
            self.scope_on("+tenant", &f.tenants);
        } else {
            self.scope(&f.tenants);
        }
        if let Some(s) = f.start_time {
            self.push(" AND ts >= ").bind(Param::Time(s.unix_millis()));
        }
        if let Some(e) = f.end_time {
            self.push(" AND ts < ").bind(Param::Time(e.unix_millis()));
        }
        if let Some(p) = &f.event_type {
            if p.is_glob() {
                self.push(" AND event_type LIKE ")
                    .text(&like_pattern(p))
                    .push(" ESCAPE '\\'");
            } else {
                self.eq("event_type", p.as_str());
            }
        }
        if let Some(set) = &f.event_types {
            self.type_set(set);
        }
        if let Some(c) = f.category {
            self.eq("category", c.as_str());
        }
        if let Some(s) = f.severity {
            self.eq("severity", s.as_str());
        }
        if let Some(r) = f.result {
            self.eq("result", r.as_str());
        }
        for (column, value) in [
            ("actor_id", &f.actor_id),
            ("actor_email", &f.actor_email),
            ("client_id", &f.client_id),
            ("target_type", &f.resource_type),
            ("target_id", &f.target_id),
            ("request_id", &f.request_id),
        ] {
            if let Some(v) = value {
                self.eq(column, v);
            }
        }
        if let Some(q) = &f.text {
            let pattern = Param::Text(like_contains(q));
            self.push(" AND (");
            for (i, column) in [
                "description",
                "id",
                "actor_id",
                "actor_email",
                "target_id",
                "request_id",
            ]
            .iter()
            .enumerate()
            {
                if i > 0 {
                    self.push(" OR ");
                }
                match self.dialect {
                    // SQLite's LIKE ignores ASCII case already.
                    Dialect::Sqlite => self.push(column),
                    Dialect::Postgres => self.push("lower(").push(column).push(")"),
                };
                self.push(" LIKE ")
                    .bind(pattern.clone())
                    .push(" ESCAPE '\\'");
            }
            self.push(")");
        }
    }

    /// ` AND (<clause> OR …)` for an [`EventTypeSet`]; nothing matches an empty set.
    fn type_set(&mut self, set: &EventTypeSet) {
        if set.clauses().is_empty() {
            self.push(" AND 1 = 0");
            return;
        }
        self.push(" AND (");
        for (i, (include, exclude)) in set.clauses().iter().enumerate() {
            if i > 0 {
                self.push(" OR ");
            }
            self.push("(1 = 1");
            if let Some(p) = include {
                self.push(" AND event_type LIKE ")
                    .text(&like_pattern(p))
                    .push(" ESCAPE '\\'");
            }
            for p in exclude {
                self.push(" AND event_type NOT LIKE ")
                    .text(&like_pattern(p))
                    .push(" ESCAPE '\\'");
            }
            self.push(")");
        }
        self.push(")");
    }

    /// ` AND <after cursor> ORDER BY … LIMIT limit+1 [OFFSET n]`.
    pub(crate) fn page(&mut self, q: &Query) {
        let (cmp, dir) = match q.order {
            SortOrder::Desc => ("<", "DESC"),
            SortOrder::Asc => (">", "ASC"),
        };
        if let Some(c) = &q.cursor {
            self.push(" AND (ts, id) ")
                .push(cmp)
                .push(" (")
                .bind(Param::Time(c.timestamp.unix_millis()))
                .push(", ")
                .text(&c.id)
                .push(")");
        }
        let _ = write!(
            self.text,
            " ORDER BY ts {dir}, id {dir} LIMIT {}",
            q.limit + 1
        );
        if q.offset > 0 {
            let _ = write!(self.text, " OFFSET {}", q.offset.min(MAX_OFFSET));
        }
    }

    /// `(<rule matches>) IS TRUE`, so a NULL tenant counts as not matching.
    fn rule(&mut self, r: &RetentionRule) {
        self.push("((1 = 1");
        if let Some(p) = &r.event_type {
            self.push(" AND event_type LIKE ")
                .text(&like_pattern(p))
                .push(" ESCAPE '\\'");
        }
        if let Some(c) = r.category {
            self.eq("category", c.as_str());
        }
        if let Some(t) = &r.tenant {
            self.eq("tenant", t);
        }
        self.push(") IS TRUE)");
    }
}

/// Rows one purge statement deletes at most: each batch is its own transaction, so a purge
/// of millions of events never holds one long transaction, one huge lock set or one
/// unbounded write-ahead log record, and ingest goes on between batches.
pub(crate) const PURGE_BATCH: usize = 10_000;

/// The statements of one purge, per rule and then for the default, each with the label its
/// count is reported under: first one that keeps a tombstone of each chained event in
/// `tombstones`, then the delete from `events`. Each pair acts on the same batch of at most
/// `batch` expired events (the oldest ids first) whose deciding rule (the first that
/// matches) is its own; run a pair in one transaction that sees one snapshot, again until
/// the delete removes fewer than `batch`.
pub(crate) fn purge_statements(
    dialect: Dialect,
    policy: &RetentionPolicy,
    now: Timestamp,
    events: &str,
    tombstones: &str,
    batch: usize,
) -> Vec<(String, Sql, Sql)> {
    let batch_of = format!("id IN (SELECT id FROM {events} WHERE ts < ");
    let heads = [
        format!(
            "INSERT INTO {tombstones} ({TOMBSTONE_COLUMNS}) \
             SELECT id, stream, seq, prev_hash, hash, {now}, 'retention', 'retention' \
             FROM {events} WHERE hash IS NOT NULL AND {batch_of}",
            now = now.unix_millis()
        ),
        format!("DELETE FROM {events} WHERE {batch_of}"),
    ];
    let mut out = Vec::new();
    let batch_end = |sql: &mut Sql, earlier: &[RetentionRule]| {
        for rule in earlier {
            sql.push(" AND NOT ");
            sql.rule(rule);
        }
        sql.push(&format!(" ORDER BY id LIMIT {batch})"));
    };
    for (i, rule) in policy.rules.iter().enumerate() {
        let [keep, delete] = heads.clone().map(|head| {
            let mut sql = Sql::new(dialect, &head);
            sql.bind(Param::Time(rule.cutoff(now).unix_millis()));
            sql.push(" AND ");
            sql.rule(rule);
            batch_end(&mut sql, &policy.rules[..i]);
            sql
        });
        out.push((rule.label(), on_conflict_skip(keep), delete));
    }
    if let Some(cutoff) = policy.default_cutoff(now) {
        let [keep, delete] = heads.map(|head| {
            let mut sql = Sql::new(dialect, &head);
            sql.bind(Param::Time(cutoff.unix_millis()));
            batch_end(&mut sql, &policy.rules);
            sql
        });
        out.push(("default".to_owned(), on_conflict_skip(keep), delete));
    }
    out
}

#[cfg(feature = "postgres")]
/// Counts the events with `lo <= ts < hi` by their deciding rule: one row per rule that
/// decides any, `(index, count)`, where index `policy.rules.len()` is the default.
pub(crate) fn rule_counts_sql(
    dialect: Dialect,
    policy: &RetentionPolicy,
    events: &str,
    lo: i64,
    hi: i64,
) -> Sql {
    let default = policy.rules.len();
    // A policy of only a default has no `WHEN` to put in a `CASE`.
    let mut sql = Sql::new(dialect, "SELECT ");
    if default == 0 {
        sql.push("0");
    } else {
        sql.push("CASE");
        for (i, rule) in policy.rules.iter().enumerate() {
            sql.push(" WHEN ");
            sql.rule(rule);
            sql.push(&format!(" THEN {i}"));
        }
        sql.push(&format!(" ELSE {default} END"));
    }
    sql.push(&format!(", count(*) FROM {events} WHERE ts >= "));
    sql.bind(Param::Time(lo))
        .push(" AND ts < ")
        .bind(Param::Time(hi));
    sql.push(" GROUP BY 1");
    sql
}

/// The statements that delete one event in `scope` and keep its tombstone (reason `api`),
/// to run in one transaction: the tombstone first.
pub(crate) fn delete_statements(
    dialect: Dialect,
    events: &str,
    tombstones: &str,
    id: &str,
    scope: &TenantScope,
    deleted_by: &str,
) -> (Sql, Sql) {
    let now = Timestamp::now().unix_millis();
    let mut keep = Sql::new(
        dialect,
        &format!(
            "INSERT INTO {tombstones} ({TOMBSTONE_COLUMNS}) \
             SELECT id, stream, seq, prev_hash, hash, {now}, "
        ),
    );
    keep.bind(Param::Text(deleted_by.to_owned()));
    keep.push(&format!(
        ", 'api' FROM {events} WHERE hash IS NOT NULL AND id = "
    ));
    keep.bind(Param::Text(id.to_owned()));
    keep.scope(scope);
    let keep = on_conflict_skip(keep);
    let mut delete = Sql::new(dialect, &format!("DELETE FROM {events} WHERE id = "));
    delete.bind(Param::Text(id.to_owned()));
    delete.scope(scope);
    (keep, delete)
}

/// A tombstone's `deleted_at` column (milliseconds) as RFC 3339.
pub(crate) fn deleted_at(millis: i64) -> String {
    Timestamp::from_unix_millis(millis)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// A tombstone already kept (an event deleted, then stored again by a retried batch, then
/// purged) stays as it was.
fn on_conflict_skip(mut sql: Sql) -> Sql {
    sql.push(" ON CONFLICT (id) DO NOTHING");
    sql
}

/// The indexed columns of one event, in table order (after `id` and `ts`).
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) id: String,
    pub(crate) ts: i64,
    pub(crate) event_type: String,
    pub(crate) category: &'static str,
    pub(crate) severity: &'static str,
    pub(crate) result: Option<&'static str>,
    pub(crate) tenant: Option<String>,
    pub(crate) actor_id: Option<String>,
    pub(crate) actor_email: Option<String>,
    pub(crate) client_id: Option<String>,
    pub(crate) target_type: Option<String>,
    pub(crate) target_id: Option<String>,
    pub(crate) request_id: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) json: String,
    pub(crate) stream: Option<String>,
    pub(crate) seq: Option<i64>,
    pub(crate) prev_hash: Option<String>,
    pub(crate) hash: Option<String>,
}

/// A column's value: the driver binds owned strings.
fn owned(t: Option<&audit_core::Text>) -> Option<String> {
    t.map(|t| t.as_str().to_owned())
}

impl Row {
    pub(crate) fn of(e: &AuditEvent) -> Result<Row, serde_json::Error> {
        let actor = e.actor.as_ref();
        let target = e.target.as_ref();
        let ctx = e.context.as_ref();
        let integrity = e.integrity.as_ref();
        Ok(Row {
            stream: integrity.map(|i| i.stream.as_str().to_owned()),
            seq: integrity.map(|i| i64::try_from(i.seq).unwrap_or(i64::MAX)),
            prev_hash: owned(integrity.and_then(|i| i.prev_hash.as_ref())),
            hash: owned(integrity.and_then(|i| i.hash.as_ref())),
            id: e.id.to_string(),
            ts: e.timestamp.unix_millis(),
            event_type: e.event_type.as_str().to_owned(),
            category: e.category.as_str(),
            severity: e.severity.as_str(),
            result: e.result.map(|r| r.as_str()),
            tenant: owned(ctx.and_then(|c| c.organization_id.as_ref())),
            actor_id: owned(actor.and_then(|a| a.id.as_ref())),
            actor_email: owned(actor.and_then(|a| a.email.as_ref())),
            client_id: owned(actor.and_then(|a| a.client_id.as_ref())),
            target_type: owned(target.and_then(|t| t.kind.as_ref())),
            target_id: owned(target.and_then(|t| t.id.as_ref())),
            request_id: owned(ctx.and_then(|c| c.request_id.as_ref())),
            description: owned(e.description.as_ref()),
            json: {
                let mut json = Vec::with_capacity(1024);
                e.write_json(&mut json)?;
                // JSON text is UTF-8 by construction.
                String::from_utf8(json).map_err(|err| {
                    serde_json::Error::io(std::io::Error::new(std::io::ErrorKind::InvalidData, err))
                })?
            },
        })
    }
}

/// The columns in insert order.
pub(crate) const COLUMNS: &str = "id, ts, event_type, category, severity, result, tenant, \
     actor_id, actor_email, client_id, target_type, target_id, request_id, description, event, \
     stream, seq, prev_hash, hash";

/// The columns schema version 2 added, with their types in each dialect.
pub(crate) const CHAIN_COLUMNS: [(&str, &str, &str); 4] = [
    ("stream", "TEXT", "text COLLATE \"C\""),
    ("seq", "INTEGER", "bigint"),
    ("prev_hash", "TEXT", "text"),
    ("hash", "TEXT", "text"),
];

/// The columns of the tombstone table, in insert order.
pub(crate) const TOMBSTONE_COLUMNS: &str =
    "id, stream, seq, prev_hash, hash, deleted_at, deleted_by, reason";

/// Reads the stream order of [`Store::chain_rows`](audit_core::store::Store::chain_rows):
/// the keyset condition after `after` and the order, for `limit` rows.
pub(crate) fn chain_rows_sql(
    dialect: Dialect,
    table: &str,
    after: Option<&audit_core::store::ChainPosition>,
    limit: usize,
) -> Sql {
    let mut sql = Sql::new(
        dialect,
        &format!(
            "SELECT id, coalesce(stream, ''), coalesce(seq, 0), event_type, tenant, {}, event \
             FROM {table}",
            dialect.ts_millis()
        ),
    );
    if let Some(a) = after {
        sql.push(" WHERE (coalesce(stream, ''), coalesce(seq, 0), id) > (");
        sql.bind(Param::Text(a.stream.clone()));
        sql.push(", ");
        sql.bind(Param::Int(i64::try_from(a.seq).unwrap_or(i64::MAX)));
        sql.push(", ");
        sql.bind(Param::Text(a.id.clone()));
        sql.push(")");
    }
    sql.push(&format!(
        " ORDER BY coalesce(stream, ''), coalesce(seq, 0), id LIMIT {limit}"
    ));
    sql
}

/// Indexes both stores create, each serving a filter the API offers. SQLite appends the rowid
/// and PostgreSQL sorts ties cheaply, so the time indexes leave `id` out: shorter keys make
/// ingest faster, and `ORDER BY ts, id` still uses them.
pub(crate) const INDEXES: [(&str, &str); 7] = [
    ("audit_events_ts", "ts"),
    ("audit_events_tenant_ts", "tenant, ts"),
    ("audit_events_actor_ts", "actor_id, ts"),
    ("audit_events_type_ts", "event_type, ts"),
    ("audit_events_request", "request_id"),
    ("audit_events_target", "target_id"),
    // Chain order, for verification.
    (
        "audit_events_chain",
        "(coalesce(stream, '')), (coalesce(seq, 0)), id",
    ),
];

/// Checks a SQL identifier the caller configured (schema or table name).
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) fn valid_identifier(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(b'a'..=b'z' | b'_'))
        && b.all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_'))
        && s.len() <= 63
}

#[cfg(test)]
mod tests {
    use super::*;
    use audit_core::store::{Cursor, QueryParams};

    #[test]
    fn like_patterns_escape_what_like_would_read() {
        let p = EventTypePattern::new("data.api_key.*").unwrap();
        assert_eq!(like_pattern(&p), "data.api\\_key.%");
        assert_eq!(like_contains("50%_a\\B"), "%50\\%\\_a\\\\b%");
    }

    #[test]
    fn values_are_bound_never_spliced() {
        let mut params = QueryParams::default();
        params.actor_id = Some("x'; DROP TABLE audit_events; --".into());
        params.q = Some("50%".into());
        params.event_type = Some("auth.*".into());
        let mut q = params
            .into_query(TenantScope::tenant("org-1"))
            .unwrap_or_else(|e| panic!("{e}"));
        q.cursor = Some(Cursor {
            timestamp: Timestamp::from_unix_millis(5).unwrap_or_else(|e| panic!("{e}")),
            id: "abc".into(),
            order: SortOrder::Desc,
        });
        let mut sql = Sql::new(
            Dialect::Postgres,
            "SELECT event FROM audit_events WHERE 1 = 1",
        );
        sql.filter(&q.filter);
        sql.page(&q);
        assert!(!sql.text.contains("DROP"), "{}", sql.text);
        assert!(sql.text.contains("tenant IN ($1)"), "{}", sql.text);
        assert!(sql.text.ends_with("ORDER BY ts DESC, id DESC LIMIT 101"));
        assert!(sql.params.contains(&Param::Text("%50\\%%".into())));
    }

    #[test]
    fn identifiers() {
        assert!(valid_identifier("audit_t1"));
        assert!(!valid_identifier("Audit"));
        assert!(!valid_identifier("a;b"));
        assert!(!valid_identifier(""));
    }
}
