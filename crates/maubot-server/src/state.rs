//! The application state every handler sees.

use std::sync::Arc;

use maubot_types::config::Config;

use crate::auth::Authenticator;
use crate::client::ClientManager;
use crate::db::Database;
use crate::plugins::PluginHost;

/// The server's shared state: configuration, database and the managers. Handlers and middleware
/// clone it for every request, so it is one reference-counted pointer.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] points to.
#[derive(Debug)]
pub struct Shared {
    pub config: Arc<Config>,
    pub db: Database,
    pub auth: Arc<Authenticator>,
    pub clients: Arc<ClientManager>,
    pub plugins: Arc<PluginHost>,
    /// Single sign-on logins of bots under way.
    pub sso: crate::api::sso::Sessions,
    /// Becomes true when the server shuts down (live connections close themselves).
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}
