//! The `client` table: one row per bot account, with maubot's columns.

use maubot_types::secret::Secret;

use crate::db::{Database, Result};
use crate::with_pool;

/// A stored bot account (maubot's `client` row).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ClientRecord {
    /// The bot's Matrix user ID.
    pub id: String,
    pub homeserver: String,
    #[sqlx(try_from = "String")]
    pub access_token: Secret,
    /// Empty when the bot has no end-to-end encryption.
    pub device_id: String,
    pub enabled: bool,
    /// The sync token to resume from; empty for a first sync.
    pub next_batch: String,
    pub filter_id: String,
    pub sync: bool,
    pub autojoin: bool,
    pub online: bool,
    /// `disable` leaves the profile as it is.
    pub displayname: String,
    /// `disable` leaves the profile as it is.
    pub avatar_url: String,
}

const COLUMNS: &str = "id, homeserver, access_token, device_id, enabled, next_batch, filter_id, sync, \
                       autojoin, online, displayname, avatar_url";

pub async fn all(db: &Database) -> Result<Vec<ClientRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM client ORDER BY id");
    Ok(with_pool!(db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(
        sql
    ))
    .fetch_all(pool)
    .await)?)
}

pub async fn get(db: &Database, id: &str) -> Result<Option<ClientRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM client WHERE id = $1");
    Ok(with_pool!(db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(
        sql
    ))
    .bind(id)
    .fetch_optional(pool)
    .await)?)
}

/// Inserts a new row, or replaces every column of an existing one.
pub async fn save(db: &Database, record: &ClientRecord) -> Result<()> {
    let sql = format!(
        "INSERT INTO client ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (id) DO UPDATE SET homeserver = excluded.homeserver, \
         access_token = excluded.access_token, device_id = excluded.device_id, \
         enabled = excluded.enabled, next_batch = excluded.next_batch, \
         filter_id = excluded.filter_id, sync = excluded.sync, autojoin = excluded.autojoin, \
         online = excluded.online, displayname = excluded.displayname, avatar_url = excluded.avatar_url"
    );
    with_pool!(db, |pool| {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&record.id)
            .bind(&record.homeserver)
            .bind(record.access_token.expose())
            .bind(&record.device_id)
            .bind(record.enabled)
            .bind(&record.next_batch)
            .bind(&record.filter_id)
            .bind(record.sync)
            .bind(record.autojoin)
            .bind(record.online)
            .bind(&record.displayname)
            .bind(&record.avatar_url)
            .execute(pool)
            .await
            .map(drop)
    })?;
    Ok(())
}

/// Stores the sync position only, so that a running sync loop does not overwrite API changes.
pub async fn save_next_batch(db: &Database, id: &str, next_batch: &str) -> Result<()> {
    with_pool!(db, |pool| {
        sqlx::query("UPDATE client SET next_batch = $1 WHERE id = $2")
            .bind(next_batch)
            .bind(id)
            .execute(pool)
            .await
            .map(drop)
    })?;
    Ok(())
}

/// Deletes a row; false if there was none.
pub async fn delete(db: &Database, id: &str) -> Result<bool> {
    let affected = with_pool!(db, |pool| {
        sqlx::query("DELETE FROM client WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(affected > 0)
}

/// Whether any plugin instance runs on this client.
pub async fn has_instances(db: &Database, id: &str) -> Result<bool> {
    let count: i64 = with_pool!(db, |pool| {
        sqlx::query_scalar("SELECT COUNT(*) FROM instance WHERE primary_user = $1")
            .bind(id)
            .fetch_one(pool)
            .await
    })?;
    Ok(count > 0)
}
