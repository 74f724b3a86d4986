//! One conformance suite, run against every store: idempotent appends, the query semantics of
//! `Filter::matches` (checked against an in-memory oracle over random filters), keyset paging
//! that survives concurrent inserts, tenant isolation, retention purges and filter values.
#![cfg(all(feature = "sqlite", feature = "postgres"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use audit_core::store::{
    DistinctField, EventTypePattern, EventTypeSet, Filter, Query, QueryParams, RetentionPolicy,
    RetentionRule, SortOrder, Store, TenantScope,
};
use audit_core::{Actor, AuditEvent, Category, EventId, Outcome, Severity, Target, Timestamp};
use audit_sinks::{PostgresOptions, PostgresStore, SqliteStore};

mod pg;

const TYPES: [&str; 8] = [
    "auth.login.success",
    "auth.login.failure",
    "auth.logout",
    "data.vector.delete",
    "data.vector.read",
    "data.search.query",
    "admin.api_key.create",
    "security.access.denied",
];
const TENANTS: [Option<&str>; 4] = [Some("org-a"), Some("org-b"), Some("org-c"), None];
const BASE_MS: i64 = 1_750_000_000_000;

/// Deterministic varied events; timestamps collide often so `id` tie-breaks are exercised.
fn events(n: usize, seed: u64) -> Vec<AuditEvent> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n)
        .map(|i| {
            let t = TYPES[rng.usize(..TYPES.len())];
            let mut b = AuditEvent::builder(t)
                .id(EventId::new())
                .timestamp(Timestamp::from_unix_millis(BASE_MS + rng.i64(0..200) * 1000).unwrap())
                .description(format!("Event {i} about Widget-{}", rng.u8(..20)))
                .actor(
                    Actor::user(format!("user-{}", rng.u8(..6)))
                        .with_email(format!("u{}@example.com", rng.u8(..6)))
                        .with_client_id(format!("app-{}", rng.u8(..3))),
                )
                .request_id(format!("req-{}", rng.u16(..300)))
                .severity(Severity::ALL[rng.usize(..4)])
                .result(Outcome::ALL[rng.usize(..4)])
                .detail("n", i as u64)
                .detail("ratio", 0.25 * i as f64)
                .detail("nested", serde_json::json!({"k": [1, "two", null]}));
            if rng.bool() {
                b = b.target(Target::new(
                    ["vector", "user", "api_key"][rng.usize(..3)],
                    format!("t-{}", rng.u8(..10)),
                ));
            }
            if let Some(org) = TENANTS[rng.usize(..TENANTS.len())] {
                b = b.organization_id(org);
            }
            b.build().unwrap()
        })
        .collect()
}

fn arcs(events: &[AuditEvent]) -> Vec<Arc<AuditEvent>> {
    events.iter().cloned().map(Arc::new).collect()
}

fn sorted(mut v: Vec<AuditEvent>, order: SortOrder) -> Vec<AuditEvent> {
    v.sort_by_key(|e| (e.timestamp, e.id.to_string()));
    if order == SortOrder::Desc {
        v.reverse();
    }
    v
}

/// Walks every page of `query`, returning the events in order.
async fn walk(store: &dyn Store, mut query: Query) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    loop {
        let page = store.search(&query).await.unwrap();
        assert!(page.events.len() <= query.limit);
        out.extend(page.events);
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => return out,
        }
    }
}

