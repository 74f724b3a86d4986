//! The demo service: a small multi-tenant vector-index API with every call audited.
//!
//! ```text
//! cargo run -p audit-examples --bin demo [-- --addr HOST:PORT] [--audit-file PATH]
//!     [--store sqlite:PATH | postgres:URL | none] [--sink SPEC]... [--simulate N]
//!     [--report-interval SECS] [--checkpoint-key PEM] [--keys-file PATH]
//!     [--checkpoint-interval SECS] [--spool DIR | --no-spool] [--export-destination URL]...
//! ```
//!
//! Starts on `127.0.0.1:3000`, writes audit events as JSON lines to `./audit.jsonl` and into a
//! queryable store (`sqlite:./audit.db` by default), serves the audit API at `/api/audit`
//! (admins' bearer tokens carry `audit:read` and `audit:write` for their organisation), and
//! prints the demo credentials. `--simulate N` drives a realistic mix of N rounds of calls
//! through real HTTP on loopback, prints a table of what was captured, and exits. SIGTERM or
//! Ctrl-C flush every sink before exit.
//!
//! Events are hash-chained and a signed checkpoint is recorded every 10 s (or 10,000 events)
//! and at shutdown, with the Ed25519 key in `--checkpoint-key` (PKCS#8 PEM) or one generated
//! at start. Its public key is added to `--keys-file` (default `audit-keys.json` beside the
//! audit file), which
//! keeps the keys of earlier runs, so `audit verify --keys audit-keys.json audit.jsonl` and
//! `GET /api/audit/verify` check every run's checkpoints.
//!
//! Every event is also written to a durable spool (`--spool DIR`, default `audit-spool`
//! beside the audit file) before or while the sinks get it; authentication and
//! administration routes are strict, so their responses wait until their event is on disk.
//! After a crash, the next start delivers what the sinks had not acknowledged and records
//! `system.audit.unclean_shutdown`. `--no-spool` runs best-effort (events in memory until
//! delivered).
//!
//! The same trail is also served in two other dialects: an orchestrator's audit search at
//! `/api/v1/audit` (HTTP Basic client credentials) and an audit-log REST resource at
//! `/api/logging/audit` (bearer tokens; API keys may read). `--export-destination URL`
//! (`s3://bucket/prefix/`, configured from the `AWS_*` environment, or `file:///dir/`)
//! lets every tenant's admins write exports there as background jobs.

#![allow(clippy::print_stdout, clippy::print_stderr)]

/// Prints a line; a closed stdout (the reader went away) is not a reason to fail.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
pub(crate) use say;

mod routes;
mod serve;
mod simulate;
mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use audit_core::integrity::{CheckpointKey, CheckpointPolicy, Keyring};
use audit_core::live::LiveFeed;
use audit_core::store::{
    RetentionHandle, RetentionPolicy, RetentionRule, Store, StoreSink, TenantScope,
};
use audit_core::{Auditor, Sink as _, SpoolOptions};
use audit_sinks::{FileSink, PostgresStore, SqliteStore, spec};
use audit_tower::api;
use audit_tracing::{AuditTracingLayer, audit, interest_filter};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

/// Where the queryable copy of the trail lives.
#[derive(Debug, Clone, PartialEq)]
enum StoreSpec {
    Sqlite(PathBuf),
    Postgres(String),
    None,
}

impl std::str::FromStr for StoreSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "none" {
            Ok(StoreSpec::None)
        } else if let Some(path) = s.strip_prefix("sqlite:").filter(|p| !p.is_empty()) {
            Ok(StoreSpec::Sqlite(PathBuf::from(path)))
        } else if let Some(url) = s.strip_prefix("postgres:").filter(|u| !u.is_empty()) {
            // `postgres:postgres://…` or the shorter `postgres://…`.
            Ok(StoreSpec::Postgres(if url.starts_with("//") {
                s.to_owned()
            } else {
                url.to_owned()
            }))
        } else {
            Err(format!(
                "--store {s:?} is not sqlite:PATH, postgres:URL or none"
            ))
        }
    }
}

