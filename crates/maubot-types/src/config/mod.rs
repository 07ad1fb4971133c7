//! The configuration file: maubot 0.6's keys with their meanings, plus a few maubot-rs additions
//! (marked as such). Every key is documented once, here; the example config is generated from
//! these doc comments (see [`example`]).

mod database_url;
mod example;
mod load;
mod logging;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub mod standalone;

pub use database_url::DatabaseUrl;
pub use example::example_yaml;
pub use load::{ConfigError, Loaded, parse, parse_with_env};
pub use logging::{LogLevel, LoggerConfig, LoggingConfig};

use crate::secret::Secret;

/// The whole configuration file.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Config {
    /// The main database: `sqlite:<path>` (relative paths are relative to the working directory)
    /// or `postgres://user:password@host/database`.
    pub database: DatabaseUrl,

    /// Key that encrypts the end-to-end encryption keys of the bots in the crypto database.
    pub crypto_db_pickle_key: Secret,

    /// Where the bots' end-to-end encryption keys are stored: `default` to use `database`, or a
    /// separate database URL of the same forms.
    pub crypto_database: CryptoDatabase,

    /// Directory of the bots' end-to-end encryption keys and room state, one SQLite store per bot
    /// (maubot-rs addition; `crypto_database` other than `default` is not supported yet).
    pub crypto_store_path: String,

    /// Connection pool sizes for the main database.
    pub database_opts: DatabaseOpts,

    /// Where plugin archives (`.mbp`) are kept.
    pub plugin_directories: PluginDirectories,

    /// Where plugin instances keep their own databases.
    pub plugin_databases: PluginDatabases,

    /// The management API and web server.
    pub server: ServerConfig,

    /// Homeservers that bot accounts can be registered on or logged into through the API and
    /// `mbc auth`. Each entry is `name: {url: <client API URL>, secret: <Synapse
    /// registration_shared_secret or null>}`; the secret is needed only to register new accounts.
    pub homeservers: BTreeMap<String, Homeserver>,

    /// Users who may log in to the management API, as `username: password`. The password is a
    /// bcrypt hash (`$2b$...`, recommended) or plaintext (accepted with a warning). An empty
    /// password means the user exists but cannot log in with a password. `root` always exists
    /// and can log in only with `server.unshared_secret`.
    pub admins: BTreeMap<String, AdminPassword>,

    /// Parts of the management API to enable. A disabled part's routes do not exist.
    pub api_features: ApiFeatures,

    /// The Python plugin host that runs maubot's Python plugins (maubot-rs addition).
    pub python_host: PythonHost,

    /// The runtime of WebAssembly plugins (`runtime: wasm` in `maubot.yaml`; maubot-rs
    /// addition): each instance in a sandbox of its own, with these limits.
    pub wasm_host: WasmHost,

    /// Logging, in the form of Python's logging dictConfig (as maubot reads it): the levels of
    /// `root` and of `loggers.<name>` (names are prefixes: `maubot`, `maubot.client`, `mau`,
    /// ...), and the handlers maubot's default config uses: stream handlers and (rotating) file
    /// handlers, each with its formatter and level. Without handlers, logs go to standard error.
    /// `RUST_LOG`, if set, replaces the levels.
    pub logging: LoggingConfig,

    /// Prometheus metrics (maubot-rs addition).
    pub metrics: Metrics,
}

impl Default for Config {
    fn default() -> Self {
        let mut homeservers = BTreeMap::new();
        homeservers.insert(
            "matrix.org".to_owned(),
            Homeserver {
                url: "https://matrix-client.matrix.org".to_owned(),
                secret: None,
            },
        );
        let mut admins = BTreeMap::new();
        admins.insert("root".to_owned(), AdminPassword::None);
        Self {
            database: DatabaseUrl::Sqlite("maubot.db".to_owned()),
            crypto_db_pickle_key: Secret::new("mau.crypto"),
            crypto_database: CryptoDatabase::Default,
            crypto_store_path: "./crypto-stores".to_owned(),
            database_opts: DatabaseOpts::default(),
            plugin_directories: PluginDirectories::default(),
            plugin_databases: PluginDatabases::default(),
            server: ServerConfig::default(),
            homeservers,
            admins,
            api_features: ApiFeatures::default(),
            python_host: PythonHost::default(),
            wasm_host: WasmHost::default(),
            logging: LoggingConfig::default(),
            metrics: Metrics::default(),
        }
    }
}

impl Config {
    /// The configuration written on first start: the defaults with a fresh random secret and
    /// pickle key. (maubot's default pickle key is the same everywhere, so anyone who can read a
    /// store could decrypt it.)
    pub fn generated() -> Self {
        let mut config = Self::default();
        config.server.unshared_secret = Secret::random(64);
        config.crypto_db_pickle_key = Secret::random(64);
        config
    }
}

