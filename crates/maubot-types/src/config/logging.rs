use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `logging`: Python's dictConfig shape: levels, and the stream and (rotating) file handlers
/// with their formatters.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct LoggingConfig {
    /// dictConfig schema version (always 1).
    pub version: u32,
    /// Levels by logger name prefix.
    pub loggers: BTreeMap<String, LoggerConfig>,
    /// The level of everything no logger entry covers.
    pub root: LoggerConfig,
    /// Formatters by name: `format` is a Python `%(name)s` format string (`asctime`,
    /// `levelname`, `levelno`, `name`, `message`, `module`, `lineno`, `process`, ...); maubot's
    /// `()`: `maubot.lib.color_log.ColorFormatter` adds colour on a terminal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub formatters: Option<serde_json::Value>,
    /// Handlers by name: `class` `logging.StreamHandler` (`stream: ext://sys.stdout` or
    /// standard error), `logging.FileHandler` or `logging.handlers.RotatingFileHandler`
    /// (`filename`, `maxBytes`, `backupCount`), each with an optional `formatter` and `level`.
    /// `root.handlers` says which are used. Without handlers, logs go to standard error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handlers: Option<serde_json::Value>,
    /// Accepted for compatibility with maubot configs; ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filters: Option<serde_json::Value>,
    /// Accepted for compatibility with maubot configs; ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_existing_loggers: Option<bool>,
    /// Accepted for compatibility with maubot configs; ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incremental: Option<bool>,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        let mut loggers = BTreeMap::new();
        loggers.insert("maubot".to_owned(), LoggerConfig::at(LogLevel::Debug));
        loggers.insert("mau".to_owned(), LoggerConfig::at(LogLevel::Debug));
        loggers.insert("aiohttp".to_owned(), LoggerConfig::at(LogLevel::Info));
        Self {
            version: 1,
            loggers,
            root: LoggerConfig::at(LogLevel::Info),
            formatters: None,
            handlers: None,
            filters: None,
            disable_existing_loggers: None,
            incremental: None,
        }
    }
}

/// One logger of `logging.loggers`, or `logging.root`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct LoggerConfig {
    /// `DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL` or `NOTSET` (everything).
    pub level: Option<LogLevel>,
    /// The handlers of `logging.handlers` records go to (honoured for `root`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handlers: Option<serde_json::Value>,
    /// Accepted for compatibility with maubot configs; ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub propagate: Option<bool>,
    /// Accepted for compatibility with maubot configs; ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filters: Option<serde_json::Value>,
}

impl LoggerConfig {
    fn at(level: LogLevel) -> Self {
        Self {
            level: Some(level),
            ..Self::default()
        }
    }
}

/// A Python logging level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[schemars(with = "String")]
pub enum LogLevel {
    NotSet,
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

impl LogLevel {
    /// A level by Python's name for it (any case; `WARN` and `FATAL` too).
    pub fn from_python_name(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "NOTSET" => Some(Self::NotSet),
            "DEBUG" => Some(Self::Debug),
            "INFO" => Some(Self::Info),
            "WARNING" | "WARN" => Some(Self::Warning),
            "ERROR" => Some(Self::Error),
            "CRITICAL" | "FATAL" => Some(Self::Critical),
            _ => None,
        }
    }

    pub fn python_name(self) -> &'static str {
        match self {
            Self::NotSet => "NOTSET",
            Self::Debug => "DEBUG",
            Self::Info => "INFO",
            Self::Warning => "WARNING",
            Self::Error => "ERROR",
            Self::Critical => "CRITICAL",
        }
    }

    /// Python's numeric level (`logging.DEBUG` = 10, ...).
    pub fn python_number(self) -> u32 {
        match self {
            Self::NotSet => 0,
            Self::Debug => 10,
            Self::Info => 20,
            Self::Warning => 30,
            Self::Error => 40,
            Self::Critical => 50,
        }
    }

    fn from_number(n: u64) -> Self {
        match n {
            0 => Self::NotSet,
            1..=10 => Self::Debug,
            11..=20 => Self::Info,
            21..=30 => Self::Warning,
            31..=40 => Self::Error,
            _ => Self::Critical,
        }
    }
}

impl Serialize for LogLevel {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.python_name())
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            Number(u64),
        }
        const EXPECTED: &str = "expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL, NOTSET";
        match Raw::deserialize(deserializer).map_err(|_| serde::de::Error::custom(EXPECTED))? {
            Raw::Number(n) => Ok(Self::from_number(n)),
            Raw::Name(name) => match Self::from_python_name(&name) {
                Some(level) => Ok(level),
                None => Err(serde::de::Error::custom(format!(
                    "{EXPECTED}, found `{name}`"
                ))),
            },
        }
    }
}
