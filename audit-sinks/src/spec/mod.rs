//! Sinks from configuration strings: `AUDIT_SINKS=stdout:,webhook+https://…?secret=…`.
//!
//! | spec | sink | feature |
//! |---|---|---|
//! | `stdout:` (`?format=native\|ocsf\|ecs\|cef`) | [`StdoutSink`](crate::StdoutSink) | `stdout` |
//! | `file:PATH` or `file:///abs/path` (`?format=…`) | [`FileSink`](crate::FileSink) | `file` |
//! | `sqlite:PATH` | [`SqliteStore`](crate::SqliteStore) as a sink | `sqlite` |
//! | `postgres://user@host:5432/db` | [`PostgresStore`](crate::PostgresStore) as a sink | `postgres` |
//! | `webhook+https://host/path?secret=S&max_bytes=N&format=…` | [`WebhookSink`](crate::WebhookSink) | `webhook` |
//! | `splunk+https://host:8088?token=T&index=I&source=S&sourcetype=T` | [`SplunkSink`](crate::SplunkSink) | `splunk` |
//! | `elasticsearch+https://host:9200/TARGET?api_key=K&format=ecs\|native` (or `user=&password=`) | [`ElasticsearchSink`](crate::ElasticsearchSink) | `elasticsearch` |
//! | `datadog+https://http-intake.logs.datadoghq.com?api_key=K&tags=env:prod` | [`DatadogSink`](crate::DatadogSink) | `datadog` |
//! | `syslog+tcp://host:514?format=cef&facility=13`, `syslog+tls://host:6514?ca=/etc/ssl/siem-ca.pem&cert=client.pem&key=client-key.pem` (mutual TLS), `syslog+udp://…` | [`SyslogSink`](crate::SyslogSink) | `syslog` |
//! | `cloudwatch://REGION/GROUP/STREAM` (credentials from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`; the group as written, so `cloudwatch://eu-west-1//audit/app/i-1` names the group `/audit/app`) | [`CloudWatchSink`](crate::CloudWatchSink) | `cloudwatch` |
//! | `otlp+grpc://collector:4317` or `otlp+http://collector:4318?format=json&service=NAME` | [`OtlpSink`](crate::OtlpSink) | `otlp` |
//! | `nats://host:4222/PREFIX` (`?format=native\|ocsf\|ecs\|cef`, `&stream=NAME` to create the stream when missing) | [`NatsSink`](crate::NatsSink) | `nats` |
//!
//! Each sink parses its own spec (its `…Spec` type, beside the sink) with the helpers they
//! share (a leaf module); this module holds the one table that names each scheme's sink and
//! feature. A scheme whose feature is not enabled in this build is refused by [`parse`],
//! saying which feature to enable.
//!
//! Query values are percent-decoded; a comma inside one must be written `%2C` when several
//! specs share one comma-separated list. An unknown parameter is an error (a misspelt
//! `sercet=` must not silently disable signing). Errors name the spec by its position and
//! scheme and the parameter at fault, never a value; [`redact`] shows a spec with its secrets
//! (`secret`, `token`, `api_key`, `password`, and any password in the authority) replaced by
//! `***`, for logs and startup banners.
//!
//! ```
//! use audit_sinks::spec;
//!
//! assert_eq!(
//!     spec::redact("webhook+https://h.example/hook?secret=s3cret&max_bytes=65536"),
//!     "webhook+https://h.example/hook?secret=***&max_bytes=65536"
//! );
//! let err = spec::parse("stdout:?fromat=ecs").unwrap_err();
//! assert!(err.to_string().contains("unknown parameter `fromat`"));
//! ```

use std::fmt;

use audit_core::{Batch, Sink, SinkError, SinkOptions};

/// Parameters whose values are secrets.
const SECRET_KEYS: [&str; 4] = ["secret", "token", "api_key", "password"];

pub use params::SpecError;

pub(crate) mod params;

