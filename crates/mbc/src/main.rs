#![doc = include_str!("../README.md")]

mod archive;
mod cargo;
mod cli;
mod commands;
mod config;
mod error;
mod http;
mod term;

use std::process::ExitCode;

use clap::Parser as _;

use crate::error::Failure;
use crate::term::Term;

/// Exit statuses: 0 success, 1 a failed command, 2 a usage error (from clap).
fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let term = Term::detect();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            term.report(&Failure::new("cannot start the async runtime").caused_by(&err));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli.command, &term)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            term.report(&failure);
            ExitCode::FAILURE
        }
    }
}
