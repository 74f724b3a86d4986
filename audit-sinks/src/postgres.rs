//! [`PostgresStore`]: one audit trail shared by many service instances (feature `postgres`).
//!
//! By default it creates or migrates its schema at start, under an advisory lock, so
//! instances starting together do not race. A database run by a DBA separates the two: the
//! tables' owner migrates once ([`PostgresStore::migrate`], or `audit migrate URL` from the
//! `audit` command), and the service connects with [`PostgresOptions::migrate`]`(false)` as a
//! role that may only read and write rows (see [Least privilege](#least-privilege)).
//!
//! # Schema
//!
//! `audit_events` keeps the fields searches filter on as columns and the full event as
//! `text`: its exact canonical line, which the hash chain covers. Nothing here queries inside
//! it, and the server checking it as `json` on the way in cost a fifth of the ingest rate
//! (store bench, 200,000 events, three alternating runs: medians 57 k → 71 k events/s;
//! `jsonb` costs a third); ad-hoc queries cast it (`event::jsonb -> 'actor'`). `ts` is a `timestamptz` (millisecond precision), and the table is partitioned
//! by month of `ts` (partitions `audit_events_YYYY_MM`, in UTC) with a default partition for
//! events outside every month made; its primary key is `(id, ts)`. Connecting, every purge
//! and, once an hour, an append make sure this month's partition and the next two's exist.
//! Attaching a month needs the default partition's lock, which searches wait behind: it is
//! asked for at most 250 ms at a time, and a month whose locks stay busy is left to a later
//! check (the default partition holds its events meanwhile).
//! Text columns use the `C` collation: ids compare bytewise (stable keyset cursors) and
//! `LIKE 'auth.%'` can use the event-type index. Category, severity and result are checked
//! against their closed sets. A table made by schema 1 or 2 (one table, `bigint`
//! milliseconds) is converted when migrating: it becomes the partition of everything before
//! next month, its times converted to `timestamptz`.
//!
//! Batches go in by binary `COPY` straight into the table, a large one as two halves over two
//! connections at once; a batch that meets an id already stored (a retry) goes again through
//! a staging table and one `INSERT … ON CONFLICT DO NOTHING`, so a retried batch never
//! duplicates.
//!
//! A lost connection is re-established on the next call; while the server is unreachable,
//! calls fail with retryable errors and the pipeline keeps the batches and retries.
//!
//! # Retention
//!
//! Purges run on a connection of their own and take an advisory lock (per schema) without
//! waiting: while one instance purges, the others skip their run (an empty report) rather
//! than repeat its work. A month in which every event has expired under whichever rule
//! decides it (its end is before the earliest cutoff of the policy) is dropped whole, after
//! its chained events' tombstones are kept and its events counted per rule. Searches go on
//! while a month's tombstones are kept; the drop then waits for the table's lock at most
//! 250 ms at a time (appends and searches wait behind it only that long), letting the queue
//! through between tries, and gives way to a late event written into the month (the month
//! is then deleted row by row) rather than deadlock with it. What else has
//! expired is deleted at most 10,000 rows a transaction (each batch's tombstones and deletion
//! in one `REPEATABLE READ` snapshot), so appends go on between batches and a purge stopped
//! part-way leaves whole batches done, tombstones included. Events in the default partition
//! (before the first month made, or far in the future) are only ever deleted row by row; the
//! owner can add older months with `SELECT audit.audit_ensure_partitions(first, months)`,
//! which moves their events out of the default partition.
//!
//! # Least privilege
//!
//! What the service's role needs once the schema is in place (here `audit`, the role
//! `audit_app`):
//!
//! [`PostgresStore::grants`] returns these statements for a role, and `audit migrate --grant
//! ROLE URL` runs them after migrating:
//!
//! ```sql
//! GRANT USAGE ON SCHEMA audit TO audit_app;
//! GRANT SELECT, INSERT ON audit.audit_events, audit.audit_tombstones TO audit_app;
//! GRANT SELECT ON audit.audit_schema TO audit_app;
//! -- only for deletions through the API and retention purges:
//! GRANT DELETE ON audit.audit_events TO audit_app;
//! -- the coming months' partitions, and dropping expired ones:
//! GRANT EXECUTE ON FUNCTION audit.audit_ensure_partitions(timestamptz, integer),
//!     audit.audit_drop_partition(text, bigint) TO audit_app;
//! ```
//!
//! The two functions run as their owner (`SECURITY DEFINER`, with a fixed `search_path`);
//! nobody else may run them until granted. `audit_drop_partition` drops only a monthly
//! partition of the schema's `audit_events`, and keeps its tombstones first. A batch that
//! meets ids already stored is staged in a temporary table, so the database's default
//! `TEMPORARY` privilege (granted to every role unless revoked) is used too. Nothing needs
//! `CREATE`, and no role but the owner may alter the tables.
//!
//! ```no_run
//! use std::sync::Arc;
//! use audit_core::store::StoreSink;
//! use audit_core::Auditor;
//! use audit_sinks::PostgresStore;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Arc::new(PostgresStore::connect("postgres://postgres@127.0.0.1:5432/test").await?);
//! let auditor = Auditor::builder().sink(StoreSink::new(store.clone())).build()?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;

use audit_core::integrity::Tombstone;
use audit_core::store::{
    ChainPosition, ChainRow, DistinctField, Page, PurgeReport, Query, RetentionPolicy, SortOrder,
    Store, StoreError, StoreFuture, Summary, TenantScope,
};
use audit_core::sync::LockExt;
use audit_core::{AuditEvent, Category, Timestamp};
use tokio::sync::Mutex;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, IsolationLevel, NoTls};

use crate::sql::{self, COLUMNS, Dialect, INDEXES, Param, Row, Sql, TOMBSTONE_COLUMNS};

/// Settings for [`PostgresStore::connect_with`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// The schema holding the `audit_events` table (created if missing). Default `public`.
    pub schema: String,
    /// The longest any statement of the store may run (`statement_timeout`; default 30 s),
    /// so a stuck query fails and is retried instead of holding the sink.
    pub statement_timeout: std::time::Duration,
    /// The longest a statement waits for a lock (`lock_timeout`; default 10 s): a `LOCK
    /// TABLE` elsewhere turns into a retryable error naming the lock, not a silent wait.
    pub lock_timeout: std::time::Duration,
    /// Create or migrate the schema when connecting (default `true`). Off, the store only
    /// checks that the schema is in place at this crate's version and says how to migrate
    /// when it is not: for a role without `CREATE` or ownership of the tables.
    pub migrate: bool,
    /// How often appends make sure this month's partition and the next two's exist (default
    /// one hour; connecting and every purge check too). A failed check loses nothing: the
    /// default partition takes the events until a later one succeeds.
    pub partition_check: std::time::Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            schema: "public".into(),
            statement_timeout: std::time::Duration::from_secs(30),
            lock_timeout: std::time::Duration::from_secs(10),
            migrate: true,
            partition_check: PARTITION_CHECK,
        }
    }
}

