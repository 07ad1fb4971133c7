//! The Python plugin host: maubot's Python plugins, unmodified, each plugin in a worker process
//! of its own (all its instances together). The worker starts with the plugin's first running
//! instance and stops with its last, so that plugins nobody uses cost no memory.
//!
//! A worker that crashes or stops answering is killed; its instances are reported failed, and
//! the worker is started again with backoff (1 s doubling to 60 s) with the same instances.

mod env;
mod in_flight;
mod interpreter;
mod packages;
mod process;
mod protocol;
mod restart;
mod sandbox;
mod worker;
mod zygote;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use maubot_types::config::PythonHost;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::env::{Environment, Prepared};
use self::in_flight::Delivery;
use self::protocol::{
    ConfigSave, LogLevel, LogRecord, MatrixCall, Notification, ToWorker, WorkerRequest,
};
use self::restart::Restart;
use self::sandbox::{Grants, Sandbox};
use self::worker::{Inbound, Worker};
use self::zygote::Zygotes;
use super::{
    InstanceStart, LoadedPlugin, PluginCode, PluginRuntime, RuntimeError, RuntimeHost, SECURITY,
    Started, WebRequest, WebResponse,
};
use crate::sync::lock;

pub use worker::PROTOCOL_VERSION;

/// Prepares the Python environment of `settings` (as the first plugin start would) and returns
/// its interpreter. For tests and benchmarks that run the plugin host's Python directly.
pub async fn prepare_environment(
    settings: &PythonHost,
) -> Result<std::path::PathBuf, RuntimeError> {
    Ok(Environment::new(settings.clone()).ensure().await?.python)
}

const LOG: &str = "maubot.host";
/// Debug timings (for benchmarks), as `crate::plugins` logs them: per new worker,
/// `worker_start_us`, from the request for it to its plugin being loaded, of which
/// `prepare_us` before the fork (its sandbox, and the zygote's start for the first worker).
const TIMING: &str = "maubot.timing";
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A worker that ran this long without trouble starts the backoff afresh.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// The Python runtime: one environment for all plugins.
#[derive(Debug)]
pub struct PythonRuntime {
    settings: PythonHost,
    env: Arc<Environment>,
    zygotes: Arc<Zygotes>,
}

impl PythonRuntime {
    pub fn new(settings: PythonHost) -> Self {
        Self {
            env: Arc::new(Environment::new(settings.clone())),
            zygotes: Arc::new(Zygotes::new(settings.zygote)),
            settings,
        }
    }
}

impl PluginRuntime for PythonRuntime {
    fn prepare(&self, code: PluginCode, host: Arc<dyn RuntimeHost>) -> Arc<dyn LoadedPlugin> {
        Arc::new_cyclic(|this| PythonPlugin {
            this: this.clone(),
            code,
            host,
            env: Arc::clone(&self.env),
            zygotes: Arc::clone(&self.zygotes),
            settings: self.settings.clone(),
            ops: tokio::sync::Mutex::new(Backoff::default()),
            worker: Mutex::new(None),
            running: Mutex::new(BTreeMap::new()),
            restarting: Mutex::new(BTreeMap::new()),
            dropped: AtomicU64::new(0),
            watchers: TaskTracker::new(),
            unloaded: CancellationToken::new(),
            admitted: Mutex::new(BTreeSet::new()),
            served: Mutex::new(BTreeSet::new()),
            granted: Mutex::new(None),
        })
    }
}

#[derive(Debug, Default)]
struct Backoff {
    next: Option<Duration>,
}

