//! The plugin host's side of an instance's life: the commands it sends the instance's
//! supervisor (see `supervisor`), and what the supervisor needs of the registry to start one
//! (its row, its plugin's code, its database).

use std::sync::Arc;

use maubot_types::plugin::PluginMeta;
use tokio::sync::oneshot;

use super::store::InstanceRecord;
use super::supervisor::Command;
use super::{LOG, PluginHost, Result, database};
use crate::runtime::{LoadedPlugin, RuntimeError};
use crate::sync::lock;

/// An instance's row and its plugin's code, as a start takes them.
pub(super) struct StartInputs {
    pub record: InstanceRecord,
    pub code: Arc<dyn LoadedPlugin>,
    pub meta: PluginMeta,
}

impl PluginHost {
    /// Sends a command to an instance's supervisor and waits for its answer; `None` if the
    /// instance (or its supervisor, at shutdown) is gone.
    pub(super) async fn ask<T>(
        &self,
        id: &str,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Option<T> {
        let commands = lock(&self.state)
            .instances
            .get(id)
            .map(|i| i.handle.commands.clone())?;
        let (done, answer) = oneshot::channel();
        commands.send(command(done)).await.ok()?;
        answer.await.ok()
    }

    /// Starts an instance if it is enabled and not running. A failure is logged and recorded;
    /// with `disable_on_failure` a failure of the plugin itself also disables the instance, as
    /// in maubot (not when the runtime is unavailable, e.g. no Python: the instance stays enabled
    /// and starts at the next server start or `started: true`).
    pub(super) async fn start_instance(
        &self,
        id: &str,
        disable_on_failure: bool,
    ) -> std::result::Result<(), RuntimeError> {
        self.ask(id, |done| Command::Start {
            disable_on_failure,
            done,
        })
        .await
        .unwrap_or(Ok(()))
    }

    /// Stops an instance if it runs; whether it did.
    pub(super) async fn stop_instance(&self, id: &str) -> bool {
        self.stop_instance_keeping(id, false).await
    }

    /// Stops an instance; with `keep_events`, its pump holds the bot's events for the next
    /// start (on new code) instead of ending.
    pub(super) async fn stop_instance_keeping(&self, id: &str, keep_events: bool) -> bool {
        self.ask(id, |done| Command::Stop { keep_events, done })
            .await
            .unwrap_or(false)
    }

    /// What a start of the instance needs: `None` when it is gone or disabled, an error when
    /// its plugin is missing.
    pub(super) fn start_inputs(
        &self,
        id: &str,
    ) -> std::result::Result<Option<StartInputs>, RuntimeError> {
        let state = lock(&self.state);
        let Some(instance) = state.instances.get(id) else {
            return Ok(None);
        };
        if !instance.record.enabled {
            tracing::warn!(target: LOG, instance = %id, "Not starting a disabled instance");
            return Ok(None);
        }
        match state.plugins.get(&instance.record.plugin) {
            Some(p) => Ok(Some(StartInputs {
                record: instance.record.clone(),
                code: Arc::clone(&p.code),
                meta: p.file.meta.clone(),
            })),
            None => Err(RuntimeError::Plugin {
                message: format!("Plugin {} not found", instance.record.plugin),
                detail: None,
            }),
        }
    }

    /// The code of the instance's plugin as it is now.
    pub(super) fn code_of_instance(&self, id: &str) -> Option<Arc<dyn LoadedPlugin>> {
        let state = lock(&self.state);
        let instance = state.instances.get(id)?;
        state
            .plugins
            .get(&instance.record.plugin)
            .map(|p| Arc::clone(&p.code))
    }

    /// Decides where an instance's database is (recording the engine the first time, as
    /// maubot does) and prepares it.
    pub(super) async fn place_database(
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

    /// A config from the API, stored and handed to the running plugin by the supervisor, in
    /// order with the configs the plugin saves itself.
    pub(super) async fn configure(&self, id: &str, config: String) -> Result<()> {
        self.ask(id, |done| Command::Configure { config, done })
            .await
            .unwrap_or(Err(super::Error::InstanceNotFound))
    }
}
