//! The plugin host: plugin archives, their instances, and the runtime that runs them.
//!
//! Instances follow maubot's lifecycle (docs/compatibility.md, "Instances"): `enabled` is stored and decides
//! whether an instance starts with the server; `started` is what runs now; a failing `start()`
//! disables the instance. maubot-rs adds `failure`: why an instance is not running when it
//! should be, so that the API says what the logs say.

mod callbacks;
pub mod database;
mod events;
mod facts;
pub mod files;
mod instances;
mod intent;
mod lifecycle;
mod pump;
pub mod store;
mod supervisor;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use maubot_types::config::Config;
use maubot_types::plugin::{ArchiveLimits, DatabaseType, PluginArchive, PluginMeta};
use serde::Deserialize;

use self::callbacks::Callbacks;
pub use self::facts::{InstanceFacts, PluginDatabase, PluginFacts};
use self::facts::{instance_facts, plugin_facts};
use self::files::PluginFile;
use self::store::InstanceRecord;
pub use self::supervisor::Status;
use self::supervisor::{Command, Handle};
use crate::client::ClientManager;
use crate::db::{self, Database};
use crate::runtime::{
    LoadedPlugin, PluginCode, PluginRuntime, RuntimeError, RuntimeHost, Started, WebRequest,
    WebResponse,
};
use crate::sync::lock;

const LOG: &str = "maubot.instance";
/// Debug timings (for benchmarks): per room send of a plugin, `handling_us`, the microseconds
/// from its instance's pump receiving the latest event to the plugin's send request arriving.
/// Nothing is measured while this target is not enabled at DEBUG.
const TIMING: &str = "maubot.timing";

/// Why a plugin or instance operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("plugin not found")]
    PluginNotFound,
    #[error("instance not found")]
    InstanceNotFound,
    #[error("instances of the plugin exist")]
    PluginInUse,
    #[error("the plugin exists")]
    PluginExists,
    #[error("the plugin ID differs from the path")]
    PidMismatch,
    /// The archive or its code is not a working plugin.
    #[error("{message}")]
    Invalid {
        message: String,
        detail: Option<String>,
    },
    /// The new code could not be started; the old code runs again (or nothing, on reload).
    #[error("{message}")]
    ReloadFailed {
        message: String,
        detail: Option<String>,
    },
    #[error("plugin type required")]
    PluginTypeRequired,
    #[error("primary user required")]
    PrimaryUserRequired,
    #[error("primary user not found")]
    PrimaryUserNotFound,
    #[error("plugin type not found")]
    PluginTypeNotFound,
    #[error("an instance with the ID {0} exists")]
    InstanceExists(String),
    /// The ID would not work as a file name (instance databases are `<id>.db`).
    #[error("{0}")]
    InvalidInstanceId(String),
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error("{0}")]
    Io(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// `PUT /instance/{id}`: every field optional; `null` means unchanged.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct InstanceRequest {
    #[serde(rename = "type")]
    pub plugin: Option<String>,
    pub primary_user: Option<String>,
    pub enabled: Option<bool>,
    pub config: Option<String>,
    pub started: Option<bool>,
    pub id: Option<String>,
}

#[derive(Debug)]
struct Plugin {
    file: PluginFile,
    code: Arc<dyn LoadedPlugin>,
}

/// An instance in the registry: its row, and its supervisor, which owns what runs.
#[derive(Debug)]
struct Instance {
    record: InstanceRecord,
    handle: Handle,
}

#[derive(Debug, Default)]
struct State {
    plugins: BTreeMap<String, Plugin>,
    instances: BTreeMap<String, Instance>,
}

