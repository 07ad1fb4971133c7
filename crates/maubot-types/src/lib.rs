#![doc = include_str!("../README.md")]

pub mod config;
pub mod plugin;
pub mod registration;
pub mod secret;
pub mod token;

/// The maubot version whose behaviour this implementation follows. Reported by `GET /version`
/// and used as "this instance's version" in plugin compatibility checks.
pub const MAUBOT_COMPAT_VERSION: &str = "0.6.0";
