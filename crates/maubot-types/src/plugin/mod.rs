//! Plugins as uploaded: the definition `maubot.yaml` ([`meta`]) and the PEP 440 versions in it
//! ([`pep440`]).

pub mod meta;
pub mod pep440;

pub use meta::{DatabaseType, MetaError, PluginId, PluginIdError, PluginMeta};
pub use pep440::{Version, VersionError};
