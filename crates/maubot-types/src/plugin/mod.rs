//! Plugins as uploaded: the PEP 440 versions in their definitions ([`pep440`]).

pub mod pep440;

pub use pep440::{Version, VersionError};
