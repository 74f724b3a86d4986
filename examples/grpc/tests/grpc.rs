//! The gRPC example end to end: its tonic server and client talk over TCP, and the trail it
//! prints holds one meaningful event per call.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::process::Command;

use serde_json::Value;

#[test]
fn every_call_is_one_event_named_from_its_method() {
    let out = Command::new(env!("CARGO_BIN_EXE_grpc")).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |service: &str| -> Vec<Value> {
        all.iter()
            .filter(|e| e["context"]["service"] == service)
            .cloned()
            .collect()
    };
    let events = of("greeter-front");
    let back = of("greeter-back");
    let seen: Vec<(&str, &str, &str, i64)> = events
        .iter()
        .map(|e| {
            (
                e["rpc"]["method"].as_str().unwrap(),
                e["eventType"].as_str().unwrap(),
                e["result"].as_str().unwrap(),
                e["rpc"]["grpcStatusCode"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("SayHello", "data.greeter.call", "success", 0),
            ("DeleteThing", "security.access.denied", "denied", 7),
            ("GetThing", "data.thing.read", "failure", 5),
            ("ListThings", "data.thing.read", "success", 0),
        ]
    );
    for e in &events {
        assert_eq!(e["rpc"]["service"], "demo.v1.Greeter");
        assert_eq!(e["actor"]["id"], "alice");
        assert_eq!(e["actor"]["ipAddress"], "127.0.0.1");
        assert!(e["details"]["responseIncomplete"].is_null(), "{e}");
    }
    // The client's request id, trusted from loopback, continues into the server's trail.
    assert_eq!(
        events[0]["context"]["requestId"],
        "0193f0c4-7a1b-7c3d-8e4f-0123456789ab"
    );
    assert_eq!(events[3]["rpc"]["responseMessages"], 3);
    // The front's SayHello called the back through PropagateLayer: one request id and one
    // trace id across both trails.
    assert_eq!(back.len(), 1);
    assert_eq!(back[0]["rpc"]["method"], "GetThing");
    assert_eq!(
        back[0]["context"]["requestId"],
        events[0]["context"]["requestId"]
    );
    assert_eq!(
        back[0]["context"]["traceId"],
        events[0]["context"]["traceId"]
    );
}