impl PostgresOptions {
    /// Uses `schema` (lowercase letters, digits, `_`).
    #[must_use]
    pub fn schema(mut self, schema: impl Into<String>) -> PostgresOptions {
        self.schema = schema.into();
        self
    }

    /// Whether connecting creates or migrates the schema (default `true`); see
    /// [`migrate`](Self::migrate) the field.
    #[must_use]
    pub fn migrate(mut self, on: bool) -> PostgresOptions {
        self.migrate = on;
        self
    }

    /// Sets how often appends check the coming months' partitions (at least 1 ms); see
    /// [`partition_check`](Self::partition_check) the field.
    #[must_use]
    pub fn partition_check(mut self, every: std::time::Duration) -> PostgresOptions {
        self.partition_check = every.max(std::time::Duration::from_millis(1));
        self
    }

    /// Sets the statement and lock timeouts (at least 1 ms each).
    #[must_use]
    pub fn timeouts(
        mut self,
        statement: std::time::Duration,
        lock: std::time::Duration,
    ) -> PostgresOptions {
        self.statement_timeout = statement.max(std::time::Duration::from_millis(1));
        self.lock_timeout = lock.max(std::time::Duration::from_millis(1));
        self
    }
}

/// A PostgreSQL event store. Cheap to share as `Arc<PostgresStore>`.
pub struct PostgresStore {
    url: String,
    schema: String,
    timeouts: Timeouts,
    /// The writer connections: the first for everything written, the second for the other
    /// half of a large batch.
    writers: [Mutex<Option<Client>>; 2],
    reader: Mutex<Option<Arc<Client>>>,
    /// How often appends make sure the coming months' partitions exist.
    partition_check: std::time::Duration,
    /// When appends next do.
    next_partitions: std::sync::Mutex<std::time::Instant>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: never shown.
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

fn pg_err(e: &tokio_postgres::Error) -> StoreError {
    // Server-side errors about the data or schema cannot be fixed by retrying; lost
    // connections, resource shortages, timeouts (57014), locks held elsewhere (55P03) and
    // transaction conflicts (40001, 40P01) can.
    let retryable = match e.code() {
        None => true,
        Some(code) => {
            let c = code.code();
            c.starts_with("08")
                || c.starts_with("53")
                || c.starts_with("57")
                || matches!(c, "40001" | "40P01" | "55P03")
        }
    };
    // The server's SQLSTATE and primary message (never its detail, which can quote a row),
    // or the chain of causes down to the OS error; never the connection string.
    let message = match e.as_db_error() {
        Some(db) => format!(
            "postgres: {} {}: {}",
            db.severity(),
            db.code().code(),
            db.message()
        ),
        None => {
            let mut m = format!("postgres: {e}");
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                m.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            m
        }
    };
    if retryable {
        StoreError::unavailable(message)
    } else {
        StoreError::fatal(message)
    }
}

/// A session's timeouts, as `SET` statements.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    statement: std::time::Duration,
    lock: std::time::Duration,
}

impl Timeouts {
    fn of(options: &PostgresOptions) -> Timeouts {
        Timeouts {
            statement: options.statement_timeout,
            lock: options.lock_timeout,
        }
    }
}

