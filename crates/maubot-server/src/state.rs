//! The application state every handler sees.

use std::sync::Arc;

use maubot_types::config::Config;

use crate::auth::Authenticator;
use crate::client::ClientManager;
use crate::db::Database;
use crate::plugins::PluginHost;

/// The server's shared state: configuration, database and the managers that later issues add.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Database,
    pub auth: Arc<Authenticator>,
    pub clients: Arc<ClientManager>,
    pub plugins: Arc<PluginHost>,
    /// Becomes true when the server shuts down (live connections close themselves).
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}
