//! One WebAssembly instance: a task that owns its store and handles its commands (events,
//! timers, web requests, config changes) one at a time, from a bounded queue. Every call into
//! the plugin runs with a fuel budget, a wall-clock limit and the store's memory limit; a trap
//! drops the store, and the instance is made again, after a backoff, with the events that
//! waited meanwhile.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use maubot_types::config::WasmHost;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use wasmtime::{Engine, Store, StoreLimitsBuilder, UpdateDeadline};

use super::bindings::v0_1_0::{PluginPre, types};
use super::host::{SendBudget, State, StateParts};
use super::storage::Storage;
use crate::runtime::{InstanceStart, RuntimeError, RuntimeHost, WebRequest, WebResponse};

const LOG: &str = "maubot.instance";
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// An instance that ran this long without a trap starts its backoff afresh.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// What an instance's task is asked to do.
#[derive(Debug)]
pub enum Command {
    Event(Arc<Value>),
    Timer(u64),
    Web(
        WebRequest,
        oneshot::Sender<Result<WebResponse, RuntimeError>>,
    ),
    ConfigUpdated(String, oneshot::Sender<Result<(), RuntimeError>>),
    Stop(oneshot::Sender<()>),
}

/// Everything an instance is made from, again after a trap.
pub struct Blueprint {
    pub engine: Engine,
    pub pre: PluginPre<State>,
    pub settings: WasmHost,
    pub host: Arc<dyn RuntimeHost>,
    pub http: reqwest::Client,
    pub start: InstanceStart,
}

/// A running instance.
#[derive(Debug)]
pub struct Handle {
    commands: mpsc::Sender<Command>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
    dropped: AtomicU64,
}

impl Handle {
    /// Makes and starts the instance; its task runs from then on. A failing start is the
    /// plugin's failure, and nothing runs.
    pub async fn start(blueprint: Blueprint) -> Result<Handle, RuntimeError> {
        let blueprint = Arc::new(blueprint);
        let (commands, queue) = mpsc::channel(blueprint.settings.queue_length.max(1));
        let live = Live::start(&blueprint, &blueprint.start.config, commands.clone()).await?;
        let task = tokio::spawn(run(live, queue, Arc::clone(&blueprint), commands.clone()));
        Ok(Handle {
            commands,
            task: std::sync::Mutex::new(Some(task)),
            dropped: AtomicU64::new(0),
        })
    }

    /// Queues an event; with the queue full, the event is dropped (and counted in the log).
    pub fn deliver(&self, instance_id: &str, event: Arc<Value>) {
        if let Err(mpsc::error::TrySendError::Full(_)) =
            self.commands.try_send(Command::Event(event))
        {
            crate::metrics::instance(instance_id)
                .dropped
                .fetch_add(1, Ordering::Relaxed);
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped == 1 || dropped.is_power_of_two() {
                tracing::warn!(target: LOG, instance = %instance_id, dropped, "Events are dropped: the instance does not keep up");
            }
        }
    }

    pub async fn web_request(&self, request: WebRequest) -> Result<WebResponse, RuntimeError> {
        let (answer, answered) = oneshot::channel();
        self.send(Command::Web(request, answer)).await?;
        answered.await.unwrap_or_else(|_| Err(gone()))
    }

    pub async fn config_updated(&self, config: String) -> Result<(), RuntimeError> {
        let (answer, answered) = oneshot::channel();
        self.send(Command::ConfigUpdated(config, answer)).await?;
        answered.await.unwrap_or_else(|_| Err(gone()))
    }

    async fn send(&self, command: Command) -> Result<(), RuntimeError> {
        self.commands.send(command).await.map_err(|_| gone())
    }

