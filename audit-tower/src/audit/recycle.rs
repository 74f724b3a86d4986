//! Request records handed back by the pipeline's worker once it has built their events, so
//! that the next request reuses the allocation instead of making a new one.
//!
//! Why: a record is allocated on the thread that handles the request and, before this, was
//! freed on the pipeline's worker, together with what it held (the request's scope, its
//! URI): when this was written, six of the worker's twenty frees per event were of blocks the
//! request thread had allocated (counted with uprobes on libc's `malloc`/`free`), which glibc
//! handles at a higher cost than a block freed where it was made. A record that comes back is
//! overwritten whole on the request thread, which also frees what the previous request left in
//! it where those were allocated, so the worker frees only blocks it allocated itself. In the
//! overhead bench, turning reuse off raises the layer's added caller wall from 0.29× to 0.36×
//! of the `TraceLayer` stack's (medians of twelve alternating runs).
//!
//! What a record carries between its event and its reuse: the previous request's scope (its
//! ids, client address, and the identity left in its audit context for work that outlives
//! the response), and its path and query copied into the record's own buffer, in memory only,
//! until the record is reused or the layer is dropped. Not its URI, and nothing else that
//! shares hyper's read buffer: the record copies the target instead of holding the URI, and
//! the worker replaces the user agent header with a copy when it builds the event, so a kept
//! record never pins a connection's buffer with the rest of that request's head (its
//! `Authorization` header too). Nothing of it can reach the next event: reuse replaces every field (see
//! `Audit::call`).

use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

use super::record::Pending;

/// Most records kept for reuse on the free list; beyond it, records are freed as before.
const MAX_KEPT: usize = 1024;

/// Records the worker gathers before it moves them to the free list under one lock.
const RETURN_BATCH: usize = 32;

/// Records kept for reuse: boxed on purpose, as the allocation is what is reused.
#[allow(clippy::vec_box)]
type Kept<T> = Vec<Box<T>>;

/// The free list of one layer's records.
///
/// Two lists, each behind its own lock, so that the request threads and the worker do not
/// take turns at one lock per request (each turn moves the lock's memory from one core to
/// the other): the worker hands records back to `returned`, which only it uses, and moves
/// them to `free` in batches; request threads take from `free`, and only when it is empty
/// look in `returned`. Generic only so that its tests can recycle plain values.
pub(crate) struct Recycler<T = Pending> {
    free: Mutex<Kept<T>>,
    returned: Mutex<Kept<T>>,
}

impl<T> Default for Recycler<T> {
    fn default() -> Self {
        Recycler {
            free: Mutex::new(Vec::new()),
            returned: Mutex::new(Vec::new()),
        }
    }
}

impl<T> std::fmt::Debug for Recycler<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recycler")
            .field("kept", &self.len())
            .finish()
    }
}

/// A push, pop or swap cannot leave a list inconsistent, whatever panicked.
fn lock<T>(list: &Mutex<Kept<T>>) -> MutexGuard<'_, Kept<T>> {
    list.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The list if it is free right now: a request thread never waits here.
