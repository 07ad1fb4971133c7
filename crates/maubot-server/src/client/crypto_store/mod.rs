//! The crypto store of every bot in the main database (`bot_crypto`), through the server's one
//! pool: matrix-sdk's `CryptoStore` over our rows.
//!
//! Why: a store of its own per bot (matrix-sdk's SQLite stores) costs each bot a connection pool,
//! about a dozen file descriptors and a megabyte, which does not scale to a thousand bots; and with
//! the main database on PostgreSQL the keys belong there too. Each object is one row, its value
//! serialised and sealed ([`seal`]); the columns beside it are only what queries select by.
//! The SDK keeps what it reads often (the account, Olm sessions) in caches of its own, so most
//! reads here are of room keys, one per message it decrypts.

#[cfg(test)]
mod conformance;
mod import;
mod rows;
mod seal;

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use matrix_sdk::async_trait;
use matrix_sdk::cross_process_lock::CrossProcessLockGeneration;
use matrix_sdk::ruma::events::secret::request::SecretName;
use matrix_sdk::ruma::{DeviceId, OwnedDeviceId, OwnedUserId, RoomId, TransactionId, UserId};
use matrix_sdk_crypto::olm::{
    Account, InboundGroupSession, OlmMessageHash, OutboundGroupSession, PickledAccount,
    PickledCrossSigningIdentity, PickledInboundGroupSession, PickledOutboundGroupSession,
    PickledSession, PrivateCrossSigningIdentity, SenderDataType, Session, StaticAccountData,
};
use matrix_sdk_crypto::store::types::{
    BackupDecryptionKey, BackupKeys, Changes, DehydratedDeviceKey, PendingChanges, RoomKeyCounts,
    RoomKeyWithheldEntry, RoomPendingKeyBundleDetails, RoomSettings, StoredRoomKeyBundleData,
    TrackedUser,
};
use matrix_sdk_crypto::store::{CryptoStore, CryptoStoreError};
use matrix_sdk_crypto::vodozemac::Curve25519PublicKey;
use matrix_sdk_crypto::{DeviceData, GossipRequest, SecretInfo, UserIdentityData};
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

pub use import::import_legacy;
use rows::{Filter, Kind, Row, Rows, Write};
use seal::Sealer;

use crate::db::Database;

type Result<T, E = CryptoStoreError> = std::result::Result<T, E>;

/// Names of the singletons (`Kind::Value`).
const ACCOUNT: &str = "account";
const PRIVATE_IDENTITY: &str = "private_identity";
const NEXT_BATCH_TOKEN: &str = "next_batch_token";
const BACKUP_KEY: &str = "backup_decryption_key";
const BACKUP_VERSION: &str = "backup_version";
const DEHYDRATED_KEY: &str = "dehydrated_device_pickle_key";

/// One bot's crypto store.
pub struct BotCryptoStore {
    rows: Rows,
    sealer: Sealer,
    /// Who the account is, once loaded or saved: what Olm sessions and our own room keys are
    /// unpickled with.
    account: RwLock<Option<StaticAccountData>>,
    /// Pickling happens between awaits; one save at a time keeps a later save from being
    /// overwritten by an earlier one's older pickles.
    save: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for BotCryptoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotCryptoStore")
            .field("bot", &self.rows.bot())
            .finish_non_exhaustive()
    }
}

impl BotCryptoStore {
    /// The store of `bot`, its values sealed with `key`.
    pub fn new(db: Database, bot: &str, key: &[u8; 32]) -> Self {
        Self {
            rows: Rows::new(db, bot.to_owned()),
            sealer: Sealer::new(key),
            account: RwLock::new(None),
            save: tokio::sync::Mutex::new(()),
        }
    }

    /// Forgets everything of `bot` (a deleted client, or one given another device).
    pub async fn delete(db: Database, bot: &str) -> Result<()> {
        Rows::new(db, bot.to_owned()).delete_all().await
    }

    /// Whether nothing is stored for this bot yet.
    pub async fn is_empty(&self) -> Result<bool> {
        self.rows.is_empty().await
    }

    fn put(&self, kind: Kind, scope: &str, name: &str, value: &impl Serialize) -> Result<Write> {
        let value = self.sealer.seal(&[kind.as_str(), scope, name], value)?;
        Ok(Write::put(kind, scope, name, value))
    }

