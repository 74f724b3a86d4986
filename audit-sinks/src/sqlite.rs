//! [`SqliteStore`]: the embedded, queryable default store (feature `sqlite`).
//!
//! One file in WAL mode: one writer connection appends batches in a transaction with a
//! prepared statement (`ON CONFLICT(id) DO NOTHING`, so a retried batch never duplicates),
//! while a few reader connections answer searches concurrently. Each event is kept whole as
//! JSON beside the indexed columns the filters use. All database work runs on Tokio's blocking
//! pool, never on an async worker thread.
//!
//! ```
//! use std::sync::Arc;
//! use audit_core::store::{Filter, Query, Store, StoreSink, TenantScope};
//! use audit_core::{AuditEvent, Auditor};
//! use audit_sinks::SqliteStore;
//!
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("audit.db");
//! let store = Arc::new(SqliteStore::open(&path)?);
//! let auditor = Auditor::builder().sink(StoreSink::new(store.clone())).build()?;
//! auditor.record(AuditEvent::builder("auth.logout").organization_id("org-1").build()?)?;
//! auditor.shutdown_blocking(std::time::Duration::from_secs(5));
//!
//! let rt = tokio::runtime::Runtime::new()?;
//! let page = rt.block_on(store.search(&Query::new(Filter::scoped(TenantScope::tenant("org-1")))))?;
//! assert_eq!(page.events[0].event_type.as_str(), "auth.logout");
//! assert_eq!(page.summary.unwrap().total_events, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use audit_core::sync::LockExt;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use audit_core::integrity::Tombstone;
use audit_core::store::{
    ChainPosition, ChainRow, DistinctField, Page, PurgeReport, Query, RetentionPolicy, Store,
    StoreError, StoreFuture, Summary, TenantScope,
};
use audit_core::{AuditEvent, Category, Timestamp};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params_from_iter};

use crate::sql::{self, COLUMNS, Dialect, INDEXES, Param, Row, Sql, TOMBSTONE_COLUMNS};

/// The SQLite schema version this code writes; a database with a newer one is refused.
const SCHEMA_VERSION: i64 = 2;

/// How hard SQLite works to make each committed batch durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Synchronous {
    /// fsync at every commit: a committed batch survives power loss (the default).
    #[default]
    Full,
    /// fsync at checkpoints only: survives a killed process, may lose the last batches on
    /// power loss. Faster.
    Normal,
}

/// Settings for [`SqliteStore::open_with`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// Durability of commits.
    pub synchronous: Synchronous,
    /// Reader connections for concurrent searches (0: searches share the writer).
    pub readers: usize,
    /// How long a statement waits for a lock before failing.
    pub busy_timeout: Duration,
    /// Page cache of the whole store, in MiB (default 32): the writer has three quarters of
    /// it, the readers share the rest. Every connection has its own cache, so this is the
    /// budget for all of them together. Measured with 1,000,000 events (the store bench):
    /// ingest to 1 M runs at 47 k events/s with 32 MiB, 54 k with 64, 38 k with 16; search
    /// p99 stays about 2 ms.
    pub cache_mib: u32,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Full,
            readers: 4,
            busy_timeout: Duration::from_secs(5),
            cache_mib: 32,
        }
    }
}

/// Each connection lives on a thread of its own that runs the work sent to it: the writer
/// on one, the readers on as many more sharing one queue. All of a connection's memory (its
/// page cache above all) is then allocated by one thread, so glibc keeps it in one heap.
/// Run from whichever blocking-pool thread was free, the caches spread over a heap per
/// thread: with 8 concurrent searches the process held about 110 MB above the pipeline
/// alone, against 67–70 MiB this way (`tests/store_memory.rs`, glibc's default heaps). The
/// hand-over costs about 0.1 ms a search (store bench, 200,000 events: p50 0.30–0.40 →
/// 0.39–0.52 ms); ingest is unchanged (91 k → 94 k events/s, medians of three).
struct Inner {
    writer: Option<std::sync::mpsc::Sender<WriteJob>>,
    readers: Option<std::sync::mpsc::Sender<ReadJob>>,
    /// The connections' threads: the readers', then the writer's.
    threads: Vec<std::thread::JoinHandle<()>>,
    path: PathBuf,
}

