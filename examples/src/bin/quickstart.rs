//! Records a few audit events into a JSON-lines file and prints where they went.
//!
//! ```text
//! cargo run -p audit-examples --bin quickstart [-- PATH]
//! ```
//!
//! PATH defaults to `./audit.jsonl`; events are appended.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use audit_core::{Actor, AuditEvent, Auditor, HttpFacts, Outcome, Severity, Target};
use audit_sinks::FileSink;

fn main() -> ExitCode {
    let path = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("audit.jsonl"), PathBuf::from);
    match run(&path) {
        Ok(n) => {
            let shown = std::fs::canonicalize(&path).unwrap_or(path);
            println!("recorded {n} audit events into {}", shown.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("quickstart failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(path: &PathBuf) -> Result<usize, Box<dyn std::error::Error>> {
    let auditor = Auditor::builder()
        .service("quickstart")
        .sink(FileSink::new(path)?)
        .build()?;

    let alice = || {
        Actor::user("user-123")
            .with_email("alice@acme.test")
            .with_role("admin")
            .with_ip_address("192.0.2.10")
    };
    let events = vec![
        AuditEvent::builder("auth.login.failure")
            .actor(Actor::user("user-123").with_ip_address("192.0.2.10"))
            .organization_id("acme")
            .severity(Severity::Warning)
            .result(Outcome::Failure)
            .description("Wrong password")
            .build()?,
        AuditEvent::builder("auth.login.success")
            .actor(alice())
            .organization_id("acme")
            .result(Outcome::Success)
            .detail("authMethod", "password+mfa")
            .build()?,
        AuditEvent::builder("admin.api_key.create")
            .actor(alice())
            .target(Target::new("api_key", "key_7f3a"))
            .organization_id("acme")
            .request_id("0193f0c4-0000-7000-8000-000000000001")
            .http(
                HttpFacts::default()
                    .with_method("POST")
                    .with_route("/v1/api-keys")
                    .with_status_code(201)
                    .with_duration_ms(2.4),
            )
            .result(Outcome::Success)
            .build()?,
        AuditEvent::builder("data.index.delete")
            .actor(alice())
            .target(Target::new("index", "products"))
            .organization_id("acme")
            .result(Outcome::Success)
            .build()?,
    ];
    let n = events.len();
    for event in events {
        auditor.record(event)?;
    }
    let report = auditor.shutdown_blocking(Duration::from_secs(5));
    if !report.complete {
        return Err(format!("not every event was written: {report}").into());
    }
    Ok(n)
}
