//! The nested parts of an event: actor, target, context, HTTP facts and integrity.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Text;

/// Rough fixed cost of one part, for [`AuditEvent::approx_size`](super::AuditEvent::approx_size).
pub(super) const PART_OVERHEAD: usize = 64;

/// Generates `with_<field>` setters for optional string fields.
macro_rules! string_setters {
    ($($(#[$doc:meta])* $setter:ident => $field:ident;)*) => {
        $(
            $(#[$doc])*
            #[must_use]
            pub fn $setter(mut self, value: impl Into<Text>) -> Self {
                self.$field = Some(value.into());
                self
            }
        )*
    };
}

/// Sums the lengths of optional string fields.
macro_rules! strings_len {
    ($self:ident: $($field:ident),*) => {
        0 $(+ $self.$field.as_ref().map_or(0, |s| s.len()))*
    };
}

/// Who performed the action.
///
/// `ipAddress` and `userAgent` describe the connection the action came from; the user agent is
/// whatever the client sent and is recorded as untrusted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Actor {
    /// `user`, `service`, `api_key`, `anonymous`, `system`, …
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Text>,
    /// Stable id of the principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Text>,
    /// E-mail address, when the principal is a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Text>,
    /// Role at the time of the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Text>,
    /// Client IP address as resolved by the capture layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<Text>,
    /// The `User-Agent` the client sent (untrusted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<Text>,
    /// OAuth client / application id the action came through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<Text>,
}

impl Actor {
    /// An actor of the given kind and id.
    pub fn new(kind: impl Into<Text>, id: impl Into<Text>) -> Actor {
        Actor {
            kind: Some(kind.into()),
            id: Some(id.into()),
            ..Actor::default()
        }
    }

    /// A human user.
    pub fn user(id: impl Into<Text>) -> Actor {
        Actor::new(Text::from_static("user"), id)
    }

    /// A service or workload acting on its own behalf.
    pub fn service(id: impl Into<Text>) -> Actor {
        Actor::new(Text::from_static("service"), id)
    }

    string_setters! {
        /// Sets the kind (`user`, `service`, …).
        with_kind => kind;
        /// Sets the id.
        with_id => id;
        /// Sets the e-mail address.
        with_email => email;
        /// Sets the role.
        with_role => role;
        /// Sets the client IP address.
        with_ip_address => ip_address;
        /// Sets the user agent.
        with_user_agent => user_agent;
        /// Sets the OAuth client id.
        with_client_id => client_id;
    }

    pub(super) fn strings_len(&self) -> usize {
        strings_len!(self: kind, id, email, role, ip_address, user_agent, client_id)
    }
}

/// The resource acted on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Target {
    /// Resource type, e.g. `index`, `api_key`, `organization`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Text>,
    /// Resource id. Never a secret: for an API key this is the key's id, not the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Text>,
    /// Human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Text>,
}

impl Target {
    /// A target of the given type and id.
    pub fn new(kind: impl Into<Text>, id: impl Into<Text>) -> Target {
        Target {
            kind: Some(kind.into()),
            id: Some(id.into()),
            name: None,
        }
    }

    string_setters! {
        /// Sets the resource type.
        with_kind => kind;
        /// Sets the resource id.
        with_id => id;
        /// Sets the display name.
        with_name => name;
    }

    pub(super) fn strings_len(&self) -> usize {
        strings_len!(self: kind, id, name)
    }
}

/// Correlation ids and the tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Context {
    /// The request id (validated inbound, or generated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Text>,
    /// W3C trace id (32 hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<Text>,
    /// W3C span id (16 hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<Text>,
    /// The session the action belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<Text>,
    /// The tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<Text>,
    /// The service that recorded the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Text>,
}

impl Context {
    string_setters! {
        /// Sets the request id.
        with_request_id => request_id;
        /// Sets the trace id.
        with_trace_id => trace_id;
        /// Sets the span id.
        with_span_id => span_id;
        /// Sets the session id.
        with_session_id => session_id;
        /// Sets the tenant.
        with_organization_id => organization_id;
        /// Sets the recording service's name.
        with_service => service;
    }

    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        *self == Context::default()
    }

    pub(super) fn strings_len(&self) -> usize {
        strings_len!(self: request_id, trace_id, span_id, session_id, organization_id, service)
    }
}

/// Facts about the HTTP exchange an event was captured from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct HttpFacts {
    /// Request method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Text>,
    /// Route template, e.g. `/v1/indexes/{index}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Text>,
    /// The concrete path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Text>,
    /// Response status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// Time from request to response, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    /// The raw query string (without `?`), as received. Redaction decodes it to find
    /// secrets by parameter name and value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<Text>,
    /// Captured request headers, lowercase name → value (an array for repeated headers).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub headers: Map<String, Value>,
    /// The captured request body, at the `request` and `request_response` levels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<CapturedBody>,
    /// The captured response body, at the `request_response` level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body: Option<CapturedBody>,
}

