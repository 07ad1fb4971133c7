//! `maubot.yaml`, the plugin definition at the root of every `.mbp` archive
//! (docs/compatibility.md, "Plugin archives").

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::pep440::Version;
use crate::MAUBOT_COMPAT_VERSION;

/// The fields every `maubot.yaml` must have.
const REQUIRED: [&str; 2] = ["id", "version"];
/// What a Python plugin must have besides.
const REQUIRED_PYTHON: [&str; 2] = ["modules", "main_class"];
/// What a WebAssembly plugin must have besides.
const REQUIRED_WASM: [&str; 1] = ["wasm"];

/// A plugin's definition, read from `maubot.yaml`.
///
/// Fields are in the order maubot writes them back (`mbc build`). [`PluginMeta::parse`] checks
/// everything documented here; a value built by hand can be checked with
/// [`PluginMeta::validate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginMeta {
    /// The oldest maubot version the plugin works with (default: [`MAUBOT_COMPAT_VERSION`]).
    #[serde(default = "default_maubot_version")]
    pub maubot: Version,
    /// The plugin's ID, by convention Java-package style (`xyz.maubot.echo`).
    pub id: PluginId,
    /// The plugin's version.
    pub version: Version,
    /// SPDX identifier of the plugin's licence; informational.
    #[serde(default)]
    pub license: String,
    /// What runs the plugin's code (maubot-rs addition): `python` (maubot's plugins, the
    /// default) or `wasm` (a WebAssembly component, see `wasm`).
    #[serde(default, skip_serializing_if = "PluginRuntime::is_python")]
    pub runtime: PluginRuntime,
    /// Top-level Python modules to import, in order. Never empty for Python plugins.
    #[serde(default)]
    pub modules: Vec<String>,
    /// `Class` (in the last of `modules`) or `module/Class`; see [`PluginMeta::main_module`].
    /// Python plugins only.
    #[serde(default)]
    pub main_class: String,
    /// The component of a WebAssembly plugin: a `.wasm` file in the archive (maubot-rs
    /// addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasm: Option<String>,
    /// Globs of further files `mbc build` puts in the archive. Build time only.
    #[serde(default)]
    pub extra_files: Vec<String>,
    /// pip requirements, installed by maubot-rs before the plugin's first start (maubot
    /// ignores them). Empty entries (a bare `- `) are dropped, as maubot accepts them.
    #[serde(default, deserialize_with = "requirements")]
    pub dependencies: Vec<String>,
    /// Optional pip requirements: installed by maubot-rs when they can be; a failure is only a
    /// warning.
    #[serde(default, deserialize_with = "requirements")]
    pub soft_dependencies: Vec<String>,
    /// Whether instances get a database.
    #[serde(default)]
    pub database: bool,
    /// Which database interface the plugin uses, if `database` is set.
    #[serde(default)]
    pub database_type: DatabaseType,
    /// Whether the plugin has a config (ignored by the server, which asks the plugin class).
    #[serde(default)]
    pub config: bool,
    /// Whether instances get a web app under the plugin URL.
    #[serde(default)]
    pub webapp: bool,
    /// Keys maubot-rs does not know, kept as they were and written back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A list of requirements, without the empty entries a bare `- ` gives.
fn requirements<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let entries = Option::<Vec<Option<String>>>::deserialize(deserializer)?;
    Ok(entries
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| !entry.trim().is_empty())
        .collect())
}

/// What runs a plugin's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginRuntime {
    /// maubot's Python plugins, in the Python plugin host.
    #[default]
    Python,
    /// A WebAssembly component of the `maubot:plugin` world, in the WebAssembly runtime.
    Wasm,
}

impl PluginRuntime {
    pub fn is_python(&self) -> bool {
        *self == Self::Python
    }
}

fn default_maubot_version() -> Version {
    Version::parse(MAUBOT_COMPAT_VERSION)
        .unwrap_or_else(|_| unreachable!("MAUBOT_COMPAT_VERSION is a valid version"))
}

