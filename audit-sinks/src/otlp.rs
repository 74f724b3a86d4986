//! [`OtlpSink`]: OpenTelemetry logs over OTLP (feature `otlp`), through the OpenTelemetry
//! project's own exporter (`opentelemetry-otlp` 0.33): gRPC, HTTP/protobuf or HTTP/JSON.
//!
//! One log record per event: the event's time, a severity number and text, the description
//! (else the event type) as body, the trace context (`traceId`/`spanId`) so a trace view links
//! to it, and the event's fields as attributes — `event.name` (the event type), `audit.id`,
//! `audit.category`, `audit.result`, `enduser.id`, `user.email`, `client.address`,
//! `tenant.id`, `audit.target.type`/`id`, `http.request.id`, `rpc.system`, `rpc.service`,
//! `rpc.method`, `rpc.grpc.status_code` (gRPC calls), and `audit.details` (JSON).
//!
//! The sink calls the exporter directly, one export per batch, and only counts a batch as
//! delivered when the collector accepted it; it installs no global logger provider and no
//! processor, so the exporter's own HTTP or gRPC traffic is never seen by the application's
//! tracing or audit layers (it does not pass through an `AuditLayer`, which audits inbound
//! requests only).
//!
//! ```no_run
//! use audit_sinks::otlp::{OtlpSink, Protocol};
//!
//! let otlp = OtlpSink::new(Protocol::Grpc, "http://collector:4317", "vector-api")?;
//! # Ok::<(), audit_core::Error>(())
//! ```

use audit_core::sync::LockExt;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use audit_core::{AuditEvent, Batch, Severity, Sink, SinkError};
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::{LogBatch, LogExporter, SdkLogger, SdkLoggerProvider};

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// gRPC (usually port 4317).
    Grpc,
    /// HTTP with protobuf bodies (usually port 4318, path `/v1/logs`).
    HttpProtobuf,
    /// HTTP with JSON bodies.
    HttpJson,
}

fn resource_of(service: &str) -> Resource {
    Resource::builder_empty()
        .with_attributes([KeyValue::new("service.name", service.to_owned())])
        .build()
}

/// The event type as the `'static` name the log record's event name needs: event types are
/// few (a client's path never names one), each leaked once; past 4,096 distinct types, the
/// record carries the type only as its `event.name` attribute.
fn event_name(event_type: &str) -> Option<&'static str> {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES.get_or_init(Mutex::default).lock_ignore_poison();
    if let Some(n) = names.get(event_type) {
        return Some(n);
    }
    if names.len() >= 4096 {
        return None;
    }
    let leaked: &'static str = Box::leak(event_type.to_owned().into_boxed_str());
    names.insert(leaked);
    Some(leaked)
}

/// Exports events as OpenTelemetry log records.
pub struct OtlpSink {
    exporter: opentelemetry_otlp::LogExporter,
    // Kept alive for `logger`; it has no processors, so it exports nothing by itself.
    _provider: SdkLoggerProvider,
    logger: SdkLogger,
    scope: InstrumentationScope,
    endpoint: String,
    /// No service was named: the resource takes the first event's `context.service`.
    service_from_events: bool,
}

impl fmt::Debug for OtlpSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpSink")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

fn severity(s: Severity) -> (opentelemetry::logs::Severity, &'static str) {
    use opentelemetry::logs::Severity as S;
    match s {
        Severity::Debug => (S::Debug, "DEBUG"),
        Severity::Info => (S::Info, "INFO"),
        Severity::Notice => (S::Info2, "NOTICE"),
        Severity::Warning => (S::Warn, "WARN"),
        Severity::Error => (S::Error, "ERROR"),
        Severity::Critical => (S::Fatal, "FATAL"),
        _ => (S::Info, "INFO"),
    }
}