type WriteJob = Box<dyn FnOnce(&mut Connection) + Send>;
type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queues ends the threads, which close their connections; waiting for
        // them means the database is closed when the store is gone.
        self.writer.take();
        self.readers.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Starts the writer's thread, owning `conn`.
fn writer_thread(
    mut conn: Connection,
) -> Result<
    (
        std::sync::mpsc::Sender<WriteJob>,
        std::thread::JoinHandle<()>,
    ),
    StoreError,
> {
    let (tx, rx) = std::sync::mpsc::channel::<WriteJob>();
    let handle = std::thread::Builder::new()
        .name("audit-sqlite-writer".into())
        .spawn(move || {
            for job in rx {
                // A panicking job drops its reply; the caller gets an error, the thread lives.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut conn)));
            }
        })
        .map_err(|e| StoreError::fatal(format!("sqlite: cannot start a thread: {e}")))?;
    Ok((tx, handle))
}

/// Starts one reader thread per connection, all taking work from one queue.
fn reader_threads(
    conns: Vec<Connection>,
) -> Result<
    (
        std::sync::mpsc::Sender<ReadJob>,
        Vec<std::thread::JoinHandle<()>>,
    ),
    StoreError,
> {
    let (tx, rx) = std::sync::mpsc::channel::<ReadJob>();
    let rx = Arc::new(Mutex::new(rx));
    let mut handles = Vec::new();
    for (i, conn) in conns.into_iter().enumerate() {
        let rx = rx.clone();
        let handle = std::thread::Builder::new()
            .name(format!("audit-sqlite-reader-{i}"))
            .spawn(move || {
                loop {
                    let job = rx.lock_ignore_poison().recv();
                    let Ok(job) = job else { break };
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&conn)));
                }
            })
            .map_err(|e| StoreError::fatal(format!("sqlite: cannot start a thread: {e}")))?;
        handles.push(handle);
    }
    Ok((tx, handles))
}

/// A call whose answer never came: its connection's thread stopped, or the call panicked
/// there (the thread goes on with the next one).
fn gone() -> StoreError {
    StoreError::unavailable(
        "sqlite: the call ended without an answer (it panicked, or the store's connection thread stopped)",
    )
}

/// An embedded SQLite event store. Cheap to share as `Arc<SqliteStore>`.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("readers", &self.inner.threads.len().saturating_sub(1))
            .finish()
    }
}