fn try_lock<T>(list: &Mutex<Kept<T>>) -> Option<MutexGuard<'_, Kept<T>>> {
    match list.try_lock() {
        Ok(l) => Some(l),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

impl<T> Recycler<T> {
    /// A record to overwrite, if one came back and the lists are free right now (under
    /// contention the request allocates, as it would without reuse).
    pub(crate) fn take(&self) -> Option<Box<T>> {
        let mut free = try_lock(&self.free)?;
        if free.is_empty() {
            // Everything the worker has handed back since its last batch, in one swap.
            let mut returned = try_lock(&self.returned)?;
            std::mem::swap(&mut *free, &mut *returned);
        }
        free.pop()
    }

    /// Keeps `record` for reuse. Called on the worker; every [`RETURN_BATCH`] records it
    /// moves the batch to the free list (freeing, outside the locks, what is beyond
    /// [`MAX_KEPT`]).
    pub(crate) fn put(&self, record: Box<T>) {
        let mut returned = lock(&self.returned);
        returned.push(record);
        if returned.len() < RETURN_BATCH {
            return;
        }
        let mut free = lock(&self.free);
        let room = MAX_KEPT.saturating_sub(free.len());
        let beyond = returned.len().saturating_sub(room);
        let excess: Kept<T> = returned.drain(..beyond).collect();
        free.append(&mut returned);
        drop(free);
        drop(returned);
        drop(excess);
    }

    /// How many records are kept now. One lock at a time: [`put`](Self::put) takes
    /// `returned` and then `free`, so holding both the other way round could deadlock.
    fn len(&self) -> usize {
        let free = lock(&self.free).len();
        free + lock(&self.returned).len()
    }

    /// How many records are kept now.
    #[cfg(test)]
    pub(crate) fn kept(&self) -> usize {
        self.len()
    }

    /// Holds the free list, as a request thread would while taking from it.
    #[cfg(test)]
    fn hold_free(&self) -> MutexGuard<'_, Kept<T>> {
        lock(&self.free)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::convert::Infallible;
    use std::time::Duration;

    use audit_core::{Actor, Auditor};
    use audit_sinks::MemorySink;
    use axum::body::Body;
    use http::{Request, Response};
    use tower::{Layer, ServiceExt};

    use crate::AuditContext;
    use crate::audit::{AuditLayer, RequestBody};

    /// A handler that records an actor, a tenant and a detail only when asked to.
    async fn handler(req: Request<RequestBody<Body>>) -> Result<Response<Body>, Infallible> {
        if req.headers().contains_key("x-user")
            && let Some(ctx) = req.extensions().get::<AuditContext>()
        {
            ctx.set_actor(Actor::user("first-user"));
            ctx.set_organization_id("first-tenant");
            ctx.detail("note", "first-only");
        }
        Ok(Response::new(Body::empty()))
    }

    /// A memory sink, an auditor into it, and an `AuditLayer` with its free list.
    fn audited() -> (
        MemorySink,
        Auditor,
        AuditLayer,
        std::sync::Arc<super::Recycler>,
    ) {
        let memory = MemorySink::new(10);
        let auditor = Auditor::builder().sink(memory.clone()).build().unwrap();
        let layer = AuditLayer::new(auditor.clone());
        let recycler = std::sync::Arc::clone(&layer.config().recycler);
        (memory, auditor, layer, recycler)
    }

    #[test]
    fn a_request_thread_never_waits_for_the_free_list() {
        let recycler = super::Recycler::<u32>::default();
        let held = recycler.hold_free();
        // Would deadlock with a blocking lock (same thread); must give up at once instead.
        assert!(recycler.take().is_none());
        drop(held);
        assert!(recycler.take().is_none(), "empty, and free again");
    }

    #[test]
    fn the_worker_hands_records_back_in_batches_and_keeps_at_most_the_bound() {
        use super::{MAX_KEPT, RETURN_BATCH};
        let recycler = super::Recycler::<usize>::default();
        for i in 0..RETURN_BATCH - 1 {
            recycler.put(Box::new(i));
        }
        assert!(recycler.hold_free().is_empty(), "not yet a batch");
        // An empty free list: the request thread takes what came back so far.
        assert_eq!(recycler.take().as_deref(), Some(&(RETURN_BATCH - 2)));
        assert_eq!(recycler.kept(), RETURN_BATCH - 2);
        while recycler.take().is_some() {}

        for i in 0..RETURN_BATCH {
            recycler.put(Box::new(i));
        }
        assert_eq!(
            recycler.hold_free().len(),
            RETURN_BATCH,
            "one batch, moved at once"
        );

        for i in 0..2 * MAX_KEPT {
            recycler.put(Box::new(i));
        }
        assert!(recycler.hold_free().len() <= MAX_KEPT);
        assert!(
            recycler.kept() < MAX_KEPT + RETURN_BATCH,
            "the rest were freed"
        );
        let mut taken = 0;
        while recycler.take().is_some() {
            taken += 1;
        }
        assert!(taken >= MAX_KEPT, "{taken}");
    }

    /// hyper hands the layer a URI and header values that share the connection's read buffer;
    /// a kept record must not keep that buffer (and the request's head in it) alive.
    #[tokio::test]
    async fn a_kept_record_holds_nothing_of_the_request_buffer() {
        let (memory, auditor, layer, recycler) = audited();
        let svc = layer.layer(tower::service_fn(handler));

        // One buffer, as hyper's read buffer: the path and the user agent are slices of it
        // (a user agent too long to be copied on arrival, so held as the header until the
        // event is built).
        let head = bytes::Bytes::from(
            b"/v1/items/42 Mozilla/5.0 (X11; Linux x86_64) rv:1 Authorization: Bearer x".to_vec(),
        );
        let uri = http::Uri::from_maybe_shared(head.slice(0..12)).unwrap();
        let ua = http::HeaderValue::from_maybe_shared(head.slice(13..49)).unwrap();
        assert!(!head.is_unique());
        let req = Request::get(uri)
            .header("user-agent", ua)
            .body(Body::empty())
            .unwrap();
        svc.oneshot(req).await.unwrap();
        assert!(auditor.flush(Duration::from_secs(5)).await);
        assert_eq!(recycler.kept(), 1, "the record is kept for reuse");
        assert!(
            head.is_unique(),
            "the kept record still holds the request's buffer"
        );

        let events = memory.events();
        let e = &events[0];
        assert_eq!(
            e.http.as_ref().unwrap().path.as_deref(),
            Some("/v1/items/42")
        );
        assert_eq!(
            e.actor.as_ref().unwrap().user_agent.as_deref(),
            Some("Mozilla/5.0 (X11; Linux x86_64) rv:1")
        );
    }

    #[tokio::test]
    async fn a_reused_record_carries_nothing_of_the_request_it_served_before() {
        let (memory, auditor, layer, recycler) = audited();
        let svc = layer.layer(tower::service_fn(handler));

        let first = Request::post("/first/1?q=one")
            .header("x-user", "yes")
            .header("user-agent", "first-agent")
            .header("content-type", "application/grpc")
            .body(Body::empty())
            .unwrap();
        svc.clone().oneshot(first).await.unwrap();
        assert!(auditor.flush(Duration::from_secs(5)).await);
        assert_eq!(recycler.kept(), 1, "the worker hands the record back");

        let second = Request::get("/second").body(Body::empty()).unwrap();
        svc.oneshot(second).await.unwrap();
        assert!(auditor.flush(Duration::from_secs(5)).await);
        assert_eq!(
            recycler.kept(),
            1,
            "the same record served the second request"
        );

        let events = memory.events();
        assert_eq!(events.len(), 2);
        let (a, b) = (&events[0], &events[1]);
        assert_eq!(a.actor.as_ref().unwrap().id.as_deref(), Some("first-user"));
        assert_eq!(a.organization_id(), Some("first-tenant"));
        assert_eq!(a.details["note"], "first-only");

        let text = serde_json::to_string(b.as_ref()).unwrap();
        for leftover in ["first", "q=one", "grpc"] {
            assert!(!text.contains(leftover), "{leftover} leaked into {text}");
        }
        assert_eq!(b.actor.as_ref().unwrap().id, None);
        assert_eq!(b.organization_id(), None);
        assert!(b.details.is_empty());
        let http = b.http.as_ref().unwrap();
        assert_eq!(http.method.as_deref(), Some("GET"));
        assert_eq!(http.path.as_deref(), Some("/second"));
        assert_eq!(http.query, None);
        assert_ne!(
            a.context.as_ref().unwrap().request_id,
            b.context.as_ref().unwrap().request_id
        );
    }
}
