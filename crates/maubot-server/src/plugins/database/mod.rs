//! Instances' own databases, as maubot places them: an SQLite file `<id>.db` in
//! `plugin_databases.sqlite`, or a schema `mbp_<id>` in the PostgreSQL database of
//! `plugin_databases.postgres`. Which one an instance gets is decided once and kept in its row
//! (`database_engine`). The server prepares the place before a start, hands the worker where it
//! is, moves it with a renamed instance, removes it with a deleted one, and answers the database
//! routes on it.

pub mod postgres;
pub mod sqlite;

use std::path::{Path, PathBuf};

use maubot_types::config::{Config, DatabaseUrl};
use maubot_types::plugin::DatabaseType;
use serde_json::{Value, json};

pub use crate::runtime::Placement;

const LOG: &str = "maubot.instance";

/// What went wrong with a query: the database's own message.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SqlError {
    pub message: String,
    /// A constraint refused the change (SQLAlchemy's `IntegrityError`).
    pub constraint: bool,
}

impl SqlError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            constraint: false,
        }
    }
}

impl From<sqlx::Error> for SqlError {
    fn from(err: sqlx::Error) -> Self {
        let constraint = err.as_database_error().is_some_and(|e| {
            matches!(
                e.kind(),
                sqlx::error::ErrorKind::UniqueViolation
                    | sqlx::error::ErrorKind::ForeignKeyViolation
                    | sqlx::error::ErrorKind::NotNullViolation
                    | sqlx::error::ErrorKind::CheckViolation
            )
        });
        Self {
            message: err.to_string(),
            constraint,
        }
    }
}

