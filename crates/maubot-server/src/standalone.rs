//! `maubot standalone`: one bot running one plugin from its source folder, as maubot's
//! standalone mode does, for people who deploy a single bot. The standalone config
//! (`maubot_types::config::standalone`) becomes a server config with no management API and no
//! web UI; the plugin folder becomes an archive in the server's plugin directory; the bot and
//! one instance of the plugin (named after the plugin) are made or updated from the config at
//! every start. Plugin web apps are served when the config has a `server` section.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use maubot_types::config::standalone::Standalone;
use maubot_types::plugin::{ArchiveLimits, PluginArchive, PluginMeta};
use maubot_types::secret::Secret;

use crate::client::ClientRequest;
use crate::plugins::{InstanceRequest, files};
use crate::server;

const LOG: &str = "maubot.standalone";

/// Where standalone mode keeps what is not in its database: next to its config file.
pub fn data_dir(config: &Path) -> PathBuf {
    config
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("standalone-data")
}

/// Runs the bot until `signal`.
pub async fn run(
    standalone: Standalone,
    plugin_dir: &Path,
    signal: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let config = standalone.server.config;
    let meta = install_plugin(plugin_dir, &config.plugin_directories.upload)?;
    let running = server::start(config).await?;
    let state = running.state().clone();

    let user = &standalone.user;
    let credentials = &user.credentials;
    let request = ClientRequest {
        homeserver: Some(credentials.homeserver.clone()),
        access_token: Some(Secret::new(credentials.access_token.clone())),
        device_id: credentials.device_id.clone(),
        sync: Some(user.sync),
        autojoin: Some(user.autojoin),
        displayname: Some(user.displayname.clone()),
        avatar_url: Some(user.avatar_url.clone()),
        enabled: Some(true),
        started: Some(true),
        ..ClientRequest::default()
    };
    let bot = if state.clients.get(&credentials.id).await.is_some() {
        state.clients.update(&credentials.id, request).await
    } else {
        state.clients.create(request, Some(&credentials.id)).await
    }
    .map_err(|err| anyhow::anyhow!("the bot {}: {err}", credentials.id))?;
    tracing::info!(target: LOG, client = %bot.id, "Bot ready");

    // The file's plugin_config wins at every start; without one, the plugin's own config stays.
    let instance_id = meta.id.as_str().to_lowercase();
    let config = Some(standalone.plugin_config).filter(|c| !c.trim().is_empty());
    let (_, instance) = state
        .plugins
        .put_instance(
            &instance_id,
            InstanceRequest {
                plugin: Some(meta.id.to_string()),
                primary_user: Some(credentials.id.clone()),
                enabled: Some(true),
                started: Some(true),
                config,
                ..InstanceRequest::default()
            },
        )
        .await
        .map_err(|err| anyhow::anyhow!("the plugin's instance: {err}"))?;
    match &instance.status.failure {
        Some(failure) => {
            tracing::warn!(target: LOG, instance = %instance.record.id, failure = %failure, "The plugin does not run");
        }
        None => tracing::info!(target: LOG, instance = %instance.record.id, "Plugin running"),
    }
    running.run_until(signal).await
}

/// Builds the plugin folder's archive into `upload` (replacing an earlier build), where the
/// server's scan finds it.
fn install_plugin(plugin_dir: &Path, upload: &str) -> anyhow::Result<PluginMeta> {
    let bytes = archive_of(plugin_dir)?;
    let archive = PluginArchive::read(&bytes, &ArchiveLimits::default())
        .with_context(|| format!("the plugin in {}", plugin_dir.display()))?;
    let meta = archive.meta;
    std::fs::create_dir_all(upload).with_context(|| format!("cannot create {upload}"))?;
    for entry in std::fs::read_dir(upload)?.flatten() {
        if entry.path().extension().is_some_and(|e| e == "mbp") {
            std::fs::remove_file(entry.path())?;
        }
    }
    let path = Path::new(upload).join(files::new_file_name(&meta));
    files::write_atomically(&path, &bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    tracing::info!(target: LOG, id = %meta.id, version = %meta.version, "Plugin built from {}", plugin_dir.display());
    Ok(meta)
}

/// The `.mbp` of a plugin folder, as `mbc build` makes it: `maubot.yaml`, the modules (a `.py`
/// file or a package folder), the WebAssembly component and the `extra_files`.
fn archive_of(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let definition = std::fs::read_to_string(dir.join(PluginArchive::DEFINITION))
        .with_context(|| format!("no {} in {}", PluginArchive::DEFINITION, dir.display()))?;
    let meta = PluginMeta::parse(&definition)?;
    let mut paths = vec![PathBuf::from(PluginArchive::DEFINITION)];
    for module in &meta.modules {
        let file = PathBuf::from(format!("{module}.py"));
        if dir.join(&file).is_file() {
            paths.push(file);
        } else if dir.join(module).is_dir() {
            paths.extend(tree(dir, Path::new(module))?);
        } else {
            bail!(
                "module {module} is neither {module}.py nor a folder in {}",
                dir.display()
            );
        }
    }
    for extra in meta.extra_files.iter().chain(meta.wasm.iter()) {
        if dir.join(extra).is_dir() {
            paths.extend(tree(dir, Path::new(extra))?);
        } else {
            paths.push(PathBuf::from(extra));
        }
    }
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    for path in paths {
        let bytes = std::fs::read(dir.join(&path))
            .with_context(|| format!("cannot read {}", dir.join(&path).display()))?;
        let name = path.to_string_lossy().replace('\\', "/");
        zip.start_file(name, zip::write::SimpleFileOptions::default())?;
        zip.write_all(&bytes)?;
    }
    zip.finish()?;
    Ok(out.into_inner())
}

/// The files below `relative` in `dir`, without Python's caches.
fn tree(dir: &Path, relative: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir.join(relative))?.flatten() {
        let name = entry.file_name();
        if name == "__pycache__" {
            continue;
        }
        let path = relative.join(&name);
        if entry.file_type()?.is_dir() {
            found.extend(tree(dir, &path)?);
        } else {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}