/// One plugin's worker and the instances that should be running in it.
#[derive(Debug)]
struct PythonPlugin {
    this: Weak<PythonPlugin>,
    code: PluginCode,
    host: Arc<dyn RuntimeHost>,
    env: Arc<Environment>,
    zygotes: Arc<Zygotes>,
    settings: PythonHost,
    /// Serialises starting, stopping and restarting.
    ops: tokio::sync::Mutex<Backoff>,
    worker: Mutex<Option<Arc<Worker>>>,
    /// Instances running in the current worker, with what they were started with.
    running: Mutex<BTreeMap<String, InstanceStart>>,
    /// Instances of a worker that died, waiting to be started in the next one.
    restarting: Mutex<BTreeMap<String, Restart>>,
    /// Events dropped because the worker had too many unfinished (for the log).
    dropped: AtomicU64,
    /// The workers' liveness checks and restarts, ended by `unload`.
    watchers: TaskTracker,
    unloaded: CancellationToken,
    /// The instances the worker may act for: from the start request until the stop's answer
    /// (a plugin makes requests and saves its config in `start()` and `stop()` too). Whatever
    /// the worker names, it acts for these only.
    admitted: Mutex<BTreeSet<String>>,
    /// Every instance ever admitted: a record its leftover tasks log after its stop is the
    /// plugin's, not an attack.
    served: Mutex<BTreeSet<String>>,
    /// The database files the current worker's sandbox grants; `None` without a sandbox.
    granted: Mutex<Option<BTreeSet<PathBuf>>>,
}

/// The package of maubot's container image whose module `err` says is missing.
fn missing_image_package(err: &RuntimeError) -> Option<&'static str> {
    let text = format!("{err}\n{}", err.detail().unwrap_or_default());
    packages::missing_module(&text).and_then(packages::image_package_for)
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

fn seconds(value: f64) -> Duration {
    Duration::try_from_secs_f64(value).unwrap_or(Duration::from_secs(60))
}

impl PythonPlugin {
    fn id(&self) -> &str {
        self.code.meta.id.as_str()
    }

    /// No instance runs or waits to run again: the worker can go.
    fn idle(&self) -> bool {
        lock(&self.running).is_empty() && lock(&self.restarting).is_empty()
    }

    /// Whether the worker may act for `instance_id`; a request naming another instance is
    /// logged as the attempt to cross the plugin's boundary it is.
    fn admits(&self, instance_id: &str, what: &str) -> bool {
        let admitted = lock(&self.admitted).contains(instance_id);
        if !admitted {
            tracing::warn!(
                target: SECURITY, plugin = %self.id(), instance = ?instance_id, what,
                "Refused a plugin's request for an instance it does not run"
            );
        }
        admitted
    }

