//! Queryable stores: a [`Store`] is a sink that can also be searched.
//!
//! A store keeps every event it is given (idempotently: appending an id twice keeps one copy,
//! so a retried batch never duplicates) and answers [`Query`]s with keyset pages, summaries,
//! single events, deletions, retention purges and filter values. `audit-sinks` provides SQLite
//! (embedded, the default) and PostgreSQL (one trail for many instances); the audit HTTP API
//! in `audit-tower` serves any `Arc<dyn Store>`.
//!
//! The trait is object-safe (its methods return boxed futures) so one API router can serve
//! whichever store a deployment configures. [`Filter::matches`] and [`Query::after_cursor`] are
//! the reference semantics every store must agree with.
//!
//! ```
//! use audit_core::store::{Filter, QueryParams, TenantScope};
//! use audit_core::AuditEvent;
//!
//! // What a client sends, validated against what the caller may see.
//! let params: QueryParams = serde_json::from_str(r#"{"eventType": "auth.*", "limit": 50}"#)?;
//! let query = params.into_query(TenantScope::tenant("org-1")).unwrap();
//! assert_eq!(query.limit, 50);
//!
//! let event = AuditEvent::builder("auth.login.success").organization_id("org-1").build()?;
//! assert!(query.filter.matches(&event));
//! let other_tenant = AuditEvent::builder("auth.login.success").organization_id("org-2").build()?;
//! assert!(!query.filter.matches(&other_tenant));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod query;
mod retention;

pub use query::{
    Cursor, DEFAULT_LIMIT, EventTypePattern, EventTypeSet, Filter, MAX_LIMIT, MAX_OFFSET, Query,
    QueryError, QueryErrorCode, QueryParams, SortOrder, TenantScope, check_id,
};
pub use retention::{
    PurgeReport, RetentionHandle, RetentionPolicy, RetentionRule, RuleCount, purge_once,
};

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;

use crate::integrity::{Keyring, Report, StoredColumns, Tombstone, Verifier};
use crate::{AuditEvent, Batch, Category, Sink, SinkError, SinkOptions, Timestamp};

/// The future a [`Store`] method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A queryable, idempotent event store.
///
/// Methods may be called concurrently (`&self`); implementations serialise writes as they
/// need. Every read takes its tenant scope from the query or argument: a store never returns an
/// event outside it.
pub trait Store: Send + Sync + 'static {
    /// A short stable name (`sqlite`, `postgres`), used as the sink name.
    fn name(&self) -> &str;

    /// Stores `events`; ids already present are skipped. Returns how many were new.
    fn append<'a>(&'a self, events: &'a [Arc<AuditEvent>]) -> StoreFuture<'a, u64>;

    /// One page of the events matching `query`, in its order, after its cursor.
    fn search<'a>(&'a self, query: &'a Query) -> StoreFuture<'a, Page>;

    /// The event with this id, if it exists and is in `scope`.
    fn get<'a>(
        &'a self,
        id: &'a str,
        scope: &'a TenantScope,
    ) -> StoreFuture<'a, Option<AuditEvent>>;

    /// Deletes the event with this id if it exists and is in `scope`, keeping a
    /// [`Tombstone`] (reason `api`, `deleted_by` as given) in the same transaction; true when
    /// one was deleted.
    fn delete<'a>(
        &'a self,
        id: &'a str,
        scope: &'a TenantScope,
        deleted_by: &'a str,
    ) -> StoreFuture<'a, bool>;

    /// Deletes every event older than its retention period at `now`, keeping a
    /// [`Tombstone`] (reason `retention`) for each chained one so the chain stays verifiable
    /// across the purge. The bundled stores delete in batches of 10,000 events, each batch
    /// with its tombstones in one transaction, so a long purge does not hold back appends.
    fn purge<'a>(
        &'a self,
        policy: &'a RetentionPolicy,
        now: Timestamp,
    ) -> StoreFuture<'a, PurgeReport>;

    /// Up to `limit` stored events in chain order (by stream, seq, id), after `after`: what
    /// [`verify_store`] reads. Every tenant's events; callers authorize.
    fn chain_rows<'a>(
        &'a self,
        after: Option<&'a ChainPosition>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<ChainRow>>;

    /// Every tombstone the store keeps.
    fn tombstones<'a>(&'a self) -> StoreFuture<'a, Vec<Tombstone>>;

    /// Up to `limit` distinct values of `field` among events in `scope`, sorted.
    fn distinct<'a>(
        &'a self,
        field: DistinctField,
        scope: &'a TenantScope,
        limit: usize,
    ) -> StoreFuture<'a, Vec<String>>;
}

/// A position in a store's chain order: stream, seq, then id (two rows can claim one seq
/// when one was forged).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChainPosition {
    /// The stream.
    pub stream: String,
    /// The seq within it.
    pub seq: u64,
    /// The event id.
    pub id: String,
}

/// One stored event as [`Store::chain_rows`] returns it: its indexed columns and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRow {
    /// The `id` column.
    pub id: String,
    /// The `stream` column (empty for an event stored without one).
    pub stream: String,
    /// The `seq` column (0 for an event stored without one).
    pub seq: u64,
    /// The `event_type` column.
    pub event_type: String,
    /// The tenant column.
    pub tenant: Option<String>,
    /// The time column, milliseconds since the Unix epoch.
    pub unix_millis: i64,
    /// The event as written.
    pub json: String,
}

/// Rows read per page by [`verify_store`].
const VERIFY_PAGE: usize = 5_000;