struct Args {
    addr: SocketAddr,
    audit_file: PathBuf,
    store: StoreSpec,
    simulate: Option<usize>,
    report_interval: Duration,
    /// `--header-timeout`: the longest wait for a request's headers.
    header_timeout: Duration,
    /// Extra sinks from `--sink SPEC` and `AUDIT_SINKS`.
    sinks: Vec<String>,
    /// `--checkpoint-key`: the PKCS#8 PEM signing key (generated when absent).
    checkpoint_key: Option<PathBuf>,
    /// `--keys-file`: the public keyring, extended with this run's key (default:
    /// `audit-keys.json` beside the audit file).
    keys_file: Option<PathBuf>,
    /// `--checkpoint-interval`: time between checkpoints.
    checkpoint_interval: Duration,
    /// `--spool DIR` (default `audit-spool` beside the audit file) or none (`--no-spool`).
    spool: Option<PathBuf>,
    no_spool: bool,
    /// `--export-destination URL`: where `POST /export` may write for every tenant.
    export_destinations: Vec<String>,
}

const DAY: Duration = Duration::from_secs(86_400);

/// The demo's retention: 180 days, 90 for search queries.
fn retention() -> Result<RetentionPolicy, audit_core::Error> {
    Ok(RetentionPolicy::keep_for(180 * DAY)
        .rule(RetentionRule::keep_for(90 * DAY).for_event_type("data.search.*")?))
}

