//! Sinks from configuration strings: `AUDIT_SINKS=stdout:,webhook+https://…?secret=…`.
//!
//! | spec | sink | feature |
//! |---|---|---|
//! | `stdout:` | [`StdoutSink`](crate::StdoutSink) | `stdout` |
//! | `file:PATH` or `file:///abs/path` | [`FileSink`](crate::FileSink) | `file` |
//!
//! `stdout:`, `file:` and `webhook+` take `?format=native|ocsf|ecs|cef`.
//!
//! | `sqlite:PATH` | [`SqliteStore`](crate::SqliteStore) as a sink | `sqlite` |
//! | `postgres://user@host:5432/db` | [`PostgresStore`](crate::PostgresStore) as a sink | `postgres` |
//! | `webhook+https://host/path?secret=S&max_bytes=N` | [`WebhookSink`](crate::WebhookSink) | `webhook` |
//! | `splunk+https://host:8088?token=T&index=I&source=S&sourcetype=T` | [`SplunkSink`](crate::SplunkSink) | `splunk` |
//! | `elasticsearch+https://host:9200/TARGET?api_key=K&format=ecs\|native` (or `user=&password=`) | [`ElasticsearchSink`](crate::ElasticsearchSink) | `elasticsearch` |
//! | `datadog+https://http-intake.logs.datadoghq.com?api_key=K&tags=env:prod` | [`DatadogSink`](crate::DatadogSink) | `datadog` |
//! | `syslog+tcp://host:514?format=cef&facility=13`, `syslog+tls://host:6514?ca=/etc/ssl/siem-ca.pem&cert=client.pem&key=client-key.pem` (mutual TLS), `syslog+udp://…` | [`SyslogSink`](crate::SyslogSink) | `syslog` |
//! | `cloudwatch://REGION/GROUP/STREAM` (credentials from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`; the group as written, so `cloudwatch://eu-west-1//audit/app/i-1` names the group `/audit/app`) | [`CloudWatchSink`](crate::CloudWatchSink) | `cloudwatch` |
//! | `otlp+grpc://collector:4317` or `otlp+http://collector:4318?format=json&service=NAME` | [`OtlpSink`](crate::OtlpSink) | `otlp` |
//! | `nats://host:4222/PREFIX` (`?format=native\|ocsf\|ecs\|cef`, `&stream=NAME` to create the stream when missing) | [`NatsSink`](crate::NatsSink) | `nats` |
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
//! let err = spec::parse("splunk+https://h:8088?tokn=hunter2").unwrap_err();
//! assert!(err.to_string().contains("unknown parameter `tokn`"));
//! assert!(!err.to_string().contains("hunter2"));
//! ```

use std::fmt;

use audit_core::{Batch, Sink, SinkError, SinkOptions};

/// Parameters whose values are secrets.
const SECRET_KEYS: [&str; 4] = ["secret", "token", "api_key", "password"];

/// Why a spec cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    message: String,
}