async fn open(url: &str, timeouts: Timeouts) -> Result<Client, StoreError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| pg_err(&e))?;
    tokio::spawn(async move {
        // The connection ends when the client is dropped or the server goes away; the next
        // call notices `is_closed` and reconnects.
        let _ = connection.await;
    });
    client
        .batch_execute(&format!(
            "SET statement_timeout = {}; SET lock_timeout = {};",
            timeouts.statement.as_millis(),
            timeouts.lock.as_millis()
        ))
        .await
        .map_err(|e| pg_err(&e))?;
    Ok(client)
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user[:password]@host:port/db`) and prepares the schema
    /// in `public`.
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        PostgresStore::connect_with(url, PostgresOptions::default()).await
    }

    /// Connects with options.
    pub async fn connect_with(
        url: &str,
        options: PostgresOptions,
    ) -> Result<PostgresStore, StoreError> {
        if !sql::valid_identifier(&options.schema) {
            return Err(StoreError::fatal(format!(
                "postgres schema name {:?} must be lowercase letters, digits and _",
                options.schema
            )));
        }
        let timeouts = Timeouts::of(&options);
        let client = open(url, timeouts).await?;
        let store = PostgresStore {
            url: url.to_owned(),
            schema: options.schema,
            timeouts,
            writers: [Mutex::new(None), Mutex::new(None)],
            reader: Mutex::new(None),
            partition_check: options.partition_check,
            next_partitions: std::sync::Mutex::new(
                std::time::Instant::now() + options.partition_check,
            ),
        };
        if options.migrate {
            store.run_migrations(&client).await?;
        } else {
            store.check_schema(&client).await?;
            store.ensure_partitions(&client).await?;
        }
        *store.writers[0].lock().await = Some(client);
        Ok(store)
    }

    /// The statements that give `role` exactly what a service connecting with
    /// [`PostgresOptions::migrate`]`(false)` needs in `schema` (the list under [Least
    /// privilege](#least-privilege)), to run as the tables' owner after migrating. The role
    /// is quoted as an identifier; the schema must be lowercase letters, digits and `_`.
    pub fn grants(schema: &str, role: &str) -> Result<String, StoreError> {
        if !sql::valid_identifier(schema) {
            return Err(StoreError::fatal(format!(
                "postgres schema name {schema:?} must be lowercase letters, digits and _"
            )));
        }
        let r = format!("\"{}\"", role.replace('"', "\"\""));
        let s = schema;
        Ok(format!(
            "GRANT USAGE ON SCHEMA {s} TO {r};\n\
             GRANT SELECT, INSERT ON {s}.audit_events, {s}.audit_tombstones TO {r};\n\
             GRANT SELECT ON {s}.audit_schema TO {r};\n\
             GRANT DELETE ON {s}.audit_events TO {r};\n\
             GRANT EXECUTE ON FUNCTION {s}.audit_ensure_partitions(timestamptz, integer), \
             {s}.audit_drop_partition(text, bigint) TO {r};\n"
        ))
    }

    /// Runs [`grants`](Self::grants) for `role` in `options.schema`, connected to `url` as
    /// the tables' owner (after [`migrate`](Self::migrate)).
    pub async fn grant(url: &str, options: &PostgresOptions, role: &str) -> Result<(), StoreError> {
        let sql = PostgresStore::grants(&options.schema, role)?;
        let client = open(url, Timeouts::of(options)).await?;
        client
            .batch_execute(&format!("BEGIN; {sql} COMMIT;"))
            .await
            .map_err(|e| pg_err(&e))
    }

    /// Creates or migrates the schema and returns its version, as the tables' owner would
    /// before services connect with [`PostgresOptions::migrate`]`(false)`. Safe to run again
    /// and from several places at once.
    pub async fn migrate(url: &str, options: PostgresOptions) -> Result<i64, StoreError> {
        let store = PostgresStore::connect_with(url, options.migrate(true)).await?;
        let client = store.reader().await?;
        store
            .version(&client)
            .await
            .map_err(|e| pg_err(&e))?
            .ok_or_else(|| {
                StoreError::fatal("postgres: the audit schema has no version after migrating")
            })
    }

    /// The schema version recorded in the database, `None` when it records none.
    async fn version(&self, client: &Client) -> Result<Option<i64>, tokio_postgres::Error> {
        let row = client
            .query_one(
                &format!("SELECT max(version) FROM {}.audit_schema", self.schema),
                &[],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Without migrating: the schema must be in place at this crate's version.
    async fn check_schema(&self, client: &Client) -> Result<(), StoreError> {
        let how = "run `audit migrate <url>` (or PostgresStore::migrate) as the tables' owner";
        let version = match self.version(client).await {
            Ok(v) => v,
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
                return Err(StoreError::fatal(format!(
                    "postgres: the audit schema is not in place in schema {:?}; {how}",
                    self.schema
                )));
            }
            Err(e) => return Err(pg_err(&e)),
        };
        match version {
            Some(v) if v == SCHEMA_VERSION => Ok(()),
            Some(v) if v > SCHEMA_VERSION => Err(StoreError::fatal(format!(
                "the database has audit schema version {v}; this version of audit-sinks \
                 understands up to {SCHEMA_VERSION}"
            ))),
            v => Err(StoreError::fatal(format!(
                "postgres: the audit schema is at version {}, this version of audit-sinks \
                 needs {SCHEMA_VERSION}; {how}",
                v.unwrap_or(0)
            ))),
        }
    }

    async fn run_migrations(&self, client: &Client) -> Result<(), StoreError> {
        client
            .batch_execute("BEGIN; SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0;")
            .await
            .map_err(|e| pg_err(&e))?;
        match self.migrate_in_transaction(client).await {
            Ok(()) => client
                .batch_execute("COMMIT")
                .await
                .map_err(|e| pg_err(&e))?,
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(e);
            }
        }
        self.ensure_partitions(client).await
    }

    /// The migration's steps, inside the transaction `run_migrations` opened.
    async fn migrate_in_transaction(&self, client: &Client) -> Result<(), StoreError> {
        let err = |e: tokio_postgres::Error| pg_err(&e);
        let s = &self.schema;
        client
            .batch_execute(&format!(
                "SELECT pg_advisory_xact_lock(7242917035);
                 CREATE SCHEMA IF NOT EXISTS {s};
                 CREATE TABLE IF NOT EXISTS {s}.audit_schema (version bigint PRIMARY KEY);
                 CREATE TABLE IF NOT EXISTS {s}.audit_tombstones (
                    id text COLLATE \"C\" PRIMARY KEY,
                    stream text COLLATE \"C\" NOT NULL,
                    seq bigint NOT NULL,
                    prev_hash text NOT NULL,
                    hash text NOT NULL,
                    deleted_at bigint NOT NULL,
                    deleted_by text NOT NULL,
                    reason text NOT NULL
                 );"
            ))
            .await
            .map_err(err)?;
        let version = self.version(client).await.map_err(err)?;
        if let Some(v) = version.filter(|v| *v > SCHEMA_VERSION) {
            return Err(StoreError::fatal(format!(
                "the database has audit schema version {v}; this version of audit-sinks \
                 understands up to {SCHEMA_VERSION}"
            )));
        }
        let kind: Option<i8> = client
            .query_opt(
                "SELECT c.relkind::\"char\" FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = 'audit_events'",
                &[&s.as_str()],
            )
            .await
            .map_err(err)?
            .map(|r| r.get(0));
        let indexes = INDEXES
            .iter()
            .map(|(name, cols)| {
                format!("CREATE INDEX IF NOT EXISTS {name} ON {s}.audit_events ({cols});")
            })
            .collect::<String>();
        let functions = partition_functions(s);
        let constraints = constraints(s);
        let ddl = match kind.map(|k| k as u8) {
            // A new schema: the partitioned table.
            None => format!(
                "CREATE TABLE {s}.audit_events (
                    id text COLLATE \"C\" NOT NULL,
                    ts timestamptz NOT NULL,
                    event_type text COLLATE \"C\" NOT NULL,
                    category text COLLATE \"C\" NOT NULL,
                    severity text COLLATE \"C\" NOT NULL,
                    result text COLLATE \"C\",
                    tenant text COLLATE \"C\",
                    actor_id text COLLATE \"C\",
                    actor_email text COLLATE \"C\",
                    client_id text COLLATE \"C\",
                    target_type text COLLATE \"C\",
                    target_id text COLLATE \"C\",
                    request_id text COLLATE \"C\",
                    description text,
                    event text NOT NULL,
                    stream text COLLATE \"C\",
                    seq bigint,
                    prev_hash text,
                    hash text,
                    PRIMARY KEY (id, ts)
                 ) PARTITION BY RANGE (ts);
                 CREATE TABLE {s}.audit_events_default PARTITION OF {s}.audit_events DEFAULT;
                 {constraints}
                 {indexes}"
            ),
            // Schemas 1 and 2: one table, times in Unix milliseconds. Schema 1 lacks the
            // chain columns (filled from each event's own text); the table becomes the
            // partition of everything before next month, converted to `timestamptz`.
            Some(b'r') => {
                let chain_columns = sql::CHAIN_COLUMNS
                    .iter()
                    .map(|(name, _, ty)| {
                        format!(
                            "ALTER TABLE {s}.audit_events ADD COLUMN IF NOT EXISTS {name} {ty};"
                        )
                    })
                    .collect::<String>();
                let old_indexes = INDEXES
                    .iter()
                    .map(|(name, _)| format!("DROP INDEX IF EXISTS {s}.{name};"))
                    .collect::<String>();
                format!(
                    "{chain_columns}
                     UPDATE {s}.audit_events SET
                        stream = event->'integrity'->>'stream',
                        seq = (event->'integrity'->>'seq')::bigint,
                        prev_hash = event->'integrity'->>'prevHash',
                        hash = event->'integrity'->>'hash'
                      WHERE stream IS NULL AND event->'integrity' IS NOT NULL;
                     {constraints}
                     {old_indexes}
                     ALTER TABLE {s}.audit_events DROP CONSTRAINT IF EXISTS audit_events_pkey;
                     ALTER TABLE {s}.audit_events ALTER COLUMN id SET NOT NULL;
                     ALTER TABLE {s}.audit_events
                        ALTER COLUMN ts TYPE timestamptz
                            USING timestamptz 'epoch' + ts * interval '1 millisecond',
                        ALTER COLUMN event TYPE text;
                     ALTER TABLE {s}.audit_events RENAME TO audit_events_before_partitioning;
                     CREATE TABLE {s}.audit_events (
                        LIKE {s}.audit_events_before_partitioning
                            INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
                        PRIMARY KEY (id, ts)
                     ) PARTITION BY RANGE (ts);
                     CREATE TABLE {s}.audit_events_default PARTITION OF {s}.audit_events DEFAULT;
                     DO $$
                     DECLARE
                       bound timestamptz;
                     BEGIN
                       SELECT greatest(date_trunc('month', now() AT TIME ZONE 'UTC'),
                                       date_trunc('month', max(ts) AT TIME ZONE 'UTC'))
                              AT TIME ZONE 'UTC'
                         INTO bound FROM {s}.audit_events_before_partitioning;
                       bound := ((bound AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
                       EXECUTE format('ALTER TABLE {s}.audit_events ATTACH PARTITION
                                         {s}.audit_events_before_partitioning
                                         FOR VALUES FROM (MINVALUE) TO (%L)', bound);
                     END $$;
                     {indexes}"
                )
            }
            // Schema 3: in place; anything missing is added.
            _ => format!("{constraints} {indexes}"),
        };
        client
            .batch_execute(&format!(
                "{ddl}
                 {functions}
                 INSERT INTO {s}.audit_schema (version)
                    SELECT {SCHEMA_VERSION} WHERE NOT EXISTS (SELECT 1 FROM {s}.audit_schema);
                 UPDATE {s}.audit_schema SET version = {SCHEMA_VERSION};"
            ))
            .await
            .map_err(err)?;
        Ok(())
    }

    /// Creates the monthly partitions from this month to [`PARTITIONS_AHEAD`] months on,
    /// where missing (the definer function moves any of their rows out of the default
    /// partition first).
    async fn ensure_partitions(&self, client: &Client) -> Result<(), StoreError> {
        client
            .execute(
                &format!(
                    "SELECT {}.audit_ensure_partitions(now(), {PARTITIONS_AHEAD})",
                    self.schema
                ),
                &[],
            )
            .await
            .map_err(|e| {
                let denied =
                    e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE);
                let e = pg_err(&e);
                if denied {
                    StoreError::fatal(format!(
                        "{e}; the tables' owner grants it: audit migrate --grant <role> \
                         (GRANT EXECUTE ON FUNCTION \
                         {}.audit_ensure_partitions(timestamptz, integer) TO <role>)",
                        self.schema
                    ))
                } else {
                    e
                }
            })?;
        Ok(())
    }

    /// A connection for reads, shared by concurrent searches (tokio-postgres pipelines them).
    async fn reader(&self) -> Result<Arc<Client>, StoreError> {
        let mut guard = self.reader.lock().await;
        if let Some(c) = guard.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let c = Arc::new(open(&self.url, self.timeouts).await?);
        *guard = Some(c.clone());
        Ok(c)
    }

    /// Runs `f` with the first writer connection, reconnecting first if it was lost.
    async fn with_writer<T>(
        &self,
        f: impl AsyncFnOnce(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_writer_at(0, f).await
    }

    /// Runs `f` with writer connection `i`, connecting first if it has none or lost it; a
    /// connection that saw an error is not used again.
    async fn with_writer_at<T>(
        &self,
        i: usize,
        f: impl AsyncFnOnce(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut guard = self.writers[i % 2].lock().await;
        if guard.as_ref().is_none_or(Client::is_closed) {
            *guard = None;
            *guard = Some(open(&self.url, self.timeouts).await?);
        }
        let Some(client) = guard.as_mut() else {
            return Err(StoreError::unavailable("postgres: no connection"));
        };
        let result = f(client).await;
        if result.is_err() {
            // A statement that failed mid-protocol (a COPY refused by a lock timeout, say)
            // can leave the connection closing under us; the next call starts afresh.
            *guard = None;
        }
        result
    }

    /// Drops every monthly partition whose whole month is past the earliest cutoff of
    /// `policy` (each event in it expired under whichever rule decides it), and returns the
    /// events dropped per rule (the default last), counted in the same transaction. A month
    /// is left to the batched deletes when it took an event between the count and the drop,
    /// when its drop gave way to a late event being written into it, or when the drop could
    /// not get its lock in time.
    async fn drop_expired_partitions(
        &self,
        c: &mut Client,
        policy: &RetentionPolicy,
        now: Timestamp,
    ) -> Result<Vec<u64>, StoreError> {
        let err = |e: tokio_postgres::Error| pg_err(&e);
        let mut counts = vec![0_u64; policy.rules.len() + 1];
        // With events kept forever by default, no month is ever wholly expired.
        let Some(default) = policy.default_cutoff(now) else {
            return Ok(counts);
        };
        let horizon = policy
            .rules
            .iter()
            .map(|r| r.cutoff(now).unix_millis())
            .fold(default.unix_millis(), i64::min);
        let s = &self.schema;
        let parts = c
            .query(
                &format!(
                    "WITH p AS (
                       SELECT c.relname::text AS name, substr(c.relname, 14, 4)::int AS y,
                              substr(c.relname, 19, 2)::int AS m
                         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                        WHERE i.inhparent = '{s}.audit_events'::regclass
                          AND c.relname ~ '^audit_events_[0-9]{{4}}_[0-9]{{2}}$')
                     SELECT name,
                       (extract(epoch FROM make_timestamptz(y, m, 1, 0, 0, 0, 'UTC')) * 1000)::bigint,
                       (extract(epoch FROM make_timestamptz(y + m / 12, m % 12 + 1, 1, 0, 0, 0,
                                                            'UTC')) * 1000)::bigint
                     FROM p ORDER BY 2"
                ),
                &[],
            )
            .await
            .map_err(err)?;
        for part in parts {
            let (name, lo, hi): (String, i64, i64) = (part.get(0), part.get(1), part.get(2));
            if hi > horizon {
                break;
            }
            match self.drop_partition(c, policy, &name, (lo, hi), now).await {
                Ok(Some(counted)) => {
                    for (i, n) in counted {
                        if let Some(slot) = counts.get_mut(i) {
                            *slot += n;
                        }
                    }
                }
                Ok(None) => {}
                // The drop could not get its lock in time, or gave way to a late event being
                // written into the month (55P03), or, should one still arise, lost a
                // deadlock (40P01): the month is left to the batched deletes.
                Err(e)
                    if e.code()
                        .is_some_and(|c| matches!(c.code(), "40P01" | "55P03")) => {}
                Err(e) => return Err(err(e)),
            }
        }
        Ok(counts)
    }

    /// Drops the monthly partition `name`, covering `[lo, hi)`, and returns its events
    /// counted per rule, or `None` (nothing changed) when the count and the drop disagree:
    /// an event came in between them, and the month is left to the batched deletes.
    async fn drop_partition(
        &self,
        c: &mut Client,
        policy: &RetentionPolicy,
        name: &str,
        (lo, hi): (i64, i64),
        now: Timestamp,
    ) -> Result<Option<Vec<(usize, u64)>>, tokio_postgres::Error> {
        let tx = c.transaction().await?;
        // Counting a month may take longer than a statement is otherwise allowed.
        tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
        let by_rule = sql::rule_counts_sql(Dialect::Postgres, policy, &self.table(), lo, hi);
        let p = params(&by_rule);
        let rows = tx.query(&by_rule.text, &refs(&p)).await?;
        let held: i64 = tx
            .query_one(
                &format!("SELECT {}.audit_drop_partition($1, $2)", self.schema),
                &[&name, &now.unix_millis()],
            )
            .await?
            .get(0);
        let counted: Vec<(usize, u64)> = rows
            .iter()
            .map(|r| {
                let i = usize::try_from(r.get::<_, i32>(0)).unwrap_or(0);
                (i, u64::try_from(r.get::<_, i64>(1)).unwrap_or(0))
            })
            .collect();
        if counted.iter().map(|(_, n)| *n).sum::<u64>() != u64::try_from(held).unwrap_or(0) {
            tx.rollback().await?;
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(counted))
    }

    fn table(&self) -> String {
        format!("{}.audit_events", self.schema)
    }

    fn tombstone_table(&self) -> String {
        format!("{}.audit_tombstones", self.schema)
    }
}

/// Constraints a DBA expects, added where missing (tables made before they existed get them
/// too): a primary key on the schema-version table, and the closed sets of category,
/// severity and result as checks.
fn constraints(s: &str) -> String {
    let set = |values: &[&str]| {
        values
            .iter()
            .map(|v| format!("'{v}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let categories = set(&Category::ALL.map(Category::as_str));
    let severities = set(&audit_core::Severity::ALL.map(audit_core::Severity::as_str));
    let outcomes = set(&audit_core::Outcome::ALL.map(audit_core::Outcome::as_str));
    let checks = [
        (
            "audit_events_category_check",
            format!("category IN ({categories})"),
        ),
        (
            "audit_events_severity_check",
            format!("severity IN ({severities})"),
        ),
        (
            "audit_events_result_check",
            format!("result IS NULL OR result IN ({outcomes})"),
        ),
    ];
    let mut out = format!(
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT 1 FROM pg_constraint
                           WHERE conrelid = '{s}.audit_schema'::regclass AND contype = 'p') THEN
             ALTER TABLE {s}.audit_schema ADD PRIMARY KEY (version);
           END IF;
         END $$;"
    );
    for (name, check) in checks {
        out.push_str(&format!(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM pg_constraint
                               WHERE conrelid = '{s}.audit_events'::regclass
                                 AND conname = '{name}') THEN
                 ALTER TABLE {s}.audit_events ADD CONSTRAINT {name} CHECK ({check});
               END IF;
             END $$;"
        ));
    }
    out
}

/// Monthly partitions made ahead: this month and the next two.
const PARTITIONS_AHEAD: i32 = 3;

/// A batch of at least this many events goes in as two halves over two connections at
/// once, each its own transaction: the server works on a COPY with one process on one core,
/// and two use two. With the store bench (200,000 events, `AUDIT_BENCH_ONLY=postgres`, three
/// alternating runs each) the median ingest went from 64 k to 80 k events/s. A half that
/// fails is safe to retry whole: the batch comes again and what the other half stored is
/// skipped (ids already stored).
const SPLIT_AT: usize = 2_000;

/// How often appends make sure the coming months' partitions exist by default.
const PARTITION_CHECK: std::time::Duration = std::time::Duration::from_secs(3600);

/// The advisory lock partition maintenance takes (waiting).
const PARTITION_LOCK: i64 = 7_242_917_037;

/// The schema version this code writes: 3 made `ts` a `timestamptz`, the event `text` and
/// the table partitioned by month.
const SCHEMA_VERSION: i64 = 3;

/// The two functions through which a role without ownership of the tables maintains
/// partitions. Both run as their owner (`SECURITY DEFINER`, a fixed `search_path`) and are
/// not executable by `PUBLIC`; the owner grants `EXECUTE` to the service's role.
///
/// - `audit_ensure_partitions(first, months)` creates the partitions of `months` months from
///   `first`'s, moving any of their rows out of the default partition; a month already
///   covered (by the partition of the rows from before partitioning) is skipped, and so is
///   one whose locks it could not get in [`LOCK_ATTEMPTS`] tries of [`LOCK_WAIT_MS`]. It
///   returns how many it made.
/// - `audit_drop_partition(name, deleted_at)` drops one monthly partition, after keeping a
///   tombstone of each chained event in it; it returns how many events it held. It waits
///   for a lock [`LOCK_WAIT_MS`] at a time, and gives way (SQLSTATE 55P03) after
///   [`LOCK_ATTEMPTS`] tries or to a writer waiting for the month.
fn partition_functions(s: &str) -> String {
    let attach = patiently(
        "",
        &format!(
            "EXECUTE format('ALTER TABLE %I.audit_events ATTACH PARTITION %I.%I
                FOR VALUES FROM (%L) TO (%L)', '{s}', '{s}', part, lo, hi);"
        ),
    );
    let lock_parent = patiently(
        "IF EXISTS (SELECT 1 FROM pg_locks WHERE relation = rel AND NOT granted) THEN
           RAISE EXCEPTION 'the month % is being written to', part USING ERRCODE = '55P03';
         END IF;",
        &format!("EXECUTE format('LOCK TABLE %I.audit_events IN ACCESS EXCLUSIVE MODE', '{s}');"),
    );
    format!(
        "CREATE OR REPLACE FUNCTION {s}.audit_ensure_partitions(first timestamptz, months integer)
         RETURNS integer LANGUAGE plpgsql SECURITY DEFINER
         SET search_path = pg_catalog, pg_temp SET timezone = 'UTC'
         SET lock_timeout = '{LOCK_WAIT_MS}ms' AS $f$
         DECLARE
           lo timestamptz;
           hi timestamptz;
           part text;
           made integer := 0;
         BEGIN
           -- Another session making months is waited for, however long it takes.
           PERFORM set_config('lock_timeout', '0', true);
           PERFORM pg_advisory_xact_lock({PARTITION_LOCK});
           PERFORM set_config('lock_timeout', '{LOCK_WAIT_MS}ms', true);
           FOR i IN 0 .. months - 1 LOOP
             lo := date_trunc('month', first) + make_interval(months => i);
             hi := lo + interval '1 month';
             part := 'audit_events_' || to_char(lo, 'YYYY_MM');
             CONTINUE WHEN to_regclass(format('%I.%I', '{s}', part)) IS NOT NULL;
             BEGIN
               EXECUTE format('CREATE TABLE %I.%I (LIKE %I.audit_events
                                 INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', '{s}', part, '{s}');
               EXECUTE format('WITH moved AS (DELETE FROM %I.audit_events_default
                                 WHERE ts >= $1 AND ts < $2 RETURNING *)
                               INSERT INTO %I.%I SELECT * FROM moved', '{s}', '{s}', part)
                 USING lo, hi;
               -- Attaching takes the default partition's ACCESS EXCLUSIVE lock, which every
               -- search waits behind: asked for briefly, the queue let through between tries.
               {attach}
               made := made + 1;
             EXCEPTION
               -- An existing partition covers the month.
               WHEN invalid_object_definition THEN NULL;
               -- The table stayed busy: the month is made by a later check.
               WHEN lock_not_available THEN NULL;
             END;
           END LOOP;
           RETURN made;
         END $f$;
         REVOKE ALL ON FUNCTION {s}.audit_ensure_partitions(timestamptz, integer) FROM PUBLIC;
         CREATE OR REPLACE FUNCTION {s}.audit_drop_partition(part text, deleted_at bigint)
         RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
         SET search_path = pg_catalog, pg_temp SET lock_timeout = '{LOCK_WAIT_MS}ms' AS $f$
         DECLARE
           n bigint;
           rel oid;
         BEGIN
           IF part !~ '^audit_events_[0-9]{{4}}_[0-9]{{2}}$' OR NOT EXISTS (
                SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = '{s}.audit_events'::regclass AND c.relname = part) THEN
             RAISE EXCEPTION 'not a monthly partition of {s}.audit_events: %', part
               USING ERRCODE = '22023';
           END IF;
           rel := format('%I.%I', '{s}', part)::regclass;
           -- SHARE stops writes into the month and lets searches go on.
           EXECUTE format('LOCK TABLE %I.%I IN SHARE MODE', '{s}', part);
           EXECUTE format('INSERT INTO %I.audit_tombstones ({TOMBSTONE_COLUMNS})
                             SELECT id, stream, seq, prev_hash, hash, $1, ''retention'',
                                    ''retention''
                             FROM %I.%I WHERE hash IS NOT NULL ON CONFLICT (id) DO NOTHING',
                          '{s}', '{s}', part) USING deleted_at;
           EXECUTE format('SELECT count(*) FROM %I.%I', '{s}', part) INTO n;
           -- Dropping a partition needs the parent table's ACCESS EXCLUSIVE lock, and
           -- while it waits for statements in flight every new one waits behind it. So it
           -- waits briefly, then lets the queue through and tries again. A writer waiting
           -- for the month (a late event for it) holds the parent's lock: the drop gives
           -- way at once rather than deadlock with it.
           {lock_parent}
           EXECUTE format('DROP TABLE %I.%I', '{s}', part);
           RETURN n;
         END $f$;
         REVOKE ALL ON FUNCTION {s}.audit_drop_partition(text, bigint) FROM PUBLIC;"
    )
}

/// PL/pgSQL that runs `statement` (which waits for a lock under the function's
/// `lock_timeout` of [`LOCK_WAIT_MS`]) up to [`LOCK_ATTEMPTS`] times, sleeping as long
/// between tries so the statements queued behind it go through, and re-raises the last
/// `lock_not_available`. `first` runs before each try.
fn patiently(first: &str, statement: &str) -> String {
    format!(
        "FOR attempt IN 1 .. {LOCK_ATTEMPTS} LOOP
           {first}
           BEGIN
             {statement}
             EXIT;
           EXCEPTION WHEN lock_not_available THEN
             IF attempt = {LOCK_ATTEMPTS} THEN
               RAISE;
             END IF;
             PERFORM pg_sleep({LOCK_WAIT_MS} / 1000.0);
           END;
         END LOOP;"
    )
}

/// How long partition maintenance waits for a lock at a time. Dropping a month needs the
/// parent table's `ACCESS EXCLUSIVE` lock and attaching one the default partition's; every
/// statement reaching that table waits behind such a request, so this bounds the stall.
const LOCK_WAIT_MS: u32 = 250;

/// How often partition maintenance asks for such a lock, letting the queue through between
/// tries, before it leaves the work to later (a month to drop to the batched deletes, a
/// month to make to the next check).
const LOCK_ATTEMPTS: u32 = 8;

/// The advisory lock retention purges take without waiting, as `(RETENTION_LOCK,
/// hashtext(schema))`: one purge per schema at a time.
const RETENTION_LOCK: i32 = 724_291_703;

/// Appends `rows`, skipping ids already stored, and returns how many were new.
///
/// The common case has no id stored yet (a retried batch is the exception): its rows go by
/// binary `COPY` straight into the table. When that meets an id already there (SQLSTATE
/// 23505), the transaction is rolled back and the batch goes through a temporary staging
/// table and one `INSERT … ON CONFLICT (id) DO NOTHING`, which skips what is stored. The
/// direct path writes each row once instead of twice: with the store bench (200,000 events,
/// `AUDIT_BENCH_ONLY=postgres`, six alternating runs each) the median ingest went from 56 k
/// to 62 k events/s.
async fn copy_in(c: &mut Client, table: &str, rows: &[Row]) -> Result<u64, StoreError> {
    let err = |e: tokio_postgres::Error| pg_err(&e);
    let tx = c.transaction().await.map_err(err)?;
    match copy_rows(&tx, table, rows).await {
        Ok(n) => {
            tx.commit().await.map_err(err)?;
            return Ok(n);
        }
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
            tx.rollback().await.map_err(err)?;
        }
        Err(e) => return Err(err(e)),
    }
    let tx = c.transaction().await.map_err(err)?;
    tx.batch_execute(
        "CREATE TEMP TABLE IF NOT EXISTS audit_stage (
            id text, ts timestamptz, event_type text, category text, severity text, result text,
            tenant text, actor_id text, actor_email text, client_id text, target_type text,
            target_id text, request_id text, description text, event text,
            stream text, seq bigint, prev_hash text, hash text
         ) ON COMMIT DELETE ROWS",
    )
    .await
    .map_err(err)?;
    copy_rows(&tx, "audit_stage", rows).await.map_err(err)?;
    let inserted = tx
        .execute(
            &format!(
                "INSERT INTO {table} ({COLUMNS}) SELECT {COLUMNS} FROM audit_stage \
                 ON CONFLICT (id, ts) DO NOTHING"
            ),
            &[],
        )
        .await
        .map_err(err)?;
    tx.commit().await.map_err(err)?;
    Ok(inserted)
}