#[allow(clippy::needless_pass_by_value)] // shaped for `map_err(db_err)`
fn db_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::*;
    match e.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked | DiskFull | CannotOpen | SystemIoFailure) => {
            StoreError::unavailable(format!("sqlite: {e}"))
        }
        _ => StoreError::fatal(format!("sqlite: {e}")),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(path, SqliteOptions::default())
    }

    /// Opens (creating if needed) the database at `path`.
    ///
    /// Creates the schema on first use and refuses a database written by a newer schema
    /// version. The file is created readable by its owner only.
    pub fn open_with(
        path: impl AsRef<Path>,
        options: SqliteOptions,
    ) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        if !path.exists() {
            create_private(&path)?;
        }
        let writer = Connection::open(&path).map_err(db_err)?;
        configure(&writer, &options, true)?;
        // 16 KiB pages (only takes effect on a new database) halve the index pages a batch
        // dirties; a 64 MiB WAL between checkpoints stops hot index pages being copied back
        // to the main file after every few batches.
        writer
            .execute_batch(
                "PRAGMA page_size = 16384; PRAGMA journal_mode = WAL; \
                 PRAGMA wal_autocheckpoint = 4096;",
            )
            .map_err(db_err)?;
        migrate(&writer)?;
        // Again, now that the file has its page size: SQLite turns a cache size in KiB into
        // pages by the page size current when it is set, which for a new database was the
        // 4 KiB default, so the cache held four times its budget in 16 KiB pages (measured:
        // 245 MB for a 48 MiB writer cache after 200,000 events, 70 MB once set here).
        configure(&writer, &options, true)?;
        let readers = (0..options.readers)
            .map(|_| {
                let c = Connection::open_with_flags(
                    &path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(db_err)?;
                configure(&c, &options, false)?;
                Ok(c)
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let (writer, writer_handle) = writer_thread(writer)?;
        let (readers, mut threads) = if readers.is_empty() {
            (None, Vec::new())
        } else {
            let (tx, handles) = reader_threads(readers)?;
            (Some(tx), handles)
        };
        threads.push(writer_handle);
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                writer: Some(writer),
                readers,
                threads,
                path,
            }),
        })
    }

    /// A private in-memory database (for tests and short-lived tools): one connection, gone
    /// when the store is dropped.
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        let writer = Connection::open_in_memory().map_err(db_err)?;
        configure(&writer, &SqliteOptions::default(), true)?;
        migrate(&writer)?;
        let (writer, handle) = writer_thread(writer)?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                writer: Some(writer),
                readers: None,
                threads: vec![handle],
                path: PathBuf::from(":memory:"),
            }),
        })
    }

    /// Runs `f` on a reader connection's thread (the writer's when there are no readers).
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = move |c: &Connection| {
            let _ = tx.send(f(c));
        };
        let sent = match (&self.inner.readers, &self.inner.writer) {
            (Some(readers), _) => readers.send(Box::new(job)).is_ok(),
            (None, Some(writer)) => writer
                .send(Box::new(move |c: &mut Connection| job(c)))
                .is_ok(),
            (None, None) => false,
        };
        if !sent {
            return Err(gone());
        }
        rx.await.map_err(|_| gone())?
    }

    /// Runs `f` on the writer connection's thread.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = move |c: &mut Connection| {
            let _ = tx.send(f(c));
        };
        let writer = self.inner.writer.as_ref().ok_or_else(gone)?;
        writer.send(Box::new(job)).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

#[cfg(unix)]
fn create_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
        .or_else(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Ok(())
            } else {
                Err(StoreError::unavailable(format!(
                    "cannot create {}: {e}",
                    path.display()
                )))
            }
        })
}

#[cfg(not(unix))]
fn create_private(_path: &Path) -> Result<(), StoreError> {
    Ok(())
}

/// One connection's share of the store's page cache, in KiB: three quarters for the writer
/// (all of it without readers), the rest split between the readers, at least 1 MiB each.
fn cache_kib(o: &SqliteOptions, writer: bool) -> i64 {
    let total = i64::from(o.cache_mib.max(1)) * 1024;
    let readers = i64::try_from(o.readers).unwrap_or(i64::MAX);
    match (writer, readers) {
        (true, 0) => total,
        (true, _) => total * 3 / 4,
        (false, n) => (total / 4 / n.max(1)).max(1024),
    }
}

fn configure(c: &Connection, o: &SqliteOptions, writer: bool) -> Result<(), StoreError> {
    c.busy_timeout(o.busy_timeout).map_err(db_err)?;
    let sync = match o.synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    let cache_kib = cache_kib(o, writer);
    c.execute_batch(&format!(
        "PRAGMA synchronous = {sync}; PRAGMA foreign_keys = ON; PRAGMA cache_size = -{cache_kib};"
    ))
    .map_err(db_err)
}

