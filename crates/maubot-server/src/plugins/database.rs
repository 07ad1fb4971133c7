//! Instances' SQLite databases: made ready for a sandboxed worker, and browsed and queried for
//! the web UI (the instance database routes). The server opens the file next to the plugin,
//! which keeps its own connection.
//!
//! A worker's sandbox grants it its database files, not the folder they are in (which holds
//! other instances' databases and, by default, the plugin archives), so it cannot create or
//! delete files there. Its databases therefore use the rollback journal in `TRUNCATE` mode,
//! which keeps the journal file, never WAL, whose `-wal` and `-shm` files come and go; the
//! server creates both files before the worker starts and uses the same mode.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Map, Value, json};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteRow};
use sqlx::{
    Column as _, ConnectOptions as _, Connection as _, Row as _, TypeInfo as _, ValueRef as _,
};

/// What went wrong with a query: the database's own message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SqlError(pub String);

/// The journal next to a database file.
pub fn journal_of(path: &Path) -> PathBuf {
    let mut journal = path.as_os_str().to_owned();
    journal.push("-journal");
    journal.into()
}

/// Makes an instance's database file and its journal exist, and takes a database out of WAL
/// mode (as maubot's and sqlx's defaults leave them). Returns both paths, for the sandbox.
pub async fn prepare_file(path: &Path) -> Result<[PathBuf; 2], SqlError> {
    let journal = journal_of(path);
    let io = |e: std::io::Error| SqlError(format!("{}: {e}", path.display()));
    for file in [path, &journal] {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .map_err(io)?;
    }
    // Bytes 18 and 19 of the header are 2 in WAL mode.
    let mut header = [0u8; 20];
    let is_wal = {
        use std::io::Read as _;
        let mut file = std::fs::File::open(path).map_err(io)?;
        file.read_exact(&mut header).is_ok() && header[18] == 2
    };
    if is_wal {
        tracing::info!(target: "maubot.instance", path = %path.display(), "Switching an instance database from WAL to a rollback journal");
        let conn = connect(path).await?;
        conn.close().await.map_err(|e| SqlError(e.to_string()))?;
    }
    Ok([path.to_owned(), journal])
}

async fn connect(path: &Path) -> Result<sqlx::SqliteConnection, SqlError> {
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .journal_mode(SqliteJournalMode::Truncate)
        .connect()
        .await
        .map_err(|e| SqlError(e.to_string()))?;
    forbid_attach(&mut conn).await?;
    Ok(conn)
}

/// No `ATTACH DATABASE` through the query route: an admin could otherwise read any SQLite file
/// the server can (the main database's access tokens) through an instance database.
async fn forbid_attach(conn: &mut sqlx::SqliteConnection) -> Result<(), SqlError> {
    let mut handle = conn
        .lock_handle()
        .await
        .map_err(|e| SqlError(e.to_string()))?;
    let raw = handle.as_raw_handle().as_ptr();
    // SAFETY: `raw` is the open connection `handle` holds locked for the duration of the call;
    // `sqlite3_limit` only sets a limit of that connection.
    #[allow(unsafe_code)]
    unsafe {
        libsqlite3_sys::sqlite3_limit(raw, libsqlite3_sys::SQLITE_LIMIT_ATTACHED, 0);
    }
    Ok(())
}

/// `{"<table>": {"columns": {"<column>": {"type", "nullable", "default", "primary"}}}}`, every
/// table including the plugin's version table. (maubot reports SQLite's `notnull` as `nullable`;
/// here `nullable` means nullable.)
pub async fn tables(path: &Path) -> Result<Value, SqlError> {
    let mut conn = connect(path).await?;
    let names: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(&mut conn)
            .await
            .map_err(|e| SqlError(e.to_string()))?;
    let mut tables = Map::new();
    for name in names {
        let columns: Vec<(String, String, bool, Option<String>, i64)> = sqlx::query_as(
            "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info($1) ORDER BY cid",
        )
        .bind(&name)
        .fetch_all(&mut conn)
        .await
        .map_err(|e| SqlError(e.to_string()))?;
        let columns: Map<String, Value> = columns
            .into_iter()
            .map(|(column, kind, notnull, default, pk)| {
                let info = json!({
                    "type": kind,
                    "nullable": !notnull,
                    "default": default,
                    "primary": pk > 0,
                });
                (column, info)
            })
            .collect();
        tables.insert(name, json!({ "columns": columns }));
    }
    let _ = conn.close().await;
    Ok(Value::Object(tables))
}

/// The names of a table's columns; `None` if there is no such table.
pub async fn columns(path: &Path, table: &str) -> Result<Option<Vec<String>>, SqlError> {
    let mut conn = connect(path).await?;
    let names: Vec<String> =
        sqlx::query_scalar("SELECT name FROM pragma_table_info($1) ORDER BY cid")
            .bind(table)
            .fetch_all(&mut conn)
            .await
            .map_err(|e| SqlError(e.to_string()))?;
    let _ = conn.close().await;
    Ok((!names.is_empty()).then_some(names))
}

/// Runs one statement as maubot's query route does: a `SELECT` answers `rows` (and `columns`
/// when there are rows), anything else `rowcount`.
pub async fn query(path: &Path, sql: &str, rows_as_dict: bool) -> Result<Value, SqlError> {
    let mut conn = connect(path).await?;
    let statement = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
    let mut answer = json!({ "ok": true, "query": sql });
    if sql.to_uppercase().starts_with("SELECT") {
        let rows = statement
            .fetch_all(&mut conn)
            .await
            .map_err(|e| SqlError(e.to_string()))?;
        let names: Vec<String> = rows
            .first()
            .map(|row| row.columns().iter().map(|c| c.name().to_owned()).collect())
            .unwrap_or_default();
        let values: Vec<Value> = rows
            .iter()
            .map(|row| {
                let cells = (0..row.len()).map(|i| cell(row, i));
                if rows_as_dict {
                    Value::Object(names.iter().cloned().zip(cells).collect())
                } else {
                    Value::Array(cells.collect())
                }
            })
            .collect();
        answer["rows"] = Value::Array(values);
        if !names.is_empty() {
            answer["columns"] = json!(names);
        }
    } else {
        let done = statement
            .execute(&mut conn)
            .await
            .map_err(|e| SqlError(e.to_string()))?;
        answer["rowcount"] = json!(done.rows_affected());
    }
    let _ = conn.close().await;
    Ok(answer)
}

/// One value as JSON by its storage class; blobs as base64.
fn cell(row: &SqliteRow, index: usize) -> Value {
    let Ok(raw) = row.try_get_raw(index) else {
        return Value::Null;
    };
    if raw.is_null() {
        return Value::Null;
    }
    match raw.type_info().name() {
        "INTEGER" | "BOOLEAN" => row
            .try_get::<i64, _>(index)
            .map_or(Value::Null, Value::from),
        "REAL" => row
            .try_get::<f64, _>(index)
            .map_or(Value::Null, Value::from),
        "BLOB" => row.try_get::<Vec<u8>, _>(index).map_or(Value::Null, |b| {
            Value::from(base64::engine::general_purpose::STANDARD.encode(b))
        }),
        _ => row
            .try_get::<String, _>(index)
            .map_or(Value::Null, Value::from),
    }
}
