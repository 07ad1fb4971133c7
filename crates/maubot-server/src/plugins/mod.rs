//! The plugin host: plugin archives, their instances, and the runtime that runs them.
//!
//! Instances follow maubot's lifecycle (docs/compatibility.md, "Instances"): `enabled` is stored and decides
//! whether an instance starts with the server; `started` is what runs now; a failing `start()`
//! disables the instance. maubot-rs adds `failure`: why an instance is not running when it
//! should be, so that the API says what the logs say.

pub mod database;
mod events;
pub mod files;
mod pump;
pub mod store;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;
use maubot_types::config::Config;
use maubot_types::plugin::{ArchiveLimits, DatabaseType, PluginArchive, PluginMeta};
use serde::{Deserialize, Serialize};

use self::files::PluginFile;
use self::pump::{EventClock, Pump};
use self::store::InstanceRecord;
use crate::client::{Bot, ClientManager};
use crate::db::{self, Database};
use crate::runtime::{
    self, InstanceStart, LoadedPlugin, MatrixRequest, MatrixResponse, PluginCode, PluginRuntime,
    RuntimeError, RuntimeHost, Started, WebRequest, WebResponse,
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

/// A plugin as the API shows it (maubot's `PluginLoader.to_dict`).
#[derive(Debug, Clone, Serialize)]
pub struct PluginView {
    pub id: String,
    pub version: String,
    pub instances: Vec<InstanceView>,
    pub path: PathBuf,
}

/// An instance as the API shows it (maubot's `PluginInstance.to_dict`, plus `failure`).
#[derive(Debug, Clone, Serialize)]
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

/// `PUT /instance/{id}`: every field optional; `null` means unchanged.
#[derive(Debug, Clone, Default, Deserialize)]
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

#[derive(Debug)]
struct Instance {
    record: InstanceRecord,
    started: bool,
    base_config: Option<String>,
    /// Whether the instance's database was opened by this process (maubot's `inst_db`).
    database_opened: bool,
    failure: Option<String>,
    /// Hands the bot's events to the runtime while started.
    pump: Option<Pump>,
    /// When the pump last received an event (only kept while `maubot.timing` logs DEBUG).
    last_event: Arc<EventClock>,
}

impl Instance {
    fn new(record: InstanceRecord) -> Self {
        Self {
            record,
            started: false,
            base_config: None,
            database_opened: false,
            failure: None,
            pump: None,
            last_event: Arc::default(),
        }
    }

    fn stop_pump(&mut self) {
        self.pump = None;
    }
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
    /// Serialises changes (API calls, start-up): a change sees the state the last one left.
    ops: tokio::sync::Mutex<()>,
    state: Mutex<State>,
    /// Background work (start-up, runtimes' callbacks); shutdown waits for it.
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
        let records = store::all(&db).await?;
        let databases = database::Databases::new(&config);
        let host = Arc::new_cyclic(|this: &Weak<PluginHost>| PluginHost {
            this: this.clone(),
            databases,
            config,
            db,
            clients,
            runtime,
            ops: tokio::sync::Mutex::new(()),
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
            for record in records {
                state
                    .instances
                    .insert(record.id.clone(), Instance::new(record));
            }
        }
        Ok(host)
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
            // The lock is taken per instance, so that the API is not held up for the whole
            // start-up (the first start may prepare the Python environment).
            for id in enabled {
                let _ops = host.ops.lock().await;
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
        let _ops = self.ops.lock().await;
        let started: Vec<String> = lock(&self.state)
            .instances
            .values()
            .filter(|i| i.started)
            .map(|i| i.record.id.clone())
            .collect();
        for id in started {
            self.stop_instance(&id).await;
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

    // ----- views -----

    pub fn plugins(&self) -> Vec<PluginView> {
        let state = lock(&self.state);
        state
            .plugins
            .values()
            .map(|p| self.plugin_view(&state, p))
            .collect()
    }

    pub fn plugin(&self, id: &str) -> Result<PluginView> {
        let state = lock(&self.state);
        let plugin = state.plugins.get(id).ok_or(Error::PluginNotFound)?;
        Ok(self.plugin_view(&state, plugin))
    }

    /// A plugin's `maubot.yaml`, for the web UI.
    pub fn plugin_meta(&self, id: &str) -> Result<PluginMeta> {
        let state = lock(&self.state);
        let plugin = state.plugins.get(id).ok_or(Error::PluginNotFound)?;
        Ok(plugin.file.meta.clone())
    }

    pub fn instances(&self) -> Vec<InstanceView> {
        let state = lock(&self.state);
        state
            .instances
            .values()
            .map(|i| self.instance_view(&state, i))
            .collect()
    }

    pub fn instance(&self, id: &str) -> Result<InstanceView> {
        let state = lock(&self.state);
        let instance = state.instances.get(id).ok_or(Error::InstanceNotFound)?;
        Ok(self.instance_view(&state, instance))
    }

    /// The instances running on a client, for the client's view.
    pub fn instances_of_client(&self, client_id: &str) -> Vec<InstanceView> {
        let state = lock(&self.state);
        state
            .instances
            .values()
            .filter(|i| i.record.primary_user == client_id)
            .map(|i| self.instance_view(&state, i))
            .collect()
    }

    fn plugin_view(&self, state: &State, plugin: &Plugin) -> PluginView {
        plugin_view(state, plugin, self.config.api_features.instance_database)
    }

    fn instance_view(&self, state: &State, instance: &Instance) -> InstanceView {
        instance_view(state, instance, self.config.api_features.instance_database)
    }

    // ----- plugins -----

    /// `POST /plugins/upload` and `PUT /plugin/{id}`: a new plugin (`true`) or a new version of
    /// one (`false`). `path_id` is the ID in a `PUT` path, which must match the archive's.
    pub async fn upload(
        &self,
        bytes: Vec<u8>,
        path_id: Option<&str>,
        allow_override: bool,
    ) -> Result<(bool, PluginView)> {
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
        let _ops = self.ops.lock().await;
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
                let view = self.plugin_view(&state, &state.plugins[&id]);
                Ok((true, view))
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
            .filter(|i| i.record.plugin == plugin_id && i.started)
            .map(|i| i.record.id.clone())
            .collect()
    }

    /// `POST /plugin/{id}/reload`: the same file read again, its instances restarted.
    pub async fn reload(&self, id: &str) -> Result<()> {
        let _ops = self.ops.lock().await;
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
        let _ops = self.ops.lock().await;
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

    // ----- instances -----

    /// `PUT /instance/{id}`: creates the instance (`true`) or updates it.
    pub async fn put_instance(
        &self,
        id: &str,
        request: InstanceRequest,
    ) -> Result<(bool, InstanceView)> {
        let _ops = self.ops.lock().await;
        if lock(&self.state).instances.contains_key(id) {
            Ok((false, self.update_instance(id, request).await?))
        } else {
            Ok((true, self.create_instance(id, request).await?))
        }
    }

    /// A new instance. Call with `ops` held.
    async fn create_instance(&self, id: &str, request: InstanceRequest) -> Result<InstanceView> {
        check_instance_id(id)?;
        let plugin = request
            .plugin
            .filter(|p| !p.is_empty())
            .ok_or(Error::PluginTypeRequired)?;
        let primary_user = request
            .primary_user
            .filter(|p| !p.is_empty())
            .ok_or(Error::PrimaryUserRequired)?;
        if self.clients.get(&primary_user).await.is_none() {
            return Err(Error::PrimaryUserNotFound);
        }
        if !lock(&self.state).plugins.contains_key(&plugin) {
            return Err(Error::PluginTypeNotFound);
        }
        let record = InstanceRecord {
            id: id.to_owned(),
            plugin,
            enabled: request.enabled.unwrap_or(true),
            primary_user,
            config: request.config.unwrap_or_default(),
            database_engine: None,
        };
        store::insert(&self.db, &record).await?;
        let enabled = record.enabled;
        lock(&self.state)
            .instances
            .insert(id.to_owned(), Instance::new(record));
        if enabled {
            let _ = self.start_instance(id, true).await;
        }
        self.instance(id)
    }

    /// An existing instance changed in maubot's order: primary user, ID, enabled, config,
    /// started, type. Call with `ops` held.
    async fn update_instance(&self, id: &str, request: InstanceRequest) -> Result<InstanceView> {
        let mut id = id.to_owned();
        let current = self.record(&id)?;

        if let Some(user) = request.primary_user.filter(|u| *u != current.primary_user) {
            if self.clients.get(&user).await.is_none() {
                return Err(Error::PrimaryUserNotFound);
            }
            let was_started = self.stop_instance(&id).await;
            self.change(&id, |r| r.primary_user = user).await?;
            if was_started {
                let _ = self.start_instance(&id, true).await;
            }
        }
        // maubot lower-cases the new ID too, so that it can be reached from a path.
        if let Some(new_id) = request
            .id
            .map(|n| n.to_lowercase())
            .filter(|n| *n != id && !n.is_empty())
        {
            self.rename_instance(&id, &new_id).await?;
            id = new_id;
        }
        if let Some(enabled) = request.enabled {
            // As in maubot, this only decides about future starts; `started` stops.
            self.change(&id, |r| r.enabled = enabled).await?;
        }
        if let Some(config) = request.config {
            self.change(&id, |r| r.config = config.clone()).await?;
            // As in maubot, a running plugin hears of every config the API stores.
            if let Some(code) = self.running_code(&id)
                && let Err(err) = code.config_updated(&id, &config).await
            {
                tracing::error!(target: LOG, instance = %id, error = %err, "The plugin failed to apply its new config");
            }
        }
        match request.started {
            Some(true) => {
                let _ = self.start_instance(&id, true).await;
            }
            Some(false) => {
                self.stop_instance(&id).await;
            }
            None => {}
        }
        let plugin_exists = |p: &String| lock(&self.state).plugins.contains_key(p);
        if let Some(plugin) = request
            .plugin
            .filter(|p| *p != self.record(&id).map(|r| r.plugin).unwrap_or_default())
            // An unknown type is ignored, as in maubot.
            .filter(plugin_exists)
        {
            let was_started = self.stop_instance(&id).await;
            self.change(&id, |r| r.plugin = plugin).await?;
            if was_started {
                let _ = self.start_instance(&id, true).await;
            }
        }
        self.instance(&id)
    }

    /// Renames an instance, with its database (maubot renames only the row).
    async fn rename_instance(&self, id: &str, new_id: &str) -> Result<()> {
        check_instance_id(new_id)?;
        if lock(&self.state).instances.contains_key(new_id) {
            return Err(Error::InstanceExists(new_id.to_owned()));
        }
        let was_started = self.stop_instance(id).await;
        let mut record = self.record(id)?;
        let engine = database::Engine::recorded(record.database_engine.as_deref());
        if let Err(err) = self.databases.rename(id, new_id, engine).await {
            // Renamed without its data, the instance would start empty: keep the old name.
            if was_started {
                let _ = self.start_instance(id, true).await;
            }
            return Err(Error::Io(format!(
                "Cannot move the instance's database: {err}"
            )));
        }
        record.id = new_id.to_owned();
        store::update(&self.db, id, &record).await?;
        {
            let mut state = lock(&self.state);
            if let Some(mut instance) = state.instances.remove(id) {
                instance.record = record;
                state.instances.insert(new_id.to_owned(), instance);
            }
        }
        if was_started {
            let _ = self.start_instance(new_id, true).await;
        }
        Ok(())
    }

    /// `DELETE /instance/{id}`: stopped, its row and (if opened) its database removed.
    pub async fn delete_instance(&self, id: &str) -> Result<()> {
        let _ops = self.ops.lock().await;
        self.record(id)?;
        self.stop_instance(id).await;
        store::delete(&self.db, id).await?;
        let removed = lock(&self.state).instances.remove(id);
        if let Some(instance) = removed.filter(|i| i.database_opened) {
            let engine = database::Engine::recorded(instance.record.database_engine.as_deref());
            self.databases
                .remove(id, engine, &self.config.plugin_directories.trash)
                .await;
        }
        Ok(())
    }

    fn record(&self, id: &str) -> Result<InstanceRecord> {
        lock(&self.state)
            .instances
            .get(id)
            .map(|i| i.record.clone())
            .ok_or(Error::InstanceNotFound)
    }

    /// Changes a row in memory and in the database.
    async fn change(&self, id: &str, edit: impl FnOnce(&mut InstanceRecord)) -> Result<()> {
        let record = {
            let mut state = lock(&self.state);
            let instance = state.instances.get_mut(id).ok_or(Error::InstanceNotFound)?;
            edit(&mut instance.record);
            instance.record.clone()
        };
        store::update(&self.db, id, &record).await?;
        Ok(())
    }

    fn running_code(&self, id: &str) -> Option<Arc<dyn LoadedPlugin>> {
        let state = lock(&self.state);
        let instance = state.instances.get(id).filter(|i| i.started)?;
        state
            .plugins
            .get(&instance.record.plugin)
            .map(|p| Arc::clone(&p.code))
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
        if !instance.database_opened {
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
            let instance = state.instances.get(id).filter(|i| i.started)?;
            let plugin = state
                .plugins
                .get(&instance.record.plugin)
                .filter(|p| p.file.meta.webapp)?;
            Arc::clone(&plugin.code)
        };
        Some(code.web_request(id, request).await)
    }

    /// Decides where an instance's database is (recording the engine the first time, as
    /// maubot does) and prepares it.
    async fn place_database(
        &self,
        id: &str,
        record: &InstanceRecord,
        meta: &PluginMeta,
    ) -> std::result::Result<database::Placement, database::PlacementError> {
        let engine = self.databases.engine_for(
            id,
            &meta.database_type,
            record.database_engine.as_deref(),
        )?;
        if record.database_engine.is_none()
            && let Err(err) = self
                .change(id, |r| r.database_engine = Some(engine.as_str().into()))
                .await
        {
            tracing::warn!(target: LOG, instance = %id, error = %err, "Could not record the database engine");
        }
        self.databases.prepare(id, engine).await
    }

    /// Starts an instance if it is enabled and not running. A failure is logged and recorded;
    /// with `disable_on_failure` a failure of the plugin itself also disables the instance, as
    /// in maubot (not when the runtime is unavailable, e.g. no Python: the instance stays enabled
    /// and starts at the next server start or `started: true`).
    async fn start_instance(
        &self,
        id: &str,
        disable_on_failure: bool,
    ) -> std::result::Result<(), RuntimeError> {
        let prepared = {
            let state = lock(&self.state);
            let Some(instance) = state.instances.get(id) else {
                return Ok(());
            };
            if instance.started {
                return Ok(());
            }
            if !instance.record.enabled {
                tracing::warn!(target: LOG, instance = %id, "Not starting a disabled instance");
                return Ok(());
            }
            state.plugins.get(&instance.record.plugin).map(|p| {
                (
                    instance.record.clone(),
                    Arc::clone(&p.code),
                    p.file.meta.clone(),
                )
            })
        };
        let Some((record, code, meta)) = prepared else {
            let reason = RuntimeError::Plugin {
                message: format!(
                    "Plugin {} not found",
                    lock(&self.state)
                        .instances
                        .get(id)
                        .map(|i| i.record.plugin.clone())
                        .unwrap_or_default()
                ),
                detail: None,
            };
            self.start_failed(id, &reason, true).await;
            return Err(reason);
        };
        let Some(bot) = self.clients.get(&record.primary_user).await else {
            let reason = RuntimeError::Plugin {
                message: format!("Client {} not found", record.primary_user),
                detail: None,
            };
            self.start_failed(id, &reason, true).await;
            return Err(reason);
        };
        let mut database = None;
        if meta.database {
            match self.place_database(id, &record, &meta).await {
                Ok(placement) => database = Some(placement),
                Err(err) => {
                    let reason = RuntimeError::Plugin {
                        message: err.to_string(),
                        detail: None,
                    };
                    self.start_failed(id, &reason, disable_on_failure).await;
                    return Err(reason);
                }
            }
        }
        let bot_record = bot.record();
        let start = InstanceStart {
            instance_id: id.to_owned(),
            user_id: bot_record.id.clone(),
            device_id: bot_record.device_id.clone(),
            homeserver: bot_record.homeserver.clone(),
            config: record.config.clone(),
            database: database.clone(),
            webapp_url: meta.webapp.then(|| self.webapp_url(id)),
        };
        match code.start(start).await {
            Ok(started) => {
                self.mark_started(id, started, database.is_some(), bot, code);
                tracing::info!(target: LOG, instance = %id, "Instance started");
                Ok(())
            }
            Err(err) => {
                self.start_failed(id, &err, disable_on_failure).await;
                Err(err)
            }
        }
    }

    fn mark_started(
        &self,
        id: &str,
        started: Started,
        database_opened: bool,
        bot: Arc<Bot>,
        code: Arc<dyn LoadedPlugin>,
    ) {
        let mut state = lock(&self.state);
        let Some(instance) = state.instances.get_mut(id) else {
            return;
        };
        instance.started = true;
        instance.failure = None;
        instance.base_config = started.base_config;
        instance.database_opened |= database_opened;
        match instance.pump.as_ref().filter(|pump| pump.is_held()) {
            // Started again on new code: what arrived meanwhile goes to it.
            Some(pump) => pump.release_to(code),
            None => {
                instance.pump = Some(Pump::spawn(id, bot, code, Arc::clone(&instance.last_event)));
            }
        }
    }

    async fn start_failed(&self, id: &str, err: &RuntimeError, disable: bool) {
        tracing::error!(
            target: LOG, instance = %id, error = %err, detail = err.detail().unwrap_or(""),
            "Failed to start instance"
        );
        let disable = disable && !matches!(err, RuntimeError::Unavailable(_));
        {
            let mut state = lock(&self.state);
            if let Some(instance) = state.instances.get_mut(id) {
                instance.failure = Some(err.to_string());
                instance.started = false;
                instance.stop_pump();
            }
        }
        if disable {
            let _ = self.change(id, |r| r.enabled = false).await;
        }
    }

    /// Stops an instance if it runs; whether it did.
    async fn stop_instance(&self, id: &str) -> bool {
        self.stop_instance_keeping(id, false).await
    }

    /// Stops an instance; with `keep_events`, its pump holds the bot's events for the next
    /// start (on new code) instead of ending.
    async fn stop_instance_keeping(&self, id: &str, keep_events: bool) -> bool {
        let code = {
            let mut state = lock(&self.state);
            let Some(instance) = state.instances.get_mut(id) else {
                return false;
            };
            let was_started = instance.started;
            instance.started = false;
            // Stopped on purpose: nothing is wrong that should be reported, and a restart of a
            // crashed worker under way must not bring it back (see `instance_recovered`).
            instance.failure = None;
            match instance.pump.as_ref() {
                Some(pump) if keep_events => pump.hold(),
                _ => instance.stop_pump(),
            }
            let plugin = instance.record.plugin.clone();
            state
                .plugins
                .get(&plugin)
                .map(|p| (Arc::clone(&p.code), was_started))
        };
        let Some((code, was_started)) = code else {
            return false;
        };
        // Also when not started here: after a crash the runtime may be about to start it
        // again, and must not.
        code.stop(id).await;
        if was_started {
            tracing::info!(target: LOG, instance = %id, "Instance stopped");
        }
        was_started
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

fn plugin_view(state: &State, plugin: &Plugin, database_feature: bool) -> PluginView {
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

fn instance_view(state: &State, instance: &Instance, database_feature: bool) -> InstanceView {
    let record = &instance.record;
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
        started: instance.started,
        primary_user: record.primary_user.clone(),
        config: record.config.clone(),
        base_config: instance.base_config.clone(),
        database: instance.database_opened && database_feature,
        database_interface,
        database_engine: record.database_engine.clone(),
        failure: instance.failure.clone(),
    }
}

/// The runtime's way back into the host, bound to one plugin: what it asks for an instance of
/// another plugin is refused.
#[derive(Debug)]
struct Callbacks {
    host: Weak<PluginHost>,
    plugin: String,
}

impl Callbacks {
    /// Whether `instance` is one of this plugin's; if not, the attempt is logged.
    fn owns(&self, instance: &Instance, what: &str) -> bool {
        let owned = instance.record.plugin == self.plugin;
        if !owned {
            tracing::warn!(
                target: runtime::SECURITY, plugin = %self.plugin, instance = %instance.record.id,
                what, "Refused a plugin's request for another plugin's instance"
            );
        }
        owned
    }
}

#[async_trait]
impl RuntimeHost for Callbacks {
    async fn database_files(&self) -> Vec<PathBuf> {
        let Some(host) = self.host.upgrade() else {
            return Vec::new();
        };
        let on_sqlite: Vec<String> = {
            let state = lock(&host.state);
            let Some(plugin) = state.plugins.get(&self.plugin) else {
                return Vec::new();
            };
            let meta = &plugin.file.meta;
            state
                .instances
                .values()
                .filter(|i| meta.database && i.record.plugin == self.plugin)
                .filter(|i| {
                    host.databases
                        .engine_for(
                            &i.record.id,
                            &meta.database_type,
                            i.record.database_engine.as_deref(),
                        )
                        .is_ok_and(|e| e == database::Engine::Sqlite)
                })
                .map(|i| i.record.id.clone())
                .collect()
        };
        let mut files = Vec::new();
        for id in on_sqlite {
            match host.databases.prepare(&id, database::Engine::Sqlite).await {
                Ok(placement) => files.extend(
                    placement
                        .sqlite_file()
                        .map(|f| [f.to_owned(), database::sqlite::journal_of(f)])
                        .into_iter()
                        .flatten(),
                ),
                Err(err) => {
                    tracing::warn!(target: LOG, instance = %id, error = %err, "Cannot prepare the instance's database");
                }
            }
        }
        files
    }

    async fn matrix_request(&self, instance_id: &str, request: MatrixRequest) -> MatrixResponse {
        let Some(host) = self.host.upgrade() else {
            return MatrixResponse::json(
                503,
                serde_json::json!({"errcode": "M_UNKNOWN", "error": "shutting down"}),
            );
        };
        let timing = tracing::enabled!(target: TIMING, tracing::Level::DEBUG);
        let (user, last_event) = lock(&host.state)
            .instances
            .get(instance_id)
            .filter(|i| self.owns(i, "matrix"))
            .map(|i| {
                let last = timing.then(|| Arc::clone(&i.last_event));
                (i.record.primary_user.clone(), last)
            })
            .unzip();
        if let Some(handling_us) = last_event
            .flatten()
            .filter(|_| request.method == "PUT" && request.path.contains("/send/"))
            .and_then(|clock| clock.micros_since())
        {
            tracing::debug!(target: TIMING, instance = %instance_id, handling_us, "Plugin send after event");
        }
        let bot = match user {
            Some(user) => host.clients.get(&user).await,
            None => None,
        };
        match bot {
            Some(bot) => runtime::matrix::perform(&bot, host.clients.http(), request).await,
            None => MatrixResponse::json(
                404,
                serde_json::json!({"errcode": "M_UNKNOWN", "error": "The instance's client does not exist"}),
            ),
        }
    }

    fn config_saved(&self, instance_id: &str, config: String) {
        let Some(host) = self.host.upgrade() else {
            return;
        };
        {
            let mut state = lock(&host.state);
            let Some(instance) = state
                .instances
                .get_mut(instance_id)
                .filter(|i| self.owns(i, "config_save"))
            else {
                return;
            };
            if instance.record.config == config {
                return;
            }
            instance.record.config = config.clone();
        }
        let id = instance_id.to_owned();
        let tasks = host.tasks.clone();
        tasks.spawn(async move {
            if let Err(err) = store::save_config(&host.db, &id, &config).await {
                tracing::error!(target: LOG, instance = %id, error = %err, "Could not store the config the plugin saved");
            }
        });
    }

    fn instance_failed(&self, instance_id: &str, reason: String) {
        let Some(host) = self.host.upgrade() else {
            return;
        };
        tracing::error!(target: LOG, instance = %instance_id, reason = %reason, "Instance failed");
        let mut state = lock(&host.state);
        if let Some(instance) = state.instances.get_mut(instance_id) {
            instance.started = false;
            instance.stop_pump();
            instance.failure = Some(reason);
        }
    }

    fn instance_recovered(&self, instance_id: &str, started: Started) {
        let Some(host) = self.host.upgrade() else {
            return;
        };
        let id = instance_id.to_owned();
        let tasks = host.tasks.clone();
        tasks.spawn(async move {
            // Under the lock of changes: an API stop or delete meanwhile wins, and so does a
            // shutdown.
            let _ops = host.ops.lock().await;
            if host.is_stopping() {
                return;
            }
            let found = {
                let state = lock(&host.state);
                state.instances.get(&id).and_then(|i| {
                    let code = Arc::clone(&state.plugins.get(&i.record.plugin)?.code);
                    // Only an instance still waiting to run again comes back: one stopped on
                    // purpose meanwhile must stop in the runtime too; one started anew runs.
                    let waiting = i.failure.is_some() && !i.started && i.record.enabled;
                    Some((waiting, i.started, i.record.primary_user.clone(), code))
                })
            };
            let Some((waiting, started_anew, user, code)) = found else {
                return;
            };
            if started_anew {
                return;
            }
            match host.clients.get(&user).await.filter(|_| waiting) {
                Some(bot) => {
                    host.mark_started(&id, started, false, bot, code);
                    tracing::info!(target: LOG, instance = %id, "Instance running again");
                }
                // Stopped, disabled or without its client during the restart: it must not run.
                None => code.stop(&id).await,
            }
        });
    }

    fn instance_gave_up(&self, instance_id: &str, error: RuntimeError) {
        let Some(host) = self.host.upgrade() else {
            return;
        };
        let id = instance_id.to_owned();
        let tasks = host.tasks.clone();
        tasks.spawn(async move {
            let _ops = host.ops.lock().await;
            host.start_failed(&id, &error, true).await;
        });
    }
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
