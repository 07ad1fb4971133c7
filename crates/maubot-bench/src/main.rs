#![doc = include_str!("../README.md")]

mod bots;
mod cli;
mod compare;
mod procfs;

use clap::Parser as _;

use crate::cli::{Bench, Cli};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().bench {
        Bench::Bots(args) => bots::run(args).await,
        Bench::Compare(args) => compare::run(args).await,
    }
}

/// Results go to standard output, one JSON document; progress and tables to standard error.
fn print_json(value: &serde_json::Value) {
    #[allow(clippy::print_stdout)]
    {
        println!("{value}");
    }
}