fn random_params(rng: &mut fastrand::Rng) -> QueryParams {
    let mut p = QueryParams::default();
    let pick = |rng: &mut fastrand::Rng| rng.u8(..4) == 0;
    if pick(rng) {
        p.start_time = Some(
            Timestamp::from_unix_millis(BASE_MS + rng.i64(0..100) * 1000)
                .unwrap()
                .to_string(),
        );
    }
    if pick(rng) {
        p.end_time = Some(
            Timestamp::from_unix_millis(BASE_MS + rng.i64(100..201) * 1000)
                .unwrap()
                .to_string(),
        );
    }
    if pick(rng) {
        p.event_type = Some(
            [
                "auth.*",
                "*.delete",
                "data.*.read",
                "auth.logout",
                "*",
                "admin.api_key.*",
            ][rng.usize(..6)]
            .into(),
        );
    }
    if pick(rng) {
        p.category = Some(Category::ALL[rng.usize(..4)].as_str().into());
    }
    if pick(rng) {
        p.severity = Some(Severity::ALL[rng.usize(..4)].as_str().into());
    }
    if pick(rng) {
        p.actor_id = Some(format!("user-{}", rng.u8(..6)));
    }
    if pick(rng) {
        p.actor_email = Some(format!("u{}@example.com", rng.u8(..6)));
    }
    if pick(rng) {
        p.client_id = Some(format!("app-{}", rng.u8(..3)));
    }
    if pick(rng) {
        p.result = Some(Outcome::ALL[rng.usize(..4)].as_str().into());
    }
    if pick(rng) {
        p.resource_type = Some(["vector", "user", "api_key"][rng.usize(..3)].into());
    }
    if pick(rng) {
        p.target_id = Some(format!("t-{}", rng.u8(..10)));
    }
    if pick(rng) {
        p.request_id = Some(format!("req-{}", rng.u16(..300)));
    }
    if pick(rng) {
        p.q = Some(["widget-1", "WIDGET-7", "event 1", "req-2", "%", "_"][rng.usize(..6)].into());
    }
    p.sort = Some(if rng.bool() { "asc" } else { "desc" }.into());
    p.limit = Some(rng.usize(1..40).to_string());
    p
}

fn random_scope(rng: &mut fastrand::Rng) -> TenantScope {
    match rng.u8(..5) {
        0 => TenantScope::All,
        1 => TenantScope::None,
        2 => TenantScope::Only(vec!["org-a".into(), "org-c".into()]),
        _ => TenantScope::tenant(["org-a", "org-b", "org-x"][rng.usize(..3)]),
    }
}

async fn appends_are_idempotent(store: &dyn Store) {
    let evs = events(300, 1);
    let all = arcs(&evs);
    assert_eq!(store.append(&all[..200]).await.unwrap(), 200);
    // A retried batch overlapping what is stored adds only the new ones.
    assert_eq!(store.append(&all[100..]).await.unwrap(), 100);
    assert_eq!(store.append(&all).await.unwrap(), 0);
    let page = store
        .search(&Query::new(Filter::scoped(TenantScope::All)).limit(1000))
        .await
        .unwrap();
    assert_eq!(page.events.len(), 300);
    assert_eq!(page.summary.unwrap().total_events, 300);
    // Every event reads back identical, details included.
    for e in &evs[..20] {
        assert_eq!(
            store
                .get(&e.id.to_string(), &TenantScope::All)
                .await
                .unwrap()
                .as_ref(),
            Some(e)
        );
    }
}

/// Batches as large as the pipeline sends (PostgreSQL splits them over two connections): a
/// retry overlapping what either half stored adds only the rest.
async fn large_batches_are_idempotent(store: &dyn Store) {
    let all = arcs(&events(6_000, 7));
    assert_eq!(store.append(&all[..3_000]).await.unwrap(), 3_000);
    // Halves [1000, 3500) and [3500, 6000): the first meets 2,000 stored ids.
    assert_eq!(store.append(&all[1_000..]).await.unwrap(), 3_000);
    assert_eq!(store.append(&all[..2_000]).await.unwrap(), 0);
    assert_eq!(store.append(&all).await.unwrap(), 0);
    let page = store
        .search(&Query::new(Filter::scoped(TenantScope::All)).limit(1))
        .await
        .unwrap();
    assert_eq!(page.summary.unwrap().total_events, 6_000);
}

