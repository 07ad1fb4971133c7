#![doc = include_str!("../README.md")]

mod bots;
mod cli;
mod compare;
mod procfs;
mod wasm;

use clap::Parser as _;

use crate::cli::{Bench, Cli};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().bench {
        Bench::Bots(args) => bots::run(args).await,
        Bench::Compare(args) => compare::run(args).await,
        // A runtime of its own, on one thread (not inside this one).
        Bench::Wasm(args) => std::thread::spawn(move || wasm::run(args))
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
    }
}

/// Results go to standard output, one JSON document; progress and tables to standard error.
fn print_json(value: &serde_json::Value) {
    #[allow(clippy::print_stdout)]
    {
        println!("{value}");
    }
}