/// `crypto_database`: `default` or a database URL. maubot's legacy map form
/// (`{type: postgres, postgres_uri: ...}`) is read too.
#[derive(Debug, Clone, PartialEq, Eq, Default, JsonSchema)]
#[schemars(with = "String")]
pub enum CryptoDatabase {
    /// Store crypto keys in the main database.
    #[default]
    Default,
    /// A separate database.
    Url(DatabaseUrl),
}

impl Serialize for CryptoDatabase {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Default => serializer.serialize_str("default"),
            Self::Url(url) => url.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for CryptoDatabase {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Legacy { postgres_uri: String },
        }
        let text = match Raw::deserialize(deserializer)
            .map_err(|_| serde::de::Error::custom("expected `default` or a database URL"))?
        {
            Raw::Text(text) => text,
            Raw::Legacy { postgres_uri } => postgres_uri,
        };
        if text == "default" {
            return Ok(Self::Default);
        }
        text.parse()
            .map(Self::Url)
            .map_err(serde::de::Error::custom)
    }
}

/// `database_opts`: pool sizes.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct DatabaseOpts {
    /// Connections kept open even when idle.
    pub min_size: u32,
    /// Most connections open at once.
    pub max_size: u32,
}

impl Default for DatabaseOpts {
    fn default() -> Self {
        Self {
            min_size: 1,
            max_size: 10,
        }
    }
}

/// `plugin_directories`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct PluginDirectories {
    /// Where uploaded plugins are written, as `<id>-v<version>.mbp`.
    pub upload: String,
    /// Directories scanned for `.mbp` files at start.
    pub load: Vec<String>,
    /// Where replaced and deleted plugin files are moved, or `delete` to delete them at once.
    pub trash: String,
}

impl Default for PluginDirectories {
    fn default() -> Self {
        Self {
            upload: "./plugins".to_owned(),
            load: vec!["./plugins".to_owned()],
            trash: "./trash".to_owned(),
        }
    }
}

/// `plugin_databases`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct PluginDatabases {
    /// Directory of the instances' SQLite databases (`<instance id>.db`).
    pub sqlite: String,
    /// PostgreSQL for instances of plugins that support it: `default` to use the main database
    /// (which must then be PostgreSQL), a `postgres://` URL, or null to use SQLite.
    pub postgres: Option<String>,
    /// Most PostgreSQL connections one instance may hold at once.
    pub postgres_max_conns_per_plugin: u32,
    /// Pool options for a separate plugin PostgreSQL database, over `database_opts`.
    pub postgres_opts: BTreeMap<String, serde_json::Value>,
}

impl Default for PluginDatabases {
    fn default() -> Self {
        Self {
            sqlite: "./plugins".to_owned(),
            postgres: None,
            postgres_max_conns_per_plugin: 3,
            postgres_opts: BTreeMap::new(),
        }
    }
}

/// `server`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ServerConfig {
    /// Address to listen on. `0.0.0.0` listens on all IPv4 interfaces.
    pub hostname: String,
    /// Port to listen on; 0 picks a free one (the log says which).
    pub port: u16,
    /// The public base URL of this server, without a trailing slash. Plugin web apps and login
    /// redirects are announced under it.
    pub public_url: String,
    /// Where the web UI is served (the path without its trailing slash redirects there).
    pub ui_base_path: String,
    /// Prefix under which plugin web apps are served (the instance ID is appended).
    pub plugin_base_path: String,
    /// A directory with a built web UI to serve instead of the bundled one, or false. Accepted
    /// for maubot's configs and ignored: maubot-rs's web UI is inside the binary.
    #[serde(serialize_with = "none_as_false", deserialize_with = "false_as_none")]
    #[schemars(with = "String")]
    pub override_resource_path: Option<String>,
    /// Key that signs management API tokens, and the secret that logs in as `root`. `generate`
    /// makes a new one at every start (maubot-rs never writes it back), which logs everyone out
    /// at each restart: put a long random string here instead.
    pub unshared_secret: Secret,
    /// Largest request body of a plugin upload, a plugin web app or the client proxy, in bytes
    /// (maubot-rs addition; maubot's limit is 100 MiB).
    pub max_body_size: u64,
    /// Largest JSON body of any other management API request, in bytes; routes that need no
    /// token (logins) take at most 16 KiB (maubot-rs addition).
    pub max_json_body_size: u64,
    /// Seconds a client may take to send a request's headers, which is also how long an idle
    /// keep-alive connection stays open (maubot-rs addition).
    pub request_header_timeout: f64,
    /// Seconds a request body may stall between two pieces before the request fails (maubot-rs
    /// addition).
    pub request_body_timeout: f64,
    /// Most connections served at once; further ones wait until one closes (maubot-rs
    /// addition).
    pub max_connections: usize,
    /// How long a management API token stays valid, in seconds; null means forever, as in
    /// maubot (maubot-rs addition). The web UI's session lasts as long.
    pub token_lifetime: Option<u64>,
    /// Whether the management API and the web UI are served. Not a config key: standalone mode
    /// (`maubot standalone`) turns them off.
    #[serde(skip)]
    #[schemars(skip)]
    pub management: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            hostname: "127.0.0.1".to_owned(),
            port: 29316,
            public_url: "http://localhost:29316".to_owned(),
            ui_base_path: "/_matrix/maubot".to_owned(),
            plugin_base_path: "/_matrix/maubot/plugin/".to_owned(),
            override_resource_path: None,
            unshared_secret: Secret::new("generate"),
            max_body_size: 100 * 1024 * 1024,
            max_json_body_size: 1024 * 1024,
            request_header_timeout: 15.0,
            request_body_timeout: 30.0,
            max_connections: 512,
            token_lifetime: None,
            management: true,
        }
    }
}

