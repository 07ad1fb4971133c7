use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A database location, parsed once from the config.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite:<path>`; the path as written (relative to the working directory).
    Sqlite(String),
    /// `postgres://…` or `postgresql://…`, kept whole for the driver.
    Postgres(String),
}

const EXPECTED: &str = "expected `sqlite:<path>` or `postgres://user:password@host/database`";

impl FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Self::Postgres(s.to_owned()));
        }
        let Some(rest) = s.strip_prefix("sqlite:") else {
            return Err(format!("{EXPECTED}, found `{}`", redact_password(s)));
        };
        // maubot rewrites SQLAlchemy's `sqlite:///x` to `sqlite:x`; sqlx writes `sqlite://x`.
        let path = rest
            .strip_prefix("///")
            .or_else(|| rest.strip_prefix("//"))
            .unwrap_or(rest);
        if path.is_empty() {
            return Err(format!("{EXPECTED}: the SQLite path is empty"));
        }
        Ok(Self::Sqlite(path.to_owned()))
    }
}

impl DatabaseUrl {
    /// `sqlite` or `postgres`, as maubot names database engines.
    pub fn engine(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    fn to_config_text(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite:{path}"),
            Self::Postgres(url) => url.clone(),
        }
    }
}

/// Hides the password of `scheme://user:password@host`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:[redacted]@{host}"),
        None => url.to_owned(),
    }
}

/// Shows the URL without its password, so that configs and errors can be logged.
impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_password(&self.to_config_text()))
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_config_text())
    }
}

impl<'de> Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text =
            String::deserialize(deserializer).map_err(|_| serde::de::Error::custom(EXPECTED))?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for DatabaseUrl {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DatabaseUrl".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_maubots_forms() {
        let parse = |s: &str| s.parse::<DatabaseUrl>();
        assert_eq!(
            parse("sqlite:maubot.db"),
            Ok(DatabaseUrl::Sqlite("maubot.db".into()))
        );
        assert_eq!(
            parse("sqlite:///maubot.db"),
            Ok(DatabaseUrl::Sqlite("maubot.db".into()))
        );
        assert_eq!(
            parse("sqlite:////data/m.db"),
            Ok(DatabaseUrl::Sqlite("/data/m.db".into()))
        );
        assert_eq!(
            parse("postgresql://u@h/db"),
            Ok(DatabaseUrl::Postgres("postgresql://u@h/db".into()))
        );
        assert!(parse("mysql://x").is_err());
        assert!(parse("sqlite:").is_err());
    }

    #[test]
    fn never_shows_a_password() {
        let url: DatabaseUrl = "postgres://maubot:hunter2@db/maubot"
            .parse()
            .expect("valid");
        assert_eq!(url.to_string(), "postgres://maubot:[redacted]@db/maubot");
        let err = "mysql://root:hunter2@db/x"
            .parse::<DatabaseUrl>()
            .expect_err("invalid");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
