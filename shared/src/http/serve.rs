//! The accept loop: HTTP/1.1 connections with a deadline for the request head, and a
//! graceful drain on shutdown.
//!
//! Written with hyper directly rather than `axum::serve`, because `axum::serve` sets no timer
//! on its connections, so hyper's header read timeout never fires: a client that sends half a
//! request head keeps its connection (and its task) forever. Here every connection gets
//! [`http1::Builder::header_read_timeout`] with a tokio timer. The body's deadline is the
//! middleware's ([`super::body`]), which reads it before a work slot is taken.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Serves `router` on `listener` until `shutdown` resolves, then lets open connections finish
/// their requests for at most `drain`. Each request head must arrive within `read_timeout`
/// (which also closes a keep-alive connection left idle that long). At most
/// `max_connections` are open at once: at the limit nothing more is accepted, and new
/// connections wait in the kernel's listen queue until one closes.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    read_timeout: Duration,
    max_connections: usize,
    drain: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let open = Arc::new(Semaphore::new(max_connections.clamp(1, Semaphore::MAX_PERMITS)));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = open.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    wait_after_accept_error(&e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(read_timeout)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(router.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    // No new connections from here; the open ones finish what they are doing.
    drop(listener);
    match tokio::time::timeout(drain, graceful.shutdown()).await {
        Ok(()) => tracing::info!("drained; stopped"),
        Err(_) => tracing::warn!("in-flight requests did not finish within {drain:?}; stopping anyway"),
    }
    Ok(())
}

/// A failed `accept` of one connection (reset before it was accepted) is that connection's
/// problem; running out of file descriptors is the process's, and retrying at once would
/// spin: wait a moment, as `axum::serve` does.
async fn wait_after_accept_error(e: &std::io::Error) {
    use std::io::ErrorKind as K;
    if matches!(
        e.kind(),
        K::ConnectionRefused | K::ConnectionAborted | K::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; waiting a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
