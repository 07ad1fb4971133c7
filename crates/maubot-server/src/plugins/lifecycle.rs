//! An instance's life in the runtime: its database placed, started with its bot's events
//! pumped to it, stopped (holding the events for new code if it is replaced), and what a
//! failed start leaves.

use std::sync::Arc;

use maubot_types::plugin::PluginMeta;

use super::pump::Pump;
use super::store::InstanceRecord;
use super::{LOG, PluginHost, database};
use crate::client::Bot;
use crate::runtime::{InstanceStart, LoadedPlugin, RuntimeError, Started};
use crate::sync::lock;

impl PluginHost {
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

    /// Starts an instance if it is enabled and not running. A failure is logged and recorded;
    /// with `disable_on_failure` a failure of the plugin itself also disables the instance, as
    /// in maubot (not when the runtime is unavailable, e.g. no Python: the instance stays enabled
    /// and starts at the next server start or `started: true`).
    pub(super) async fn start_instance(
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

    pub(super) fn mark_started(
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

    pub(super) async fn start_failed(&self, id: &str, err: &RuntimeError, disable: bool) {
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
    pub(super) async fn stop_instance(&self, id: &str) -> bool {
        self.stop_instance_keeping(id, false).await
    }

    /// Stops an instance; with `keep_events`, its pump holds the bot's events for the next
    /// start (on new code) instead of ending.
    pub(super) async fn stop_instance_keeping(&self, id: &str, keep_events: bool) -> bool {
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
