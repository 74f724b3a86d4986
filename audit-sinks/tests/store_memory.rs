//! The SQLite store's memory under load, in a child process of its own so that its peak
//! (`VmHWM`) is the store's: ingest through the pipeline, then searches on every reader
//! connection at once. The page caches of all connections together stay within
//! `SqliteOptions::cache_mib`.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used)]
// The child reports to its parent on stdout; the parent shows the figures on stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod memory;

use memory::status_kb;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use audit_core::store::{QueryParams, Store, StoreSink, TenantScope};
use audit_core::{Actor, AuditEvent, Auditor};
use audit_sinks::SqliteStore;

fn event(i: usize) -> AuditEvent {
    AuditEvent::builder(
        [
            "data.vector.update",
            "auth.login.success",
            "data.index.read",
        ][i % 3],
    )
    .actor(Actor::user(format!("user-{}", i % 500)).with_email(format!("u{}@acme.test", i % 500)))
    .organization_id(format!("tenant-{}", i % 20))
    .request_id(format!("req-{i:012}"))
    .description(format!(
        "request number {i} with some words to index and scan"
    ))
    .detail("n", i)
    .build()
    .unwrap()
}

struct Discard;

impl audit_core::Sink for Discard {
    fn name(&self) -> &str {
        "discard"
    }
    async fn deliver(&mut self, _batch: &audit_core::Batch) -> Result<(), audit_core::SinkError> {
        Ok(())
    }
}

/// The child: fills a store through the pipeline in paced steps, then searches it hard.
#[test]
fn child_store_load() {
    let Ok(n) = std::env::var("STORE_EVENTS") else {
        return;
    };
    let n: usize = n.parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut options = audit_sinks::SqliteOptions::default();
    if let Ok(mib) = std::env::var("STORE_CACHE_MIB") {
        options.cache_mib = mib.parse().unwrap();
    }
    let store = Arc::new(SqliteStore::open_with(dir.path().join("audit.db"), options).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The baseline: the same load through the pipeline into a sink that keeps nothing.
    let baseline = std::env::var_os("STORE_NONE").is_some();
    let auditor = if baseline {
        Auditor::builder().sink(Discard).build().unwrap()
    } else {
        Auditor::builder()
            .sink(StoreSink::new(store.clone()))
            .build()
            .unwrap()
    };
    let start = status_kb("VmRSS:");
    for step in 0..n / 5_000 {
        for i in step * 5_000..(step + 1) * 5_000 {
            auditor.record(event(i)).unwrap();
        }
        // Paced: the store keeps up, so its queue stays small and what grows is the store's.
        assert!(rt.block_on(auditor.flush(Duration::from_secs(60))));
    }
    let ingested = status_kb("VmHWM:");
    // Every reader connection at once, queries that touch many pages.
    let mut handles = Vec::new();
    for t in 0..if baseline { 0 } else { 8usize } {
        let store = store.clone();
        handles.push(std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            for k in 0..40usize {
                let params: QueryParams = serde_json::from_value(match (t + k) % 4 {
                    0 => serde_json::json!({"q": format!("number {}", k * 7), "limit": 100}),
                    1 => serde_json::json!({"actorId": format!("user-{}", k * 11 % 500)}),
                    2 => serde_json::json!({"eventType": "auth.*", "limit": 1000}),
                    _ => serde_json::json!({"requestId": format!("req-{:012}", k * 97)}),
                })
                .unwrap();
                let q = params.into_query(TenantScope::All).unwrap();
                rt.block_on(store.search(&q)).unwrap();
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    let report = auditor.shutdown_blocking(Duration::from_secs(60));
    let stored = report.metrics.sinks[0].delivered;
    println!(
        "STORE start_kb={start} ingest_kb={ingested} peak_kb={} stored={stored} complete={}",
        status_kb("VmHWM:"),
        report.complete
    );
}

/// Runs the child and returns its report's fields.
fn child(events: usize, env: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "child_store_load",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("STORE_EVENTS", events.to_string());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}");
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("STORE ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no report from the child: {stdout}"));
    eprintln!("{env:?}: {line}");
    line.split(' ')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn the_sqlite_stores_memory_stays_within_its_cache_budget_under_load() {
    let events = 200_000;
    let kb =
        |f: &std::collections::HashMap<String, String>, k: &str| -> u64 { f[k].parse().unwrap() };
    // The same paced load into a sink that keeps nothing: what the pipeline itself holds.
    let base = child(events, &[("STORE_NONE", "1")]);
    let base_held = kb(&base, "peak_kb") - kb(&base, "start_kb");
    // Into the store, then 8 threads searching at once (up to 1,000 events each), with
    // glibc as it comes (a heap per allocating thread, up to 8 per core), then with
    // MALLOC_ARENA_MAX=2 as the README suggests for search-heavy services.
    let goal = 64 << 10;
    for (env, slack) in [
        (("MALLOC_ARENA_MAX", "2"), 0),
        (("AUDIT_UNUSED", "1"), 8 << 10),
    ] {
        let store = child(events, &[env]);
        assert_eq!(store["complete"], "true");
        assert!(kb(&store, "stored") >= events as u64);
        let ingest_held = kb(&store, "ingest_kb") - kb(&store, "start_kb");
        let peak_held = kb(&store, "peak_kb") - kb(&store, "start_kb");
        assert!(
            ingest_held.saturating_sub(base_held) <= goal,
            "{env:?} ingest: the store held {} kB above the pipeline's {base_held} kB",
            ingest_held - base_held
        );
        // The slack is for the searching threads' heaps holding their results (measured:
        // 51–58 MiB in all with two heaps, 67–70 MiB with glibc's default).
        assert!(
            peak_held.saturating_sub(base_held) <= goal + slack,
            "{env:?} with searches: the store held {} kB above the pipeline's {base_held} kB",
            peak_held - base_held
        );
    }
}