    /// The instance a log record files under: the one it names if the worker runs it. Naming an
    /// instance the plugin never ran is an attempt to cross the boundary; a stopped instance's
    /// leftover tasks are just the plugin's.
    fn logs_for<'a>(&self, named: Option<&'a str>) -> Option<&'a str> {
        let named = named?;
        if lock(&self.admitted).contains(named) {
            return Some(named);
        }
        if !lock(&self.served).contains(named) {
            self.admits(named, "log");
        }
        None
    }

    fn current_worker(&self) -> Option<Arc<Worker>> {
        lock(&self.worker).clone().filter(|w| !w.is_dead())
    }

    /// The running worker, or a new one with the plugin loaded. Call with `ops` held.
    async fn worker(&self) -> Result<Arc<Worker>, RuntimeError> {
        if let Some(worker) = self.current_worker() {
            return Ok(worker);
        }
        let base = self.env.ensure().await?;
        let meta = &self.code.meta;
        let mut installed = BTreeSet::new();
        loop {
            let prepared = base
                .for_plugin(self.id(), &meta.dependencies, &meta.soft_dependencies)
                .await?;
            let err = match self.spawn_loaded(&prepared).await {
                Ok(worker) => return Ok(worker),
                Err(err) => err,
            };
            // A plugin written for maubot's container image imports a package it ships
            // without declaring it: install that package, then load once more.
            match missing_image_package(&err) {
                Some(package) if installed.insert(package) => {
                    base.install_image_package(self.id(), package).await?;
                }
                _ => return Err(err),
            }
        }
    }

    /// A new worker in the environment `prepared`, with the plugin loaded.
    async fn spawn_loaded(&self, prepared: &Prepared) -> Result<Arc<Worker>, RuntimeError> {
        let requested = Instant::now();
        let inbound: Arc<dyn Inbound> = Arc::new(Callbacks {
            plugin: self.this.clone(),
        });
        let home = tempfile::Builder::new()
            .prefix("maubot-worker-")
            .tempdir()
            .map_err(|e| {
                RuntimeError::Unavailable(format!(
                    "cannot create the worker's temporary folder: {e}"
                ))
            })?;
        let databases = self.host.database_files().await;
        let sandbox = if self.settings.sandbox {
            let mut grants =
                Grants::system(&self.settings.sandbox_read, &self.settings.sandbox_write);
            grants.read.extend(prepared.readable());
            grants.read.push(self.code.path.clone());
            grants.write_files.extend(databases.iter().cloned());
            grants.write_dirs.push(home.path().to_owned());
            Sandbox::new(&grants).map_err(|e| {
                RuntimeError::Unavailable(format!("cannot set up the worker's sandbox: {e}"))
            })?
        } else {
            None
        };
        *lock(&self.granted) = sandbox.is_some().then(|| databases.into_iter().collect());
        let base = self.env.ensure().await?;
        let zygote = self.zygotes.get(&base).await;
        let forking = Instant::now();
        let worker = Worker::spawn(
            prepared,
            self.id(),
            inbound,
            home,
            sandbox.as_ref(),
            zygote.as_deref(),
        )
        .await?;
        let load = ToWorker::Load {
            path: &self.code.path,
            meta: self.code.meta.to_json(),
        };
        if let Err(err) = worker
            .request_within(
                &load,
                seconds(self.settings.start_timeout),
                "Loading the plugin",
            )
            .await
        {
            worker.shut_down().await;
            return Err(err);
        }
        tracing::debug!(
            target: TIMING, plugin = %self.id(), zygote = zygote.is_some(),
            worker_start_us = micros(requested.elapsed()),
            prepare_us = micros(forking.saturating_duration_since(requested)),
            "Python worker started and plugin loaded"
        );
        *lock(&self.worker) = Some(Arc::clone(&worker));
        self.spawn_watchers(&worker);
        Ok(worker)
    }

    /// Stops an instance in `worker` (the plugin's own `stop()` errors are only logged).
    async fn stop_in(&self, worker: &Worker, instance_id: &str) {
        let what = format!("Stopping instance {instance_id}");
        let stop = ToWorker::Stop { instance_id };
        if let Err(err) = worker
            .request_within(&stop, seconds(self.settings.start_timeout), &what)
            .await
        {
            tracing::warn!(target: LOG, plugin = %self.id(), instance = %instance_id, error = %err, "Stopping an instance failed");
        }
        lock(&self.admitted).remove(instance_id);
    }

    /// Whether the current worker's sandbox grants `instance`'s database (an instance created,
    /// renamed or moved to this plugin after the worker started is not granted).
    fn sandbox_grants(&self, instance: &InstanceStart) -> bool {
        let file = instance.database.as_ref().and_then(|db| db.sqlite_file());
        match (lock(&self.granted).as_ref(), file) {
            (Some(granted), Some(file)) => granted.contains(file),
            _ => true,
        }
    }

    /// Replaces `old` by a worker whose sandbox grants every database of the plugin's instances
    /// as they are now, and starts the instances that ran in `old` in it. Call with `ops` held.
    async fn respawn(&self, old: Arc<Worker>) -> Result<Arc<Worker>, RuntimeError> {
        tracing::info!(target: LOG, plugin = %self.id(), "Restarting the Python worker to grant a new instance's database");
        let moving: Vec<InstanceStart> = std::mem::take(&mut *lock(&self.running))
            .into_values()
            .collect();
        for instance in &moving {
            self.stop_in(&old, &instance.instance_id).await;
        }
        *lock(&self.worker) = None;
        old.shut_down().await;
        let worker = match self.worker().await {
            Ok(worker) => worker,
            Err(err) => {
                for instance in moving {
                    self.host
                        .instance_gave_up(&instance.instance_id, err.clone());
                }
                return Err(err);
            }
        };
        for instance in moving {
            let id = instance.instance_id.clone();
            if let Err(err) = self.start_in(&worker, instance).await {
                self.host.instance_gave_up(&id, err);
            }
        }
        Ok(worker)
    }

    /// Lets the worker go when no instance runs in it or waits for it.
    async fn release_if_idle(&self, worker: &Worker) {
        if self.idle() {
            worker.shut_down().await;
            *lock(&self.worker) = None;
        }
    }

    async fn start_in(
        &self,
        worker: &Worker,
        instance: InstanceStart,
    ) -> Result<Started, RuntimeError> {
        let start = ToWorker::Start(protocol::Start::of(&instance));
        let what = format!("Starting instance {}", instance.instance_id);
        lock(&self.admitted).insert(instance.instance_id.clone());
        lock(&self.served).insert(instance.instance_id.clone());
        let result = worker
            .request_within(&start, seconds(self.settings.start_timeout), &what)
            .await
            // The worker died during the start: most likely the plugin's start() blocked it, so
            // this counts as the plugin's failure (the instance gets disabled).
            .map_err(|err| match err {
                RuntimeError::Unavailable(reason) => {
                    RuntimeError::Timeout(format!("{what} did not finish: {reason}"))
                }
                other => other,
            });
        let result = match result {
            Ok(result) => result,
            Err(err) => {
                lock(&self.admitted).remove(&instance.instance_id);
                return Err(err);
            }
        };
        lock(&self.running).insert(instance.instance_id.clone(), instance);
        let answer: protocol::Started = serde_json::from_value(result).unwrap_or_default();
        Ok(Started {
            base_config: answer.base_config,
        })
    }
}

