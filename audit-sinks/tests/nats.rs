//! The NATS JetStream sink against the real server on this machine (`AUDIT_NATS_URL`,
//! default `nats://127.0.0.1:4222`): events land on per-tenant, per-category subjects, and a
//! re-published batch is deduplicated by `Nats-Msg-Id`.
#![cfg(feature = "nats")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::time::Duration;

use async_nats::jetstream;
use audit_core::{Auditor, Batch, Sink};
use audit_sinks::NatsSink;
use common::events;

async fn server() -> Option<String> {
    let url = std::env::var("AUDIT_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    match async_nats::connect(&url).await {
        Ok(_) => Some(url),
        Err(e) if std::env::var_os("AUDIT_REQUIRE_SERVICES").is_none() => {
            eprintln!("skipping: NATS not reachable at {url} ({e}); set AUDIT_NATS_URL");
            None
        }
        Err(e) => panic!("NATS required (AUDIT_REQUIRE_SERVICES) but unreachable: {e}"),
    }
}

/// The messages stored on `subject`.
async fn messages(stream: &jetstream::stream::Stream, subject: &str) -> Vec<jetstream::Message> {
    use futures_util::StreamExt;
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            filter_subject: subject.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap();
    let batch = consumer
        .fetch()
        .max_messages(100)
        .expires(Duration::from_secs(1))
        .messages()
        .await
        .unwrap();
    batch.map(Result::unwrap).collect().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_stored_per_tenant_and_category_and_deduplicated() {
    let Some(url) = server().await else { return };
    let prefix = format!("audit_test_{}", std::process::id());
    let js = jetstream::new(async_nats::connect(&url).await.unwrap());
    let name = prefix.to_uppercase();
    let _ = js.delete_stream(&name).await;
    let mut stream = js
        .create_stream(jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![format!("{prefix}.>")],
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .unwrap();

    let sink = NatsSink::connect(&url, &prefix).await.unwrap();
    let auditor = Auditor::builder()
        .sink_with(
            sink.clone(),
            audit_core::SinkOptions::new()
                .filter(|e| e.event_type.as_str() == "data.vector.delete"),
        )
        .build()
        .unwrap();
    let sent = events(40, 20);
    for e in &sent {
        auditor.record(e.clone()).unwrap();
    }
    assert!(auditor.shutdown(Duration::from_secs(10)).await.complete);
    assert_eq!(stream.info().await.unwrap().state.messages, 40);

    // The pipeline retries a batch whole: publishing the same events again stores nothing new.
    let mut again = sink.clone();
    again.deliver(&Batch::from(sent.clone())).await.unwrap();
    assert_eq!(
        stream.info().await.unwrap().state.messages,
        40,
        "deduplicated by Nats-Msg-Id"
    );

    let mut n = 0;
    for m in messages(&stream, &format!("{prefix}.acme.data")).await {
        let e: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(e["context"]["organizationId"], "acme");
        assert_eq!(
            m.headers
                .as_ref()
                .unwrap()
                .get("Nats-Msg-Id")
                .unwrap()
                .as_str(),
            e["id"].as_str().unwrap()
        );
        n += 1;
    }
    assert_eq!(n, 20, "half the events are acme's");
    js.delete_stream(&name).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_prefixes_and_missing_streams_are_clear() {
    assert!(
        NatsSink::connect("nats://127.0.0.1:4222", "a.*")
            .await
            .unwrap_err()
            .to_string()
            .contains("prefix")
    );
    let Some(url) = server().await else { return };
    // No stream stores the subjects: refused at once, naming them and the way out, rather
    // than every publish waiting for an acknowledgement that cannot come.
    let err = NatsSink::connect(&url, "no_stream_here_xyz")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no_stream_here_xyz.>") && err.contains("stream="),
        "{err}"
    );
}

/// `?stream=NAME` creates the stream when missing, and the sink then stores events in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_can_create_the_stream() {
    let Some(url) = server().await else { return };
    let prefix = format!("audit_new_{}", std::process::id());
    let name = prefix.to_uppercase();
    let js = jetstream::new(async_nats::connect(&url).await.unwrap());
    let _ = js.delete_stream(&name).await;
    let host = url.trim_start_matches("nats://");
    let sink = audit_sinks::spec::build(&format!("nats://{host}/{prefix}?stream={name}"))
        .await
        .unwrap();
    let auditor = Auditor::builder()
        .sink_with(
            sink,
            audit_core::SinkOptions::new()
                .filter(|e| e.event_type.as_str() == "data.vector.delete"),
        )
        .build()
        .unwrap();
    for e in events(5, 5) {
        auditor.record(e).unwrap();
    }
    assert!(auditor.shutdown(Duration::from_secs(10)).await.complete);
    let mut stream = js.get_stream(&name).await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.state.messages, 5);
    assert_eq!(info.config.duplicate_window, Duration::from_secs(120));
    js.delete_stream(&name).await.unwrap();
}

/// A sink built from a spec with `?format=ecs` publishes ECS documents under the prefix: the
/// query is a parameter, never part of the subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_chooses_the_payload_format() {
    let Some(url) = server().await else { return };
    let prefix = format!("audit_fmt_{}", std::process::id());
    let js = jetstream::new(async_nats::connect(&url).await.unwrap());
    let name = prefix.to_uppercase();
    let _ = js.delete_stream(&name).await;
    let stream = js
        .create_stream(jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![format!("{prefix}.>")],
            ..Default::default()
        })
        .await
        .unwrap();
    let spec = format!("{url}/{prefix}?format=ecs");
    let mut sink = audit_sinks::spec::build(&spec).await.unwrap();
    sink.deliver(&Batch::from(events(1, 1))).await.unwrap();
    let m = messages(&stream, &format!("{prefix}.acme.data"))
        .await
        .remove(0);
    let doc: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(
        doc["event"]["action"], "data.vector.delete",
        "an ECS document: {doc}"
    );
    assert_eq!(doc["organization"]["id"], "acme");
    js.delete_stream(&name).await.unwrap();
}
