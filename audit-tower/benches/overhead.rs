//! What auditing adds to a request, against what teams assemble today.
//!
//! ```text
//! cargo bench -p audit-tower --bench overhead
//! ```
//!
//! The same axum router, called in-process through `tower::Service` (no sockets), three ways,
//! in alternating rounds:
//! - `bare`: the router alone;
//! - `trace`: tower-http `SetRequestId` + `PropagateRequestId` + `TraceLayer` (span and
//!   response events at INFO), tracing-subscriber JSON through tracing-appender's
//!   `non_blocking` writer (not lossy) to a file;
//! - `audit`: `AuditLayer` with defaults, into the JSONL `FileSink` (redaction included);
//! - `floor`: a layer that does only what the issue requires of *any* audit layer on the
//!   request path before an event exists: a generated request id in the extensions and echoed
//!   on the response, an [`AuditContext`](audit_tower::AuditContext) in the extensions, and a
//!   latency measured around the call. No event, no trace context, no classification. Its
//!   added wall is a lower bound for the caller wall goal: whatever records the event comes
//!   on top of it.
//!
//! For each: wall time per request on the caller, and whole-process CPU per request (the sum
//! of every thread's run time, so background writers, redaction and serialisation count),
//! measured until the background work has drained. Reported as added cost over `bare` and as
//! the ratio audit / trace, over all rounds and as the median (and range) of the per-round
//! ratios, which one disturbed round on a shared machine does not move. Goals: caller wall
//! ≤ 0.1×, process CPU ≤ 0.25×.
//!
//! For figures that do not depend on the machine's noise, count instructions per thread with
//! callgrind, one stack at a time (the same requests, so the counts compare):
//!
//! ```text
//! OVERHEAD_ONLY=audit valgrind --tool=callgrind --separate-threads=yes target/release/deps/overhead-…
//! ```
//!
//! Under callgrind the threads run one at a time, so the worker drains larger batches than in
//! a real run and more request records overflow the layer's free list (about 80 % against
//! under 1 %): the worker's count then includes record drops a real run mostly does not pay.
//!
//! To compare two trees on a noisy machine, copy each tree's built binary aside and alternate
//! them, then take the median of each one's per-round median ratio over the runs:
//!
//! ```text
//! for i in $(seq 20); do for b in /tmp/overhead-a /tmp/overhead-b; do
//!   echo "$b $($b | grep "^per-round")"; done; done
//! ```
//!
//! Knobs: `OVERHEAD_ONLY=bare|trace|audit|floor` runs one stack alone (for a profiler), without
//! ratios; `OVERHEAD_SHOW=1` prints the first audit event written. The process allocator
//! matters (every stack allocates per request, and the audit pipeline frees on other threads
//! than it allocates); to compare with jemalloc, run the built binary with
//! `LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2`.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout
)]

use std::time::{Duration, Instant};

use audit_core::Auditor;
use audit_sinks::FileSink;
use audit_tower::AuditLayer;
use axum::body::Body;
use axum::routing::put;
use axum::{Json, Router};
use tower::{Service, ServiceExt};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};

const PER_ROUND: usize = 10_000;
/// The stacks, in the order of the arrays below.
const STACKS: [&str; 4] = ["bare", "trace", "audit", "floor"];
const ROUNDS: usize = 9;

fn router() -> Router {
    Router::new().route(
        "/v1/indexes/{name}/vectors/{id}",
        put(|| async { Json(serde_json::json!({"upserted": 1})) }),
    )
}

fn request() -> http::Request<Body> {
    http::Request::put("/v1/indexes/products/vectors/42")
        .header("user-agent", "bench/1.0")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"values":[0.1,0.2,0.3]}"#))
        .unwrap()
}

const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// The `floor` stack's layer: the request-path work the issue requires of any audit layer
/// before it records anything (see the module docs).
#[derive(Clone)]
struct FloorLayer;

impl<S> tower::Layer<S> for FloorLayer {
    type Service = Floor<S>;
    fn layer(&self, inner: S) -> Floor<S> {
        Floor(inner)
    }
}

#[derive(Clone)]
struct Floor<S>(S);

