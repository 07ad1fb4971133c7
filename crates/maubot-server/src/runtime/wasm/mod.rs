//! The WebAssembly runtime: plugins that are components of the `maubot:plugin` world
//! (`wit/`), run on wasmtime. Each instance has a store of its own with a memory limit, and
//! every call a fuel budget and a wall-clock limit; the plugin can do only what the world's
//! imports grant, as its own bot and with its own database and config (`host`). Components are
//! compiled once and kept in `wasm_host.cache_dir`.

mod actor;
mod base_config;
mod bindings;
mod content;
mod host;
mod storage;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use maubot_types::config::WasmHost;
use maubot_types::plugin::{ArchiveLimits, PluginArchive};
use serde_json::Value;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine};

use self::actor::{Blueprint, Handle};
use self::bindings::v0_1_0::{Plugin, PluginPre};
use self::host::State;
use super::{
    InstanceStart, LoadedPlugin, PluginCode, PluginRuntime, RuntimeError, RuntimeHost, Started,
    WebRequest, WebResponse,
};
use crate::sync::lock;

const LOG: &str = "maubot.host";
/// How often running plugins yield to the executor (and their wall-clock limit is checked).
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The WebAssembly runtime: one engine for all plugins.
#[derive(Debug)]
pub struct WasmRuntime {
    shared: Arc<Shared>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    engine: Engine,
    linker: Linker<State>,
    settings: WasmHost,
    http: reqwest::Client,
    stopping: AtomicBool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl WasmRuntime {
    pub fn new(settings: WasmHost) -> Result<Self, RuntimeError> {
        let unavailable = |e: wasmtime::Error| RuntimeError::Unavailable(format!("{e:#}"));
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.consume_fuel(true);
        let engine = Engine::new(&config).map_err(unavailable)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(unavailable)?;
        Plugin::add_to_linker::<_, HasSelf<State>>(&mut linker, |state| state)
            .map_err(unavailable)?;
        // Plugins reach only the hosts their config allows; a redirect elsewhere must be a
        // request of the plugin's own, checked again.
        let http = reqwest::Client::builder()
            .user_agent(concat!(
                "maubot-rs/",
                env!("CARGO_PKG_VERSION"),
                " (plugin)"
            ))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| RuntimeError::Unavailable(e.to_string()))?;
        let shared = Arc::new(Shared {
            engine,
            linker,
            settings,
            http,
            stopping: AtomicBool::new(false),
        });
        let ticking = Arc::clone(&shared);
        let ticker = std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !ticking.stopping.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticking.engine.increment_epoch();
                }
            })
            .map_err(|e| {
                RuntimeError::Unavailable(format!("cannot start the epoch ticker: {e}"))
            })?;
        Ok(Self {
            shared,
            ticker: Some(ticker),
        })
    }
}

impl Drop for WasmRuntime {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Relaxed);
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.join();
        }
    }
}

impl PluginRuntime for WasmRuntime {
    fn prepare(&self, code: PluginCode, host: Arc<dyn RuntimeHost>) -> Arc<dyn LoadedPlugin> {
        Arc::new(WasmPlugin {
            shared: Arc::clone(&self.shared),
            code,
            host,
            compiled: tokio::sync::Mutex::new(None),
            instances: Mutex::new(HashMap::new()),
        })
    }
}

/// A compiled plugin, ready to be instantiated.
#[derive(Clone)]
struct Compiled {
    pre: PluginPre<State>,
    base_config: Option<String>,
}

/// One WebAssembly plugin and its running instances.
struct WasmPlugin {
    shared: Arc<Shared>,
    code: PluginCode,
    host: Arc<dyn RuntimeHost>,
    compiled: tokio::sync::Mutex<Option<Compiled>>,
    instances: Mutex<HashMap<String, Arc<Handle>>>,
}

impl std::fmt::Debug for WasmPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmPlugin")
            .field("plugin", &self.code.meta.id)
            .finish_non_exhaustive()
    }
}

impl WasmPlugin {
    fn handle(&self, instance_id: &str) -> Option<Arc<Handle>> {
        lock(&self.instances).get(instance_id).cloned()
    }

    /// The plugin compiled (once; from the cache when it has it).
    async fn compiled(&self) -> Result<Compiled, RuntimeError> {
        let mut compiled = self.compiled.lock().await;
        if let Some(compiled) = compiled.as_ref() {
            return Ok(compiled.clone());
        }
        let path = self.code.path.clone();
        let component_name = self.code.meta.wasm.clone().unwrap_or_default();
        let engine = self.shared.engine.clone();
        let cache_dir = PathBuf::from(&self.shared.settings.cache_dir);
        let (component, base_config) = tokio::task::spawn_blocking(move || {
            load_component(&engine, &path, &component_name, &cache_dir)
        })
        .await
        .map_err(|e| RuntimeError::Unavailable(e.to_string()))??;
        let pre = self
            .shared
            .linker
            .instantiate_pre(&component)
            .and_then(PluginPre::new)
            .map_err(|e| RuntimeError::Plugin {
                message: format!("The component does not fit the maubot:plugin@0.1.0 world: {e:#}"),
                detail: None,
            })?;
        let ready = Compiled { pre, base_config };
        *compiled = Some(ready.clone());
        Ok(ready)
    }
}