    /// Stops the instance (the plugin's `stop` runs) and waits for its task.
    pub async fn stop(&self) {
        let (done, stopped) = oneshot::channel();
        if self.commands.send(Command::Stop(done)).await.is_ok() {
            let _ = stopped.await;
        }
        let task = crate::sync::lock(&self.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

fn gone() -> RuntimeError {
    RuntimeError::Unavailable("the instance does not run".into())
}

/// Why a call of the plugin ended its instance.
fn trap_reason(err: &wasmtime::Error) -> String {
    let text = err.to_string();
    let first = text.lines().next().unwrap_or_default();
    let cause = err.root_cause().to_string();
    if first.contains(&cause) || cause.is_empty() {
        first.to_owned()
    } else {
        format!("{first}: {cause}")
    }
}

/// A store with the plugin instantiated in it.
struct Live {
    store: Store<State>,
    plugin: super::bindings::v0_1_0::Plugin,
    started: Instant,
}

impl Live {
    async fn start(
        blueprint: &Blueprint,
        config: &str,
        commands: mpsc::Sender<Command>,
    ) -> Result<Live, RuntimeError> {
        let start = &blueprint.start;
        let storage = match &start.database {
            Some(placement) => Storage::open(placement).await.map_err(|e| {
                RuntimeError::Unavailable(format!("The instance's database cannot be opened: {e}"))
            })?,
            None => Storage::none(),
        };
        let settings = &blueprint.settings;
        let memory = usize::try_from(settings.memory_limit.saturating_mul(1024 * 1024))
            .unwrap_or(usize::MAX);
        let state = State::new(StateParts {
            instance_id: start.instance_id.clone(),
            host: Arc::clone(&blueprint.host),
            config: config.to_owned(),
            storage,
            sends: SendBudget::new(settings.sends_per_second, settings.send_burst),
            http: blueprint.http.clone(),
            commands,
            limits: StoreLimitsBuilder::new()
                .memory_size(memory)
                .instances(8)
                .tables(8)
                .memories(4)
                .trap_on_grow_failure(true)
                .build(),
        });
        let mut store = Store::new(&blueprint.engine, state);
        store.limiter(|state| &mut state.limits);
        let timeout =
            Duration::try_from_secs_f64(settings.call_timeout).unwrap_or(Duration::from_secs(30));
        // Each epoch tick the plugin yields to the executor, so that no call holds a thread
        // for long; past the wall-clock limit the call traps.
        store.epoch_deadline_callback(move |context| {
            if context.data().call_started.elapsed() > timeout {
                Err(wasmtime::Error::msg(format!(
                    "the call did not finish within {} s",
                    timeout.as_secs_f64()
                )))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        let mut live = Live {
            plugin: {
                prepare_call(&mut store, settings.fuel_per_call);
                blueprint
                    .pre
                    .instantiate_async(&mut store)
                    .await
                    .map_err(|e| RuntimeError::Plugin {
                        message: format!(
                            "The plugin could not be instantiated: {}",
                            trap_reason(&e)
                        ),
                        detail: None,
                    })?
            },
            store,
            started: Instant::now(),
        };
        let instance = types::Instance {
            id: start.instance_id.clone(),
            user_id: start.user_id.clone(),
            webapp_url: start.webapp_url.clone(),
        };
        prepare_call(&mut live.store, settings.fuel_per_call);
        let started = live
            .plugin
            .call_start(&mut live.store, &instance, config)
            .await
            .map_err(|e| RuntimeError::Plugin {
                message: format!("The plugin's start failed: {}", trap_reason(&e)),
                detail: None,
            })?;
        started.map_err(|message| RuntimeError::Plugin {
            message,
            detail: None,
        })?;
        Ok(live)
    }

    /// Handles one command; an error is a trap, after which the store is unusable.
    async fn handle(&mut self, command: Command, fuel: u64) -> Result<(), String> {
        prepare_call(&mut self.store, fuel);
        match command {
            Command::Event(event) => {
                let Some(event) = types::RoomEvent::from_json(&event) else {
                    return Ok(());
                };
                self.plugin
                    .call_on_event(&mut self.store, &event)
                    .await
                    .map_err(|e| trap_reason(&e))
            }
            Command::Timer(id) => {
                self.store.data_mut().timers.remove(&id);
                self.plugin
                    .call_on_timer(&mut self.store, id)
                    .await
                    .map_err(|e| trap_reason(&e))
            }
            Command::Web(request, answer) => {
                let request = types::WebRequest {
                    method: request.method,
                    path: request.path,
                    query: request.query_string,
                    headers: request
                        .headers
                        .into_iter()
                        .map(|(name, value)| types::Header { name, value })
                        .collect(),
                    body: request.body,
                };
                match self
                    .plugin
                    .call_web_request(&mut self.store, &request)
                    .await
                {
                    Ok(response) => {
                        let _ = answer.send(Ok(WebResponse {
                            status: response.status,
                            headers: response
                                .headers
                                .into_iter()
                                .map(|h| (h.name, h.value))
                                .collect(),
                            body: response.body,
                        }));
                        Ok(())
                    }
                    Err(err) => {
                        let reason = trap_reason(&err);
                        let _ = answer.send(Err(RuntimeError::Plugin {
                            message: reason.clone(),
                            detail: None,
                        }));
                        Err(reason)
                    }
                }
            }
            Command::ConfigUpdated(config, answer) => {
                self.store.data_mut().config = config.clone();
                match self
                    .plugin
                    .call_config_updated(&mut self.store, &config)
                    .await
                {
                    Ok(result) => {
                        let _ = answer.send(result.map_err(|message| RuntimeError::Plugin {
                            message,
                            detail: None,
                        }));
                        Ok(())
                    }
                    Err(err) => {
                        let reason = trap_reason(&err);
                        let _ = answer.send(Err(RuntimeError::Plugin {
                            message: reason.clone(),
                            detail: None,
                        }));
                        Err(reason)
                    }
                }
            }
            Command::Stop(done) => {
                let _ = done.send(());
                Ok(())
            }
        }
    }

    /// Runs the plugin's `stop` (a trap there is only logged) and closes the database.
    async fn stop(mut self, fuel: u64) {
        prepare_call(&mut self.store, fuel);
        if let Err(err) = self.plugin.call_stop(&mut self.store).await {
            let id = &self.store.data().instance_id;
            tracing::warn!(target: LOG, instance = %id, reason = %trap_reason(&err), "The plugin's stop failed");
        }
        let mut state = self.store.into_data();
        let storage = std::mem::replace(&mut state.storage, Storage::none());
        drop(state);
        storage.close().await;
    }
}

fn prepare_call(store: &mut Store<State>, fuel: u64) {
    let _ = store.set_fuel(fuel);
    store.set_epoch_deadline(1);
    store.data_mut().call_started = Instant::now();
}

/// The instance's task: commands one at a time; after a trap, the instance again.
async fn run(
    mut live: Live,
    mut queue: mpsc::Receiver<Command>,
    blueprint: Arc<Blueprint>,
    commands: mpsc::Sender<Command>,
) {
    let id = blueprint.start.instance_id.clone();
    let counters = crate::metrics::instance(&id);
    let fuel = blueprint.settings.fuel_per_call;
    let mut backoff = BACKOFF_START;
    let mut waiting: VecDeque<Command> = VecDeque::new();
    loop {
        let command = match waiting.pop_front() {
            Some(command) => command,
            None => match queue.recv().await {
                Some(command) => command,
                None => return live.stop(fuel).await,
            },
        };
        if let Command::Stop(done) = command {
            live.stop(fuel).await;
            let _ = done.send(());
            return;
        }
        let event = matches!(command, Command::Event(_));
        let outcome = live.handle(command, fuel).await;
        if event {
            counters.handled.fetch_add(1, Ordering::Relaxed);
            if outcome.is_err() {
                counters.handler_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        let Err(reason) = outcome else {
            continue;
        };
        tracing::warn!(target: LOG, instance = %id, reason = %reason, "The plugin trapped; its instance is made again");
        let config = live.store.data().config.clone();
        if live.started.elapsed() > HEALTHY_AFTER {
            backoff = BACKOFF_START;
        }
        drop(live);
        blueprint
            .host
            .instance_failed(&id, format!("The plugin trapped: {reason}"));
        live = loop {
            match wait(
                backoff,
                &mut queue,
                &mut waiting,
                blueprint.settings.queue_length,
            )
            .await
            {
                Waited::Stop(done) => {
                    let _ = done.send(());
                    return;
                }
                Waited::Elapsed => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
            match Live::start(&blueprint, &config, commands.clone()).await {
                Ok(live) => {
                    blueprint
                        .host
                        .instance_recovered(&id, crate::runtime::Started { base_config: None });
                    break live;
                }
                Err(err @ RuntimeError::Plugin { .. }) => {
                    blueprint.host.instance_gave_up(&id, err);
                    return;
                }
                Err(err) => {
                    tracing::warn!(target: LOG, instance = %id, error = %err, "The instance could not be made again");
                }
            }
        };
    }
}

enum Waited {
    Elapsed,
    Stop(oneshot::Sender<()>),
}

/// Sleeps out a backoff, keeping what arrives meanwhile (up to `bound` commands: events and
/// timers wait; web requests and config changes are answered that the instance restarts).
async fn wait(
    backoff: Duration,
    queue: &mut mpsc::Receiver<Command>,
    waiting: &mut VecDeque<Command>,
    bound: usize,
) -> Waited {
    let sleep = tokio::time::sleep(backoff);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            () = &mut sleep => return Waited::Elapsed,
            command = queue.recv() => match command {
                None => return Waited::Elapsed,
                Some(Command::Stop(done)) => return Waited::Stop(done),
                Some(Command::Web(_, answer)) => {
                    let _ = answer.send(Err(RuntimeError::Unavailable("the instance restarts".into())));
                }
                Some(Command::ConfigUpdated(_, answer)) => {
                    let _ = answer.send(Err(RuntimeError::Unavailable("the instance restarts".into())));
                }
                Some(command) => {
                    if waiting.len() < bound {
                        waiting.push_back(command);
                    }
                }
            },
        }
    }
}
