//! The instance's config: YAML text, as the admin wrote it (the plugin's `base-config.yaml`
//! is the starting point of new instances), parsed into the plugin's own type.
//!
//! ```
//! #[derive(serde::Deserialize)]
//! #[serde(default)]
//! struct Config {
//!     greeting: String,
//! }
//! impl Default for Config {
//!     fn default() -> Self {
//!         Config { greeting: "Hello".into() }
//!     }
//! }
//! let config: Config = maubot_plugin::config::parse("greeting: Hi\n").unwrap();
//! assert_eq!(config.greeting, "Hi");
//! let config: Config = maubot_plugin::config::parse("# nothing set\n").unwrap();
//! assert_eq!(config.greeting, "Hello");
//! ```

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer, Serialize};

use crate::bindings::maubot::plugin::config as wit;
use crate::{Error, Result};

/// The config of plugins that have none: any YAML is accepted and ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoConfig;

impl<'de> Deserialize<'de> for NoConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(deserializer).map(|_| NoConfig)
    }
}

/// Parses config YAML into `T`. An empty document (nothing, or only comments) is an empty
/// mapping, so a `#[serde(default)]` struct gets its defaults.
pub fn parse<T: DeserializeOwned>(yaml: &str) -> Result<T> {
    let empty = yaml
        .lines()
        .map(str::trim)
        .all(|line| line.is_empty() || line.starts_with('#') || line == "---");
    let yaml = if empty { "{}" } else { yaml };
    serde_yaml_ng::from_str(yaml).map_err(|err| Error::failed(format_args!("config: {err}")))
}

/// The instance's current config, as YAML text.
pub fn text() -> String {
    wit::get()
}

/// The instance's current config, parsed.
pub fn load<T: DeserializeOwned>() -> Result<T> {
    parse(&text())
}

/// Stores a changed config (as maubot's `self.config.save()`): the admin sees it, and the
/// plugin's `config_updated` is not called for it.
pub fn save<T: Serialize>(config: &T) -> Result<()> {
    let yaml = serde_yaml_ng::to_string(config)
        .map_err(|err| Error::failed(format_args!("config: {err}")))?;
    save_text(&yaml);
    Ok(())
}

/// Stores a changed config given as YAML text.
pub fn save_text(yaml: &str) {
    wit::save(yaml);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct Typed {
        greeting: String,
        #[serde(default)]
        admins: Vec<String>,
        #[serde(default)]
        limits: BTreeMap<String, u32>,
    }

    #[test]
    fn typed_configs() {
        let config: Typed = parse(
            "# The greeting.\ngreeting: 'Hello, world'\nadmins:\n- '@a:example.com'\nlimits: {sends: 5}\n",
        )
        .expect("valid");
        assert_eq!(config.greeting, "Hello, world");
        assert_eq!(config.admins, ["@a:example.com"]);
        assert_eq!(config.limits["sends"], 5);
        let yaml = serde_yaml_ng::to_string(&config).expect("serialise");
        assert_eq!(parse::<Typed>(&yaml).expect("round trip"), config);
    }

    #[test]
    fn errors_name_the_problem() {
        let err = parse::<Typed>("admins: []\n").expect_err("missing");
        assert!(err.to_string().contains("greeting"), "{err}");
        let err = parse::<Typed>("greeting: [unclosed\n").expect_err("not YAML");
        assert!(err.to_string().starts_with("config: "), "{err}");
        let err = parse::<Typed>("greeting: x\nlimits: {sends: -1}\n").expect_err("negative");
        assert!(matches!(err, Error::Failed(_)), "{err}");
    }

    #[test]
    fn empty_documents_are_empty_mappings() {
        #[derive(Debug, Deserialize, Default, PartialEq)]
        #[serde(default)]
        struct Defaults {
            n: u32,
        }
        assert_eq!(parse::<Defaults>(""), Ok(Defaults { n: 0 }));
        assert_eq!(
            parse::<Defaults>("# only a comment\n\n"),
            Ok(Defaults { n: 0 })
        );
        assert_eq!(parse::<Defaults>("n: 3"), Ok(Defaults { n: 3 }));
        assert_eq!(parse::<NoConfig>(""), Ok(NoConfig));
        assert_eq!(parse::<NoConfig>("a: [1, {b: c}]\n"), Ok(NoConfig));
        assert_eq!(parse::<NoConfig>("just text"), Ok(NoConfig));
    }
}