/// The one table of spec schemes: for each sink kind, its feature, the schemes it answers to,
/// its parsed spec (with `parse(scheme, rest)` and `async build(self)`) and what it builds.
/// Adding a sink is one line here and its `…Spec` beside it.
macro_rules! sinks {
    ($(
        $(#[$doc:meta])*
        $variant:ident: $feature:literal, [$($scheme:literal),+ $(,)?], $parsed:ty => $built:ty;
    )+) => {
        /// A parsed spec: what to build, without any I/O yet. Its `Debug` names only the
        /// kind, so secrets never appear.
        #[derive(Clone, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum Spec {
            $(
                $(#[$doc])*
                #[cfg(feature = $feature)]
                $variant($parsed),
            )+
        }

        impl fmt::Debug for Spec {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let _ = &f; // unused when every sink feature is off
                match *self {
                    $(
                        #[cfg(feature = $feature)]
                        Spec::$variant(_) => f.write_str(concat!("Spec::", stringify!($variant))),
                    )+
                }
            }
        }

        /// Any sink a spec can name.
        #[derive(Debug)]
        #[non_exhaustive]
        // Built once per configured sink and moved into its task: sizes do not matter.
        #[allow(clippy::large_enum_variant)]
        pub enum AnySink {
            $(
                $(#[$doc])*
                #[cfg(feature = $feature)]
                $variant($built),
            )+
            /// Keeps the enum inhabited-checkable when every sink feature is off.
            #[doc(hidden)]
            _None(std::convert::Infallible),
        }

        /// Parses one spec (no I/O).
        pub fn parse(spec: &str) -> Result<Spec, SpecError> {
            let spec = spec.trim();
            let (scheme, rest) = spec.split_once(':').ok_or_else(|| {
                SpecError::new("a sink spec starts with a scheme, e.g. `stdout:` or `file:PATH`")
            })?;
            let _ = rest; // unused when every sink feature is off
            $(
                if [$($scheme),+].contains(&scheme) {
                    #[cfg(feature = $feature)]
                    return <$parsed>::parse(scheme, rest).map(Spec::$variant);
                    #[cfg(not(feature = $feature))]
                    return Err(SpecError::new(concat!(
                        "the `", $feature, "` feature of audit-sinks is not enabled in this build"
                    )));
                }
            )+
            Err(SpecError::new(format!(
                "unknown sink scheme `{scheme}` (known: {})",
                [$($($scheme),+),+].join(", ")
            )))
        }

        /// Builds the sink a spec names (connecting where the sink needs a connection).
        pub async fn build(spec: &str) -> Result<AnySink, SpecError> {
            match parse(spec)? {
                $(
                    #[cfg(feature = $feature)]
                    Spec::$variant(parsed) => parsed.build().await.map(AnySink::$variant),
                )+
            }
        }

        impl Sink for AnySink {
            fn name(&self) -> &str {
                match self {
                    $( #[cfg(feature = $feature)] AnySink::$variant(s) => s.name(), )+
                    AnySink::_None(never) => match *never {},
                }
            }

            fn default_options(&self) -> SinkOptions {
                match self {
                    $( #[cfg(feature = $feature)] AnySink::$variant(s) => s.default_options(), )+
                    AnySink::_None(never) => match *never {},
                }
            }

            fn wants_lines(&self) -> bool {
                match self {
                    $( #[cfg(feature = $feature)] AnySink::$variant(s) => s.wants_lines(), )+
                    AnySink::_None(never) => match *never {},
                }
            }

            async fn delivered_through(&mut self, stream: &str) -> Option<u64> {
                let _ = stream; // unused when every sink feature is off
                match self {
                    $(
                        #[cfg(feature = $feature)]
                        AnySink::$variant(s) => s.delivered_through(stream).await,
                    )+
                    AnySink::_None(never) => match *never {},
                }
            }

            async fn deliver(&mut self, batch: &Batch) -> Result<(), SinkError> {
                let _ = batch; // unused when every sink feature is off
                match self {
                    $( #[cfg(feature = $feature)] AnySink::$variant(s) => s.deliver(batch).await, )+
                    AnySink::_None(never) => match *never {},
                }
            }

            async fn flush(&mut self) -> Result<(), SinkError> {
                match self {
                    $( #[cfg(feature = $feature)] AnySink::$variant(s) => s.flush().await, )+
                    AnySink::_None(never) => match *never {},
                }
            }
        }
    };
}

sinks! {
    /// Standard output.
    Stdout: "stdout", ["stdout"], crate::stdout::StdoutSpec => crate::StdoutSink;
    /// A rotating file.
    File: "file", ["file"], crate::file::FileSpec => crate::FileSink;
    /// The SQLite store.
    Sqlite: "sqlite", ["sqlite"], crate::sqlite::SqliteSpec => audit_core::store::StoreSink;
    /// The PostgreSQL store.
    Postgres: "postgres", ["postgres", "postgresql"], crate::postgres::PostgresSpec
        => audit_core::store::StoreSink;
    /// A webhook.
    Webhook: "webhook", ["webhook+https", "webhook+http"], crate::webhook::WebhookSpec
        => crate::WebhookSink;
    /// Splunk HEC.
    Splunk: "splunk", ["splunk+https", "splunk+http"], crate::splunk::SplunkSpec
        => crate::SplunkSink;
    /// Elasticsearch or OpenSearch.
    Elasticsearch: "elasticsearch",
        ["elasticsearch+https", "elasticsearch+http", "opensearch+https", "opensearch+http"],
        crate::elasticsearch::ElasticsearchSpec => crate::ElasticsearchSink;
    /// Datadog Logs.
    Datadog: "datadog", ["datadog+https", "datadog+http"], crate::datadog::DatadogSpec
        => crate::DatadogSink;
    /// Syslog.
    Syslog: "syslog", ["syslog+tcp", "syslog+tls", "syslog+udp"], crate::syslog::SyslogSpec
        => crate::SyslogSink;
    /// CloudWatch Logs.
    CloudWatch: "cloudwatch", ["cloudwatch"], crate::cloudwatch::CloudWatchSpec
        => crate::CloudWatchSink;
    /// OTLP logs.
    Otlp: "otlp", ["otlp+grpc", "otlp+grpcs", "otlp+http", "otlp+https"], crate::otlp::OtlpSpec
        => crate::OtlpSink;
    /// NATS JetStream.
    Nats: "nats", ["nats", "tls"], crate::nats::NatsSpec => crate::NatsSink;
}

/// The spec with secret values (and any password in its authority) replaced by `***`.
pub fn redact(spec: &str) -> String {
    let (base, q) = match spec.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (spec, None),
    };
    // user:password@host → user:***@host
    let base = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (auth, tail) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            match auth.rsplit_once('@') {
                Some((creds, host)) if creds.contains(':') => {
                    let user = creds.split(':').next().unwrap_or("");
                    format!("{scheme}://{user}:***@{host}{tail}")
                }
                _ => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    match q {
        None => base,
        Some(q) => {
            let q: Vec<String> = q
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if SECRET_KEYS.contains(&k) => format!("{k}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{base}?{}", q.join("&"))
        }
    }
}

/// Splits a comma-separated list of specs (as in `AUDIT_SINKS`), ignoring empty entries.
pub fn split_list(list: &str) -> Vec<&str> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(not(feature = "nats"))]
    fn a_scheme_whose_feature_is_off_names_the_feature() {
        let err = super::parse("nats://127.0.0.1:4222/audit").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the `nats` feature of audit-sinks is not enabled in this build"
        );
    }

    #[test]
    fn every_scheme_is_known_whatever_the_features() {
        let err = super::parse("kafka://broker:9092/audit").unwrap_err();
        for scheme in [
            "stdout",
            "syslog+tls",
            "otlp+grpc",
            "nats",
            "opensearch+https",
        ] {
            assert!(err.to_string().contains(scheme), "{err}");
        }
    }
}