/// Why a `maubot.yaml` could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    /// The text is not YAML (or not UTF-8). The detail gives line and column.
    #[error("not valid YAML: {0}")]
    Syntax(String),
    /// The YAML does not describe a plugin: a field is missing or has a wrong value.
    #[error("{field}: {detail}")]
    Invalid {
        /// The field, as a path (`version`, `modules[1]`).
        field: String,
        /// What is wrong and what is expected, on one line.
        detail: String,
    },
}

impl MetaError {
    fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        MetaError::Invalid {
            field: field.into(),
            detail: detail.into(),
        }
    }
}

impl PluginMeta {
    /// Reads a `maubot.yaml`. `null` values mean "the default"; unknown keys are kept in
    /// [`PluginMeta::extra`].
    pub fn parse(yaml: &str) -> Result<PluginMeta, MetaError> {
        // YAML 1.2 booleans only, as maubot's ruamel.yaml reads them: a module named `y` or
        // `on` is a string.
        let mut options = serde_saphyr::Options::default();
        options.strict_booleans = true;
        let tree = match serde_saphyr::from_str_with_options::<Value>(yaml, options) {
            Ok(tree) => tree,
            Err(err) => return Err(MetaError::Syntax(yaml_error_line(&err.to_string()))),
        };
        let mut map = match tree {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            _ => {
                return Err(MetaError::invalid(
                    "(top level)",
                    "must be a mapping of keys to values",
                ));
            }
        };
        map.retain(|key, value| !(value.is_null() && is_known_field(key)));
        let wasm = map.get("runtime").and_then(Value::as_str) == Some("wasm");
        let required = REQUIRED.iter().chain(if wasm {
            REQUIRED_WASM.as_slice()
        } else {
            REQUIRED_PYTHON.as_slice()
        });
        if let Some(missing) = required.into_iter().find(|key| !map.contains_key(**key)) {
            return Err(MetaError::invalid(*missing, "required field is missing"));
        }
        let meta: PluginMeta =
            serde_path_to_error::deserialize(Value::Object(map)).map_err(|err| {
                MetaError::Invalid {
                    field: err.path().to_string(),
                    detail: one_line(&err.inner().to_string()),
                }
            })?;
        meta.validate()?;
        Ok(meta)
    }

    /// Checks what [`PluginMeta::parse`] checks beyond types: for Python plugins, `modules` is
    /// a non-empty list of Python module names and `main_class` names a class (and optionally
    /// its module); for WebAssembly plugins, `wasm` is a `.wasm` file's path in the archive.
    pub fn validate(&self) -> Result<(), MetaError> {
        if self.runtime == PluginRuntime::Wasm {
            return match self.wasm.as_deref() {
                Some(path) if path.ends_with(".wasm") && !path.starts_with('/') => Ok(()),
                _ => Err(MetaError::invalid(
                    "wasm",
                    "must be the path of the plugin's `.wasm` component in the archive",
                )),
            };
        }
        if self.modules.is_empty() {
            return Err(MetaError::invalid(
                "modules",
                "must list at least one Python module",
            ));
        }
        for (i, module) in self.modules.iter().enumerate() {
            if !is_python_identifier(module) {
                return Err(MetaError::invalid(
                    format!("modules[{i}]"),
                    format!(
                        "`{module}` is not a Python module name (a top-level module: letters, digits and `_`, no dots)"
                    ),
                ));
            }
        }
        let (module, class) = match self.main_class.split_once('/') {
            Some((module, class)) => (Some(module), class),
            None => (None, self.main_class.as_str()),
        };
        if let Some(module) = module
            && !module.split('.').all(is_python_identifier)
        {
            return Err(MetaError::invalid(
                "main_class",
                format!(
                    "`{module}` is not a Python module name; the form is `Class` or `module/Class`"
                ),
            ));
        }
        if !is_python_identifier(class) {
            return Err(MetaError::invalid(
                "main_class",
                format!(
                    "`{class}` is not a Python class name; the form is `Class` or `module/Class`"
                ),
            ));
        }
        Ok(())
    }