/// The database engine of an instance (`database_engine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    /// The engine a row records (`database_engine`; SQLite when none is recorded yet).
    pub fn recorded(engine: Option<&str>) -> Self {
        match engine {
            Some("postgres") => Self::Postgres,
            _ => Self::Sqlite,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// Which answers the database routes give: maubot's for mautrix's `Database`, or maubot's for
/// legacy SQLAlchemy engines (column `unique` flags, `inserted_primary_key`, errcodes by error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Asyncpg,
    Sqlalchemy,
}

/// Why an instance cannot have its database.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error("Unknown database_type {0} in maubot.yaml")]
    UnknownType(String),
    #[error("The instance's database is on PostgreSQL, but plugin_databases.postgres is not set")]
    NoPostgres,
    #[error("The instance's database_engine {0:?} is neither sqlite nor postgres")]
    UnknownEngine(String),
    #[error("The instance's database cannot be prepared: {0}")]
    Prepare(#[source] SqlError),
}

/// The instances' databases.
#[derive(Debug)]
pub struct Databases {
    sqlite_dir: PathBuf,
    postgres: Option<postgres::PluginPostgres>,
}

impl Databases {
    pub fn new(config: &Config) -> Self {
        let dir = Path::new(&config.plugin_databases.sqlite);
        let sqlite_dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
        let url = match config.plugin_databases.postgres.as_deref() {
            None | Some("") => None,
            Some("default") => match &config.database {
                DatabaseUrl::Postgres(url) => Some(url.clone()),
                DatabaseUrl::Sqlite(_) => {
                    tracing::warn!(
                        target: LOG,
                        "plugin_databases.postgres is `default`, but the main database is SQLite: \
                         instance databases stay on SQLite"
                    );
                    None
                }
            },
            Some(url) => Some(url.to_owned()),
        };
        let shares_main =
            matches!(&config.database, DatabaseUrl::Postgres(main) if Some(main) == url.as_ref());
        let postgres = url.map(|url| {
            postgres::PluginPostgres::new(
                url,
                config.plugin_databases.postgres_max_conns_per_plugin,
                shares_main,
            )
        });
        Self {
            sqlite_dir,
            postgres,
        }
    }

    /// The SQLite file an instance has or would have.
    pub fn sqlite_path(&self, id: &str) -> PathBuf {
        self.sqlite_dir.join(format!("{id}.db"))
    }

    /// The engine of an instance's database, as maubot decides it: the recorded one if any;
    /// otherwise SQLite when `<id>.db` exists or no PostgreSQL is configured, else PostgreSQL.
    /// (maubot keeps legacy SQLAlchemy databases on SQLite always; maubot-rs puts new ones on
    /// PostgreSQL too, when it is configured.)
    pub fn engine_for(
        &self,
        id: &str,
        interface: &DatabaseType,
        recorded: Option<&str>,
    ) -> Result<Engine, PlacementError> {
        if let DatabaseType::Other(other) = interface {
            return Err(PlacementError::UnknownType(other.clone()));
        }
        match recorded {
            Some("sqlite") => Ok(Engine::Sqlite),
            Some("postgres") if self.postgres.is_some() => Ok(Engine::Postgres),
            Some("postgres") => Err(PlacementError::NoPostgres),
            Some(other) => Err(PlacementError::UnknownEngine(other.to_owned())),
            None if self.postgres.is_none() || self.sqlite_path(id).exists() => Ok(Engine::Sqlite),
            None => Ok(Engine::Postgres),
        }
    }

    /// Makes the database ready for the instance's start: the SQLite file and its journal, or
    /// the schema.
    pub async fn prepare(&self, id: &str, engine: Engine) -> Result<Placement, PlacementError> {
        match engine {
            Engine::Sqlite => {
                let path = self.sqlite_path(id);
                sqlite::prepare_file(&path)
                    .await
                    .map_err(PlacementError::Prepare)?;
                Ok(Placement {
                    url: format!("sqlite:{}", path.display()),
                    schema: None,
                    max_conns: None,
                })
            }
            Engine::Postgres => {
                let postgres = self.postgres.as_ref().ok_or(PlacementError::NoPostgres)?;
                postgres
                    .create_schema(id)
                    .await
                    .map_err(PlacementError::Prepare)
            }
        }
    }

    /// Moves a renamed instance's database. A failure is an error: an instance that starts on
    /// an empty database under its new ID would look like data loss.
    pub async fn rename(&self, old: &str, new: &str, engine: Engine) -> Result<(), SqlError> {
        match engine {
            Engine::Sqlite => {
                let (from, to) = (self.sqlite_path(old), self.sqlite_path(new));
                if !from.exists() {
                    return Ok(());
                }
                if to.exists() {
                    return Err(SqlError::new(format!(
                        "{} exists already; not overwriting it",
                        to.display()
                    )));
                }
                std::fs::rename(&from, &to)
                    .map_err(|e| SqlError::new(format!("cannot rename {}: {e}", from.display())))?;
                // The journal goes along, or a hot one would be lost.
                let journal = sqlite::journal_of(&from);
                if journal.exists() {
                    std::fs::rename(&journal, sqlite::journal_of(&to)).map_err(|e| {
                        SqlError::new(format!("cannot rename {}: {e}", journal.display()))
                    })?;
                }
                Ok(())
            }
            Engine::Postgres => match &self.postgres {
                Some(postgres) => postgres.rename_schema(old, new).await,
                None => Err(SqlError::new("plugin_databases.postgres is not set")),
            },
        }
    }

    /// Removes a deleted instance's database: the SQLite file goes to the trash (see
    /// `plugin_directories.trash`), the schema is dropped.
    pub async fn remove(&self, id: &str, engine: Engine, trash_dir: &str) {
        match engine {
            Engine::Sqlite => {
                let path = self.sqlite_path(id);
                if path.exists() {
                    super::files::trash(&path, trash_dir, "deleted");
                }
                // An empty journal is left by the TRUNCATE mode; a hot one is of no use alone.
                let _ = std::fs::remove_file(sqlite::journal_of(&path));
            }
            Engine::Postgres => {
                if let Some(postgres) = &self.postgres
                    && let Err(err) = postgres.drop_schema(id).await
                {
                    tracing::warn!(target: LOG, instance = %id, error = %err, "Could not drop the instance's schema");
                }
            }
        }
    }

    /// `{"<table>": {"columns": {...}}}` of an instance's database.
    pub async fn tables(
        &self,
        id: &str,
        engine: Engine,
        flavor: Flavor,
    ) -> Result<Value, SqlError> {
        match engine {
            Engine::Sqlite => sqlite::tables(&self.sqlite_path(id), flavor).await,
            Engine::Postgres => self.pg()?.tables(id, flavor).await,
        }
    }

    /// The names of a table's columns; `None` if there is no such table.
    pub async fn columns(
        &self,
        id: &str,
        engine: Engine,
        table: &str,
    ) -> Result<Option<Vec<String>>, SqlError> {
        match engine {
            Engine::Sqlite => sqlite::columns(&self.sqlite_path(id), table).await,
            Engine::Postgres => self.pg()?.columns(id, table).await,
        }
    }

    /// Runs an admin's query as maubot's query route does.
    pub async fn query(
        &self,
        id: &str,
        engine: Engine,
        flavor: Flavor,
        sql: &str,
        rows_as_dict: bool,
    ) -> Result<Value, SqlError> {
        match engine {
            Engine::Sqlite => sqlite::query(&self.sqlite_path(id), flavor, sql, rows_as_dict).await,
            Engine::Postgres => self.pg()?.query(id, flavor, sql, rows_as_dict).await,
        }
    }

    fn pg(&self) -> Result<&postgres::PluginPostgres, SqlError> {
        self.postgres
            .as_ref()
            .ok_or_else(|| SqlError::new("plugin_databases.postgres is not set"))
    }
}

/// Puts `rows` (lists, or objects by column with `rows_as_dict`) and `columns` (when there are
/// any) into a query's answer.
pub(crate) fn put_rows(
    answer: &mut Value,
    names: Vec<String>,
    rows: Vec<Vec<Value>>,
    rows_as_dict: bool,
) {
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|cells| {
            if rows_as_dict {
                Value::Object(names.iter().cloned().zip(cells).collect())
            } else {
                Value::Array(cells)
            }
        })
        .collect();
    answer["rows"] = Value::Array(rows);
    if !names.is_empty() {
        answer["columns"] = json!(names);
    }
}

/// Whether a query answers rows, as maubot decides it (no leading whitespace or `WITH`).
pub(crate) fn is_select(sql: &str) -> bool {
    sql.to_uppercase().starts_with("SELECT")
}
