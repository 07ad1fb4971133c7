//! Building `matrix_sdk::Client`s for bots: the one place that decides how they store state.
//!
//! Each bot keeps one small SQLite store directory (state and crypto, low-memory settings; the
//! event cache and media in memory) under `crypto_store_path`, and all bots share one HTTP client. A persistent state store is
//! what lets a restart resume syncing where it stopped and know which rooms are encrypted before
//! it has seen them again. A later issue moves all bots' state into the shared database.

use std::path::PathBuf;
use std::time::Duration;

use matrix_sdk::authentication::matrix::MatrixSession;
use matrix_sdk::config::{RequestConfig, StoreConfig};
use matrix_sdk::cross_process_lock::CrossProcessLockConfig;
use matrix_sdk::ruma::{OwnedDeviceId, OwnedUserId};
use matrix_sdk::store::RoomLoadSettings;
use matrix_sdk::{
    Client, SessionMeta, SessionTokens, SqliteCryptoStore, SqliteStateStore, SqliteStoreConfig,
};
use maubot_types::secret::Secret;
use serde::Deserialize;

use super::{AccessDetails, Error, Result};

/// Where bots' stores live, and the key that encrypts them.
#[derive(Debug, Clone)]
pub struct StoreLocation {
    pub dir: PathBuf,
    pub pickle_key: Secret,
}

impl StoreLocation {
    /// The key that encrypts `user_id`'s store, derived from `crypto_db_pickle_key`. A key rather
    /// than the passphrase itself: a passphrase goes through PBKDF2 at every start, which costs
    /// each bot noticeable CPU time when hundreds start at once.
    fn key_for(&self, user_id: &str) -> [u8; 32] {
        use sha2::Digest as _;
        let mut hasher = sha2::Sha256::new();
        hasher.update(b"maubot-rs bot store\0");
        hasher.update(self.pickle_key.expose().as_bytes());
        hasher.update(b"\0");
        hasher.update(user_id.as_bytes());
        hasher.finalize().into()
    }

    /// The store folder of `user_id`: every byte but ASCII letters, digits, `-` and `.` written
    /// as `_` and two hex digits, so that distinct user IDs never share a folder.
    fn path_for(&self, user_id: &str) -> PathBuf {
        let mut name = String::with_capacity(user_id.len() + 8);
        for byte in user_id.bytes() {
            if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'.' {
                name.push(char::from(byte));
            } else {
                name.push_str(&format!("_{byte:02x}"));
            }
        }
        self.dir.join(name)
    }

    /// The folder earlier versions used, which mapped every other character to `_` (so `@a=b`
    /// and `@a_b` collided).
    fn legacy_path_for(&self, user_id: &str) -> PathBuf {
        let name: String = user_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-._".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(name)
    }

    /// Moves the stores of `user_ids` from their legacy folders to their new ones. A legacy
    /// folder that two of them map to cannot be told apart and is left alone (its bots start
    /// with new keys, as a moved store would not open for the wrong one anyway).
    pub fn migrate_legacy_folders<'a>(&self, user_ids: impl IntoIterator<Item = &'a str>) {
        let mut owners: std::collections::BTreeMap<PathBuf, Vec<&str>> = Default::default();
        for user_id in user_ids {
            owners
                .entry(self.legacy_path_for(user_id))
                .or_default()
                .push(user_id);
        }
        for (legacy, users) in owners {
            let [user_id] = users.as_slice() else {
                if legacy.exists() {
                    tracing::warn!(
                        target: "maubot.client", folder = %legacy.display(), users = ?users,
                        "A bot store folder of an earlier version belongs to one of several bots and is not moved"
                    );
                }
                continue;
            };
            let new = self.path_for(user_id);
            if legacy == new || !legacy.exists() || new.exists() {
                continue;
            }
            match std::fs::rename(&legacy, &new) {
                Ok(()) => tracing::info!(
                    target: "maubot.client", client = %user_id, "Moved the bot's store to its new folder name"
                ),
                Err(err) => tracing::warn!(
                    target: "maubot.client", client = %user_id, error = %err,
                    "Could not move the bot's store to its new folder name"
                ),
            }
        }
    }
}

/// Asks the homeserver whose token this is: `(user_id, device_id)`.
pub async fn whoami(
    http: &reqwest::Client,
    details: &AccessDetails,
) -> Result<(String, Option<String>)> {
    let url = format!(
        "{}/_matrix/client/v3/account/whoami",
        details.homeserver.trim_end_matches('/')
    );
    let response = http
        .get(url)
        .bearer_auth(details.access_token.expose())
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .map_err(|e| Error::Connection(e.to_string()))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if body["errcode"] == "M_UNKNOWN_TOKEN" {
        return Err(Error::BadAccessToken);
    }
    #[derive(Deserialize)]
    struct WhoAmI {
        user_id: String,
        device_id: Option<String>,
    }
    match serde_json::from_value::<WhoAmI>(body.clone()) {
        Ok(me) if status.is_success() => Ok((me.user_id, me.device_id)),
        _ => Err(Error::BadAccessDetails(format!("{status}: {body}"))),
    }
}

