//! Plugins and instances as the management API shows them (maubot's `to_dict`s).

use std::path::PathBuf;

use serde::Serialize;

use super::{Instance, Plugin, State};

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

pub(super) fn plugin_view(state: &State, plugin: &Plugin, database_feature: bool) -> PluginView {
    PluginView {
        id: plugin.file.meta.id.to_string(),
        version: plugin.file.meta.version.normalized(),
        instances: state
            .instances
            .values()
            .filter(|i| i.record.plugin == plugin.file.meta.id.as_str())
            .map(|i| instance_view(state, i, database_feature))
            .collect(),
        path: plugin.file.path.clone(),
    }
}

pub(super) fn instance_view(
    state: &State,
    instance: &Instance,
    database_feature: bool,
) -> InstanceView {
    let record = &instance.record;
    let status = instance.handle.status();
    let database_interface = match state.plugins.get(&record.plugin) {
        Some(plugin) if plugin.file.meta.database => {
            Some(plugin.file.meta.database_type.as_str().to_owned())
        }
        Some(_) => None,
        None => Some("unknown".to_owned()),
    };
    InstanceView {
        id: record.id.clone(),
        plugin: record.plugin.clone(),
        enabled: record.enabled,
        started: status.started,
        primary_user: record.primary_user.clone(),
        config: record.config.clone(),
        base_config: status.base_config,
        database: status.database_opened && database_feature,
        database_interface,
        database_engine: record.database_engine.clone(),
        failure: status.failure,
    }
}