    /// The module holding the main class: the part before `/` of `main_class`, else the last
    /// of `modules`.
    pub fn main_module(&self) -> &str {
        match self.main_class.split_once('/') {
            Some((module, _)) => module,
            None => self.modules.last().map_or("", String::as_str),
        }
    }

    /// The name of the main class, without its module.
    pub fn main_class_name(&self) -> &str {
        match self.main_class.split_once('/') {
            Some((_, class)) => class,
            None => &self.main_class,
        }
    }

    /// The plugin's minimum maubot version, if it is newer than `ours`.
    pub fn requires_newer_maubot(&self, ours: &Version) -> Option<&Version> {
        (self.maubot > *ours).then_some(&self.maubot)
    }

    /// Every field, defaults and unknown keys included, as maubot serialises a plugin
    /// definition (versions in their normalised spelling). This is what the Python plugin
    /// host receives.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self)
            .unwrap_or_else(|err| unreachable!("a PluginMeta is always JSON: {err}"))
    }

    /// `maubot.yaml` text with every field, as `mbc build` writes into an archive.
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self)
            .unwrap_or_else(|err| unreachable!("a PluginMeta is always YAML: {err}"))
    }
}

fn is_known_field(key: &str) -> bool {
    matches!(
        key,
        "maubot"
            | "id"
            | "version"
            | "license"
            | "modules"
            | "main_class"
            | "extra_files"
            | "dependencies"
            | "soft_dependencies"
            | "database"
            | "database_type"
            | "config"
            | "webapp"
            | "runtime"
            | "wasm"
    )
}

/// The database interface a plugin uses (`database_type`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DatabaseType {
    /// `sqlalchemy`: the legacy synchronous SQLAlchemy engine (SQLite only).
    #[default]
    Sqlalchemy,
    /// `asyncpg`: mautrix's asynchronous `Database` (SQLite or PostgreSQL).
    Asyncpg,
    /// Any other value: accepted, as by maubot, but no instance of such a plugin can start.
    Other(String),
}

impl DatabaseType {
    /// The value as written in `maubot.yaml`.
    pub fn as_str(&self) -> &str {
        match self {
            DatabaseType::Sqlalchemy => "sqlalchemy",
            DatabaseType::Asyncpg => "asyncpg",
            DatabaseType::Other(other) => other,
        }
    }
}

impl fmt::Display for DatabaseType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for DatabaseType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for DatabaseType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match String::deserialize(deserializer)?.as_str() {
            "sqlalchemy" => DatabaseType::Sqlalchemy,
            "asyncpg" => DatabaseType::Asyncpg,
            other => DatabaseType::Other(other.to_owned()),
        })
    }
}

/// A plugin ID that can be used as a file name.
///
/// maubot does not check IDs at all, but it (and maubot-rs) writes them into paths:
/// `{upload dir}/{id}-v{version}.mbp`, plugin web paths, instance data directories. So an ID
/// here must be non-empty, at most [`PluginId::MAX_LEN`] bytes, and contain no `/`, `\` or NUL,
/// and it cannot be `.` or `..`. IDs also show in logs, terminals and the web UI, so control
/// characters (line feeds, terminal escapes) and invisible formatting characters (bidi
/// overrides, zero-width characters) are refused too.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PluginId(String);

/// Why a text is not a usable plugin ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginIdError {
    /// The ID is empty.
    #[error("the plugin ID is empty")]
    Empty,
    /// The ID is longer than [`PluginId::MAX_LEN`] bytes.
    #[error("the plugin ID is longer than {} bytes", PluginId::MAX_LEN)]
    TooLong,
    /// The ID cannot be part of a file name.
    #[error(
        "the plugin ID `{0}` cannot be used as a file name (no `/`, `\\` or NUL, not `.` or `..`)"
    )]
    NotAFileName(String),
    /// The ID holds a control or invisible formatting character (shown escaped).
    #[error(
        "the plugin ID {0:?} contains a control or invisible character; use printable characters, e.g. `com.example.myplugin`"
    )]
    NotPrintable(String),
}