fn migrate(c: &Connection) -> Result<(), StoreError> {
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS audit_schema (version INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS audit_events (
            id TEXT PRIMARY KEY NOT NULL,
            ts INTEGER NOT NULL,
            event_type TEXT NOT NULL,
            category TEXT NOT NULL,
            severity TEXT NOT NULL,
            result TEXT,
            tenant TEXT,
            actor_id TEXT,
            actor_email TEXT,
            client_id TEXT,
            target_type TEXT,
            target_id TEXT,
            request_id TEXT,
            description TEXT,
            event TEXT NOT NULL
         );
         CREATE TABLE IF NOT EXISTS audit_tombstones (
            id TEXT PRIMARY KEY NOT NULL,
            stream TEXT NOT NULL,
            seq INTEGER NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL,
            deleted_at INTEGER NOT NULL,
            deleted_by TEXT NOT NULL,
            reason TEXT NOT NULL
         );",
    )
    .map_err(db_err)?;
    // Schema 2's chain columns, added to a table made by schema 1 and filled from each
    // event's own text.
    let present: Vec<String> = c
        .prepare("SELECT name FROM pragma_table_info('audit_events')")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(db_err)?;
    let mut added = false;
    for (name, ty, _) in sql::CHAIN_COLUMNS {
        if !present.iter().any(|p| p == name) {
            c.execute_batch(&format!("ALTER TABLE audit_events ADD COLUMN {name} {ty};"))
                .map_err(db_err)?;
            added = true;
        }
    }
    if added {
        c.execute_batch(
            "UPDATE audit_events SET
                stream = json_extract(event, '$.integrity.stream'),
                seq = json_extract(event, '$.integrity.seq'),
                prev_hash = json_extract(event, '$.integrity.prevHash'),
                hash = json_extract(event, '$.integrity.hash');",
        )
        .map_err(db_err)?;
    }
    for (name, columns) in INDEXES {
        c.execute_batch(&format!(
            "CREATE INDEX IF NOT EXISTS {name} ON audit_events ({columns});"
        ))
        .map_err(db_err)?;
    }
    let version: Option<i64> = c
        .query_row("SELECT max(version) FROM audit_schema", [], |r| r.get(0))
        .map_err(db_err)?;
    match version {
        None => {
            c.execute(
                "INSERT INTO audit_schema (version) VALUES (?1)",
                [SCHEMA_VERSION],
            )
            .map_err(db_err)?;
        }
        Some(v) if v > SCHEMA_VERSION => {
            return Err(StoreError::fatal(format!(
                "the database has audit schema version {v}; this version of audit-sinks \
                 understands up to {SCHEMA_VERSION}"
            )));
        }
        Some(v) if v < SCHEMA_VERSION => {
            c.execute("UPDATE audit_schema SET version = ?1", [SCHEMA_VERSION])
                .map_err(db_err)?;
        }
        Some(_) => {}
    }
    Ok(())
}

fn to_sql(p: &Param) -> rusqlite::types::Value {
    match p {
        Param::Text(s) => rusqlite::types::Value::Text(s.clone()),
        Param::Int(i) | Param::Time(i) => rusqlite::types::Value::Integer(*i),
    }
}

fn decode(json: &str) -> Result<AuditEvent, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::fatal(format!("sqlite: a stored event is not readable: {e}")))
}

fn run_search(c: &Connection, q: &Query) -> Result<Page, StoreError> {
    // One read transaction: the page and the summary see the same snapshot, so a concurrent
    // insert cannot make the count disagree with the page.
    let tx = c.unchecked_transaction().map_err(db_err)?;
    let page = search_in(&tx, q)?;
    tx.commit().map_err(db_err)?;
    Ok(page)
}

fn search_in(c: &Connection, q: &Query) -> Result<Page, StoreError> {
    let mut sql = Sql::new(
        Dialect::Sqlite,
        "SELECT event FROM audit_events WHERE 1 = 1",
    );
    sql.filter(&q.filter);
    sql.page(q);
    let mut stmt = c.prepare_cached(&sql.text).map_err(db_err)?;
    let rows = stmt
        .query_map(params_from_iter(sql.params.iter().map(to_sql)), |r| {
            r.get::<_, String>(0)
        })
        .map_err(db_err)?;
    let mut events = Vec::with_capacity(q.limit + 1);
    for row in rows {
        events.push(decode(&row.map_err(db_err)?)?);
    }
    let mut page = Page::from_rows(events, q);
    if q.include_summary {
        let mut sql = Sql::new(
            Dialect::Sqlite,
            "SELECT category, count(*) FROM audit_events WHERE 1 = 1",
        );
        sql.filter(&q.filter);
        sql.push(" GROUP BY category");
        let mut stmt = c.prepare_cached(&sql.text).map_err(db_err)?;
        let mut rows = stmt
            .query(params_from_iter(sql.params.iter().map(to_sql)))
            .map_err(db_err)?;
        let mut summary = Summary::default();
        while let Some(row) = rows.next().map_err(db_err)? {
            let category: String = row.get(0).map_err(db_err)?;
            let n: i64 = row.get(1).map_err(db_err)?;
            if let Ok(c) = category.parse::<Category>() {
                summary.add(c, u64::try_from(n).unwrap_or(0));
            }
        }
        page.summary = Some(summary);
    }
    Ok(page)
}

