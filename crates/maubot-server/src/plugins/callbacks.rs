//! The runtimes' way back into the plugin host: what a plugin's code asks of the server (its
//! instances' Matrix requests, config saves, database files) and what a runtime reports (an
//! instance failed, runs again, or was given up), each checked against the plugin it comes from.

use std::path::PathBuf;
use std::sync::{Arc, Weak};

use async_trait::async_trait;

use super::supervisor::Command;
use super::{Instance, LOG, PluginHost, Started, TIMING, database};
use crate::runtime::{self, MatrixRequest, MatrixResponse, RuntimeError, RuntimeHost};
use crate::sync::lock;

/// The runtime's way back into the host, bound to one plugin: what it asks for an instance of
/// another plugin is refused.
#[derive(Debug)]
pub(super) struct Callbacks {
    pub(super) host: Weak<PluginHost>,
    pub(super) plugin: String,
}

impl Callbacks {
    /// Hands a runtime's report to the supervisor of the instance, if it is still this
    /// plugin's (a report about an instance that moved to another plugin or is gone is stale).
    fn report(&self, instance_id: &str, command: Command) {
        let Some(host) = self.host.upgrade() else {
            return;
        };
        let state = lock(&host.state);
        if let Some(instance) = state
            .instances
            .get(instance_id)
            .filter(|i| i.record.plugin == self.plugin)
        {
            instance.handle.report(instance_id, command);
        }
    }

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
                let last = timing.then(|| Arc::clone(&i.handle.last_event));
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
        let state = lock(&host.state);
        if let Some(instance) = state
            .instances
            .get(instance_id)
            .filter(|i| self.owns(i, "config_save"))
        {
            instance.handle.config_saved(instance_id, config);
        }
    }

    fn instance_failed(&self, instance_id: &str, reason: String) {
        self.report(instance_id, Command::Failed { reason });
    }

    fn instance_recovered(&self, instance_id: &str, started: Started) {
        // The supervisor decides: an API stop or delete meanwhile wins, and so does a shutdown.
        self.report(instance_id, Command::Recovered { started });
    }

    fn instance_gave_up(&self, instance_id: &str, error: RuntimeError) {
        self.report(instance_id, Command::GaveUp { error });
    }
}
