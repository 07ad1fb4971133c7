//! The HTTP listener: a cap on connections, header, idle and body timeouts, and a graceful
//! shutdown. axum's own `serve` has none of the limits, and part of this server answers without
//! a token (logins, plugin web apps), so a client that never finishes a request must not hold a
//! connection, or the server's descriptors, for ever.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use maubot_types::config::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service as _;
use tower_http::timeout::TimeoutBody;

const LOG: &str = "maubot.server";
/// How long a shutdown waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The listener's limits (`server.*` in the config).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// For a request's headers, and for an idle keep-alive connection: hyper starts this timer
    /// whenever it waits for a request's head.
    pub header_timeout: Option<Duration>,
    /// Between two pieces of a request body.
    pub body_timeout: Option<Duration>,
    pub max_connections: usize,
}

impl Limits {
    pub fn from_config(server: &ServerConfig) -> Self {
        // Zero or less turns a timeout off.
        let timeout = |secs: f64| {
            Duration::try_from_secs_f64(secs)
                .ok()
                .filter(|d| !d.is_zero())
        };
        Self {
            header_timeout: timeout(server.request_header_timeout),
            body_timeout: timeout(server.request_body_timeout),
            max_connections: server.max_connections.max(1),
        }
    }
}

/// Serves `app` on `listener` until `stop` is cancelled, then lets requests in flight finish
/// (for up to 30 s) and returns.
pub async fn serve(listener: TcpListener, app: Router, limits: Limits, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut full = false;
    loop {
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if !std::mem::replace(&mut full, true) {
                    tracing::warn!(
                        target: LOG, max_connections = limits.max_connections,
                        "All connections are in use (server.max_connections); new ones wait"
                    );
                }
                tokio::select! {
                    slot = Arc::clone(&slots).acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    () = stop.cancelled() => break,
                }
            }
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(&err).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        if slots.available_permits() > 0 {
            full = false;
        }
        let service = hyper::service::service_fn({
            let app = app.clone();
            move |request: hyper::Request<Incoming>| {
                let mut request = request.map(|body| match limits.body_timeout {
                    Some(timeout) => Body::new(TimeoutBody::new(timeout, body)),
                    None => Body::new(body),
                });
                request.extensions_mut().insert(ConnectInfo(remote));
                app.clone().call(request)
            }
        });
        let connection = http
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let stop = stop.clone();
        connections.spawn(async move {
            tokio::pin!(connection);
            let outcome = tokio::select! {
                outcome = connection.as_mut() => outcome,
                () = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = outcome {
                tracing::debug!(target: LOG, %remote, error = %err, "Connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(target: LOG, "Requests still running after 30 s were cut off at shutdown");
    }
}

/// An accept that failed. Out of descriptors is the one that needs the operator, and retrying at
/// once would spin; everything else is one connection's problem.
async fn accept_failed(err: &io::Error) {
    if matches!(err.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
        tracing::warn!(
            target: LOG, error = %err, limit = ?crate::process::open_files_limit(),
            "Cannot accept connections: out of file descriptors (the open files limit)"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    } else {
        tracing::debug!(target: LOG, error = %err, "Accepting a connection failed");
    }
}
