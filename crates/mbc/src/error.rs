//! What a failed command tells the user: an `error:` line, `caused by:` lines, `hint:` lines and,
//! before them, details such as a plugin's traceback. [`crate::term::Term::report`] prints it.

use std::fmt;

/// A failed command, as shown to the user. Every failure exits with status 1.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong, one line.
    pub message: String,
    /// The chain of underlying errors, outermost first.
    pub causes: Vec<String>,
    /// What to do about it.
    pub hints: Vec<String>,
    /// Text printed before the error as it is (a plugin's traceback).
    pub details: Option<String>,
}

pub type Result<T, E = Failure> = std::result::Result<T, E>;

impl Failure {
    pub fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            causes: Vec::new(),
            hints: Vec::new(),
            details: None,
        }
    }

    /// Adds a hint line.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    /// Adds `err` and its sources as `caused by:` lines (repeated texts are left out: some
    /// errors repeat their source's text in their own).
    pub fn caused_by(mut self, err: &(dyn std::error::Error + 'static)) -> Self {
        let mut next = Some(err);
        while let Some(err) = next {
            let text = err.to_string();
            let known =
                self.message.contains(&text) || self.causes.iter().any(|c| c.contains(&text));
            if !text.is_empty() && !known {
                self.causes.push(text);
            }
            next = err.source();
        }
        self
    }

    /// Sets the details printed before the error.
    pub fn details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// `.context("cannot read x")` on results whose error is a standard error: the message becomes
/// the `error:` line and the error the `caused by:` lines.
pub trait Context<T> {
    fn context(self, message: impl Into<String>) -> Result<T>;
    fn with_context<M: Into<String>>(self, message: impl FnOnce() -> M) -> Result<T>;
}

impl<T, E: std::error::Error + 'static> Context<T> for std::result::Result<T, E> {
    fn context(self, message: impl Into<String>) -> Result<T> {
        self.map_err(|err| Failure::new(message).caused_by(&err))
    }

    fn with_context<M: Into<String>>(self, message: impl FnOnce() -> M) -> Result<T> {
        self.map_err(|err| Failure::new(message()).caused_by(&err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_follow_the_source_chain_without_repeats() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let failure = Failure::new("cannot read x").caused_by(&io);
        assert_eq!(failure.causes, ["no such file"]);
        let failure = Failure::new("cannot read x: no such file").caused_by(&io);
        assert!(failure.causes.is_empty());
    }
}
