//! The `bot_crypto` rows of one bot: reading, listing and writing them in one transaction.

use matrix_sdk_crypto::store::CryptoStoreError;

use crate::db::Database;
use crate::with_pool;

/// What a row holds. `scope` and `name` of each are noted where they are not empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Singletons by name: the account, the private identity, backup keys, tokens.
    Value,
    /// Olm sessions; scope: the other device's Curve25519 key, name: the session ID.
    Session,
    /// Room keys; scope: the room, name: the session ID.
    InboundGroupSession,
    /// Our own room keys; name: the room.
    OutboundGroupSession,
    /// Devices; scope: their user, name: the device ID.
    Device,
    /// Other users' identities; name: the user.
    Identity,
    /// Users whose devices are tracked; name: the user.
    TrackedUser,
    /// Olm messages seen; scope: the sender key, name: the message hash.
    OlmHash,
    /// Outgoing secret requests; name: the request ID.
    SecretRequest,
    /// Received secrets; scope: the secret's name, name: a hash of the secret.
    Secret,
    /// Withheld room keys; scope: the room, name: the session ID.
    Withheld,
    /// Per-room encryption settings; name: the room.
    RoomSettings,
    /// Received room key bundles; scope: the room, name: the sender.
    RoomKeyBundle,
    /// Rooms whose keys were all downloaded from backup; name: the room.
    BackupDownloaded,
    /// Rooms waiting for a key bundle; name: the room.
    PendingKeyBundle,
    /// The SDK's own values; name: its key.
    Custom,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Value => "value",
            Self::Session => "session",
            Self::InboundGroupSession => "inbound_group_session",
            Self::OutboundGroupSession => "outbound_group_session",
            Self::Device => "device",
            Self::Identity => "identity",
            Self::TrackedUser => "tracked_user",
            Self::OlmHash => "olm_hash",
            Self::SecretRequest => "secret_request",
            Self::Secret => "secret",
            Self::Withheld => "withheld",
            Self::RoomSettings => "room_settings",
            Self::RoomKeyBundle => "room_key_bundle",
            Self::BackupDownloaded => "backup_downloaded",
            Self::PendingKeyBundle => "pending_key_bundle",
            Self::Custom => "custom",
        }
    }
}

/// One row as read.
#[derive(Debug, sqlx::FromRow)]
pub struct Row {
    pub scope: String,
    pub name: String,
    pub marked: bool,
    pub value: Vec<u8>,
}

/// One change of a transaction.
#[derive(Debug)]
pub enum Write {
    Put {
        kind: Kind,
        scope: String,
        name: String,
        sender: String,
        sender_type: i64,
        marked: bool,
        value: Vec<u8>,
    },
    Delete {
        kind: Kind,
        scope: String,
        name: String,
    },
    /// Every row of a kind in one scope.
    DeleteScope { kind: Kind, scope: String },
    Mark {
        kind: Kind,
        scope: String,
        name: String,
        marked: bool,
    },
    /// Every row of a kind.
    MarkAll { kind: Kind, marked: bool },
}

impl Write {
    /// A row without the columns queries filter on.
    pub fn put(
        kind: Kind,
        scope: impl Into<String>,
        name: impl Into<String>,
        value: Vec<u8>,
    ) -> Self {
        Self::Put {
            kind,
            scope: scope.into(),
            name: name.into(),
            sender: String::new(),
            sender_type: 0,
            marked: false,
            value,
        }
    }
}

