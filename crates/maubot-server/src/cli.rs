//! The `maubot` command line, kept apart from what the commands do.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// maubot-rs: a plugin-based Matrix bot manager, compatible with maubot 0.6.
#[derive(Debug, Parser)]
#[command(name = "maubot", version)]
pub struct Cli {
    /// Config file to use. Created with defaults (and a fresh secret) if it does not exist.
    #[arg(short, long, default_value = "config.yaml", value_name = "PATH")]
    pub config: PathBuf,

    /// Accepted for compatibility with maubot's command line; maubot-rs never writes the config.
    #[arg(short = 'n', long, hide = true)]
    pub no_update: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read a password from standard input and print its bcrypt hash, for the `admins` section.
    HashPassword,
    /// Prepare the Python plugin host's environment (`python_host.venv`, installed from PyPI)
    /// and exit, so that the server needs no network for it later (container images,
    /// installers). Reads the config file if there is one, else the defaults; with the
    /// `MAUBOT_*` overrides either way. Never writes the config.
    PreparePython,
    /// Run one bot with one plugin from its source folder, from a standalone config (maubot's
    /// standalone mode): no management API, no web UI.
    Standalone {
        /// The standalone config: `user.credentials`, `database`, `plugin_config`, `server`, ...
        #[arg(short, long, default_value = "standalone.yaml", value_name = "PATH")]
        config: PathBuf,
        /// The plugin's `maubot.yaml` (or its folder).
        #[arg(short, long, default_value = "maubot.yaml", value_name = "PATH")]
        meta: PathBuf,
    },
}
