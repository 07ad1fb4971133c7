//! Carrying a bot's keys over from the SQLite store folder earlier versions kept per bot, so that
//! an upgrade keeps its device's identity and the sessions other devices trust.

use std::collections::BTreeSet;
use std::path::Path;

use matrix_sdk::{SqliteCryptoStore, SqliteStoreConfig};
use matrix_sdk_crypto::store::types::{Changes, DeviceChanges, IdentityChanges, PendingChanges};
use matrix_sdk_crypto::store::{CryptoStore, CryptoStoreError};

use super::BotCryptoStore;

/// Copies what the legacy store in `folder` holds into `store`: the account, the private
/// cross-signing identity, the devices and identities of tracked users, the Olm sessions with
/// those devices, every room key, the backup keys and the to-device token. Our own room keys
/// for sending (outbound group sessions) are not listed by the store and start anew, which
/// other devices handle like any key rotation. Returns false if the folder holds no account of
/// `bot` (folders of earlier versions' naming could be shared by two bots).
pub async fn import_legacy(
    store: &BotCryptoStore,
    bot: &str,
    folder: &Path,
    key: &[u8; 32],
) -> Result<bool, CryptoStoreError> {
    let config = SqliteStoreConfig::with_low_memory_config(folder).key(Some(key));
    let legacy = SqliteCryptoStore::open_with_config(&config)
        .await
        .map_err(CryptoStoreError::backend)?;
    let Some(account) = legacy.load_account().await? else {
        return Ok(false);
    };
    if account.user_id().as_str() != bot {
        return Ok(false);
    }
    let own_user = account.user_id().to_owned();
    store
        .save_pending_changes(PendingChanges {
            account: Some(account),
        })
        .await?;

    let tracked = legacy.load_tracked_users().await?;
    let mut users: BTreeSet<_> = tracked.iter().map(|t| t.user_id.clone()).collect();
    users.insert(own_user);
    let mut devices = Vec::new();
    let mut identities = Vec::new();
    let mut sessions = Vec::new();
    for user in &users {
        for device in legacy.get_user_devices(user).await?.into_values() {
            if let Some(key) = device.curve25519_key()
                && let Some(found) = legacy.get_sessions(&key.to_base64()).await?
            {
                sessions.extend(found);
            }
            devices.push(device);
        }
        if let Some(identity) = legacy.get_user_identity(user).await? {
            identities.push(identity);
        }
    }
    let backup = legacy.load_backup_keys().await?;
    let changes = Changes {
        private_identity: legacy.load_identity().await?,
        backup_version: backup.backup_version,
        backup_decryption_key: backup.decryption_key,
        sessions,
        inbound_group_sessions: legacy.get_inbound_group_sessions().await?,
        identities: IdentityChanges {
            new: identities,
            ..IdentityChanges::default()
        },
        devices: DeviceChanges {
            new: devices,
            ..DeviceChanges::default()
        },
        next_batch_token: legacy.next_batch_token().await?,
        ..Changes::default()
    };
    store.save_changes(changes).await?;
    let tracked: Vec<_> = tracked
        .iter()
        .map(|t| (t.user_id.as_ref(), t.dirty))
        .collect();
    store.save_tracked_users(&tracked).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use matrix_sdk::ruma::{device_id, room_id, user_id};
    use matrix_sdk_crypto::olm::Account;
    use matrix_sdk_crypto::store::types::{Changes, DeviceChanges, PendingChanges};
    use matrix_sdk_crypto::{DeviceData, store::CryptoStore};
    use maubot_types::config::{DatabaseOpts, DatabaseUrl};

    use super::*;
    use crate::db::Database;

    #[tokio::test]
    async fn a_legacy_store_moves_into_the_database_with_its_keys() {
        let dir = tempfile::tempdir().expect("temp dir");
        let folder = dir.path().join("legacy");
        let key = [7; 32];
        let account = Account::with_device_id(user_id!("@bot:hs"), device_id!("BOTDEVICE"));
        let (_, room_key) = account
            .create_group_session_pair_with_defaults(room_id!("!room:hs"))
            .await;
        {
            let config = SqliteStoreConfig::with_low_memory_config(&folder).key(Some(&key));
            let legacy = SqliteCryptoStore::open_with_config(&config)
                .await
                .expect("legacy store");
            legacy
                .save_pending_changes(PendingChanges {
                    account: Some(account.deep_clone()),
                })
                .await
                .expect("save the account");
            legacy
                .save_changes(Changes {
                    devices: DeviceChanges {
                        new: vec![DeviceData::from_account(&account)],
                        ..Default::default()
                    },
                    inbound_group_sessions: vec![room_key.clone()],
                    ..Default::default()
                })
                .await
                .expect("save a device and a room key");
            legacy
                .save_tracked_users(&[(user_id!("@bot:hs"), false)])
                .await
                .expect("track");
        }
        let url = DatabaseUrl::Sqlite(dir.path().join("maubot.db").display().to_string());
        let db = Database::open(&url, &DatabaseOpts::default())
            .await
            .expect("database");
        let store = BotCryptoStore::new(db.clone(), "@bot:hs", &[1; 32]);

        // Another bot's folder (the older naming could be shared) is not taken.
        let other = BotCryptoStore::new(db.clone(), "@other:hs", &[2; 32]);
        assert!(
            !import_legacy(&other, "@other:hs", &folder, &key)
                .await
                .expect("read the folder")
        );
        assert!(other.is_empty().await.expect("empty"));

        assert!(
            import_legacy(&store, "@bot:hs", &folder, &key)
                .await
                .expect("import")
        );
        let reopened = BotCryptoStore::new(db, "@bot:hs", &[1; 32]);
        let loaded = reopened
            .load_account()
            .await
            .expect("load")
            .expect("an account");
        assert_eq!(loaded.identity_keys(), account.identity_keys());
        let imported = reopened
            .get_inbound_group_session(room_id!("!room:hs"), room_key.session_id())
            .await
            .expect("load the room key")
            .expect("the room key");
        assert_eq!(imported.session_id(), room_key.session_id());
        assert_eq!(
            reopened
                .get_own_device()
                .await
                .expect("own device")
                .device_id(),
            "BOTDEVICE"
        );
        assert_eq!(
            reopened.load_tracked_users().await.expect("tracked").len(),
            1
        );
    }
}
