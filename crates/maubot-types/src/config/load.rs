//! Reading a config file's text into [`Config`], with environment overrides.

use serde_json::{Map, Value};

use super::Config;

/// Prefix of environment variables that override config keys: `MAUBOT_SERVER__PORT=8080` sets
/// `server.port`; `__` separates levels, single underscores stay part of the key.
pub const ENV_PREFIX: &str = "MAUBOT_";

/// A parsed config and what the operator should hear about it.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    /// Keys that maubot-rs does not know (dotted paths); they were ignored.
    pub unknown_keys: Vec<String>,
    /// Environment variables that overrode keys of the file.
    pub env_overrides: Vec<String>,
}

/// Why a config could not be used. Each renders as one line naming the key and what was expected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The text is not YAML.
    #[error("the config file is not valid YAML: {0}")]
    Syntax(String),
    /// The top level is not a mapping.
    #[error("the config file must be a YAML mapping of keys to values")]
    NotAMapping,
    /// A key has a value of the wrong form.
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

/// Parses a config file's text.
pub fn parse(text: &str) -> Result<Loaded, ConfigError> {
    parse_with_env(text, std::iter::empty())
}

/// Parses a config file's text, then applies the `MAUBOT_*` variables among `env`.
pub fn parse_with_env(
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Loaded, ConfigError> {
    let mut tree = match serde_saphyr::from_str::<Value>(text) {
        Ok(Value::Null) => Value::Object(Map::new()),
        Ok(tree @ Value::Object(_)) => tree,
        Ok(_) => return Err(ConfigError::NotAMapping),
        // The parser's message ends with a source snippet; the line and column are enough.
        Err(err) => {
            let message = err.to_string();
            let message = message.split("-->").next().unwrap_or_default();
            return Err(ConfigError::Syntax(one_line(
                message.trim_start_matches("error: "),
            )));
        }
    };
    strip_nulls(&mut tree, false);

    let mut env_overrides = Vec::new();
    let mut env: Vec<_> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    env.sort();
    for (name, value) in env {
        let path: Vec<String> = name[ENV_PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        set_path(&mut tree, &path, env_scalar(&value)).map_err(|message| ConfigError::Invalid {
            key: path.join("."),
            message: format!("{message} (from {name})"),
        })?;
        env_overrides.push(name);
    }

    let mut unknown_keys = Vec::new();
    let mut note_unknown = |path: serde_ignored::Path<'_>| unknown_keys.push(path.to_string());
    let deserializer = serde_ignored::Deserializer::new(&tree, &mut note_unknown);
    let config: Config =
        serde_path_to_error::deserialize(deserializer).map_err(|err| ConfigError::Invalid {
            key: err.path().to_string(),
            message: one_line(&err.inner().to_string()),
        })?;
    Ok(Loaded {
        config,
        unknown_keys,
        env_overrides,
    })
}

/// maubot copies a key from the user's file only if it is not null, so null means "default".
/// `admins` is the exception: there the key's presence is what matters.
fn strip_nulls(value: &mut Value, keep_null_entries: bool) {
    match value {
        Value::Object(map) => {
            if !keep_null_entries {
                map.retain(|_, v| !v.is_null());
            }
            for (key, child) in map.iter_mut() {
                strip_nulls(child, key == "admins");
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| strip_nulls(v, false)),
        _ => {}
    }
}

fn set_path(tree: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let Some((last, parents)) = path.split_last() else {
        return Ok(());
    };
    let mut node = tree;
    for (depth, key) in parents.iter().enumerate() {
        let Value::Object(map) = node else {
            return Err(format!("`{}` is not a section", path[..depth].join(".")));
        };
        node = map
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    let Value::Object(map) = node else {
        return Err(format!("`{}` is not a section", parents.join(".")));
    };
    map.insert(last.clone(), value);
    Ok(())
}

/// An environment value read as a YAML scalar would be: booleans, integers and null are typed;
/// everything else is a string.
fn env_scalar(text: &str) -> Value {
    match text {
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        "null" | "~" => Value::Null,
        _ => text
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| text.parse::<u64>().map(Value::from))
            .unwrap_or_else(|_| Value::String(text.to_owned())),
    }
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AdminPassword, DatabaseUrl};

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn empty_file_is_all_defaults() {
        let loaded = parse("").expect("valid");
        assert_eq!(loaded.config.server.port, 29316);
        assert!(loaded.unknown_keys.is_empty());
    }

    #[test]
    fn reads_a_maubot_config() {
        let loaded = parse(
            "database: postgres://maubot@localhost/maubot\n\
             server:\n  hostname: 0.0.0.0\n  port: 8080\n  listen: unused\n\
             admins:\n  root: ''\n  alice: null\n  bob: hunter2\n\
             plugin_databases:\n  postgres: null\n\
             logging:\n  version: 1\n  formatters: {normal: {format: x}}\n  handlers: {console: {class: logging.StreamHandler}}\n  loggers: {maubot: {level: DEBUG}}\n  root: {level: INFO, handlers: [console]}\n",
        )
        .expect("valid");
        let config = loaded.config;
        assert_eq!(
            config.database,
            DatabaseUrl::Postgres("postgres://maubot@localhost/maubot".into())
        );
        assert_eq!(config.server.hostname, "0.0.0.0");
        assert_eq!(config.server.port, 8080);
        // A null password keeps the admin (it cannot log in with a password).
        assert_eq!(config.admins["alice"], AdminPassword::None);
        assert!(!config.admins.contains_key("carol"));
        assert!(matches!(config.admins["bob"], AdminPassword::Plaintext(_)));
        assert_eq!(loaded.unknown_keys, vec!["server.listen".to_owned()]);
    }

    #[test]
    fn environment_overrides_the_file() {
        let loaded = parse_with_env(
            "server:\n  port: 8080\n",
            env(&[
                ("MAUBOT_SERVER__PORT", "9000"),
                ("MAUBOT_DATABASE", "sqlite:/tmp/x.db"),
                ("MAUBOT_API_FEATURES__LOG", "false"),
                ("MAUBOT_SERVER__UNSHARED_SECRET", "12345"),
                ("HOME", "/root"),
            ]),
        )
        .expect("valid");
        assert_eq!(loaded.config.server.port, 9000);
        assert_eq!(
            loaded.config.database,
            DatabaseUrl::Sqlite("/tmp/x.db".into())
        );
        assert!(!loaded.config.api_features.log);
        assert!(loaded.config.server.unshared_secret.ct_eq("12345"));
        assert_eq!(loaded.env_overrides.len(), 4);
    }

    #[test]
    fn errors_name_the_key_on_one_line() {
        let err = parse("server:\n  port: abc\n").expect_err("invalid");
        let text = err.to_string();
        assert!(text.starts_with("config key `server.port`:"), "{text}");
        assert!(!text.contains('\n'));

        let err = parse("database: mysql://x\n").expect_err("invalid");
        assert!(err.to_string().contains("`database`"), "{err}");
        assert!(err.to_string().contains("sqlite:<path>"), "{err}");

        let err = parse_with_env("database: sqlite:x\n", env(&[("MAUBOT_DATABASE__X", "1")]))
            .expect_err("invalid");
        assert!(err.to_string().contains("MAUBOT_DATABASE__X"), "{err}");

        assert_eq!(
            parse("- a\n- b\n").expect_err("invalid"),
            ConfigError::NotAMapping
        );
        let err = parse("server: [unclosed\n").expect_err("invalid");
        assert!(matches!(err, ConfigError::Syntax(_)), "{err:?}");
        assert!(!err.to_string().contains('\n'));
    }
}