impl OtlpSink {
    /// A sink exporting to `endpoint` over `protocol`, naming `service` in the resource
    /// (`service.name`); an empty `service` takes the auditor's service from the events
    /// (their `context.service`; `audit` when they name none). For HTTP, `endpoint` is the
    /// full URL of the logs path (e.g. `http://collector:4318/v1/logs`).
    pub fn new(
        protocol: Protocol,
        endpoint: &str,
        service: &str,
    ) -> Result<OtlpSink, audit_core::Error> {
        let timeout = Duration::from_secs(15);
        let mut exporter = match protocol {
            Protocol::Grpc => opentelemetry_otlp::LogExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .with_timeout(timeout)
                .build(),
            Protocol::HttpProtobuf | Protocol::HttpJson => {
                let proto = if protocol == Protocol::HttpJson {
                    opentelemetry_otlp::Protocol::HttpJson
                } else {
                    opentelemetry_otlp::Protocol::HttpBinary
                };
                opentelemetry_otlp::LogExporter::builder()
                    .with_http()
                    .with_http_client(crate::http::client(timeout)?)
                    .with_protocol(proto)
                    .with_endpoint(endpoint)
                    .with_timeout(timeout)
                    .build()
            }
        }
        .map_err(|e| audit_core::Error::config(format!("cannot build the OTLP exporter: {e}")))?;
        if !service.is_empty() {
            exporter.set_resource(&resource_of(service));
        }
        let provider = SdkLoggerProvider::builder().build();
        let logger = provider.logger("audit");
        Ok(OtlpSink {
            exporter,
            _provider: provider,
            logger,
            scope: InstrumentationScope::builder("audit-sinks")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
            endpoint: endpoint.to_owned(),
            service_from_events: service.is_empty(),
        })
    }

    fn record(&self, e: &AuditEvent) -> opentelemetry_sdk::logs::SdkLogRecord {
        let mut r = self.logger.create_log_record();
        let ms = u64::try_from(e.timestamp.unix_millis()).unwrap_or(0);
        r.set_timestamp(UNIX_EPOCH + Duration::from_millis(ms));
        r.set_observed_timestamp(SystemTime::now());
        let (number, text) = severity(e.severity);
        r.set_severity_number(number);
        r.set_severity_text(text);
        r.set_body(AnyValue::from(
            e.description
                .as_deref()
                .unwrap_or(e.event_type.as_str())
                .to_owned(),
        ));
        if let Some(name) = event_name(e.event_type.as_str()) {
            r.set_event_name(name);
        }
        let mut attr = |k: &'static str, v: Option<&str>| {
            if let Some(v) = v {
                r.add_attribute(k, v.to_owned());
            }
        };
        attr("event.name", Some(e.event_type.as_str()));
        attr("audit.id", Some(&e.id.to_string()));
        attr("audit.category", Some(e.category.as_str()));
        attr("audit.result", e.result.map(|o| o.as_str()));
        let actor = e.actor.as_ref();
        attr("enduser.id", actor.and_then(|a| a.id.as_deref()));
        attr("audit.actor.type", actor.and_then(|a| a.kind.as_deref()));
        attr("audit.actor.role", actor.and_then(|a| a.role.as_deref()));
        attr("user.email", actor.and_then(|a| a.email.as_deref()));
        attr(
            "client.address",
            actor.and_then(|a| a.ip_address.as_deref()),
        );
        attr(
            "user_agent.original",
            actor.and_then(|a| a.user_agent.as_deref()),
        );
        let target = e.target.as_ref();
        attr("audit.target.type", target.and_then(|t| t.kind.as_deref()));
        attr("audit.target.id", target.and_then(|t| t.id.as_deref()));
        let ctx = e.context.as_ref();
        attr("tenant.id", ctx.and_then(|c| c.organization_id.as_deref()));
        attr("http.request.id", ctx.and_then(|c| c.request_id.as_deref()));
        attr("session.id", ctx.and_then(|c| c.session_id.as_deref()));
        if let Some(http) = &e.http {
            attr("http.request.method", http.method.as_deref());
            attr("url.path", http.path.as_deref());
            attr("http.route", http.route.as_deref());
        }
        if let Some(i) = &e.integrity {
            attr("audit.stream", Some(i.stream.as_str()));
            attr("audit.hash", i.hash.as_deref());
            attr("audit.prev_hash", i.prev_hash.as_deref());
        }
        if let Some(rpc) = &e.rpc {
            attr("rpc.system", rpc.system.as_deref());
            attr("rpc.service", rpc.service.as_deref());
            attr("rpc.method", rpc.method.as_deref());
        }
        if !e.details.is_empty() {
            let json = serde_json::to_string(&e.details).unwrap_or_default();
            attr("audit.details", Some(&json));
        }
        if let Some(code) = e.http.as_ref().and_then(|h| h.status_code) {
            r.add_attribute("http.response.status_code", i64::from(code));
        }
        if let Some(i) = &e.integrity {
            r.add_attribute("audit.seq", i64::try_from(i.seq).unwrap_or(i64::MAX));
        }
        if let Some(code) = e.rpc.as_ref().and_then(|rpc| rpc.grpc_status_code) {
            r.add_attribute("rpc.grpc.status_code", i64::from(code));
        }
        if let (Some(t), Some(s)) = (
            ctx.and_then(|c| c.trace_id.as_deref())
                .and_then(|t| TraceId::from_hex(t).ok()),
            ctx.and_then(|c| c.span_id.as_deref())
                .and_then(|s| SpanId::from_hex(s).ok()),
        ) {
            r.set_trace_context(t, s, Some(TraceFlags::SAMPLED));
        }
        r
    }
}