impl PluginId {
    /// The longest ID accepted, in bytes: a file name (usually at most 255 bytes) must also hold
    /// `-v{version}.mbp`.
    pub const MAX_LEN: usize = 200;

    /// Checks that `id` can be used as a plugin ID.
    pub fn parse(id: &str) -> Result<PluginId, PluginIdError> {
        if id.is_empty() {
            return Err(PluginIdError::Empty);
        }
        if id.len() > Self::MAX_LEN {
            return Err(PluginIdError::TooLong);
        }
        if id == "." || id == ".." || id.contains(['/', '\\', '\0']) {
            return Err(PluginIdError::NotAFileName(id.to_owned()));
        }
        if id.chars().any(|c| c.is_control() || is_invisible_format(c)) {
            return Err(PluginIdError::NotPrintable(id.to_owned()));
        }
        Ok(PluginId(id.to_owned()))
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Unicode format characters (category Cf) that change how text around them is shown without
/// showing themselves: bidi controls, zero-width characters, the byte order mark.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

impl fmt::Display for PluginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for PluginId {
    type Err = PluginIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PluginId::parse(s)
    }
}

impl<'de> Deserialize<'de> for PluginId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        PluginId::parse(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// Whether `name` is a Python identifier that is not a keyword, so `import name` works.
/// Python allows Unicode identifiers (XID classes); Rust's alphabetic/alphanumeric classes are
/// close to them.
pub(crate) fn is_python_identifier(name: &str) -> bool {
    const KEYWORDS: [&str; 35] = [
        "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class",
        "continue", "def", "del", "elif", "else", "except", "finally", "for", "from", "global",
        "if", "import", "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return",
        "try", "while", "with", "yield",
    ];
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first == '_' || first.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
        && !KEYWORDS.contains(&name)
}

/// The YAML parser's message without its source snippet, on one line.
fn yaml_error_line(message: &str) -> String {
    let message = message.split("-->").next().unwrap_or_default();
    one_line(message.trim_start_matches("error: "))
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ECHO: &str = "\
maubot: 0.1.0
id: xyz.maubot.echo
version: 1.4.0
license: MIT
modules:
- echo
main_class: EchoBot
database: false
";

    fn invalid(yaml: &str) -> (String, String) {
        match PluginMeta::parse(yaml) {
            Err(MetaError::Invalid { field, detail }) => (field, detail),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn reads_a_real_definition() {
        let meta = PluginMeta::parse(ECHO).expect("valid");
        assert_eq!(meta.id.as_str(), "xyz.maubot.echo");
        assert_eq!(meta.version, Version::parse("1.4").expect("valid"));
        assert_eq!(meta.maubot.to_string(), "0.1.0");
        assert_eq!(meta.license, "MIT");
        assert_eq!(meta.modules, ["echo"]);
        assert_eq!(meta.main_module(), "echo");
        assert_eq!(meta.main_class_name(), "EchoBot");
        assert_eq!(meta.database_type, DatabaseType::Sqlalchemy);
        assert!(!meta.webapp && !meta.config && !meta.database);
        assert!(meta.extra.is_empty());
    }

    #[test]
    fn defaults_and_nulls() {
        let meta = PluginMeta::parse(
            "id: a\nversion: '1.0'\nmodules: [a, b]\nmain_class: A\nmaubot: null\nlicense: ~\ndatabase_type: null\n",
        )
        .expect("valid");
        assert_eq!(meta.maubot.to_string(), MAUBOT_COMPAT_VERSION);
        assert_eq!(meta.license, "");
        assert_eq!(meta.database_type, DatabaseType::Sqlalchemy);
        assert_eq!(meta.main_module(), "b", "the last module by default");
        assert!(meta.extra.is_empty());
    }

    #[test]
    fn main_class_with_module() {
        let meta = PluginMeta::parse("id: a\nversion: 1.0.0\nmodules: [a, b]\nmain_class: a/Bot\n")
            .expect("valid");
        assert_eq!(meta.main_module(), "a");
        assert_eq!(meta.main_class_name(), "Bot");
        let meta =
            PluginMeta::parse("id: a\nversion: 1.0.0\nmodules: [a]\nmain_class: a.bot/Bot\n")
                .expect("a dotted main module");
        assert_eq!(meta.main_module(), "a.bot");
    }

    #[test]
    fn database_types() {
        for (text, expected) in [
            ("asyncpg", DatabaseType::Asyncpg),
            ("sqlalchemy", DatabaseType::Sqlalchemy),
            ("mongodb", DatabaseType::Other("mongodb".into())),
        ] {
            let meta = PluginMeta::parse(&format!(
                "id: a\nversion: 1.0.0\nmodules: [a]\nmain_class: A\ndatabase: true\ndatabase_type: {text}\n"
            ))
            .expect("valid");
            assert_eq!(meta.database_type, expected);
            assert_eq!(meta.to_json()["database_type"], text);
        }
    }

    #[test]
    fn yaml_numbers_are_not_versions() {
        // maubot refuses them too: `Version(1.0)` is a type error.
        let (field, detail) = invalid("id: a\nversion: 1.0\nmodules: [a]\nmain_class: A\n");
        assert_eq!(field, "version");
        assert!(detail.contains("PEP 440"), "{detail}");
        let (field, _) = invalid("id: a\nversion: 1\nmodules: [a]\nmain_class: A\n");
        assert_eq!(field, "version");
        let (field, _) = invalid("id: a\nversion: '1'\nmaubot: 0.3\nmodules: [a]\nmain_class: A\n");
        assert_eq!(field, "maubot");
        let (field, detail) = invalid("id: a\nversion: one\nmodules: [a]\nmain_class: A\n");
        assert_eq!(field, "version");
        assert!(
            detail.contains("`one` is not a PEP 440 version"),
            "{detail}"
        );
    }

    #[test]
    fn names_the_field_in_every_error() {
        let cases = [
            ("version: '1'\nmodules: [a]\nmain_class: A\n", "id"),
            (
                "id: null\nversion: '1'\nmodules: [a]\nmain_class: A\n",
                "id",
            ),
            ("id: a\nmodules: [a]\nmain_class: A\n", "version"),
            ("id: a\nversion: '1'\nmain_class: A\n", "modules"),
            ("id: a\nversion: '1'\nmodules: [a]\n", "main_class"),
            (
                "id: a\nversion: '1'\nmodules: a\nmain_class: A\n",
                "modules",
            ),
            (
                "id: a\nversion: '1'\nmodules: []\nmain_class: A\n",
                "modules",
            ),
            (
                "id: a\nversion: '1'\nmodules: [a, a.b]\nmain_class: A\n",
                "modules[1]",
            ),
            (
                "id: a\nversion: '1'\nmodules: [a, class]\nmain_class: A\n",
                "modules[1]",
            ),
            (
                "id: a\nversion: '1'\nmodules: [a, [b]]\nmain_class: A\n",
                "modules[1]",
            ),
            (
                "id: a\nversion: '1'\nmodules: [a]\nmain_class: A B\n",
                "main_class",
            ),
            (
                "id: a\nversion: '1'\nmodules: [a]\nmain_class: a/b/C\n",
                "main_class",
            ),
            (
                "id: a\nversion: '1'\nmodules: [a]\nmain_class: /C\n",
                "main_class",
            ),
            (
                "id: a\nversion: '1'\nmodules: [a]\nmain_class: A\ndatabase: maybe\n",
                "database",
            ),
            (
                "id: a\nversion: '1'\nmodules: [a]\nmain_class: A\nextra_files: x\n",
                "extra_files",
            ),
            ("id: ''\nversion: '1'\nmodules: [a]\nmain_class: A\n", "id"),
            (
                "id: ../etc\nversion: '1'\nmodules: [a]\nmain_class: A\n",
                "id",
            ),
            (
                "id: '..'\nversion: '1'\nmodules: [a]\nmain_class: A\n",
                "id",
            ),
            (
                "id: 'a\\b'\nversion: '1'\nmodules: [a]\nmain_class: A\n",
                "id",
            ),
            ("id: 12\nversion: '1'\nmodules: [a]\nmain_class: A\n", "id"),
            ("[1, 2]\n", "(top level)"),
            ("", "id"),
        ];
        for (yaml, expected) in cases {
            let (field, detail) = invalid(yaml);
            assert_eq!(field, expected, "{yaml:?}: {detail}");
            assert!(!detail.contains('\n'), "{detail}");
        }
    }

    #[test]
    fn syntax_errors_are_one_line() {
        let err = PluginMeta::parse("id: [unclosed\n").expect_err("invalid");
        let MetaError::Syntax(detail) = &err else {
            panic!("expected Syntax, got {err:?}");
        };
        assert!(!detail.contains('\n'), "{detail}");
        assert!(err.to_string().starts_with("not valid YAML: "));
        assert!(matches!(
            PluginMeta::parse("id: a\nid: b\n"),
            Err(MetaError::Syntax(_))
        ));
    }

    #[test]
    fn unknown_keys_are_kept_and_written_back() {
        let yaml = "id: a\nversion: v1.0-1\nmodules: [a]\nmain_class: A\n\
                    custom: {nested: [1, true, x]}\nnothing: null\n";
        let meta = PluginMeta::parse(yaml).expect("valid");
        assert_eq!(meta.extra["custom"], json!({"nested": [1, true, "x"]}));
        assert_eq!(meta.extra["nothing"], Value::Null);
        assert_eq!(
            meta.to_json(),
            json!({
                "maubot": "0.6.0",
                "id": "a",
                "version": "1.0.post1",
                "license": "",
                "modules": ["a"],
                "main_class": "A",
                "extra_files": [],
                "dependencies": [],
                "soft_dependencies": [],
                "database": false,
                "database_type": "sqlalchemy",
                "config": false,
                "webapp": false,
                "custom": {"nested": [1, true, "x"]},
                "nothing": null,
            })
        );
    }

    /// `y` was read as `true` (YAML 1.1) and refused as a module name.
    #[test]
    fn booleans_are_yaml_1_2() {
        let meta = PluginMeta::parse(
            "id: a\nversion: '1'\nmodules: [y, on]\nmain_class: A\nwebapp: True\nx: yes\n",
        )
        .expect("valid");
        assert_eq!(meta.modules, ["y", "on"]);
        assert!(meta.webapp);
        assert_eq!(meta.extra["x"], "yes");
    }

    /// Regression: a bare `- ` under `dependencies` was refused (`dependencies[0]: invalid type:
    /// null`); maubot accepts it.
    #[test]
    fn empty_requirement_entries_are_dropped() {
        let meta = PluginMeta::parse(
            "id: a\nversion: '1'\nmodules: [a]\nmain_class: A\ndependencies:\n- \n- pytz\n\
             soft_dependencies:\n-\n",
        )
        .expect("valid");
        assert_eq!(meta.dependencies, ["pytz"]);
        assert!(meta.soft_dependencies.is_empty());
        let meta =
            PluginMeta::parse("id: a\nversion: '1'\nmodules: [a]\nmain_class: A\ndependencies:\n")
                .expect("valid");
        assert!(meta.dependencies.is_empty());
    }

    #[test]
    fn webassembly_plugins_name_their_component_not_modules() {
        let meta = PluginMeta::parse(
            "id: a\nversion: '1'\nruntime: wasm\nwasm: ping.wasm\ndatabase: true\n",
        )
        .expect("valid");
        assert_eq!(meta.runtime, PluginRuntime::Wasm);
        assert_eq!(meta.wasm.as_deref(), Some("ping.wasm"));
        assert!(meta.modules.is_empty());
        assert!(meta.to_yaml().contains("runtime: wasm"));
        let missing = PluginMeta::parse("id: a\nversion: '1'\nruntime: wasm\n");
        assert!(matches!(missing, Err(MetaError::Invalid { field, .. }) if field == "wasm"));
        let python =
            PluginMeta::parse("id: a\nversion: '1'\nmodules: [a]\nmain_class: A\n").expect("valid");
        assert!(
            !python.to_yaml().contains("runtime"),
            "Python plugins stay maubot's"
        );
        assert!(
            PluginMeta::parse("id: a\nversion: '1'\nruntime: java\nmodules: [a]\nmain_class: A\n")
                .is_err()
        );
    }

    #[test]
    fn yaml_round_trips() {
        let yaml = "id: xyz.maubot.x\nversion: '2.0'\nmaubot: 0.4.1\nmodules: [x, y]\n\
                    main_class: x/X\ndatabase: true\ndatabase_type: asyncpg\nconfig: true\n\
                    webapp: true\nextra_files: [base-config.yaml]\ndependencies: ['a>=1']\n\
                    license: AGPL-3.0-or-later\ncustom: {yes: '1.0', list: [1.5, null]}\n";
        let meta = PluginMeta::parse(yaml).expect("valid");
        let written = meta.to_yaml();
        let again = PluginMeta::parse(&written).unwrap_or_else(|e| panic!("{e}\n{written}"));
        assert_eq!(again, meta, "{written}");
        assert_eq!(again.to_json(), meta.to_json(), "{written}");
    }

    #[test]
    fn minimum_maubot_version() {
        let ours = Version::parse(MAUBOT_COMPAT_VERSION).expect("valid");
        let with = |min: &str| {
            PluginMeta::parse(&format!(
                "id: a\nversion: '1'\nmodules: [a]\nmain_class: A\nmaubot: {min}\n"
            ))
            .expect("valid")
        };
        assert_eq!(with("0.1.0").requires_newer_maubot(&ours), None);
        assert_eq!(with("0.6.0").requires_newer_maubot(&ours), None);
        assert!(with("0.6.0+local").requires_newer_maubot(&ours).is_some());
        let meta = with("0.6.1");
        assert_eq!(
            meta.requires_newer_maubot(&ours).map(ToString::to_string),
            Some("0.6.1".to_owned())
        );
    }

    #[test]
    fn plugin_ids() {
        assert!(PluginId::parse("xyz.maubot.echo").is_ok());
        assert!(PluginId::parse("with space-and_ünïcode").is_ok());
        for bad in [
            "a\nb",
            "a\u{1b}[31mb",
            "a\u{202E}b",
            "a\u{200B}b",
            "\u{FEFF}a",
            "a\tb",
        ] {
            assert!(
                matches!(PluginId::parse(bad), Err(PluginIdError::NotPrintable(_))),
                "{bad:?}"
            );
        }
        assert_eq!(PluginId::parse(""), Err(PluginIdError::Empty));
        assert_eq!(
            PluginId::parse(&"a".repeat(201)),
            Err(PluginIdError::TooLong)
        );
        for bad in [".", "..", "a/b", "a\\b", "a\0b"] {
            assert!(
                matches!(PluginId::parse(bad), Err(PluginIdError::NotAFileName(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn python_identifiers() {
        for ok in ["echo", "_x", "a1", "échos", "Bot"] {
            assert!(is_python_identifier(ok), "{ok}");
        }
        for bad in ["", "1a", "a.b", "a-b", "class", "None", "a b"] {
            assert!(!is_python_identifier(bad), "{bad}");
        }
    }
}