#[async_trait]
impl LoadedPlugin for PythonPlugin {
    async fn load(&self) -> Result<(), RuntimeError> {
        let _ops = self.ops.lock().await;
        let worker = self.worker().await?;
        self.release_if_idle(&worker).await;
        Ok(())
    }

    async fn start(&self, instance: InstanceStart) -> Result<Started, RuntimeError> {
        let _ops = self.ops.lock().await;
        lock(&self.restarting).remove(&instance.instance_id);
        let mut worker = self.worker().await?;
        if lock(&self.running).remove(&instance.instance_id).is_some() {
            // Started again: stopped first, so that the plugin starts afresh.
            self.stop_in(&worker, &instance.instance_id).await;
        }
        if !self.sandbox_grants(&instance) {
            worker = self.respawn(worker).await?;
        }
        let mut result = self.start_in(&worker, instance.clone()).await;
        // Imported in `start()` (or the driver of a legacy database on PostgreSQL): a package
        // of maubot's container image is installed, and the start tried once more.
        if let Err(err) = &result
            && let Some(package) = missing_image_package(err)
        {
            self.env
                .ensure()
                .await?
                .install_image_package(self.id(), package)
                .await?;
            worker = self.respawn(worker).await?;
            result = self.start_in(&worker, instance).await;
        }
        if result.is_err() {
            self.release_if_idle(&worker).await;
        }
        result
    }

    async fn stop(&self, instance_id: &str) {
        let _ops = self.ops.lock().await;
        lock(&self.restarting).remove(instance_id);
        let was_running = lock(&self.running).remove(instance_id).is_some();
        let Some(worker) = self.current_worker() else {
            return;
        };
        if was_running {
            self.stop_in(&worker, instance_id).await;
        }
        self.release_if_idle(&worker).await;
    }

    fn deliver(&self, instance_id: &str, event: Arc<Value>) {
        self.hand_over(instance_id, Delivery::new(event));
    }

    async fn web_request(
        &self,
        instance_id: &str,
        request: WebRequest,
    ) -> Result<WebResponse, RuntimeError> {
        let worker = self
            .current_worker()
            .filter(|_| lock(&self.running).contains_key(instance_id))
            .ok_or_else(|| RuntimeError::Unavailable("the instance is not running".into()))?;
        let base64 = base64::engine::general_purpose::STANDARD;
        let message = ToWorker::WebRequest {
            instance_id,
            method: &request.method,
            path: &request.path,
            query_string: &request.query_string,
            headers: &request.headers,
            body_base64: base64.encode(&request.body),
            remote: request.remote.as_deref(),
        };
        // No kill on a slow handler: the liveness checks catch a blocked worker.
        let answer = tokio::time::timeout(
            seconds(self.settings.start_timeout),
            worker.request(&message),
        )
        .await
        .map_err(|_| RuntimeError::Timeout("the web app did not answer in time".into()))??;
        let answer: protocol::WebAnswer =
            serde_json::from_value(answer).map_err(|e| RuntimeError::Plugin {
                message: format!("The plugin's web app answered in a wrong shape: {e}"),
                detail: None,
            })?;
        Ok(WebResponse {
            status: answer.status,
            headers: answer.headers,
            body: base64.decode(&answer.body_base64).unwrap_or_default(),
        })
    }

