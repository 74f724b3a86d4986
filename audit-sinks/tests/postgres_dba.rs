//! PostgreSQL run as a DBA would: the owner migrates once with `audit migrate` (a real child
//! process), the service connects as a role that may only read and write rows, the schema
//! carries the constraints a DBA expects, one instance purges at a time, and retention drops
//! the monthly partitions that have wholly expired, tombstones kept.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use audit_core::store::{
    Filter, Query, RetentionPolicy, RetentionRule, Store, StoreSink, TenantScope, verify_store,
};
use audit_core::{AuditEvent, Auditor, Timestamp};
use audit_sinks::{PostgresOptions, PostgresStore};
use pg::client;
use tokio_postgres::Client;

mod pg;

/// The same server and database as `url`, as `user` (the local server trusts loopback).
fn url_as(url: &str, user: &str) -> String {
    let cfg: tokio_postgres::Config = url.parse().unwrap();
    let host = match &cfg.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        #[allow(unreachable_patterns)]
        _ => "127.0.0.1".to_owned(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    let db = cfg.get_dbname().unwrap_or("postgres");
    format!("postgres://{user}@{host}:{port}/{db}")
}

fn audit_cli(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_audit"))
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap(), text)
}

struct Setup {
    owner: String,
    app: String,
    schema: String,
    role: String,
}

impl Setup {
    /// A fresh schema and role named after `tag`, or `None` when PostgreSQL is not reachable
    /// and not required.
    async fn start(tag: &str) -> Option<Setup> {
        Some(Setup::new(pg::url().await?, tag).await)
    }

    async fn new(owner: String, tag: &str) -> Setup {
        let schema = format!("audit_dba_{tag}_{}", std::process::id());
        let role = format!("audit_app_{tag}_{}", std::process::id());
        let c = client(&owner).await;
        c.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE;
             DO $$ BEGIN
               IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
                 EXECUTE 'DROP OWNED BY {role}'; EXECUTE 'DROP ROLE {role}';
               END IF;
             END $$;
             CREATE ROLE {role} LOGIN;"
        ))
        .await
        .unwrap();
        let app = url_as(&owner, &role);
        Setup {
            owner,
            app,
            schema,
            role,
        }
    }

    /// The grants the store's docs list (`PostgresStore::grants`), and no more.
    async fn grant(&self) {
        PostgresStore::grant(
            &self.owner,
            &PostgresOptions::default().schema(self.schema.clone()),
            &self.role,
        )
        .await
        .unwrap();
    }

    /// The owner connects once, which migrates the schema.
    async fn migrate_as_owner(&self) {
        PostgresStore::connect_with(
            &self.owner,
            PostgresOptions::default().schema(self.schema.clone()),
        )
        .await
        .unwrap();
    }

    /// The store as the service runs it: as the role, without migrating.
    async fn app_store(&self) -> Arc<PostgresStore> {
        Arc::new(
            PostgresStore::connect_with(&self.app, self.app_options())
                .await
                .unwrap(),
        )
    }

    fn app_options(&self) -> PostgresOptions {
        PostgresOptions::default()
            .schema(self.schema.clone())
            .migrate(false)
    }

    async fn cleanup(&self) {
        let (s, r) = (&self.schema, &self.role);
        client(&self.owner)
            .await
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {s} CASCADE; DROP OWNED BY {r}; DROP ROLE IF EXISTS {r};"
            ))
            .await
            .unwrap();
    }
}