impl SpecError {
    fn new(message: impl Into<String>) -> SpecError {
        SpecError {
            message: message.into(),
        }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SpecError {}

/// A parsed spec: what to build, without any I/O yet.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Spec {
    /// `stdout:` (`stdout:?format=ocsf`).
    Stdout(Option<String>),
    /// `file:PATH` (`file:PATH?format=ecs`).
    File(String, Option<String>),
    /// `sqlite:PATH`.
    Sqlite(String),
    /// `postgres://…`.
    Postgres(String),
    /// `webhook+URL`.
    Webhook {
        /// The endpoint.
        url: String,
        /// HMAC secret.
        secret: Option<String>,
        /// Largest body.
        max_bytes: Option<usize>,
        /// Element format.
        format: Option<String>,
    },
    /// `splunk+URL`.
    Splunk {
        /// Scheme, host and port.
        url: String,
        /// HEC token.
        token: String,
        /// Index, source, sourcetype.
        index: Option<String>,
        /// `source`.
        source: Option<String>,
        /// `sourcetype`.
        sourcetype: Option<String>,
    },
    /// `elasticsearch+URL/TARGET`.
    Elasticsearch {
        /// Scheme, host and port.
        url: String,
        /// Index or data stream.
        target: String,
        /// API key.
        api_key: Option<String>,
        /// Basic credentials.
        user: Option<(String, String)>,
        /// `ecs` or `native`.
        native: bool,
    },
    /// `datadog+https://intake[/path]`.
    Datadog {
        /// The intake URL.
        url: String,
        /// API key.
        api_key: String,
        /// Extra tags.
        tags: Option<String>,
    },
    /// `syslog+tcp://host:port`, `syslog+tls://…` or `syslog+udp://…`.
    Syslog {
        /// `tcp`, `tls` or `udp`.
        transport: String,
        /// For TLS: a PEM file of the CA to trust instead of the platform's roots.
        ca: Option<String>,
        /// For mutual TLS: PEM files of the client certificate chain and its key
        /// (`cert=`, `key=`).
        client: Option<(String, String)>,
        /// `host:port`.
        addr: String,
        /// CEF body (else JSON).
        cef: bool,
        /// The CEF header's vendor, product and version (`vendor=`, `product=`,
        /// `version=`; CEF only), each defaulting to this crate's.
        cef_names: [Option<String>; 3],
        /// Facility 0–23.
        facility: Option<u8>,
    },
    /// `cloudwatch://REGION/GROUP/STREAM` (credentials from the environment).
    CloudWatch {
        /// AWS region.
        region: String,
        /// Log group.
        group: String,
        /// Log stream.
        stream: String,
        /// Another endpoint.
        endpoint: Option<String>,
    },
    /// `otlp+grpc://host:4317` or `otlp+http(s)://host:4318/v1/logs`.
    Otlp {
        /// gRPC (else HTTP).
        grpc: bool,
        /// The endpoint URL.
        url: String,
        /// HTTP bodies as JSON (else protobuf).
        json: bool,
        /// `service.name` (empty: the auditor's service, from the events).
        service: String,
    },
    /// `nats://host:port/PREFIX?format=…`.
    Nats {
        /// Server URL.
        url: String,
        /// Subject prefix.
        prefix: String,
        /// Payload format (`native` by default).
        format: Option<String>,
        /// A stream to create for `<prefix>.>` when missing (`?stream=NAME`).
        stream: Option<String>,
    },
}

impl fmt::Debug for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secrets never appear, even in debug output.
        let kind = match self {
            Spec::Stdout(_) => "stdout",
            Spec::File(..) => "file",
            Spec::Sqlite(_) => "sqlite",
            Spec::Postgres(_) => "postgres",
            Spec::Webhook { .. } => "webhook",
            Spec::Splunk { .. } => "splunk",
            Spec::Elasticsearch { .. } => "elasticsearch",
            Spec::Datadog { .. } => "datadog",
            Spec::Syslog { .. } => "syslog",
            Spec::CloudWatch { .. } => "cloudwatch",
            Spec::Otlp { .. } => "otlp",
            Spec::Nats { .. } => "nats",
        };
        write!(f, "Spec::{kind}")
    }
}

fn decode(s: &str) -> Result<String, SpecError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| SpecError::new("a %-escape in a query value is malformed"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| SpecError::new("a query value is not UTF-8"))
}

/// Decoded query parameters, in order.
type Params = Vec<(String, String)>;

/// Splits `url?query` and checks every parameter is one `allowed`.
fn query<'a>(
    scheme: &str,
    rest: &'a str,
    allowed: &[&str],
) -> Result<(&'a str, Params), SpecError> {
    let (base, q) = rest.split_once('?').unwrap_or((rest, ""));
    let mut params = Vec::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if !allowed.contains(&k) {
            return Err(SpecError::new(format!(
                "{scheme}: unknown parameter `{k}` (allowed: {})",
                allowed.join(", ")
            )));
        }
        params.push((k.to_owned(), decode(v)?));
    }
    Ok((base, params))
}

fn take(params: &mut Params, key: &str) -> Option<String> {
    let i = params.iter().position(|(k, _)| k == key)?;
    Some(params.remove(i).1)
}

fn http_url(scheme: &str, url: &str) -> Result<(), SpecError> {
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() <= "http://".len()
    {
        return Err(SpecError::new(format!(
            "{scheme}: expected {scheme}+https://host…"
        )));
    }
    Ok(())
}

