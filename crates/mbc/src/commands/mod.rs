//! One module per verb. Each takes its parsed arguments and the terminal, prints its result on
//! stdout and returns a [`Failure`](crate::error::Failure) when it fails.

mod auth;
mod build;
mod init;
mod login;
mod logs;
mod upload;

use crate::cli::Command;
use crate::error::Result;
use crate::term::Term;

/// Runs one command.
pub async fn run(command: Command, term: &Term) -> Result<()> {
    match command {
        Command::Login(args) => login::login(args, term).await,
        Command::Logout(args) => login::logout(args, term),
        Command::Init(args) => init::init(args, term),
        Command::Build(args) => build::build(args, term).await,
        Command::Upload(args) => upload::upload(args, term).await,
        Command::Auth(args) => auth::auth(args, term).await,
        Command::Logs(args) => logs::logs(args, term).await,
    }
}