/// All plugins and instances.
#[derive(Debug)]
pub struct PluginHost {
    this: Weak<PluginHost>,
    config: Arc<Config>,
    db: Database,
    clients: Arc<ClientManager>,
    runtime: Arc<dyn PluginRuntime>,
    databases: database::Databases,
    /// The change of a row and its database under way (see `intent`).
    journal: intent::Journal,
    /// Orders changes of the registry: plugins and the set of instances change under the write
    /// lock, one instance's own changes under the read lock (and its `changes` lock), so that
    /// a slow start holds up no other instance but a replacement waits for it.
    ops: tokio::sync::RwLock<()>,
    /// Serialises a row's change in memory with its write to the database.
    rows: tokio::sync::Mutex<()>,
    state: Mutex<State>,
    /// The instances' supervisors and the start-up; shutdown waits for them.
    tasks: tokio_util::task::TaskTracker,
    /// Set when shutdown begins: nothing starts after it.
    stopping: std::sync::atomic::AtomicBool,
}

impl PluginHost {
    /// Scans the plugin directories and loads the instance rows (starting nothing).
    pub async fn load(
        config: Arc<Config>,
        db: Database,
        clients: Arc<ClientManager>,
        runtime: Arc<dyn PluginRuntime>,
    ) -> Result<Arc<Self>> {
        let dirs = &config.plugin_directories;
        for dir in [&dirs.upload, &dirs.trash, &config.plugin_databases.sqlite] {
            if dir != "delete" {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::Io(format!("cannot create {dir}: {e}")))?;
            }
        }
        let found = {
            let (load, trash) = (dirs.load.clone(), dirs.trash.clone());
            tokio::task::spawn_blocking(move || files::scan(&load, &trash))
                .await
                .map_err(|e| Error::Io(e.to_string()))?
        };
        files::remove_unfinished_uploads(&dirs.upload);
        let mut records = store::all(&db).await?;
        let databases = database::Databases::new(&config);
        let journal = intent::Journal::new(&config.plugin_databases.sqlite);
        journal
            .recover(&db, &databases, &dirs.trash, &mut records)
            .await?;
        let host = Arc::new_cyclic(|this: &Weak<PluginHost>| PluginHost {
            this: this.clone(),
            databases,
            journal,
            config,
            db,
            clients,
            runtime,
            ops: tokio::sync::RwLock::new(()),
            rows: tokio::sync::Mutex::new(()),
            state: Mutex::new(State::default()),
            tasks: tokio_util::task::TaskTracker::new(),
            stopping: std::sync::atomic::AtomicBool::new(false),
        });
        {
            let mut state = lock(&host.state);
            for file in found {
                let code = host.prepare(&file);
                state
                    .plugins
                    .insert(file.meta.id.to_string(), Plugin { file, code });
            }
        }
        for record in records {
            host.add_instance(record);
        }
        Ok(host)
    }

    /// Registers an instance and starts its supervisor.
    fn add_instance(&self, record: InstanceRecord) {
        let handle = Handle::spawn(&record.id, self.this.clone(), &self.tasks);
        lock(&self.state)
            .instances
            .insert(record.id.clone(), Instance { record, handle });
    }

    fn prepare(&self, file: &PluginFile) -> Arc<dyn LoadedPlugin> {
        let callbacks: Arc<dyn RuntimeHost> = Arc::new(Callbacks {
            host: self.this.clone(),
            plugin: file.meta.id.to_string(),
        });
        self.runtime.prepare(
            PluginCode {
                path: file.path.clone(),
                meta: file.meta.clone(),
            },
            callbacks,
        )
    }

    /// Starts every enabled instance, in the background (a first start may prepare the Python
    /// environment, which takes a while).
    pub fn start_all(&self) {
        let Some(host) = self.this.upgrade() else {
            return;
        };
        self.tasks.spawn(async move {
            let enabled: Vec<String> = lock(&host.state)
                .instances
                .values()
                .filter(|i| i.record.enabled)
                .map(|i| i.record.id.clone())
                .collect();
            // One at a time (the first start may prepare the Python environment), each with
            // the read lock: changes of other instances go on meanwhile.
            for id in enabled {
                let _ops = host.ops.read().await;
                if host.is_stopping() {
                    return;
                }
                let _ = host.start_instance(&id, true).await;
            }
        });
    }

    fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops every instance and worker (server shutdown); nothing starts afterwards.
    pub async fn stop_all(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let _ops = self.ops.write().await;
        let ids: Vec<String> = lock(&self.state).instances.keys().cloned().collect();
        for id in ids {
            self.ask(&id, |done| Command::Shutdown { done }).await;
        }
        let codes: Vec<Arc<dyn LoadedPlugin>> = lock(&self.state)
            .plugins
            .values()
            .map(|p| Arc::clone(&p.code))
            .collect();
        for code in codes {
            code.unload().await;
        }
        drop(_ops);
        self.tasks.close();
        self.tasks.wait().await;
    }

    // ----- what the API and the web UI show -----

    pub fn plugins(&self) -> Vec<PluginFacts> {
        let state = lock(&self.state);
        state
            .plugins
            .values()
            .map(|p| plugin_facts(&state, p))
            .collect()
    }

    pub fn plugin(&self, id: &str) -> Result<PluginFacts> {
        let state = lock(&self.state);
        let plugin = state.plugins.get(id).ok_or(Error::PluginNotFound)?;
        Ok(plugin_facts(&state, plugin))
    }

    /// A plugin's `maubot.yaml`, for the web UI.
    pub fn plugin_meta(&self, id: &str) -> Result<PluginMeta> {
        let state = lock(&self.state);
        let plugin = state.plugins.get(id).ok_or(Error::PluginNotFound)?;
        Ok(plugin.file.meta.clone())
    }

    pub fn instances(&self) -> Vec<InstanceFacts> {
        let state = lock(&self.state);
        state
            .instances
            .values()
            .map(|i| instance_facts(&state, i))
            .collect()
    }

    pub fn instance(&self, id: &str) -> Result<InstanceFacts> {
        let state = lock(&self.state);
        let instance = state.instances.get(id).ok_or(Error::InstanceNotFound)?;
        Ok(instance_facts(&state, instance))
    }

    /// The instances running on a client, for the client's view.
    pub fn instances_of_client(&self, client_id: &str) -> Vec<InstanceFacts> {
        let state = lock(&self.state);
        state
            .instances
            .values()
            .filter(|i| i.record.primary_user == client_id)
            .map(|i| instance_facts(&state, i))
            .collect()
    }

    // ----- plugins -----

    /// `POST /plugins/upload` and `PUT /plugin/{id}`: a new plugin (`true`) or a new version of
    /// one (`false`). `path_id` is the ID in a `PUT` path, which must match the archive's.
    pub async fn upload(
        &self,
        bytes: Vec<u8>,
        path_id: Option<&str>,
        allow_override: bool,
    ) -> Result<(bool, PluginFacts)> {
        let archive = tokio::task::spawn_blocking(move || {
            PluginArchive::read(&bytes, &ArchiveLimits::default()).map(|archive| (archive, bytes))
        })
        .await
        .map_err(|e| Error::Io(e.to_string()))?;
        let (archive, bytes) = archive.map_err(|err| Error::Invalid {
            message: err.to_string(),
            detail: None,
        })?;
        let meta = archive.meta;
        if path_id.is_some_and(|id| id != meta.id.as_str()) {
            return Err(Error::PidMismatch);
        }
        let _ops = self.ops.write().await;
        let existing = lock(&self.state)
            .plugins
            .get(meta.id.as_str())
            .map(|p| p.file.clone());
        match existing {
            None => {
                let path = std::path::absolute(
                    Path::new(&self.config.plugin_directories.upload)
                        .join(files::new_file_name(&meta)),
                )
                .map_err(|e| Error::Io(e.to_string()))?;
                write(&path, bytes).await?;
                let file = PluginFile { meta, path };
                tracing::info!(target: "maubot.loader.zip", id = %file.meta.id, version = %file.meta.version, "Plugin uploaded");
                let code = self.prepare(&file);
                let id = file.meta.id.to_string();
                let mut state = lock(&self.state);
                state.plugins.insert(id.clone(), Plugin { file, code });
                let facts = plugin_facts(&state, &state.plugins[&id]);
                Ok((true, facts))
            }
            Some(old) => {
                if !allow_override {
                    return Err(Error::PluginExists);
                }
                let now_ms = crate::sync::unix_millis();
                let old_name = old
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let name = files::replacement_file_name(
                    &old_name,
                    &old.meta.version.normalized(),
                    &meta.version.normalized(),
                    now_ms,
                );
                let path = old.path.with_file_name(name);
                write(&path, bytes).await?;
                crate::fault::point("plugin.replace.new_file_written");
                let id = old.meta.id.to_string();
                self.replace(old, PluginFile { meta, path }).await?;
                Ok((false, self.plugin(&id)?))
            }
        }
    }

    /// Swaps a plugin's code, restarting the instances that ran on the old code; rolls back if
    /// the new code does not load or start.
    async fn replace(&self, old: PluginFile, new: PluginFile) -> Result<()> {
        let id = old.meta.id.to_string();
        let trash_dir = self.config.plugin_directories.trash.clone();
        let new_code = self.prepare(&new);
        let (old_code, running) = {
            let state = lock(&self.state);
            let plugin = state.plugins.get(&id).ok_or(Error::PluginNotFound)?;
            (Arc::clone(&plugin.code), self.started_of(&state, &id))
        };
        if !running.is_empty()
            && let Err(err) = new_code.load().await
        {
            files::trash(&new.path, &trash_dir, "failed_update");
            return Err(Error::Invalid {
                message: err.to_string(),
                detail: err.detail().map(str::to_owned),
            });
        }
        // The instances' events wait for the new code instead of being lost in between.
        for instance in &running {
            self.stop_instance_keeping(instance, true).await;
        }
        old_code.unload().await;
        self.set_plugin(&id, new.clone(), Arc::clone(&new_code));
        let mut failed = None;
        for instance in &running {
            if let Err(err) = self.start_instance(instance, false).await {
                failed = Some(err);
                break;
            }
        }
        if let Some(err) = failed {
            tracing::error!(target: "maubot.loader.zip", id = %id, error = %err, "The new version failed to start; going back to the old one");
            for instance in &running {
                self.stop_instance_keeping(instance, true).await;
            }
            new_code.unload().await;
            self.set_plugin(&id, old, old_code);
            for instance in &running {
                let _ = self.start_instance(instance, true).await;
            }
            files::trash(&new.path, &trash_dir, "failed_update");
            return Err(Error::ReloadFailed {
                message: err.to_string(),
                detail: err.detail().map(str::to_owned),
            });
        }
        files::trash(&old.path, &trash_dir, "update");
        tracing::info!(target: "maubot.loader.zip", id = %id, version = %new.meta.version, "Plugin replaced");
        Ok(())
    }

    fn set_plugin(&self, id: &str, file: PluginFile, code: Arc<dyn LoadedPlugin>) {
        lock(&self.state)
            .plugins
            .insert(id.to_owned(), Plugin { file, code });
    }

    fn started_of(&self, state: &State, plugin_id: &str) -> Vec<String> {
        state
            .instances
            .values()
            .filter(|i| i.record.plugin == plugin_id && i.handle.status().started)
            .map(|i| i.record.id.clone())
            .collect()
    }

    /// `POST /plugin/{id}/reload`: the same file read again, its instances restarted.
    pub async fn reload(&self, id: &str) -> Result<()> {
        let _ops = self.ops.write().await;
        let (path, old_code, running, enabled) = {
            let state = lock(&self.state);
            let plugin = state.plugins.get(id).ok_or(Error::PluginNotFound)?;
            let enabled: Vec<String> = state
                .instances
                .values()
                .filter(|i| i.record.plugin == id && i.record.enabled)
                .map(|i| i.record.id.clone())
                .collect();
            (
                plugin.file.path.clone(),
                Arc::clone(&plugin.code),
                self.started_of(&state, id),
                enabled,
            )
        };
        for instance in &running {
            self.stop_instance(instance).await;
        }
        old_code.unload().await;
        let reload_failed =
            |message: String, detail: Option<String>| Error::ReloadFailed { message, detail };
        let file = tokio::task::spawn_blocking(move || files::read(&path))
            .await
            .map_err(|e| Error::Io(e.to_string()))?
            .map_err(|message| reload_failed(message, None))?;
        if file.meta.id.as_str() != id {
            return Err(reload_failed(
                "Maubot plugin ID changed during reload".into(),
                None,
            ));
        }
        let code = self.prepare(&file);
        self.set_plugin(id, file, Arc::clone(&code));
        if !enabled.is_empty() {
            code.load()
                .await
                .map_err(|err| reload_failed(err.to_string(), err.detail().map(str::to_owned)))?;
        }
        for instance in &enabled {
            let _ = self.start_instance(instance, true).await;
        }
        Ok(())
    }

    /// `DELETE /plugin/{id}`: refused while instances of it exist.
    pub async fn delete_plugin(&self, id: &str) -> Result<()> {
        let _ops = self.ops.write().await;
        let plugin = {
            let mut state = lock(&self.state);
            if !state.plugins.contains_key(id) {
                return Err(Error::PluginNotFound);
            }
            if state.instances.values().any(|i| i.record.plugin == id) {
                return Err(Error::PluginInUse);
            }
            state.plugins.remove(id).ok_or(Error::PluginNotFound)?
        };
        plugin.code.unload().await;
        files::trash(
            &plugin.file.path,
            &self.config.plugin_directories.trash,
            "delete",
        );
        Ok(())
    }

    /// The instances' databases, for the database routes.
    pub fn databases(&self) -> &database::Databases {
        &self.databases
    }

    /// Where an instance's database is and which answers its routes give, once the instance
    /// opened it in this process (maubot's condition for the database routes); `None` before.
    pub fn database_of(&self, id: &str) -> Result<Option<(database::Engine, database::Flavor)>> {
        let state = lock(&self.state);
        let instance = state.instances.get(id).ok_or(Error::InstanceNotFound)?;
        if !instance.handle.status().database_opened {
            return Ok(None);
        }
        let engine = database::Engine::recorded(instance.record.database_engine.as_deref());
        let flavor = match state.plugins.get(&instance.record.plugin) {
            Some(p) if p.file.meta.database_type == DatabaseType::Asyncpg => {
                database::Flavor::Asyncpg
            }
            _ => database::Flavor::Sqlalchemy,
        };
        Ok(Some((engine, flavor)))
    }

    /// maubot's `public_url + plugin_base_path + id + "/"`.
    pub fn webapp_url(&self, id: &str) -> String {
        let server = &self.config.server;
        format!("{}{}{id}/", server.public_url, server.plugin_base_path)
    }

    /// An HTTP request for a started instance's web app; `None` when there is no such web app.
    pub async fn web_request(
        &self,
        id: &str,
        request: WebRequest,
    ) -> Option<std::result::Result<WebResponse, RuntimeError>> {
        let code = {
            let state = lock(&self.state);
            let instance = state
                .instances
                .get(id)
                .filter(|i| i.handle.status().started)?;
            let plugin = state
                .plugins
                .get(&instance.record.plugin)
                .filter(|p| p.file.meta.webapp)?;
            Arc::clone(&plugin.code)
        };
        Some(code.web_request(id, request).await)
    }
}

/// Instance IDs name database files: refuse what would leave the directory or confuse a URL.
/// (maubot does not check.)
fn check_instance_id(id: &str) -> Result<()> {
    let bad = id.is_empty()
        || id == "."
        || id == ".."
        || id.len() > 255
        || id
            .chars()
            .any(|c| matches!(c, '/' | '\\' | '?' | '#' | '%') || c.is_control());
    if bad {
        return Err(Error::InvalidInstanceId(format!(
            "{id:?} cannot be an instance ID: it must not be `.` or `..`, nor contain `/`, `\\`, \
             `?`, `#`, `%` or control characters"
        )));
    }
    Ok(())
}

async fn write(path: &Path, bytes: Vec<u8>) -> Result<()> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || files::write_atomically(&path, &bytes))
        .await
        .map_err(|e| Error::Io(e.to_string()))?
        .map_err(|e| Error::Io(format!("cannot write the plugin file: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_must_work_as_file_names() {
        for good in ["echo", "echo.bot-2", "über"] {
            assert!(check_instance_id(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a\\b", "a?b", "a#b", "a%2Fb", "a\nb"] {
            assert!(check_instance_id(bad).is_err(), "{bad:?}");
        }
    }
}
