//! The main database: SQLite or PostgreSQL, chosen by the config's URL, with embedded migrations.

use std::str::FromStr;
use std::time::Duration;

use maubot_types::config::{DatabaseOpts, DatabaseUrl};
use sqlx::Connection as _;
use sqlx::pool::PoolOptions;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};

/// Errors of the database boundary.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database could not be opened or reached.
    #[error("cannot open the {engine} database {url}")]
    Connect {
        engine: &'static str,
        url: DatabaseUrl,
        source: sqlx::Error,
    },
    /// The schema could not be brought up to date.
    #[error("cannot update the database schema")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database query failed")]
    Query(#[from] sqlx::Error),
}

pub type Result<T, E = DbError> = std::result::Result<T, E>;

/// One set of migrations while the schema is plain SQL both engines read alike; split per engine
/// when the dialects first differ.
static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A pool on the main database. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Database {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to whichever pool `$db` holds. sqlx's query builders are
/// generic over the database, so one body serves both; write placeholders as `$1`, which both
/// SQLite and PostgreSQL accept.
#[macro_export]
macro_rules! with_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::db::Database::Sqlite($pool) => $body,
            $crate::db::Database::Postgres($pool) => $body,
        }
    };
}

fn pool_options<DB: sqlx::Database>(opts: &DatabaseOpts) -> PoolOptions<DB> {
    PoolOptions::new()
        .min_connections(opts.min_size)
        .max_connections(opts.max_size.max(1))
        .acquire_timeout(Duration::from_secs(10))
}

impl Database {
    /// Opens the database and brings its schema up to date.
    pub async fn open(url: &DatabaseUrl, opts: &DatabaseOpts) -> Result<Self> {
        let connect_error = |source| DbError::Connect {
            engine: url.engine(),
            url: url.clone(),
            source,
        };
        let db = match url {
            DatabaseUrl::Sqlite(path) => {
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(5));
                let pool = pool_options::<sqlx::Sqlite>(opts)
                    .connect_with(options)
                    .await
                    .map_err(connect_error)?;
                Self::Sqlite(pool)
            }
            DatabaseUrl::Postgres(text) => {
                let options = PgConnectOptions::from_str(text).map_err(connect_error)?;
                // One direct connection first: the pool would retry until its timeout and then
                // report only "timed out", hiding the real cause (refused, bad password, ...).
                PgConnection::connect_with(&options)
                    .await
                    .map_err(connect_error)?
                    .close()
                    .await
                    .map_err(connect_error)?;
                let pool = pool_options::<sqlx::Postgres>(opts)
                    .connect_with(options)
                    .await
                    .map_err(connect_error)?;
                Self::Postgres(pool)
            }
        };
        db.migrate().await?;
        Ok(db)
    }

    async fn migrate(&self) -> Result<()> {
        match self {
            Self::Sqlite(pool) => MIGRATIONS.run(pool).await?,
            Self::Postgres(pool) => MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// `sqlite` or `postgres`.
    pub fn engine(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// Checks that the database answers a query.
    pub async fn ping(&self) -> Result<()> {
        with_pool!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(drop))?;
        Ok(())
    }

    /// Waits for open connections to be returned, then closes them.
    pub async fn close(&self) {
        with_pool!(self, |pool| pool.close().await);
    }
}
