//! `maubot-cli.json`, the file maubot's mbc keeps its tokens in, in the same place and shape:
//!
//! ```json
//! {"servers": {"http://localhost:29316": "<token>"}, "aliases": {"local": "http://localhost:29316"}, "default_server": "http://localhost:29316"}
//! ```
//!
//! Keys mbc does not know are kept. The file is written with mode 0600: it holds tokens.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use maubot_types::secret::Secret;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Context as _, Failure, Result};

/// The file's name in the config folder.
pub const FILE_NAME: &str = "maubot-cli.json";

/// The contents of `maubot-cli.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct CliConfig {
    /// Server base URL → access token.
    #[serde(default)]
    pub servers: BTreeMap<String, Secret>,
    /// Alias → server base URL.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// The server used when none is given.
    #[serde(default)]
    pub default_server: Option<String>,
    /// Keys mbc does not know, kept as they were.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A server the user is logged in to.
#[derive(Debug, Clone)]
pub struct Server {
    /// Its base URL, as saved.
    pub url: String,
    /// Its token.
    pub token: Secret,
}

/// `$XDG_CONFIG_HOME/maubot-cli.json`, else `$HOME/.config/maubot-cli.json`.
pub fn path() -> Result<PathBuf> {
    let from = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = from("XDG_CONFIG_HOME") {
        return Ok(dir.join(FILE_NAME));
    }
    match from("HOME") {
        Some(home) => Ok(home.join(".config").join(FILE_NAME)),
        None => Err(Failure::new(
            "cannot find the config folder: neither XDG_CONFIG_HOME nor HOME is set",
        )
        .hint("set XDG_CONFIG_HOME to the folder that should hold maubot-cli.json")),
    }
}

/// A base URL as mbc saves it: without trailing slashes.
pub fn normalize_url(url: &str) -> String {
    url.trim().trim_end_matches('/').to_owned()
}

impl CliConfig {
    /// Reads the file at [`path()`]; a missing file is an empty config.
    pub fn load() -> Result<(CliConfig, PathBuf)> {
        let path = path()?;
        Ok((Self::load_from(&path)?, path))
    }

