#![doc = include_str!("../README.md")]

mod bots;
mod cli;
mod compare;
mod procfs;
mod soak;
mod wasm;

use clap::Parser as _;

use crate::cli::{Bench, Cli};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().bench {
        Bench::Bots(args) => bots::run(args).await,
        Bench::Compare(args) => compare::run(args).await,
        Bench::Soak(args) => soak::run(args).await,
        // A runtime of its own, on one thread (not inside this one).
        Bench::Wasm(args) => std::thread::spawn(move || wasm::run(args))
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
    }
}

/// A bench's results: the table to standard error, the JSON to standard output and, if asked
/// for, to a file.
fn report(
    table: &str,
    json: &serde_json::Value,
    file: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    eprintln!();
    eprint!("{table}");
    if let Some(path) = file {
        std::fs::write(path, format!("{json:#}\n"))
            .with_context(|| format!("write {}", path.display()))?;
    }
    print_json(json);
    Ok(())
}

/// Results go to standard output, one JSON document; progress and tables to standard error.
fn print_json(value: &serde_json::Value) {
    #[allow(clippy::print_stdout)]
    {
        println!("{value}");
    }
}