/// Reads the component from the archive and compiles it, or loads its compiled form from the
/// cache (keyed by the component's bytes and the engine's configuration).
fn load_component(
    engine: &Engine,
    archive: &Path,
    name: &str,
    cache_dir: &Path,
) -> Result<(Component, Option<String>), RuntimeError> {
    let bytes = std::fs::read(archive)
        .map_err(|e| RuntimeError::Unavailable(format!("{}: {e}", archive.display())))?;
    let limits = ArchiveLimits::default();
    let invalid = |e: maubot_types::plugin::ArchiveError| RuntimeError::Plugin {
        message: e.to_string(),
        detail: None,
    };
    let wasm = PluginArchive::read_file(&bytes, name, &limits).map_err(invalid)?;
    let base_config = PluginArchive::read_file(&bytes, PluginArchive::BASE_CONFIG, &limits)
        .ok()
        .and_then(|text| String::from_utf8(text).ok());
    let mut hash = Sha256::new();
    hash.update(&wasm);
    std::hash::Hash::hash(
        &engine.precompile_compatibility_hash(),
        &mut HashWriter(&mut hash),
    );
    let key: String = hash
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    let cached = cache_dir.join(format!("{key}.cwasm"));
    if cached.exists() {
        // SAFETY: the cache folder is the server's own (private to its user), and holds only
        // what this function wrote there with `Component::serialize` for this engine's
        // configuration (part of the key).
        #[allow(unsafe_code)]
        match unsafe { Component::deserialize_file(engine, &cached) } {
            Ok(component) => return Ok((component, base_config)),
            Err(err) => {
                tracing::warn!(target: LOG, file = %cached.display(), error = %err, "A cached component could not be loaded; compiling again");
            }
        }
    }
    let started = std::time::Instant::now();
    let component = Component::new(engine, &wasm).map_err(|e| RuntimeError::Plugin {
        message: format!("The plugin's component is not valid WebAssembly: {e:#}"),
        detail: None,
    })?;
    tracing::info!(target: LOG, file = name, ms = started.elapsed().as_millis() as u64, "Compiled a WebAssembly plugin");
    match component.serialize() {
        Ok(compiled) => {
            let written = std::fs::create_dir_all(cache_dir)
                .and_then(|()| crate::plugins::files::write_atomically(&cached, &compiled));
            if let Err(err) = written {
                tracing::warn!(target: LOG, dir = %cache_dir.display(), error = %err, "Cannot keep a compiled component");
            }
        }
        Err(err) => {
            tracing::warn!(target: LOG, error = %err, "Cannot serialise a compiled component");
        }
    }
    Ok((component, base_config))
}

/// Feeds `Hash` output into a SHA-256.
struct HashWriter<'a>(&'a mut Sha256);

impl std::hash::Hasher for HashWriter<'_> {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

#[async_trait]
impl LoadedPlugin for WasmPlugin {
    async fn load(&self) -> Result<(), RuntimeError> {
        self.compiled().await.map(drop)
    }

    async fn start(&self, mut instance: InstanceStart) -> Result<Started, RuntimeError> {
        let compiled = self.compiled().await?;
        let id = instance.instance_id.clone();
        // As in maubot, a new instance starts from the plugin's base config, and one whose
        // plugin's base config gained keys gets them; what changed is stored as the
        // instance's own, and the admin edits it from there.
        if let Some(config) = compiled
            .base_config
            .as_deref()
            .and_then(|base| base_config::starting_config(&instance.config, base))
        {
            instance.config = config.clone();
            self.host.config_saved(&id, config);
        }
        let old = lock(&self.instances).remove(&id);
        if let Some(old) = old {
            // Started again: stopped first, so that the plugin starts afresh.
            old.stop().await;
        }
        let handle = Handle::start(Blueprint {
            engine: self.shared.engine.clone(),
            pre: compiled.pre,
            settings: self.shared.settings.clone(),
            host: Arc::clone(&self.host),
            http: self.shared.http.clone(),
            start: instance,
        })
        .await?;
        lock(&self.instances).insert(id, Arc::new(handle));
        Ok(Started {
            base_config: compiled.base_config,
        })
    }

    async fn stop(&self, instance_id: &str) {
        let handle = lock(&self.instances).remove(instance_id);
        if let Some(handle) = handle {
            handle.stop().await;
        }
    }

    fn deliver(&self, instance_id: &str, event: Arc<Value>) {
        if let Some(handle) = self.handle(instance_id) {
            handle.deliver(instance_id, event);
        }
    }

    async fn web_request(
        &self,
        instance_id: &str,
        request: WebRequest,
    ) -> Result<WebResponse, RuntimeError> {
        let handle = self
            .handle(instance_id)
            .ok_or_else(|| RuntimeError::Unavailable("the instance is not running".into()))?;
        handle.web_request(request).await
    }

    async fn config_updated(&self, instance_id: &str, config: &str) -> Result<(), RuntimeError> {
        match self.handle(instance_id) {
            Some(handle) => handle.config_updated(config.to_owned()).await,
            None => Ok(()),
        }
    }

    async fn unload(&self) {
        let handles: Vec<_> = lock(&self.instances).drain().collect();
        for (_, handle) in handles {
            handle.stop().await;
        }
    }
}
