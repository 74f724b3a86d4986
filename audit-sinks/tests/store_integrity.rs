//! Tampering with each store, the way someone with write access to the database would, and
//! what `verify_store` says about it: an edited row, a deleted row, two rows swapped, a forged
//! row, a cut tail, an unrecorded deletion, and the legitimate purge by retention.
#![cfg(all(feature = "sqlite", feature = "postgres"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::sync::Arc;
use std::time::Duration;

use audit_core::integrity::{
    CheckpointKey, CheckpointPolicy, Keyring, ProblemKind, Report, hash_prefix, split_chained,
};
use audit_core::store::{RetentionPolicy, Store, StoreSink, TenantScope, verify_store};
use audit_core::{AuditEvent, Auditor, Timestamp};
use audit_sinks::{PostgresOptions, PostgresStore, SqliteStore};

mod pg;

/// Where raw SQL goes, bypassing the store.
enum Db {
    Sqlite(std::path::PathBuf),
    Postgres { url: String, schema: String },
}

impl Db {
    async fn exec(&self, sql: &str) {
        match self {
            Db::Sqlite(path) => {
                let c = rusqlite::Connection::open(path).unwrap();
                c.execute_batch(sql).unwrap();
            }
            Db::Postgres { url, schema } => {
                let client = pg::client(url).await;
                client
                    .batch_execute(&format!("SET search_path TO {schema}; {sql}"))
                    .await
                    .unwrap();
            }
        }
    }