/// Binary `COPY` of `rows` into `table`; returns the rows copied.
async fn copy_rows(
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
    rows: &[Row],
) -> Result<u64, tokio_postgres::Error> {
    let sink = tx
        .copy_in(&format!("COPY {table} ({COLUMNS}) FROM STDIN BINARY"))
        .await?;
    let mut types = vec![Type::TEXT; 19];
    types[1] = Type::TIMESTAMPTZ;
    types[16] = Type::INT8;
    let writer = BinaryCopyInWriter::new(sink, &types);
    let mut writer = std::pin::pin!(writer);
    for r in rows {
        writer
            .as_mut()
            .write(&[
                &r.id,
                &system_time(r.ts),
                &r.event_type,
                &r.category,
                &r.severity,
                &r.result,
                &r.tenant,
                &r.actor_id,
                &r.actor_email,
                &r.client_id,
                &r.target_type,
                &r.target_id,
                &r.request_id,
                &r.description,
                &r.json,
                &r.stream,
                &r.seq,
                &r.prev_hash,
                &r.hash,
            ])
            .await?;
    }
    writer.finish().await
}

fn params(sql: &Sql) -> Vec<Box<dyn ToSql + Sync + Send>> {
    sql.params
        .iter()
        .map(|p| -> Box<dyn ToSql + Sync + Send> {
            match p {
                Param::Text(s) => Box::new(s.clone()),
                Param::Int(i) => Box::new(*i),
                Param::Time(ms) => Box::new(system_time(*ms)),
            }
        })
        .collect()
}

