//! The command line: verbs and options as maubot 0.6's `mbc` has them, plus `logout`.
//! The commands themselves are in [`crate::commands`].

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

/// The server `mbc login` uses when none is given (maubot's default port on this machine).
pub const DEFAULT_SERVER: &str = "http://localhost:29316";

/// mbc: the plugin author's command line for maubot (maubot-rs or maubot 0.6).
///
/// Tokens are kept in $XDG_CONFIG_HOME/maubot-cli.json (else ~/.config/maubot-cli.json), the
/// file maubot's own mbc uses.
#[derive(Debug, Parser)]
#[command(name = "mbc", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in to a maubot server and save the access token.
    Login(LoginArgs),
    /// Forget the access token of a server.
    Logout(LogoutArgs),
    /// Create a new plugin (maubot.yaml, a module with a command, a licence) in this folder;
    /// with --wasm a WebAssembly plugin (a Rust crate on maubot-rs's plugin SDK).
    Init(InitArgs),
    /// Check a plugin folder and pack it into an .mbp archive, optionally uploading it
    /// (WebAssembly plugins are built with cargo for wasm32-wasip2 first).
    Build(BuildArgs),
    /// Upload an .mbp archive to a maubot server (replacing an older version).
    Upload(UploadArgs),
    /// Register or log in a bot's Matrix account on one of the server's homeservers.
    Auth(AuthArgs),
    /// Show the server's recent log records, then follow new ones.
    Logs(LogsArgs),
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The admin user name (default: $USER).
    #[arg(short, long)]
    pub username: Option<String>,
    /// The password (asked for on a terminal when not given).
    #[arg(short, long)]
    pub password: Option<String>,
    /// The server's base URL [default: http://localhost:29316].
    #[arg(short, long, value_name = "URL")]
    pub server: Option<String>,
    /// A short name for the server, usable in place of its URL with --server.
    #[arg(short, long)]
    pub alias: Option<String>,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The server's URL or alias (default: the default server).
    #[arg(short, long)]
    pub server: Option<String>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The plugin's module name, a Python name; with --wasm its crate name (default: this
    /// folder's name).
    #[arg(short, long)]
    pub name: Option<String>,
    /// The plugin ID, Java-package style (e.g. com.example.hello).
    #[arg(short, long)]
    pub id: Option<String>,
    /// The first version, PEP 440 [default: 0.1.0].
    #[arg(short, long)]
    pub version: Option<String>,
    /// The licence, an SPDX identifier; '' for none [default: AGPL-3.0-or-later].
    #[arg(short, long)]
    pub license: Option<String>,
    /// Give the plugin a config (base-config.yaml and a Config class).
    #[arg(short, long)]
    pub config: bool,
    /// Create a WebAssembly plugin: a Rust crate on the maubot-plugin SDK (Cargo.toml,
    /// src/lib.rs), built for wasm32-wasip2 by `mbc build`.
    #[arg(long)]
    pub wasm: bool,
    /// With --wasm: the folder of the maubot-plugin SDK, which Cargo.toml depends on by path
    /// [default: crates/maubot-plugin of the maubot-rs checkout mbc was built from].
    #[arg(long, value_name = "PATH", requires = "wasm")]
    pub sdk_path: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The plugin folder, holding maubot.yaml [default: .].
    pub path: Option<PathBuf>,
    /// Where to write the archive: a file, or a folder for {id}-v{version}.mbp
    /// [default: ./{id}-v{version}.mbp, none with --upload].
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Upload the archive after building it.
    #[arg(short, long)]
    pub upload: bool,
    /// The server to upload to: URL or alias (default: the default server).
    #[arg(short, long)]
    pub server: Option<String>,
}

#[derive(Debug, Args)]
pub struct UploadArgs {
    /// The .mbp archive.
    pub path: PathBuf,
    /// The server: URL or alias (default: the default server).
    #[arg(short, long)]
    pub server: Option<String>,
}

/// `-h` is the homeserver here, as in maubot's mbc; help is `--help` only.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct AuthArgs {
    /// The homeserver: a name from the server's `homeservers` config (see --list).
    #[arg(short = 'h', long)]
    pub homeserver: Option<String>,
    /// The Matrix user name (the localpart, e.g. mybot).
    #[arg(short, long)]
    pub username: Option<String>,
    /// The Matrix password (asked for on a terminal when not given).
    #[arg(short, long)]
    pub password: Option<String>,
    /// The maubot server: URL or alias (default: the default server).
    #[arg(short, long)]
    pub server: Option<String>,
    /// Register a new account (needs the homeserver's registration secret in the server's
    /// config) instead of logging in.
    #[arg(short, long)]
    pub register: bool,
    /// Make the account a bot client of the server (create it, or update its access token).
    #[arg(short = 'c', long)]
    pub update_client: bool,
    /// List the homeservers the server can register and log in on.
    #[arg(short, long)]
    pub list: bool,
    /// Log in with single sign-on in a browser instead of a password.
    #[arg(short = 'o', long)]
    pub sso: bool,
    /// The display name of the new Matrix device.
    #[arg(short = 'n', long, default_value = "Maubot")]
    pub device_name: String,
    /// Print help.
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The server: URL or alias (default: the default server).
    pub server: Option<String>,
    /// How many of the recent records to show before following.
    #[arg(short, long, default_value_t = 10)]
    pub tail: usize,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn auth_takes_h_for_the_homeserver() {
        let cli = Cli::try_parse_from(["mbc", "auth", "-h", "localhost", "-u", "bot", "-rc"])
            .expect("valid");
        let Command::Auth(auth) = cli.command else {
            panic!("not auth: {cli:?}")
        };
        assert_eq!(auth.homeserver.as_deref(), Some("localhost"));
        assert!(auth.register && auth.update_client && !auth.list);
        assert_eq!(auth.device_name, "Maubot");
        let help = Cli::try_parse_from(["mbc", "auth", "--help"]).expect_err("help");
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
    }

    #[test]
    fn init_takes_v_for_the_version() {
        let cli = Cli::try_parse_from(["mbc", "init", "-v", "1.0", "-c"]).expect("valid");
        let Command::Init(init) = cli.command else {
            panic!("not init: {cli:?}")
        };
        assert_eq!(init.version.as_deref(), Some("1.0"));
        assert!(init.config && !init.wasm);
        let cli =
            Cli::try_parse_from(["mbc", "init", "--wasm", "--sdk-path", "../sdk"]).expect("valid");
        let Command::Init(init) = cli.command else {
            panic!("not init: {cli:?}")
        };
        assert!(init.wasm);
        assert_eq!(
            init.sdk_path.as_deref(),
            Some(std::path::Path::new("../sdk"))
        );
        assert!(Cli::try_parse_from(["mbc", "init", "--sdk-path", "x"]).is_err());
    }
}
