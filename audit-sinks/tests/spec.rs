//! Sinks built from spec strings: the grammar, clear errors that never echo secrets, and an
//! auditor configured only from specs delivering to a file and a loopback webhook.
#![cfg(feature = "full")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use audit_core::Auditor;
use audit_sinks::otlp::Protocol;
use audit_sinks::spec::{self, Spec};
use audit_sinks::syslog::Transport;
use common::{Receiver, Reply, events};

#[test]
fn grammar() {
    assert!(matches!(
        spec::parse("stdout:").unwrap(),
        Spec::Stdout(s) if s.format.is_none()
    ));
    assert!(matches!(
        spec::parse("stdout:?format=ocsf").unwrap(),
        Spec::Stdout(s) if s.format.as_deref() == Some("ocsf")
    ));
    assert!(matches!(
        spec::parse("file:///var/log/audit.jsonl").unwrap(),
        Spec::File(f) if f.path == "/var/log/audit.jsonl" && f.format.is_none()
    ));
    assert!(matches!(
        spec::parse("file:audit.jsonl?format=ecs").unwrap(),
        Spec::File(f) if f.path == "audit.jsonl" && f.format.as_deref() == Some("ecs")
    ));
    assert!(
        spec::parse("file:a.jsonl?format=xml")
            .unwrap_err()
            .to_string()
            .contains("not one of")
    );
    assert!(matches!(
        spec::parse("sqlite:./audit.db").unwrap(),
        Spec::Sqlite(s) if s.path == "./audit.db"
    ));
    assert!(matches!(
        spec::parse("postgres://postgres@127.0.0.1/test").unwrap(),
        Spec::Postgres(p) if p.url == "postgres://postgres@127.0.0.1/test"
    ));
    match spec::parse("webhook+https://h.example/a/b?secret=s%2C3&max_bytes=65536").unwrap() {
        Spec::Webhook(w) => {
            assert_eq!(w.url, "https://h.example/a/b");
            assert_eq!(w.secret.as_deref(), Some("s,3"));
            assert_eq!(w.max_bytes, Some(65536));
        }
        other => panic!("{other:?}"),
    }
    match spec::parse("splunk+https://splunk:8088?token=t&index=audit").unwrap() {
        Spec::Splunk(s) => {
            assert_eq!(
                (s.url.as_str(), s.token.as_str(), s.index.as_deref()),
                ("https://splunk:8088", "t", Some("audit"))
            );
        }
        other => panic!("{other:?}"),
    }
    match spec::parse("elasticsearch+http://es:9200/audit-{date}?api_key=k&format=native").unwrap()
    {
        Spec::Elasticsearch(e) => {
            assert_eq!(
                (
                    e.url.as_str(),
                    e.target.as_str(),
                    e.api_key.as_deref(),
                    e.native
                ),
                ("http://es:9200", "audit-{date}", Some("k"), true)
            );
        }
        other => panic!("{other:?}"),
    }
    match spec::parse("datadog+https://http-intake.logs.datadoghq.eu?api_key=k&tags=env:prod")
        .unwrap()
    {
        Spec::Datadog(d) => {
            assert_eq!(d.url, "https://http-intake.logs.datadoghq.eu/api/v2/logs");
            assert_eq!(
                (d.api_key.as_str(), d.tags.as_deref()),
                ("k", Some("env:prod"))
            );
        }
        other => panic!("{other:?}"),
    }
    match spec::parse("syslog+tcp://siem:514?format=cef&facility=10").unwrap() {
        Spec::Syslog(s) => {
            assert_eq!(s.transport, Transport::Tcp);
            assert_eq!((s.ca, s.client), (None, None));
            assert_eq!(s.addr, "siem:514");
            assert!(s.cef);
            assert_eq!(s.cef_names, [None, None, None]);
            assert_eq!(s.facility, Some(10));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        spec::parse("syslog+tls://siem:6514?cert=/etc/c.pem&key=/etc/k.pem").unwrap(),
        Spec::Syslog(s) if s.client == Some(("/etc/c.pem".into(), "/etc/k.pem".into()))
    ));
    for bad in [
        "syslog+tls://siem:6514?cert=/etc/c.pem",
        "syslog+tcp://siem:514?cert=/etc/c.pem&key=/etc/k.pem",
    ] {
        assert!(spec::parse(bad).is_err(), "{bad}");
    }
    assert!(
        spec::parse("syslog+tcp://siem:514?facility=30")
            .unwrap_err()
            .to_string()
            .contains("0-23")
    );
    // The group is taken as written; a leading slash is written as one.
    for (spec, group) in [
        (
            "cloudwatch://eu-west-1//audit/vector-api/instance-1",
            "/audit/vector-api",
        ),
        (
            "cloudwatch://eu-west-1/audit/vector-api/instance-1",
            "audit/vector-api",
        ),
        ("cloudwatch://eu-west-1/audit/instance-1", "audit"),
    ] {
        assert!(matches!(
            spec::parse(spec).unwrap(),
            Spec::CloudWatch(c) if c.region == "eu-west-1"
                && c.group == group
                && c.stream == "instance-1"
                && c.endpoint.is_none()
        ));
    }
    assert!(spec::parse("cloudwatch://eu-west-1").is_err());
    assert!(matches!(
        spec::parse("otlp+grpc://collector:4317").unwrap(),
        // Empty service: the resource takes the auditor's service from the events.
        Spec::Otlp(o) if o.protocol == Protocol::Grpc
            && o.url == "http://collector:4317"
            && o.service.is_empty()
    ));
    assert!(matches!(
        spec::parse("otlp+https://collector:4318?format=json&service=api").unwrap(),
        Spec::Otlp(o) if o.protocol == Protocol::HttpJson
            && o.url == "https://collector:4318/v1/logs"
            && o.service == "api"
    ));
    assert!(spec::parse("otlp+grpc://c:4317?format=json").is_err());
    assert!(matches!(
        spec::parse("syslog+tls://siem:6514?ca=/etc/ca.pem").unwrap(),
        Spec::Syslog(s) if s.transport == Transport::Tls && s.ca.is_some()
    ));
    assert!(spec::parse("syslog+tcp://siem:514?ca=/x").is_err());
    assert!(matches!(
        spec::parse("syslog+tcp://siem:514?format=cef&vendor=Acme&product=vector-api").unwrap(),
        Spec::Syslog(s) if s.cef_names[0].as_deref() == Some("Acme") && s.cef_names[2].is_none()
    ));
    // The CEF header's names mean nothing to a JSON body.
    assert!(spec::parse("syslog+tcp://siem:514?vendor=Acme").is_err());
    assert!(matches!(
        spec::parse("nats://127.0.0.1:4222/audit").unwrap(),
        Spec::Nats(n) if n.url == "nats://127.0.0.1:4222"
            && n.prefix == "audit"
            && n.format.is_none()
            && n.stream.is_none()
    ));
    // Parameters are parameters, never part of the subject; unknown ones are errors.
    assert!(matches!(
        spec::parse("nats://127.0.0.1:4222/audit?format=ecs&stream=AUDIT").unwrap(),
        Spec::Nats(n) if n.url == "nats://127.0.0.1:4222"
            && n.prefix == "audit"
            && n.format.as_deref() == Some("ecs")
            && n.stream.as_deref() == Some("AUDIT")
    ));
    for bad in [
        "nats://127.0.0.1:4222/audit?formt=ecs",
        "nats://127.0.0.1:4222/audit?format=xml",
        "nats://127.0.0.1:4222/audit?stream=a.b",
    ] {
        assert!(spec::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(
        spec::split_list(" stdout: ,file:a.jsonl,, "),
        vec!["stdout:", "file:a.jsonl"]
    );
}

#[test]
fn errors_name_the_problem_and_never_a_secret() {
    for (bad, expect) in [
        ("kafka://x", "unknown sink scheme `kafka`"),
        ("stdout", "starts with a scheme"),
        ("file:", "needs a path"),
        ("splunk+https://h:8088?index=a", "needs token"),
        (
            "splunk+https://h:8088?token=SECRETVALUE&idx=a",
            "unknown parameter `idx`",
        ),
        (
            "webhook+https://h/x?secret=SECRETVALUE&max_bytes=lots",
            "max_bytes must be a number",
        ),
        (
            "elasticsearch+https://es:9200?api_key=SECRETVALUE",
            "needs an index",
        ),
        (
            "elasticsearch+https://es:9200/a?user=u",
            "user and password go together",
        ),
        ("nats://host:4222", "PREFIX"),
        ("webhook+https://h/x?secret=%zz", "malformed"),
    ] {
        let err = spec::parse(bad).unwrap_err().to_string();
        assert!(err.contains(expect), "{bad}: {err}");
        assert!(!err.contains("SECRETVALUE"), "{err}");
    }
    assert_eq!(
        spec::redact("splunk+https://h:8088?token=abc&index=audit"),
        "splunk+https://h:8088?token=***&index=audit"
    );
    assert_eq!(
        spec::redact("postgres://app:pw@db:5432/audit"),
        "postgres://app:***@db:5432/audit"
    );
    assert!(
        !format!(
            "{:?}",
            spec::parse("webhook+https://h/x?secret=abc").unwrap()
        )
        .contains("abc")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_configured_from_specs_delivers_everywhere() {
    let rx = Receiver::start(|_| Reply::status(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let list = format!(
        "file:{}, webhook+{}?secret=abc, sqlite:{}, file:{}?format=ocsf",
        dir.path().join("a.jsonl").display(),
        rx.url("/hook"),
        dir.path().join("a.db").display(),
        dir.path().join("ocsf.jsonl").display()
    );
    let mut builder = Auditor::builder();
    for (i, s) in spec::split_list(&list).into_iter().enumerate() {
        let sink = spec::build(s).await.unwrap();
        let name = if i == 3 {
            "ocsf-file"
        } else {
            audit_core::Sink::name(&sink)
        }
        .to_owned();
        let options = audit_core::Sink::default_options(&sink).name(name);
        builder = builder.sink_with(sink, options);
    }
    let auditor = builder.build().unwrap();
    for e in events(10, 5) {
        auditor.record(e).unwrap();
    }
    let report = auditor.shutdown(Duration::from_secs(10)).await;
    assert!(report.complete, "{report}");
    let names: Vec<&str> = report
        .metrics
        .sinks
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["file", "webhook", "sqlite", "ocsf-file"]);
    let ocsf: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(dir.path().join("ocsf.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(ocsf["class_uid"], 6001, "OCSF lines in the file");
    assert!(
        report.metrics.sinks.iter().all(|s| s.delivered == 10),
        "{report}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("a.jsonl"))
            .unwrap()
            .lines()
            .count(),
        10
    );
    assert!(rx.requests()[0].headers.contains_key("x-audit-signature"));
    // A sink built from a spec is the sink itself to the pipeline: it takes canonical lines
    // and, after a crash, says how far it got, so a spool re-delivers nothing it holds.
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(dir.path().join("a.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let stream = first["integrity"]["stream"].as_str().unwrap();
    let mut again = spec::build(&format!("file:{}", dir.path().join("a.jsonl").display()))
        .await
        .unwrap();
    assert!(audit_core::Sink::wants_lines(&again));
    assert_eq!(
        audit_core::Sink::delivered_through(&mut again, stream).await,
        Some(10)
    );
    // A path under a regular file cannot be created.
    let under_file = dir.path().join("a.jsonl").join("x.jsonl");
    let err = spec::build(&format!("file:{}", under_file.display()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot open"), "{err}");
}
