//! The demo's HTTP server: the axum router on hyper's HTTP/1 connection, with the limits a
//! service facing unknown clients needs and `axum::serve` does not set.
//!
//! - A client must send a request's headers within `header_timeout` (default
//!   [`HEADER_READ_TIMEOUT`]) of the
//!   connection opening or of the previous response, so slow or idle connections cannot be
//!   held open to exhaust the server (hyper closes them).
//! - At most [`MAX_CONNECTIONS`] connections are served at once; more wait in the kernel's
//!   accept queue.
//! - Each request sees the peer address as axum's `ConnectInfo<SocketAddr>`, which the audit
//!   layer records as the client IP.
//! - On shutdown, listening stops, connections finish their request in flight and close,
//!   and whatever is still open after [`DRAIN`] is dropped.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt as _;

/// Default longest wait for a request's headers (also the keep-alive idle limit); the
/// demo's `--header-timeout` changes it.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once.
pub(crate) const MAX_CONNECTIONS: usize = 4096;
/// How long shutdown waits for open connections.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` until `stop` resolves.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    header_timeout: Duration,
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let (closing_tx, closing_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    tokio::pin!(stop);
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let (stream, peer) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // A failed accept (the peer gave up, descriptors exhausted) ends that
                // connection, not the server; back off briefly so it cannot spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let mut closing = closing_rx.clone();
        connections.spawn(async move {
            let _slot = slot;
            let service = app.map_request(move |mut req: axum::extract::Request<_>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                .with_upgrades();
            tokio::pin!(conn);
            let closed = async move {
                // The guard `wait_for` returns is not `Send`: drop it before awaiting more.
                let _ = closing.wait_for(|c| *c).await.map(|_| ());
            };
            tokio::select! {
                _ = conn.as_mut() => {}
                () = closed => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
        // Reap finished connections so the set does not grow with the server's uptime.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = closing_tx.send(true);
    let _ = tokio::time::timeout(DRAIN, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    connections.abort_all();
    Ok(())
}
