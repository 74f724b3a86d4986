//! The pipeline's promises, proved through the public API: nothing lost, nothing silent,
//! order kept, failing sinks isolated, shutdown reports the truth.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use audit_core::{
    AuditEvent, Auditor, Batch, Category, OverflowPolicy, RetryPolicy, Sink, SinkError, SinkOptions,
};

/// A sink that keeps what it receives and can be told to fail or stall.
#[derive(Clone, Default)]
struct Probe {
    name: &'static str,
    got: Arc<Mutex<Vec<Arc<AuditEvent>>>>,
    /// Fail this many more deliveries.
    fail_next: Arc<AtomicUsize>,
    /// Fail every delivery, permanently.
    reject: Arc<AtomicBool>,
    /// Hold every delivery until cleared.
    stall: Arc<AtomicBool>,
    attempts: Arc<AtomicUsize>,
}

impl Probe {
    fn named(name: &'static str) -> Probe {
        Probe {
            name,
            ..Probe::default()
        }
    }

    fn events(&self) -> Vec<Arc<AuditEvent>> {
        self.got.lock().unwrap().clone()
    }

    fn of_type(&self, event_type: &str) -> Vec<Arc<AuditEvent>> {
        self.events()
            .into_iter()
            .filter(|e| e.event_type.as_str() == event_type)
            .collect()
    }

    /// The seq audit of what this sink received, as a file of it would read: every hash
    /// and link checked, every missing seq matched to a loss report in the same trail.
    fn audit(&self) -> audit_core::integrity::Report {
        let events = self.events();
        audit_core::integrity::Verifier::verify_events(events.iter().map(|e| &**e), None)
    }

    /// Sequence numbers of the user events (type `data.item.create`) received.
    fn user_seqs(&self) -> Vec<u64> {
        self.of_type("data.item.create")
            .iter()
            .map(|e| e.seq().unwrap())
            .collect()
    }
}

impl Sink for Probe {
    fn name(&self) -> &str {
        self.name
    }

    async fn deliver(&mut self, batch: &Batch) -> Result<(), SinkError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        while self.stall.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if self.reject.load(Ordering::SeqCst) {
            return Err(SinkError::permanent("receiver rejects the payload"));
        }
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(SinkError::retryable("connection refused"));
        }
        self.got
            .lock()
            .unwrap()
            .extend(batch.events().iter().cloned());
        Ok(())
    }
}

fn item(n: usize) -> AuditEvent {
    AuditEvent::builder("data.item.create")
        .detail("n", n)
        .build()
        .unwrap()
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy::default()
        .initial_backoff(Duration::from_millis(2))
        .max_backoff(Duration::from_millis(20))
}

const DEADLINE: Duration = Duration::from_secs(10);

#[test]
fn a_sink_that_fails_then_recovers_gets_everything_in_order() {
    let probe = Probe::named("flaky");
    probe.fail_next.store(5, Ordering::SeqCst);
    let auditor = Auditor::builder()
        .sink_with(
            probe.clone(),
            SinkOptions::new()
                .max_batch_events(7)
                .max_wait(Duration::from_millis(1))
                .retry(fast_retry()),
        )
        .build()
        .unwrap();
    let n = 500;
    let seqs: Vec<u64> = (0..n).map(|i| auditor.record(item(i)).unwrap()).collect();
    let report = auditor.shutdown_blocking(DEADLINE);
    assert!(report.complete, "{report}");

    assert_eq!(probe.user_seqs(), seqs, "every event, once, in order");
    let details: Vec<u64> = probe
        .of_type("data.item.create")
        .iter()
        .map(|e| e.details["n"].as_u64().unwrap())
        .collect();
    assert_eq!(details, (0..n as u64).collect::<Vec<_>>());

    assert_eq!(probe.of_type("system.sink.unhealthy").len(), 1);
    let recovered = probe.of_type("system.sink.recovered");
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].details["failedAttempts"], 5);
    assert_eq!(recovered[0].details["sink"], "flaky");

    let m = &report.metrics.sinks[0];
    assert_eq!(m.retried, 5);
    assert_eq!((m.failed, m.dropped, m.pending), (0, 0, 0));
    assert!(m.healthy);
    assert_eq!(m.last_error.as_deref(), Some("connection refused"));
}

/// Sums the `count` of the `system.audit.dropped` reports a sink received, by reason.
fn reported_losses(probe: &Probe, reason: &str) -> u64 {
    probe
        .of_type("system.audit.dropped")
        .iter()
        .filter(|e| e.details["reason"] == reason)
        .map(|e| e.details["count"].as_u64().unwrap())
        .sum()
}

fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn drop_newest_reports_exactly_what_was_lost() {
    let probe = Probe::named("slow");
    // A sink filter runs on the worker thread: one that blocks stalls the worker, so nothing
    // leaves the shared buffer until it is released.
    let hold = Arc::new(AtomicBool::new(true));
    let entered = Arc::new(AtomicBool::new(false));
    let (h, en) = (Arc::clone(&hold), Arc::clone(&entered));
    let auditor = Auditor::builder()
        .buffer_bytes(16 * 1024)
        .overflow(OverflowPolicy::DropNewest)
        .sink_with(
            probe.clone(),
            SinkOptions::new()
                .max_wait(Duration::ZERO)
                .filter(move |_| {
                    en.store(true, Ordering::SeqCst);
                    while h.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    true
                }),
        )
        .build()
        .unwrap();
    // Once the worker is stuck on the first event, the buffer must fill.
    let mut accepted = vec![auditor.record(item(0)).unwrap()];
    wait_for("the worker to take the first event", || {
        entered.load(Ordering::SeqCst)
    });
    let n = 5_000;
    let mut refused = Vec::new();
    for i in 1..n {
        match auditor.record(item(i)) {
            Ok(seq) => accepted.push(seq),
            Err(e) => {
                assert!(e.is_dropped());
                refused.push(e.seq().unwrap());
            }
        }
    }
    assert!(refused.len() > n / 2, "only {} refused", refused.len());
    hold.store(false, Ordering::SeqCst);
    let report = auditor.shutdown_blocking(DEADLINE);
    // Everything accepted was delivered, but events were lost: not complete.
    assert!(!report.complete, "{report}");
    assert_eq!(report.metrics.sinks[0].pending, 0, "{report}");

    assert_eq!(
        probe.user_seqs(),
        accepted,
        "every accepted event arrived, in order"
    );
    let reports = probe.of_type("system.audit.dropped");
    assert_eq!(reports.len(), 1, "one run of losses, one report");
    let r = &reports[0];
    assert_eq!(r.details["count"], refused.len() as u64);
    assert_eq!(r.details["firstSeq"], refused[0]);
    assert_eq!(r.details["lastSeq"], *refused.last().unwrap());
    assert_eq!(r.details["reason"], "buffer_full");
    assert_eq!(r.severity, audit_core::Severity::Critical);
    assert_eq!(report.metrics.dropped, refused.len() as u64);
    // The report arrives after everything accepted before the loss (it is recorded when the
    // worker next makes room).
    assert!(r.seq().unwrap() > *refused.last().unwrap());
    // The seq audit: every refused seq is explained by the report in the same trail.
    let audit = probe.audit();
    assert!(audit.is_intact(), "{:?}", audit.problems);
    assert_eq!(audit.dropped, refused.len() as u64);
}

#[test]
fn a_full_sink_queue_drops_only_for_that_sink_and_says_so() {
    let slow = Probe::named("slow");
    slow.stall.store(true, Ordering::SeqCst);
    let fast = Probe::named("fast");
    let auditor = Auditor::builder()
        .sink_with(
            slow.clone(),
            SinkOptions::new()
                .max_batch_events(10)
                .queue_bytes(16 * 1024),
        )
        .sink_with(fast.clone(), SinkOptions::new().max_wait(Duration::ZERO))
        .build()
        .unwrap();
    let n = 3_000;
    let recorded: Vec<u64> = (0..n).map(|i| auditor.record(item(i)).unwrap()).collect();
    wait_for("the fast sink", || fast.user_seqs().len() == n);
    slow.stall.store(false, Ordering::SeqCst);
    let report = auditor.shutdown_blocking(DEADLINE);
    assert!(!report.complete, "the slow sink lost events: {report}");
    assert!(
        report.metrics.sinks.iter().all(|s| s.pending == 0),
        "{report}"
    );

    assert_eq!(fast.user_seqs(), recorded, "the other sink lost nothing");
    let slow_got = slow.user_seqs();
    let lost = n as u64 - slow_got.len() as u64;
    assert!(lost > 0, "the slow sink's queue must overflow in this test");
    let slow_m = &report.metrics.sinks[0];
    assert_eq!(slow_m.dropped, lost);
    // Both sinks hear about it, with the exact count.
    assert_eq!(reported_losses(&fast, "sink_queue_full"), lost);
    assert_eq!(reported_losses(&slow, "sink_queue_full"), lost);
    assert!(
        fast.of_type("system.audit.dropped")
            .iter()
            .all(|e| e.details["sink"] == "slow")
    );
    // The seq audit of each sink's trail: the fast one is whole; the slow one's gaps are
    // all explained by the reports it received.
    let audit = fast.audit();
    assert!(audit.is_intact(), "{:?}", audit.problems);
    assert_eq!(audit.dropped, 0);
    let audit = slow.audit();
    assert!(audit.is_intact(), "{:?}", audit.problems);
    assert_eq!(audit.dropped, lost);
}

/// The sinks' tasks share the worker's thread with the draining of the buffer: while a burst
/// is drained they get a turn after every chunk, so a sink whose queue holds a few thousand
/// events keeps pace with a burst ten times that size and loses none of it.
#[test]
fn a_sink_keeps_pace_while_the_worker_drains_a_burst() {
    let probe = Probe::named("steady");
    let n = 30_000;
    let size = item(n).approx_size();
    let auditor = Auditor::builder()
        .buffer_bytes(n * size * 2)
        .sink_with(
            probe.clone(),
            SinkOptions::new()
                .max_wait(Duration::ZERO)
                .queue_bytes(3_000 * size),
        )
        .build()
        .unwrap();
    for i in 0..n {
        auditor.record(item(i)).unwrap();
    }
    let report = auditor.shutdown_blocking(DEADLINE);
    assert!(report.complete, "{report}");
    assert_eq!(report.metrics.sinks[0].dropped, 0, "{report}");
    assert_eq!(probe.user_seqs().len(), n);
}

