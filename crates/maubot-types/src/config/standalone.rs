//! The config of standalone mode (`maubot standalone`): one bot running one plugin, with the
//! keys of maubot's standalone config (`user`, `server`, `database`, `plugin_config`, ...).
//! It becomes a server [`Config`](super::Config) without the management API and the web UI.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::load::{ConfigError, Loaded, parse_with_env};

/// The bot's account.
#[derive(Debug, Clone, Deserialize)]
pub struct Credentials {
    pub id: String,
    pub homeserver: String,
    pub access_token: String,
    /// Needed for end-to-end encryption.
    #[serde(default)]
    pub device_id: Option<String>,
}

/// `user`: the bot and how it behaves.
#[derive(Debug, Clone, Deserialize)]
pub struct StandaloneUser {
    pub credentials: Credentials,
    #[serde(default = "yes")]
    pub sync: bool,
    #[serde(default)]
    pub autojoin: bool,
    /// `disable` leaves the profile alone.
    #[serde(default = "disable")]
    pub displayname: String,
    #[serde(default = "disable")]
    pub avatar_url: String,
    /// maubot's appservice mode is not supported; `true` is refused.
    #[serde(default)]
    pub appservice: bool,
}

fn yes() -> bool {
    true
}

fn disable() -> String {
    "disable".to_owned()
}

/// A parsed standalone config.
#[derive(Debug)]
pub struct Standalone {
    pub user: StandaloneUser,
    /// The plugin instance's config, as YAML text (empty: the plugin's base config).
    pub plugin_config: String,
    /// The server config it runs on.
    pub server: Loaded,
}

/// maubot's environment overrides of standalone mode: the key's path upper-cased, `.` as `_`.
const ENV_KEYS: [(&str, &[&str]); 6] = [
    ("MAUBOT_USER_CREDENTIALS_ID", &["user", "credentials", "id"]),
    (
        "MAUBOT_USER_CREDENTIALS_HOMESERVER",
        &["user", "credentials", "homeserver"],
    ),
    (
        "MAUBOT_USER_CREDENTIALS_ACCESS_TOKEN",
        &["user", "credentials", "access_token"],
    ),
    (
        "MAUBOT_USER_CREDENTIALS_DEVICE_ID",
        &["user", "credentials", "device_id"],
    ),
    ("MAUBOT_DATABASE", &["database"]),
    ("MAUBOT_SERVER_PUBLIC_URL", &["server", "public_url"]),
];