fn none_as_false<S: Serializer>(value: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(path) => serializer.serialize_str(path),
        None => serializer.serialize_bool(false),
    }
}

fn false_as_none<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Flag(bool),
        Path(String),
    }
    match Option::<Raw>::deserialize(deserializer)
        .map_err(|_| serde::de::Error::custom("expected a directory path or false"))?
    {
        None | Some(Raw::Flag(false)) => Ok(None),
        Some(Raw::Flag(true)) => Err(serde::de::Error::custom(
            "expected a directory path or false",
        )),
        Some(Raw::Path(path)) => Ok(Some(path)),
    }
}

/// One entry of `homeservers`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Homeserver {
    /// The homeserver's client API base URL.
    pub url: String,
    /// Synapse's `registration_shared_secret`, needed only to register new accounts.
    #[serde(default)]
    pub secret: Option<Secret>,
}

/// An admin's password as written in the config.
#[derive(Clone, PartialEq, Eq)]
pub enum AdminPassword {
    /// Empty: the admin exists but cannot log in with a password.
    None,
    /// A bcrypt hash (`$2a$`, `$2b$` or `$2y$`).
    Bcrypt(String),
    /// Plaintext. Usable, but should be replaced by a hash.
    Plaintext(Secret),
    /// The literal `password` of maubot's example config, which maubot also refuses.
    Placeholder,
}

impl AdminPassword {
    fn from_config_text(text: &str) -> Self {
        if text.is_empty() {
            Self::None
        } else if is_bcrypt_hash(text) {
            Self::Bcrypt(text.to_owned())
        } else if text == "password" {
            Self::Placeholder
        } else {
            Self::Plaintext(Secret::new(text))
        }
    }
}

/// maubot's test for "already hashed": `^\$2[ayb]\$.{56}$`.
fn is_bcrypt_hash(text: &str) -> bool {
    let bytes = text.as_bytes();
    text.chars().count() == 60
        && bytes.starts_with(b"$2")
        && matches!(bytes.get(2), Some(b'a' | b'y' | b'b'))
        && bytes.get(3) == Some(&b'$')
}

impl std::fmt::Debug for AdminPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "None",
            Self::Bcrypt(_) => "Bcrypt([redacted])",
            Self::Plaintext(_) => "Plaintext([redacted])",
            Self::Placeholder => "Placeholder",
        })
    }
}

impl Serialize for AdminPassword {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(match self {
            Self::None => "",
            Self::Bcrypt(hash) => hash,
            Self::Plaintext(secret) => secret.expose(),
            Self::Placeholder => "password",
        })
    }
}

impl<'de> Deserialize<'de> for AdminPassword {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Option::<Secret>::deserialize(deserializer)?.unwrap_or_default();
        Ok(Self::from_config_text(text.expose()))
    }
}

impl JsonSchema for AdminPassword {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "AdminPassword".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string" })
    }
}

/// `python_host` (maubot-rs addition): each Python plugin runs in its own worker process, in a
/// Python environment the server prepares itself.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct PythonHost {
    /// The Python interpreter (3.10 or newer) that creates the environment; null picks the
    /// newest one found (`python3.14` ... `python3.10` on the `PATH`, Pythons installed by
    /// pyenv, then `python3`), as plugins written for maubot's container image use its newer
    /// Python's syntax.
    pub interpreter: Option<String>,
    /// Directory of the environment (a venv with maubot-rs's `maubot` package and `mautrix`),
    /// created and updated on first need.
    pub venv: String,
    /// Seconds a plugin's `start()` may take before its worker is restarted and the instance
    /// reported failed.
    pub start_timeout: f64,
    /// Seconds between liveness checks of each worker.
    pub ping_interval: f64,
    /// Seconds a worker may take to answer a liveness check before it is killed and restarted.
    pub ping_timeout: f64,
    /// Fork workers from one pre-loaded Python process (the zygote), so that they share its
    /// imports' memory and start in milliseconds; off, each worker is a Python process of its
    /// own.
    pub zygote: bool,
    /// Confine each worker with Landlock (Linux 5.13 or newer): it can read only the system's
    /// libraries, its Python and its plugin, and write only its instances' databases and a
    /// private temporary folder. Turn off only for plugins that must reach other files.
    pub sandbox: bool,
    /// More files or folders every worker may read (for plugins that read local files).
    pub sandbox_read: Vec<String>,
    /// More folders every worker may read and write.
    pub sandbox_write: Vec<String>,
}

