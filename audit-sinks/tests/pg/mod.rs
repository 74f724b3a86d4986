//! The local PostgreSQL for the store tests: its URL (`AUDIT_POSTGRES_URL`, default the
//! local server's `test` database), and plain clients for what the tests do around the store.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::print_stderr)]

use tokio_postgres::{Client, NoTls};

/// The PostgreSQL URL for tests, or `None` (with the reason printed) when the server is not
/// reachable and `AUDIT_REQUIRE_SERVICES` is unset; with it set, unreachable fails the test.
pub async fn url() -> Option<String> {
    let url = std::env::var("AUDIT_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    match tokio_postgres::connect(&url, NoTls).await {
        Ok(_) => Some(url),
        Err(e) if std::env::var_os("AUDIT_REQUIRE_SERVICES").is_none() => {
            eprintln!("skipping: PostgreSQL not reachable ({e}); set AUDIT_POSTGRES_URL");
            None
        }
        Err(e) => panic!("PostgreSQL required (AUDIT_REQUIRE_SERVICES) but unreachable: {e}"),
    }
}

/// A client of its own on `url`.
pub async fn client(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

/// Drops `schema` and everything in it, if it exists.
pub async fn drop_schema(url: &str, schema: &str) {
    client(url)
        .await
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .unwrap();
}