impl HttpFacts {
    string_setters! {
        /// Sets the method.
        with_method => method;
        /// Sets the route template.
        with_route => route;
        /// Sets the concrete path.
        with_path => path;
    }

    /// Sets the response status.
    #[must_use]
    pub fn with_status_code(mut self, status: u16) -> Self {
        self.status_code = Some(status);
        self
    }

    /// Sets the latency in milliseconds.
    #[must_use]
    pub fn with_duration_ms(mut self, ms: f64) -> Self {
        self.duration_ms = Some(ms);
        self
    }

    /// Sets the raw query string.
    #[must_use]
    pub fn with_query(mut self, query: impl Into<Text>) -> Self {
        self.query = Some(query.into());
        self
    }

    /// Adds a header (name lowercased).
    #[must_use]
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers
            .insert(name.to_ascii_lowercase(), Value::String(value.into()));
        self
    }

    /// Sets the captured request body.
    #[must_use]
    pub fn with_request_body(mut self, body: CapturedBody) -> Self {
        self.request_body = Some(body);
        self
    }

    pub(super) fn strings_len(&self) -> usize {
        let bodies = [&self.request_body, &self.response_body]
            .into_iter()
            .flatten()
            .map(CapturedBody::approx_size)
            .sum::<usize>();
        strings_len!(self: method, route, path, query) + super::map_size(&self.headers) + bodies
    }
}

/// Facts about a remote procedure call (gRPC), after OpenTelemetry's `rpc.*` conventions.
///
/// The service and method come from the request's path (`/<service>/<method>`); the status
/// is the gRPC code from the response's trailers (or headers, for a trailers-only answer),
/// since such an answer's HTTP status is 200 whatever happened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RpcFacts {
    /// The RPC system, `grpc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<Text>,
    /// Fully qualified service name, e.g. `demo.v1.Greeter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Text>,
    /// Method name, e.g. `SayHello`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Text>,
    /// The gRPC status code (0 OK, 7 PERMISSION_DENIED, 16 UNAUTHENTICATED, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_status_code: Option<i32>,
    /// Messages the client sent (counted as the service read them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_messages: Option<u64>,
    /// Messages the service answered with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_messages: Option<u64>,
}

impl RpcFacts {
    /// A gRPC call of `service`'s `method`.
    pub fn grpc(service: impl Into<Text>, method: impl Into<Text>) -> RpcFacts {
        RpcFacts {
            system: Some(Text::from_static("grpc")),
            service: Some(service.into()),
            method: Some(method.into()),
            ..RpcFacts::default()
        }
    }

    /// Sets the gRPC status code.
    #[must_use]
    pub fn with_grpc_status_code(mut self, code: i32) -> Self {
        self.grpc_status_code = Some(code);
        self
    }

    pub(super) fn strings_len(&self) -> usize {
        strings_len!(self: system, service, method)
    }
}

/// A request or response body as captured: its content when small enough (JSON parsed, or
/// text), and its size and hash when cut at the capture limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CapturedBody {
    /// The `Content-Type` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<Text>,
    /// The body's full size in bytes.
    pub size: u64,
    /// True when `content` holds only the first part of the body.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// SHA-256 (hex) of the whole body, when truncated. Removed by redaction when the body
    /// held a secret, since a hash of a secret is not safe to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Text>,
    /// The content: parsed JSON, or text (form bodies stay text and are decoded by
    /// redaction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
}

impl CapturedBody {
    /// A body captured whole.
    pub fn new(content_type: Option<&str>, size: u64, content: Value) -> CapturedBody {
        CapturedBody {
            content_type: content_type.map(Text::from),
            size,
            truncated: false,
            sha256: None,
            content: Some(content),
        }
    }

    fn approx_size(&self) -> usize {
        PART_OVERHEAD
            + strings_len!(self: content_type, sha256)
            + self.content.as_ref().map_or(0, super::value_size)
    }
}

/// Where an event sits in its stream: the stream name, a gap-free sequence number, and (when
/// the hash chain is on) the hashes linking it to its predecessor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Integrity {
    /// The stream (one per `Auditor`).
    pub stream: Text,
    /// Position in the stream, starting at 1. Numbers lost to overload are reported by a
    /// `system.audit.dropped` event, so every gap is explained.
    pub seq: u64,
    /// Hash of the previous event in the stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_hash: Option<Text>,
    /// Hash of this event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<Text>,
}

impl Integrity {
    /// Stream position without hashes.
    pub fn new(stream: impl Into<Text>, seq: u64) -> Integrity {
        Integrity {
            stream: stream.into(),
            seq,
            prev_hash: None,
            hash: None,
        }
    }

    pub(super) fn strings_len(&self) -> usize {
        self.stream.len() + strings_len!(self: prev_hash, hash)
    }
}
