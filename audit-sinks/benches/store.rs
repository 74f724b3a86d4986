//! Store benchmarks: batched ingest (events/s) into SQLite and PostgreSQL, and search latency
//! (p50/p99) over a large trail for the API's most common question, "what did this actor do
//! in this period", with limit 100 and the summary counts.
//!
//! ```text
//! cargo bench -p audit-sinks --features sqlite,postgres --bench store
//! AUDIT_BENCH_EVENTS=1000000 AUDIT_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test …
//! AUDIT_BENCH_ONLY=postgres …   # or sqlite: one store only
//! ```
//!
//! As a reference in the same run, the JSONL encoding of the same events (what the file sink
//! does before writing) is timed too, so the store's cost per event can be read as a ratio.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use audit_core::store::{QueryParams, Store, TenantScope};
use audit_core::{Actor, AuditEvent, Outcome, Target, Timestamp};
use audit_sinks::{PostgresOptions, PostgresStore, SqliteOptions, SqliteStore, Synchronous};

/// What `StoreSink` asks the pipeline for.
const BATCH: usize = 10_000;
const ACTORS: u32 = 1000;
const SPAN_MS: i64 = 30 * 86_400_000;
const TYPES: [&str; 6] = [
    "auth.login.success",
    "data.vector.read",
    "data.vector.delete",
    "data.search.query",
    "admin.api_key.create",
    "security.access.denied",
];

/// Event `i` of `n`: timestamps rise through the 30-day span as a live trail's do (with a
/// little jitter, as batches from several instances interleave).
fn event(rng: &mut fastrand::Rng, base: i64, i: usize, n: usize) -> AuditEvent {
    let actor = rng.u32(..ACTORS);
    let ts = base + (SPAN_MS as f64 * i as f64 / n as f64) as i64 + rng.i64(0..2000);
    AuditEvent::builder(TYPES[rng.usize(..TYPES.len())])
        .timestamp(Timestamp::from_unix_millis(ts).unwrap())
        .actor(
            Actor::user(format!("user-{actor}"))
                .with_email(format!("user{actor}@example.com"))
                .with_ip_address("203.0.113.7")
                .with_user_agent("Mozilla/5.0 (X11; Linux x86_64)"),
        )
        .organization_id(format!("org-{}", actor % 3))
        .target(Target::new("vector", format!("vec-{}", rng.u32(..100_000))))
        .request_id(audit_core::EventId::new().to_string()) // UUIDv7, as the layer makes
        .description("Deleted vector from index")
        .result(Outcome::Success)
        .detail("index", "products")
        .detail("count", rng.u32(..100))
        .build()
        .unwrap()
}

fn batches(
    range: std::ops::Range<usize>,
    n: usize,
    base: i64,
    seed: u64,
) -> Vec<Vec<Arc<AuditEvent>>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    range
        .map(|i| Arc::new(event(&mut rng, base, i, n)))
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(<[_]>::to_vec)
        .collect()
}

