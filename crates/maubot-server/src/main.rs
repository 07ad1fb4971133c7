use std::io::BufRead as _;
use std::process::ExitCode;

use clap::Parser as _;
use maubot_server::cli::{Cli, Command};
use maubot_server::{config_file, logging, server};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::HashPassword) => hash_password(),
        Some(Command::PreparePython) => prepare_python(&cli),
        Some(Command::Standalone { config, meta }) => standalone(config, meta),
        None => serve(&cli),
    }
}

fn serve(cli: &Cli) -> ExitCode {
    let file = match config_file::load_or_create(&cli.config) {
        Ok(file) => file,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = &file.created {
        announce_new_config(path, &file.loaded.config);
    }
    let config = file.loaded.config;
    logging::init(&config.logging);
    for key in &file.loaded.unknown_keys {
        tracing::warn!(target: "maubot.server", key = %key, "unknown config key `{key}` ignored");
    }
    for var in &file.loaded.env_overrides {
        tracing::info!(target: "maubot.server", "config overridden by environment variable {var}");
    }

    run_until_signal(|signal| async move { server::start(config).await?.run_until(signal).await })
}

/// Runs `serve` on a new async runtime until it ends, handing it the shutdown signal; its
/// error, with its causes, is the exit's.
fn run_until_signal<F, S>(serve: S) -> ExitCode
where
    S: FnOnce(std::pin::Pin<Box<dyn Future<Output = ()>>>) -> F,
    F: Future<Output = anyhow::Result<()>>,
{
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let signal = server::shutdown_signal()?;
        serve(Box::pin(signal)).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", error_chain(&err));
            ExitCode::FAILURE
        }
    }
}

fn standalone(config_path: &std::path::Path, meta: &std::path::Path) -> ExitCode {
    let text = match std::fs::read_to_string(config_path) {
        Ok(text) => text,
        Err(err) => {
            eprintln!("error: cannot read {}: {err}", config_path.display());
            return ExitCode::from(2);
        }
    };
    let data_dir = maubot_server::standalone::data_dir(config_path);
    let parsed = maubot_types::config::standalone::parse_standalone(
        &text,
        &data_dir.to_string_lossy(),
        std::env::vars(),
    );
    let standalone = match parsed {
        Ok(standalone) => standalone,
        Err(err) => {
            eprintln!("error: {}: {err}", config_path.display());
            return ExitCode::from(2);
        }
    };
    logging::init(&standalone.server.config.logging);
    for key in &standalone.server.unknown_keys {
        tracing::warn!(target: "maubot.standalone", key = %key, "unknown config key `{key}` ignored");
    }
    let plugin_dir = if meta.is_dir() {
        meta.to_owned()
    } else {
        meta.parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."))
            .to_owned()
    };
    run_until_signal(|signal| async move {
        maubot_server::standalone::run(standalone, &plugin_dir, signal).await
    })
}

/// The error and its causes on one line. Some libraries repeat their cause in their own message;
/// a cause already said is not said again.
fn error_chain(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain().map(ToString::to_string) {
        if !line.contains(&cause) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&cause);
        }
    }
    line
}

/// The one time the secret is shown: right after it was generated.
#[allow(clippy::print_stdout)]
fn announce_new_config(path: &std::path::Path, config: &maubot_types::config::Config) {
    println!("Wrote a new config file to {}", path.display());
    println!(
        "Admin secret (shown only now): {}",
        config.server.unshared_secret.expose()
    );
    println!(
        "Log in as root with `POST /_matrix/maubot/v1/auth/login {{\"secret\": \"...\"}}`, or add \
         admins with passwords (`maubot hash-password`) to the config's `admins` section."
    );
}

#[allow(clippy::print_stdout)]
fn prepare_python(cli: &Cli) -> ExitCode {
    let config = match config_file::load_existing(&cli.config) {
        Ok(loaded) => loaded.config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    logging::init(&config.logging);
    let prepared = tokio::runtime::Runtime::new()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
        .and_then(|runtime| {
            runtime
                .block_on(maubot_server::runtime::python::prepare_environment(
                    &config.python_host,
                ))
                .map_err(|e| e.to_string())
        });
    match prepared {
        Ok(python) => {
            println!("The Python plugin host is ready: {}", python.display());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::print_stdout)]
fn hash_password() -> ExitCode {
    let mut line = String::new();
    if let Err(err) = std::io::stdin().lock().read_line(&mut line) {
        eprintln!("error: cannot read the password: {err}");
        return ExitCode::FAILURE;
    }
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("error: the password is empty");
        return ExitCode::from(2);
    }
    match bcrypt::hash(password, bcrypt::DEFAULT_COST) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