    async fn text_of(&self, seq: u64) -> (String, String) {
        let q = format!("SELECT id, event FROM audit_events WHERE seq = {seq}");
        match self {
            Db::Sqlite(path) => {
                let c = rusqlite::Connection::open(path).unwrap();
                c.query_row(&q, [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap()
            }
            Db::Postgres { url, schema } => {
                let client = pg::client(url).await;
                let q =
                    format!("SELECT id, event::text FROM {schema}.audit_events WHERE seq = {seq}");
                let row = client.query_one(&q, &[]).await.unwrap();
                (row.get(0), row.get(1))
            }
        }
    }
}

const EVENTS: u64 = 20;
const OLD: u64 = 4;

/// A trail of 20 events (the first four a year old) with checkpoints every 5, shut down
/// cleanly, in `store`.
async fn fill(store: Arc<dyn Store>, key: &CheckpointKey) {
    fill_n(store, key, EVENTS, OLD).await;
}

/// A trail of `events` events (the first `old` a year old) with checkpoints every 5, shut
/// down cleanly, in `store`.
async fn fill_n(store: Arc<dyn Store>, key: &CheckpointKey, events: u64, old: u64) {
    let auditor = Auditor::builder()
        .stream("svc-9")
        .checkpoints(key.clone())
        .checkpoint_policy(CheckpointPolicy::new(5, Duration::from_secs(3600)))
        .sink(StoreSink::new(store))
        .build()
        .unwrap();
    let year_ago =
        Timestamp::from_unix_millis(Timestamp::now().unix_millis() - 365 * 86_400_000).unwrap();
    for n in 1..=events {
        let mut b = AuditEvent::builder("data.document.read")
            .organization_id(if n % 2 == 0 { "org-a" } else { "org-b" })
            .detail("n", n);
        if n <= old {
            b = b.timestamp(year_ago);
        }
        auditor.record(b.build().unwrap()).unwrap();
    }
    assert!(auditor.shutdown(Duration::from_secs(10)).await.complete);
}

fn kinds(r: &Report) -> Vec<(ProblemKind, Option<u64>)> {
    r.problems.iter().map(|p| (p.kind, p.seq)).collect()
}

async fn verify(store: &dyn Store, keys: &Keyring) -> Report {
    verify_store(store, Some(keys.clone()), |_| {})
        .await
        .unwrap()
}

/// Purges what is older than 30 days, now.
async fn purge_after_30_days(store: &dyn Store) -> audit_core::store::PurgeReport {
    store
        .purge(
            &RetentionPolicy::keep_for(Duration::from_secs(30 * 86_400)),
            Timestamp::now(),
        )
        .await
        .unwrap()
}

/// Runs every scenario against fresh stores made by `open`.
async fn scenarios<F, Fut>(open: F)
where
    F: Fn(&'static str) -> Fut,
    Fut: Future<Output = (Arc<dyn Store>, Db)>,
{
    let key = CheckpointKey::generate().unwrap();
    let mut keys = Keyring::default();
    keys.add(key.public_key());
    let fresh = async |name| {
        let (store, db) = open(name).await;
        fill(store.clone(), &key).await;
        (store, db)
    };

    let (store, _) = fresh("intact").await;
    let r = verify(&*store, &keys).await;
    assert!(r.is_fully_verified(), "{r:#?}");
    assert!(r.streams[0].closed);

    // An edited field of one event: which one, by seq and id.
    let (store, db) = fresh("edit").await;
    let (id, _) = db.text_of(7).await;
    let set = "replace(event, '\"n\":7', '\"n\":70')";
    db.exec(&format!(
        "UPDATE audit_events SET event = {set} WHERE seq = 7"
    ))
    .await;
    let r = verify(&*store, &keys).await;
    assert_eq!(kinds(&r)[0], (ProblemKind::Modified, Some(7)), "{r:#?}");
    assert_eq!(r.problems[0].id.as_deref(), Some(id.as_str()));

    // A deleted row.
    let (store, db) = fresh("delete").await;
    db.exec("DELETE FROM audit_events WHERE seq = 9").await;
    let r = verify(&*store, &keys).await;
    assert_eq!(kinds(&r), vec![(ProblemKind::Deleted, Some(9))], "{r:#?}");

    // Two rows' events swapped.
    let (store, db) = fresh("swap").await;
    let ((_, a), (_, b)) = (db.text_of(3).await, db.text_of(4).await);
    let (a, b) = (a.replace('\'', "''"), b.replace('\'', "''"));
    db.exec(&format!(
        "UPDATE audit_events SET event = '{b}' WHERE seq = 3; \
         UPDATE audit_events SET event = '{a}' WHERE seq = 4;"
    ))
    .await;
    let r = verify(&*store, &keys).await;
    let k = kinds(&r);
    assert!(k.contains(&(ProblemKind::Reordered, Some(3))), "{r:#?}");
    assert!(
        k.contains(&(ProblemKind::ColumnMismatch, Some(3))),
        "{r:#?}"
    );

    // A forged row claiming a seq already taken, correctly hashed.
    let (store, db) = fresh("forge").await;
    let (_, text) = db.text_of(11).await;
    let forged = text
        .replace("org-b", "org-x")
        .replacen("\"id\":\"", "\"id\":\"f", 1);
    let (prefix, _) = split_chained(&forged).unwrap();
    let forged = format!("{prefix},\"hash\":\"{}\"}}}}", hash_prefix(prefix));
    let fid: String = serde_json::from_str::<serde_json::Value>(&forged).unwrap()["id"]
        .as_str()
        .unwrap()
        .into();
    db.exec(&format!(
        "INSERT INTO audit_events (id, ts, event_type, category, severity, tenant, event, \
         stream, seq, prev_hash, hash) SELECT '{fid}', ts, event_type, category, severity, \
         'org-x', '{}', stream, seq, prev_hash, hash FROM audit_events WHERE seq = 11",
        forged.replace('\'', "''")
    ))
    .await;
    let r = verify(&*store, &keys).await;
    assert!(
        kinds(&r).contains(&(ProblemKind::Inserted, Some(11))),
        "{r:#?}"
    );

    // The tail cut: what is left holds, but is not proven and the stream is not closed.
    let (store, db) = fresh("tail").await;
    db.exec("DELETE FROM audit_events WHERE seq > 17").await;
    let r = verify(&*store, &keys).await;
    assert!(r.is_intact(), "{r:#?}");
    assert!(r.unverifiable > 0);
    assert!(!r.streams[0].closed);

    // A deletion through the store keeps a tombstone; with no admin.audit_log.delete event
    // recording it, the verifier says so.
    let (store, db) = fresh("api-delete").await;
    let (id, _) = db.text_of(12).await;
    assert!(
        store
            .delete(&id, &TenantScope::All, "admin-1")
            .await
            .unwrap()
    );
    let tombs = store.tombstones().await.unwrap();
    assert_eq!(tombs.len(), 1);
    assert_eq!(
        (tombs[0].seq, tombs[0].deleted_by.as_str()),
        (12, "admin-1")
    );
    let r = verify(&*store, &keys).await;
    assert_eq!(
        kinds(&r),
        vec![(ProblemKind::UnrecordedDeletion, Some(12))],
        "{r:#?}"
    );
    // The same deletion done by hand, tombstone and all, is still caught.
    let (store, db) = fresh("api-delete-forged").await;
    db.exec("DELETE FROM audit_events WHERE seq = 12; DELETE FROM audit_events WHERE seq = 13;")
        .await;
    let r = verify(&*store, &keys).await;
    assert_eq!(kinds(&r), vec![(ProblemKind::Deleted, Some(12))], "{r:#?}");

    // Retention: the year-old events go, their tombstones carry the chain.
    let (store, _) = fresh("retention").await;
    let purged = purge_after_30_days(&*store).await;
    assert_eq!(purged.deleted, OLD);
    let r = verify(&*store, &keys).await;
    assert!(r.is_fully_verified(), "{r:#?}");
    assert_eq!(r.tombstoned, OLD);

    // Retention of more events than one batch deletes: every batch keeps its tombstones.
    let (store, _) = open("retention-batches").await;
    fill_n(store.clone(), &key, 25_500, 25_000).await;
    let purged = purge_after_30_days(&*store).await;
    assert_eq!(purged.deleted, 25_000);
    assert_eq!(purged.by_rule.len(), 1);
    assert_eq!(store.tombstones().await.unwrap().len(), 25_000);
    let r = verify(&*store, &keys).await;
    assert!(r.is_fully_verified(), "{r:#?}");
    assert_eq!(r.tombstoned, 25_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_tampering_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    scenarios(|name| {
        let path = root.join(format!("{name}.db"));
        async move {
            let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
            (store, Db::Sqlite(path))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tampering_is_named() {
    let Some(url) = pg::url().await else {
        return;
    };
    let pid = std::process::id();
    let schemas = std::sync::Mutex::new(Vec::new());
    scenarios(|name| {
        let schema = format!("audit_tamper_{pid}_{}", name.replace('-', "_"));
        schemas.lock().unwrap().push(schema.clone());
        let url = url.clone();
        async move {
            let db = Db::Postgres {
                url: url.clone(),
                schema: schema.clone(),
            };
            db.exec(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .await;
            let store: Arc<dyn Store> = Arc::new(
                PostgresStore::connect_with(&url, PostgresOptions::default().schema(&schema))
                    .await
                    .unwrap(),
            );
            (store, db)
        }
    })
    .await;
    let db = Db::Postgres {
        url: url.clone(),
        schema: "public".into(),
    };
    for s in schemas.into_inner().unwrap() {
        db.exec(&format!("DROP SCHEMA IF EXISTS {s} CASCADE")).await;
    }
}

/// Schema 1's table: the event text without the chain columns.
const SCHEMA_1: &str = "
    CREATE TABLE audit_schema (version bigint NOT NULL);
    INSERT INTO audit_schema (version) VALUES (1);
    CREATE TABLE audit_events (
        id text PRIMARY KEY, ts bigint NOT NULL, event_type text NOT NULL,
        category text NOT NULL, severity text NOT NULL, result text, tenant text,
        actor_id text, actor_email text, client_id text, target_type text, target_id text,
        request_id text, description text, event TEXT NOT NULL);";

/// A chained event as schema 1 stored it, and its row.
fn schema_1_row() -> (String, String) {
    let mut e = AuditEvent::builder("auth.logout").build().unwrap();
    let mut i = audit_core::Integrity::new("old-1", 1);
    i.prev_hash = Some(audit_core::integrity::GENESIS.into());
    e.integrity = Some(i);
    let mut json = Vec::new();
    e.write_json(&mut json).unwrap();
    let text = String::from_utf8(json).unwrap();
    let prefix = text.strip_suffix("}}").unwrap();
    let line = format!("{prefix},\"hash\":\"{}\"}}}}", hash_prefix(prefix));
    let insert = format!(
        "INSERT INTO audit_events (id, ts, event_type, category, severity, event) \
         VALUES ('{}', {}, 'auth.logout', 'authentication', 'info', '{}');",
        e.id,
        e.timestamp.unix_millis(),
        line.replace('\'', "''")
    );
    (line, insert)
}

/// A store made by schema 1 is migrated in place: its events get their chain columns from
/// their own text and verify.
async fn migrates(store: &dyn Store, line: &str) {
    let rows = store.chain_rows(None, 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].stream.as_str(), rows[0].seq), ("old-1", 1));
    assert_eq!(rows[0].json, line);
    let r = verify_store(store, None, |_| {}).await.unwrap();
    assert!(r.is_intact(), "{r:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_1_store_is_migrated_in_place() {
    let (line, insert) = schema_1_row();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    Db::Sqlite(path.clone())
        .exec(&format!("{SCHEMA_1}{insert}"))
        .await;
    let store = SqliteStore::open(&path).unwrap();
    migrates(&store, &line).await;

    let Some(url) = pg::url().await else {
        return;
    };
    let schema = format!("audit_schema1_{}", std::process::id());
    let db = Db::Postgres {
        url: url.clone(),
        schema: schema.clone(),
    };
    db.exec(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; SET search_path TO {schema}; {}{insert}",
        SCHEMA_1.replace("event TEXT", "event json")
    ))
    .await;
    let store = PostgresStore::connect_with(&url, PostgresOptions::default().schema(&schema))
        .await
        .unwrap();
    migrates(&store, &line).await;
    // Schema 3: the old table is the partition of everything before next month, its times
    // converted to `timestamptz` to the millisecond.
    let c = pg::client(&url).await;
    let row = c
        .query_one(
            &format!(
                "SELECT (extract(epoch FROM ts) * 1000)::bigint, pg_typeof(ts)::text, \
                        tableoid::regclass::text, event::json->>'timestamp' \
                 FROM {schema}.audit_events"
            ),
            &[],
        )
        .await
        .unwrap();
    let (millis, ty, part, text): (i64, String, String, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(ty, "timestamp with time zone");
    assert!(part.ends_with("audit_events_before_partitioning"), "{part}");
    assert_eq!(
        Timestamp::from_unix_millis(millis).unwrap(),
        text.parse::<Timestamp>().unwrap()
    );
    drop(store);
    db.exec(&format!("DROP SCHEMA {schema} CASCADE")).await;
}