    async fn config_updated(&self, instance_id: &str, config: &str) -> Result<(), RuntimeError> {
        if let Some(restart) = lock(&self.restarting).get_mut(instance_id) {
            restart.start.config = config.to_owned();
        }
        if let Some(instance) = lock(&self.running).get_mut(instance_id) {
            instance.config = config.to_owned();
        } else {
            return Ok(());
        }
        let Some(worker) = self.current_worker() else {
            return Ok(());
        };
        let message = ToWorker::ConfigUpdated {
            instance_id,
            config,
        };
        let what = format!("The config update of instance {instance_id}");
        worker
            .request_within(&message, seconds(self.settings.start_timeout), &what)
            .await
            .map(|_| ())
    }

    async fn unload(&self) {
        // First, as a restart under way waits for `ops`.
        self.unloaded.cancel();
        self.watchers.close();
        self.watchers.wait().await;
        let _ops = self.ops.lock().await;
        lock(&self.running).clear();
        lock(&self.restarting).clear();
        lock(&self.admitted).clear();
        let worker = lock(&self.worker).take();
        if let Some(worker) = worker {
            worker.shut_down().await;
        }
    }
}

/// What the worker asks of the server, passed on to the plugin host for the instances the
/// worker runs, and nothing else.
struct Callbacks {
    plugin: Weak<PythonPlugin>,
}

#[async_trait]
impl Inbound for Callbacks {
    async fn request(&self, request: WorkerRequest) -> Result<Value, String> {
        let plugin = self.plugin.upgrade().ok_or("the plugin is gone")?;
        match request {
            WorkerRequest::Matrix(MatrixCall {
                instance_id,
                request,
            }) => {
                if !plugin.admits(&instance_id, "matrix") {
                    return Err(format!(
                        "instance {instance_id:?} does not run in this plugin's worker"
                    ));
                }
                let response = plugin.host.matrix_request(&instance_id, request).await;
                serde_json::to_value(response).map_err(|e| e.to_string())
            }
        }
    }

    fn notify(&self, notification: Notification) {
        let Some(plugin) = self.plugin.upgrade() else {
            return;
        };
        match notification {
            Notification::ConfigSave(ConfigSave {
                instance_id,
                config,
            }) => {
                if !plugin.admits(&instance_id, "config_save") {
                    return;
                }
                if let Some(instance) = lock(&plugin.running).get_mut(&instance_id) {
                    instance.config.clone_from(&config);
                }
                plugin.host.config_saved(&instance_id, config);
            }
            Notification::Log(record) => {
                let instance = plugin.logs_for(record.instance_id.as_deref());
                log_record(plugin.id(), instance, &record);
            }
            // The connection's own.
            Notification::Hello(_) | Notification::EventsRead { .. } => {}
        }
    }
}

/// A Python log record: under `maubot.instance.<id>` when it belongs to one of the worker's
/// instances, else under `maubot.plugin.<plugin id>`. The Python logger's name is only a field,
/// so that a plugin cannot log as the server.
fn log_record(plugin_id: &str, instance: Option<&str>, record: &LogRecord) {
    let python_logger = record.logger.as_str();
    let message = &record.message;
    let text = match &record.exception {
        Some(exception) => format!("{message}\n{exception}"),
        None => message.clone(),
    };
    // tracing's levels and targets are static: one call site for each.
    macro_rules! at_level {
        ($($event:tt)*) => {
            match record.level {
                LogLevel::Debug => tracing::debug!($($event)*),
                LogLevel::Info => tracing::info!($($event)*),
                LogLevel::Warning => tracing::warn!($($event)*),
                LogLevel::Error => tracing::error!($($event)*),
            }
        };
    }
    match instance {
        Some(instance) => at_level!(
            target: "maubot.instance", plugin = %plugin_id, instance, python_logger, "{text}"
        ),
        None => at_level!(target: "maubot.plugin", plugin = %plugin_id, python_logger, "{text}"),
    }
}
