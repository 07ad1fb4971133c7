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

use super::{Flavor, SqlError, is_select};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteRow};
use sqlx::{
    Column as _, ConnectOptions as _, Connection as _, Row as _, TypeInfo as _, ValueRef as _,
};

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
    let io = |e: std::io::Error| SqlError::new(format!("{}: {e}", path.display()));
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
        conn.close().await?;
    }
    Ok([path.to_owned(), journal])
}

async fn connect(path: &Path) -> Result<sqlx::SqliteConnection, SqlError> {
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .journal_mode(SqliteJournalMode::Truncate)
        .connect()
        .await?;
    forbid_attach(&mut conn).await?;
    Ok(conn)
}

/// No `ATTACH DATABASE` through the query route: an admin could otherwise read any SQLite file
/// the server can (the main database's access tokens) through an instance database.
async fn forbid_attach(conn: &mut sqlx::SqliteConnection) -> Result<(), SqlError> {
    let mut handle = conn.lock_handle().await?;
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
/// table including the plugin's version table; SQLAlchemy's answer adds `unique`. (maubot reports
/// SQLite's `notnull` as `nullable` for mautrix databases; here `nullable` means nullable.)
pub async fn tables(path: &Path, flavor: Flavor) -> Result<Value, SqlError> {
    let mut conn = connect(path).await?;
    let names: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(&mut conn)
            .await?;
    let mut tables = Map::new();
    for name in names {
        let columns: Vec<(String, String, bool, Option<String>, i64)> = sqlx::query_as(
            "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info($1) ORDER BY cid",
        )
        .bind(&name)
        .fetch_all(&mut conn)
        .await?;
        // Columns that a unique index of their own covers.
        let unique: Vec<String> = if flavor == Flavor::Sqlalchemy {
            sqlx::query_scalar(
                "SELECT ii.name FROM pragma_index_list($1) AS il, pragma_index_info(il.name) AS ii \
                 WHERE il.\"unique\" AND (SELECT COUNT(*) FROM pragma_index_info(il.name)) = 1",
            )
            .bind(&name)
            .fetch_all(&mut conn)
            .await?
        } else {
            Vec::new()
        };
        let columns: Map<String, Value> = columns
            .into_iter()
            .map(|(column, kind, notnull, default, pk)| {
                let mut info = json!({
                    "type": kind,
                    "nullable": !notnull,
                    "default": default,
                    "primary": pk > 0,
                });
                if flavor == Flavor::Sqlalchemy {
                    info["unique"] = json!(unique.contains(&column));
                }
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
            .await?;
    let _ = conn.close().await;
    Ok((!names.is_empty()).then_some(names))
}

/// Runs one statement as maubot's query route does: a `SELECT` answers `rows` (and `columns`
/// when there are rows, or always for SQLAlchemy), anything else `rowcount`.
pub async fn query(
    path: &Path,
    flavor: Flavor,
    sql: &str,
    rows_as_dict: bool,
) -> Result<Value, SqlError> {
    let mut conn = connect(path).await?;
    let statement = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
    let mut answer = json!({ "ok": true, "query": sql });
    if is_select(sql) {
        let rows = statement.fetch_all(&mut conn).await?;
        let names: Vec<String> = match rows.first() {
            Some(row) => row.columns().iter().map(|c| c.name().to_owned()).collect(),
            None if flavor == Flavor::Sqlalchemy => {
                use sqlx::Executor as _;
                let sql = sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(sql.to_owned()));
                let described = (&mut conn).describe(sql).await?;
                described
                    .columns()
                    .iter()
                    .map(|c| c.name().to_owned())
                    .collect()
            }
            None => Vec::new(),
        };
        let cells: Vec<Vec<Value>> = rows
            .iter()
            .map(|row| (0..row.len()).map(|i| cell(row, i)).collect())
            .collect();
        super::put_rows(&mut answer, names, cells, rows_as_dict);
    } else {
        let done = statement.execute(&mut conn).await?;
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
