//! Running the HTTP server (mini-redis shape): the caller binds the
//! listener and owns shutdown, so tests start the real server on
//! `127.0.0.1:0`.
//!
//! The accept loop is ours rather than `axum::serve` so that each
//! connection gets hyper's header read timeout (a client that never
//! finishes its request head is disconnected, see
//! `limits.header_read_timeout_secs`) and, when configured, TLS.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::app::AppState;
use crate::router::{self, HttpService};
use crate::send_timeout::SendTimeout;
use crate::tls::ReloadingAcceptor;

/// Serves until `shutdown` completes, then finishes the requests in flight.
/// Serves HTTPS when `app.config.tls` is set (the files are read here; an
/// unusable pair is an `InvalidInput` error before anything is accepted).
/// `SIGHUP` re-reads the certificate and key for new connections; a pair
/// that does not load is logged and the previous one kept.
///
/// At most `limits.max_connections` connections are served at once; at the
/// cap nothing more is accepted until one closes, so further clients wait
/// in the listen queue instead of costing descriptors and memory.
pub async fn serve(
    listener: TcpListener,
    app: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls =
        match &app.config.tls {
            Some(files) => Some(ReloadingAcceptor::new(files).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
            })?),
            None => None,
        };
    let header_timeout = Duration::from_secs(app.config.limits.header_read_timeout_secs);
    let send_timeout = Duration::from_secs(app.config.limits.request_timeout_secs);
    let cap = app
        .config
        .limits
        .max_connections
        .clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(cap));
    app.metrics.set_connection_limit(cap);
    let counted = AppState::clone(&app);
    let mut warned_at: Option<Instant> = None;
    let router = router::build(app);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    // Handled with or without TLS: systemd's `ExecReload` sends SIGHUP, whose
    // default action would end the server.
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("cannot listen for SIGHUP, TLS files will not be reloaded: {e}");
            None
        }
    };
    loop {
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                counted.metrics.connection_limit_reached();
                if warned_at.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                    warned_at = Some(Instant::now());
                    tracing::warn!(
                        "all {cap} connections are taken; new clients wait until one closes \
                         (raise limits.max_connections, and LimitNOFILE with it, if this \
                         load is expected)"
                    );
                }
                let waited = loop {
                    tokio::select! {
                        slot = Arc::clone(&slots).acquire_owned() => break slot.ok(),
                        () = &mut shutdown => break None,
                        () = next_signal(&mut hangup) => reload_tls(tls.as_ref()),
                    }
                };
                match waited {
                    Some(slot) => slot,
                    None => break,
                }
            }
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
            () = next_signal(&mut hangup) => {
                reload_tls(tls.as_ref());
                continue;
            }
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning; the
                // listener itself stays usable.
                tracing::warn!("accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY: {e}");
        }
        let router = router.clone();
        let watcher = graceful.watcher();
        let slot = Slot::new(slot, AppState::clone(&counted));
        match &tls {
            None => {
                tokio::spawn(async move {
                    let _slot = slot;
                    let stream = SendTimeout::new(stream, send_timeout);
                    serve_connection(stream, router, header_timeout, watcher).await;
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.current();
                tokio::spawn(async move {
                    let _slot = slot;
                    // The handshake has the same bound as a request head.
                    match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            let stream = SendTimeout::new(tls_stream, send_timeout);
                            serve_connection(stream, router, header_timeout, watcher).await;
                        }
                        Ok(Err(e)) => tracing::debug!("TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                });
            }
        }
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// One of `limits.max_connections`, held for as long as its connection
/// lives (however it ends) and counted in `/metrics`.
struct Slot {
    _permit: OwnedSemaphorePermit,
    app: AppState,
}

impl Slot {
    fn new(permit: OwnedSemaphorePermit, app: AppState) -> Slot {
        app.metrics.connection_opened();
        Slot {
            _permit: permit,
            app,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.app.metrics.connection_closed();
    }
}

/// Resolves at the next delivery of `signal`; never when there is none.
async fn next_signal(signal: &mut Option<Signal>) {
    if let Some(s) = signal
        && s.recv().await.is_some()
    {
        return;
    }
    std::future::pending::<()>().await;
}

fn reload_tls(tls: Option<&ReloadingAcceptor>) {
    let Some(tls) = tls else {
        tracing::info!("SIGHUP: no TLS configured, nothing to reload");
        return;
    };
    let files = tls.files();
    match tls.reload() {
        Ok(()) => tracing::info!(
            cert = %files.cert.display(),
            key = %files.key.display(),
            "SIGHUP: reloaded the TLS certificate and key for new connections"
        ),
        Err(e) => tracing::error!("SIGHUP: keeping the previous TLS certificate and key: {e}"),
    }
}

async fn serve_connection<I, S>(io: I, service: S, header_timeout: Duration, watcher: Watcher)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!("connection ended: {e}");
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot listen for SIGINT: {e}");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