fn checked_format(f: Option<String>) -> Result<Option<String>, SpecError> {
    if let Some(f) = &f {
        f.parse::<crate::format::Format>().map_err(SpecError::new)?;
    }
    Ok(f)
}

#[cfg_attr(
    not(any(feature = "stdout", feature = "file", feature = "webhook")),
    allow(dead_code)
)]
fn format_of(f: Option<&str>) -> crate::format::Format {
    f.and_then(|f| f.parse().ok()).unwrap_or_default()
}

/// Parses one spec (no I/O).
pub fn parse(spec: &str) -> Result<Spec, SpecError> {
    let spec = spec.trim();
    let (scheme, rest) = spec.split_once(':').ok_or_else(|| {
        SpecError::new("a sink spec starts with a scheme, e.g. `stdout:` or `file:PATH`")
    })?;
    match scheme {
        "stdout" => {
            let (base, mut p) = query("stdout", rest, &["format"])?;
            if !(base.is_empty() || base == "//") {
                return Err(SpecError::new("stdout: takes no path"));
            }
            Ok(Spec::Stdout(checked_format(take(&mut p, "format"))?))
        }
        "file" => {
            let (base, mut p) = query("file", rest, &["format"])?;
            let path = base.strip_prefix("//").unwrap_or(base);
            if path.is_empty() {
                return Err(SpecError::new(
                    "file: needs a path, e.g. file:./audit.jsonl",
                ));
            }
            Ok(Spec::File(
                path.to_owned(),
                checked_format(take(&mut p, "format"))?,
            ))
        }
        "sqlite" => {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(SpecError::new(
                    "sqlite: needs a path, e.g. sqlite:./audit.db",
                ));
            }
            Ok(Spec::Sqlite(path.to_owned()))
        }
        "postgres" | "postgresql" => Ok(Spec::Postgres(spec.to_owned())),
        "webhook+http" | "webhook+https" => {
            let (base, mut p) = query("webhook", rest, &["secret", "max_bytes", "format"])?;
            let url = format!("{}:{base}", &scheme["webhook+".len()..]);
            http_url("webhook", &url)?;
            let max_bytes = take(&mut p, "max_bytes")
                .map(|v| {
                    v.parse::<usize>()
                        .map_err(|_| SpecError::new("webhook: max_bytes must be a number of bytes"))
                })
                .transpose()?;
            Ok(Spec::Webhook {
                url,
                secret: take(&mut p, "secret"),
                max_bytes,
                format: checked_format(take(&mut p, "format"))?,
            })
        }
        "splunk+http" | "splunk+https" => {
            let (base, mut p) = query("splunk", rest, &["token", "index", "source", "sourcetype"])?;
            let url = format!("{}:{base}", &scheme["splunk+".len()..]);
            http_url("splunk", &url)?;
            let token = take(&mut p, "token")
                .filter(|t| !t.is_empty())
                .ok_or_else(|| SpecError::new("splunk: needs token=…"))?;
            Ok(Spec::Splunk {
                url,
                token,
                index: take(&mut p, "index"),
                source: take(&mut p, "source"),
                sourcetype: take(&mut p, "sourcetype"),
            })
        }
        "elasticsearch+http" | "elasticsearch+https" | "opensearch+http" | "opensearch+https" => {
            let name = scheme.split('+').next().unwrap_or("elasticsearch");
            let (base, mut p) = query(name, rest, &["api_key", "user", "password", "format"])?;
            let url = format!("{}:{base}", scheme.split('+').nth(1).unwrap_or("https"));
            http_url(name, &url)?;
            let after_scheme = url.split_once("://").map_or("", |(_, r)| r);
            let (host, target) = after_scheme.split_once('/').unwrap_or((after_scheme, ""));
            if target.is_empty() {
                return Err(SpecError::new(format!(
                    "{name}: needs an index or data stream as the path, e.g. …:9200/audit-{{date}}"
                )));
            }
            let native = match take(&mut p, "format").as_deref() {
                None | Some("ecs") => false,
                Some("native") => true,
                Some(_) => {
                    return Err(SpecError::new(format!(
                        "{name}: format must be ecs or native"
                    )));
                }
            };
            let user = match (take(&mut p, "user"), take(&mut p, "password")) {
                (Some(u), Some(pw)) => Some((u, pw)),
                (None, None) => None,
                _ => {
                    return Err(SpecError::new(format!(
                        "{name}: user and password go together"
                    )));
                }
            };
            Ok(Spec::Elasticsearch {
                url: format!(
                    "{}://{host}",
                    url.split_once("://").map_or("https", |(s, _)| s)
                ),
                target: target.to_owned(),
                api_key: take(&mut p, "api_key"),
                user,
                native,
            })
        }
        "datadog+http" | "datadog+https" => {
            let (base, mut p) = query("datadog", rest, &["api_key", "tags"])?;
            let mut url = format!("{}:{base}", &scheme["datadog+".len()..]);
            http_url("datadog", &url)?;
            if url.split_once("://").is_some_and(|(_, r)| !r.contains('/')) {
                url.push_str("/api/v2/logs");
            }
            let api_key = take(&mut p, "api_key")
                .filter(|k| !k.is_empty())
                .ok_or_else(|| SpecError::new("datadog: needs api_key=…"))?;
            Ok(Spec::Datadog {
                url,
                api_key,
                tags: take(&mut p, "tags"),
            })
        }
        "syslog+tcp" | "syslog+udp" | "syslog+tls" => {
            let (base, mut p) = query(
                "syslog",
                rest,
                &[
                    "format", "facility", "ca", "cert", "key", "vendor", "product", "version",
                ],
            )?;
            let addr = base
                .strip_prefix("//")
                .map(|a| a.trim_end_matches('/'))
                .filter(|a| a.contains(':') && !a.contains('/'))
                .ok_or_else(|| SpecError::new("syslog: expected syslog+tcp://host:port"))?;
            let cef = match take(&mut p, "format").as_deref() {
                None | Some("json") => false,
                Some("cef") => true,
                Some(_) => return Err(SpecError::new("syslog: format must be json or cef")),
            };
            let facility = take(&mut p, "facility")
                .map(|f| {
                    f.parse::<u8>()
                        .ok()
                        .filter(|f| *f <= 23)
                        .ok_or_else(|| SpecError::new("syslog: facility must be 0-23"))
                })
                .transpose()?;
            let ca = take(&mut p, "ca");
            if ca.is_some() && scheme != "syslog+tls" {
                return Err(SpecError::new("syslog: ca= only applies to syslog+tls"));
            }
            let client = match (take(&mut p, "cert"), take(&mut p, "key")) {
                (None, None) => None,
                (Some(c), Some(k)) if scheme == "syslog+tls" => Some((c, k)),
                (Some(_), Some(_)) => {
                    return Err(SpecError::new(
                        "syslog: cert= and key= only apply to syslog+tls",
                    ));
                }
                _ => return Err(SpecError::new("syslog: cert= and key= go together")),
            };
            let cef_names = ["vendor", "product", "version"].map(|k| take(&mut p, k));
            if !cef && cef_names.iter().any(Option::is_some) {
                return Err(SpecError::new(
                    "syslog: vendor=, product= and version= only apply to format=cef",
                ));
            }
            Ok(Spec::Syslog {
                transport: scheme["syslog+".len()..].to_owned(),
                ca,
                client,
                addr: addr.to_owned(),
                cef,
                cef_names,
                facility,
            })
        }
        "otlp+grpc" | "otlp+grpcs" | "otlp+http" | "otlp+https" => {
            let (base, mut p) = query("otlp", rest, &["format", "service"])?;
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
            let json = match take(&mut p, "format").as_deref() {
                None | Some("protobuf") => false,
                Some("json") if !grpc => true,
                Some(_) => {
                    return Err(SpecError::new(
                        "otlp: format is protobuf or (over HTTP) json",
                    ));
                }
            };
            Ok(Spec::Otlp {
                grpc,
                url,
                json,
                // None named: the resource takes the auditor's service from the events.
                service: take(&mut p, "service").unwrap_or_default(),
            })
        }
        "cloudwatch" => {
            let (base, mut p) = query("cloudwatch", rest, &["endpoint"])?;
            let path = base.strip_prefix("//").unwrap_or(base);
            let mut parts = path.splitn(2, '/');
            let region = parts.next().unwrap_or("");
            let (group, stream) = parts
                .next()
                .and_then(|gs| gs.rsplit_once('/'))
                .filter(|(g, s)| !region.is_empty() && !g.is_empty() && !s.is_empty())
                .ok_or_else(|| {
                    SpecError::new("cloudwatch: expected cloudwatch://REGION/GROUP/STREAM")
                })?;
            // The group is taken as written: `cloudwatch://REGION//aws/app/STREAM` names the
            // group `/aws/app`, `cloudwatch://REGION/app/STREAM` the group `app`.
            Ok(Spec::CloudWatch {
                region: region.to_owned(),
                group: group.to_owned(),
                stream: stream.to_owned(),
                endpoint: take(&mut p, "endpoint"),
            })
        }
        "nats" | "tls" => {
            // Parameters are checked like every other sink's: a query is never part of the
            // subject.
            let (base, mut p) = query("nats", rest, &["format", "stream"])?;
            let after = base
                .strip_prefix("//")
                .ok_or_else(|| SpecError::new("nats: expected nats://host:port/PREFIX"))?;
            let (host, prefix) = after.split_once('/').unwrap_or((after, ""));
            if host.is_empty() || prefix.is_empty() {
                return Err(SpecError::new(
                    "nats: expected nats://host:port/PREFIX (the subject prefix)",
                ));
            }
            let stream = take(&mut p, "stream");
            if stream
                .as_deref()
                .is_some_and(|s| s.is_empty() || s.contains(['.', '*', '>', ' ', '/']))
            {
                return Err(SpecError::new(
                    "nats: stream must be a JetStream stream name (no . * > / or spaces)",
                ));
            }
            Ok(Spec::Nats {
                url: format!("{scheme}://{host}"),
                prefix: prefix.to_owned(),
                format: checked_format(take(&mut p, "format"))?,
                stream,
            })
        }
        other => Err(SpecError::new(format!(
            "unknown sink scheme `{other}` (known: stdout, file, sqlite, postgres, webhook+https, \
             splunk+https, elasticsearch+https, datadog+https, syslog+tcp, syslog+tls, syslog+udp, cloudwatch, otlp+grpc, otlp+http, nats)"
        ))),
    }
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

