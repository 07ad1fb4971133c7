//! WebAssembly plugins for tests: a plugin project (a folder with `maubot.yaml` saying
//! `runtime: wasm`, and a `Cargo.toml` of a `cdylib` on the `maubot-plugin` SDK) built for
//! `wasm32-wasip2` and packed into an `.mbp`, as `mbc build` packs it.
//!
//! ```no_run
//! let mbp = maubot_test_support::wasm::build(&maubot_test_support::wasm::example("ping"));
//! let bytes = std::fs::read(mbp).unwrap();
//! ```
//!
//! Builds go to `<target>/wasm-plugins/cargo` (one cargo target directory for every project,
//! so the SDK and its dependencies compile once) and archives to `<target>/wasm-plugins/mbp`,
//! named by the plugin ID and a hash of everything that goes into them: the project's files,
//! its cargo workspace's `Cargo.toml` and `Cargo.lock`, the SDK's sources and the WIT. An
//! archive whose inputs have not changed is returned without running cargo. The
//! `wasm32-wasip2` target is added with `rustup` when it is missing.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use anyhow::{Context as _, bail};
use maubot_types::plugin::{ArchiveLimits, PluginArchive, PluginMeta, PluginRuntime};
use sha2::{Digest as _, Sha256};

/// The target plugins are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// An example plugin of `examples/wasm/` (`ping`, `counter`, `webhook`).
pub fn example(name: &str) -> PathBuf {
    repo().join("examples/wasm").join(name)
}

/// A test plugin of `crates/maubot-server/tests/wasm-plugins/` (`spin`, `bomb`, `panic`,
/// `flood`, `fetch`, `elsewhere`).
pub fn test_plugin(name: &str) -> PathBuf {
    repo()
        .join("crates/maubot-server/tests/wasm-plugins")
        .join(name)
}

/// The SDK's folder (`crates/maubot-plugin`).
pub fn sdk() -> PathBuf {
    repo().join("crates/maubot-plugin")
}

/// A built plugin.
#[derive(Debug, Clone)]
pub struct Built {
    /// The `.mbp` archive, checked as the server checks uploads.
    pub mbp: PathBuf,
    /// The component alone.
    pub component: PathBuf,
    /// The plugin's definition.
    pub meta: PluginMeta,
}

/// Builds the plugin project in `project` and packs it; the `.mbp`'s path. Panics with cargo's
/// output if the build fails.
pub fn build(project: &Path) -> PathBuf {
    match try_build(project) {
        Ok(built) => built.mbp,
        Err(err) => panic!(
            "cannot build the WebAssembly plugin {}: {err:#}",
            project.display()
        ),
    }
}

/// Builds the plugin project in `project` and packs it (or finds both done for the same
/// inputs).
pub fn try_build(project: &Path) -> anyhow::Result<Built> {
    // One build at a time in this process; cargo's own lock orders processes.
    static BUILDING: Mutex<()> = Mutex::new(());
    let _guard = BUILDING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());

    let project = project
        .canonicalize()
        .with_context(|| format!("no plugin project at {}", project.display()))?;
    let meta = PluginMeta::parse(
        &std::fs::read_to_string(project.join("maubot.yaml")).context("read maubot.yaml")?,
    )?;
    if meta.runtime != PluginRuntime::Wasm {
        bail!("maubot.yaml does not say `runtime: wasm`");
    }
    let Some(component_path) = meta.wasm.clone() else {
        bail!("maubot.yaml names no component (`wasm:`)");
    };

    let out = crate::target_dir().join("wasm-plugins");
    let hash = inputs_hash(&project)?;
    let name = format!("{}-{}", meta.id, &hash[..16]);
    let mbp = out.join("mbp").join(format!("{name}.mbp"));
    let component = out.join("mbp").join(format!("{name}.wasm"));
    if mbp.is_file() && component.is_file() {
        return Ok(Built {
            mbp,
            component,
            meta,
        });
    }

    add_target()?;
    let built = cargo_build(&project, &out.join("cargo"))?;
    let wasm = std::fs::read(&built).with_context(|| format!("read {}", built.display()))?;

    let mut files = vec![(component_path, wasm.clone())];
    for pattern in &meta.extra_files {
        let full = format!(
            "{}/{pattern}",
            glob::Pattern::escape(&project.display().to_string())
        );
        for path in glob::glob(&full)? {
            let path = path?;
            if path.is_file() {
                let entry = path
                    .strip_prefix(&project)?
                    .to_str()
                    .context("a file name that is not UTF-8")?
                    .to_owned();
                if !files.iter().any(|(name, _)| *name == entry)
                    && entry != PluginArchive::DEFINITION
                {
                    files.push((entry, std::fs::read(&path)?));
                }
            }
        }
    }
    let bytes = pack(&meta, &files)?;
    PluginArchive::read(&bytes, &ArchiveLimits::default())
        .context("the server would refuse the archive")?;
    std::fs::create_dir_all(out.join("mbp"))?;
    write_atomically(&component, &wasm)?;
    write_atomically(&mbp, &bytes)?;
    Ok(Built {
        mbp,
        component,
        meta,
    })
}