impl Sink for OtlpSink {
    fn name(&self) -> &str {
        "otlp"
    }

    async fn deliver(&mut self, batch: &Batch) -> Result<(), SinkError> {
        if std::mem::take(&mut self.service_from_events) {
            let service = batch
                .iter()
                .find_map(|e| e.context.as_ref()?.service.as_deref().map(str::to_owned))
                .unwrap_or_else(|| "audit".to_owned());
            self.exporter.set_resource(&resource_of(&service));
        }
        let records: Vec<_> = batch.iter().map(|e| self.record(e)).collect();
        let pairs: Vec<_> = records.iter().map(|r| (r, &self.scope)).collect();
        self.exporter
            .export(LogBatch::new(&pairs))
            .await
            .map_err(|e| SinkError::retryable(format!("otlp export to {}: {e}", self.endpoint)))
    }
}

use crate::spec::params::{Params, SpecError, http_url};

/// What an `otlp+grpc://` or `otlp+http(s)://` spec says (see [`crate::spec`]).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OtlpSpec {
    /// The protocol (`format=json` over HTTP picks JSON bodies).
    pub protocol: Protocol,
    /// The endpoint URL.
    pub url: String,
    /// `service.name` (`service=`; empty: the auditor's service, from the events).
    pub service: String,
}

crate::spec::params::opaque_debug!(OtlpSpec);

impl OtlpSpec {
    pub(crate) fn parse(scheme: &str, rest: &str) -> Result<OtlpSpec, SpecError> {
        let (base, mut p) = Params::split("otlp", rest, &["format", "service"])?;
        let grpc = scheme.starts_with("otlp+grpc");
        let transport = if scheme.ends_with('s') {
            "https"
        } else {
            "http"
        };
        let mut url = format!("{transport}:{base}");
        http_url("otlp", &url)?;
        if !grpc && url.split_once("://").is_some_and(|(_, r)| !r.contains('/')) {
            url.push_str("/v1/logs");
        }
        let protocol = match (grpc, p.take("format").as_deref()) {
            (true, None | Some("protobuf")) => Protocol::Grpc,
            (false, None | Some("protobuf")) => Protocol::HttpProtobuf,
            (false, Some("json")) => Protocol::HttpJson,
            _ => {
                return Err(SpecError::new(
                    "otlp: format is protobuf or (over HTTP) json",
                ));
            }
        };
        Ok(OtlpSpec {
            protocol,
            url,
            // None named: the resource takes the auditor's service from the events.
            service: p.take("service").unwrap_or_default(),
        })
    }

    pub(crate) async fn build(self) -> Result<OtlpSink, SpecError> {
        OtlpSink::new(self.protocol, &self.url, &self.service).map_err(SpecError::from)
    }
}
