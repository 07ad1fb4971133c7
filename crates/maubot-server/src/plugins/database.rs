//! Browsing and querying an instance's SQLite database for the web UI (behaviour reference §1.7).
//! The server opens the file next to the plugin, which keeps its own connection.

use std::path::Path;

use base64::Engine as _;
use serde_json::{Map, Value, json};
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{
    Column as _, ConnectOptions as _, Connection as _, Row as _, TypeInfo as _, ValueRef as _,
};

/// What went wrong with a query: the database's own message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SqlError(pub String);

async fn connect(path: &Path) -> Result<sqlx::SqliteConnection, SqlError> {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .connect()
        .await
        .map_err(|e| SqlError(e.to_string()))
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