impl<S, B, R> Service<http::Request<B>> for Floor<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = FloorFuture<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let id = audit_tower::RequestId::generate();
        let echo = http::HeaderValue::from_str(id.as_str()).ok();
        req.extensions_mut().insert(id);
        req.extensions_mut()
            .insert(audit_tower::AuditContext::default());
        FloorFuture {
            fut: self.0.call(req),
            echo,
            started,
        }
    }
}

#[pin_project::pin_project]
struct FloorFuture<F> {
    #[pin]
    fut: F,
    echo: Option<http::HeaderValue>,
    started: Instant,
}

impl<F, R, E> std::future::Future for FloorFuture<F>
where
    F: std::future::Future<Output = Result<http::Response<R>, E>>,
{
    type Output = F::Output;
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        let mut resp = std::task::ready!(this.fut.poll(cx))?;
        if let Some(v) = this.echo.take() {
            resp.headers_mut().insert(X_REQUEST_ID, v);
        }
        std::hint::black_box(this.started.elapsed());
        std::task::Poll::Ready(Ok(resp))
    }
}

/// CPU time of every thread of this process, from the kernel's scheduler statistics.
fn process_cpu() -> Duration {
    let mut total = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
                total += s
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    Duration::from_nanos(total)
}

#[derive(Default, Clone, Copy)]
struct Totals {
    wall: Duration,
    cpu: Duration,
    n: u32,
}

