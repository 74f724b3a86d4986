//! Sinks that deliver audit events, and the formats they write.
//!
//! Each sink is a module behind its own Cargo feature; `full` turns all of them on.
//!
//! | feature | sink | what it writes |
//! |---|---|---|
//! | `stdout` (default) | [`StdoutSink`] | JSON lines on standard output |
//! | `file` (default) | [`FileSink`] | JSON lines in a rotating local file |
//! | `memory` (default) | [`MemorySink`] | a bounded in-memory window, for tests |
//! | `sqlite` | [`SqliteStore`] | a queryable embedded store (one file) |
//! | `postgres` | [`PostgresStore`] | a queryable store shared by many instances |
//! | `webhook` | [`WebhookSink`] | signed JSON batches to an HTTP endpoint |
//! | `splunk` | [`SplunkSink`] | Splunk HTTP Event Collector |
//! | `elasticsearch` | [`ElasticsearchSink`] | Elasticsearch / OpenSearch `_bulk` |
//! | `datadog` | [`DatadogSink`] | Datadog Logs intake (gzip, payload limits) |
//! | `cloudwatch` | [`CloudWatchSink`] | CloudWatch Logs `PutLogEvents`, SigV4-signed |
//! | `syslog` | [`SyslogSink`] | RFC 5424 over UDP or TCP, JSON or CEF body |
//! | `otlp` | [`OtlpSink`] | OpenTelemetry log records over OTLP (gRPC, HTTP) |
//! | `nats` | [`NatsSink`] | NATS JetStream |
//!
//! Any of them can be built from a configuration string with [`spec::build`]; the formats
//! (OCSF, ECS, CEF, JSONL) are in [`format`](mod@format).
//!
//! ```
//! use std::time::Duration;
//! use audit_core::{AuditEvent, Auditor, Category, SinkOptions};
//! use audit_sinks::MemorySink;
//!
//! let everything = MemorySink::new(100);
//! let admin_only = MemorySink::new(100);
//! let auditor = Auditor::builder()
//!     .sink(everything.clone())
//!     .sink_with(
//!         admin_only.clone(),
//!         SinkOptions::new().name("admin").filter(|e| e.category == Category::Admin),
//!     )
//!     .build()?;
//! auditor.record(AuditEvent::builder("admin.role.assign").build()?).unwrap();
//! auditor.record(AuditEvent::builder("auth.logout").build()?).unwrap();
//! assert!(auditor.shutdown_blocking(Duration::from_secs(5)).complete);
//! assert_eq!((everything.len(), admin_only.len()), (2, 1));
//! # Ok::<(), audit_core::Error>(())
//! ```

#![forbid(unsafe_code)]

pub mod format;

#[cfg(feature = "cloudwatch")]
pub mod cloudwatch;
#[cfg(feature = "datadog")]
pub mod datadog;
#[cfg(feature = "elasticsearch")]
pub mod elasticsearch;
#[cfg(feature = "file")]
pub mod file;
#[cfg(feature = "http-client")]
#[cfg_attr(
    not(any(
        feature = "webhook",
        feature = "splunk",
        feature = "elasticsearch",
        feature = "datadog",
        feature = "cloudwatch"
    )),
    allow(dead_code)
)]
mod http;
#[cfg(feature = "memory")]
pub mod memory;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "otlp")]
pub mod otlp;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod spec;
#[cfg(feature = "splunk")]
pub mod splunk;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "stdout")]
pub mod stdout;
#[cfg(feature = "syslog")]
pub mod syslog;
#[cfg(feature = "webhook")]
pub mod webhook;

#[cfg(feature = "cloudwatch")]
pub use cloudwatch::CloudWatchSink;
#[cfg(feature = "datadog")]
pub use datadog::DatadogSink;
#[cfg(feature = "elasticsearch")]
pub use elasticsearch::ElasticsearchSink;
#[cfg(feature = "file")]
pub use file::{FileSink, FsyncPolicy};
#[cfg(feature = "memory")]
pub use memory::MemorySink;
#[cfg(feature = "nats")]
pub use nats::NatsSink;
#[cfg(feature = "otlp")]
pub use otlp::OtlpSink;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresStore};
#[cfg(feature = "splunk")]
pub use splunk::SplunkSink;
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteOptions, SqliteStore, Synchronous};
#[cfg(feature = "stdout")]
pub use stdout::StdoutSink;
#[cfg(feature = "syslog")]
pub use syslog::SyslogSink;
#[cfg(feature = "webhook")]
pub use webhook::WebhookSink;

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(all(doctest, feature = "file", feature = "sqlite"))]
#[doc = include_str!("../../README.md")]
mod readme {}
