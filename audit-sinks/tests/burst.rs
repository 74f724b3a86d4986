//! Bursts far larger than the pipeline's buffers, recorded into one file sink, each in a
//! child process of its own so that its peak memory (`VmHWM`) is the burst's alone.
//!
//! - With default settings a burst the sink absorbs given time loses nothing: the only sink's
//!   full queue holds `record` back instead of dropping.
//! - Memory is bounded by the configured bounds, whatever the burst's length: the pipeline's
//!   peak stays under 1.5 × (buffer + queue + one batch), as the README says.

#![cfg(feature = "file")]
#![allow(clippy::unwrap_used, clippy::expect_used)]
// test helpers may panic
// The child reports to its parent on stdout; the parent shows the figures on stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod memory;

use memory::status_kb;
use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use audit_core::{Actor, AuditEvent, Auditor, HttpFacts, Outcome, SinkOptions};
use audit_sinks::file::FileSink;

/// The child's entry point; a no-op unless the parent set `BURST_EVENTS`.
#[test]
fn child_burst() {
    let Ok(n) = std::env::var("BURST_EVENTS") else {
        return;
    };
    let n: usize = n.parse().unwrap();
    let path = std::env::var("BURST_FILE").unwrap();
    let sink = FileSink::builder(&path).no_size_limit().build().unwrap();
    let builder = match std::env::var("BURST_MIB") {
        Ok(mib) => {
            let bytes = mib.parse::<usize>().unwrap() << 20;
            Auditor::builder()
                .buffer_bytes(bytes)
                .sink_with(sink, SinkOptions::new().queue_bytes(bytes))
        }
        Err(_) => Auditor::builder().sink(sink),
    };
    let auditor = builder.build().unwrap();
    // One event first, so the runtime, the worker and the file are set up before the start
    // is measured.
    auditor.record(event(0)).unwrap();
    let flushed = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(auditor.flush(Duration::from_secs(10)));
    assert!(flushed);
    let start = status_kb("VmRSS:");
    let mut refused = 0;
    for i in 1..n {
        if auditor.record(event(i)).is_err() {
            refused += 1;
        }
    }
    let report = auditor.shutdown_blocking(Duration::from_secs(300));
    let sink = &report.metrics.sinks[0];
    println!(
        "BURST start_kb={start} peak_kb={} refused={refused} buffer_dropped={} \
         sink_dropped={} delivered={} complete={}",
        status_kb("VmHWM:"),
        report.metrics.dropped,
        sink.dropped,
        sink.delivered,
        report.complete,
    );
}

fn event(i: usize) -> AuditEvent {
    AuditEvent::builder("data.vector.update")
        .actor(
            Actor::user(format!("user-{}", i % 50))
                .with_email("member@acme.test")
                .with_ip_address("198.51.100.7"),
        )
        .organization_id("acme")
        .request_id("0193f0c4-7a1b-7c3d-8e4f-0123456789ab")
        .http(
            HttpFacts::default()
                .with_method("PUT")
                .with_route("/v1/indexes/{name}/vectors/{id}")
                .with_status_code(200)
                .with_duration_ms(0.8),
        )
        .detail("dimensions", 768)
        .result(Outcome::Success)
        .build()
        .unwrap()
}

/// Runs one burst in a child process and returns its report line's fields.
fn burst(events: usize, mib: Option<usize>) -> HashMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["child_burst", "--exact", "--nocapture", "--test-threads=1"])
        .env("BURST_EVENTS", events.to_string())
        .env("BURST_FILE", &file);
    if let Some(mib) = mib {
        cmd.env("BURST_MIB", mib.to_string());
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}");
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("BURST ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no report from the child: {stdout}"));
    let fields: HashMap<String, String> = line
        .split(' ')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    eprintln!("burst of {events} events: {line}");
    // Whatever the report says, the file holds each delivered event exactly once, in order.
    let text = std::fs::read_to_string(&file).unwrap();
    let seqs: Vec<u64> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| v["integrity"]["seq"].as_u64().unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "out of order or repeated"
    );
    // And the trail proves itself: every hash and link holds, and every gap in the seq is
    // explained by a loss report in the same file.
    let report = audit_core::integrity::Verifier::verify_lines(text.lines(), None);
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(
        seqs.len().to_string(),
        fields["delivered"],
        "the file and the report disagree"
    );
    fields
}

fn num(fields: &HashMap<String, String>, key: &str) -> u64 {
    fields[key].parse().unwrap()
}

#[test]
fn a_burst_the_only_sink_can_absorb_loses_nothing_with_default_settings() {
    // Far more than the default 32 MiB buffer and 32 MiB queue hold (about 25,000 and
    // 15,000 of these events).
    let f = burst(150_000, None);
    assert_eq!(num(&f, "refused"), 0, "{f:?}");
    assert_eq!(num(&f, "buffer_dropped"), 0, "{f:?}");
    assert_eq!(num(&f, "sink_dropped"), 0, "{f:?}");
    assert_eq!(num(&f, "delivered"), 150_000, "{f:?}");
    assert_eq!(f["complete"], "true");
}

#[test]
fn memory_is_bounded_by_the_configured_bounds_whatever_the_burst() {
    let mib: usize = 8;
    // The bound the README states: 1.5 × (buffer + queue + one batch of 4 MiB), plus 8 MiB
    // for what the process allocates once (runtime, thread stacks, encoder buffers).
    let bound_kb = (((3 * (mib + mib + 4)) << 10) / 2 + (8 << 10)) as u64;
    // Three times the events, the same bound: memory does not grow with the burst.
    for events in [60_000, 180_000] {
        let f = burst(events, Some(mib));
        let held = num(&f, "peak_kb") - num(&f, "start_kb");
        assert!(held <= bound_kb, "held {held} kB > {bound_kb} kB: {f:?}");
        assert_eq!(
            num(&f, "sink_dropped") + num(&f, "buffer_dropped"),
            0,
            "{f:?}"
        );
    }
}
