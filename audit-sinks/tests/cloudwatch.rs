//! The CloudWatch Logs sink against a loopback endpoint that checks what the service checks:
//! the SigV4 signature (recomputed with the shared secret), the `X-Amz-Target`, and every
//! PutLogEvents limit; it answers `ResourceNotFoundException` until the stream is created
//! and throttles once.
#![cfg(feature = "cloudwatch")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use audit_core::{Auditor, Timestamp};
use audit_sinks::cloudwatch::{CloudWatchSink, Credentials};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use common::{Receiver, Reply, events, fast_retry};
use serde_json::{Value, json};

const KEY_ID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// Recomputes the request's signature as the service would; true when it matches.
fn signature_ok(url: &str, r: &common::Received) -> bool {
    let date = r.headers["x-amz-date"].to_str().unwrap(); // 20261122T060000Z
    let iso = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &date[0..4],
        &date[4..6],
        &date[6..8],
        &date[9..11],
        &date[11..13],
        &date[13..15]
    );
    let ms = iso.parse::<Timestamp>().unwrap().unix_millis();
    let time = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap());
    let identity =
        aws_credential_types::Credentials::new(KEY_ID, SECRET, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("eu-west-1")
        .name("logs")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let headers = [
        ("content-type", r.headers["content-type"].to_str().unwrap()),
        ("x-amz-target", r.headers["x-amz-target"].to_str().unwrap()),
    ];
    let signable = SignableRequest::new(
        "POST",
        url,
        headers.into_iter(),
        SignableBody::Bytes(&r.body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut expected = http::Request::new(());
    instructions.apply_to_request_http1x(&mut expected);
    expected.headers()["authorization"] == r.headers["authorization"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_calls_within_every_limit_and_nothing_lost() {
    let stored = Arc::new(Mutex::new(Vec::<Value>::new()));
    let store = stored.clone();
    let stream_exists = Arc::new(Mutex::new(false));
    let throttled = Arc::new(Mutex::new(false));
    let url_cell = Arc::new(Mutex::new(String::new()));
    let url_for_check = url_cell.clone();
    let rx = Receiver::start(move |r| {
        let url = url_for_check.lock().unwrap().clone();
        if !signature_ok(&url, r) {
            return Reply::status(403).body(r#"{"__type":"InvalidSignatureException"}"#);
        }
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        match r.headers["x-amz-target"].to_str().unwrap() {
            "Logs_20140328.CreateLogStream" => {
                *stream_exists.lock().unwrap() = true;
                Reply::status(200).body("{}")
            }
            "Logs_20140328.PutLogEvents" => {
                if !*stream_exists.lock().unwrap() {
                    return Reply::status(400).body(r#"{"__type":"com.amazonaws.logs#ResourceNotFoundException","message":"The specified log stream does not exist."}"#);
                }
                {
                    let mut t = throttled.lock().unwrap();
                    if !*t {
                        *t = true;
                        return Reply::status(400).body(r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#);
                    }
                }
                let events = body["logEvents"].as_array().unwrap();
                let bytes: usize = events.iter().map(|e| e["message"].as_str().unwrap().len() + 26).sum();
                let times: Vec<i64> = events.iter().map(|e| e["timestamp"].as_i64().unwrap()).collect();
                // What the service model checks of each event: at most 1 MB with its overhead;
                // and what a reader needs: every message a whole JSON document.
                let each_ok = events.iter().all(|e| {
                    let m = e["message"].as_str().unwrap();
                    m.len() + 26 <= 1_048_576 && serde_json::from_str::<Value>(m).is_ok()
                });
                let ok = events.len() <= 10_000
                    && each_ok
                    && bytes <= 1_048_576
                    && times.windows(2).all(|w| w[0] <= w[1])
                    && times.last().unwrap() - times[0] <= 24 * 3600 * 1000;
                if !ok {
                    return Reply::status(400).body(r#"{"__type":"InvalidParameterException"}"#);
                }
                store.lock().unwrap().extend(events.iter().cloned());
                Reply::status(200).body(json!({"nextSequenceToken": "x"}).to_string())
            }
            _ => Reply::status(400).body(r#"{"__type":"UnknownOperationException"}"#),
        }
    })
    .await;
    *url_cell.lock().unwrap() = rx.url("/");
    let sink = CloudWatchSink::new(
        "eu-west-1",
        "/audit/test",
        "instance-1",
        Credentials::new(KEY_ID, SECRET, None),
    )
    .unwrap()
    .endpoint(rx.url("/"));
    // The pipeline's own event cap is raised so that events over CloudWatch's limit reach the
    // sink.
    let auditor = Auditor::builder()
        .limits(
            audit_core::Limits::default()
                .text(2_000_000)
                .event_bytes(4 << 20),
        )
        .sink_with(
            sink,
            fast_retry()
                .max_batch_events(20_000)
                .max_batch_bytes(256 << 20)
                .queue_bytes(512 << 20)
                .filter(|e| e.event_type.as_str() == "data.vector.delete"),
        )
        .build()
        .unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut sent = events(12_000, 60);
    // Out of order, and spread over more than a day.
    for (i, e) in sent.iter_mut().enumerate() {
        let offset = ((i * 7919) % 12_000) as i64 * 10_000;
        e.timestamp = Timestamp::from_unix_millis(now - 40 * 3600 * 1000 + offset).unwrap();
    }
    // One event CloudWatch takes whole, one over its 1 MB limit.
    let mut large = events(2, 1);
    large[0]
        .details
        .insert("blob".into(), json!("w".repeat(500_000)));
    large[1]
        .details
        .insert("blob".into(), json!("o".repeat(1_200_000)));
    let (whole_id, over_id) = (large[0].id.to_string(), large[1].id.to_string());
    sent.extend(large);
    for e in &sent {
        auditor.record(e.clone()).unwrap();
    }
    let report = auditor.shutdown(Duration::from_secs(30)).await;
    assert!(report.complete, "{report}");
    let got = stored.lock().unwrap();
    let message = |id: &str| -> Value {
        got.iter()
            .map(|e| serde_json::from_str::<Value>(e["message"].as_str().unwrap()).unwrap())
            .find(|m| m["id"] == id)
            .unwrap()
    };
    assert_eq!(
        message(&whole_id)["details"]["blob"]
            .as_str()
            .unwrap()
            .len(),
        500_000
    );
    let stub = message(&over_id);
    assert_eq!(stub["truncated"], true);
    assert!(stub["originalBytes"].as_u64().unwrap() > 1_200_000);
    let ids: HashSet<String> = got
        .iter()
        .map(|e| {
            serde_json::from_str::<Value>(e["message"].as_str().unwrap()).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(got.len(), sent.len(), "each event once");
    assert_eq!(ids.len(), sent.len());
    let puts = rx
        .requests()
        .iter()
        .filter(|r| r.headers["x-amz-target"] == "Logs_20140328.PutLogEvents")
        .count();
    assert!(puts >= 4, "split for the count and the 24 h span: {puts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_retried_not_dropped() {
    let url_cell = Arc::new(Mutex::new(String::new()));
    let check = url_cell.clone();
    let rx = Receiver::start(move |r| {
        if signature_ok(&check.lock().unwrap(), r) {
            Reply::status(200).body("{}")
        } else {
            Reply::status(403).body(r#"{"__type":"InvalidSignatureException"}"#)
        }
    })
    .await;
    *url_cell.lock().unwrap() = rx.url("/");
    let sink = CloudWatchSink::new(
        "eu-west-1",
        "g",
        "s",
        Credentials::new(KEY_ID, "wrong", None),
    )
    .unwrap()
    .endpoint(rx.url("/"));
    let auditor = Auditor::builder()
        .sink_with(sink, fast_retry())
        .build()
        .unwrap();
    auditor.record(events(1, 1).remove(0)).unwrap();
    let report = auditor.shutdown(Duration::from_millis(300)).await;
    let m = &report.metrics.sinks[0];
    assert_eq!(m.failed, 0, "{report}");
    assert!(m.last_error.as_deref().unwrap().contains("403"), "{report}");
    assert!(!format!("{report}").contains("wrong"));
}

#[test]
fn configuration_errors_and_secret_free_debug() {
    assert!(CloudWatchSink::new("", "g", "s", Credentials::new("a", "b", None)).is_err());
    assert!(
        CloudWatchSink::new("eu-west-1", "g", "a:b", Credentials::new("a", "b", None)).is_err()
    );
    let c = Credentials::new("AKID", "topsecret", Some("sessiontoken".into()));
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("topsecret") && !shown.contains("sessiontoken"),
        "{shown}"
    );
}
