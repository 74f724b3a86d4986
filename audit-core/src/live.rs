//! [`LiveFeed`]: a sink that fans delivered events out to live subscribers (the audit API's
//! `GET /stream`, dashboards, tests).
//!
//! Register it like any sink; every subscriber sees every event delivered after it
//! subscribed, already redacted. A subscriber that falls more than `capacity` events behind
//! is told how many it missed ([`Live::Lagged`]) instead of silently skipping them. With no
//! subscriber, delivering costs next to nothing.
//!
//! ```
//! use std::time::Duration;
//! use audit_core::{AuditEvent, Auditor, live::{Live, LiveFeed}};
//!
//! let feed = LiveFeed::new(1024);
//! let mut sub = feed.subscribe();
//! let auditor = Auditor::builder().sink(feed.clone()).build()?;
//! auditor.record(AuditEvent::builder("auth.logout").build()?).unwrap();
//! auditor.shutdown_blocking(Duration::from_secs(5));
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! match rt.block_on(sub.next()) {
//!     Some(Live::Event(e)) => assert_eq!(e.event_type.as_str(), "auth.logout"),
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), audit_core::Error>(())
//! ```

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::{AuditEvent, Batch, Sink, SinkError};

/// Fans delivered events out to subscribers. Clones share one feed.
#[derive(Debug, Clone)]
pub struct LiveFeed {
    tx: broadcast::Sender<Arc<AuditEvent>>,
}

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum Live {
    /// An event.
    Event(Arc<AuditEvent>),
    /// The subscriber fell behind and this many events were skipped for it.
    Lagged(u64),
}

/// One subscription.
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<Arc<AuditEvent>>,
}

impl Subscription {
    /// The next event (or lag notice); `None` once the feed is gone.
    pub async fn next(&mut self) -> Option<Live> {
        match self.rx.recv().await {
            Ok(e) => Some(Live::Event(e)),
            Err(broadcast::error::RecvError::Lagged(n)) => Some(Live::Lagged(n)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

impl LiveFeed {
    /// A feed keeping up to `capacity` events for slow subscribers (at least 16).
    pub fn new(capacity: usize) -> LiveFeed {
        LiveFeed {
            tx: broadcast::channel(capacity.max(16)).0,
        }
    }

    /// Subscribes to events delivered from now on.
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            rx: self.tx.subscribe(),
        }
    }

    /// Current subscribers.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}

impl Sink for LiveFeed {
    fn name(&self) -> &str {
        "live"
    }

    async fn deliver(&mut self, batch: &Batch) -> Result<(), SinkError> {
        if self.tx.receiver_count() > 0 {
            for e in batch.events() {
                // No subscriber left is not a failure: live viewers are optional.
                let _ = self.tx.send(Arc::clone(e));
            }
        }
        Ok(())
    }
}
