//! [`MemorySink`]: a bounded in-memory sink for tests and for your own assertions.
//!
//! Clones share one buffer: register one clone with the auditor and keep another to look.
//!
//! ```
//! use std::time::Duration;
//! use audit_core::{AuditEvent, Auditor};
//! use audit_sinks::MemorySink;
//!
//! let memory = MemorySink::new(1000);
//! let auditor = Auditor::builder().sink(memory.clone()).build()?;
//! auditor.record(AuditEvent::builder("auth.logout").build()?).unwrap();
//! auditor.shutdown_blocking(Duration::from_secs(5));
//! assert_eq!(memory.events()[0].event_type.as_str(), "auth.logout");
//! # Ok::<(), audit_core::Error>(())
//! ```
//!
//! When full it evicts the oldest event and counts it in [`MemorySink::evicted`]: it is a
//! window onto recent events, never a store.

use audit_core::sync::LockExt;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use audit_core::{AuditEvent, Batch, Sink, SinkError};
use tokio::sync::Notify;

#[derive(Debug, Default)]
struct Inner {
    events: VecDeque<Arc<AuditEvent>>,
    evicted: u64,
}

/// Keeps the most recent `capacity` events in memory.
#[derive(Debug, Clone)]
pub struct MemorySink {
    inner: Arc<Mutex<Inner>>,
    arrived: Arc<Notify>,
    capacity: usize,
}

impl MemorySink {
    /// A sink holding at most `capacity` events (at least 1).
    pub fn new(capacity: usize) -> MemorySink {
        MemorySink {
            inner: Arc::default(),
            arrived: Arc::new(Notify::new()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock_ignore_poison()
    }

    /// The events held, oldest first.
    pub fn events(&self) -> Vec<Arc<AuditEvent>> {
        self.lock().events.iter().cloned().collect()
    }

    /// The held events of one type, oldest first.
    pub fn events_of_type(&self, event_type: &str) -> Vec<Arc<AuditEvent>> {
        self.lock()
            .events
            .iter()
            .filter(|e| e.event_type.as_str() == event_type)
            .cloned()
            .collect()
    }

    /// Number of events held.
    pub fn len(&self) -> usize {
        self.lock().events.len()
    }

    /// True when no event is held.
    pub fn is_empty(&self) -> bool {
        self.lock().events.is_empty()
    }

    /// Events pushed out by newer ones since creation.
    pub fn evicted(&self) -> u64 {
        self.lock().evicted
    }

    /// Removes and returns everything held.
    pub fn take(&self) -> Vec<Arc<AuditEvent>> {
        self.lock().events.drain(..).collect()
    }

    /// Waits until `predicate` holds for the held events or `timeout` passes; returns
    /// whether it held.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut predicate: impl FnMut(&[Arc<AuditEvent>]) -> bool,
    ) -> bool {
        let check = |p: &mut dyn FnMut(&[Arc<AuditEvent>]) -> bool| {
            let mut inner = self.lock();
            p(inner.events.make_contiguous())
        };
        tokio::time::timeout(timeout, async {
            loop {
                let arrived = self.arrived.notified();
                if check(&mut predicate) {
                    return;
                }
                arrived.await;
            }
        })
        .await
        .is_ok()
    }
}

impl Sink for MemorySink {
    fn name(&self) -> &str {
        "memory"
    }

    async fn deliver(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let mut inner = self.lock();
        for event in batch.events() {
            if inner.events.len() == self.capacity {
                inner.events.pop_front();
                inner.evicted += 1;
            }
            inner.events.push_back(Arc::clone(event));
        }
        drop(inner);
        self.arrived.notify_waiters();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: usize) -> Batch {
        Batch::from(
            (0..n)
                .map(|i| {
                    AuditEvent::builder("data.item.read")
                        .detail("i", i)
                        .build()
                        .unwrap()
                })
                .collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn keeps_the_newest_and_counts_evictions() {
        let mut sink = MemorySink::new(3);
        let view = sink.clone();
        sink.deliver(&batch(5)).await.unwrap();
        let held: Vec<_> = view
            .events()
            .iter()
            .map(|e| e.details["i"].clone())
            .collect();
        assert_eq!(held, [2, 3, 4]);
        assert_eq!(view.evicted(), 2);
        assert_eq!(view.take().len(), 3);
        assert!(view.is_empty());
    }

    #[tokio::test]
    async fn wait_until_sees_later_deliveries() {
        let mut sink = MemorySink::new(10);
        let view = sink.clone();
        let waiter = tokio::spawn(async move {
            view.wait_until(Duration::from_secs(5), |e| e.len() == 2)
                .await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        sink.deliver(&batch(2)).await.unwrap();
        assert!(waiter.await.unwrap());
        assert!(
            !sink
                .wait_until(Duration::from_millis(10), |e| e.len() == 3)
                .await
        );
    }
}
