//! A WebAssembly instance's `database` and `kv`: its own SQLite file or PostgreSQL schema (the
//! one a Python plugin's instance would get), opened by the server for it.

use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteRow};
use sqlx::{
    Column as _, ConnectOptions as _, Connection as _, Row as _, TypeInfo as _, ValueRef as _,
};

use super::bindings::v0_1_0::database::{EngineKind, Rows, Value};
use super::bindings::v0_1_0::types::Error;
use crate::runtime::Placement;

/// The most rows a query answers: the rest of a bigger result is not read.
const MAX_ROWS: usize = 10_000;
/// The most bytes of values a query answers.
const MAX_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug)]
enum Db {
    Sqlite(SqliteConnection),
    Postgres(PgPool),
}

/// The instance's storage, if its plugin has a database.
#[derive(Debug)]
pub struct Storage {
    db: Option<Db>,
    kv_ready: bool,
}

fn failed(err: impl std::fmt::Display) -> Error {
    Error::Failed(err.to_string())
}

fn no_database() -> Error {
    Error::Failed("the plugin has no database (`database: true` in maubot.yaml)".into())
}

impl Storage {
    pub fn none() -> Self {
        Self {
            db: None,
            kv_ready: false,
        }
    }

    /// Opens the database the server placed for the instance.
    pub async fn open(placement: &Placement) -> Result<Self, String> {
        let db = match (placement.sqlite_file(), &placement.schema) {
            (Some(file), _) => Db::Sqlite(
                SqliteConnectOptions::new()
                    .filename(file)
                    .create_if_missing(true)
                    // As every instance database: the sandboxes grant files, not folders.
                    .journal_mode(SqliteJournalMode::Truncate)
                    .connect()
                    .await
                    .map_err(|e| e.to_string())?,
            ),
            (None, Some(schema)) => {
                let options: sqlx::postgres::PgConnectOptions = placement
                    .url
                    .parse()
                    .map_err(|e: sqlx::Error| e.to_string())?;
                let search_path = format!("SET search_path TO \"{}\"", schema.replace('"', "\"\""));
                let pool = PgPoolOptions::new()
                    .max_connections(placement.max_conns.unwrap_or(3).max(1))
                    .after_connect(move |conn, _| {
                        let search_path = search_path.clone();
                        Box::pin(async move {
                            sqlx::query(sqlx::AssertSqlSafe(search_path))
                                .execute(conn)
                                .await
                                .map(drop)
                        })
                    })
                    .connect_with(options)
                    .await
                    .map_err(|e| e.to_string())?;
                Db::Postgres(pool)
            }
            (None, None) => return Err(format!("unknown database URL {}", placement.url)),
        };
        Ok(Self {
            db: Some(db),
            kv_ready: false,
        })
    }

    pub async fn close(self) {
        match self.db {
            Some(Db::Sqlite(conn)) => {
                let _ = conn.close().await;
            }
            Some(Db::Postgres(pool)) => pool.close().await,
            None => {}
        }
    }

    pub fn engine(&self) -> EngineKind {
        match self.db {
            Some(Db::Postgres(_)) => EngineKind::Postgres,
            _ => EngineKind::Sqlite,
        }
    }

    pub async fn execute(&mut self, sql: &str, params: Vec<Value>) -> Result<u64, Error> {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self.db.as_mut().ok_or_else(no_database)? {
            Db::Sqlite(conn) => {
                let query = params.into_iter().fold(sqlx::query(sql), bind_sqlite);
                Ok(query.execute(conn).await.map_err(failed)?.rows_affected())
            }
            Db::Postgres(pool) => {
                let query = params.into_iter().fold(sqlx::query(sql), bind_postgres);
                Ok(query.execute(&*pool).await.map_err(failed)?.rows_affected())
            }
        }
    }

    pub async fn query(&mut self, sql: &str, params: Vec<Value>) -> Result<Rows, Error> {
        use futures_util::TryStreamExt as _;
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        let mut columns = Vec::new();
        let mut rows = Vec::new();
        let mut bytes = 0usize;
        let mut take = |names: Vec<String>, cells: Vec<Value>| -> bool {
            if columns.is_empty() {
                columns = names;
            }
            bytes += cells.iter().map(value_size).sum::<usize>();
            rows.push(cells);
            rows.len() < MAX_ROWS && bytes < MAX_BYTES
        };
        match self.db.as_mut().ok_or_else(no_database)? {
            Db::Sqlite(conn) => {
                let query = params.into_iter().fold(sqlx::query(sql), bind_sqlite);
                let mut stream = query.fetch(conn);
                while let Some(row) = stream.try_next().await.map_err(failed)? {
                    let names = row.columns().iter().map(|c| c.name().to_owned()).collect();
                    let cells = (0..row.len()).map(|i| sqlite_cell(&row, i)).collect();
                    if !take(names, cells) {
                        break;
                    }
                }
            }
            Db::Postgres(pool) => {
                let query = params.into_iter().fold(sqlx::query(sql), bind_postgres);
                let mut stream = query.fetch(&*pool);
                while let Some(row) = stream.try_next().await.map_err(failed)? {
                    let names = row.columns().iter().map(|c| c.name().to_owned()).collect();
                    let cells = (0..row.len()).map(|i| postgres_cell(&row, i)).collect();
                    if !take(names, cells) {
                        break;
                    }
                }
            }
        }
        Ok(Rows { columns, rows })
    }

