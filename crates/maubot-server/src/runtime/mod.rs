//! Plugin runtimes: what runs a plugin's code. The plugin host (`crate::plugins`) only talks to
//! these traits, so that the Python host (today) and a WebAssembly host (later) are
//! interchangeable.
//!
//! A runtime *prepares* a plugin from its archive (cheap: nothing runs yet), and the prepared
//! plugin starts and stops instances, takes their events and config changes. What the plugin
//! asks of the server — Matrix requests as its bot, saving its config, reporting a crash — goes
//! through [`RuntimeHost`].

pub mod matrix;
mod matrix_routes;
pub mod python;
pub mod wasm;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use maubot_types::plugin::PluginMeta;

pub use matrix::{MatrixRequest, MatrixResponse};

/// The log target of a plugin's attempts to cross its boundary: another instance's bot or
/// config, an endpoint it may not use, a logger that is not its own.
pub(crate) const SECURITY: &str = "maubot.security";

/// A plugin archive as the runtimes see it.
#[derive(Debug, Clone)]
pub struct PluginCode {
    pub path: PathBuf,
    pub meta: PluginMeta,
}

/// Everything an instance starts with.
#[derive(Debug, Clone)]
pub struct InstanceStart {
    pub instance_id: String,
    pub user_id: String,
    pub device_id: String,
    pub homeserver: String,
    /// The stored YAML text, verbatim.
    pub config: String,
    /// Where its database is, when the plugin asked for one.
    pub database: Option<Placement>,
    /// Where the instance's web app is served, for plugins with `webapp: true`.
    pub webapp_url: Option<String>,
}

/// Where a started instance finds its database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// `sqlite:<absolute path>` or the PostgreSQL URL.
    pub url: String,
    /// The instance's schema on PostgreSQL.
    pub schema: Option<String>,
    /// The most connections the instance may open on PostgreSQL.
    pub max_conns: Option<u32>,
}

impl Placement {
    /// The SQLite file, if the database is one.
    pub fn sqlite_file(&self) -> Option<&Path> {
        self.url.strip_prefix("sqlite:").map(Path::new)
    }
}

/// An HTTP request for an instance's web app, with the path below the instance's prefix.
#[derive(Debug, Clone)]
pub struct WebRequest {
    pub method: String,
    /// Starts with `/`, percent-encoded as received.
    pub path: String,
    pub query_string: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The client's address, for `request.remote`.
    pub remote: Option<String>,
}

/// The web app's answer.
#[derive(Debug, Clone)]
pub struct WebResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What a started instance reports back.
#[derive(Debug, Clone, Default)]
pub struct Started {
    /// The plugin's `base-config.yaml` as the plugin's config class sees it, if it has one.
    pub base_config: Option<String>,
}

/// Why a runtime could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    /// The plugin's code failed: an exception at import or in `start()`. `detail` is the
    /// plugin-side traceback, for logs and the API's `stacktrace`.
    #[error("{message}")]
    Plugin {
        message: String,
        detail: Option<String>,
    },
    /// The runtime itself is not usable: no Python, a broken environment, a dead worker.
    #[error("{0}")]
    Unavailable(String),
    /// The plugin did not answer in time; its worker was restarted.
    #[error("{0}")]
    Timeout(String),
}

impl RuntimeError {
    pub fn detail(&self) -> Option<&str> {
        match self {
            Self::Plugin { detail, .. } => detail.as_deref(),
            _ => None,
        }
    }
}

/// A runtime: prepares plugins for running.
#[async_trait]
pub trait PluginRuntime: Send + Sync + std::fmt::Debug {
    /// Prepares a plugin. Nothing of the plugin runs yet; code is loaded when the first instance
    /// starts, and a load failure surfaces there.
    fn prepare(&self, code: PluginCode, host: Arc<dyn RuntimeHost>) -> Arc<dyn LoadedPlugin>;
}

/// The runtimes by the kind of plugin each runs (`runtime` in `maubot.yaml`).
#[derive(Debug)]
pub struct Runtimes {
    pub python: Arc<dyn PluginRuntime>,
    pub wasm: Arc<dyn PluginRuntime>,
}

impl PluginRuntime for Runtimes {
    fn prepare(&self, code: PluginCode, host: Arc<dyn RuntimeHost>) -> Arc<dyn LoadedPlugin> {
        match code.meta.runtime {
            maubot_types::plugin::PluginRuntime::Python => self.python.prepare(code, host),
            maubot_types::plugin::PluginRuntime::Wasm => self.wasm.prepare(code, host),
        }
    }
}

/// A prepared plugin, running instances.
#[async_trait]
pub trait LoadedPlugin: Send + Sync + std::fmt::Debug {
    /// Loads the plugin's code if it is not loaded yet, without starting anything: the check an
    /// upload makes before replacing running code.
    async fn load(&self) -> Result<(), RuntimeError>;

    /// Starts an instance. An error means it does not run.
    async fn start(&self, instance: InstanceStart) -> Result<Started, RuntimeError>;

    /// Stops an instance (errors of the plugin's own `stop()` are logged by the runtime).
    async fn stop(&self, instance_id: &str);

    /// Hands an event (a client-server API event with `room_id`, decrypted) to a started
    /// instance. Returns at once; the runtime tracks and logs the outcome, so that a slow
    /// handler never holds up the bot.
    fn deliver(&self, instance_id: &str, event: Arc<serde_json::Value>);

    /// Answers an HTTP request with a started instance's web app.
    async fn web_request(
        &self,
        instance_id: &str,
        request: WebRequest,
    ) -> Result<WebResponse, RuntimeError>;

    /// Tells a started instance that its config was changed through the API.
    async fn config_updated(&self, instance_id: &str, config: &str) -> Result<(), RuntimeError>;

    /// Stops everything of this plugin (its instances must already be stopped).
    async fn unload(&self);
}

/// What the server offers a running plugin.
#[async_trait]
pub trait RuntimeHost: Send + Sync + std::fmt::Debug {
    /// The database files of the plugin's instances that use SQLite, made ready to be opened
    /// (a sandboxed worker is granted these files only).
    async fn database_files(&self) -> Vec<PathBuf>;

    /// A Matrix client-server API request, made as the instance's bot.
    async fn matrix_request(&self, instance_id: &str, request: MatrixRequest) -> MatrixResponse;

    /// The plugin saved its config.
    fn config_saved(&self, instance_id: &str, config: String);

    /// A started instance stopped running through no request of the server: its worker crashed
    /// or hung. The runtime restarts it by itself and reports [`RuntimeHost::instance_recovered`].
    fn instance_failed(&self, instance_id: &str, reason: String);

    /// An instance runs again after a failure.
    fn instance_recovered(&self, instance_id: &str, started: Started);

    /// A failed instance could not be started again; it stays stopped and is disabled, as a
    /// failing `start()` is in maubot.
    fn instance_gave_up(&self, instance_id: &str, error: RuntimeError);
}
