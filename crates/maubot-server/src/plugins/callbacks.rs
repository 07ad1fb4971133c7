//! The runtimes' way back into the plugin host: what a plugin's code asks of the server (its
//! instances' Matrix requests, config saves, database files) and what a runtime reports (an
//! instance failed, runs again, or was given up), each checked against the plugin it comes from.

use std::path::PathBuf;
use std::sync::{Arc, Weak};

use async_trait::async_trait;

use super::{Instance, LOG, PluginHost, Started, TIMING, database, store};
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
    /// Runs `work` on the instance as a task of the host, under the lock of changes, so that it
    /// is ordered with the API's changes and joined at shutdown.
    fn under_ops<F, W>(&self, instance_id: &str, work: W)
    where
        W: FnOnce(Arc<PluginHost>, String) -> F + Send + 'static,
        F: Future<Output = ()> + Send,
    {
        let Some(host) = self.host.upgrade() else {
            return;
        };
        let id = instance_id.to_owned();
        let tasks = host.tasks.clone();
        tasks.spawn(async move {
            let _ops = host.ops.lock().await;
            work(Arc::clone(&host), id).await;
        });
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
            // The runtime brings it back by itself: what arrives meanwhile waits for it (as a
            // plugin switching code does), so a crash costs no event that came after it.
            if let Some(pump) = &instance.pump {
                pump.hold();
            }
            instance.failure = Some(reason);
        }
    }

    fn instance_recovered(&self, instance_id: &str, started: Started) {
        // An API stop or delete meanwhile wins, and so does a shutdown.
        self.under_ops(instance_id, |host, id| async move {
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
                // Stopped, disabled or without its client during the restart: it must not run,
                // and what its pump held goes.
                None => {
                    if let Some(instance) = lock(&host.state).instances.get_mut(&id)
                        && !instance.started
                    {
                        instance.stop_pump();
                    }
                    code.stop(&id).await;
                }
            }
        });
    }

    fn instance_gave_up(&self, instance_id: &str, error: RuntimeError) {
        self.under_ops(instance_id, |host, id| async move {
            host.start_failed(&id, &error, true).await;
        });
    }
}