#[test]
fn block_policy_waits_for_room_instead_of_dropping() {
    let probe = Probe::named("steady");
    let auditor = Auditor::builder()
        .buffer_bytes(8 * 1024)
        .overflow(OverflowPolicy::Block {
            timeout: Duration::from_secs(5),
        })
        .dispatch_interval(Duration::from_millis(1))
        .sink_with(
            probe.clone(),
            SinkOptions::new().max_wait(Duration::from_millis(1)),
        )
        .build()
        .unwrap();
    let n = 3_000;
    for i in 0..n {
        auditor.record(item(i)).unwrap();
    }
    let report = auditor.shutdown_blocking(DEADLINE);
    assert!(report.complete, "{report}");
    assert_eq!(report.metrics.dropped, 0);
    assert_eq!(probe.user_seqs().len(), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_delivers_everything_recorded_before_it() {
    let probe = Probe::named("batched");
    let auditor = Auditor::builder()
        .sink_with(
            probe.clone(),
            // A long max wait: only shutdown's flush can deliver the tail.
            SinkOptions::new()
                .max_batch_events(64)
                .max_wait(Duration::from_secs(3600)),
        )
        .build()
        .unwrap();
    let clones: Vec<Auditor> = (0..4).map(|_| auditor.clone()).collect();
    let mut handles = Vec::new();
    for (t, a) in clones.into_iter().enumerate() {
        handles.push(tokio::task::spawn_blocking(move || {
            for i in 0..1_001 {
                a.record(item(t * 10_000 + i)).unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let report = auditor.shutdown(DEADLINE).await;
    assert!(report.complete, "{report}");
    let seqs = probe.user_seqs();
    assert_eq!(seqs.len(), 4_004);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "sequence order kept");
    assert_eq!(report.metrics.sinks[0].delivered, 4_004);

    // Afterwards the auditor refuses, visibly, and a second shutdown repeats the report.
    let err = auditor.record(item(0)).unwrap_err();
    assert!(err.is_closed());
    let again = auditor.shutdown(Duration::from_millis(10)).await;
    assert_eq!(again.metrics.sinks[0].delivered, 4_004);
    assert_eq!(auditor.metrics().rejected, 1);
}

#[test]
fn a_dead_sink_does_not_stall_the_others_and_shutdown_reports_it() {
    let dead = Probe::named("dead");
    dead.fail_next.store(usize::MAX, Ordering::SeqCst);
    let healthy = Probe::named("healthy");
    let auditor = Auditor::builder()
        .sink_with(dead, SinkOptions::new().retry(fast_retry()))
        .sink_with(
            healthy.clone(),
            SinkOptions::new().max_wait(Duration::from_millis(1)),
        )
        .build()
        .unwrap();
    for i in 0..200 {
        auditor.record(item(i)).unwrap();
    }
    wait_for("the failure", || auditor.readiness().is_err());
    assert_eq!(
        auditor.readiness(),
        Err(vec!["sink dead failing".to_owned()])
    );
    let report = auditor.shutdown_blocking(Duration::from_millis(500));
    assert!(!report.complete);
    assert_eq!(healthy.user_seqs().len(), 200);
    assert_eq!(healthy.of_type("system.sink.unhealthy").len(), 1);
    let dead_m = report
        .metrics
        .sinks
        .iter()
        .find(|s| s.name == "dead")
        .unwrap();
    assert_eq!(dead_m.delivered, 0);
    assert!(!dead_m.healthy);
    assert!(dead_m.pending >= 200, "{dead_m:?}");
    assert!(report.undelivered() >= 200);
    assert!(report.to_string().contains("INCOMPLETE"));
    let audit = healthy.audit();
    assert!(audit.is_intact(), "{:?}", audit.problems);
}

/// A delivery that hangs is said to stall while it still hangs (not only once a timeout
/// fails it), to every other sink; it then completes and nothing is lost.
#[test]
fn a_hanging_delivery_is_reported_while_it_hangs() {
    let hung = Probe::named("hung");
    hung.stall.store(true, Ordering::SeqCst);
    let healthy = Probe::named("healthy");
    let auditor = Auditor::builder()
        .sink_with(
            hung.clone(),
            SinkOptions::new().stall_after(Duration::from_millis(100)),
        )
        .sink_with(
            healthy.clone(),
            SinkOptions::new().max_wait(Duration::from_millis(1)),
        )
        .build()
        .unwrap();
    auditor.record(item(0)).unwrap();
    let started = std::time::Instant::now();
    wait_for("a stall report", || {
        !healthy.of_type("system.sink.stalled").is_empty()
    });
    assert!(started.elapsed() < Duration::from_secs(2));
    let stalled = &healthy.of_type("system.sink.stalled")[0];
    assert_eq!(stalled.details["sink"], "hung");
    assert_eq!(stalled.details["stalledForMs"], 100);
    assert!(hung.user_seqs().is_empty(), "still hanging");
    // A readiness probe sees it, by name only.
    assert_eq!(
        auditor.readiness(),
        Err(vec!["sink hung stalled".to_owned()])
    );
    assert!(auditor.metrics().sinks[0].stalled);
    hung.stall.store(false, Ordering::SeqCst);
    wait_for("the delivery", || hung.user_seqs().len() == 1);
    assert_eq!(auditor.readiness(), Ok(()));
    assert!(auditor.shutdown_blocking(DEADLINE).complete);
    assert_eq!(hung.user_seqs().len(), 1);
}

/// With the default retry policy, a sink down for three seconds is delivered to within about
/// a second of coming back (and was tried about once a second while down).
#[test]
fn a_sink_that_comes_back_is_delivered_to_within_a_second() {
    let flaky = Probe::named("flaky");
    flaky.fail_next.store(usize::MAX, Ordering::SeqCst);
    let auditor = Auditor::builder()
        .sink_with(flaky.clone(), SinkOptions::new())
        .build()
        .unwrap();
    auditor.record(item(0)).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let tries_while_down = flaky.attempts.load(Ordering::SeqCst);
    assert!(
        (3..=12).contains(&tries_while_down),
        "about one try a second once the backoff has grown: {tries_while_down}"
    );
    flaky.fail_next.store(0, Ordering::SeqCst);
    let back = std::time::Instant::now();
    wait_for("the redelivery", || !flaky.user_seqs().is_empty());
    assert!(
        back.elapsed() < Duration::from_millis(1600),
        "delivered {:?} after the sink came back",
        back.elapsed()
    );
    assert!(auditor.shutdown_blocking(DEADLINE).complete);
}

/// Without a spool, the state file tells the next start that a run crashed: the trail
/// records it, and a clean shutdown leaves nothing to report.
#[test]
fn a_crashed_run_is_reported_by_the_next_start_without_a_spool() {
    let dir = std::env::temp_dir().join(format!("audit-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("audit-state.json");
    let _ = std::fs::remove_file(&state);
    let start = || {
        let probe = Probe::named("probe");
        let auditor = Auditor::builder()
            .state_file(&state)
            .sink_with(
                probe.clone(),
                SinkOptions::new().max_wait(Duration::from_millis(1)),
            )
            .build()
            .unwrap();
        (auditor, probe)
    };
    // A first start finds no file: nothing to report; it ends cleanly.
    let (auditor, probe) = start();
    auditor.record(item(0)).unwrap();
    assert!(auditor.shutdown_blocking(DEADLINE).complete);
    assert!(probe.of_type("system.audit.unclean_shutdown").is_empty());
    assert!(
        std::fs::read_to_string(&state)
            .unwrap()
            .contains("\"clean\"")
    );
    // A run that never shuts down (its process killed) leaves "running" behind.
    let (crashed, _) = start();
    let stream = std::fs::read_to_string(&state).unwrap();
    assert!(stream.contains("\"running\""));
    std::mem::forget(crashed);
    let (auditor, probe) = start();
    assert!(auditor.shutdown_blocking(DEADLINE).complete);
    let reports = probe.of_type("system.audit.unclean_shutdown");
    assert_eq!(reports.len(), 1);
    assert!(stream.contains(reports[0].details["previousStream"].as_str().unwrap()));
    assert_eq!(reports[0].details["spooled"], false);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A sink whose final flush fails (a file that cannot be synced, a syslog receiver that
/// cannot be reached to re-send what it may not have read) makes the report incomplete.
#[test]
fn a_failed_final_flush_is_not_complete() {
    struct Unflushable;
    impl Sink for Unflushable {
        fn name(&self) -> &str {
            "unflushable"
        }
        async fn deliver(&mut self, _batch: &Batch) -> Result<(), SinkError> {
            Ok(())
        }
        async fn flush(&mut self) -> Result<(), SinkError> {
            Err(SinkError::retryable("cannot reach the receiver to re-send"))
        }
    }
    let auditor = Auditor::builder().sink(Unflushable).build().unwrap();
    auditor.record(item(0)).unwrap();
    let report = auditor.shutdown_blocking(DEADLINE);
    assert!(!report.complete, "{report}");
    let sink = &report.metrics.sinks[0];
    assert!(!sink.healthy);
    assert!(
        sink.last_error
            .as_deref()
            .unwrap()
            .contains("final flush failed")
    );
}

#[test]
fn permanent_rejections_are_counted_and_reported_not_retried() {
    let picky = Probe::named("picky");
    picky.reject.store(true, Ordering::SeqCst);
    let witness = Probe::named("witness");
    let auditor = Auditor::builder()
        .sink_with(
            picky.clone(),
            SinkOptions::new()
                .max_batch_events(1000)
                .retry(fast_retry()),
        )
        .sink(witness.clone())
        .build()
        .unwrap();
    for i in 0..10 {
        auditor.record(item(i)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    picky.reject.store(false, Ordering::SeqCst);
    let report = auditor.shutdown_blocking(DEADLINE);
    let m = report
        .metrics
        .sinks
        .iter()
        .find(|s| s.name == "picky")
        .unwrap();
    assert!(m.failed >= 10, "{m:?}");
    assert_eq!(m.retried, 0);
    let drops = witness.of_type("system.audit.dropped");
    assert!(
        drops
            .iter()
            .any(|e| e.details["reason"] == "rejected_by_sink" && e.details["sink"] == "picky")
    );
    let lost: u64 = drops
        .iter()
        .filter(|e| e.details["sink"] == "picky")
        .map(|e| e.details["count"].as_u64().unwrap())
        .sum();
    // All ten user events are reported lost; the sink's failures on the pipeline's own
    // events are counted in `failed` but not re-reported.
    assert_eq!(lost, 10);
}

/// Refuses, permanently, any batch holding an event whose `poison` detail is true, the way
/// PostgreSQL refuses a whole `INSERT` for one bad row.
#[derive(Clone, Default)]
struct Picky {
    got: Arc<Mutex<Vec<Arc<AuditEvent>>>>,
}

impl Sink for Picky {
    fn name(&self) -> &str {
        "picky"
    }

    async fn deliver(&mut self, batch: &Batch) -> Result<(), SinkError> {
        if batch
            .iter()
            .any(|e| e.details.get("poison") == Some(&true.into()))
        {
            return Err(SinkError::permanent("invalid byte sequence"));
        }
        self.got
            .lock()
            .unwrap()
            .extend(batch.events().iter().cloned());
        Ok(())
    }
}

#[test]
fn one_refused_event_never_costs_the_rest_of_its_batch() {
    let picky = Picky::default();
    let auditor = Auditor::builder()
        .sink_with(
            picky.clone(),
            SinkOptions::new()
                .max_batch_events(64)
                .max_wait(Duration::from_millis(50))
                .retry(fast_retry()),
        )
        .build()
        .unwrap();
    let mut poisoned = Vec::new();
    for i in 0..200 {
        let tenant = if i % 2 == 0 { "acme" } else { "globex" };
        let poison = i % 50 == 7;
        let e = AuditEvent::builder("data.item.create")
            .detail("n", i)
            .detail("poison", poison)
            .organization_id(tenant)
            .build()
            .unwrap();
        if poison {
            poisoned.push((e.id.to_string(), tenant));
        }
        auditor.record(e).unwrap();
    }
    let report = auditor.shutdown_blocking(DEADLINE);
    let got = picky.got.lock().unwrap().clone();
    let delivered: Vec<&Arc<AuditEvent>> = got
        .iter()
        .filter(|e| e.event_type.as_str() == "data.item.create")
        .collect();
    assert_eq!(
        delivered.len(),
        200 - poisoned.len(),
        "only the poison is lost"
    );
    let seqs: Vec<u64> = delivered.iter().map(|e| e.seq().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "order kept: {seqs:?}");
    assert_eq!(report.metrics.sinks[0].failed, poisoned.len() as u64);

    // Each refused event is named, in a report filed under its own tenant.
    let drops: Vec<&Arc<AuditEvent>> = got
        .iter()
        .filter(|e| e.event_type.as_str() == "system.audit.dropped")
        .collect();
    for (id, tenant) in &poisoned {
        let report = drops
            .iter()
            .find(|d| {
                d.details["eventIds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|v| v == id.as_str())
            })
            .unwrap_or_else(|| panic!("no report names {id}: {drops:?}"));
        assert_eq!(report.organization_id(), Some(*tenant));
        assert_eq!(report.details["reason"], "rejected_by_sink");
    }
}

#[test]
fn bounded_attempts_give_up_and_report() {
    let down = Probe::named("down");
    down.fail_next.store(usize::MAX, Ordering::SeqCst);
    let witness = Probe::named("witness");
    let auditor = Auditor::builder()
        .sink_with(
            down.clone(),
            SinkOptions::new()
                .max_wait(Duration::from_millis(1))
                .retry(fast_retry().max_attempts(Some(3))),
        )
        .sink(witness.clone())
        .build()
        .unwrap();
    auditor.record(item(1)).unwrap();
    let report = auditor.shutdown_blocking(DEADLINE);
    let m = report
        .metrics
        .sinks
        .iter()
        .find(|s| s.name == "down")
        .unwrap();
    // The user event, and the pipeline's own events about the failure, were all given up;
    // only the user event's loss is reported (reporting lost reports would never end).
    assert!(m.failed >= 1, "{m:?}");
    let attempts = down.attempts.load(Ordering::SeqCst) as u64;
    assert_eq!(attempts % 3, 0, "every batch got exactly three attempts");
    assert_eq!(m.retried, attempts / 3 * 2);
    let drops = witness.of_type("system.audit.dropped");
    assert_eq!(drops.len(), 1, "{drops:?}");
    assert_eq!(drops[0].details["reason"], "retries_exhausted");
    assert_eq!(drops[0].details["firstSeq"], 1);
}

#[test]
fn filters_route_events_and_stamps_are_applied() {
    let admin = Probe::named("admin");
    let all = Probe::named("all");
    let auditor = Auditor::builder()
        .service("vector-api")
        .stream("vector-api-1")
        .sink_with(
            admin.clone(),
            SinkOptions::new().filter(|e| e.category == Category::Admin),
        )
        .sink(all.clone())
        .build()
        .unwrap();
    assert_eq!(auditor.stream(), "vector-api-1");
    auditor
        .record(AuditEvent::builder("admin.role.assign").build().unwrap())
        .unwrap();
    auditor.record(item(0)).unwrap();
    auditor
        .record(
            AuditEvent::builder("auth.logout")
                .service("other-svc")
                .build()
                .unwrap(),
        )
        .unwrap();
    assert!(auditor.shutdown_blocking(DEADLINE).complete);
    let admin_events = admin.events();
    assert_eq!(admin_events.len(), 1);
    assert_eq!(admin_events[0].event_type.as_str(), "admin.role.assign");
    let all_events = all.events();
    assert_eq!(all_events.len(), 3);
    let integrity = all_events[1].integrity.as_ref().unwrap();
    assert_eq!(
        (integrity.stream.as_str(), integrity.seq),
        ("vector-api-1", 2)
    );
    assert_eq!(
        all_events[0].context.as_ref().unwrap().service.as_deref(),
        Some("vector-api")
    );
    assert_eq!(
        all_events[2].context.as_ref().unwrap().service.as_deref(),
        Some("other-svc"),
        "an event's own service is kept"
    );
}

#[tokio::test]
async fn flush_waits_for_delivery_without_closing() {
    let probe = Probe::named("p");
    let auditor = Auditor::builder()
        .sink_with(
            probe.clone(),
            SinkOptions::new().max_wait(Duration::from_secs(3600)),
        )
        .build()
        .unwrap();
    auditor.record(item(1)).unwrap();
    assert!(auditor.flush(DEADLINE).await);
    assert_eq!(probe.user_seqs(), [1]);
    auditor.record(item(2)).unwrap();
    assert!(auditor.flush(DEADLINE).await);
    assert_eq!(probe.user_seqs(), [1, 2]);
    assert!(auditor.shutdown(DEADLINE).await.complete);
}

#[test]
fn dropping_every_handle_still_drains() {
    let probe = Probe::named("p");
    let auditor = Auditor::builder()
        .sink_with(
            probe.clone(),
            SinkOptions::new().max_wait(Duration::from_secs(3600)),
        )
        .build()
        .unwrap();
    auditor.record(item(1)).unwrap();
    drop(auditor);
    for _ in 0..500 {
        if probe.user_seqs() == [1] {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("event not delivered after the last handle was dropped");
}

#[test]
fn configuration_mistakes_are_errors() {
    let err = Auditor::builder()
        .sink(Probe::named("same"))
        .sink(Probe::named("same"))
        .build()
        .unwrap_err();
    assert!(err.is_config());
    assert!(err.to_string().contains("\"same\""), "{err}");
    assert!(
        Auditor::builder()
            .buffer_bytes(0)
            .build()
            .unwrap_err()
            .is_config()
    );
    // Renaming one resolves the clash.
    let a = Auditor::builder()
        .sink(Probe::named("same"))
        .sink_with(Probe::named("same"), SinkOptions::new().name("same-2"))
        .build()
        .unwrap();
    assert!(a.shutdown_blocking(DEADLINE).complete);
}

/// Panics on its first delivery.
struct Panicky;

impl Sink for Panicky {
    fn name(&self) -> &str {
        "panicky"
    }

    async fn deliver(&mut self, _batch: &Batch) -> Result<(), SinkError> {
        panic!("bug in a sink");
    }
}

#[test]
fn a_sink_that_panics_is_reported_and_its_losses_counted() {
    let witness = Probe::named("witness");
    let auditor = Auditor::builder()
        .sink_with(
            Panicky,
            SinkOptions::new().max_wait(Duration::from_millis(1)),
        )
        .sink(witness.clone())
        .build()
        .unwrap();
    auditor.record(item(1)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    for i in 2..=5 {
        auditor.record(item(i)).unwrap();
    }
    let report = auditor.shutdown_blocking(DEADLINE);
    assert!(!report.complete, "{report}");
    let m = report
        .metrics
        .sinks
        .iter()
        .find(|s| s.name == "panicky")
        .unwrap();
    assert!(!m.healthy);
    assert!(m.last_error.as_deref().unwrap().contains("panicked"));
    assert_eq!(witness.user_seqs().len(), 5, "the other sink is unaffected");
    let unhealthy = witness.of_type("system.sink.unhealthy");
    assert_eq!(unhealthy.len(), 1);
    assert_eq!(unhealthy[0].details["sink"], "panicky");
    // The four events routed to it after it died are reported lost (the one it panicked on
    // was in flight and is counted too).
    let lost: u64 = witness
        .of_type("system.audit.dropped")
        .iter()
        .filter(|e| e.details["sink"] == "panicky")
        .map(|e| e.details["count"].as_u64().unwrap())
        .sum();
    assert_eq!(lost, 5);
    let audit = witness.audit();
    assert!(audit.is_intact(), "{:?}", audit.problems);
}

#[test]
fn reservations_promise_room_and_refuse_when_no_sink_is_healthy() {
    let probe = Probe::named("p");
    let auditor = Auditor::builder()
        .buffer_bytes(4096)
        .overflow(OverflowPolicy::DropNewest)
        .sink_with(
            probe.clone(),
            SinkOptions::new()
                .max_wait(Duration::from_millis(1))
                .retry(fast_retry()),
        )
        .build()
        .unwrap();
    // A reservation holds room: ordinary records cannot take it.
    let r = auditor.reserve(4000).unwrap();
    assert!(auditor.reserve(4000).unwrap_err().is_unavailable());
    let seq = r.record(item(1)).unwrap();
    // Dropped unused, a reservation gives its room back.
    drop(auditor.reserve(2000).unwrap());
    assert!(block_on(auditor.flush(Duration::from_secs(5))));
    assert_eq!(probe.user_seqs(), [seq]);

    // With every sink failing, nothing can be promised.
    probe.fail_next.store(usize::MAX, Ordering::SeqCst);
    auditor.record(item(2)).unwrap();
    wait_for("the sink to turn unhealthy", || {
        !auditor.metrics().sinks[0].healthy
    });
    let err = auditor.reserve(100).unwrap_err();
    assert!(err.is_unavailable());
    assert!(err.to_string().contains("no audit sink is healthy"));
}

/// Runs a future (e.g. `flush`) from synchronous test code.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn deferred_events_are_built_on_the_worker_in_order_and_a_panic_is_reported() {
    let probe = Probe::named("p");
    let auditor = Auditor::builder()
        .sink_with(probe.clone(), SinkOptions::new().max_wait(Duration::ZERO))
        .build()
        .unwrap();
    let caller = std::thread::current().id();
    let built_on = Arc::new(Mutex::new(Vec::new()));
    let mut seqs = Vec::new();
    for i in 0..3 {
        let built_on = Arc::clone(&built_on);
        seqs.push(
            auditor
                .record_deferred(512, OverflowPolicy::DropNewest, move || {
                    built_on.lock().unwrap().push(std::thread::current().id());
                    item(i)
                })
                .unwrap(),
        );
        if i == 1 {
            seqs.push(auditor.record(item(99)).unwrap());
        }
    }
    let poisoned = auditor
        .record_deferred(512, OverflowPolicy::DropNewest, || {
            panic!("bug in a recipe")
        })
        .unwrap();
    assert!(auditor.shutdown_blocking(DEADLINE).complete);
    assert_eq!(
        probe.user_seqs(),
        seqs,
        "deferred and ready events keep record order"
    );
    assert!(built_on.lock().unwrap().iter().all(|t| *t != caller));
    let failed = probe.of_type("system.audit.build_failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(
        failed[0].seq(),
        Some(poisoned),
        "the lost event's number is accounted for"
    );
}

#[test]
fn deferred_events_are_charged_their_real_size_in_sink_queues() {
    let probe = Probe::named("slow");
    probe.stall.store(true, Ordering::SeqCst);
    let auditor = Auditor::builder()
        .sink_with(probe.clone(), SinkOptions::new().queue_bytes(8 * 1024))
        .build()
        .unwrap();
    // Each recipe is charged a 64 KiB estimate at record time; the events it builds are small.
    for i in 0..5 {
        auditor
            .record_deferred(64 * 1024, OverflowPolicy::DropNewest, move || item(i))
            .unwrap();
    }
    wait_for("the events to reach the stalled sink", || {
        auditor.metrics().sinks[0].pending == 5
    });
    probe.stall.store(false, Ordering::SeqCst);
    let report = auditor.shutdown_blocking(DEADLINE);
    assert!(report.complete, "{report}");
    assert_eq!(report.metrics.sinks[0].dropped, 0);
    assert_eq!(probe.user_seqs().len(), 5);
}

/// Keeps only weak handles to what it delivers, to see when the pipeline lets go.
#[derive(Clone, Default)]
struct Watch {
    seen: Arc<Mutex<Vec<std::sync::Weak<AuditEvent>>>>,
}

impl Sink for Watch {
    fn name(&self) -> &str {
        "watch"
    }

    async fn deliver(&mut self, batch: &Batch) -> Result<(), SinkError> {
        self.seen
            .lock()
            .unwrap()
            .extend(batch.events().iter().map(Arc::downgrade));
        Ok(())
    }
}

#[test]
fn events_the_worker_built_are_freed_soon_after_delivery() {
    let watch = Watch::default();
    let auditor = Auditor::builder()
        .sink(watch.clone())
        .dispatch_interval(Duration::from_millis(5))
        .build()
        .unwrap();
    for n in 0..5_000 {
        auditor
            .record_deferred(4096, OverflowPolicy::DropNewest, move || item(n))
            .unwrap();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert!(rt.block_on(auditor.flush(DEADLINE)));
    // Nothing holds an event once every sink is done with it.
    wait_for("every delivered event to be freed", || {
        let seen = watch.seen.lock().unwrap();
        seen.len() == 5_000 && seen.iter().all(|w| w.upgrade().is_none())
    });
}

#[test]
fn a_loss_that_goes_on_is_reported_within_about_a_second() {
    let stuck = Probe::named("stuck");
    stuck.stall.store(true, Ordering::SeqCst);
    let healthy = Probe::named("healthy");
    let auditor = Auditor::builder()
        .sink_with(stuck.clone(), SinkOptions::new().queue_bytes(16 << 10))
        .sink(healthy.clone())
        .build()
        .unwrap();
    // The stuck sink's queue stays full: the old rule (report once it drains to half) would
    // never report while it is stuck.
    let start = std::time::Instant::now();
    for i in 0..500 {
        auditor.record(item(i)).unwrap();
    }
    let report = loop {
        let reports = healthy.of_type("system.audit.dropped");
        if let Some(r) = reports.first() {
            break r.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "no loss report while the loss goes on"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(start.elapsed() < Duration::from_millis(2_000));
    assert_eq!(report.details["sink"], "stuck");
    stuck.stall.store(false, Ordering::SeqCst);
    let done = auditor.shutdown_blocking(Duration::from_secs(5));
    assert!(
        !done.complete,
        "events were lost: the shutdown is not complete"
    );
    for probe in [&healthy, &stuck] {
        let audit = probe.audit();
        assert!(audit.is_intact(), "{}: {:?}", probe.name, audit.problems);
    }
}

#[test]
fn a_shutdown_that_runs_out_of_time_leaves_a_final_account() {
    let down = Probe::named("down");
    down.fail_next.store(usize::MAX, Ordering::SeqCst);
    let healthy = Probe::named("healthy");
    let auditor = Auditor::builder()
        .sink(down)
        .sink(healthy.clone())
        .build()
        .unwrap();
    for i in 0..10 {
        auditor.record(item(i)).unwrap();
    }
    let report = auditor.shutdown_blocking(Duration::from_millis(300));
    assert!(!report.complete);
    let owed = healthy.of_type("system.audit.undelivered");
    assert_eq!(
        owed.len(),
        1,
        "one account for the sink that could not take its events"
    );
    assert_eq!(owed[0].details["sink"], "down");
    assert_eq!(owed[0].details["count"], 10);
    assert_eq!(owed[0].details["firstSeq"], 1);
    let audit = healthy.audit();
    assert!(audit.is_intact(), "{:?}", audit.problems);
}

/// A required sink that is slow but healthy makes `record` wait (within its block time)
/// instead of losing events; the other sinks wait with it and lose nothing either.
#[test]
fn a_slow_sink_with_back_pressure_holds_record_back_instead_of_dropping() {
    let slow = Probe::named("slow");
    slow.stall.store(true, Ordering::SeqCst);
    let other = Probe::named("other");
    let auditor = Auditor::builder()
        .buffer_bytes(16 << 10)
        .overflow(OverflowPolicy::Block {
            timeout: Duration::from_secs(30),
        })
        .sink_with(
            slow.clone(),
            SinkOptions::new()
                .queue_bytes(16 << 10)
                .max_batch_events(10)
                .back_pressure(true),
        )
        .sink(other.clone())
        .build()
        .unwrap();
    let n = 3_000;
    let recorder = {
        let auditor = auditor.clone();
        std::thread::spawn(move || {
            (0..n)
                .map(|i| auditor.record(item(i)).unwrap())
                .collect::<Vec<u64>>()
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !recorder.is_finished(),
        "record must wait while the slow sink's queue is full"
    );
    assert!(other.user_seqs().len() < n, "the other sink waits too");
    slow.stall.store(false, Ordering::SeqCst);
    let recorded = recorder.join().unwrap();
    let report = auditor.shutdown_blocking(DEADLINE);
    assert!(report.complete, "{report}");
    assert_eq!(slow.user_seqs(), recorded);
    assert_eq!(other.user_seqs(), recorded);
    assert!(slow.of_type("system.audit.dropped").is_empty());
}

/// The only sink has back-pressure by default, but one that is down never holds the
/// service back: its queue drops and reports as before.
#[test]
fn a_failing_sink_never_holds_record_back() {
    let down = Probe::named("down");
    down.fail_next.store(usize::MAX, Ordering::SeqCst);
    let auditor = Auditor::builder()
        .buffer_bytes(16 << 10)
        .overflow(OverflowPolicy::Block {
            timeout: Duration::from_secs(30),
        })
        .sink_with(
            down,
            SinkOptions::new().queue_bytes(16 << 10).retry(fast_retry()),
        )
        .build()
        .unwrap();
    // Let the first delivery fail, so the sink is known to be down.
    auditor.record(item(0)).unwrap();
    wait_for("the first failure", || {
        auditor.metrics().sinks[0].last_error.is_some()
    });
    let start = std::time::Instant::now();
    for i in 1..3_000 {
        auditor.record(item(i)).unwrap();
    }
    // Held back, a single record would have waited 30 s.
    assert!(start.elapsed() < Duration::from_secs(10));
    wait_for("the loss at the down sink's queue", || {
        auditor.metrics().sinks[0].dropped > 0
    });
    let report = auditor.shutdown_blocking(Duration::from_millis(300));
    assert!(!report.complete);
}

/// Shutdown's deadline passing while a sink holds the pipeline back leaves nothing
/// unaccounted in the buffer: the final account names every accepted event still owed.
#[test]
fn a_shutdown_while_held_back_accounts_for_everything_buffered() {
    let stuck = Probe::named("stuck");
    stuck.stall.store(true, Ordering::SeqCst);
    let healthy = Probe::named("healthy");
    let auditor = Auditor::builder()
        .buffer_bytes(16 << 10)
        .overflow(OverflowPolicy::DropNewest)
        .sink_with(
            stuck.clone(),
            SinkOptions::new()
                .queue_bytes(16 << 10)
                .max_batch_events(1)
                .stall_after(Duration::from_secs(60))
                .back_pressure(true),
        )
        .sink(healthy.clone())
        .build()
        .unwrap();
    let accepted: Vec<u64> = (0..2_000)
        .filter_map(|i| auditor.record(item(i)).ok())
        .collect();
    assert!(accepted.len() < 2_000, "the buffer must fill in this test");
    let report = auditor.shutdown_blocking(Duration::from_millis(300));
    assert!(!report.complete);
    assert_eq!(report.metrics.buffered, 0, "{report}");
    // The stuck sink took one event into its hanging delivery; it owes all the others.
    let owed = healthy.of_type("system.audit.undelivered");
    let owed = owed.iter().find(|e| e.details["sink"] == "stuck").unwrap();
    assert_eq!(owed.details["count"], accepted.len() as u64, "{owed:?}");
    assert_eq!(owed.details["lastSeq"], *accepted.last().unwrap());
    // Everything reached the healthy sink once the pipeline was no longer held back.
    assert_eq!(healthy.user_seqs(), accepted);
    stuck.stall.store(false, Ordering::SeqCst);
}