/// A client for `user_id` with its session restored and its store opened. The token is checked
/// first, so a revoked token is reported as [`Error::BadAccessToken`].
pub async fn build(
    http: &reqwest::Client,
    stores: &StoreLocation,
    user_id: &str,
    details: &AccessDetails,
) -> Result<Client> {
    let (token_user, token_device) = whoami(http, details).await?;
    if token_user != user_id {
        return Err(Error::UserMismatch(token_user));
    }
    let device_id = match (details.device_id.as_str(), token_device) {
        ("", Some(device)) => device,
        ("", None) => {
            return Err(Error::Setup(
                "the homeserver reports no device for this token".into(),
            ));
        }
        (given, _) => given.to_owned(),
    };
    let path = stores.path_for(user_id);
    match open(http, stores, &path, user_id, &device_id, details).await {
        Ok(client) => Ok(client),
        Err(err) if err.contains("MismatchedAccount") || err.contains("doesn't match") => {
            // The store holds another device's keys (the client was given a new device).
            tracing::warn!(
                target: "maubot.client",
                client = %user_id,
                "Mismatching device ID in crypto store and main database, resetting encryption"
            );
            let _ = std::fs::remove_dir_all(&path);
            open(http, stores, &path, user_id, &device_id, details)
                .await
                .map_err(Error::Setup)
        }
        Err(err) => Err(Error::Setup(err)),
    }
}

async fn open(
    http: &reqwest::Client,
    stores: &StoreLocation,
    path: &std::path::Path,
    user_id: &str,
    device_id: &str,
    details: &AccessDetails,
) -> Result<Client, String> {
    std::fs::create_dir_all(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    // State and crypto persist; the event cache and media stay in memory (fewer files per bot).
    let sqlite =
        SqliteStoreConfig::with_low_memory_config(path).key(Some(&stores.key_for(user_id)));
    let state_store = SqliteStateStore::open_with_config(&sqlite)
        .await
        .map_err(|e| e.to_string())?;
    let crypto_store = SqliteCryptoStore::open_with_config(&sqlite)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let store = StoreConfig::new(CrossProcessLockConfig::SingleProcess)
        .state_store(state_store)
        .crypto_store(crypto_store);
    let client = Client::builder()
        .homeserver_url(&details.homeserver)
        .http_client(http.clone())
        // Fail over to our own backoff instead of the SDK's long retries.
        .request_config(RequestConfig::new().retry_limit(2))
        .store_config(store)
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let session = MatrixSession {
        meta: SessionMeta {
            user_id: OwnedUserId::try_from(user_id).map_err(|e| e.to_string())?,
            device_id: OwnedDeviceId::from(device_id),
        },
        tokens: SessionTokens {
            access_token: details.access_token.expose().to_owned(),
            refresh_token: None,
        },
    };
    client
        .matrix_auth()
        .restore_session(session, RoomLoadSettings::default())
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_folders_of_distinct_users_differ() {
        let stores = StoreLocation {
            dir: PathBuf::from("/stores"),
            pickle_key: Secret::new("k"),
        };
        let name = |user: &str| stores.path_for(user).display().to_string();
        // Regression: both were `_a_b_hs`, and the second bot's store would not open.
        assert_ne!(name("@a=b:hs"), name("@a_b:hs"));
        assert_eq!(name("@bot.1-x:hs"), "/stores/_40bot.1-x_3ahs");
        assert_eq!(name("@a_b:hs"), "/stores/_40a_5fb_3ahs");
    }

    #[test]
    fn legacy_store_folders_move_unless_ambiguous() {
        let dir = tempfile::tempdir().expect("temp dir");
        let stores = StoreLocation {
            dir: dir.path().to_owned(),
            pickle_key: Secret::new("k"),
        };
        std::fs::create_dir_all(dir.path().join("_x_hs")).expect("legacy folder");
        std::fs::write(dir.path().join("_x_hs/store"), "keys").expect("store");
        std::fs::create_dir_all(dir.path().join("_a_b_hs")).expect("ambiguous folder");
        stores.migrate_legacy_folders(["@x:hs", "@a=b:hs", "@a_b:hs"]);
        assert_eq!(
            std::fs::read_to_string(stores.path_for("@x:hs").join("store")).expect("moved"),
            "keys"
        );
        assert!(!dir.path().join("_x_hs").exists());
        assert!(dir.path().join("_a_b_hs").exists(), "ambiguous: left alone");
        assert!(!stores.path_for("@a=b:hs").exists());
    }
}