/// Any sink a spec can name.
#[derive(Debug)]
#[non_exhaustive]
// Built once per configured sink and moved into its task: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum AnySink {
    /// Standard output.
    #[cfg(feature = "stdout")]
    Stdout(crate::StdoutSink),
    /// A file.
    #[cfg(feature = "file")]
    File(crate::FileSink),
    /// A store.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    Store(audit_core::store::StoreSink),
    /// A webhook.
    #[cfg(feature = "webhook")]
    Webhook(crate::WebhookSink),
    /// Splunk HEC.
    #[cfg(feature = "splunk")]
    Splunk(crate::SplunkSink),
    /// Elasticsearch.
    #[cfg(feature = "elasticsearch")]
    Elasticsearch(crate::ElasticsearchSink),
    /// NATS JetStream.
    #[cfg(feature = "nats")]
    Nats(crate::NatsSink),
    /// Datadog Logs.
    #[cfg(feature = "datadog")]
    Datadog(crate::DatadogSink),
    /// Syslog.
    #[cfg(feature = "syslog")]
    Syslog(crate::SyslogSink),
    /// CloudWatch Logs.
    #[cfg(feature = "cloudwatch")]
    CloudWatch(crate::CloudWatchSink),
    /// OTLP logs.
    #[cfg(feature = "otlp")]
    Otlp(crate::OtlpSink),
    /// Keeps the enum inhabited-checkable when every sink feature is off.
    #[doc(hidden)]
    _None(std::convert::Infallible),
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            #[cfg(feature = "stdout")]
            AnySink::Stdout($s) => $e,
            #[cfg(feature = "file")]
            AnySink::File($s) => $e,
            #[cfg(any(feature = "sqlite", feature = "postgres"))]
            AnySink::Store($s) => $e,
            #[cfg(feature = "webhook")]
            AnySink::Webhook($s) => $e,
            #[cfg(feature = "splunk")]
            AnySink::Splunk($s) => $e,
            #[cfg(feature = "elasticsearch")]
            AnySink::Elasticsearch($s) => $e,
            #[cfg(feature = "nats")]
            AnySink::Nats($s) => $e,
            #[cfg(feature = "datadog")]
            AnySink::Datadog($s) => $e,
            #[cfg(feature = "syslog")]
            AnySink::Syslog($s) => $e,
            #[cfg(feature = "cloudwatch")]
            AnySink::CloudWatch($s) => $e,
            #[cfg(feature = "otlp")]
            AnySink::Otlp($s) => $e,
            AnySink::_None(never) => match *never {},
        }
    };
}

