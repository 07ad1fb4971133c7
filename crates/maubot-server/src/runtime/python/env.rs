//! The Python environment of the plugin host: a venv that the server creates on first need,
//! with `mautrix` and the other requirements from PyPI, and maubot-rs's own `maubot` and
//! `maubot_host` packages written next to it from the copies embedded in the binary.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use maubot_types::config::PythonHost;
use sha2::{Digest, Sha256};
use tokio::process::Command;
use tokio::sync::Mutex;

use super::interpreter::{self, Interpreter};
use crate::runtime::RuntimeError;

pub(super) mod sources {
    include!(concat!(env!("OUT_DIR"), "/python_sources.rs"));
}

const LOG: &str = "maubot.host";
/// Where the embedded packages go, inside the venv directory, followed by a hash of them: servers
/// of different builds may share one venv (the tests' do), and each must run its own code.
const SOURCES_DIR: &str = "maubot-rs-python";
/// What the venv was built from; a different stamp rebuilds it.
const STAMP_FILE: &str = "maubot-rs-stamp";

/// A ready environment.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub python: PathBuf,
    /// The workers' `PYTHONPATH`: the host's packages first, then a plugin's dependencies.
    pub pythonpath: Vec<PathBuf>,
    pub(super) venv: PathBuf,
}

impl Prepared {
    /// What a worker reads and runs of the environment: the venv (with the plugin dependencies
    /// and the embedded packages) and the Python installation it was made from.
    pub fn readable(&self) -> Vec<PathBuf> {
        let mut paths = vec![self.venv.clone()];
        paths.extend(self.pythonpath.iter().cloned());
        // `home` in pyvenv.cfg is the `bin` folder of the Python the venv was made from.
        let config = std::fs::read_to_string(self.venv.join("pyvenv.cfg")).unwrap_or_default();
        let home = config.lines().find_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.trim() == "home").then(|| PathBuf::from(value.trim()))
        });
        let real = std::fs::canonicalize(&self.python).ok();
        for bin in home
            .into_iter()
            .chain(real.as_deref().and_then(Path::parent).map(Path::to_owned))
        {
            paths.extend(bin.parent().map(Path::to_owned));
        }
        paths
    }
}

/// The environment, prepared at most once per process (and again after a failure).
#[derive(Debug)]
pub struct Environment {
    settings: PythonHost,
    ready: Mutex<Option<Prepared>>,
}

impl Environment {
    pub fn new(settings: PythonHost) -> Self {
        Self {
            settings,
            ready: Mutex::new(None),
        }
    }

    /// The environment, prepared if this is the first need.
    pub async fn ensure(&self) -> Result<Prepared, RuntimeError> {
        let mut ready = self.ready.lock().await;
        if let Some(prepared) = ready.as_ref() {
            return Ok(prepared.clone());
        }
        let prepared = prepare(&self.settings).await?;
        *ready = Some(prepared.clone());
        Ok(prepared)
    }
}

fn absolute(path: &str) -> Result<PathBuf, RuntimeError> {
    std::path::absolute(path)
        .map_err(|e| RuntimeError::Unavailable(format!("invalid python_host.venv {path:?}: {e}")))
}

fn stamp(interpreter: &Interpreter) -> String {
    let mut hash = Sha256::new();
    hash.update(interpreter.executable.as_os_str().as_encoded_bytes());
    hash.update([0]);
    hash.update(interpreter.version_text().as_bytes());
    hash.update([0]);
    hash.update(sources::REQUIREMENTS.as_bytes());
    hex(&hash.finalize())
}