async fn queries_match_the_oracle(store: &dyn Store) {
    let evs = events(500, 2);
    store.append(&arcs(&evs)).await.unwrap();
    let mut rng = fastrand::Rng::with_seed(99);
    let mut nonempty = 0;
    for round in 0..150 {
        let params = random_params(&mut rng);
        let scope = random_scope(&mut rng);
        let query = params.clone().into_query(scope).unwrap();
        let expected = sorted(
            evs.iter()
                .filter(|e| query.filter.matches(e))
                .cloned()
                .collect(),
            query.order,
        );
        let first = store.search(&query).await.unwrap();
        let summary = first.summary.clone().unwrap();
        assert_eq!(
            summary.total_events,
            expected.len() as u64,
            "round {round}: {params:?}"
        );
        let mut by_cat = BTreeMap::new();
        for e in &expected {
            *by_cat.entry(e.category.as_str().to_owned()).or_insert(0u64) += 1;
        }
        assert_eq!(summary.by_category, by_cat, "round {round}");
        let got = walk(store, query).await;
        let ids = |v: &[AuditEvent]| v.iter().map(|e| e.id.to_string()).collect::<Vec<_>>();
        assert_eq!(ids(&got), ids(&expected), "round {round}: {params:?}");
        nonempty += usize::from(!expected.is_empty());
    }
    assert!(
        nonempty > 50,
        "the random queries should mostly match something"
    );
}

/// Type sets (alternatives with exclusions, as the API's profiles build them) and offsets
/// agree with `Filter::matches` and a skip over the oracle's order.
async fn type_sets_and_offsets_match_the_oracle(store: &dyn Store) {
    let evs = events(300, 5);
    store.append(&arcs(&evs)).await.unwrap();
    let patterns = [
        "auth.*",
        "auth.login.*",
        "data.*",
        "*.delete",
        "data.vector.read",
        "admin.*",
        "*.login.*",
        "security.access.denied",
    ];
    let mut rng = fastrand::Rng::with_seed(7);
    let pattern = |rng: &mut fastrand::Rng| {
        EventTypePattern::new(patterns[rng.usize(..patterns.len())]).unwrap()
    };
    for round in 0..60 {
        let mut set = EventTypeSet::empty();
        for _ in 0..rng.usize(..4) {
            let include = rng.bool().then(|| pattern(&mut rng));
            let exclude = (0..rng.usize(..3)).map(|_| pattern(&mut rng)).collect();
            set = set.clause(include, exclude);
        }
        let mut filter = Filter::scoped(random_scope(&mut rng));
        filter.event_types = Some(set);
        let order = if rng.bool() {
            SortOrder::Asc
        } else {
            SortOrder::Desc
        };
        let offset = rng.usize(..40);
        let query = Query::new(filter.clone())
            .order(order)
            .limit(1 + rng.usize(..30))
            .offset(offset);
        let expected = sorted(
            evs.iter().filter(|e| filter.matches(e)).cloned().collect(),
            order,
        );
        let page = store.search(&query).await.unwrap();
        assert_eq!(
            page.summary.unwrap().total_events,
            expected.len() as u64,
            "round {round}: {filter:?}"
        );
        let want: Vec<String> = expected
            .iter()
            .skip(offset)
            .take(query.limit)
            .map(|e| e.id.to_string())
            .collect();
        let got: Vec<String> = page.events.iter().map(|e| e.id.to_string()).collect();
        assert_eq!(got, want, "round {round}: {filter:?} offset {offset}");
        assert_eq!(
            page.next_cursor.is_some(),
            expected.len() > offset + query.limit,
            "round {round}"
        );
    }
}

async fn paging_survives_concurrent_inserts(store: &dyn Store) {
    let evs = events(200, 3);
    store.append(&arcs(&evs)).await.unwrap();
    for order in [SortOrder::Desc, SortOrder::Asc] {
        let mut query = Query::new(Filter::scoped(TenantScope::All))
            .limit(7)
            .order(order);
        let mut seen = Vec::new();
        let mut extra = 0;
        loop {
            let page = store.search(&query).await.unwrap();
            seen.extend(page.events.iter().map(|e| e.id.to_string()));
            // New events arrive between pages: newer, older and at the same instants.
            let mut fresh = events(3, 1000 + extra);
            fresh[0].timestamp = Timestamp::now();
            extra += 1;
            store.append(&arcs(&fresh)).await.unwrap();
            match page.next_cursor {
                Some(c) => query.cursor = Some(c),
                None => break,
            }
        }
        let unique: HashSet<_> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "no event twice");
        for e in &evs {
            assert!(
                unique.contains(&e.id.to_string()),
                "{order:?}: every original event once"
            );
        }
    }
}