fn event(n: u64) -> AuditEvent {
    AuditEvent::builder("data.document.read")
        .organization_id("org-1")
        .detail("n", n)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_least_privilege_role_runs_the_store_after_the_owner_migrates() {
    let Some(setup) = Setup::start("lp").await else {
        return;
    };

    // Before the migration the app cannot start, and says how to fix it.
    let err = PostgresStore::connect_with(&setup.app, setup.app_options())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("audit migrate"), "{err}");

    // The owner migrates with the command-line tool and grants the app's role what it
    // needs, twice (safe to repeat).
    for _ in 0..2 {
        let (code, out) = audit_cli(&[
            "migrate",
            "--schema",
            &setup.schema,
            "--grant",
            &setup.role,
            &setup.owner,
        ]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("audit schema version"), "{out}");
        assert!(out.contains(&format!("granted {}", setup.role)), "{out}");
    }

    // Migrating as the app fails: it may not create or alter anything.
    let err = PostgresStore::connect_with(
        &setup.app,
        PostgresOptions::default().schema(setup.schema.clone()),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("42501"), "a permission error: {err}");

    // Without migrating, everything the service does works with the documented grants.
    let store = Arc::new(
        PostgresStore::connect_with(&setup.app, setup.app_options())
            .await
            .unwrap(),
    );
    let auditor = Auditor::builder()
        .sink(StoreSink::new(store.clone()))
        .build()
        .unwrap();
    for n in 0..20 {
        auditor.record(event(n)).unwrap();
    }
    let report = auditor.shutdown(Duration::from_secs(10)).await;
    assert!(report.complete, "{report}");
    let page = store
        .search(&Query::new(Filter::scoped(TenantScope::All)).limit(100))
        .await
        .unwrap();
    assert_eq!(page.events.len(), 20);
    let id = page.events[0].id.to_string();
    assert!(
        store
            .delete(&id, &TenantScope::All, "dba-test")
            .await
            .unwrap()
    );
    assert_eq!(store.tombstones().await.unwrap().len(), 1);
    // Everything is older than a zero retention an hour from now.
    let later = Timestamp::from_unix_millis(Timestamp::now().unix_millis() + 3_600_000).unwrap();
    let purged = store
        .purge(&RetentionPolicy::keep_for(Duration::ZERO), later)
        .await
        .unwrap();
    assert_eq!(purged.deleted, 19);
    drop(store);
    // Without the partition function's grant the service does not start, and says which
    // grant is missing and how to give it.
    let (s, r) = (&setup.schema, &setup.role);
    client(&setup.owner)
        .await
        .batch_execute(&format!(
            "REVOKE EXECUTE ON FUNCTION {s}.audit_ensure_partitions(timestamptz, integer) \
             FROM {r}"
        ))
        .await
        .unwrap();
    let err = PostgresStore::connect_with(&setup.app, setup.app_options())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("42501") && err.contains("--grant"), "{err}");
    setup.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_has_the_constraints_a_dba_expects_and_one_purge_at_a_time() {
    let Some(setup) = Setup::start("cx").await else {
        return;
    };
    let store = PostgresStore::connect_with(
        &setup.owner,
        PostgresOptions::default().schema(setup.schema.clone()),
    )
    .await
    .unwrap();
    let s = &setup.schema;
    let c = client(&setup.owner).await;
    let pk: i64 = c
        .query_one(
            &format!(
                "SELECT count(*) FROM pg_constraint \
                 WHERE conrelid = '{s}.audit_schema'::regclass AND contype = 'p'"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(pk, 1, "the schema-version table has a primary key");
    let bad = c
        .batch_execute(&format!(
            "INSERT INTO {s}.audit_events (id, ts, event_type, category, severity, event) \
             VALUES ('x', now(), 'data.x.read', 'bogus', 'info', '{{}}')"
        ))
        .await
        .unwrap_err();
    assert_eq!(
        bad.code(),
        Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION),
        "{bad}"
    );

    store
        .append(&(0..5).map(|n| Arc::new(event(n))).collect::<Vec<_>>())
        .await
        .unwrap();
    let later = Timestamp::from_unix_millis(Timestamp::now().unix_millis() + 3_600_000).unwrap();
    let policy = RetentionPolicy::keep_for(Duration::ZERO);
    // Another instance is purging: this one skips its run.
    let other = client(&setup.owner).await;
    other
        .batch_execute(&format!(
            "SELECT pg_advisory_lock(724291703, hashtext('{s}'))"
        ))
        .await
        .unwrap();
    assert_eq!(store.purge(&policy, later).await.unwrap().deleted, 0);
    other
        .batch_execute(&format!(
            "SELECT pg_advisory_unlock(724291703, hashtext('{s}'))"
        ))
        .await
        .unwrap();
    assert_eq!(store.purge(&policy, later).await.unwrap().deleted, 5);
    drop(store);
    setup.cleanup().await;
}

/// What searchers saw: searches done, the errors of those that failed, the slowest.
#[derive(Default)]
struct Searched {
    ok: u64,
    failed: Vec<String>,
    slowest: Duration,
}

/// `n` searchers over every month (20 events a search, `pause` between searches) until
/// `stop` is set; what they saw, together.
fn search_until(
    store: &Arc<PostgresStore>,
    n: usize,
    pause: Duration,
    stop: &Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Searched> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                let mut seen = Searched::default();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let started = std::time::Instant::now();
                    let q = Query::new(Filter::scoped(TenantScope::All)).limit(20);
                    match store.search(&q).await {
                        Ok(_) => seen.ok += 1,
                        Err(e) => seen.failed.push(e.to_string()),
                    }
                    seen.slowest = seen.slowest.max(started.elapsed());
                    tokio::time::sleep(pause).await;
                }
                seen
            })
        })
        .collect();
    tokio::spawn(async move {
        let mut all = Searched::default();
        for t in tasks {
            let seen = t.await.unwrap();
            all.ok += seen.ok;
            all.failed.extend(seen.failed);
            all.slowest = all.slowest.max(seen.slowest);
        }
        all
    })
}

