//! `audit`: command-line tools for audit trails. `audit verify` checks the hash chain and the
//! signed checkpoints of JSON-lines files and stores; `audit migrate` puts a store's schema
//! in place (see `audit help`).
// A command-line tool's output is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use audit_core::integrity::{Keyring, Report, Verifier};

const USAGE: &str = "\
usage: audit verify [--keys FILE] [--json] [--schema NAME] SOURCE...
       audit verify --manifest MANIFEST [--keys FILE] [--json] EXPORT
       audit migrate [--schema NAME] [--grant ROLE] postgres://URL

`audit migrate` creates or migrates a PostgreSQL store's schema (default public), as the
tables' owner, so that services can connect with a role that only reads and writes rows
(PostgresOptions::migrate(false)); `--grant ROLE` then grants ROLE exactly that. Safe to
run again. Exit status 0 done, 3 it failed.

Checks that an audit trail is complete and unaltered: every event's hash, the links between
events, the gaps (each must be explained by a drop report or a tombstone), and the signed
checkpoints (with --keys).

SOURCE is one of:
  FILE               a JSON-lines file written by the file sink; its rotated files are read
                     with it, oldest first
  sqlite:PATH        a SQLite store (feature `sqlite`)
  postgres://URL     a PostgreSQL store (feature `postgres`); --schema names its schema
                     (default public)
Several files of one trail may be given, oldest first.

With --manifest, EXPORT is a file from POST /api/audit/export (CSV, JSON or NDJSON) and
MANIFEST the JSON from POST /api/audit/export/manifest with the same filters: the export is
checked on its own, against the chain segments and signed checkpoints the manifest carries.

--keys FILE   the trusted public keys: a keyring JSON (GET /api/audit/keys) or PEM blocks.
              Without it only the chain is checked.
--json        print the full report as JSON

Exit status: 0 every event verified and every stream closed by its final checkpoint; 1 a
problem was found; 2 no problem, but not everything is proven (no --keys, events after the
last checkpoint, or a stream without its final checkpoint: still being written, cut short or
crashed); 3 the sources or keys could not be read.";

/// How the run ends.
enum Failure {
    Usage(String),
    Read(String),
}

struct Args {
    keys: Option<PathBuf>,
    manifest: Option<PathBuf>,
    json: bool,
    schema: String,
    sources: Vec<String>,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, Failure> {
    match args.next().as_deref() {
        Some("verify") => {}
        Some("help" | "--help" | "-h") | None => return Err(Failure::Usage(String::new())),
        Some(other) => return Err(Failure::Usage(format!("unknown command {other:?}"))),
    }
    let mut out = Args {
        keys: None,
        manifest: None,
        json: false,
        schema: "public".into(),
        sources: Vec::new(),
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--keys" => {
                out.keys = Some(
                    args.next()
                        .ok_or_else(|| Failure::Usage("--keys needs a file".into()))?
                        .into(),
                )
            }
            "--manifest" => {
                out.manifest = Some(
                    args.next()
                        .ok_or_else(|| Failure::Usage("--manifest needs a file".into()))?
                        .into(),
                )
            }
            "--schema" => {
                out.schema = args
                    .next()
                    .ok_or_else(|| Failure::Usage("--schema needs a name".into()))?
            }
            "--json" => out.json = true,
            "-h" | "--help" => return Err(Failure::Usage(String::new())),
            s if s.starts_with("--") => {
                return Err(Failure::Usage(format!("unknown option {s}")));
            }
            _ => out.sources.push(a),
        }
    }
    if out.sources.is_empty() {
        return Err(Failure::Usage("no source given".into()));
    }
    Ok(out)
}

/// A progress line on stderr when it is a terminal, redrawn at most ten times a second.
struct Progress {
    on: bool,
    last: Instant,
    total: u64,
}

impl Progress {
    fn new(total: u64) -> Progress {
        Progress {
            on: std::io::stderr().is_terminal(),
            last: Instant::now(),
            total,
        }
    }

    fn show(&mut self, done: u64, unit: &str) {
        if !self.on || self.last.elapsed() < Duration::from_millis(100) {
            return;
        }
        self.last = Instant::now();
        let line = if self.total > 0 {
            let frac = (done as f64 / self.total as f64).min(1.0);
            let filled = (frac * 30.0) as usize;
            format!(
                "\r[{}{}] {:>3}% {done}/{} {unit}",
                "#".repeat(filled),
                ".".repeat(30 - filled),
                (frac * 100.0) as u32,
                self.total
            )
        } else {
            format!("\r{done} {unit}")
        };
        let mut err = std::io::stderr();
        let _ = err.write_all(line.as_bytes());
        let _ = err.flush();
    }

    fn done(&self) {
        if self.on {
            eprint!("\r\x1b[2K");
        }
    }
}