    /// A row whose value nobody reads: its presence is the information.
    fn put_empty(kind: Kind, scope: &str, name: &str) -> Write {
        Write::put(kind, scope, name, Vec::new())
    }

    fn open<T: DeserializeOwned>(&self, kind: Kind, row: &Row) -> Result<T> {
        self.sealer
            .open(&[kind.as_str(), &row.scope, &row.name], &row.value)
    }

    async fn load<T: DeserializeOwned>(
        &self,
        kind: Kind,
        scope: &str,
        name: &str,
    ) -> Result<Option<T>> {
        match self.rows.get(kind, scope, name).await? {
            Some(row) => Ok(Some(self.open(kind, &row)?)),
            None => Ok(None),
        }
    }

    async fn load_all<T: DeserializeOwned>(
        &self,
        kind: Kind,
        filter: Filter<'_>,
    ) -> Result<Vec<T>> {
        self.rows
            .list(kind, filter)
            .await?
            .iter()
            .map(|row| self.open(kind, row))
            .collect()
    }

    /// Who the account is, once it was loaded or saved.
    pub fn get_static_account(&self) -> Option<StaticAccountData> {
        self.account
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn static_account(&self) -> Result<StaticAccountData> {
        self.get_static_account()
            .ok_or(CryptoStoreError::AccountUnset)
    }

    fn remember_account(&self, account: &Account) {
        *self.account.write().unwrap_or_else(PoisonError::into_inner) =
            Some(account.static_data().clone());
    }

    /// A room key as stored; the `marked` column, not the pickle, says whether it is backed up.
    fn inbound_session(&self, row: &Row) -> Result<InboundGroupSession> {
        let mut pickle: PickledInboundGroupSession = self.open(Kind::InboundGroupSession, row)?;
        pickle.backed_up = row.marked;
        Ok(InboundGroupSession::from_pickle(pickle)?)
    }

    fn inbound_sessions(&self, rows: Vec<Row>) -> Result<Vec<InboundGroupSession>> {
        rows.iter().map(|row| self.inbound_session(row)).collect()
    }

    fn secret_request(&self, row: &Row) -> Result<GossipRequest> {
        let mut request: GossipRequest = self.open(Kind::SecretRequest, row)?;
        request.sent_out = row.marked;
        Ok(request)
    }

    async fn inbound_session_write(&self, session: &InboundGroupSession) -> Result<Write> {
        let scope = session.room_id().as_str();
        let name = session.session_id();
        let value = self.sealer.seal(
            &[Kind::InboundGroupSession.as_str(), scope, name],
            &session.pickle().await,
        )?;
        Ok(Write::Put {
            kind: Kind::InboundGroupSession,
            scope: scope.to_owned(),
            name: name.to_owned(),
            sender: session.sender_key().to_base64(),
            sender_type: sender_type(session.sender_data_type()),
            marked: session.backed_up(),
            value,
        })
    }
}

fn sender_type(kind: SenderDataType) -> i64 {
    kind as i64
}

fn unpickle_error(err: impl std::error::Error + Send + Sync + 'static) -> CryptoStoreError {
    CryptoStoreError::backend(err)
}

fn secret_hash(secret: &str) -> String {
    use sha2::Digest as _;
    hex_lower(&sha2::Sha256::digest(secret.as_bytes()))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[async_trait]
impl CryptoStore for BotCryptoStore {
    type Error = CryptoStoreError;

    async fn load_account(&self) -> Result<Option<Account>> {
        let Some(pickle) = self
            .load::<PickledAccount>(Kind::Value, "", ACCOUNT)
            .await?
        else {
            return Ok(None);
        };
        let account = Account::from_pickle(pickle)?;
        self.remember_account(&account);
        Ok(Some(account))
    }

    async fn load_identity(&self) -> Result<Option<PrivateCrossSigningIdentity>> {
        match self
            .load::<PickledCrossSigningIdentity>(Kind::Value, "", PRIVATE_IDENTITY)
            .await?
        {
            Some(pickle) => Ok(Some(
                PrivateCrossSigningIdentity::from_pickle(pickle).map_err(unpickle_error)?,
            )),
            None => Ok(None),
        }
    }

    async fn save_pending_changes(&self, changes: PendingChanges) -> Result<()> {
        let _save = self.save.lock().await;
        if let Some(account) = changes.account {
            self.remember_account(&account);
            let write = self.put(Kind::Value, "", ACCOUNT, &account.pickle())?;
            self.rows.write(vec![write]).await?;
        }
        Ok(())
    }

    async fn save_changes(&self, changes: Changes) -> Result<()> {
        let _save = self.save.lock().await;
        let mut writes = Vec::new();
        if let Some(identity) = &changes.private_identity {
            writes.push(self.put(Kind::Value, "", PRIVATE_IDENTITY, &identity.pickle().await)?);
        }
        if let Some(token) = &changes.next_batch_token {
            writes.push(self.put(Kind::Value, "", NEXT_BATCH_TOKEN, token)?);
        }
        if let Some(key) = &changes.backup_decryption_key {
            writes.push(self.put(Kind::Value, "", BACKUP_KEY, key)?);
        }
        if let Some(version) = &changes.backup_version {
            writes.push(self.put(Kind::Value, "", BACKUP_VERSION, version)?);
        }
        if let Some(key) = &changes.dehydrated_device_pickle_key {
            writes.push(self.put(Kind::Value, "", DEHYDRATED_KEY, key)?);
        }
        for session in &changes.sessions {
            let pickle: PickledSession = session.pickle().await;
            let sender = session.sender_key().to_base64();
            writes.push(self.put(Kind::Session, &sender, session.session_id(), &pickle)?);
        }
        for session in &changes.inbound_group_sessions {
            writes.push(self.inbound_session_write(session).await?);
        }
        for session in &changes.outbound_group_sessions {
            let pickle: PickledOutboundGroupSession = session.pickle().await;
            writes.push(self.put(
                Kind::OutboundGroupSession,
                "",
                session.room_id().as_str(),
                &pickle,
            )?);
        }
        for device in changes.devices.new.iter().chain(&changes.devices.changed) {
            let (user, id) = (device.user_id().as_str(), device.device_id().as_str());
            writes.push(self.put(Kind::Device, user, id, device)?);
        }
        for device in &changes.devices.deleted {
            writes.push(Write::Delete {
                kind: Kind::Device,
                scope: device.user_id().to_string(),
                name: device.device_id().to_string(),
            });
        }
        for identity in changes
            .identities
            .new
            .iter()
            .chain(&changes.identities.changed)
        {
            writes.push(self.put(Kind::Identity, "", identity.user_id().as_str(), identity)?);
        }
        for hash in &changes.message_hashes {
            writes.push(Self::put_empty(Kind::OlmHash, &hash.sender_key, &hash.hash));
        }
        for request in &changes.key_requests {
            let name = request.request_id.as_str();
            let value = self
                .sealer
                .seal(&[Kind::SecretRequest.as_str(), "", name], request)?;
            writes.push(Write::Put {
                kind: Kind::SecretRequest,
                scope: String::new(),
                name: name.to_owned(),
                sender: request.info.as_key(),
                sender_type: 0,
                marked: request.sent_out,
                value,
            });
        }
        for (room, entries) in &changes.withheld_session_info {
            for (session_id, entry) in entries {
                writes.push(self.put(Kind::Withheld, room.as_str(), session_id, entry)?);
            }
        }
        for (room, settings) in &changes.room_settings {
            writes.push(self.put(Kind::RoomSettings, "", room.as_str(), settings)?);
        }
        for secret in &changes.secrets {
            let name = secret.secret_name.to_string();
            let secret: &str = &secret.secret;
            writes.push(self.put(Kind::Secret, &name, &secret_hash(secret), &secret)?);
        }
        for bundle in &changes.received_room_key_bundles {
            let room = bundle.bundle_data.room_id.as_str();
            writes.push(self.put(
                Kind::RoomKeyBundle,
                room,
                bundle.sender_user.as_str(),
                bundle,
            )?);
        }
        for room in &changes.room_key_backups_fully_downloaded {
            writes.push(Self::put_empty(Kind::BackupDownloaded, "", room.as_str()));
        }
        for (room, details) in &changes.rooms_pending_key_bundle {
            writes.push(match details {
                Some(details) => self.put(Kind::PendingKeyBundle, "", room.as_str(), details)?,
                None => Write::Delete {
                    kind: Kind::PendingKeyBundle,
                    scope: String::new(),
                    name: room.to_string(),
                },
            });
        }
        self.rows.write(writes).await
    }

    async fn save_inbound_group_sessions(
        &self,
        sessions: Vec<InboundGroupSession>,
        _backed_up_to_version: Option<&str>,
    ) -> Result<()> {
        // One backup at a time, as matrix-sdk's own SQLite store: a backed-up key counts as
        // backed up in whichever backup is current, and a new backup resets them all.
        self.save_changes(Changes {
            inbound_group_sessions: sessions,
            ..Changes::default()
        })
        .await
    }

    async fn get_sessions(&self, sender_key: &str) -> Result<Option<Vec<Session>>> {
        let pickles: Vec<PickledSession> = self
            .load_all(Kind::Session, Filter::Scope(sender_key))
            .await?;
        if pickles.is_empty() {
            return Ok(None);
        }
        let own_keys = self.get_own_device().await?.as_device_keys().clone();
        let sessions = pickles
            .into_iter()
            .map(|pickle| Session::from_pickle(own_keys.clone(), pickle).map_err(unpickle_error))
            .collect::<Result<_>>()?;
        Ok(Some(sessions))
    }

    async fn get_inbound_group_session(
        &self,
        room_id: &RoomId,
        session_id: &str,
    ) -> Result<Option<InboundGroupSession>> {
        self.rows
            .get(Kind::InboundGroupSession, room_id.as_str(), session_id)
            .await?
            .map(|row| self.inbound_session(&row))
            .transpose()
    }

    async fn get_withheld_info(
        &self,
        room_id: &RoomId,
        session_id: &str,
    ) -> Result<Option<RoomKeyWithheldEntry>> {
        self.load(Kind::Withheld, room_id.as_str(), session_id)
            .await
    }

    async fn get_withheld_sessions_by_room_id(
        &self,
        room_id: &RoomId,
    ) -> Result<Vec<RoomKeyWithheldEntry>> {
        self.load_all(Kind::Withheld, Filter::Scope(room_id.as_str()))
            .await
    }

    async fn get_inbound_group_sessions(&self) -> Result<Vec<InboundGroupSession>> {
        let rows = self
            .rows
            .list(Kind::InboundGroupSession, Filter::All)
            .await?;
        self.inbound_sessions(rows)
    }

    async fn inbound_group_session_counts(
        &self,
        _backup_version: Option<&str>,
    ) -> Result<RoomKeyCounts> {
        let (total, backed_up) = self.rows.count(Kind::InboundGroupSession).await?;
        Ok(RoomKeyCounts { total, backed_up })
    }

    async fn get_inbound_group_sessions_by_room_id(
        &self,
        room_id: &RoomId,
    ) -> Result<Vec<InboundGroupSession>> {
        let rows = self
            .rows
            .list(Kind::InboundGroupSession, Filter::Scope(room_id.as_str()))
            .await?;
        self.inbound_sessions(rows)
    }

    async fn get_inbound_group_sessions_for_device_batch(
        &self,
        curve_key: Curve25519PublicKey,
        sender_data_type: SenderDataType,
        after_session_id: Option<String>,
        limit: usize,
    ) -> Result<Vec<InboundGroupSession>> {
        let sender = curve_key.to_base64();
        let filter = Filter::SenderBatch {
            sender: &sender,
            sender_type: sender_type(sender_data_type),
            after: after_session_id.as_deref().unwrap_or(""),
            limit: i64::try_from(limit).unwrap_or(i64::MAX),
        };
        let rows = self.rows.list(Kind::InboundGroupSession, filter).await?;
        self.inbound_sessions(rows)
    }

    async fn inbound_group_sessions_for_backup(
        &self,
        _backup_version: &str,
        limit: usize,
    ) -> Result<Vec<InboundGroupSession>> {
        let filter = Filter::Marked {
            marked: false,
            limit: i64::try_from(limit).unwrap_or(i64::MAX),
        };
        let rows = self.rows.list(Kind::InboundGroupSession, filter).await?;
        self.inbound_sessions(rows)
    }

    async fn mark_inbound_group_sessions_as_backed_up(
        &self,
        _backup_version: &str,
        room_and_session_ids: &[(&RoomId, &str)],
    ) -> Result<()> {
        let writes = room_and_session_ids
            .iter()
            .map(|(room, session)| Write::Mark {
                kind: Kind::InboundGroupSession,
                scope: room.to_string(),
                name: (*session).to_owned(),
                marked: true,
            })
            .collect();
        self.rows.write(writes).await
    }

    async fn reset_backup_state(&self) -> Result<()> {
        self.rows
            .write(vec![Write::MarkAll {
                kind: Kind::InboundGroupSession,
                marked: false,
            }])
            .await
    }

    async fn load_backup_keys(&self) -> Result<BackupKeys> {
        Ok(BackupKeys {
            decryption_key: self
                .load::<BackupDecryptionKey>(Kind::Value, "", BACKUP_KEY)
                .await?,
            backup_version: self.load(Kind::Value, "", BACKUP_VERSION).await?,
        })
    }

    async fn load_dehydrated_device_pickle_key(&self) -> Result<Option<DehydratedDeviceKey>> {
        self.load(Kind::Value, "", DEHYDRATED_KEY).await
    }

    async fn delete_dehydrated_device_pickle_key(&self) -> Result<()> {
        self.rows
            .write(vec![Write::Delete {
                kind: Kind::Value,
                scope: String::new(),
                name: DEHYDRATED_KEY.to_owned(),
            }])
            .await
    }

    async fn get_outbound_group_session(
        &self,
        room_id: &RoomId,
    ) -> Result<Option<OutboundGroupSession>> {
        let Some(pickle) = self
            .load::<PickledOutboundGroupSession>(Kind::OutboundGroupSession, "", room_id.as_str())
            .await?
        else {
            return Ok(None);
        };
        let account = self.static_account()?;
        let session =
            OutboundGroupSession::from_pickle(account.device_id, account.identity_keys, pickle)
                .map_err(unpickle_error)?;
        Ok(Some(session))
    }

    async fn load_tracked_users(&self) -> Result<Vec<TrackedUser>> {
        self.rows
            .list(Kind::TrackedUser, Filter::All)
            .await?
            .into_iter()
            .map(|row| {
                Ok(TrackedUser {
                    user_id: OwnedUserId::try_from(row.name)?,
                    dirty: row.marked,
                })
            })
            .collect()
    }

    async fn save_tracked_users(&self, users: &[(&UserId, bool)]) -> Result<()> {
        let writes = users
            .iter()
            .map(|(user, dirty)| Write::Put {
                kind: Kind::TrackedUser,
                scope: String::new(),
                name: user.to_string(),
                sender: String::new(),
                sender_type: 0,
                marked: *dirty,
                value: Vec::new(),
            })
            .collect();
        self.rows.write(writes).await
    }

    async fn get_device(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
    ) -> Result<Option<DeviceData>> {
        self.load(Kind::Device, user_id.as_str(), device_id.as_str())
            .await
    }

    async fn get_user_devices(
        &self,
        user_id: &UserId,
    ) -> Result<HashMap<OwnedDeviceId, DeviceData>> {
        let devices: Vec<DeviceData> = self
            .load_all(Kind::Device, Filter::Scope(user_id.as_str()))
            .await?;
        Ok(devices
            .into_iter()
            .map(|device| (device.device_id().to_owned(), device))
            .collect())
    }

    async fn get_own_device(&self) -> Result<DeviceData> {
        let account = self.static_account()?;
        self.get_device(&account.user_id, &account.device_id)
            .await?
            .ok_or(CryptoStoreError::AccountUnset)
    }

    async fn get_user_identity(&self, user_id: &UserId) -> Result<Option<UserIdentityData>> {
        self.load(Kind::Identity, "", user_id.as_str()).await
    }

    async fn is_message_known(&self, message_hash: &OlmMessageHash) -> Result<bool> {
        Ok(self
            .rows
            .get(Kind::OlmHash, &message_hash.sender_key, &message_hash.hash)
            .await?
            .is_some())
    }

    async fn get_outgoing_secret_requests(
        &self,
        request_id: &TransactionId,
    ) -> Result<Option<GossipRequest>> {
        self.rows
            .get(Kind::SecretRequest, "", request_id.as_str())
            .await?
            .map(|row| self.secret_request(&row))
            .transpose()
    }

    async fn get_secret_request_by_info(
        &self,
        secret_info: &SecretInfo,
    ) -> Result<Option<GossipRequest>> {
        let key = secret_info.as_key();
        let rows = self
            .rows
            .list(Kind::SecretRequest, Filter::Sender(&key))
            .await?;
        rows.first().map(|row| self.secret_request(row)).transpose()
    }

    async fn get_unsent_secret_requests(&self) -> Result<Vec<GossipRequest>> {
        let filter = Filter::Marked {
            marked: false,
            limit: i64::MAX,
        };
        self.rows
            .list(Kind::SecretRequest, filter)
            .await?
            .iter()
            .map(|row| self.secret_request(row))
            .collect()
    }

    async fn delete_outgoing_secret_requests(&self, request_id: &TransactionId) -> Result<()> {
        self.rows
            .write(vec![Write::Delete {
                kind: Kind::SecretRequest,
                scope: String::new(),
                name: request_id.to_string(),
            }])
            .await
    }

    async fn get_secrets_from_inbox(
        &self,
        secret_name: &SecretName,
    ) -> Result<Vec<Zeroizing<String>>> {
        let secrets: Vec<String> = self
            .load_all(Kind::Secret, Filter::Scope(secret_name.as_str()))
            .await?;
        Ok(secrets.into_iter().map(Zeroizing::new).collect())
    }

    async fn delete_secrets_from_inbox(&self, secret_name: &SecretName) -> Result<()> {
        self.rows
            .write(vec![Write::DeleteScope {
                kind: Kind::Secret,
                scope: secret_name.to_string(),
            }])
            .await
    }

    async fn get_room_settings(&self, room_id: &RoomId) -> Result<Option<RoomSettings>> {
        self.load(Kind::RoomSettings, "", room_id.as_str()).await
    }

    async fn get_received_room_key_bundle_data(
        &self,
        room_id: &RoomId,
        user_id: &UserId,
    ) -> Result<Option<StoredRoomKeyBundleData>> {
        self.load(Kind::RoomKeyBundle, room_id.as_str(), user_id.as_str())
            .await
    }

    async fn get_pending_key_bundle_details_for_room(
        &self,
        room_id: &RoomId,
    ) -> Result<Option<RoomPendingKeyBundleDetails>> {
        self.load(Kind::PendingKeyBundle, "", room_id.as_str())
            .await
    }

    async fn get_all_rooms_pending_key_bundles(&self) -> Result<Vec<RoomPendingKeyBundleDetails>> {
        self.load_all(Kind::PendingKeyBundle, Filter::All).await
    }

    async fn has_downloaded_all_room_keys(&self, room_id: &RoomId) -> Result<bool> {
        Ok(self
            .rows
            .get(Kind::BackupDownloaded, "", room_id.as_str())
            .await?
            .is_some())
    }

    async fn get_custom_value(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.load(Kind::Custom, "", key).await
    }

    async fn set_custom_value(&self, key: &str, value: Vec<u8>) -> Result<()> {
        let write = self.put(Kind::Custom, "", key, &value)?;
        self.rows.write(vec![write]).await
    }

    async fn remove_custom_value(&self, key: &str) -> Result<()> {
        self.rows
            .write(vec![Write::Delete {
                kind: Kind::Custom,
                scope: String::new(),
                name: key.to_owned(),
            }])
            .await
    }

    async fn try_take_leased_lock(
        &self,
        lease_duration_ms: u32,
        key: &str,
        holder: &str,
    ) -> Result<Option<CrossProcessLockGeneration>> {
        let now = i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis(),
        )
        .unwrap_or(i64::MAX);
        let generation = self
            .rows
            .take_lease(key, holder, now, i64::from(lease_duration_ms))
            .await?;
        Ok(generation.map(|g| CrossProcessLockGeneration::try_from(g).unwrap_or_default()))
    }

    async fn next_batch_token(&self) -> Result<Option<String>> {
        self.load(Kind::Value, "", NEXT_BATCH_TOKEN).await
    }

    async fn close(&self) -> Result<()> {
        // The pool is the server's; there is nothing of this bot's own to release.
        Ok(())
    }

    async fn reopen(&self) -> Result<()> {
        Ok(())
    }

    async fn get_size(&self) -> Result<Option<usize>> {
        Ok(None)
    }
}