/// Unix milliseconds as the `SystemTime` tokio-postgres writes as a `timestamptz`.
fn system_time(ms: i64) -> std::time::SystemTime {
    let offset = std::time::Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        std::time::UNIX_EPOCH + offset
    } else {
        std::time::UNIX_EPOCH - offset
    }
}

fn refs(p: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    p.iter().map(|b| &**b as &(dyn ToSql + Sync)).collect()
}

fn decode(json: &str) -> Result<AuditEvent, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::fatal(format!("postgres: a stored event is not readable: {e}")))
}

impl Store for PostgresStore {
    fn name(&self) -> &str {
        "postgres"
    }

    fn append<'a>(&'a self, events: &'a [Arc<AuditEvent>]) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let rows = events
                .iter()
                .map(|e| Row::of(e))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StoreError::fatal(format!("cannot encode event: {e}")))?;
            let table = self.table();
            let due = {
                let mut next = self.next_partitions.lock_ignore_poison();
                let now = std::time::Instant::now();
                (now >= *next)
                    .then(|| *next = now + self.partition_check)
                    .is_some()
            };
            if due {
                // A failure here loses nothing (the default partition takes the rows); the
                // next check comes an interval later.
                let _ = self
                    .with_writer(async |c: &mut Client| self.ensure_partitions(c).await)
                    .await;
            }
            if rows.len() < SPLIT_AT {
                return self
                    .with_writer(async |c: &mut Client| copy_in(c, &table, &rows).await)
                    .await;
            }
            let (first, second) = rows.split_at(rows.len() / 2);
            let (a, b) = futures_util::future::join(
                self.with_writer_at(0, async |c: &mut Client| copy_in(c, &table, first).await),
                self.with_writer_at(1, async |c: &mut Client| copy_in(c, &table, second).await),
            )
            .await;
            Ok(a? + b?)
        })
    }

    fn search<'a>(&'a self, q: &'a Query) -> StoreFuture<'a, Page> {
        Box::pin(async move {
            let client = self.reader().await?;
            // Page and summary in one statement, so both see the same snapshot: a count
            // taken after a concurrent insert would otherwise disagree with the page.
            let table = self.table();
            let mut sql = Sql::new(
                Dialect::Postgres,
                &format!(
                    "SELECT event::text, NULL::text, NULL::bigint FROM \
                     (SELECT event, ts, id FROM {table} WHERE 1 = 1"
                ),
            );
            sql.filter(&q.filter);
            sql.page(q);
            sql.push(") page");
            if q.include_summary {
                sql.push(&format!(
                    " UNION ALL SELECT NULL, category, count(*) FROM {table} WHERE 1 = 1"
                ));
                sql.filter(&q.filter);
                sql.push(" GROUP BY category");
            }
            let p = params(&sql);
            let rows = client
                .query(&sql.text, &refs(&p))
                .await
                .map_err(|e| pg_err(&e))?;
            let mut events = Vec::new();
            let mut summary = Summary::default();
            for r in &rows {
                match r.get::<_, Option<&str>>(0) {
                    Some(json) => events.push(decode(json)?),
                    None => {
                        let n: i64 = r.get(2);
                        if let Ok(c) = r.get::<_, &str>(1).parse::<Category>() {
                            summary.add(c, u64::try_from(n).unwrap_or(0));
                        }
                    }
                }
            }
            // UNION ALL does not promise to keep the subquery's order.
            events.sort_by(|a, b| {
                let key = |e: &AuditEvent| (e.timestamp, e.id.to_string());
                match q.order {
                    SortOrder::Asc => key(a).cmp(&key(b)),
                    _ => key(b).cmp(&key(a)),
                }
            });
            let mut page = Page::from_rows(events, q);
            if q.include_summary {
                page.summary = Some(summary);
            }
            Ok(page)
        })
    }

    fn get<'a>(
        &'a self,
        id: &'a str,
        scope: &'a TenantScope,
    ) -> StoreFuture<'a, Option<AuditEvent>> {
        Box::pin(async move {
            let client = self.reader().await?;
            let mut sql = Sql::new(
                Dialect::Postgres,
                &format!("SELECT event::text FROM {} WHERE id = ", self.table()),
            );
            sql.bind(Param::Text(id.to_owned()));
            sql.scope(scope);
            let p = params(&sql);
            let row = client
                .query_opt(&sql.text, &refs(&p))
                .await
                .map_err(|e| pg_err(&e))?;
            row.map(|r| decode(r.get::<_, &str>(0))).transpose()
        })
    }

    fn delete<'a>(
        &'a self,
        id: &'a str,
        scope: &'a TenantScope,
        deleted_by: &'a str,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let (keep, delete) = sql::delete_statements(
                Dialect::Postgres,
                &self.table(),
                &self.tombstone_table(),
                id,
                scope,
                deleted_by,
            );
            let (pk, pd) = (params(&keep), params(&delete));
            let n = self
                .with_writer(async |c: &mut Client| {
                    let err = |e: tokio_postgres::Error| pg_err(&e);
                    let tx = c.transaction().await.map_err(err)?;
                    tx.execute(&keep.text, &refs(&pk)).await.map_err(err)?;
                    let n = tx.execute(&delete.text, &refs(&pd)).await.map_err(err)?;
                    tx.commit().await.map_err(err)?;
                    Ok(n)
                })
                .await?;
            Ok(n > 0)
        })
    }

    fn chain_rows<'a>(
        &'a self,
        after: Option<&'a ChainPosition>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<ChainRow>> {
        Box::pin(async move {
            let client = self.reader().await?;
            let mut sql = sql::chain_rows_sql(Dialect::Postgres, &self.table(), after, limit);
            sql.text = sql.text.replacen(", event FROM", ", event::text FROM", 1);
            let p = params(&sql);
            let rows = client
                .query(&sql.text, &refs(&p))
                .await
                .map_err(|e| pg_err(&e))?;
            Ok(rows
                .iter()
                .map(|r| ChainRow {
                    id: r.get(0),
                    stream: r.get(1),
                    seq: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
                    event_type: r.get(3),
                    tenant: r.get(4),
                    unix_millis: r.get(5),
                    json: r.get(6),
                })
                .collect())
        })
    }

    fn tombstones<'a>(&'a self) -> StoreFuture<'a, Vec<Tombstone>> {
        Box::pin(async move {
            let client = self.reader().await?;
            let rows = client
                .query(
                    &format!(
                        "SELECT {TOMBSTONE_COLUMNS} FROM {} ORDER BY stream, seq",
                        self.tombstone_table()
                    ),
                    &[],
                )
                .await
                .map_err(|e| pg_err(&e))?;
            Ok(rows
                .iter()
                .map(|r| Tombstone {
                    id: r.get(0),
                    stream: r.get(1),
                    seq: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
                    prev_hash: r.get(3),
                    hash: r.get(4),
                    deleted_at: sql::deleted_at(r.get(5)),
                    deleted_by: r.get(6),
                    reason: r.get(7),
                })
                .collect())
        })
    }

    fn purge<'a>(
        &'a self,
        policy: &'a RetentionPolicy,
        now: Timestamp,
    ) -> StoreFuture<'a, PurgeReport> {
        Box::pin(async move {
            let statements = sql::purge_statements(
                Dialect::Postgres,
                policy,
                now,
                &self.table(),
                &self.tombstone_table(),
                sql::PURGE_BATCH,
            );
            let err = |e: tokio_postgres::Error| pg_err(&e);
            let mut report = PurgeReport::default();
            // A connection of its own: appends go on between batches, and the session's
            // advisory lock ends with it, whatever happens.
            let mut c = open(&self.url, self.timeouts).await?;
            // One instance purges at a time; the others skip this run.
            let locked: bool = c
                .query_one(
                    "SELECT pg_try_advisory_lock($1, hashtext($2))",
                    &[&RETENTION_LOCK, &self.schema],
                )
                .await
                .map_err(err)?
                .get(0);
            if !locked {
                return Ok(report);
            }
            self.ensure_partitions(&c).await?;
            let dropped = self.drop_expired_partitions(&mut c, policy, now).await?;
            for (i, (label, keep, delete)) in statements.iter().enumerate() {
                let mut deleted = dropped.get(i).copied().unwrap_or(0);
                loop {
                    // Both statements see one snapshot, so every deleted chained event
                    // has its tombstone.
                    let tx = c
                        .build_transaction()
                        .isolation_level(IsolationLevel::RepeatableRead)
                        .start()
                        .await
                        .map_err(err)?;
                    let p = params(keep);
                    tx.execute(&keep.text, &refs(&p)).await.map_err(err)?;
                    let p = params(delete);
                    let n = tx.execute(&delete.text, &refs(&p)).await.map_err(err)?;
                    tx.commit().await.map_err(err)?;
                    deleted += n;
                    if n < sql::PURGE_BATCH as u64 {
                        break;
                    }
                }
                report.push(label.clone(), deleted);
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
        Box::pin(async move {
            let column = match field {
                DistinctField::EventType => "event_type",
                _ => "target_type",
            };
            let client = self.reader().await?;
            let mut sql = Sql::new(
                Dialect::Postgres,
                &format!(
                    "SELECT DISTINCT {column} FROM {} WHERE {column} IS NOT NULL",
                    self.table()
                ),
            );
            sql.scope(scope);
            sql.push(&format!(" ORDER BY 1 LIMIT {limit}"));
            let p = params(&sql);
            let rows = client
                .query(&sql.text, &refs(&p))
                .await
                .map_err(|e| pg_err(&e))?;
            Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
        })
    }
}

use crate::spec::params::SpecError;

/// What a `postgres://` spec says (see [`crate::spec`]).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostgresSpec {
    /// The connection URL, as written (it may hold a password).
    pub url: String,
}

crate::spec::params::opaque_debug!(PostgresSpec);

impl PostgresSpec {
    pub(crate) fn parse(scheme: &str, rest: &str) -> Result<PostgresSpec, SpecError> {
        Ok(PostgresSpec {
            url: format!("{scheme}:{rest}"),
        })
    }

    pub(crate) async fn build(self) -> Result<audit_core::store::StoreSink, SpecError> {
        PostgresStore::connect(&self.url)
            .await
            .map(|s| audit_core::store::StoreSink::new(std::sync::Arc::new(s)))
            .map_err(|e| SpecError::new(format!("postgres: {e}")))
    }
}
