//! Python packages beyond the host's own: a plugin's `dependencies` and `soft_dependencies`, and
//! the packages maubot's official container image ships for plugins, installed when a plugin
//! turns out to import one. All go into folders of their own inside the venv (`pip install
//! --target`), with the host's pinned packages as constraints, so that no plugin can swap mautrix
//! or aiohttp from under the host.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

use sha2::{Digest, Sha256};
use tokio::process::Command;

use super::env::{Prepared, hex, lock_file, run, sources};
use crate::runtime::RuntimeError;
use crate::sync::lock;

const LOG: &str = "maubot.host";
/// Marks a complete installation.
const INSTALLED: &str = ".installed";
/// Where the container image's packages go, one folder each.
const IMAGE_PACKAGES: &str = "image-packages";

/// The packages maubot's official container image installs for plugins ("until maubot supports
/// installing dependencies"), with the module a plugin imports from each, plus `requests`, which
/// several of them pull in and plugins import without declaring it. pg8000 is the driver of
/// legacy SQLAlchemy databases on PostgreSQL.
const IMAGE: &[(&str, &str)] = &[
    ("PIL", "Pillow"),
    ("magic", "python-magic"),
    ("feedparser", "feedparser"),
    ("dateutil", "python-dateutil"),
    ("lxml", "lxml"),
    ("semver", "semver"),
    ("markdown", "Markdown"),
    ("alembic", "alembic"),
    ("cssselect", "cssselect"),
    ("pygments", "Pygments"),
    ("pytz", "pytz"),
    ("regex", "regex"),
    ("wcwidth", "wcwidth"),
    ("brotli", "brotli"),
    ("aiodns", "aiodns"),
    ("dateparser", "dateparser"),
    ("langdetect", "langdetect"),
    ("gitlab", "python-gitlab"),
    ("pyquery", "pyquery"),
    ("tzlocal", "tzlocal"),
    ("requests", "requests"),
    ("pg8000", "pg8000"),
];

/// Requirement lists whose installation failed in this process: soft dependencies are not tried
/// again at every worker start.
static FAILED: LazyLock<Mutex<BTreeSet<String>>> = LazyLock::new(Mutex::default);

/// The container-image package that provides `module` (a top-level module name), if any.
pub fn image_package_for(module: &str) -> Option<&'static str> {
    IMAGE
        .iter()
        .find(|(provides, _)| *provides == module)
        .map(|(_, package)| *package)
}

/// The top-level module a `ModuleNotFoundError` in `text` names (`No module named 'PIL.Image'`
/// gives `PIL`).
pub fn missing_module(text: &str) -> Option<&str> {
    let rest = text.split("No module named '").nth(1)?;
    let name = &rest[..rest.find('\'')?];
    name.split('.').next().filter(|n| !n.is_empty())
}

impl Prepared {
    /// The environment of one plugin: the host's packages, then the plugin's `dependencies`
    /// (which must install), its `soft_dependencies` (where they install; a failure is a
    /// warning), then every container-image package installed so far.
    pub async fn for_plugin(
        &self,
        plugin_id: &str,
        dependencies: &[String],
        soft_dependencies: &[String],
    ) -> Result<Prepared, RuntimeError> {
        let mut prepared = self.clone();
        if !dependencies.is_empty() {
            let dir = self.install_once(plugin_id, dependencies, false).await?;
            prepared.pythonpath.push(dir);
        }
        if !soft_dependencies.is_empty() {
            match self.install_once(plugin_id, soft_dependencies, true).await {
                Ok(dir) => prepared.pythonpath.push(dir),
                Err(err) => tracing::warn!(
                    target: LOG, plugin = %plugin_id, error = %err,
                    "The plugin's soft dependencies could not be installed; it starts without them"
                ),
            }
        }
        prepared.pythonpath.extend(self.installed_image_packages());
        Ok(prepared)
    }

