//! Instances' databases on PostgreSQL (`plugin_databases.postgres`): one schema `mbp_<id>` each,
//! which the worker's connections use as their `search_path`. The server creates, renames and
//! drops the schemas and answers the database routes on them, through a small pool of its own.

use base64::Engine as _;
use serde_json::{Map, Value, json};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Column as _, Row as _, TypeInfo as _, ValueRef as _};

use super::{Flavor, Placement, SqlError, is_select, put_rows};

/// The plugins' PostgreSQL database.
#[derive(Debug)]
pub struct PluginPostgres {
    url: String,
    max_conns: u32,
    pool: Option<PgPool>,
}

/// The schema of an instance, as maubot names it.
pub fn schema_of(id: &str) -> String {
    format!("mbp_{}", id.replace('"', "_"))
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl PluginPostgres {
    /// `shares_main`: the URL is the main database's, whose tables (the bots' access tokens
    /// among them) the plugins' connections can then read.
    pub fn new(url: String, max_conns: u32, shares_main: bool) -> Self {
        if shares_main {
            tracing::warn!(
                target: super::LOG,
                "plugin_databases.postgres uses the main database and its role: plugins with a \
                 PostgreSQL database can read the main database's tables, the bots' access \
                 tokens among them. Give plugins a database and role of their own."
            );
        }
        let pool = match url.parse() {
            Ok(options) => Some(
                PgPoolOptions::new()
                    .max_connections(2)
                    .connect_lazy_with(options),
            ),
            Err(err) => {
                tracing::warn!(target: super::LOG, error = %err, "plugin_databases.postgres is not a valid PostgreSQL URL");
                None
            }
        };
        Self {
            url,
            max_conns: max_conns.max(1),
            pool,
        }
    }

    fn pool(&self) -> Result<&PgPool, SqlError> {
        self.pool
            .as_ref()
            .ok_or_else(|| SqlError::new("plugin_databases.postgres is not a valid URL"))
    }

    pub async fn create_schema(&self, id: &str) -> Result<Placement, SqlError> {
        let schema = schema_of(id);
        let sql = format!("CREATE SCHEMA IF NOT EXISTS {}", quote(&schema));
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(self.pool()?)
            .await?;
        Ok(Placement {
            url: self.url.clone(),
            schema: Some(schema),
            max_conns: Some(self.max_conns),
        })
    }

    pub async fn rename_schema(&self, old: &str, new: &str) -> Result<(), SqlError> {
        let (old, new) = (schema_of(old), schema_of(new));
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(&old)
                .fetch_one(self.pool()?)
                .await?;
        if exists {
            let sql = format!("ALTER SCHEMA {} RENAME TO {}", quote(&old), quote(&new));
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(self.pool()?)
                .await?;
        }
        Ok(())
    }

    pub async fn drop_schema(&self, id: &str) -> Result<(), SqlError> {
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", quote(&schema_of(id)));
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(self.pool()?)
            .await?;
        Ok(())
    }

    /// maubot's table map for PostgreSQL: `nullable` is `"YES"`/`"NO"` as information_schema has
    /// it (a boolean for SQLAlchemy), with `primary` and `unique`.
    pub async fn tables(&self, id: &str, flavor: Flavor) -> Result<Value, SqlError> {
        type Column = (String, String, String, String, Option<String>, bool, bool);
        let columns: Vec<Column> = sqlx::query_as(
            "SELECT c.table_name::text, c.column_name::text, c.data_type::text, \
                    c.is_nullable::text, c.column_default::text, \
                    EXISTS (SELECT 1 FROM information_schema.table_constraints t \
                            JOIN information_schema.key_column_usage k \
                              ON k.constraint_name = t.constraint_name \
                             AND k.table_schema = t.table_schema \
                            WHERE t.table_schema = c.table_schema AND t.table_name = c.table_name \
                              AND k.column_name = c.column_name \
                              AND t.constraint_type = 'PRIMARY KEY'), \
                    EXISTS (SELECT 1 FROM information_schema.table_constraints t \
                            JOIN information_schema.key_column_usage k \
                              ON k.constraint_name = t.constraint_name \
                             AND k.table_schema = t.table_schema \
                            WHERE t.table_schema = c.table_schema AND t.table_name = c.table_name \
                              AND k.column_name = c.column_name \
                              AND t.constraint_type = 'UNIQUE') \
             FROM information_schema.columns c WHERE c.table_schema = $1 \
             ORDER BY c.table_name, c.ordinal_position",
        )
        .bind(schema_of(id))
        .fetch_all(self.pool()?)
        .await?;
        let mut tables = Map::new();
        for (table, column, kind, nullable, default, primary, unique) in columns {
            let nullable = match flavor {
                Flavor::Asyncpg => json!(nullable),
                Flavor::Sqlalchemy => json!(nullable == "YES"),
            };
            let info = json!({
                "type": kind,
                "nullable": nullable,
                "default": default,
                "primary": primary,
                "unique": unique,
            });
            let entry = tables
                .entry(table)
                .or_insert_with(|| json!({ "columns": {} }));
            entry["columns"][column] = info;
        }
        Ok(Value::Object(tables))
    }

    pub async fn columns(&self, id: &str, table: &str) -> Result<Option<Vec<String>>, SqlError> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
        )
        .bind(schema_of(id))
        .bind(table)
        .fetch_all(self.pool()?)
        .await?;
        Ok((!names.is_empty()).then_some(names))
    }

    /// Runs an admin's query in the instance's schema: a `SELECT` answers `rows` and `columns`;
    /// anything else its command tag as `status_msg` (maubot's answer for asyncpg), or
    /// `rowcount` for SQLAlchemy.
    pub async fn query(
        &self,
        id: &str,
        flavor: Flavor,
        sql: &str,
        rows_as_dict: bool,
    ) -> Result<Value, SqlError> {
        let mut transaction = self.pool()?.begin().await?;
        let search_path = format!("SET LOCAL search_path TO {}", quote(&schema_of(id)));
        sqlx::query(sqlx::AssertSqlSafe(search_path))
            .execute(&mut *transaction)
            .await?;
        let statement = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
        let mut answer = json!({ "ok": true, "query": sql });
        if is_select(sql) {
            let rows = statement.fetch_all(&mut *transaction).await?;
            let names: Vec<String> = rows
                .first()
                .map(|row| row.columns().iter().map(|c| c.name().to_owned()).collect())
                .unwrap_or_default();
            let cells = rows
                .iter()
                .map(|row| (0..row.len()).map(|i| cell(row, i)).collect())
                .collect();
            put_rows(&mut answer, names, cells, rows_as_dict);
        } else {
            let done = statement.execute(&mut *transaction).await?;
            match flavor {
                Flavor::Asyncpg => {
                    answer["status_msg"] = json!(command_tag(sql, done.rows_affected()))
                }
                Flavor::Sqlalchemy => answer["rowcount"] = json!(done.rows_affected()),
            }
        }
        transaction.commit().await?;
        Ok(answer)
    }
}

