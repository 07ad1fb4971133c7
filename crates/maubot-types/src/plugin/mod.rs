//! Plugins as uploaded: the `.mbp` archive ([`archive`]), its `maubot.yaml` ([`meta`]) and the
//! PEP 440 versions in it ([`pep440`]). Everything here works on bytes and text handed in; the
//! server decides where archives are stored.

pub mod archive;
pub mod meta;
pub mod pep440;

pub use archive::{ArchiveError, ArchiveLimits, PluginArchive};
pub use meta::{DatabaseType, MetaError, PluginId, PluginIdError, PluginMeta, PluginRuntime};
pub use pep440::{Version, VersionError};