    /// Installs a container-image package (see [`image_package_for`]) for every plugin.
    pub async fn install_image_package(
        &self,
        plugin_id: &str,
        package: &str,
    ) -> Result<(), RuntimeError> {
        let all = self.venv.join(IMAGE_PACKAGES);
        let dir = all.join(package);
        tracing::info!(
            target: LOG, plugin = %plugin_id, package,
            "The plugin imports a package maubot's container image ships; installing it from PyPI"
        );
        self.install_into(&all, &dir, &[package.to_owned()]).await
    }

    fn installed_image_packages(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(self.venv.join(IMAGE_PACKAGES)) else {
            return Vec::new();
        };
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join(INSTALLED).exists())
            .collect();
        dirs.sort();
        dirs
    }

    /// Installs `requirements` once per distinct list into `plugin-deps/<hash>`.
    async fn install_once(
        &self,
        plugin_id: &str,
        requirements: &[String],
        soft: bool,
    ) -> Result<PathBuf, RuntimeError> {
        if let Some(option) = requirements
            .iter()
            .find(|d| d.trim_start().starts_with('-'))
        {
            return Err(RuntimeError::Plugin {
                message: format!(
                    "Dependency {option:?} of the plugin is a pip option, not a requirement"
                ),
                detail: None,
            });
        }
        let mut hash = Sha256::new();
        for requirement in requirements {
            hash.update(requirement.as_bytes());
            hash.update([0]);
        }
        hash.update(sources::REQUIREMENTS.as_bytes());
        let key = hex(&hash.finalize())[..16].to_owned();
        let all = self.venv.join("plugin-deps");
        let dir = all.join(&key);
        if dir.join(INSTALLED).exists() {
            return Ok(dir);
        }
        if soft && lock(&FAILED).contains(&key) {
            return Err(RuntimeError::Unavailable(
                "they failed to install earlier".into(),
            ));
        }
        tracing::info!(
            target: LOG, plugin = %plugin_id, requirements = %requirements.join(", "),
            soft, "Installing the plugin's Python dependencies from PyPI"
        );
        let installed = self.install_into(&all, &dir, requirements).await;
        if installed.is_err() && soft {
            lock(&FAILED).insert(key);
        }
        installed.map(|()| dir)
    }

    /// `pip install --target <dir>`, under a lock (servers may share the venv), into a partial
    /// folder renamed when complete. Nothing happens if `dir` is complete already.
    async fn install_into(
        &self,
        parent: &Path,
        dir: &Path,
        requirements: &[String],
    ) -> Result<(), RuntimeError> {
        let io = |e: std::io::Error| RuntimeError::Unavailable(format!("{}: {e}", dir.display()));
        tokio::fs::create_dir_all(parent).await.map_err(io)?;
        let lock = lock_file(dir.with_extension("lock")).await.map_err(io)?;
        if dir.join(INSTALLED).exists() {
            return Ok(());
        }
        let partial = dir.with_extension("partial");
        let _ = tokio::fs::remove_dir_all(&partial).await;
        run(Command::new(&self.python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "-q",
            ])
            .arg("--target")
            .arg(&partial)
            .arg("--constraint")
            .arg(self.venv.join("requirements.txt"))
            .args(requirements))
        .await
        .map_err(|e| {
            RuntimeError::Unavailable(format!(
                "cannot install {} from PyPI: {e}",
                requirements.join(", ")
            ))
        })?;
        let _ = tokio::fs::remove_dir_all(dir).await;
        tokio::fs::rename(&partial, dir).await.map_err(io)?;
        tokio::fs::write(dir.join(INSTALLED), "")
            .await
            .map_err(io)?;
        drop(lock);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_missing_module_and_its_package() {
        let error = "ModuleNotFoundError: No module named 'PIL.Image'";
        assert_eq!(missing_module(error), Some("PIL"));
        assert_eq!(image_package_for("PIL"), Some("Pillow"));
        assert_eq!(image_package_for("gitlab"), Some("python-gitlab"));
        assert_eq!(missing_module("No module named 'x'"), Some("x"));
        assert_eq!(image_package_for("x"), None);
        assert_eq!(missing_module("ImportError: cannot import name 'y'"), None);
    }
}