fn sources_dir() -> String {
    let mut hash = Sha256::new();
    for (name, content) in sources::FILES {
        hash.update(name.as_bytes());
        hash.update([0]);
        hash.update(content.as_bytes());
        hash.update([0]);
    }
    format!("{SOURCES_DIR}-{}", &hex(&hash.finalize())[..16])
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn prepare(settings: &PythonHost) -> Result<Prepared, RuntimeError> {
    let venv = absolute(&settings.venv)?;
    let io = |what: &str, e: std::io::Error| {
        RuntimeError::Unavailable(format!("{what} {}: {e}", venv.display()))
    };
    if let Some(parent) = venv.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| io("cannot create the parent of", e))?;
    }
    // Several servers (or test servers) may share one environment: one prepares, the others
    // wait for it.
    let lock = lock_file(venv.with_extension("lock"))
        .await
        .map_err(|e| io("cannot lock", e))?;

    let interpreter = interpreter::choose(settings.interpreter.as_deref()).await?;
    let python = venv.join("bin").join("python");
    let wanted = stamp(&interpreter);
    let current = tokio::fs::read_to_string(venv.join(STAMP_FILE))
        .await
        .unwrap_or_default();
    if current.trim() != wanted || !python.exists() {
        create_venv(&interpreter, &venv, &python).await?;
        tokio::fs::write(venv.join(STAMP_FILE), &wanted)
            .await
            .map_err(|e| io("cannot write to", e))?;
    }
    let pythonpath = venv.join(sources_dir());
    write_sources(&pythonpath)
        .await
        .map_err(|e| io("cannot write the plugin host into", e))?;
    drop(lock);
    Ok(Prepared {
        python,
        pythonpath: vec![pythonpath],
        venv,
    })
}

async fn create_venv(
    interpreter: &Interpreter,
    venv: &Path,
    python: &Path,
) -> Result<(), RuntimeError> {
    let executable = &interpreter.executable;
    tracing::info!(
        target: LOG, venv = %venv.display(), python = %executable.display(),
        version = %interpreter.version_text(),
        "Preparing the Python environment for plugins (first use; installs mautrix from PyPI)"
    );
    let started = std::time::Instant::now();
    run(Command::new(executable)
        .arg("-m")
        .arg("venv")
        .arg("--clear")
        .arg(venv))
    .await
    .map_err(|e| {
        RuntimeError::Unavailable(format!(
            "cannot create a Python venv in {} with `{} -m venv` (on Debian, install \
             python3-venv): {e}",
            venv.display(),
            executable.display()
        ))
    })?;
    let requirements = venv.join("requirements.txt");
    tokio::fs::write(&requirements, sources::REQUIREMENTS)
        .await
        .map_err(|e| {
            RuntimeError::Unavailable(format!("cannot write {}: {e}", requirements.display()))
        })?;
    run(Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "-q",
            "-r",
        ])
        .arg(&requirements))
    .await
    .map_err(|e| {
        RuntimeError::Unavailable(format!(
            "cannot install the plugin host's Python packages from PyPI: {e}"
        ))
    })?;
    tracing::info!(
        target: LOG, seconds = started.elapsed().as_secs(), "The Python environment for plugins is ready"
    );
    Ok(())
}

/// Writes the embedded packages where they differ from what is there.
async fn write_sources(dir: &Path) -> std::io::Result<()> {
    for (relative, content) in sources::FILES {
        let path = dir.join(relative);
        if tokio::fs::read_to_string(&path).await.ok().as_deref() == Some(*content) {
            continue;
        }
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let temporary = path.with_extension("py.tmp");
        tokio::fs::write(&temporary, content).await?;
        tokio::fs::rename(&temporary, &path).await?;
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub(super) enum RunError {
    #[error("{0}")]
    Spawn(std::io::Error),
    #[error("{0}")]
    Failed(String),
}

/// Runs a command to completion; its standard output, or the tail of what it printed on failure.
pub(super) async fn run(command: &mut Command) -> Result<String, RunError> {
    let output = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(RunError::Spawn)?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let text = if stderr.trim().is_empty() {
        stdout
    } else {
        stderr.into_owned()
    };
    let tail: Vec<&str> = text.trim().lines().rev().take(8).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(RunError::Failed(format!(
        "{} ({})",
        tail.join("\n"),
        output.status
    )))
}

/// Creates `path` and waits, off the async threads, until this process holds its exclusive lock
/// (released when the file is dropped).
pub(super) async fn lock_file(path: PathBuf) -> std::io::Result<std::fs::File> {
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::create(&path)?;
        file.lock()?;
        Ok(file)
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeds_the_plugin_host() {
        let names: Vec<&str> = sources::FILES.iter().map(|(name, _)| *name).collect();
        for expected in [
            "maubot/__init__.py",
            "maubot/handlers/command.py",
            "maubot_host/__main__.py",
        ] {
            assert!(names.contains(&expected), "{expected} not in {names:?}");
        }
        assert!(sources::REQUIREMENTS.contains("mautrix"));
    }
}