impl Store for SqliteStore {
    fn name(&self) -> &str {
        "sqlite"
    }

    fn append<'a>(&'a self, events: &'a [Arc<AuditEvent>]) -> StoreFuture<'a, u64> {
        let events = events.to_vec();
        Box::pin(self.write(move |c| {
            let rows = events
                .iter()
                .map(|e| Row::of(e))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StoreError::fatal(format!("cannot encode event: {e}")))?;
            let tx = c.transaction().map_err(db_err)?;
            let mut inserted = 0u64;
            {
                let mut stmt = tx
                    .prepare_cached(&format!(
                        "INSERT INTO audit_events ({COLUMNS}) VALUES \
                         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
                          ?16, ?17, ?18, ?19) \
                         ON CONFLICT(id) DO NOTHING"
                    ))
                    .map_err(db_err)?;
                for r in &rows {
                    inserted += stmt
                        .execute(rusqlite::params![
                            r.id,
                            r.ts,
                            r.event_type,
                            r.category,
                            r.severity,
                            r.result,
                            r.tenant,
                            r.actor_id,
                            r.actor_email,
                            r.client_id,
                            r.target_type,
                            r.target_id,
                            r.request_id,
                            r.description,
                            r.json,
                            r.stream,
                            r.seq,
                            r.prev_hash,
                            r.hash,
                        ])
                        .map_err(db_err)? as u64;
                }
            }
            tx.commit().map_err(db_err)?;
            Ok(inserted)
        }))
    }

    fn search<'a>(&'a self, query: &'a Query) -> StoreFuture<'a, Page> {
        let q = query.clone();
        Box::pin(self.read(move |c| run_search(c, &q)))
    }

    fn get<'a>(
        &'a self,
        id: &'a str,
        scope: &'a TenantScope,
    ) -> StoreFuture<'a, Option<AuditEvent>> {
        let mut sql = Sql::new(
            Dialect::Sqlite,
            "SELECT event FROM audit_events WHERE id = ",
        );
        sql.bind(Param::Text(id.to_owned()));
        sql.scope(scope);
        Box::pin(self.read(move |c| {
            let json: Option<String> = c
                .prepare_cached(&sql.text)
                .map_err(db_err)?
                .query_row(params_from_iter(sql.params.iter().map(to_sql)), |r| {
                    r.get(0)
                })
                .optional()
                .map_err(db_err)?;
            json.as_deref().map(decode).transpose()
        }))
    }

    fn delete<'a>(
        &'a self,
        id: &'a str,
        scope: &'a TenantScope,
        deleted_by: &'a str,
    ) -> StoreFuture<'a, bool> {
        let (keep, sql) = sql::delete_statements(
            Dialect::Sqlite,
            "audit_events",
            "audit_tombstones",
            id,
            scope,
            deleted_by,
        );
        Box::pin(self.write(move |c| {
            let tx = c.transaction().map_err(db_err)?;
            tx.execute(&keep.text, params_from_iter(keep.params.iter().map(to_sql)))
                .map_err(db_err)?;
            let n = tx
                .execute(&sql.text, params_from_iter(sql.params.iter().map(to_sql)))
                .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok(n > 0)
        }))
    }

    fn chain_rows<'a>(
        &'a self,
        after: Option<&'a ChainPosition>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<ChainRow>> {
        let sql = sql::chain_rows_sql(Dialect::Sqlite, "audit_events", after, limit);
        Box::pin(self.read(move |c| {
            let mut stmt = c.prepare_cached(&sql.text).map_err(db_err)?;
            let rows = stmt
                .query_map(params_from_iter(sql.params.iter().map(to_sql)), |r| {
                    Ok(ChainRow {
                        id: r.get(0)?,
                        stream: r.get(1)?,
                        seq: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                        event_type: r.get(3)?,
                        tenant: r.get(4)?,
                        unix_millis: r.get(5)?,
                        json: r.get(6)?,
                    })
                })
                .map_err(db_err)?;
            rows.map(|r| r.map_err(db_err)).collect()
        }))
    }

    fn tombstones<'a>(&'a self) -> StoreFuture<'a, Vec<Tombstone>> {
        Box::pin(self.read(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {TOMBSTONE_COLUMNS} FROM audit_tombstones ORDER BY stream, seq"
                ))
                .map_err(db_err)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(Tombstone {
                        id: r.get(0)?,
                        stream: r.get(1)?,
                        seq: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                        prev_hash: r.get(3)?,
                        hash: r.get(4)?,
                        deleted_at: sql::deleted_at(r.get(5)?),
                        deleted_by: r.get(6)?,
                        reason: r.get(7)?,
                    })
                })
                .map_err(db_err)?;
            rows.map(|r| r.map_err(db_err)).collect()
        }))
    }

    fn purge<'a>(
        &'a self,
        policy: &'a RetentionPolicy,
        now: Timestamp,
    ) -> StoreFuture<'a, PurgeReport> {
        let statements = Arc::new(sql::purge_statements(
            Dialect::Sqlite,
            policy,
            now,
            "audit_events",
            "audit_tombstones",
            sql::PURGE_BATCH,
        ));
        Box::pin(async move {
            let mut report = PurgeReport::default();
            for i in 0..statements.len() {
                let mut deleted = 0;
                loop {
                    // One batch a transaction: appends go on between batches.
                    let statements = statements.clone();
                    let n = self
                        .write(move |c| {
                            let (_, keep, delete) = &statements[i];
                            let tx = c.transaction().map_err(db_err)?;
                            tx.execute(
                                &keep.text,
                                params_from_iter(keep.params.iter().map(to_sql)),
                            )
                            .map_err(db_err)?;
                            let n = tx
                                .execute(
                                    &delete.text,
                                    params_from_iter(delete.params.iter().map(to_sql)),
                                )
                                .map_err(db_err)?;
                            tx.commit().map_err(db_err)?;
                            Ok(n)
                        })
                        .await?;
                    deleted += n as u64;
                    if n < sql::PURGE_BATCH {
                        break;
                    }
                }
                report.push(statements[i].0.clone(), deleted);
            }
            Ok(report)
        })
    }

    fn distinct<'a>(
        &'a self,
        field: DistinctField,
        scope: &'a TenantScope,
        limit: usize,
    ) -> StoreFuture<'a, Vec<String>> {
        let column = match field {
            DistinctField::EventType => "event_type",
            _ => "target_type",
        };
        let mut sql = Sql::new(
            Dialect::Sqlite,
            &format!("SELECT DISTINCT {column} FROM audit_events WHERE {column} IS NOT NULL"),
        );
        sql.scope(scope);
        sql.push(&format!(" ORDER BY 1 LIMIT {limit}"));
        Box::pin(self.read(move |c| {
            let mut stmt = c.prepare_cached(&sql.text).map_err(db_err)?;
            let rows = stmt
                .query_map(params_from_iter(sql.params.iter().map(to_sql)), |r| {
                    r.get::<_, String>(0)
                })
                .map_err(db_err)?;
            rows.map(|r| r.map_err(db_err)).collect()
        }))
    }
}

use crate::spec::params::SpecError;

/// What a `sqlite:` spec says (see [`crate::spec`]).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteSpec {
    /// The database file's path.
    pub path: String,
}

crate::spec::params::opaque_debug!(SqliteSpec);

impl SqliteSpec {
    pub(crate) fn parse(_scheme: &str, rest: &str) -> Result<SqliteSpec, SpecError> {
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.is_empty() {
            return Err(SpecError::new(
                "sqlite: needs a path, e.g. sqlite:./audit.db",
            ));
        }
        Ok(SqliteSpec {
            path: path.to_owned(),
        })
    }

    pub(crate) async fn build(self) -> Result<audit_core::store::StoreSink, SpecError> {
        SqliteStore::open(&self.path)
            .map(|s| audit_core::store::StoreSink::new(std::sync::Arc::new(s)))
            .map_err(|e| SpecError::new(format!("sqlite: cannot open {}: {e}", self.path)))
    }
}