/// Reads a standalone config. `data_dir` holds what the server keeps besides the database
/// (the plugin's archive, its instance database, compiled components); `env` is the process's
/// environment.
pub fn parse_standalone(
    text: &str,
    data_dir: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Standalone, ConfigError> {
    let mut tree = match serde_saphyr::from_str::<Value>(text) {
        Ok(Value::Object(map)) => map,
        Ok(Value::Null) => Map::new(),
        Ok(_) => return Err(ConfigError::NotAMapping),
        Err(err) => {
            let message = err.to_string();
            let first = message.lines().next().unwrap_or_default().to_owned();
            return Err(ConfigError::Syntax(first));
        }
    };
    for (name, value) in env {
        if let Some((_, path)) = ENV_KEYS.iter().find(|(key, _)| *key == name) {
            set(&mut tree, path, Value::String(value));
        }
    }
    let invalid = |key: &str, message: String| ConfigError::Invalid {
        key: key.to_owned(),
        message,
    };
    let user: StandaloneUser = serde_json::from_value(tree.remove("user").unwrap_or(Value::Null))
        .map_err(|e| invalid("user", e.to_string()))?;
    if user.appservice {
        return Err(invalid(
            "user.appservice",
            "appservice mode is not supported by maubot-rs".to_owned(),
        ));
    }
    let plugin_config = match tree.remove("plugin_config") {
        None | Some(Value::Null) => String::new(),
        Some(value @ Value::Object(_)) => {
            serde_saphyr::to_string(&value).map_err(|e| invalid("plugin_config", e.to_string()))?
        }
        Some(_) => return Err(invalid("plugin_config", "expected a mapping".to_owned())),
    };
    let server = match tree.remove("server") {
        Some(Value::Object(server)) => json!({
            "hostname": server.get("hostname").cloned().unwrap_or(json!("127.0.0.1")),
            "port": server.get("port").cloned().unwrap_or(json!(8080)),
            "public_url": server.get("public_url").cloned().unwrap_or(json!("http://localhost:8080")),
            "plugin_base_path": server.get("base_path").cloned().unwrap_or(json!("/")),
        }),
        // Plugin web apps need the server; without the section it listens on a loopback port of
        // the system's choosing, for nothing else.
        _ => json!({ "hostname": "127.0.0.1", "port": 0 }),
    };
    let mut config = Map::new();
    config.insert("server".into(), server);
    config.insert(
        "database".into(),
        tree.remove("database").unwrap_or(json!("sqlite:bot.db")),
    );
    config.insert(
        "crypto_db_pickle_key".into(),
        match tree.remove("crypto_db_pickle_key") {
            Some(Value::String(key)) if !key.is_empty() => Value::String(key),
            // maubot's default, so that a bot's keys stay readable across restarts.
            _ => json!("mau.crypto"),
        },
    );
    config.insert(
        "plugin_directories".into(),
        json!({
            "upload": format!("{data_dir}/plugins"),
            "load": [format!("{data_dir}/plugins")],
            "trash": format!("{data_dir}/trash"),
        }),
    );
    config.insert(
        "plugin_databases".into(),
        json!({ "sqlite": format!("{data_dir}/dbs") }),
    );
    config.insert("homeservers".into(), json!({}));
    let mut wasm_host = match tree.remove("wasm_host") {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    wasm_host
        .entry("cache_dir")
        .or_insert_with(|| json!(format!("{data_dir}/wasm-cache")));
    config.insert("wasm_host".into(), Value::Object(wasm_host));
    // The rest (database_opts, logging, python_host, metrics) means what it means for the server.
    for (key, value) in tree {
        config.insert(key, value);
    }
    // No API, so no token is ever signed with it; a fresh one keeps the server from warning.
    if let Some(Value::Object(server)) = config.get_mut("server") {
        server.insert(
            "unshared_secret".into(),
            Value::String(crate::secret::Secret::random(32).expose().to_owned()),
        );
    }
    let text = Value::Object(config).to_string();
    let mut server = parse_with_env(&text, std::iter::empty())?;
    server.config.server.management = false;
    Ok(Standalone {
        user,
        plugin_config,
        server,
    })
}

fn set(tree: &mut Map<String, Value>, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut map = tree;
    for key in parents {
        let entry = map
            .entry((*key).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(next) = entry else { return };
        map = next;
    }
    map.insert((*last).to_owned(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "user:\n  credentials:\n    id: '@bot:example.com'\n    homeserver: https://example.com\n    access_token: secret\n    device_id: DEV\n  autojoin: true\n  ignore_initial_sync: true\n\
                           database: sqlite:bot.db\nplugin_config:\n  greeting: Hi\nlogging:\n  root: {level: INFO}\n";

    #[test]
    fn a_maubot_standalone_config_becomes_a_server_config_without_api_or_ui() {
        let parsed = parse_standalone(EXAMPLE, "data", std::iter::empty()).expect("parse");
        assert_eq!(parsed.user.credentials.id, "@bot:example.com");
        assert_eq!(parsed.user.credentials.device_id.as_deref(), Some("DEV"));
        assert!(parsed.user.autojoin && parsed.user.sync);
        assert_eq!(parsed.user.displayname, "disable");
        assert_eq!(parsed.plugin_config.trim(), "greeting: Hi");
        let config = &parsed.server.config;
        assert!(!config.server.management);
        assert_eq!(config.server.port, 0);
        assert_eq!(config.plugin_directories.upload, "data/plugins");
        assert_eq!(config.plugin_databases.sqlite, "data/dbs");
        assert_eq!(config.crypto_db_pickle_key.expose(), "mau.crypto");
        assert!(
            parsed.server.unknown_keys.is_empty(),
            "{:?}",
            parsed.server.unknown_keys
        );
    }

    #[test]
    fn credentials_come_from_the_environment_as_in_maubot() {
        let env = [(
            "MAUBOT_USER_CREDENTIALS_ACCESS_TOKEN".to_owned(),
            "from-env".to_owned(),
        )];
        let parsed = parse_standalone(EXAMPLE, "data", env).expect("parse");
        assert_eq!(parsed.user.credentials.access_token, "from-env");
    }

    #[test]
    fn missing_credentials_and_appservice_mode_are_refused() {
        let err = parse_standalone("database: sqlite:x.db\n", "d", std::iter::empty())
            .expect_err("no user");
        assert!(
            matches!(err, ConfigError::Invalid { ref key, .. } if key == "user"),
            "{err}"
        );
        let appservice = EXAMPLE.replace("  autojoin: true", "  appservice: true");
        let err = parse_standalone(&appservice, "d", std::iter::empty()).expect_err("appservice");
        assert!(err.to_string().contains("appservice"), "{err}");
    }
}