/// PostgreSQL's command tag for a statement (`INSERT 0 1`, `UPDATE 3`, `CREATE TABLE`), rebuilt
/// from the statement and the rows it touched: sqlx does not pass the server's on.
fn command_tag(sql: &str, rows: u64) -> String {
    let words: Vec<String> = sql
        .split_whitespace()
        .take(2)
        .map(str::to_uppercase)
        .collect();
    match words.first().map(String::as_str) {
        Some("INSERT") => format!("INSERT 0 {rows}"),
        Some(kind @ ("UPDATE" | "DELETE" | "MERGE" | "COPY" | "MOVE" | "FETCH")) => {
            format!("{kind} {rows}")
        }
        Some("CREATE" | "DROP" | "ALTER") => words.join(" "),
        Some(other) => other.to_owned(),
        None => String::new(),
    }
}

/// One value as JSON by its type; times as ISO strings (as maubot), binary data as base64.
fn cell(row: &PgRow, index: usize) -> Value {
    let Ok(raw) = row.try_get_raw(index) else {
        return Value::Null;
    };
    if raw.is_null() {
        return Value::Null;
    }
    let name = raw.type_info().name().to_owned();
    let value = match name.as_str() {
        "BOOL" => row.try_get::<bool, _>(index).map(Value::from),
        "INT2" => row.try_get::<i16, _>(index).map(Value::from),
        "INT4" => row.try_get::<i32, _>(index).map(Value::from),
        "INT8" => row.try_get::<i64, _>(index).map(Value::from),
        "FLOAT4" => row.try_get::<f32, _>(index).map(Value::from),
        "FLOAT8" => row.try_get::<f64, _>(index).map(Value::from),
        "BYTEA" => row
            .try_get::<Vec<u8>, _>(index)
            .map(|b| Value::from(base64::engine::general_purpose::STANDARD.encode(b))),
        "JSON" | "JSONB" => row.try_get::<Value, _>(index),
        "UUID" => row
            .try_get::<sqlx::types::Uuid, _>(index)
            .map(|u| Value::from(u.to_string())),
        "TIMESTAMPTZ" => row
            .try_get::<sqlx::types::chrono::DateTime<sqlx::types::chrono::Utc>, _>(index)
            .map(|t| Value::from(t.to_rfc3339())),
        "TIMESTAMP" => row
            .try_get::<sqlx::types::chrono::NaiveDateTime, _>(index)
            .map(|t| Value::from(t.format("%Y-%m-%dT%H:%M:%S%.f").to_string())),
        "DATE" => row
            .try_get::<sqlx::types::chrono::NaiveDate, _>(index)
            .map(|d| Value::from(d.to_string())),
        _ => row.try_get::<String, _>(index).map(Value::from),
    };
    value.unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_tags_like_postgres() {
        assert_eq!(command_tag("insert into x values (1)", 1), "INSERT 0 1");
        assert_eq!(command_tag("UPDATE x SET a = 1", 3), "UPDATE 3");
        assert_eq!(command_tag("create table y (a int)", 0), "CREATE TABLE");
        assert_eq!(schema_of("a\"b"), "mbp_a_b");
    }
}