/// What a listing selects.
#[derive(Debug, Clone, Copy)]
pub enum Filter<'a> {
    All,
    Scope(&'a str),
    /// Marked or not, at most `limit`.
    Marked {
        marked: bool,
        limit: i64,
    },
    /// Rows whose `sender` is this.
    Sender(&'a str),
    /// Room keys of one sender key and sender-data type, by name after `after`, at most `limit`.
    SenderBatch {
        sender: &'a str,
        sender_type: i64,
        after: &'a str,
        limit: i64,
    },
}

/// The rows of one bot.
#[derive(Debug, Clone)]
pub struct Rows {
    db: Database,
    bot: String,
}

const SELECT: &str =
    "SELECT scope, name, marked, value FROM bot_crypto WHERE bot = $1 AND kind = $2";

impl Rows {
    pub fn new(db: Database, bot: String) -> Self {
        Self { db, bot }
    }

    pub fn bot(&self) -> &str {
        &self.bot
    }

    pub async fn get(
        &self,
        kind: Kind,
        scope: &str,
        name: &str,
    ) -> Result<Option<Row>, CryptoStoreError> {
        let sql = format!("{SELECT} AND scope = $3 AND name = $4");
        with_pool!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(&self.bot)
            .bind(kind.as_str())
            .bind(scope)
            .bind(name)
            .fetch_optional(pool)
            .await)
        .map_err(backend)
    }

    pub async fn list(&self, kind: Kind, filter: Filter<'_>) -> Result<Vec<Row>, CryptoStoreError> {
        let bot = &self.bot;
        let kind = kind.as_str();
        with_pool!(&self.db, |pool| {
            match filter {
                Filter::All => {
                    sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} ORDER BY scope, name")))
                        .bind(bot)
                        .bind(kind)
                        .fetch_all(pool)
                        .await
                }
                Filter::Scope(scope) => {
                    sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} AND scope = $3 ORDER BY name")))
                        .bind(bot)
                        .bind(kind)
                        .bind(scope)
                        .fetch_all(pool)
                        .await
                }
                Filter::Marked { marked, limit } => {
                    sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "{SELECT} AND marked = $3 ORDER BY scope, name LIMIT $4"
                    )))
                    .bind(bot)
                    .bind(kind)
                    .bind(marked)
                    .bind(limit)
                    .fetch_all(pool)
                    .await
                }
                Filter::Sender(sender) => {
                    sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} AND sender = $3 ORDER BY name")))
                        .bind(bot)
                        .bind(kind)
                        .bind(sender)
                        .fetch_all(pool)
                        .await
                }
                Filter::SenderBatch {
                    sender,
                    sender_type,
                    after,
                    limit,
                } => {
                    sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "{SELECT} AND sender = $3 AND sender_type = $4 AND name > $5 ORDER BY name LIMIT $6"
                    )))
                    .bind(bot)
                    .bind(kind)
                    .bind(sender)
                    .bind(sender_type)
                    .bind(after)
                    .bind(limit)
                    .fetch_all(pool)
                    .await
                }
            }
        })
        .map_err(backend)
    }

    /// How many rows of `kind` there are, and how many of them are marked.
    pub async fn count(&self, kind: Kind) -> Result<(usize, usize), CryptoStoreError> {
        let (total, marked): (i64, Option<i64>) = with_pool!(&self.db, |pool| sqlx::query_as(
            "SELECT COUNT(*), SUM(CASE WHEN marked THEN 1 ELSE 0 END) FROM bot_crypto \
             WHERE bot = $1 AND kind = $2"
        )
        .bind(&self.bot)
        .bind(kind.as_str())
        .fetch_one(pool)
        .await)
        .map_err(backend)?;
        let count = |n: i64| usize::try_from(n).unwrap_or(0);
        Ok((count(total), count(marked.unwrap_or(0))))
    }

    /// Applies `writes` all or none.
    pub async fn write(&self, writes: Vec<Write>) -> Result<(), CryptoStoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        let bot = &self.bot;
        with_pool!(&self.db, |pool| async {
            let mut tx = pool.begin().await?;
            for write in &writes {
                let query = match write {
                    Write::Put {
                        kind,
                        scope,
                        name,
                        sender,
                        sender_type,
                        marked,
                        value,
                    } => sqlx::query(
                        "INSERT INTO bot_crypto (bot, kind, scope, name, sender, sender_type, marked, value) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                         ON CONFLICT (bot, kind, scope, name) DO UPDATE SET sender = excluded.sender, \
                         sender_type = excluded.sender_type, marked = excluded.marked, value = excluded.value",
                    )
                    .bind(bot)
                    .bind(kind.as_str())
                    .bind(scope)
                    .bind(name)
                    .bind(sender)
                    .bind(sender_type)
                    .bind(marked)
                    .bind(value),
                    Write::Delete { kind, scope, name } => sqlx::query(
                        "DELETE FROM bot_crypto WHERE bot = $1 AND kind = $2 AND scope = $3 AND name = $4",
                    )
                    .bind(bot)
                    .bind(kind.as_str())
                    .bind(scope)
                    .bind(name),
                    Write::DeleteScope { kind, scope } => sqlx::query(
                        "DELETE FROM bot_crypto WHERE bot = $1 AND kind = $2 AND scope = $3",
                    )
                    .bind(bot)
                    .bind(kind.as_str())
                    .bind(scope),
                    Write::Mark {
                        kind,
                        scope,
                        name,
                        marked,
                    } => sqlx::query(
                        "UPDATE bot_crypto SET marked = $5 \
                         WHERE bot = $1 AND kind = $2 AND scope = $3 AND name = $4",
                    )
                    .bind(bot)
                    .bind(kind.as_str())
                    .bind(scope)
                    .bind(name)
                    .bind(marked),
                    Write::MarkAll { kind, marked } => sqlx::query(
                        "UPDATE bot_crypto SET marked = $3 WHERE bot = $1 AND kind = $2",
                    )
                    .bind(bot)
                    .bind(kind.as_str())
                    .bind(marked),
                };
                query.execute(&mut *tx).await?;
            }
            tx.commit().await
        }
        .await)
        .map_err(backend)
    }

    /// Takes or extends the leased lock `name` for `holder`: its generation, or `None` while
    /// another holder's lease runs.
    pub async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<i64>, CryptoStoreError> {
        // One statement, so that two processes racing for the lock cannot both win: the update
        // only happens for the same holder or after the lease ran out.
        with_pool!(&self.db, |pool| sqlx::query_scalar(
            "INSERT INTO bot_crypto_lease (bot, name, holder, expiration) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (bot, name) DO UPDATE SET holder = excluded.holder, \
             expiration = excluded.expiration, \
             generation = CASE WHEN bot_crypto_lease.holder = excluded.holder \
                 THEN bot_crypto_lease.generation ELSE bot_crypto_lease.generation + 1 END \
             WHERE bot_crypto_lease.holder = excluded.holder OR bot_crypto_lease.expiration < $5 \
             RETURNING generation"
        )
        .bind(&self.bot)
        .bind(name)
        .bind(holder)
        .bind(now_ms + lease_ms)
        .bind(now_ms)
        .fetch_optional(pool)
        .await)
        .map_err(backend)
    }

    /// Removes everything of this bot: its keys, sessions and leases.
    pub async fn delete_all(&self) -> Result<(), CryptoStoreError> {
        with_pool!(&self.db, |pool| async {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM bot_crypto WHERE bot = $1")
                .bind(&self.bot)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM bot_crypto_lease WHERE bot = $1")
                .bind(&self.bot)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        }
        .await)
        .map_err(backend)
    }

    /// Whether this bot has anything stored.
    pub async fn is_empty(&self) -> Result<bool, CryptoStoreError> {
        let any: Option<i64> = with_pool!(&self.db, |pool| sqlx::query_scalar(
            "SELECT CAST(1 AS BIGINT) FROM bot_crypto WHERE bot = $1 LIMIT 1"
        )
        .bind(&self.bot)
        .fetch_optional(pool)
        .await)
        .map_err(backend)?;
        Ok(any.is_none())
    }
}

fn backend(err: sqlx::Error) -> CryptoStoreError {
    CryptoStoreError::backend(err)
}