/// Verifies everything a store holds, page by page (memory stays bounded by a page plus the
/// verifier's per-stream state and the tombstones), calling `progress` with the number of
/// rows read after each page.
pub async fn verify_store(
    store: &dyn Store,
    keys: Option<Keyring>,
    mut progress: impl FnMut(u64),
) -> Result<Report, StoreError> {
    let mut verifier = Verifier::new(keys);
    verifier.add_tombstones(store.tombstones().await?);
    let mut after: Option<ChainPosition> = None;
    let mut read = 0u64;
    loop {
        let rows = store.chain_rows(after.as_ref(), VERIFY_PAGE).await?;
        for r in &rows {
            verifier.push_stored(
                &StoredColumns {
                    id: &r.id,
                    stream: &r.stream,
                    seq: r.seq,
                    event_type: &r.event_type,
                    tenant: r.tenant.as_deref(),
                    unix_millis: r.unix_millis,
                },
                &r.json,
            );
        }
        read += rows.len() as u64;
        progress(read);
        match rows.last() {
            Some(last) if rows.len() == VERIFY_PAGE => {
                after = Some(ChainPosition {
                    stream: last.stream.clone(),
                    seq: last.seq,
                    id: last.id.clone(),
                });
            }
            _ => break,
        }
    }
    Ok(verifier.finish())
}

/// A field whose distinct values [`Store::distinct`] lists (for filter drop-downs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DistinctField {
    /// `eventType`.
    EventType,
    /// `target.type`.
    ResourceType,
}

/// One page of search results.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// The events, in the query's order.
    pub events: Vec<AuditEvent>,
    /// Where the next page starts, when there is one.
    pub next_cursor: Option<Cursor>,
    /// Counts over the whole filtered set (cursor and limit ignored), when asked for.
    pub summary: Option<Summary>,
}

impl Page {
    /// Builds a page from up to `limit + 1` rows fetched in order: the extra row, if present,
    /// only says that there is more.
    pub fn from_rows(mut events: Vec<AuditEvent>, query: &Query) -> Page {
        let has_more = events.len() > query.limit;
        events.truncate(query.limit);
        let next_cursor = if has_more {
            events.last().map(|e| Cursor::after(e, query.order))
        } else {
            None
        };
        Page {
            events,
            next_cursor,
            summary: None,
        }
    }
}

/// Counts over a filtered set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Every matching event.
    pub total_events: u64,
    /// Matching events per category (categories with none are omitted).
    pub by_category: BTreeMap<String, u64>,
}

impl Summary {
    /// Adds `n` events of `category`.
    pub fn add(&mut self, category: Category, n: u64) {
        self.total_events += n;
        *self
            .by_category
            .entry(category.as_str().to_owned())
            .or_default() += n;
    }
}

/// Why a store operation failed.
#[derive(Debug, Clone)]
pub struct StoreError {
    retryable: bool,
    message: String,
}

impl StoreError {
    /// A failure that may pass (connection lost, database busy, disk full).
    pub fn unavailable(message: impl Into<String>) -> StoreError {
        StoreError {
            retryable: true,
            message: message.into(),
        }
    }

    /// A failure retrying cannot fix (corrupt row, schema mismatch).
    pub fn fatal(message: impl Into<String>) -> StoreError {
        StoreError {
            retryable: false,
            message: message.into(),
        }
    }

    /// True when trying again may succeed.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// The message (never contains credentials).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreError {}

impl From<StoreError> for SinkError {
    fn from(e: StoreError) -> SinkError {
        if e.retryable {
            SinkError::retryable(e.message)
        } else {
            SinkError::permanent(e.message)
        }
    }
}

/// Delivers the pipeline's batches into a [`Store`]: register it with
/// [`AuditorBuilder::sink`](crate::AuditorBuilder::sink) and keep the `Arc` for queries.
///
/// Appends are idempotent, so the pipeline's at-least-once retries never duplicate a row.
#[derive(Clone)]
pub struct StoreSink {
    store: Arc<dyn Store>,
}

impl StoreSink {
    /// Wraps a shared store.
    pub fn new(store: Arc<dyn Store>) -> StoreSink {
        StoreSink { store }
    }
}

impl fmt::Debug for StoreSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreSink")
            .field("store", &self.store.name())
            .finish()
    }
}

impl Sink for StoreSink {
    fn name(&self) -> &str {
        self.store.name()
    }

    /// Batches of up to 10,000 events (16 MiB): a database pays per transaction and per
    /// touched index page, so large batches are several times cheaper per event. Under light
    /// load the 100 ms maximum wait still applies.
    fn default_options(&self) -> SinkOptions {
        SinkOptions::new()
            .max_batch_events(10_000)
            .max_batch_bytes(16 << 20)
            .queue_bytes(64 << 20)
    }

    async fn deliver(&mut self, batch: &Batch) -> Result<(), SinkError> {
        self.store.append(batch.events()).await?;
        Ok(())
    }
}

/// Walks every event matching a query, page by page, for exports: memory stays bounded by
/// one page however large the result.
///
/// Pages are keyset pages, so events appended during the walk never shift it: each matching
/// event that existed when the walk passed its position is returned exactly once.
pub struct ExportPages {
    store: Arc<dyn Store>,
    query: Query,
    done: bool,
}

impl ExportPages {
    /// Starts a walk; `query.limit` is the page size and its summary is not computed.
    pub fn new(store: Arc<dyn Store>, mut query: Query) -> ExportPages {
        query.include_summary = false;
        ExportPages {
            store,
            query,
            done: false,
        }
    }

    /// The next non-empty page, or `None` at the end.
    pub async fn next_page(&mut self) -> Result<Option<Vec<AuditEvent>>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let page = self.store.search(&self.query).await?;
        match page.next_cursor {
            Some(c) => self.query.cursor = Some(c),
            None => self.done = true,
        }
        Ok((!page.events.is_empty()).then_some(page.events))
    }
}

impl fmt::Debug for ExportPages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportPages")
            .field("store", &self.store.name())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