impl Sink for AnySink {
    fn name(&self) -> &str {
        each!(self, s => s.name())
    }

    fn default_options(&self) -> SinkOptions {
        each!(self, s => s.default_options())
    }

    async fn deliver(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let _ = &batch; // unused when every sink feature is off
        each!(self, s => s.deliver(batch).await)
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        each!(self, s => s.flush().await)
    }
}

fn disabled(feature: &str) -> SpecError {
    SpecError::new(format!(
        "the `{feature}` feature of audit-sinks is not enabled in this build"
    ))
}

/// Builds the sink a spec names (connecting where the sink needs a connection).
pub async fn build(spec: &str) -> Result<AnySink, SpecError> {
    let parsed = parse(spec)?;
    #[allow(unreachable_code, unused_variables)]
    match parsed {
        Spec::Stdout(format) => {
            #[cfg(feature = "stdout")]
            return Ok(AnySink::Stdout(
                crate::StdoutSink::new().format(format_of(format.as_deref())),
            ));
            Err(disabled("stdout"))
        }
        Spec::File(path, format) => {
            #[cfg(feature = "file")]
            return crate::FileSink::builder(&path)
                .format(format_of(format.as_deref()))
                .build()
                .map(AnySink::File)
                .map_err(|e| SpecError::new(format!("file: cannot open {path}: {e}")));
            Err(disabled("file"))
        }
        Spec::Sqlite(path) => {
            #[cfg(feature = "sqlite")]
            return crate::SqliteStore::open(&path)
                .map(|s| AnySink::Store(audit_core::store::StoreSink::new(std::sync::Arc::new(s))))
                .map_err(|e| SpecError::new(format!("sqlite: cannot open {path}: {e}")));
            Err(disabled("sqlite"))
        }
        Spec::Postgres(url) => {
            #[cfg(feature = "postgres")]
            return crate::PostgresStore::connect(&url)
                .await
                .map(|s| AnySink::Store(audit_core::store::StoreSink::new(std::sync::Arc::new(s))))
                .map_err(|e| SpecError::new(format!("postgres: {e}")));
            Err(disabled("postgres"))
        }
        Spec::Webhook {
            url,
            secret,
            max_bytes,
            format,
        } => {
            #[cfg(feature = "webhook")]
            {
                let mut s = crate::WebhookSink::new(&url)
                    .map_err(SpecError::new)?
                    .format(format_of(format.as_deref()));
                if let Some(secret) = secret {
                    s = s.secret(secret);
                }
                if let Some(n) = max_bytes {
                    s = s.max_body_bytes(n);
                }
                return Ok(AnySink::Webhook(s));
            }
            Err(disabled("webhook"))
        }
        Spec::Splunk {
            url,
            token,
            index,
            source,
            sourcetype,
        } => {
            #[cfg(feature = "splunk")]
            {
                let mut s = crate::SplunkSink::new(&url, &token).map_err(SpecError::new)?;
                if let Some(i) = index {
                    s = s.index(i);
                }
                if let Some(v) = source {
                    s = s.source(v);
                }
                if let Some(v) = sourcetype {
                    s = s.sourcetype(v);
                }
                return Ok(AnySink::Splunk(s));
            }
            Err(disabled("splunk"))
        }
        Spec::Elasticsearch {
            url,
            target,
            api_key,
            user,
            native,
        } => {
            #[cfg(feature = "elasticsearch")]
            {
                let mut s = crate::ElasticsearchSink::new(&url, &target).map_err(SpecError::new)?;
                if let Some(k) = api_key {
                    s = s.api_key(k);
                }
                if let Some((u, p)) = user {
                    s = s.basic_auth(u, p);
                }
                if native {
                    s = s.format(crate::elasticsearch::DocFormat::Native);
                }
                return Ok(AnySink::Elasticsearch(s));
            }
            Err(disabled("elasticsearch"))
        }
        Spec::Datadog { url, api_key, tags } => {
            #[cfg(feature = "datadog")]
            {
                let mut s = crate::DatadogSink::new(&url, &api_key).map_err(SpecError::new)?;
                if let Some(t) = tags {
                    s = s.tags(t);
                }
                return Ok(AnySink::Datadog(s));
            }
            Err(disabled("datadog"))
        }
        Spec::Syslog {
            transport,
            ca,
            client,
            addr,
            cef,
            cef_names,
            facility,
        } => {
            #[cfg(feature = "syslog")]
            {
                use crate::syslog::{Body, Transport};
                let transport = match transport.as_str() {
                    "tcp" => Transport::Tcp,
                    "tls" => Transport::Tls,
                    _ => Transport::Udp,
                };
                let mut s = crate::SyslogSink::new(transport, addr);
                if let Some(path) = ca {
                    let pem = std::fs::read(&path).map_err(|e| {
                        SpecError::new(format!("syslog: cannot read ca {path}: {e}"))
                    })?;
                    s = s.ca_pem(pem);
                }
                if let Some((cert, key)) = client {
                    let read = |path: &str| {
                        std::fs::read(path)
                            .map_err(|e| SpecError::new(format!("syslog: cannot read {path}: {e}")))
                    };
                    s = s.client_cert_pem(read(&cert)?, read(&key)?);
                }
                if cef {
                    s = s.body(Body::Cef);
                    if cef_names.iter().any(Option::is_some) {
                        let default = crate::format::cef::Cef::default();
                        let [vendor, product, version] = cef_names;
                        let (dv, dp, dver) = default.names();
                        s = s.cef(crate::format::cef::Cef::new(
                            vendor.as_deref().unwrap_or(dv),
                            product.as_deref().unwrap_or(dp),
                            version.as_deref().unwrap_or(dver),
                        ));
                    }
                }
                if let Some(f) = facility {
                    s = s.facility(f);
                }
                return Ok(AnySink::Syslog(s));
            }
            #[cfg(not(feature = "syslog"))]
            let _ = cef_names;
            Err(disabled("syslog"))
        }
        Spec::CloudWatch {
            region,
            group,
            stream,
            endpoint,
        } => {
            #[cfg(feature = "cloudwatch")]
            {
                let credentials = crate::cloudwatch::Credentials::from_env()
                    .map_err(|e| SpecError::new(format!("cloudwatch: {e}")))?;
                let mut s = crate::CloudWatchSink::new(&region, &group, &stream, credentials)
                    .map_err(SpecError::new)?;
                if let Some(e) = endpoint {
                    s = s.endpoint(e);
                }
                return Ok(AnySink::CloudWatch(s));
            }
            Err(disabled("cloudwatch"))
        }
        Spec::Otlp {
            grpc,
            url,
            json,
            service,
        } => {
            #[cfg(feature = "otlp")]
            {
                use crate::otlp::Protocol;
                let protocol = match (grpc, json) {
                    (true, _) => Protocol::Grpc,
                    (false, true) => Protocol::HttpJson,
                    (false, false) => Protocol::HttpProtobuf,
                };
                return crate::OtlpSink::new(protocol, &url, &service)
                    .map(AnySink::Otlp)
                    .map_err(SpecError::new);
            }
            Err(disabled("otlp"))
        }
        Spec::Nats {
            url,
            prefix,
            format,
            stream,
        } => {
            #[cfg(feature = "nats")]
            {
                let sink = match stream {
                    Some(name) => crate::NatsSink::connect_creating(&url, &prefix, &name).await,
                    None => crate::NatsSink::connect(&url, &prefix).await,
                };
                return sink
                    .map(|sink| AnySink::Nats(sink.format(format_of(format.as_deref()))))
                    .map_err(SpecError::new);
            }
            #[cfg(not(feature = "nats"))]
            let _ = (format, stream);
            Err(disabled("nats"))
        }
    }
}
