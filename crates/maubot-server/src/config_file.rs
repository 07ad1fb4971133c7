//! The config file on disk: read it, or write a commented default on first start. An existing
//! file is never written to.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use maubot_types::config::{self, Config, ConfigError, Loaded};

/// Why the config could not be loaded. Rendered as one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// Reading or creating the file failed.
    #[error("cannot {action} config file {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file's content is not a usable config.
    #[error("{path}: {source}")]
    Invalid { path: PathBuf, source: ConfigError },
}

/// A config ready to use, and whether it was just created.
#[derive(Debug)]
pub struct ConfigFile {
    pub loaded: Loaded,
    /// Set when the file did not exist and a default one was written.
    pub created: Option<PathBuf>,
}

/// Loads `path` with the process's `MAUBOT_*` environment overrides, creating a default config
/// first if the file does not exist.
pub fn load_or_create(path: &Path) -> Result<ConfigFile, ConfigFileError> {
    let io = |action, source| ConfigFileError::Io {
        action,
        path: path.to_owned(),
        source,
    };
    let (text, created) = match std::fs::read_to_string(path) {
        Ok(text) => (text, None),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let text = config::example_yaml(&Config::generated());
            write_new(path, &text).map_err(|e| io("create", e))?;
            let shown = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
            (text, Some(shown))
        }
        Err(err) => return Err(io("read", err)),
    };
    let loaded = config::parse_with_env(&text, std::env::vars()).map_err(|source| {
        ConfigFileError::Invalid {
            path: path.to_owned(),
            source,
        }
    })?;
    Ok(ConfigFile { loaded, created })
}

/// Loads `path` with the process's `MAUBOT_*` environment overrides if it exists, else the
/// defaults with them; never writes a file (for commands that only read the config).
pub fn load_existing(path: &Path) -> Result<Loaded, ConfigFileError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(ConfigFileError::Io {
                action: "read",
                path: path.to_owned(),
                source,
            });
        }
    };
    config::parse_with_env(&text, std::env::vars()).map_err(|source| ConfigFileError::Invalid {
        path: path.to_owned(),
        source,
    })
}

/// Writes a new file readable only by its owner (it holds the secret), refusing to replace one
/// that appeared meanwhile.
fn write_new(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}
