//! Which Python the plugin host's environment is made from: `python_host.interpreter`, or else
//! the newest Python 3.10 or later that works here. Plugins written for maubot's official
//! container image use the syntax of its Python (3.12), so the newest one found is the one most
//! plugins run on.

use std::path::{Path, PathBuf};

use tokio::process::Command;

use super::env::{RunError, run};
use crate::runtime::RuntimeError;

const LOG: &str = "maubot.host";

/// Names tried on `PATH`, newest first; plain `python3` comes last.
const VERSIONED: &[&str] = &[
    "python3.14",
    "python3.13",
    "python3.12",
    "python3.11",
    "python3.10",
];

/// Prints the version and the real executable, and fails without `venv` and `ensurepip`
/// (Debian's `python3` without `python3-venv`), which the environment needs.
const PROBE: &str = "import sys, venv, ensurepip; \
                     print('%d.%d' % sys.version_info[:2]); print(sys.executable)";

/// A usable interpreter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    pub executable: PathBuf,
    pub version: (u32, u32),
}

impl Interpreter {
    pub fn version_text(&self) -> String {
        format!("{}.{}", self.version.0, self.version.1)
    }
}

/// The interpreter to use. A configured one must work and be 3.10 or newer.
pub async fn choose(configured: Option<&str>) -> Result<Interpreter, RuntimeError> {
    if let Some(command) = configured.filter(|c| !c.is_empty()) {
        let found = probe(command).await.map_err(|err| match err {
            RunError::Spawn(err) if err.kind() == std::io::ErrorKind::NotFound => {
                RuntimeError::Unavailable(format!(
                    "Python is needed for Python plugins, but the interpreter `{command}` was \
                     not found: install Python 3.10 or newer, or set python_host.interpreter"
                ))
            }
            other => RuntimeError::Unavailable(format!(
                "cannot use `{command}` (python_host.interpreter) for Python plugins: {other}"
            )),
        })?;
        if found.version < (3, 10) {
            return Err(RuntimeError::Unavailable(format!(
                "Python plugins need Python 3.10 or newer; `{command}` is {}",
                found.version_text()
            )));
        }
        tracing::info!(target: LOG, python = %found.executable.display(), version = %found.version_text(), "Python for plugins (python_host.interpreter)");
        return Ok(found);
    }
    let mut best: Option<Interpreter> = None;
    for candidate in candidates() {
        let Ok(found) = probe(&candidate).await else {
            continue;
        };
        if found.version >= (3, 10) && best.as_ref().is_none_or(|b| found.version > b.version) {
            best = Some(found);
        }
    }
    let best = best.ok_or_else(|| {
        RuntimeError::Unavailable(
            "Python plugins need Python 3.10 or newer with its venv module (on Debian: \
             python3-venv), and none was found: install one, or set python_host.interpreter"
                .into(),
        )
    })?;
    tracing::info!(target: LOG, python = %best.executable.display(), version = %best.version_text(), "Python for plugins: the newest found");
    Ok(best)
}

/// Versioned names on `PATH`, the Pythons pyenv installed (whether or not they are active),
/// then `python3`.
fn candidates() -> Vec<String> {
    let mut candidates: Vec<String> = VERSIONED.iter().map(|&c| c.to_owned()).collect();
    let pyenv = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".pyenv")));
    if let Some(versions) = pyenv.map(|root| root.join("versions"))
        && let Ok(entries) = std::fs::read_dir(versions)
    {
        for entry in entries.flatten() {
            let python = entry.path().join("bin").join("python3");
            if entry.file_name().to_string_lossy().starts_with("3.") && python.exists() {
                candidates.push(python.display().to_string());
            }
        }
    }
    candidates.push("python3".to_owned());
    candidates
}

async fn probe(command: &str) -> Result<Interpreter, RunError> {
    let output = run(Command::new(command).args(["-c", PROBE])).await?;
    let mut lines = output.lines();
    let version = lines
        .next()
        .and_then(|v| v.trim().split_once('.'))
        .and_then(|(major, minor)| Some((major.parse().ok()?, minor.parse().ok()?)))
        .ok_or_else(|| RunError::Failed(format!("unexpected answer: {output}")))?;
    let executable = lines
        .next()
        .map(|p| PathBuf::from(p.trim()))
        .filter(|p| p.is_absolute())
        .ok_or_else(|| RunError::Failed(format!("unexpected answer: {output}")))?;
    Ok(Interpreter {
        executable,
        version,
    })
}
