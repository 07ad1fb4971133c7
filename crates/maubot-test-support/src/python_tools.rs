//! Python command-line tools the tests use (an OpenAPI validator, an API fuzzer), each in a venv
//! of its own under the target directory, installed from PyPI on first use (once per clone,
//! under a file lock, so that tests running at once install it once).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// The venv `target/<name>-venv` with `requirements` installed; its `bin/` holds the tools.
pub fn venv(name: &str, requirements: &[&str]) -> anyhow::Result<PathBuf> {
    let dir = crate::target_dir().join(format!("{name}-venv"));
    let marker = dir.join(format!(
        ".installed-{}",
        requirements.join("-").replace(['/', ' '], "_")
    ));
    if marker.exists() {
        return Ok(dir);
    }
    std::fs::create_dir_all(dir.parent().unwrap_or(Path::new(".")))?;
    let lock = std::fs::File::create(dir.with_extension("lock"))?;
    lock.lock()?;
    if marker.exists() {
        return Ok(dir);
    }
    eprintln!(
        "installing {} into {} (once)",
        requirements.join(" "),
        dir.display()
    );
    if !dir.join("bin/python").exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&dir))
            .context("create a venv (is Python 3 with venv installed?)")?;
    }
    run(Command::new(dir.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(requirements))
    .with_context(|| format!("pip install {}", requirements.join(" ")))?;
    std::fs::write(&marker, "")?;
    Ok(dir)
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command.output()?;
    if !output.status.success() {
        bail!(
            "{command:?} failed: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
