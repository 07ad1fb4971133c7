//! Plugins and instances as the management API and the web UI show them (maubot's `to_dict`s,
//! plus `failure`), made from what the plugin host tells (`plugins::{PluginFacts,
//! InstanceFacts}`).

use std::path::PathBuf;

use serde::Serialize;

use crate::plugins::{self, InstanceFacts, PluginDatabase, PluginFacts};
use crate::state::AppState;

/// A plugin as the API shows it (maubot's `PluginLoader.to_dict`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PluginView {
    pub id: String,
    pub version: String,
    pub instances: Vec<InstanceView>,
    #[schema(value_type = String)]
    pub path: PathBuf,
}

/// An instance as the API shows it (maubot's `PluginInstance.to_dict`, plus `failure`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InstanceView {
    pub id: String,
    #[serde(rename = "type")]
    pub plugin: String,
    pub enabled: bool,
    pub started: bool,
    pub primary_user: String,
    pub config: String,
    pub base_config: Option<String>,
    pub database: bool,
    pub database_interface: Option<String>,
    pub database_engine: Option<String>,
    /// Why the instance does not run although it should (maubot-rs addition).
    pub failure: Option<String>,
}

impl PluginView {
    /// `database_routes`: whether the instance database routes are on (`api_features`).
    pub fn new(facts: PluginFacts, database_routes: bool) -> Self {
        PluginView {
            id: facts.file.meta.id.to_string(),
            version: facts.file.meta.version.normalized(),
            instances: facts
                .instances
                .into_iter()
                .map(|i| InstanceView::new(i, database_routes))
                .collect(),
            path: facts.file.path,
        }
    }
}

impl InstanceView {
    /// `database_routes`: whether the instance database routes are on (`api_features`); as in
    /// maubot, `database` says whether they can be used for this instance.
    pub fn new(facts: InstanceFacts, database_routes: bool) -> Self {
        let InstanceFacts {
            record,
            status,
            plugin_database,
        } = facts;
        let database_interface = match plugin_database {
            PluginDatabase::Declared(kind) => Some(kind.as_str().to_owned()),
            PluginDatabase::None => None,
            PluginDatabase::PluginMissing => Some("unknown".to_owned()),
        };
        InstanceView {
            id: record.id,
            plugin: record.plugin,
            enabled: record.enabled,
            started: status.started,
            primary_user: record.primary_user,
            config: record.config,
            base_config: status.base_config,
            database: status.database_opened && database_routes,
            database_interface,
            database_engine: record.database_engine,
            failure: status.failure,
        }
    }
}

/// Whether the instance database routes are on (`api_features.instance_database`).
pub fn database_routes(state: &AppState) -> bool {
    state.config.api_features.instance_database
}

pub fn plugins(state: &AppState) -> Vec<PluginView> {
    let routes = database_routes(state);
    state
        .plugins
        .plugins()
        .into_iter()
        .map(|p| PluginView::new(p, routes))
        .collect()
}

pub fn plugin(state: &AppState, id: &str) -> plugins::Result<PluginView> {
    Ok(PluginView::new(
        state.plugins.plugin(id)?,
        database_routes(state),
    ))
}

pub fn instances(state: &AppState) -> Vec<InstanceView> {
    instance_views(state, state.plugins.instances())
}

pub fn instance(state: &AppState, id: &str) -> plugins::Result<InstanceView> {
    Ok(InstanceView::new(
        state.plugins.instance(id)?,
        database_routes(state),
    ))
}

/// The instances running on a client, for the client's view.
pub fn instances_of_client(state: &AppState, client_id: &str) -> Vec<InstanceView> {
    instance_views(state, state.plugins.instances_of_client(client_id))
}

fn instance_views(state: &AppState, facts: Vec<InstanceFacts>) -> Vec<InstanceView> {
    let routes = database_routes(state);
    facts
        .into_iter()
        .map(|i| InstanceView::new(i, routes))
        .collect()
}