async fn open_store(spec: &StoreSpec) -> Result<Option<Arc<dyn Store>>, String> {
    Ok(match spec {
        StoreSpec::Sqlite(path) => {
            Some(Arc::new(SqliteStore::open(path).map_err(|e| {
                format!("cannot open {}: {e}", path.display())
            })?))
        }
        StoreSpec::Postgres(url) => {
            Some(Arc::new(PostgresStore::connect(url).await.map_err(
                |e| format!("cannot open the PostgreSQL store: {e}"),
            )?))
        }
        StoreSpec::None => None,
    })
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
        audit_file: PathBuf::from("audit.jsonl"),
        store: StoreSpec::Sqlite(PathBuf::from("audit.db")),
        simulate: None,
        report_interval: Duration::from_secs(3600),
        header_timeout: serve::HEADER_READ_TIMEOUT,
        checkpoint_key: None,
        keys_file: None,
        checkpoint_interval: CheckpointPolicy::default().every,
        spool: None,
        no_spool: false,
        export_destinations: Vec::new(),
        sinks: std::env::var("AUDIT_SINKS")
            .map(|v| {
                spec::split_list(&v)
                    .into_iter()
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match flag.as_str() {
            "--addr" => {
                let v = value("--addr")?;
                args.addr = v
                    .parse()
                    .map_err(|_| format!("--addr {v:?} is not HOST:PORT"))?;
            }
            "--audit-file" => args.audit_file = PathBuf::from(value("--audit-file")?),
            "--store" => args.store = value("--store")?.parse()?,
            "--sink" => {
                let v = value("--sink")?;
                spec::parse(&v).map_err(|e| format!("--sink: {e}"))?;
                args.sinks.push(v);
            }
            "--report-interval" => {
                let v = value("--report-interval")?;
                let secs: u64 = v.parse().ok().filter(|s| *s > 0).ok_or(format!(
                    "--report-interval {v:?} is not a positive number of seconds"
                ))?;
                args.report_interval = Duration::from_secs(secs);
            }
            "--header-timeout" => {
                let v = value("--header-timeout")?;
                let secs: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| *s > 0.0 && s.is_finite())
                    .ok_or(format!(
                        "--header-timeout {v:?} is not a positive number of seconds"
                    ))?;
                args.header_timeout = Duration::from_secs_f64(secs);
            }
            "--spool" => args.spool = Some(value("--spool")?.into()),
            "--no-spool" => args.no_spool = true,
            "--export-destination" => args
                .export_destinations
                .push(value("--export-destination")?),
            "--checkpoint-key" => args.checkpoint_key = Some(value("--checkpoint-key")?.into()),
            "--keys-file" => args.keys_file = Some(value("--keys-file")?.into()),
            "--checkpoint-interval" => {
                let v = value("--checkpoint-interval")?;
                let secs: f64 = v.parse().ok().filter(|s: &f64| *s > 0.0).ok_or(format!(
                    "--checkpoint-interval {v:?} is not a positive number of seconds"
                ))?;
                args.checkpoint_interval = Duration::from_secs_f64(secs);
            }
            "--simulate" => {
                let v = value("--simulate")?;
                args.simulate = Some(
                    v.parse()
                        .map_err(|_| format!("--simulate {v:?} is not a number"))?,
                );
            }
            "-h" | "--help" => {
                return Err("usage: demo [--addr HOST:PORT] [--audit-file PATH] \
                     [--store sqlite:PATH | postgres:URL | none] [--sink SPEC]... \
                     [--simulate N] [--report-interval SECS] [--header-timeout SECS] \
                     [--checkpoint-key PEM] [--keys-file PATH] [--checkpoint-interval SECS] \
                     [--spool DIR | --no-spool] [--export-destination URL]...   \
                     (AUDIT_SINKS=SPEC,SPEC also adds sinks)"
                    .into());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if args.no_spool {
        args.spool = None;
    } else if args.spool.is_none() {
        args.spool = Some(args.audit_file.with_file_name("audit-spool"));
    }
    if args.keys_file.is_none() {
        args.keys_file = Some(args.audit_file.with_file_name("audit-keys.json"));
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let sink = FileSink::new(&args.audit_file)
        .map_err(|e| format!("cannot open {}: {e}", args.audit_file.display()))?;
    let store = open_store(&args.store).await?;
    let state = Arc::new(state::State::seeded());
    // Live subscribers of the audit API's `GET /stream`.
    let live = LiveFeed::new(1024);
    let (key, keys) = checkpoint_keys(&args)?;
    let mut builder = Auditor::builder()
        .service("vector-api")
        .checkpoints(key)
        .checkpoint_policy(CheckpointPolicy::new(10_000, args.checkpoint_interval))
        .sink(sink)
        .sink(live.clone());
    if let Some(store) = &store {
        builder = builder.sink(StoreSink::new(store.clone()));
    }
    match &args.spool {
        Some(dir) => builder = builder.spool(SpoolOptions::new(dir)),
        // Best effort: a crash still leaves a trace in the next run's trail.
        None => builder = builder.state_file(args.audit_file.with_file_name("audit-state.json")),
    }
    for (i, s) in args.sinks.iter().enumerate() {
        // Specs may hold secrets: only their redacted form is ever printed.
        let sink = spec::build(s)
            .await
            .map_err(|e| format!("sink {}: {e}", spec::redact(s)))?;
        // Named `<kind>#<n>`, so two sinks of one kind (or one like the audit file) coexist.
        let options = sink
            .default_options()
            .name(format!("{}#{}", sink.name(), i + 1));
        builder = builder.sink_with(sink, options);
    }
    let auditor = builder.build()?;
    // Application logs to stderr (RUST_LOG, default warn); `audit!` never depends on them.
    // The audit layer keeps request context on spans for work spawned from handlers.
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")));
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(AuditTracingLayer::new(auditor.clone()).with_filter(interest_filter()))
        .try_init();
    let usage = tokio::spawn(usage_report(Arc::clone(&state), args.report_interval));
    let _retention: Option<RetentionHandle> = match &store {
        Some(store) => Some(RetentionHandle::spawn(
            store.clone(),
            retention()?,
            Duration::from_secs(3600),
            auditor.clone(),
        )),
        None => None,
    };
    let mut destinations = api::Destinations::new();
    for url in &args.export_destinations {
        destinations = destinations
            .allow(url, TenantScope::All)
            .map_err(|e| format!("--export-destination {e}"))?;
    }
    let app = routes::app(
        Arc::clone(&state),
        auditor.clone(),
        store.clone(),
        routes::Extras {
            live,
            keys,
            destinations,
        },
    );

    let signals = Signals::install();
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    let addr = listener.local_addr()?;
    say!("listening on http://{addr}");
    say!("audit events: {}", args.audit_file.display());
    match &args.spool {
        Some(dir) => say!(
            "durable spool: {} (strict routes wait for it)",
            dir.display()
        ),
        None => say!("durable spool: off (--no-spool): events live in memory until delivered"),
    }
    if let Some(keys) = &args.keys_file {
        say!(
            "checkpoint keys: {} (verify: audit verify --keys {} {})",
            keys.display(),
            keys.display(),
            args.audit_file.display()
        );
    }
    for s in &args.sinks {
        say!("audit sink: {}", spec::redact(s));
    }
    for d in &args.export_destinations {
        say!("export destination: {d} (POST /api/audit/export with \"destination\")");
    }
    match &args.store {
        StoreSpec::None => say!("audit API: off (--store none)"),
        _ => {
            say!("audit API: http://{addr}/api/audit (admin bearer tokens)");
            say!("audit log viewer: http://{addr}/api/audit/ui");
            say!(
                "orchestrator search: http://{addr}/api/v1/audit (Basic acme-orchestrator:acme-client-secret, \
                 globex-orchestrator:globex-client-secret, platform-orchestrator:platform-client-secret)"
            );
            say!(
                "audit resource: http://{addr}/api/logging/audit/ (admin bearer tokens; API keys read)"
            );
        }
    }
    say!("demo users (POST /auth/login {{\"email\", \"password\"}}):");
    say!("  acme   admin@acme.test    / admin-password   (admin)");
    say!("  acme   member@acme.test   / member-password  (member)");
    say!("  globex admin@globex.test  / globex-password  (admin)");
    say!(
        "  -      ops@platform.test  / ops-password     (operator: reads and verifies every tenant's trail)"
    );

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve::serve(listener, app, args.header_timeout, async {
        let _ = stop_rx.await;
    }));

    match args.simulate {
        Some(n) => {
            simulate::run(addr, n).await?;
        }
        None => signals.wait().await,
    }
    let _ = stop_tx.send(());
    server.await??;
    usage.abort();

    let report = auditor.shutdown(Duration::from_secs(10)).await;
    if let Some(n) = args.simulate {
        simulate::print_table(&args.audit_file, n)?;
    }
    say!("{report}");
    if report.complete {
        Ok(())
    } else {
        Err("not every audit event was delivered".into())
    }
}

/// The checkpoint signing key (read, or generated for this run) and the keyring of every run,
/// with this run's public key added and written back.
fn checkpoint_keys(args: &Args) -> Result<(CheckpointKey, Keyring), String> {
    let key = match &args.checkpoint_key {
        Some(path) => CheckpointKey::from_file(path).map_err(|e| e.to_string())?,
        None => CheckpointKey::generate().map_err(|e| e.to_string())?,
    };
    let Some(file) = &args.keys_file else {
        return Err("no keys file".into());
    };
    let mut keys = if file.exists() {
        Keyring::load(file).map_err(|e| e.to_string())?
    } else {
        Keyring::default()
    };
    keys.add(key.public_key());
    // Written whole, then renamed: a crash never leaves a half keyring.
    let tmp = file.with_extension("json.tmp");
    std::fs::write(&tmp, keys.to_json())
        .and_then(|()| std::fs::rename(&tmp, file))
        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    Ok((key, keys))
}

/// A background job: outside any request, so its events have no request context and go to
/// the global auditor (set by `AuditTracingLayer::new`).
async fn usage_report(state: Arc<state::State>, every: Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tick.tick().await;
        for (org, indexes, vectors) in state.usage() {
            audit!(
                event_type = "data.usage.report",
                context.organization_id = %org,
                details.indexes = indexes,
                details.vectors = vectors,
                result = audit_core::Outcome::Success,
                "Usage report for {org}"
            );
        }
    }
}

/// SIGTERM and Ctrl-C, listened for from before the demo says it is listening: a signal
/// that comes right after that line must not find the default action (exit without a
/// flush) still in place.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Signals {
        Signals {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok(),
        }
    }

    async fn wait(self) {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        if let Some(mut term) = self.term {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = ctrl_c.await;
    }
}