    async fn kv_table(&mut self) -> Result<(), Error> {
        if self.kv_ready {
            return Ok(());
        }
        let blob = match self.engine() {
            EngineKind::Sqlite => "BLOB",
            EngineKind::Postgres => "BYTEA",
        };
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS maubot_kv (key TEXT PRIMARY KEY, value {blob} NOT NULL)"
        );
        self.execute(&sql, Vec::new()).await?;
        self.kv_ready = true;
        Ok(())
    }

    pub async fn kv_get(&mut self, key: String) -> Result<Option<Vec<u8>>, Error> {
        self.kv_table().await?;
        let rows = self
            .query(
                "SELECT value FROM maubot_kv WHERE key = $1",
                vec![Value::Text(key)],
            )
            .await?;
        Ok(rows
            .rows
            .into_iter()
            .next()
            .and_then(|row| match row.into_iter().next() {
                Some(Value::Blob(bytes)) => Some(bytes),
                Some(Value::Text(text)) => Some(text.into_bytes()),
                _ => None,
            }))
    }

    pub async fn kv_set(&mut self, key: String, value: Vec<u8>) -> Result<(), Error> {
        self.kv_table().await?;
        self.execute(
            "INSERT INTO maubot_kv (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            vec![Value::Text(key), Value::Blob(value)],
        )
        .await
        .map(drop)
    }

    pub async fn kv_delete(&mut self, key: String) -> Result<(), Error> {
        self.kv_table().await?;
        self.execute(
            "DELETE FROM maubot_kv WHERE key = $1",
            vec![Value::Text(key)],
        )
        .await
        .map(drop)
    }

    pub async fn kv_keys(&mut self, prefix: String) -> Result<Vec<String>, Error> {
        self.kv_table().await?;
        let rows = self
            .query(
                "SELECT key FROM maubot_kv WHERE substr(key, 1, length($1)) = $1 ORDER BY key",
                vec![Value::Text(prefix)],
            )
            .await?;
        Ok(rows
            .rows
            .into_iter()
            .filter_map(|row| match row.into_iter().next() {
                Some(Value::Text(key)) => Some(key),
                _ => None,
            })
            .collect())
    }
}

fn value_size(value: &Value) -> usize {
    match value {
        Value::Text(text) => text.len(),
        Value::Blob(bytes) => bytes.len(),
        _ => 8,
    }
}

type SqliteQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;
type PostgresQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

fn bind_sqlite(query: SqliteQuery<'_>, value: Value) -> SqliteQuery<'_> {
    match value {
        Value::Null => query.bind(None::<String>),
        Value::Integer(n) => query.bind(n),
        Value::Real(x) => query.bind(x),
        Value::Text(text) => query.bind(text),
        Value::Blob(bytes) => query.bind(bytes),
    }
}

/// A `null` is bound as text: write `$1::integer` where another type is meant.
fn bind_postgres(query: PostgresQuery<'_>, value: Value) -> PostgresQuery<'_> {
    match value {
        Value::Null => query.bind(None::<String>),
        Value::Integer(n) => query.bind(n),
        Value::Real(x) => query.bind(x),
        Value::Text(text) => query.bind(text),
        Value::Blob(bytes) => query.bind(bytes),
    }
}

fn sqlite_cell(row: &SqliteRow, index: usize) -> Value {
    let Ok(raw) = row.try_get_raw(index) else {
        return Value::Null;
    };
    if raw.is_null() {
        return Value::Null;
    }
    let value = match raw.type_info().name() {
        "INTEGER" | "BOOLEAN" => row.try_get::<i64, _>(index).map(Value::Integer),
        "REAL" => row.try_get::<f64, _>(index).map(Value::Real),
        "BLOB" => row.try_get::<Vec<u8>, _>(index).map(Value::Blob),
        _ => row.try_get::<String, _>(index).map(Value::Text),
    };
    value.unwrap_or(Value::Null)
}

fn postgres_cell(row: &PgRow, index: usize) -> Value {
    let Ok(raw) = row.try_get_raw(index) else {
        return Value::Null;
    };
    if raw.is_null() {
        return Value::Null;
    }
    let name = raw.type_info().name().to_owned();
    let value = match name.as_str() {
        "BOOL" => row
            .try_get::<bool, _>(index)
            .map(|b| Value::Integer(i64::from(b))),
        "INT2" => row
            .try_get::<i16, _>(index)
            .map(|n| Value::Integer(n.into())),
        "INT4" => row
            .try_get::<i32, _>(index)
            .map(|n| Value::Integer(n.into())),
        "INT8" => row.try_get::<i64, _>(index).map(Value::Integer),
        "FLOAT4" => row.try_get::<f32, _>(index).map(|x| Value::Real(x.into())),
        "FLOAT8" => row.try_get::<f64, _>(index).map(Value::Real),
        "BYTEA" => row.try_get::<Vec<u8>, _>(index).map(Value::Blob),
        "JSON" | "JSONB" => row
            .try_get::<serde_json::Value, _>(index)
            .map(|v| Value::Text(v.to_string())),
        "UUID" => row
            .try_get::<sqlx::types::Uuid, _>(index)
            .map(|u| Value::Text(u.to_string())),
        "TIMESTAMPTZ" => row
            .try_get::<sqlx::types::chrono::DateTime<sqlx::types::chrono::Utc>, _>(index)
            .map(|t| Value::Text(t.to_rfc3339())),
        _ => row.try_get::<String, _>(index).map(Value::Text),
    };
    // Types the plugin interface has no value for (numeric, intervals, ...): cast them in SQL.
    value.unwrap_or(Value::Null)
}