    pub fn load_from(path: &Path) -> Result<CliConfig> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Ok(CliConfig::default());
            }
            Err(err) => {
                return Err(Failure::new(format!("cannot read {}", path.display())).caused_by(&err));
            }
        };
        serde_json::from_str(&text).map_err(|err| {
            Failure::new(format!("{} is not a valid mbc config", path.display()))
                .caused_by(&err)
                .hint("fix the file, or delete it and log in again")
        })
    }

    /// Writes the file (mode 0600), replacing it atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the folder {}", dir.display()))?;
        let mut text = serde_json::to_string_pretty(self).context("cannot write the config")?;
        text.push('\n');
        let fail = |err: std::io::Error| {
            Failure::new(format!("cannot write {}", path.display())).caused_by(&err)
        };
        let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options.open(&tmp).and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        });
        if let Err(err) = written.and_then(|()| std::fs::rename(&tmp, path)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(fail(err));
        }
        Ok(())
    }

    /// The URL a `--server` value stands for: an alias's URL, else the value itself.
    pub fn url_for(&self, server: &str) -> String {
        match self.aliases.get(server) {
            Some(url) => normalize_url(url),
            None => normalize_url(server),
        }
    }

    /// The token saved for `url`, tolerating a trailing slash in the saved key.
    fn token_for(&self, url: &str) -> Option<(&String, &Secret)> {
        self.servers
            .get_key_value(url)
            .or_else(|| self.servers.get_key_value(&format!("{url}/")))
    }

    /// The server named by `--server` (a URL or an alias), or the default server, with its
    /// token. maubot's messages when there is none.
    pub fn resolve(&self, server: Option<&str>) -> Result<Server> {
        let url = match server {
            Some(server) => self.url_for(server),
            None => match &self.default_server {
                Some(default) => normalize_url(default),
                None => {
                    return Err(Failure::new(
                        "Default server not configured. Perhaps you forgot to mbc login?",
                    )
                    .hint("log in with `mbc login`, or name a server with --server"));
                }
            },
        };
        match self.token_for(&url) {
            Some((url, token)) => Ok(Server {
                url: normalize_url(url),
                token: token.clone(),
            }),
            None => Err(self.no_token(server, &url)),
        }
    }

    /// maubot's "No access token saved" with a hint: log in, or, for a name that is neither
    /// a URL nor an alias, what the aliases are.
    pub fn no_token(&self, given: Option<&str>, url: &str) -> Failure {
        let failure = Failure::new(format!("No access token saved for {url}."));
        let looks_like_url = url.contains("://");
        match given {
            Some(given) if !looks_like_url && !self.aliases.contains_key(given) => {
                let known: Vec<&str> = self.aliases.keys().map(String::as_str).collect();
                let aliases = if known.is_empty() {
                    "there are none yet".to_owned()
                } else {
                    format!("there are: {}", known.join(", "))
                };
                failure.hint(format!(
                    "`{given}` is neither a server URL nor an alias ({aliases}); give a URL like {} or log in with `mbc login -s URL -a {given}`",
                    crate::cli::DEFAULT_SERVER
                ))
            }
            _ => failure.hint(format!("log in first: mbc login -s {url}")),
        }
    }

    /// Saves a token after a login; the first server becomes the default.
    pub fn add_login(&mut self, url: &str, token: Secret, alias: Option<&str>) {
        let url = normalize_url(url);
        self.servers.remove(&format!("{url}/"));
        self.servers.insert(url.clone(), token);
        if self.default_server.is_none() {
            self.default_server = Some(url.clone());
        }
        if let Some(alias) = alias {
            self.aliases.insert(alias.to_owned(), url);
        }
    }

    /// Forgets a server's token; it stops being the default. Returns whether there was one.
    pub fn remove_login(&mut self, url: &str) -> bool {
        let url = normalize_url(url);
        let removed =
            self.servers.remove(&url).is_some() | self.servers.remove(&format!("{url}/")).is_some();
        if self
            .default_server
            .as_deref()
            .is_some_and(|default| normalize_url(default) == url)
        {
            self.default_server = None;
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_maubots_shape_keeping_unknown_keys() {
        let text = r#"{"servers": {"http://localhost:29316": "tok"}, "aliases": {"local": "http://localhost:29316"}, "default_server": "http://localhost:29316", "future": [1]}"#;
        let config: CliConfig = serde_json::from_str(text).expect("valid");
        assert_eq!(config.servers["http://localhost:29316"].expose(), "tok");
        let written: Value = serde_json::to_value(&config).expect("json");
        assert_eq!(written, serde_json::from_str::<Value>(text).expect("json"));
        let empty: Value = serde_json::to_value(CliConfig::default()).expect("json");
        assert_eq!(
            empty,
            serde_json::json!({"servers": {}, "aliases": {}, "default_server": null})
        );
    }

    #[test]
    fn resolution() {
        let mut config = CliConfig::default();
        let err = config.resolve(None).expect_err("no default");
        assert!(err.message.starts_with("Default server not configured"));
        config.add_login("http://a:1/", Secret::new("ta"), Some("a"));
        config.add_login("http://b:2", Secret::new("tb"), None);
        assert_eq!(config.default_server.as_deref(), Some("http://a:1"));
        assert_eq!(config.resolve(None).expect("default").token.expose(), "ta");
        assert_eq!(config.resolve(Some("a")).expect("alias").url, "http://a:1");
        assert_eq!(
            config
                .resolve(Some("http://b:2/"))
                .expect("url")
                .token
                .expose(),
            "tb"
        );
        let err = config.resolve(Some("nope")).expect_err("unknown alias");
        assert_eq!(err.message, "No access token saved for nope.");
        assert!(
            err.hints[0].contains("neither a server URL nor an alias"),
            "{err:?}"
        );
        let err = config.resolve(Some("http://c:3")).expect_err("no token");
        assert!(err.hints[0].contains("mbc login -s http://c:3"), "{err:?}");

        assert!(config.remove_login("http://a:1"));
        assert_eq!(config.default_server, None);
        assert!(!config.remove_login("http://a:1"));
        assert!(config.resolve(Some("a")).is_err());
    }

    #[test]
    fn saved_with_mode_0600() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("sub").join(FILE_NAME);
        let mut config = CliConfig::default();
        config.add_login("http://x", Secret::new("t"), None);
        config.save(&path).expect("saved");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = CliConfig::load_from(&path).expect("read");
        assert_eq!(again.servers["http://x"].expose(), "t");
    }
}