async fn tenants_are_isolated(store: &dyn Store) {
    let mut e = events(1, 4).remove(0);
    e.context.as_mut().unwrap().organization_id = Some("org-a".into());
    store.append(&arcs(std::slice::from_ref(&e))).await.unwrap();
    let id = e.id.to_string();
    for scope in [
        TenantScope::tenant("org-b"),
        TenantScope::None,
        TenantScope::Only(vec![]),
    ] {
        assert_eq!(store.get(&id, &scope).await.unwrap(), None);
        assert!(!store.delete(&id, &scope, "admin-1").await.unwrap());
    }
    assert!(
        store
            .get(&id, &TenantScope::tenant("org-a"))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .delete(&id, &TenantScope::tenant("org-a"), "admin-1")
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete(&id, &TenantScope::All, "admin-1")
            .await
            .unwrap()
    );
    assert_eq!(store.get(&id, &TenantScope::All).await.unwrap(), None);
}

async fn distinct_values_are_scoped(store: &dyn Store) {
    let a = AuditEvent::builder("data.secret_a.read")
        .organization_id("org-a")
        .target(Target::new("vault_a", "1"))
        .build()
        .unwrap();
    let b = AuditEvent::builder("data.secret_b.read")
        .organization_id("org-b")
        .build()
        .unwrap();
    store.append(&arcs(&[a, b])).await.unwrap();
    let scope = TenantScope::tenant("org-a");
    let types = store
        .distinct(DistinctField::EventType, &scope, 100)
        .await
        .unwrap();
    assert_eq!(types, vec!["data.secret_a.read".to_owned()]);
    let kinds = store
        .distinct(DistinctField::ResourceType, &scope, 100)
        .await
        .unwrap();
    assert_eq!(kinds, vec!["vault_a".to_owned()]);
    let all = store
        .distinct(DistinctField::EventType, &TenantScope::All, 1)
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "limit applies");
}

async fn purge_follows_the_first_matching_rule(store: &dyn Store) {
    const DAY: Duration = Duration::from_secs(86_400);
    let now = Timestamp::now();
    let mut rng = fastrand::Rng::with_seed(5);
    let mut evs = events(400, 5);
    for e in &mut evs {
        let age_days = rng.i64(0..200);
        e.timestamp =
            Timestamp::from_unix_millis(now.unix_millis() - age_days * 86_400_000 - 1000).unwrap();
    }
    store.append(&arcs(&evs)).await.unwrap();
    let policy = RetentionPolicy::keep_for(180 * DAY)
        .rule(RetentionRule::keep_for(30 * DAY).for_tenant("org-b"))
        .rule(
            RetentionRule::keep_for(90 * DAY)
                .for_event_type("data.search.*")
                .unwrap(),
        )
        .rule(RetentionRule::keep_for(60 * DAY).for_category(Category::Authentication));
    let expected_gone: Vec<_> = evs.iter().filter(|e| policy.is_expired(e, now)).collect();
    let report = store.purge(&policy, now).await.unwrap();
    assert_eq!(report.deleted, expected_gone.len() as u64);
    assert_eq!(report.by_rule.len(), 4);
    assert_eq!(report.by_rule[3].rule, "default");
    let first_rule = evs
        .iter()
        .filter(|e| e.organization_id() == Some("org-b") && policy.is_expired(e, now))
        .count();
    assert_eq!(report.by_rule[0].deleted, first_rule as u64);
    for e in &evs {
        let kept = store
            .get(&e.id.to_string(), &TenantScope::All)
            .await
            .unwrap()
            .is_some();
        assert_eq!(kept, !policy.is_expired(e, now), "{}", e.event_type);
    }
    // Keep-forever purges nothing.
    let again = store
        .purge(&RetentionPolicy::keep_forever(), now)
        .await
        .unwrap();
    assert_eq!(again.deleted, 0);
}

