//! What the plugin host tells of its plugins and instances, read at one moment; the API and the
//! web UI make their views of it (`crate::views`).

use maubot_types::plugin::DatabaseType;

use super::files::PluginFile;
use super::store::InstanceRecord;
use super::supervisor::Status;
use super::{Instance, Plugin, State};

/// An instance: its row and what runs.
#[derive(Debug, Clone)]
pub struct InstanceFacts {
    pub record: InstanceRecord,
    pub status: Status,
    pub plugin_database: PluginDatabase,
}

/// The database an instance's plugin declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginDatabase {
    /// The plugin is not loaded (its archive was deleted or is invalid).
    PluginMissing,
    None,
    Declared(DatabaseType),
}

/// A plugin's archive and its instances.
#[derive(Debug, Clone)]
pub struct PluginFacts {
    pub file: PluginFile,
    pub instances: Vec<InstanceFacts>,
}

pub(super) fn plugin_facts(state: &State, plugin: &Plugin) -> PluginFacts {
    PluginFacts {
        file: plugin.file.clone(),
        instances: state
            .instances
            .values()
            .filter(|i| i.record.plugin == plugin.file.meta.id.as_str())
            .map(|i| instance_facts(state, i))
            .collect(),
    }
}

pub(super) fn instance_facts(state: &State, instance: &Instance) -> InstanceFacts {
    let plugin_database = match state.plugins.get(&instance.record.plugin) {
        Some(plugin) if plugin.file.meta.database => {
            PluginDatabase::Declared(plugin.file.meta.database_type.clone())
        }
        Some(_) => PluginDatabase::None,
        None => PluginDatabase::PluginMissing,
    };
    InstanceFacts {
        record: instance.record.clone(),
        status: instance.handle.status(),
        plugin_database,
    }
}