/// The files to read for the file arguments: each with its rotated files first, each once.
fn file_list(args: &[&str]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for a in args {
        let path = Path::new(a);
        for f in audit_sinks::file::rotated_files(path)
            .into_iter()
            .chain([path.to_owned()])
        {
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    out
}

fn verify_files(v: &mut Verifier, files: &[PathBuf]) -> Result<(), Failure> {
    let total = files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum();
    let mut progress = Progress::new(total);
    let mut done = 0u64;
    for f in files {
        let file = std::fs::File::open(f)
            .map_err(|e| Failure::Read(format!("cannot open {}: {e}", f.display())))?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut line = Vec::new();
        loop {
            line.clear();
            // Bounded: one event is at most 64 KiB, so a line of 16 MiB is not an event.
            let n = (&mut reader)
                .take(16 << 20)
                .read_until(b'\n', &mut line)
                .map_err(|e| Failure::Read(format!("cannot read {}: {e}", f.display())))?;
            if n == 0 {
                break;
            }
            done += n as u64;
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\n', '\r']);
            if !text.is_empty() {
                v.push_line(text);
            }
            progress.show(done, "bytes");
        }
    }
    progress.done();
    Ok(())
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn verify_store(
    store: &dyn audit_core::store::Store,
    keys: Option<Keyring>,
    rt: &tokio::runtime::Runtime,
) -> Result<Report, Failure> {
    let mut progress = Progress::new(0);
    let report = rt
        .block_on(audit_core::store::verify_store(store, keys, |n| {
            progress.show(n, "rows")
        }))
        .map_err(|e| Failure::Read(format!("cannot read the store: {e}")))?;
    progress.done();
    Ok(report)
}

fn open_store(
    source: &str,
    #[allow(unused_variables)] schema: &str,
) -> Result<Option<std::sync::Arc<dyn audit_core::store::Store>>, Failure> {
    if let Some(path) = source.strip_prefix("sqlite:") {
        #[cfg(feature = "sqlite")]
        {
            if !Path::new(path).exists() {
                return Err(Failure::Read(format!("no SQLite database at {path}")));
            }
            let store = audit_sinks::SqliteStore::open(path)
                .map_err(|e| Failure::Read(format!("cannot open {path}: {e}")))?;
            return Ok(Some(std::sync::Arc::new(store)));
        }
        #[cfg(not(feature = "sqlite"))]
        return Err(Failure::Read(format!(
            "{path}: this build of audit has no SQLite support (feature `sqlite`)"
        )));
    }
    if source.starts_with("postgres://") || source.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        {
            let rt = runtime()?;
            let store = rt
                .block_on(audit_sinks::PostgresStore::connect_with(
                    source,
                    audit_sinks::PostgresOptions::default().schema(schema),
                ))
                .map_err(|e| Failure::Read(format!("cannot connect to PostgreSQL: {e}")))?;
            return Ok(Some(std::sync::Arc::new(store)));
        }
        #[cfg(not(feature = "postgres"))]
        return Err(Failure::Read(
            "this build of audit has no PostgreSQL support (feature `postgres`)".into(),
        ));
    }
    Ok(None)
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Read(format!("cannot start a runtime: {e}")))
}

fn run(args: &Args) -> Result<Report, Failure> {
    let keys = match &args.keys {
        Some(p) => Some(Keyring::load(p).map_err(|e| Failure::Read(e.to_string()))?),
        None => None,
    };
    if let Some(manifest) = &args.manifest {
        let [export] = args.sources.as_slice() else {
            return Err(Failure::Usage("--manifest checks one export file".into()));
        };
        let read = |p: &Path| {
            std::fs::read_to_string(p)
                .map_err(|e| Failure::Read(format!("cannot read {}: {e}", p.display())))
        };
        let manifest: audit_core::integrity::Manifest = serde_json::from_str(&read(manifest)?)
            .map_err(|e| Failure::Read(format!("{} is not a manifest: {e}", manifest.display())))?;
        let events = audit_core::export::read_events(&read(Path::new(export))?)
            .map_err(|e| Failure::Read(format!("{export}: {e}")))?;
        return Ok(audit_core::integrity::verify_export(
            &manifest,
            &events,
            keys.as_ref(),
        ));
    }
    let (stores, files): (Vec<&str>, Vec<&str>) = args
        .sources
        .iter()
        .map(String::as_str)
        .partition(|s| s.starts_with("sqlite:") || s.contains("://"));
    if !stores.is_empty() && (stores.len() > 1 || !files.is_empty()) {
        return Err(Failure::Usage(
            "give either one store or JSON-lines files, not both".into(),
        ));
    }
    if let Some(source) = stores.first() {
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        {
            let rt = runtime()?;
            let store = open_store(source, &args.schema)?
                .ok_or_else(|| Failure::Usage(format!("unknown source {source}")))?;
            return verify_store(&*store, keys, &rt);
        }
        #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
        {
            open_store(source, &args.schema)?;
            return Err(Failure::Usage(format!("unknown source {source}")));
        }
    }
    let mut v = Verifier::new(keys);
    verify_files(&mut v, &file_list(&files))?;
    Ok(v.finish())
}

/// Text taken from the trail, made safe for a terminal: control characters (an escape
/// sequence in a forged stream name or key id) shown escaped, and at most 200 characters.
fn shown(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == 200 {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn print_text(r: &Report) {
    println!(
        "{} events in {} stream(s): {} verified by a signed checkpoint, {} not covered by one",
        r.events,
        r.streams.len(),
        r.verified,
        r.unverifiable
    );
    if !r.signatures_checked {
        println!("signatures not checked: no --keys given");
    }
    for s in &r.streams {
        let through = s
            .verified_through
            .map_or("nothing verified".to_owned(), |v| {
                format!("verified through seq {v}")
            });
        let end = if s.closed {
            "closed by a final checkpoint"
        } else {
            "no final checkpoint (still running, cut short or crashed)"
        };
        println!(
            "  {}: seq {}-{}, {} events, {through}, {end}",
            shown(&s.stream),
            s.first_seq,
            s.last_seq,
            s.events
        );
    }
    if r.dropped + r.tombstoned + r.duplicates > 0 {
        println!(
            "explained gaps: {} dropped (reported), {} deleted with a tombstone; {} repeated",
            r.dropped, r.tombstoned, r.duplicates
        );
    }
    const SHOWN: usize = 50;
    for p in r.problems.iter().take(SHOWN) {
        println!("PROBLEM {}", shown(&p.to_string()));
    }
    if r.problems.len() > SHOWN {
        println!("… and {} more problems", r.problems.len() - SHOWN);
    }
    if r.is_fully_verified() {
        println!("OK: complete and unaltered");
    } else if r.is_intact() {
        println!("INTACT, NOT FULLY VERIFIED");
    } else {
        println!(
            "FAILED: {} problem(s); the first is at record {}",
            r.problems.len(),
            r.problems[0].position
        );
    }
}

/// `audit migrate [--schema NAME] [--grant ROLE] URL`.
fn migrate(mut args: impl Iterator<Item = String>) -> ExitCode {
    let mut schema = "public".to_owned();
    let mut url = None;
    let mut roles = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--schema" => match args.next() {
                Some(s) => schema = s,
                None => return usage_error("--schema needs a name"),
            },
            "--grant" => match args.next() {
                Some(r) => roles.push(r),
                None => return usage_error("--grant needs a role"),
            },
            s if s.starts_with("postgres://") || s.starts_with("postgresql://") => {
                url = Some(a.clone());
            }
            other => return usage_error(&format!("migrate: unexpected argument {other:?}")),
        }
    }
    let Some(url) = url else {
        return usage_error("migrate needs a postgres:// URL");
    };
    #[cfg(feature = "postgres")]
    {
        let rt = match runtime() {
            Ok(rt) => rt,
            Err(Failure::Read(m) | Failure::Usage(m)) => {
                eprintln!("audit: {m}");
                return ExitCode::from(3);
            }
        };
        let options = audit_sinks::PostgresOptions::default().schema(schema.clone());
        match rt.block_on(audit_sinks::PostgresStore::migrate(&url, options.clone())) {
            Ok(version) => {
                println!("audit schema version {version} in place in schema {schema}");
            }
            Err(e) => {
                eprintln!("audit: migrate failed: {e}");
                return ExitCode::from(3);
            }
        }
        for role in &roles {
            match rt.block_on(audit_sinks::PostgresStore::grant(&url, &options, role)) {
                Ok(()) => println!("granted {role} what the service needs in schema {schema}"),
                Err(e) => {
                    eprintln!("audit: granting {role} failed: {e}");
                    return ExitCode::from(3);
                }
            }
        }
        ExitCode::SUCCESS
    }
    #[cfg(not(feature = "postgres"))]
    {
        let _ = (schema, url, roles);
        eprintln!("audit: this build of audit has no PostgreSQL support (feature `postgres`)");
        ExitCode::from(3)
    }
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("audit: {msg}\n\n{USAGE}");
    ExitCode::from(3)
}

fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1).peekable();
    if argv.peek().map(String::as_str) == Some("migrate") {
        argv.next();
        return migrate(argv);
    }
    let args = match parse(argv) {
        Ok(a) => a,
        Err(Failure::Usage(msg)) => {
            if msg.is_empty() {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("audit: {msg}\n\n{USAGE}");
            return ExitCode::from(3);
        }
        Err(Failure::Read(msg)) => {
            eprintln!("audit: {msg}");
            return ExitCode::from(3);
        }
    };
    let json = args.json;
    match run(&args) {
        Ok(report) => {
            if json {
                match serde_json::to_string_pretty(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => eprintln!("audit: {e}"),
                }
            } else {
                print_text(&report);
            }
            if report.is_fully_verified() {
                ExitCode::SUCCESS
            } else if report.is_intact() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
        Err(Failure::Usage(msg)) => {
            eprintln!("audit: {msg}\n\n{USAGE}");
            ExitCode::from(3)
        }
        Err(Failure::Read(msg)) => {
            eprintln!("audit: {msg}");
            ExitCode::from(3)
        }
    }
}