/// The one number `sql` selects.
async fn count(c: &Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.unwrap().get(0)
}

/// The monthly partitions of `schema` (name order), and how many events the default holds.
async fn partitions(c: &Client, s: &str) -> (Vec<String>, i64) {
    let names = c
        .query(
            &format!(
                "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                 WHERE i.inhparent = '{s}.audit_events'::regclass \
                   AND c.relname ~ '^audit_events_[0-9]{{4}}_[0-9]{{2}}$' ORDER BY 1"
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let default = count(c, &format!("SELECT count(*) FROM {s}.audit_events_default")).await;
    (names, default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_months_are_dropped_as_partitions_with_their_tombstones() {
    const DAY: Duration = Duration::from_secs(86_400);
    let Some(setup) = Setup::start("pt").await else {
        return;
    };
    let s = &setup.schema;
    setup.migrate_as_owner().await;
    let c = client(&setup.owner).await;
    // Connecting made this month's partition and the next two's.
    let (made, _) = partitions(&c, s).await;
    assert_eq!(made.len(), 3, "{made:?}");
    let kind: i8 = c
        .query_one(
            &format!(
                "SELECT relkind::\"char\" FROM pg_class WHERE oid = '{s}.audit_events'::regclass"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(kind as u8, b'p', "the table is partitioned");

    // The service runs as the least-privilege role and records a chained trail whose events
    // are 150, 120, 95, 40 and 0 days old.
    setup.grant().await;
    let store = setup.app_store().await;
    let auditor = Auditor::builder()
        .stream("svc-pt")
        .sink(StoreSink::new(store.clone()))
        .build()
        .unwrap();
    let now = Timestamp::now();
    let mut recorded = Vec::new();
    for n in 0..300_u64 {
        let age = [150, 120, 95, 40, 0][(n % 5) as usize];
        let e = AuditEvent::builder("data.document.read")
            .organization_id(if n % 2 == 0 { "org-a" } else { "org-b" })
            .timestamp(
                Timestamp::from_unix_millis(now.unix_millis() - age * 86_400_000 - 1000).unwrap(),
            )
            .detail("n", n)
            .build()
            .unwrap();
        recorded.push(e.clone());
        auditor.record(e).unwrap();
    }
    let report = auditor.shutdown(Duration::from_secs(10)).await;
    assert!(report.complete, "{report}");
    let (_, in_default) = partitions(&c, s).await;
    assert!(
        in_default >= 180,
        "older months wait in the default partition: {in_default}"
    );

    // The owner (a monthly job, say) adds the six months before this one; their events move
    // out of the default partition.
    c.batch_execute(&format!(
        "SELECT {s}.audit_ensure_partitions(now() - interval '6 months', 6)"
    ))
    .await
    .unwrap();
    let (before, in_default) = partitions(&c, s).await;
    assert_eq!(before.len(), 9, "{before:?}");
    assert_eq!(in_default, 0);

    // Retention: 60 days, 90 for org-b. Every month wholly older than 90 days is dropped
    // whole; the rest of what expired is deleted row by row.
    let policy = RetentionPolicy::keep_for(60 * DAY)
        .rule(RetentionRule::keep_for(90 * DAY).for_tenant("org-b"));
    let purged = store.purge(&policy, now).await.unwrap();
    let expired = |tenant: Option<&str>| {
        recorded
            .iter()
            .filter(|e| policy.is_expired(e, now))
            .filter(|e| tenant.is_none_or(|t| e.organization_id() == Some(t)))
            .count() as u64
    };
    assert_eq!(purged.deleted, expired(None));
    assert_eq!(purged.by_rule[0].deleted, expired(Some("org-b")));
    assert_eq!(purged.by_rule[1].deleted, expired(Some("org-a")));
    let (after, _) = partitions(&c, s).await;
    assert!(
        after.len() < before.len(),
        "the month of the 150-day-old events was dropped: {before:?} → {after:?}"
    );
    // Every chained event dropped or deleted left its tombstone; the chain verifies.
    assert_eq!(
        store.tombstones().await.unwrap().len() as u64,
        expired(None)
    );
    let r = verify_store(&*store, None, |_| {}).await.unwrap();
    assert!(r.is_intact(), "{r:#?}");
    assert_eq!(r.tombstoned, expired(None));
    for e in &recorded {
        let kept = store
            .get(&e.id.to_string(), &TenantScope::All)
            .await
            .unwrap()
            .is_some();
        assert_eq!(kept, !policy.is_expired(e, now));
    }
    drop(store);
    setup.cleanup().await;
}

/// Retention drops months while searches and appends go on. A search that reaches a month
/// being dropped waits for the drop instead of deadlocking with it; a late event for a month
/// being dropped makes the drop give way to it (the month is then deleted row by row).
/// Nothing fails, nothing is lost or counted twice, and the trail verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn months_are_dropped_while_searches_and_appends_go_on() {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    const DAY: Duration = Duration::from_secs(86_400);
    // Per month: 200 days old (dropped by the first purge) and 125 (by the second).
    const OLD: u64 = 30_000;
    let Some(setup) = Setup::start("busy").await else {
        return;
    };
    let s = &setup.schema;
    setup.migrate_as_owner().await;
    let c = client(&setup.owner).await;
    c.batch_execute(&format!(
        "SELECT {s}.audit_ensure_partitions(now() - interval '8 months', 8)"
    ))
    .await
    .unwrap();
    setup.grant().await;
    let store = setup.app_store().await;
    let now = Timestamp::now();
    let ago = move |days: i64| {
        Timestamp::from_unix_millis(now.unix_millis() - days * 86_400_000).unwrap()
    };
    let month_of = |t: Timestamp| format!("audit_events_{}", &t.to_string()[..7].replace('-', "_"));
    let old_event = |t: Timestamp, n: u64| {
        AuditEvent::builder("data.document.read")
            .organization_id("org-a")
            .timestamp(t)
            .detail("n", n)
            .build()
            .unwrap()
    };

    // Two chained months of old events.
    let old = Auditor::builder()
        .stream("svc-old")
        .sink(StoreSink::new(store.clone()))
        .build()
        .unwrap();
    for n in 0..2 * OLD {
        old.record(old_event(ago(if n < OLD { 200 } else { 125 }), n))
            .unwrap();
    }
    assert!(old.shutdown(Duration::from_secs(60)).await.complete);

    // Searches over every month and a live stream of appends (5,000 a second) throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let late = Arc::new(AtomicBool::new(false));
    let searchers = search_until(&store, 3, Duration::ZERO, &stop);
    let live = Auditor::builder()
        .stream("svc-live")
        .sink(StoreSink::new(store.clone()))
        .build()
        .unwrap();
    let recorder = {
        let (live, stop, late) = (live.clone(), stop.clone(), late.clone());
        tokio::spawn(async move {
            let (mut n, mut sent_late) = (0_u64, 0_u64);
            while !stop.load(Relaxed) {
                // Once late is on, now and then an event for the month of the second purge.
                if late.load(Relaxed) && n % 50 == 0 {
                    live.record(old_event(ago(125), n)).unwrap();
                    sent_late += 1;
                } else {
                    live.record(event(n)).unwrap();
                }
                n += 1;
                if n % 50 == 0 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            (n, sent_late)
        })
    };
    let purge = async |policy: &RetentionPolicy| {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = std::time::Instant::now();
        let purged = store.purge(policy, now).await.unwrap();
        eprintln!(
            "purge: {} events in {:?}",
            purged.deleted,
            started.elapsed()
        );
        purged
    };

    // First purge: the 200-day month is dropped whole while searches run.
    let purged = purge(&RetentionPolicy::keep_for(150 * DAY)).await;
    assert_eq!(purged.deleted, OLD);
    let (months, _) = partitions(&c, s).await;
    assert!(!months.contains(&month_of(ago(200))), "{months:?}");
    assert!(months.contains(&month_of(ago(125))), "{months:?}");

    // Second purge, with late events for the 125-day month arriving meanwhile.
    late.store(true, Relaxed);
    let policy = RetentionPolicy::keep_for(90 * DAY);
    let second = purge(&policy).await;
    stop.store(true, Relaxed);
    let (recorded, sent_late) = recorder.await.unwrap();
    let searched = searchers.await.unwrap();
    assert!(
        searched.failed.is_empty(),
        "searches failed during the purges: {:?}",
        searched.failed
    );
    // A search waits for a drop's lock at most one try (250 ms) at a time.
    eprintln!("slowest search during the purges: {:?}", searched.slowest);
    assert!(
        searched.slowest < Duration::from_secs(2),
        "a search waited {:?}",
        searched.slowest
    );
    let searched = searched.ok;
    eprintln!("{searched} searches, {recorded} live events ({sent_late} late) meanwhile");
    assert!(searched > 0 && sent_late > 0);
    let report = live.shutdown(Duration::from_secs(30)).await;
    assert!(report.complete, "{report}");

    // The late events that came after the second purge go with a third; each expired event
    // is counted once and leaves one tombstone.
    let third = store.purge(&policy, now).await.unwrap();
    assert_eq!(second.deleted + third.deleted, OLD + sent_late);
    let expired =
        format!("SELECT count(*) FROM {s}.audit_events WHERE ts < now() - interval '90 days'");
    assert_eq!(count(&c, &expired).await, 0);
    assert_eq!(
        store.tombstones().await.unwrap().len() as u64,
        2 * OLD + sent_late
    );
    let r = verify_store(&*store, None, |_| {}).await.unwrap();
    assert!(r.is_intact(), "{r:#?}");
    // The live stream's events that are kept, and the auditors' own (start and stop).
    assert!(
        r.events >= recorded - sent_late,
        "{} stored of {recorded}",
        r.events
    );
    drop(store);
    setup.cleanup().await;
}

/// Making a month attaches a partition, which needs the default partition's lock: while a
/// long statement holds that partition, searches wait behind the request only a moment at a
/// time, and the month is left to a later check instead of stalling the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn making_a_month_does_not_stall_searches_behind_a_long_statement() {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    let Some(setup) = Setup::start("mk").await else {
        return;
    };
    let s = &setup.schema;
    setup.migrate_as_owner().await;
    setup.grant().await;
    let store = setup.app_store().await;
    store
        .append(&(0..100).map(|n| Arc::new(event(n))).collect::<Vec<_>>())
        .await
        .unwrap();

    // A long statement (a report, say) holds the default partition for six seconds.
    let long = client(&setup.owner).await;
    long.batch_execute(&format!(
        "BEGIN; LOCK TABLE {s}.audit_events_default IN ACCESS SHARE MODE"
    ))
    .await
    .unwrap();
    let held = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(6)).await;
        long.batch_execute("COMMIT").await.unwrap();
    });

    // Searches go on while the service makes a month five months on.
    let stop = Arc::new(AtomicBool::new(false));
    let searcher = search_until(&store, 1, Duration::from_millis(20), &stop);
    let app = client(&setup.app).await;
    let make = format!("SELECT {s}.audit_ensure_partitions(now() + interval '5 months', 1)");
    let made: i32 = app.query_one(&make, &[]).await.unwrap().get(0);
    stop.store(true, Relaxed);
    let searched = searcher.await.unwrap();
    assert!(searched.failed.is_empty(), "{:?}", searched.failed);
    let slowest = searched.slowest;
    eprintln!("slowest search while the month was being made: {slowest:?}");
    assert_eq!(
        made, 0,
        "the default partition stayed busy: the month is left for later"
    );
    assert!(
        slowest < Duration::from_secs(2),
        "searches waited {slowest:?} behind the attach"
    );

    // Once the long statement is done, the next check makes the month.
    held.await.unwrap();
    let made: i32 = app.query_one(&make, &[]).await.unwrap().get(0);
    assert_eq!(made, 1);
    drop(store);
    setup.cleanup().await;
}

/// Appends make sure the coming months' partitions exist, once per `partition_check`: a
/// missing month (dropped here by the owner) is made again by an append once a check is
/// due, and not before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_make_missing_months_once_a_check_is_due() {
    let Some(setup) = Setup::start("hc").await else {
        return;
    };
    let s = &setup.schema;
    setup.migrate_as_owner().await;
    setup.grant().await;
    let store = PostgresStore::connect_with(
        &setup.app,
        setup
            .app_options()
            .partition_check(Duration::from_millis(500)),
    )
    .await
    .unwrap();
    let c = client(&setup.owner).await;
    let (months, _) = partitions(&c, s).await;
    let last = months.last().unwrap().clone();
    c.batch_execute(&format!("DROP TABLE {s}.{last}"))
        .await
        .unwrap();
    let append = async |n: u64| {
        store.append(&[Arc::new(event(n))]).await.unwrap();
        partitions(&c, s).await.0
    };
    // Connecting just checked: the next check is not due yet.
    assert!(!append(1).await.contains(&last));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(append(2).await, months);
    drop(store);
    setup.cleanup().await;
}
