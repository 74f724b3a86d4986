//! `--simulate N`: a realistic mix of calls through real HTTP on loopback, and a table of
//! what the audit trail captured.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A response's JSON body (`null` when it has none).
pub(crate) struct Reply {
    pub(crate) body: Value,
}

/// One HTTP/1.1 request over a fresh loopback connection.
pub(crate) async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> std::io::Result<Reply> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nuser-agent: audit-demo-simulator/1.0\r\n\
         connection: close\r\ncontent-type: application/json\r\n{auth}content-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok(Reply {
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    })
}

async fn login(addr: SocketAddr, email: &str, password: &str) -> std::io::Result<Option<String>> {
    let r = call(
        addr,
        "POST",
        "/auth/login",
        None,
        Some(json!({"email": email, "password": password})),
    )
    .await?;
    Ok(r.body["token"].as_str().map(str::to_owned))
}

/// `rounds` rounds of: logins (some wrong), index work in both tenants, a member trying
/// admin routes, a bulk import with bad rows, an API key created and revoked, a logout.
pub(crate) async fn run(addr: SocketAddr, rounds: usize) -> std::io::Result<()> {
    for round in 0..rounds {
        let _ = login(addr, "admin@acme.test", "not-the-password").await?;
        let Some(acme) = login(addr, "admin@acme.test", "admin-password").await? else {
            return Err(std::io::Error::other("demo admin login failed"));
        };
        let member = login(addr, "member@acme.test", "member-password").await?;
        let globex = login(addr, "admin@globex.test", "globex-password").await?;
        let index = format!("products-{round}");
        call(
            addr,
            "POST",
            "/v1/indexes",
            Some(&acme),
            Some(json!({"name": index})),
        )
        .await?;
        for i in 0..3 {
            call(
                addr,
                "PUT",
                &format!("/v1/indexes/{index}/vectors/v{i}"),
                Some(&acme),
                Some(json!({"values": [0.1 * i as f32, 0.2, 0.3], "metadata": {"sku": i}})),
            )
            .await?;
        }
        call(
            addr,
            "POST",
            &format!("/v1/indexes/{index}/import"),
            Some(&acme),
            Some(json!({"vectors": [
                {"id": "b1", "values": [1.0, 0.0, 0.0]},
                {"id": "b2", "values": [0.0, 1.0, 0.0]},
                {"values": "not a vector"}
            ]})),
        )
        .await?;
        call(
            addr,
            "POST",
            &format!("/v1/indexes/{index}/query"),
            Some(&acme),
            Some(json!({"vector": [1.0, 0.0, 0.0], "topK": 2})),
        )
        .await?;
        if let Some(member) = &member {
            call(
                addr,
                "PUT",
                "/v1/config",
                Some(member),
                Some(json!({"retentionDays": 7})),
            )
            .await?;
            call(addr, "POST", "/v1/api-keys", Some(member), None).await?;
            call(
                addr,
                "DELETE",
                &format!("/v1/indexes/{index}/vectors/v0"),
                Some(member),
                None,
            )
            .await?;
        }
        let key = call(addr, "POST", "/v1/api-keys", Some(&acme), None).await?;
        if let Some(id) = key.body["id"].as_str() {
            call(
                addr,
                "DELETE",
                &format!("/v1/api-keys/{id}"),
                Some(&acme),
                None,
            )
            .await?;
        }
        if let Some(globex) = &globex {
            call(
                addr,
                "POST",
                "/v1/indexes",
                Some(globex),
                Some(json!({"name": "catalog"})),
            )
            .await?;
            // Another tenant's index does not exist for globex.
            call(
                addr,
                "DELETE",
                &format!("/v1/indexes/{index}"),
                Some(globex),
                None,
            )
            .await?;
            call(addr, "POST", "/auth/logout", Some(globex), None).await?;
        }
        call(
            addr,
            "PUT",
            "/v1/config",
            Some(&acme),
            Some(json!({"retentionDays": 90})),
        )
        .await?;
        call(
            addr,
            "DELETE",
            &format!("/v1/indexes/{index}"),
            Some(&acme),
            None,
        )
        .await?;
        call(addr, "GET", "/v1/indexes/x/query", None, None).await?;
        call(addr, "GET", "/health", None, None).await?;
    }
    Ok(())
}

/// Counts per event type and result in the audit file.
pub(crate) fn print_table(path: &Path, rounds: usize) -> std::io::Result<()> {
    let text = std::fs::read_to_string(path)?;
    let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let t = v["eventType"].as_str().unwrap_or("?").to_owned();
        let r = v["result"].as_str().unwrap_or("-").to_owned();
        *counts.entry((t, r)).or_default() += 1;
    }
    crate::say!(
        "\naudit events in {} after {rounds} simulated rounds:",
        path.display()
    );
    crate::say!("  {:<32} {:<10} {:>6}", "eventType", "result", "count");
    for ((t, r), n) in &counts {
        crate::say!("  {t:<32} {r:<10} {n:>6}");
    }
    Ok(())
}
