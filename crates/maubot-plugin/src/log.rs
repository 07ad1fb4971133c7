//! The live log: records go under the instance's logger (`maubot.instance.<id>`).
//!
//! ```no_run
//! maubot_plugin::info!("started with {} rooms", 3);
//! ```

use crate::bindings::maubot::plugin::logging as wit;

/// How much a record matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
}

/// Logs `message` at `level`.
pub fn log(level: Level, message: &str) {
    let level = match level {
        Level::Debug => wit::Level::Debug,
        Level::Info => wit::Level::Info,
        Level::Warning => wit::Level::Warning,
        Level::Error => wit::Level::Error,
    };
    wit::log(level, message);
}

/// Logs at debug level, with `format!`'s arguments.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Debug, &::std::format!($($arg)+)) };
}

/// Logs at info level, with `format!`'s arguments.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Info, &::std::format!($($arg)+)) };
}

/// Logs at warning level, with `format!`'s arguments.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Warning, &::std::format!($($arg)+)) };
}

/// Logs at error level, with `format!`'s arguments.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Error, &::std::format!($($arg)+)) };
}