type Case = for<'a> fn(&'a dyn Store) -> std::pin::Pin<Box<dyn Future<Output = ()> + 'a>>;

fn cases() -> Vec<(&'static str, Case)> {
    vec![
        ("appends_are_idempotent", |s| {
            Box::pin(appends_are_idempotent(s))
        }),
        ("large_batches_are_idempotent", |s| {
            Box::pin(large_batches_are_idempotent(s))
        }),
        ("queries_match_the_oracle", |s| {
            Box::pin(queries_match_the_oracle(s))
        }),
        ("type_sets_and_offsets_match_the_oracle", |s| {
            Box::pin(type_sets_and_offsets_match_the_oracle(s))
        }),
        ("paging_survives_concurrent_inserts", |s| {
            Box::pin(paging_survives_concurrent_inserts(s))
        }),
        ("tenants_are_isolated", |s| {
            Box::pin(tenants_are_isolated(s))
        }),
        ("distinct_values_are_scoped", |s| {
            Box::pin(distinct_values_are_scoped(s))
        }),
        ("purge_follows_the_first_matching_rule", |s| {
            Box::pin(purge_follows_the_first_matching_rule(s))
        }),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_store_conforms() {
    for (name, case) in cases() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("audit.db")).unwrap();
        eprintln!("sqlite file: {name}");
        case(&store).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_memory_store_conforms() {
    for (name, case) in cases() {
        let store = SqliteStore::in_memory().unwrap();
        eprintln!("sqlite memory: {name}");
        case(&store).await;
    }
}

async fn fresh_postgres(url: &str, schema: &str) -> PostgresStore {
    pg::drop_schema(url, schema).await;
    PostgresStore::connect_with(url, PostgresOptions::default().schema(schema))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_conforms() {
    let Some(url) = pg::url().await else {
        return;
    };
    for (i, (name, case)) in cases().into_iter().enumerate() {
        let schema = format!("audit_conf_{}_{i}", std::process::id());
        let store = fresh_postgres(&url, &schema).await;
        eprintln!("postgres: {name}");
        case(&store).await;
        drop(store);
        pg::drop_schema(&url, &schema).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migration_is_idempotent_and_concurrent() {
    let Some(url) = pg::url().await else {
        return;
    };
    let schema = format!("audit_mig_{}", std::process::id());
    let first = fresh_postgres(&url, &schema).await;
    // Many instances starting at once against the same schema.
    let opens = (0..4).map(|_| {
        let url = url.clone();
        let schema = schema.clone();
        tokio::spawn(async move {
            PostgresStore::connect_with(&url, PostgresOptions::default().schema(schema)).await
        })
    });
    for o in opens {
        o.await.unwrap().unwrap();
    }
    first.append(&arcs(&events(5, 8))).await.unwrap();
    drop(first);
    pg::drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unreachable_is_a_retryable_error() {
    let err = PostgresStore::connect("postgres://postgres@127.0.0.1:1/test")
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    // The OS error says why.
    assert!(err.message().contains("refused"), "{err}");
}

/// Errors keep the server's SQLSTATE and message, never the connection string.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_errors_say_why() {
    let Some(url) = pg::url().await else {
        return;
    };
    let missing = format!("{}_no_such_db", url.trim_end_matches('/'));
    let err = PostgresStore::connect(&missing).await.unwrap_err();
    let m = err.message();
    assert!(m.contains("3D000") && m.contains("does not exist"), "{m}");
    assert!(!m.contains("postgres://"), "{m}");
}

/// A table locked elsewhere (`LOCK TABLE`) makes an append fail after the lock timeout with
/// PostgreSQL's reason, retryable, instead of waiting in silence; once released it succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_table_is_a_prompt_retryable_error() {
    let Some(url) = pg::url().await else {
        return;
    };
    let schema = format!("audit_lock_{}", std::process::id());
    pg::drop_schema(&url, &schema).await;
    let store = PostgresStore::connect_with(
        &url,
        PostgresOptions::default()
            .schema(&schema)
            .timeouts(Duration::from_secs(30), Duration::from_millis(300)),
    )
    .await
    .unwrap();
    let locker = pg::client(&url).await;
    locker
        .batch_execute(&format!(
            "BEGIN; LOCK TABLE {schema}.audit_events IN ACCESS EXCLUSIVE MODE;"
        ))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let err = store.append(&arcs(&events(3, 8))).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(err.is_retryable(), "{err}");
    assert!(err.message().contains("55P03"), "lock_not_available: {err}");
    locker.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(store.append(&arcs(&events(3, 8))).await.unwrap(), 3);
    pg::drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_task_purges_and_records_each_run() {
    use audit_core::Auditor;
    use audit_core::store::{RetentionHandle, purge_once};
    use audit_sinks::MemorySink;

    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let mut evs = events(50, 9);
    let now = Timestamp::now().unix_millis();
    for (i, e) in evs.iter_mut().enumerate() {
        // Half are 10 days old, half are fresh.
        let age = if i % 2 == 0 { 10 * 86_400_000 } else { 1000 };
        e.timestamp = Timestamp::from_unix_millis(now - age).unwrap();
    }
    store.append(&arcs(&evs)).await.unwrap();
    let trail = MemorySink::new(100);
    let auditor = Auditor::builder().sink(trail.clone()).build().unwrap();
    let policy = RetentionPolicy::keep_for(Duration::from_secs(5 * 86_400));

    let report = purge_once(&*store, &policy, &auditor).await.unwrap();
    assert_eq!(report.deleted, 25);
    let _task = RetentionHandle::spawn(
        store.clone(),
        policy,
        Duration::from_secs(3600),
        auditor.clone(),
    );
    trail
        .wait_until(Duration::from_secs(5), |events| events.len() >= 2)
        .await;
    let events = trail.events();
    assert_eq!(events[0].event_type.as_str(), "system.retention.purge");
    assert_eq!(events[0].details["deleted"], 25);
    assert_eq!(events[0].details["byRule"][0]["rule"], "default");
    assert_eq!(
        events[1].details["deleted"], 0,
        "the task's first run found nothing left"
    );
    assert_eq!(events[1].result, Some(Outcome::Success));
}

#[cfg(unix)]
#[test]
fn sqlite_files_are_private_and_newer_schemas_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    drop(SqliteStore::open(&path).unwrap());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // A database written by a later schema version is not touched.
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute("INSERT INTO audit_schema (version) VALUES (99)", [])
        .unwrap();
    drop(c);
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(err.to_string().contains("schema version 99"), "{err}");
    assert!(!err.is_retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reconnects_after_the_server_drops_its_connections() {
    let Some(url) = pg::url().await else {
        return;
    };
    let schema = format!("audit_reconnect_{}", std::process::id());
    let app = format!("audit_reconnect_{}", std::process::id());
    let tagged = format!(
        "{url}{}application_name={app}",
        if url.contains('?') { "&" } else { "?" }
    );
    pg::drop_schema(&url, &schema).await;
    let store = PostgresStore::connect_with(&tagged, PostgresOptions::default().schema(&schema))
        .await
        .unwrap();
    let evs = events(10, 11);
    store.append(&arcs(&evs[..5])).await.unwrap();
    let all = Query::new(Filter::scoped(TenantScope::All));
    assert_eq!(store.search(&all).await.unwrap().events.len(), 5);
    // The server ends every connection of this store (a restart or failover looks the same).
    let admin = pg::client(&url).await;
    let killed = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap();
    assert!(!killed.is_empty());
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The first call may fail retryably; the pipeline retries it, so the next one works.
    if let Err(e) = store.append(&arcs(&evs[5..])).await {
        assert!(e.is_retryable(), "{e}");
        store.append(&arcs(&evs[5..])).await.unwrap();
    }
    let page = match store.search(&all).await {
        Ok(p) => p,
        Err(e) => {
            assert!(e.is_retryable(), "{e}");
            store.search(&all).await.unwrap()
        }
    };
    assert_eq!(page.events.len(), 10);
    drop(store);
    pg::drop_schema(&url, &schema).await;
}
