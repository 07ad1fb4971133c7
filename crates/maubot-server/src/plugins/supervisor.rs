//! One task per instance, the only one to change what runs: whether it is started, why it
//! failed, the pump of its bot's events. The API (through the plugin host) and the runtime
//! (through its callbacks) send it commands on a bounded channel, and it carries them out in
//! the order they came, so a runtime's report of a crash or recovery is ordered with the API's
//! stops and starts without a lock, and a slow start holds up no other instance.

use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{mpsc, oneshot};

use super::pump::{EventClock, Pump};
use super::{LOG, PluginHost, Result};
use crate::runtime::{InstanceStart, LoadedPlugin, RuntimeError, Started};
use crate::sync::lock;

/// Commands waiting for an instance's supervisor. The API sends one at a time per instance
/// (its changes of an instance are serialised), a runtime reports at most a few per crash, and
/// a plugin's config saves wait as one, so the bound is not reached in practice; a report that
/// finds it full is logged.
const COMMANDS_MAX: usize = 32;

/// What an instance's supervisor is asked to do.
#[derive(Debug)]
pub(super) enum Command {
    /// Start if enabled and not running; with `disable_on_failure`, a failure of the plugin
    /// disables the instance, as in maubot.
    Start {
        disable_on_failure: bool,
        done: oneshot::Sender<std::result::Result<(), RuntimeError>>,
    },
    /// Stop if running (answering whether it ran); with `keep_events`, the pump holds the bot's
    /// events for the next start instead of ending.
    Stop {
        keep_events: bool,
        done: oneshot::Sender<bool>,
    },
    /// A config from the API: stored, then handed to the plugin if it runs.
    Configure {
        config: String,
        done: oneshot::Sender<Result<()>>,
    },
    /// The instance was renamed (while stopped).
    Renamed { to: String },
    /// Stop, then end the supervisor (server shutdown).
    Shutdown { done: oneshot::Sender<()> },
    /// The plugin saved its config (from the runtime): the latest is in `Handle::saved_config`.
    ConfigSaved,
    /// The instance stopped running through no request of ours (from the runtime).
    Failed { reason: String },
    /// The runtime brought the instance back after a failure.
    Recovered { started: Started },
    /// The runtime could not bring the instance back.
    GaveUp { error: RuntimeError },
}

/// What runs of an instance; written only by its supervisor.
#[derive(Debug, Default, Clone)]
pub struct Status {
    pub started: bool,
    pub failure: Option<String>,
    pub base_config: Option<String>,
    /// Whether the instance's database was opened by this process (maubot's `inst_db`).
    pub database_opened: bool,
}

/// The registry's side of an instance's supervisor.
#[derive(Debug)]
pub(super) struct Handle {
    pub commands: mpsc::Sender<Command>,
    pub status: Arc<Mutex<Status>>,
    /// When the pump last received an event (only kept while `maubot.timing` logs DEBUG).
    pub last_event: Arc<EventClock>,
    /// One API change of the instance at a time: each sees the state the last one left.
    pub changes: Arc<tokio::sync::Mutex<()>>,
    /// The config the plugin saved last and the supervisor has not stored yet: a plugin that
    /// saves in a loop takes one place in the queue, and the last save wins.
    saved_config: Arc<Mutex<Option<String>>>,
}

impl Handle {
    /// Starts the supervisor of instance `id` as a task of `tasks`.
    pub fn spawn(id: &str, host: Weak<PluginHost>, tasks: &tokio_util::task::TaskTracker) -> Self {
        let (handle, receiver) = Self::new();
        let supervisor = Supervisor {
            id: id.to_owned(),
            host,
            status: Arc::clone(&handle.status),
            last_event: Arc::clone(&handle.last_event),
            saved_config: Arc::clone(&handle.saved_config),
            pump: None,
        };
        tasks.spawn(supervisor.run(receiver));
        handle
    }

    fn new() -> (Self, mpsc::Receiver<Command>) {
        let (commands, receiver) = mpsc::channel(COMMANDS_MAX);
        let handle = Handle {
            commands,
            status: Arc::default(),
            last_event: Arc::default(),
            changes: Arc::default(),
            saved_config: Arc::default(),
        };
        (handle, receiver)
    }

    pub fn status(&self) -> Status {
        lock(&self.status).clone()
    }

    /// A runtime's report: it cannot wait, so a full queue loses it, with a warning. (After
    /// shutdown or a delete there is nobody left to tell.)
    pub fn report(&self, id: &str, command: Command) {
        if let Err(mpsc::error::TrySendError::Full(command)) = self.commands.try_send(command) {
            tracing::warn!(target: LOG, instance = %id, ?command, "A runtime report for the instance was dropped: its supervisor is not keeping up");
        }
    }

