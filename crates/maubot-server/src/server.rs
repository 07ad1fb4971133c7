//! Starting and stopping the server: database, authentication, HTTP listener.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use maubot_types::config::{Config, CryptoDatabase};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::client::{BotStores, ClientManager};
use crate::db::Database;
use crate::http::app;
use crate::listener::{self, Limits};
use crate::plugins::PluginHost;
use crate::runtime::python::PythonRuntime;
use crate::runtime::wasm::WasmRuntime;
use crate::runtime::{PluginRuntime, Runtimes};
use crate::state::{AppState, Shared};

const LOG: &str = "maubot.server";

/// A started server. Dropping it does not stop it; call [`Running::shutdown`].
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    state: AppState,
    stop: CancellationToken,
    stopping: watch::Sender<bool>,
    task: JoinHandle<()>,
    /// The metrics listener's address and task, when `metrics.enabled`.
    metrics: Option<(SocketAddr, JoinHandle<()>)>,
}

impl Running {
    /// The address the HTTP server listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address the metrics listener listens on, when it runs.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(addr, _)| *addr)
    }

    /// The application state, for tests that look behind the API.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops accepting requests, lets running ones finish, stops the clients, closes the
    /// database.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stopping.send(true);
        self.stop.cancel();
        self.task.await.context("the HTTP server task failed")?;
        if let Some((_, task)) = self.metrics {
            task.await.context("the metrics listener task failed")?;
        }
        self.state.plugins.stop_all().await;
        self.state.clients.stop_all().await;
        self.state.db.close().await;
        tracing::info!(target: LOG, "Everything stopped, shutting down");
        Ok(())
    }

    /// Serves until `signal` completes, then shuts down.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> anyhow::Result<()> {
        signal.await;
        tracing::info!(target: LOG, "Interrupt received, stopping...");
        self.shutdown().await
    }
}

/// Opens the database, prepares authentication and starts listening, like maubot: the HTTP
/// server starts last, once everything behind it is ready. Plugins run in the Python and
/// WebAssembly runtimes.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let runtime = Arc::new(Runtimes {
        python: Arc::new(PythonRuntime::new(config.python_host.clone())),
        wasm: Arc::new(
            WasmRuntime::new(config.wasm_host.clone())
                .context("starting the WebAssembly runtime")?,
        ),
    });
    start_with_runtime(config, runtime).await
}

/// [`start`] with plugins run by `runtime`: the tests' scripted runtime drives the plugin
/// host through failures (a start that fails, a crash and its recovery) when they choose.
pub async fn start_with_runtime(
    config: Config,
    runtime: Arc<dyn PluginRuntime>,
) -> anyhow::Result<Running> {
    crate::process::harden();
    crate::process::raise_open_files_limit();
    make_data_private(&config);
    let config = Arc::new(config);
    let auth_config = Arc::clone(&config);
    let auth = tokio::task::spawn_blocking(move || Authenticator::from_config(&auth_config))
        .await
        .context("preparing authentication")?;

    tracing::debug!(target: "mau.db", database = %config.database, "Connecting to the database");
    let db = Database::open(&config.database, &config.database_opts).await?;

    let clients = ClientManager::load(db.clone(), crypto_stores(&config, &db)).await?;
    clients.start_all().await;

    let plugins = PluginHost::load(
        Arc::clone(&config),
        db.clone(),
        Arc::clone(&clients),
        runtime,
    )
    .await
    .context("loading plugins and instances")?;
    plugins.start_all();

    let (stopping, shutdown) = watch::channel(false);
    let state = AppState::new(Shared {
        config: Arc::clone(&config),
        db,
        auth: Arc::new(auth),
        clients,
        plugins,
        sso: Default::default(),
        shutdown,
    });
    let bind = (config.server.hostname.as_str(), config.server.port);
    let listener = TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on {}:{}", bind.0, bind.1))?;
    let addr = listener.local_addr()?;
    // Bound before anything is spawned, so that a failure leaves nothing running.
    let metrics_listener = if config.metrics.enabled {
        let bind = (config.metrics.hostname.as_str(), config.metrics.port);
        let listener = TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen for metrics on {}:{}", bind.0, bind.1))?;
        let metrics_addr = listener.local_addr()?;
        tracing::info!(target: LOG, "Metrics on http://{metrics_addr}/metrics");
        Some((metrics_addr, listener))
    } else {
        None
    };
    tracing::info!(target: LOG, "Listening on http://{addr}");

    let stop = CancellationToken::new();
    let task = tokio::spawn(listener::serve(
        listener,
        app(state.clone()),
        Limits::from_config(&config.server),
        stop.clone(),
    ));
    let metrics = metrics_listener.map(|(metrics_addr, listener)| {
        let task = tokio::spawn(crate::metrics::serve(listener, state.clone(), stop.clone()));
        (metrics_addr, task)
    });
    Ok(Running {
        addr,
        state,
        stop,
        stopping,
        task,
        metrics,
    })
}

/// Data that earlier versions (and maubot) created readable by others: the main database, the
/// bots' stores, plugin archives and instance databases become the user's alone. New files are
/// private anyway (umask 077).
fn make_data_private(config: &Config) {
    use crate::process::make_private;
    if let maubot_types::config::DatabaseUrl::Sqlite(path) = &config.database {
        for suffix in ["", "-wal", "-shm"] {
            make_private(std::path::Path::new(&format!("{path}{suffix}")));
        }
    }
    let dirs = &config.plugin_directories;
    for dir in [
        &config.crypto_store_path,
        &config.plugin_databases.sqlite,
        &dirs.upload,
        &dirs.trash,
    ]
    .into_iter()
    .chain(&dirs.load)
    {
        make_private(std::path::Path::new(dir));
    }
}

/// Where bots keep their end-to-end encryption keys: the main database.
fn crypto_stores(config: &Config, db: &Database) -> BotStores {
    if !matches!(config.crypto_database, CryptoDatabase::Default) {
        tracing::warn!(
            target: LOG,
            "crypto_database other than `default` is not supported yet; bots keep their keys in the main database"
        );
    }
    BotStores {
        db: db.clone(),
        pickle_key: config.crypto_db_pickle_key.clone(),
        legacy_dir: config.crypto_store_path.clone().into(),
    }
}

/// Listens for SIGINT and SIGTERM from now on (before the listener opens, so that an early
/// signal still shuts down cleanly), and completes when one arrives.
#[cfg(unix)]
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}
