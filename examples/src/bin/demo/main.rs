//! The demo service: a small multi-tenant vector-index API with every call audited.
//!
//! ```text
//! cargo run -p audit-examples --bin demo [-- --addr HOST:PORT] [--audit-file PATH] [--simulate N]
//! ```
//!
//! Starts on `127.0.0.1:3000`, writes audit events as JSON lines to `./audit.jsonl`, and
//! prints the demo credentials. `--simulate N` drives a realistic mix of N rounds of calls
//! through real HTTP on loopback, prints a table of what was captured, and exits. SIGTERM or
//! Ctrl-C flush every sink before exit.

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
mod simulate;
mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use audit_core::Auditor;
use audit_sinks::FileSink;

struct Args {
    addr: SocketAddr,
    audit_file: PathBuf,
    simulate: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
        audit_file: PathBuf::from("audit.jsonl"),
        simulate: None,
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
            "--simulate" => {
                let v = value("--simulate")?;
                args.simulate = Some(
                    v.parse()
                        .map_err(|_| format!("--simulate {v:?} is not a number"))?,
                );
            }
            "-h" | "--help" => {
                return Err(
                    "usage: demo [--addr HOST:PORT] [--audit-file PATH] [--simulate N]".into(),
                );
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
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
    let auditor = Auditor::builder()
        .service("vector-api")
        .sink(sink)
        .build()?;
    let state = Arc::new(state::State::seeded());
    let app = routes::app(state, auditor.clone());

    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    let addr = listener.local_addr()?;
    say!("listening on http://{addr}");
    say!("audit events: {}", args.audit_file.display());
    say!("demo users (POST /auth/login {{\"email\", \"password\"}}):");
    say!("  acme   admin@acme.test    / admin-password   (admin)");
    say!("  acme   member@acme.test   / member-password  (member)");
    say!("  globex admin@globex.test  / globex-password  (admin)");

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = stop_rx.await;
        })
        .await
    });

    match args.simulate {
        Some(n) => {
            simulate::run(addr, n).await?;
        }
        None => wait_for_signal().await,
    }
    let _ = stop_tx.send(());
    server.await??;

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

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