    /// The plugin saved its config.
    pub fn config_saved(&self, id: &str, config: String) {
        if lock(&self.saved_config).replace(config).is_none() {
            self.report(id, Command::ConfigSaved);
        }
    }
}

struct Supervisor {
    id: String,
    host: Weak<PluginHost>,
    status: Arc<Mutex<Status>>,
    last_event: Arc<EventClock>,
    saved_config: Arc<Mutex<Option<String>>>,
    /// Hands the bot's events to the runtime while started (or holds them).
    pump: Option<Pump>,
}

impl Supervisor {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        while let Some(command) = commands.recv().await {
            let Some(host) = self.host.upgrade() else {
                return;
            };
            // A reply nobody waits for any more (its request was cancelled) is no error.
            match command {
                Command::Start {
                    disable_on_failure,
                    done,
                } => {
                    let _ = done.send(self.start(&host, disable_on_failure).await);
                }
                Command::Stop { keep_events, done } => {
                    let _ = done.send(self.stop(&host, keep_events).await);
                }
                Command::Configure { config, done } => {
                    let _ = done.send(self.configure(&host, config).await);
                }
                Command::Renamed { to } => self.id = to,
                Command::Shutdown { done } => {
                    self.stop(&host, false).await;
                    let _ = done.send(());
                    return;
                }
                Command::ConfigSaved => self.config_saved(&host).await,
                Command::Failed { reason } => self.failed(reason),
                Command::Recovered { started } => self.recovered(&host, started).await,
                Command::GaveUp { error } => self.gave_up(&host, error).await,
            }
        }
    }

    async fn end_pump(&mut self) {
        if let Some(pump) = self.pump.take() {
            pump.end().await;
        }
    }

    fn started(&self) -> bool {
        lock(&self.status).started
    }

    async fn start(
        &mut self,
        host: &PluginHost,
        disable_on_failure: bool,
    ) -> std::result::Result<(), RuntimeError> {
        if self.started() {
            return Ok(());
        }
        let prepared = match host.start_inputs(&self.id) {
            Ok(Some(prepared)) => prepared,
            Ok(None) => return Ok(()),
            Err(reason) => {
                self.start_failed(host, &reason, true).await;
                return Err(reason);
            }
        };
        let super::lifecycle::StartInputs { record, code, meta } = prepared;
        let Some(bot) = host.clients.get(&record.primary_user).await else {
            let reason = RuntimeError::Plugin {
                message: format!("Client {} not found", record.primary_user),
                detail: None,
            };
            self.start_failed(host, &reason, true).await;
            return Err(reason);
        };
        let mut database = None;
        if meta.database {
            match host.place_database(&self.id, &record, &meta).await {
                Ok(placement) => database = Some(placement),
                Err(err) => {
                    let reason = RuntimeError::Plugin {
                        message: err.to_string(),
                        detail: None,
                    };
                    self.start_failed(host, &reason, disable_on_failure).await;
                    return Err(reason);
                }
            }
        }
        let bot_record = bot.record();
        let start = InstanceStart {
            instance_id: self.id.clone(),
            user_id: bot_record.id.clone(),
            device_id: bot_record.device_id.clone(),
            homeserver: bot_record.homeserver.clone(),
            config: record.config.clone(),
            database: database.clone(),
            webapp_url: meta.webapp.then(|| host.webapp_url(&self.id)),
        };
        match code.start(start).await {
            Ok(started) => {
                self.mark_started(started, database.is_some(), bot, code);
                tracing::info!(target: LOG, instance = %self.id, "Instance started");
                Ok(())
            }
            Err(err) => {
                self.start_failed(host, &err, disable_on_failure).await;
                Err(err)
            }
        }
    }

    fn mark_started(
        &mut self,
        started: Started,
        database_opened: bool,
        bot: Arc<crate::client::Bot>,
        code: Arc<dyn LoadedPlugin>,
    ) {
        {
            let mut status = lock(&self.status);
            status.started = true;
            status.failure = None;
            status.base_config = started.base_config;
            status.database_opened |= database_opened;
        }
        match self.pump.as_ref().filter(|pump| pump.is_held()) {
            // Started again (on new code, or after a crash): what arrived meanwhile goes to it.
            Some(pump) => pump.release_to(code),
            None => {
                self.pump = Some(Pump::spawn(
                    &self.id,
                    bot,
                    code,
                    Arc::clone(&self.last_event),
                ));
            }
        }
    }

    async fn start_failed(&mut self, host: &PluginHost, err: &RuntimeError, disable: bool) {
        tracing::error!(
            target: LOG, instance = %self.id, error = %err, detail = err.detail().unwrap_or(""),
            "Failed to start instance"
        );
        let disable = disable && !matches!(err, RuntimeError::Unavailable(_));
        {
            let mut status = lock(&self.status);
            status.failure = Some(err.to_string());
            status.started = false;
        }
        self.end_pump().await;
        if disable {
            let _ = host.change(&self.id, |r| r.enabled = false).await;
        }
    }

    async fn stop(&mut self, host: &PluginHost, keep_events: bool) -> bool {
        let was_started = {
            let mut status = lock(&self.status);
            // Stopped on purpose: nothing is wrong that should be reported, and a restart of a
            // crashed worker under way must not bring it back (see `recovered`).
            status.failure = None;
            std::mem::replace(&mut status.started, false)
        };
        match self.pump.as_ref() {
            Some(pump) if keep_events => pump.hold(),
            _ => self.end_pump().await,
        }
        let Some(code) = host.code_of_instance(&self.id) else {
            return false;
        };
        // Also when not started here: after a crash the runtime may be about to start it
        // again, and must not.
        code.stop(&self.id).await;
        if was_started {
            tracing::info!(target: LOG, instance = %self.id, "Instance stopped");
        }
        was_started
    }

    async fn configure(&mut self, host: &PluginHost, config: String) -> Result<()> {
        host.change(&self.id, |r| r.config = config.clone()).await?;
        // As in maubot, a running plugin hears of every config the API stores.
        if self.started()
            && let Some(code) = host.code_of_instance(&self.id)
            && let Err(err) = code.config_updated(&self.id, &config).await
        {
            tracing::error!(target: LOG, instance = %self.id, error = %err, "The plugin failed to apply its new config");
        }
        Ok(())
    }

    async fn config_saved(&mut self, host: &PluginHost) {
        let Some(config) = lock(&self.saved_config).take() else {
            return;
        };
        if host.record(&self.id).is_ok_and(|r| r.config == config) {
            return;
        }
        if let Err(err) = host.change(&self.id, |r| r.config = config).await {
            tracing::error!(target: LOG, instance = %self.id, error = %err, "Could not store the config the plugin saved");
        }
    }

    fn failed(&mut self, reason: String) {
        {
            let mut status = lock(&self.status);
            if !status.started {
                // Stopped meanwhile: there is nothing to bring back.
                return;
            }
            tracing::error!(target: LOG, instance = %self.id, reason = %reason, "Instance failed");
            status.started = false;
            status.failure = Some(reason);
        }
        // The runtime brings it back by itself: what arrives meanwhile waits for it (as for a
        // plugin switching code), so a crash costs no event that came after it.
        if let Some(pump) = &self.pump {
            pump.hold();
        }
    }

    /// Whether the instance failed and waits for the runtime to bring it back.
    fn waiting(&self) -> bool {
        let status = lock(&self.status);
        !status.started && status.failure.is_some()
    }

    async fn gave_up(&mut self, host: &PluginHost, error: RuntimeError) {
        // Stopped or started anew meanwhile: the failed restart changes nothing.
        if self.waiting() {
            self.start_failed(host, &error, true).await;
        }
    }

    async fn recovered(&mut self, host: &PluginHost, started: Started) {
        // Only an instance still waiting to run again comes back: one stopped on purpose
        // meanwhile must stop in the runtime too; one started anew runs.
        if self.started() {
            return;
        }
        let bot = match host.record(&self.id) {
            Ok(record) if record.enabled && self.waiting() && !host.is_stopping() => {
                host.clients.get(&record.primary_user).await
            }
            _ => None,
        };
        let code = host.code_of_instance(&self.id);
        match (bot, code) {
            (Some(bot), Some(code)) => {
                self.mark_started(started, false, bot, code);
                tracing::info!(target: LOG, instance = %self.id, "Instance running again");
            }
            // Stopped, disabled or without its client during the restart: it must not run,
            // and what its pump held goes.
            (_, code) => {
                self.end_pump().await;
                if let Some(code) = code {
                    code.stop(&self.id).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_saves_in_a_loop_take_one_place_and_the_last_wins() {
        let (handle, mut receiver) = Handle::new();
        for n in 0..1000 {
            handle.config_saved("i", format!("n: {n}"));
        }
        handle.report(
            "i",
            Command::Failed {
                reason: "crash".into(),
            },
        );
        assert!(matches!(receiver.try_recv(), Ok(Command::ConfigSaved)));
        assert!(matches!(receiver.try_recv(), Ok(Command::Failed { .. })));
        assert!(receiver.try_recv().is_err());
        assert_eq!(lock(&handle.saved_config).take().as_deref(), Some("n: 999"));
    }
}
