//! Running the service: start the engine, serve the API on a bound listener
//! until the shutdown future completes, then drain and flush.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use argus_webhooks_actors::Engine;
use futures_util::FutureExt as _;
use tokio::net::TcpListener;

use crate::api::{AppState, routes};
use crate::auth::Authenticator;
use crate::config::Settings;
use crate::telemetry;

/// Serves the API on `listener` until `shutdown` completes.
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = telemetry::init_metrics()?;
    let engine_config = settings.engine_config()?;
    let engine = Engine::start(engine_config)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let auth = Authenticator::from_settings(&settings.auth, &settings.store.data_dir)
        .context("invalid auth settings")?;
    let grace = Duration::from_secs_f64(settings.server.shutdown_grace_seconds.max(0.0));
    let header_timeout = Duration::from_secs_f64(settings.server.header_read_timeout_seconds);
    let state = Arc::new(AppState {
        engine: engine.clone(),
        auth,
        settings,
        metrics,
    });
    let address = listener.local_addr()?;
    tracing::info!(%address, "listening");
    // The first line on stdout names the address, so scripts and tests can
    // start the service on port 0 and find it.
    println!("listening on http://{address}");

    // The drain of open connections gets the grace period and then stops
    // waiting. The connections left are closed when the process exits.
    let shutdown = shutdown.shared();
    let serve = serve_connections(listener, routes(state), header_timeout, shutdown.clone());
    let mut drain_started = None;
    let drain_deadline = async {
        shutdown.await;
        drain_started = Some(Instant::now());
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        () = serve => {}
        () = drain_deadline => {
            tracing::warn!(grace_seconds = grace.as_secs_f64(), "HTTP requests still open after the shutdown grace period; they end at exit");
        }
    }
    // Requests and deliveries share one grace period.
    let left = grace.saturating_sub(drain_started.map_or(Duration::ZERO, |at| at.elapsed()));
    tracing::info!("stopped accepting requests; draining deliveries");
    engine.shutdown(left).await;
    tracing::info!("shutdown complete");
    Ok(())
}

/// Serves `filter` on every connection that `listener` accepts until
/// `shutdown` completes, then shuts the open connections down gracefully:
/// requests in progress finish, idle connections close.
async fn serve_connections<F>(
    listener: TcpListener,
    filter: F,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) where
    F: warp::Filter + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    use hyper::server::conn::http1;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;

    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Running out of file descriptors fails every accept, so
                    // wait before the next one instead of spinning.
                    if !is_connection_error(&error) {
                        tracing::error!(%error, "cannot accept a connection; retrying in 1 s");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(warp::service(filter.clone()));
        // The timer makes hyper enforce the head's read deadline. A client
        // that stalls within the request line or headers, or stays idle
        // between keep-alive requests that long, is disconnected.
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Returns true for accept errors that concern one connection only.
fn is_connection_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}

/// Installs the SIGTERM and Ctrl-C handlers at once and returns a future
/// that completes on either. Installing them before the service announces
/// its address means a signal sent right after start drains the service
/// instead of killing it with the default action.
#[cfg(unix)]
pub fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("Ctrl-C received; shutting down"),
            _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
        }
    })
}

/// Returns a future that completes on Ctrl-C.
#[cfg(not(unix))]
pub fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Ctrl-C received; shutting down");
    })
}
