//! The one error type of the SDK: what the server answered, or what the SDK found wrong.

use std::fmt::Display;

use crate::bindings::maubot::plugin::types::Error as WitError;

/// Why something failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The server refused: a room the bot has not joined, a host the config does not list under
    /// `allowed_hosts`.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Too many calls too fast (the server limits each instance's sends); try again later.
    #[error("rate-limited")]
    RateLimited,
    /// What was asked for does not exist.
    #[error("not found")]
    NotFound,
    /// Anything else, with the reason (a failed SQL statement, a config that does not parse...).
    #[error("{0}")]
    Failed(String),
    /// A command's arguments do not fit it. Returned from a command handler, the router answers
    /// the sender with this text and the command's usage.
    #[error("{0}")]
    Usage(String),
}

/// `Result` with the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// [`Error::Failed`] from anything printable.
    pub fn failed(reason: impl Display) -> Self {
        Error::Failed(reason.to_string())
    }

    /// [`Error::Usage`] from anything printable.
    pub fn usage(reason: impl Display) -> Self {
        Error::Usage(reason.to_string())
    }
}

impl From<WitError> for Error {
    fn from(error: WitError) -> Self {
        match error {
            WitError::Forbidden(reason) => Error::Forbidden(reason),
            WitError::RateLimited => Error::RateLimited,
            WitError::NotFound => Error::NotFound,
            WitError::Failed(reason) => Error::Failed(reason),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Error::failed(format_args!("JSON: {error}"))
    }
}