/// `rustup target add wasm32-wasip2` unless it is there (or there is no rustup).
pub fn add_target() -> anyhow::Result<()> {
    let Ok(installed) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        return Ok(());
    };
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|line| line.trim() == TARGET)
    {
        return Ok(());
    }
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .context("run rustup target add")?;
    if !status.success() {
        bail!("rustup target add {TARGET} failed: {status}");
    }
    Ok(())
}

/// `cargo build --target wasm32-wasip2 --release` in `project`; the component's path.
fn cargo_build(project: &Path, target_dir: &Path) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "--target", TARGET, "--release"])
        .args(["--message-format", "json-render-diagnostics"])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(project)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .stdin(Stdio::null())
        .output()
        .context("run cargo")?;
    if !output.status.success() {
        bail!(
            "cargo build failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let manifest = project.join("Cargo.toml");
    let stdout = String::from_utf8_lossy(&output.stdout);
    for line in stdout.lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact"
            || message["manifest_path"].as_str().map(Path::new) != Some(&manifest)
        {
            continue;
        }
        let wasm = message["filenames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|name| name.as_str())
            .find(|name| name.ends_with(".wasm"));
        if let Some(wasm) = wasm {
            return Ok(PathBuf::from(wasm));
        }
    }
    bail!(
        "cargo built no .wasm for {} (is it a crate-type = [\"cdylib\"] library?)",
        manifest.display()
    )
}

/// A hash of what goes into the plugin: the project's files, its cargo workspace's manifest
/// and lock file, the SDK and the WIT.
fn inputs_hash(project: &Path) -> anyhow::Result<String> {
    let mut files = BTreeMap::new();
    collect(project, &mut files)?;
    let repo = repo().canonicalize()?;
    for dir in project.ancestors().skip(1) {
        if dir == repo {
            break;
        }
        for name in ["Cargo.toml", "Cargo.lock"] {
            let file = dir.join(name);
            if file.is_file() {
                files.insert(file.clone(), std::fs::read(&file)?);
            }
        }
    }
    collect(&sdk().canonicalize()?, &mut files)?;
    collect(&repo.join("wit"), &mut files)?;
    let mut hash = Sha256::new();
    for (path, data) in &files {
        hash.update(path.to_string_lossy().as_bytes());
        hash.update((data.len() as u64).to_le_bytes());
        hash.update(data);
    }
    Ok(hex::encode(hash.finalize()))
}

/// Every file under `dir` but build output (`target/`, `.mbp` archives).
fn collect(dir: &Path, files: &mut BTreeMap<PathBuf, Vec<u8>>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("list {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                collect(&path, files)?;
            }
        } else if !name.ends_with(".mbp") {
            files.insert(path.clone(), std::fs::read(&path)?);
        }
    }
    Ok(())
}

/// An `.mbp`: `maubot.yaml` as `mbc build` writes it, then the files.
fn pack(meta: &PluginMeta, files: &[(String, Vec<u8>)]) -> anyhow::Result<Vec<u8>> {
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644);
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    writer.start_file(PluginArchive::DEFINITION, options)?;
    writer.write_all(meta.to_yaml().as_bytes())?;
    for (name, data) in files {
        writer.start_file(name.as_str(), options)?;
        writer.write_all(data)?;
    }
    Ok(writer.finish()?.into_inner())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_packs_and_caches_the_ping_example() {
        let built = try_build(&example("ping")).expect("built");
        let bytes = std::fs::read(&built.mbp).expect("archive");
        let archive = PluginArchive::read(&bytes, &ArchiveLimits::default()).expect("valid");
        assert_eq!(archive.meta.id.as_str(), "xyz.maubot-rs.example.ping");
        assert_eq!(archive.meta.wasm.as_deref(), Some("ping.wasm"));
        let component = std::fs::read(&built.component).expect("component");
        assert!(
            component.starts_with(b"\0asm\x0d\x00\x01\x00"),
            "a component"
        );

        // Unchanged inputs: the same archive, not written again.
        let modified = std::fs::metadata(&built.mbp)
            .and_then(|m| m.modified())
            .ok();
        let again = try_build(&example("ping")).expect("cached");
        assert_eq!(again.mbp, built.mbp);
        assert_eq!(
            std::fs::metadata(&again.mbp)
                .and_then(|m| m.modified())
                .ok(),
            modified
        );
    }

    /// Every example and hostile plugin builds into an archive the server's checks accept
    /// (the server's tests run them; this catches a change of the SDK that breaks one).
    #[test]
    fn every_plugin_builds() {
        let examples = ["ping", "counter", "webhook"].map(example);
        let hostile = ["spin", "bomb", "panic", "flood", "fetch", "elsewhere"].map(test_plugin);
        for project in examples.iter().chain(&hostile) {
            let built =
                try_build(project).unwrap_or_else(|err| panic!("{}: {err:#}", project.display()));
            let size = std::fs::metadata(&built.component)
                .expect("component")
                .len();
            // The SDK stays small (the examples are ~180-270 KB).
            assert!(size < 1 << 20, "{}: {size} bytes", project.display());
        }
    }

    #[test]
    fn only_webassembly_plugins() {
        let err = try_build(&repo().join("crates/maubot-server/tests/plugins/echo"))
            .expect_err("a Python plugin");
        assert!(err.to_string().contains("runtime: wasm"), "{err}");
    }
}
