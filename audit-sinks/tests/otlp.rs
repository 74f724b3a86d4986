//! The OTLP sink against loopback receivers: HTTP/JSON and HTTP/protobuf bodies decoded with
//! the OpenTelemetry protocol definitions, and a gRPC LogsService server; one log record per
//! event, with its trace context and fields as attributes.
#![cfg(feature = "otlp")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use audit_core::{Actor, AuditEvent, Auditor, Outcome};
use audit_sinks::otlp::{OtlpSink, Protocol};
use common::{Receiver, Reply, fast_retry};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use prost::Message;

fn events() -> Vec<AuditEvent> {
    (0..5)
        .map(|i| {
            AuditEvent::builder("auth.login.failure")
                .actor(
                    Actor::user(format!("user-{i}"))
                        .with_ip_address("203.0.113.7")
                        .with_role("admin"),
                )
                .http(
                    audit_core::HttpFacts::default()
                        .with_method("POST")
                        .with_route("/auth/login")
                        .with_status_code(401),
                )
                .organization_id("acme")
                .request_id(format!("req-{i}"))
                .trace_id("4bf92f3577b34da6a3ce929d0e0e4736")
                .span_id("00f067aa0ba902b7")
                .description("Login failed")
                .detail("attempt", i)
                .rpc(audit_core::RpcFacts::grpc("auth.v1.Auth", "Login").with_grpc_status_code(16))
                .result(Outcome::Failure)
                .build()
                .unwrap()
        })
        .collect()
}

fn attr(r: &LogRecord, key: &str) -> Option<String> {
    r.attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Any::StringValue(s) => Some(s.clone()),
            other => Some(format!("{other:?}")),
        }
    })
}

fn check(records: &[LogRecord], sent: &[AuditEvent]) {
    assert_eq!(records.len(), sent.len());
    for (r, e) in records.iter().zip(sent) {
        assert_eq!(
            attr(r, "audit.id").as_deref(),
            Some(e.id.to_string().as_str())
        );
        assert_eq!(attr(r, "event.name").as_deref(), Some("auth.login.failure"));
        assert_eq!(r.event_name, "auth.login.failure");
        assert_eq!(attr(r, "audit.actor.type").as_deref(), Some("user"));
        assert_eq!(attr(r, "audit.actor.role").as_deref(), Some("admin"));
        assert_eq!(attr(r, "http.request.method").as_deref(), Some("POST"));
        assert_eq!(attr(r, "http.route").as_deref(), Some("/auth/login"));
        assert_eq!(
            attr(r, "http.response.status_code").as_deref(),
            Some("IntValue(401)")
        );
        assert_eq!(attr(r, "audit.hash").map(|h| h.len()), Some(64));
        assert!(attr(r, "audit.stream").unwrap().starts_with("vector-api-"));
        assert!(attr(r, "audit.seq").unwrap().starts_with("IntValue("));
        assert_eq!(attr(r, "tenant.id").as_deref(), Some("acme"));
        assert_eq!(attr(r, "client.address").as_deref(), Some("203.0.113.7"));
        assert_eq!(attr(r, "audit.result").as_deref(), Some("failure"));
        assert!(attr(r, "audit.details").unwrap().contains("attempt"));
        assert_eq!(attr(r, "rpc.system").as_deref(), Some("grpc"));
        assert_eq!(attr(r, "rpc.service").as_deref(), Some("auth.v1.Auth"));
        assert_eq!(attr(r, "rpc.method").as_deref(), Some("Login"));
        assert_eq!(
            attr(r, "rpc.grpc.status_code").as_deref(),
            Some("IntValue(16)")
        );
        assert_eq!(
            r.time_unix_nano,
            e.timestamp.unix_millis() as u64 * 1_000_000
        );
        assert_eq!(r.severity_number, 9, "INFO");
        assert_eq!(hex(&r.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&r.span_id), "00f067aa0ba902b7");
        match r.body.as_ref().unwrap().value.as_ref().unwrap() {
            Any::StringValue(s) => assert_eq!(s, "Login failed"),
            other => panic!("{other:?}"),
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn records(req: &ExportLogsServiceRequest) -> Vec<LogRecord> {
    let rl = &req.resource_logs[0];
    let service = rl
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .unwrap();
    assert!(
        matches!(service.value.as_ref().unwrap().value.as_ref().unwrap(), Any::StringValue(s) if s == "vector-api")
    );
    rl.scope_logs
        .iter()
        .flat_map(|s| s.log_records.clone())
        .collect()
}

/// Records the test events through `sink` (from an auditor of service `vector-api`) and
/// waits until every one is delivered.
async fn deliver(sink: OtlpSink) -> Vec<AuditEvent> {
    let auditor = Auditor::builder()
        .service("vector-api")
        .sink_with(
            sink,
            fast_retry().filter(|e| e.event_type.as_str() == "auth.login.failure"),
        )
        .build()
        .unwrap();
    let sent = events();
    for e in &sent {
        auditor.record(e.clone()).unwrap();
    }
    assert!(auditor.shutdown(Duration::from_secs(10)).await.complete);
    sent
}

async fn over_http(protocol: Protocol) {
    let got = Arc::new(Mutex::new(Vec::<ExportLogsServiceRequest>::new()));
    let store = got.clone();
    let rx = Receiver::start(move |r| {
        if r.path != "/v1/logs" {
            return Reply::status(404);
        }
        let ct = r.headers["content-type"].to_str().unwrap().to_owned();
        let req = if ct == "application/json" {
            serde_json::from_slice(&r.body).unwrap()
        } else {
            assert_eq!(ct, "application/x-protobuf");
            ExportLogsServiceRequest::decode(&r.body[..]).unwrap()
        };
        store.lock().unwrap().push(req);
        Reply::status(200).body("{}")
    })
    .await;
    rx.script([Reply::status(503)]);
    // No service named: the resource takes the auditor's.
    let sink = OtlpSink::new(protocol, &rx.url("/v1/logs"), "").unwrap();
    let sent = deliver(sink).await;
    let got = got.lock().unwrap();
    let all: Vec<LogRecord> = got.iter().flat_map(records).collect();
    check(&all, &sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_json_records_carry_the_event() {
    over_http(Protocol::HttpJson).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_records_carry_the_event() {
    over_http(Protocol::HttpProtobuf).await;
}

#[derive(Default, Clone)]
struct Collector(Arc<Mutex<Vec<ExportLogsServiceRequest>>>);

#[tonic::async_trait]
impl LogsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse {
            partial_success: None,
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_records_carry_the_event() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let collector = Collector::default();
    let server = tonic::transport::Server::builder()
        .add_service(LogsServiceServer::new(collector.clone()))
        .serve_with_incoming(
            tonic::codegen::tokio_stream::wrappers::TcpListenerStream::new(listener),
        );
    tokio::spawn(server);
    let sink = OtlpSink::new(Protocol::Grpc, &format!("http://{addr}"), "vector-api").unwrap();
    let sent = deliver(sink).await;
    let got = collector.0.lock().unwrap();
    let all: Vec<LogRecord> = got.iter().flat_map(records).collect();
    check(&all, &sent);
}