async fn ingest(store: &dyn Store, batches: &[Vec<Arc<AuditEvent>>]) -> f64 {
    let n: usize = batches.iter().map(Vec::len).sum();
    let started = Instant::now();
    for b in batches {
        store.append(b).await.unwrap();
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn encode_rate(batches: &[Vec<Arc<AuditEvent>>]) -> f64 {
    let n: usize = batches.iter().map(Vec::len).sum();
    let started = Instant::now();
    let mut bytes = 0usize;
    for b in batches {
        let mut out = Vec::with_capacity(b.len() * 700);
        for e in b {
            serde_json::to_writer(&mut out, &**e).unwrap();
            out.push(b'\n');
        }
        bytes += out.len();
    }
    std::hint::black_box(bytes);
    n as f64 / started.elapsed().as_secs_f64()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Actor + 7-day window, limit 100, with summary; the principal sees the actor's tenant.
async fn search_latency(store: &dyn Store, base: i64, queries: usize) -> (Duration, Duration, f64) {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut times = Vec::with_capacity(queries);
    let mut returned = 0usize;
    for _ in 0..queries {
        let actor = rng.u32(..ACTORS);
        let start = base + rng.i64(0..SPAN_MS - 7 * 86_400_000);
        let mut p = QueryParams::default();
        p.actor_id = Some(format!("user-{actor}"));
        p.start_time = Some(Timestamp::from_unix_millis(start).unwrap().to_string());
        p.end_time = Some(
            Timestamp::from_unix_millis(start + 7 * 86_400_000)
                .unwrap()
                .to_string(),
        );
        p.limit = Some("100".into());
        let q = p
            .into_query(TenantScope::tenant(format!("org-{}", actor % 3)))
            .unwrap();
        let t = Instant::now();
        let page = store.search(&q).await.unwrap();
        times.push(t.elapsed());
        returned += page.events.len();
    }
    times.sort();
    (
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        returned as f64 / queries as f64,
    )
}

fn report(name: &str, rate: f64, reference: f64) {
    println!(
        "{name:<28} {:>10.0} events/s   ({:.2}x the JSONL encoding rate)",
        rate,
        rate / reference
    );
}

async fn run_store(name: &str, store: &dyn Store, total: usize, reference: f64) {
    let base = Timestamp::now().unix_millis() - SPAN_MS;
    // Ingest rate measured on a fresh 200k slice, then the rest loaded for the search.
    let head = batches(0..total.min(200_000), total, base, 1);
    let rate = ingest(store, &head).await;
    report(&format!("{name} ingest"), rate, reference);
    if total > 200_000 {
        let rest = batches(200_000..total, total, base, 2);
        let rate2 = ingest(store, &rest).await;
        report(&format!("{name} ingest (to {total})"), rate2, reference);
    }
    // Re-appending a batch must be idempotent and cheap.
    let again = ingest(store, &head[..10]).await;
    report(&format!("{name} re-append (dups)"), again, reference);
    let _ = search_latency(store, base, 50).await; // warm caches
    let (p50, p99, avg) = search_latency(store, base, 500).await;
    println!(
        "{name:<28} search actor+7d limit 100 + summary over {total}: p50 {:.2} ms, p99 {:.2} ms ({avg:.0} rows/page)",
        p50.as_secs_f64() * 1000.0,
        p99.as_secs_f64() * 1000.0
    );
}

fn main() {
    let total: usize = std::env::var("AUDIT_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let reference = encode_rate(&batches(0..100_000, 100_000, 0, 3));
        println!(
            "{:<28} {:>10.0} events/s   (reference: serde_json to JSONL, no I/O)",
            "JSONL encoding", reference
        );
        let only = std::env::var("AUDIT_BENCH_ONLY").unwrap_or_default();
        let dir = tempfile::tempdir().unwrap();
        if only != "postgres" {
            sqlite_stores(dir.path(), total, reference).await;
        }
        if only != "sqlite" {
            postgres_store(total, reference).await;
        }
    });
}

/// SQLite with `synchronous=FULL` (the default), then `NORMAL`, in `dir`.
async fn sqlite_stores(dir: &std::path::Path, total: usize, reference: f64) {
    let full = SqliteStore::open(dir.join("full.db")).unwrap();
    run_store("sqlite (synchronous=FULL)", &full, total, reference).await;
    drop(full);
    let mut o = SqliteOptions::default();
    o.synchronous = Synchronous::Normal;
    let normal = SqliteStore::open_with(dir.join("normal.db"), o).unwrap();
    let base = Timestamp::now().unix_millis() - SPAN_MS;
    let rate = ingest(&normal, &batches(0..200_000, 200_000, base, 1)).await;
    report("sqlite (synchronous=NORMAL)", rate, reference);
    drop(normal);
}

async fn postgres_store(total: usize, reference: f64) {
    let url = std::env::var("AUDIT_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("audit_bench_{}", std::process::id());
    match PostgresStore::connect_with(&url, PostgresOptions::default().schema(&schema)).await {
        Ok(pg) => {
            run_store("postgres", &pg, total, reference).await;
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client
                .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                .await
                .unwrap();
        }
        Err(e) => println!("postgres: skipped ({e})"),
    }
}