async fn round<S>(
    svc: &mut S,
    settle: impl std::future::Future<Output = ()>,
) -> (Duration, Duration)
where
    S: Service<http::Request<Body>, Response = axum::response::Response> + Clone,
    S::Error: std::fmt::Debug,
{
    let cpu0 = process_cpu();
    let t0 = Instant::now();
    for _ in 0..PER_ROUND {
        let resp = svc.ready().await.unwrap().call(request()).await.unwrap();
        axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
    }
    let wall = t0.elapsed();
    settle.await;
    (wall, process_cpu() - cpu0)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    // The "today" stack's logging: JSON lines through a non-lossy background writer.
    let appender = tracing_appender::rolling::never(dir.path(), "trace.log");
    let (writer, _guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(appender);
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .json()
            .with_writer(writer)
            .finish(),
    )
    .unwrap();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let auditor = rt.block_on(async {
        Auditor::builder()
            .service("bench")
            .sink(FileSink::new(dir.path().join("audit.jsonl")).unwrap())
            .build()
            .unwrap()
    });

    // `with_state(())` turns every handler into a route once, as `axum::serve` and
    // `into_make_service` do; without it axum rebuilds each route, with its layers, per call.
    let mut bare = router().with_state(()).into_service::<Body>();
    let mut trace = router()
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(tracing::Level::INFO))
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(())
        .into_service::<Body>();
    let mut audit = router()
        .layer(AuditLayer::new(auditor.clone()))
        .with_state(())
        .into_service::<Body>();
    let mut floor = router()
        .layer(FloorLayer)
        .with_state(())
        .into_service::<Body>();

    let only = std::env::var("OVERHEAD_ONLY").ok();
    let selected = |which: usize| only.as_deref().is_none_or(|o| o == STACKS[which]);
    let mut totals = [Totals::default(); 4];
    // Per round, per stack: (wall, cpu) in ns per request, for the per-round ratios.
    let mut per_round = vec![[(0.0f64, 0.0f64); 4]; ROUNDS];
    rt.block_on(async {
        // Warm-up, unmeasured.
        if selected(0) {
            round(&mut bare, async {}).await;
        }
        if selected(1) {
            round(&mut trace, tokio::time::sleep(Duration::from_millis(300))).await;
        }
        if selected(2) {
            round(&mut audit, async {
                auditor.flush(Duration::from_secs(30)).await;
            })
            .await;
        }
        if selected(3) {
            round(&mut floor, async {}).await;
        }
        for (r, this_round) in per_round.iter_mut().enumerate() {
            // Alternate the order so drift on a shared machine spreads evenly.
            let order: [usize; 4] = if r % 2 == 0 {
                [0, 1, 2, 3]
            } else {
                [3, 2, 1, 0]
            };
            for which in order.into_iter().filter(|w| selected(*w)) {
                let (wall, cpu) = match which {
                    0 => round(&mut bare, async {}).await,
                    // The appender has no flush; its queue drains well within this.
                    1 => round(&mut trace, tokio::time::sleep(Duration::from_millis(300))).await,
                    3 => round(&mut floor, async {}).await,
                    _ => {
                        round(&mut audit, async {
                            assert!(auditor.flush(Duration::from_secs(30)).await);
                        })
                        .await
                    }
                };
                let t = &mut totals[which];
                t.wall += wall;
                t.cpu += cpu;
                t.n += 1;
                this_round[which] = (
                    wall.as_nanos() as f64 / PER_ROUND as f64,
                    cpu.as_nanos() as f64 / PER_ROUND as f64,
                );
            }
        }
    });
    let report = auditor.metrics();
    assert_eq!(
        report.dropped, 0,
        "the audit pipeline dropped events: figures invalid"
    );

    if std::env::var_os("OVERHEAD_SHOW").is_some() {
        let text = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
        println!("{}", text.lines().next().unwrap_or_default());
    }
    if only.is_some() {
        for (name, t) in STACKS.iter().zip(totals) {
            if t.n > 0 {
                let n = f64::from(t.n) * PER_ROUND as f64;
                println!(
                    "{name}: wall {:.0} ns, process cpu {:.0} ns per request",
                    t.wall.as_nanos() as f64 / n,
                    t.cpu.as_nanos() as f64 / n
                );
            }
        }
        return;
    }
    let per = |t: Totals| {
        let n = f64::from(t.n) * PER_ROUND as f64;
        (t.wall.as_nanos() as f64 / n, t.cpu.as_nanos() as f64 / n)
    };
    let (bw, bc) = per(totals[0]);
    let (tw, tc) = per(totals[1]);
    let (aw, ac) = per(totals[2]);
    let (fw, fc) = per(totals[3]);
    println!("per request, {ROUNDS} rounds x {PER_ROUND} requests:");
    println!("  bare   wall {bw:>8.0} ns   process cpu {bc:>8.0} ns");
    println!(
        "  trace  wall {tw:>8.0} ns   process cpu {tc:>8.0} ns   added wall {:>7.0} ns  cpu {:>7.0} ns",
        tw - bw,
        tc - bc
    );
    println!(
        "  audit  wall {aw:>8.0} ns   process cpu {ac:>8.0} ns   added wall {:>7.0} ns  cpu {:>7.0} ns",
        aw - bw,
        ac - bc
    );
    println!(
        "  floor  wall {fw:>8.0} ns   process cpu {fc:>8.0} ns   added wall {:>7.0} ns  cpu {:>7.0} ns",
        fw - bw,
        fc - bc
    );
    println!(
        "ratio audit/trace of added cost: caller wall {:.2}x (goal <= 0.10x), process cpu {:.2}x (goal <= 0.25x)",
        (aw - bw) / (tw - bw),
        (ac - bc) / (tc - bc)
    );
    // The same ratios per round (each from adjacent measurements of the three stacks), as
    // median and range: one disturbed round on a shared machine moves the totals above but
    // not the median.
    let ratios = |stack: usize, pick: fn((f64, f64)) -> f64| {
        let mut v: Vec<f64> = per_round
            .iter()
            .map(|r| (pick(r[stack]) - pick(r[0])) / (pick(r[1]) - pick(r[0])))
            .collect();
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    let (wm, wlo, whi) = ratios(2, |(w, _)| w);
    let (cm, clo, chi) = ratios(2, |(_, c)| c);
    println!(
        "per-round ratios, median (range): caller wall {wm:.2}x ({wlo:.2}-{whi:.2}), process cpu {cm:.2}x ({clo:.2}-{chi:.2})"
    );
    let (fwm, fwlo, fwhi) = ratios(3, |(w, _)| w);
    println!(
        "floor/trace per-round caller wall, median (range): {fwm:.2}x ({fwlo:.2}-{fwhi:.2}): the least any layer doing what the issue requires adds"
    );
    println!("audit events delivered: {}", report.sinks[0].delivered);
}
