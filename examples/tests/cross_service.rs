//! The cross-service example end to end: one order placed through `orders`, which calls
//! `inventory`; every event of both trails shares the request id and the trace id.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::Value;

#[test]
fn both_services_share_request_id_and_trace_id() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cross_service"))
        .arg("--dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let request_id = stdout
        .split("x-request-id: ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap()
        .to_owned();

    let read = |name: &str| -> Vec<Value> {
        std::fs::read_to_string(dir.path().join(name))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let orders = read("orders.jsonl");
    let inventory = read("inventory.jsonl");
    let types = |events: &[Value]| {
        let mut t: Vec<String> = events
            .iter()
            .map(|e| e["eventType"].as_str().unwrap().to_owned())
            .collect();
        t.sort();
        t
    };
    assert_eq!(types(&orders), ["data.order.create", "data.order.submit"]);
    assert_eq!(
        types(&inventory),
        ["data.reservation.create", "data.stock.reserve"]
    );

    let trace = orders[0]["context"]["traceId"].as_str().unwrap().to_owned();
    assert_eq!(trace.len(), 32);
    for e in orders.iter().chain(&inventory) {
        assert_eq!(e["context"]["requestId"], request_id.as_str(), "{e}");
        assert_eq!(e["context"]["traceId"], trace.as_str(), "{e}");
    }
    // Each service has its own span in the one trace.
    assert_ne!(
        orders[0]["context"]["spanId"],
        inventory[0]["context"]["spanId"]
    );
    assert_eq!(orders[0]["context"]["service"], "orders");
    assert_eq!(inventory[0]["context"]["service"], "inventory");
    // The handler events carry what only the handlers knew.
    let reserve = inventory
        .iter()
        .find(|e| e["eventType"] == "data.stock.reserve")
        .unwrap();
    assert_eq!(reserve["details"]["quantity"], 2);
    assert_eq!(reserve["target"]["id"], "sku-7");
    // Who the order was for reached inventory as a signed claim: recorded, and its events
    // filed under the user's tenant (the caller itself stays the actor).
    for e in &inventory {
        assert_eq!(e["details"]["origin"]["actorId"], "alice@acme", "{e}");
        assert_eq!(e["details"]["origin"]["actorType"], "user", "{e}");
        assert_eq!(e["details"]["origin"]["tenant"], "acme", "{e}");
        assert_eq!(e["context"]["organizationId"], "acme", "{e}");
        assert_ne!(e["actor"]["id"], "alice@acme", "{e}");
    }
    for e in &orders {
        assert_eq!(e["actor"]["id"], "alice@acme", "{e}");
        assert_eq!(e["context"]["organizationId"], "acme", "{e}");
    }
}
