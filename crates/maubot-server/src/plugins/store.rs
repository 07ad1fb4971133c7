//! The `instance` table: one row per plugin instance, with maubot's columns.

use crate::db::{Database, Result};
use crate::with_pool;

/// A stored plugin instance (maubot's `instance` row).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct InstanceRecord {
    pub id: String,
    /// The plugin's ID.
    #[sqlx(rename = "type")]
    pub plugin: String,
    pub enabled: bool,
    /// The client (bot) the instance runs on.
    pub primary_user: String,
    /// The instance's YAML config, stored as given.
    pub config: String,
    /// `sqlite` or `postgres` once the instance has a database.
    pub database_engine: Option<String>,
}

const COLUMNS: &str = "id, type, enabled, primary_user, config, database_engine";

pub async fn all(db: &Database) -> Result<Vec<InstanceRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM instance ORDER BY id");
    Ok(with_pool!(db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(
        sql
    ))
    .fetch_all(pool)
    .await)?)
}

pub async fn insert(db: &Database, record: &InstanceRecord) -> Result<()> {
    let sql = format!("INSERT INTO instance ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)");
    with_pool!(db, |pool| {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&record.id)
            .bind(&record.plugin)
            .bind(record.enabled)
            .bind(&record.primary_user)
            .bind(&record.config)
            .bind(&record.database_engine)
            .execute(pool)
            .await
            .map(drop)
    })?;
    Ok(())
}

/// Replaces the row `old_id` (which may be renamed by `record.id`).
pub async fn update(db: &Database, old_id: &str, record: &InstanceRecord) -> Result<()> {
    with_pool!(db, |pool| {
        sqlx::query(
            "UPDATE instance SET id = $1, type = $2, enabled = $3, primary_user = $4, config = $5, \
             database_engine = $6 WHERE id = $7",
        )
        .bind(&record.id)
        .bind(&record.plugin)
        .bind(record.enabled)
        .bind(&record.primary_user)
        .bind(&record.config)
        .bind(&record.database_engine)
        .bind(old_id)
        .execute(pool)
        .await
        .map(drop)
    })?;
    Ok(())
}

/// Stores a config the plugin saved, and nothing else (so that a late save never undoes an API
/// change of other columns).
pub async fn save_config(db: &Database, id: &str, config: &str) -> Result<()> {
    with_pool!(db, |pool| {
        sqlx::query("UPDATE instance SET config = $1 WHERE id = $2")
            .bind(config)
            .bind(id)
            .execute(pool)
            .await
            .map(drop)
    })?;
    Ok(())
}

pub async fn delete(db: &Database, id: &str) -> Result<()> {
    with_pool!(db, |pool| {
        sqlx::query("DELETE FROM instance WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .map(drop)
    })?;
    Ok(())
}