impl Default for PythonHost {
    fn default() -> Self {
        Self {
            interpreter: None,
            venv: "./python-env".to_owned(),
            start_timeout: 60.0,
            ping_interval: 10.0,
            ping_timeout: 10.0,
            zygote: true,
            sandbox: true,
            sandbox_read: Vec::new(),
            sandbox_write: Vec::new(),
        }
    }
}

/// `metrics` (maubot-rs addition): Prometheus metrics in the text format at `GET /metrics`, on a
/// listener of their own. It answers without authentication, so keep it on a private address.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Metrics {
    /// Serve the metrics.
    pub enabled: bool,
    /// The address the metrics listener binds to.
    pub hostname: String,
    /// Its port (0: any free one, logged at start).
    pub port: u16,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            enabled: false,
            hostname: "127.0.0.1".to_owned(),
            port: 29317,
        }
    }
}

/// `wasm_host` (maubot-rs addition): limits of WebAssembly plugin instances.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct WasmHost {
    /// Where compiled plugin components are kept, so that a start does not compile again.
    pub cache_dir: String,
    /// Most memory one instance may have, in MiB.
    pub memory_limit: u64,
    /// Fuel one call of a plugin may burn (about one unit per WebAssembly instruction): an
    /// endless loop runs out of it.
    pub fuel_per_call: u64,
    /// Seconds one call of a plugin may take in all, waiting for the server included.
    pub call_timeout: f64,
    /// Messages an instance may send per second, on average.
    pub sends_per_second: f64,
    /// Messages an instance may send at once before `sends_per_second` applies.
    pub send_burst: u32,
    /// Events waiting for one instance; while that many wait, newer ones are dropped (and
    /// logged).
    pub queue_length: usize,
}

impl Default for WasmHost {
    fn default() -> Self {
        Self {
            cache_dir: "./wasm-cache".to_owned(),
            memory_limit: 64,
            fuel_per_call: 1_000_000_000,
            call_timeout: 30.0,
            sends_per_second: 5.0,
            send_burst: 20,
            queue_length: 1024,
        }
    }
}

/// `api_features`: which parts of the management API exist. Also the body of `GET /features`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ApiFeatures {
    /// `POST /auth/login`.
    pub login: bool,
    /// Listing, reading, reloading and deleting plugins.
    pub plugin: bool,
    /// Uploading plugins.
    pub plugin_upload: bool,
    /// Plugin instances.
    pub instance: bool,
    /// Browsing and querying instance databases.
    pub instance_database: bool,
    /// Bot accounts (clients).
    pub client: bool,
    /// The proxy to the bots' homeservers used by the web UI (avatar uploads).
    pub client_proxy: bool,
    /// Registering and logging in bot accounts (also enables `client`, as in maubot).
    pub client_auth: bool,
    /// maubot's "open in editor" debug route for plugin developers; maubot-rs opens no editors.
    pub dev_open: bool,
    /// The live log websocket.
    pub log: bool,
}

impl Default for ApiFeatures {
    fn default() -> Self {
        Self {
            login: true,
            plugin: true,
            plugin_upload: true,
            instance: true,
            instance_database: true,
            client: true,
            client_proxy: true,
            client_auth: true,
            dev_open: true,
            log: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_admin_passwords_like_maubot() {
        let hash = "$2b$04$0123456789012345678901uB3Q9b6M8e6V0yQ7oTqkq0a9m8e7c6e";
        assert_eq!(hash.len(), 60);
        assert_eq!(
            AdminPassword::from_config_text(hash),
            AdminPassword::Bcrypt(hash.to_owned())
        );
        assert_eq!(AdminPassword::from_config_text(""), AdminPassword::None);
        assert_eq!(
            AdminPassword::from_config_text("password"),
            AdminPassword::Placeholder
        );
        assert_eq!(
            AdminPassword::from_config_text("$2b$04$short"),
            AdminPassword::Plaintext(Secret::new("$2b$04$short"))
        );
        assert_eq!(
            format!("{:?}", AdminPassword::from_config_text("x")),
            "Plaintext([redacted])"
        );
    }
}
