//! Building `matrix_sdk::Client`s for bots: the one place that decides how they store state.
//!
//! All bots share one HTTP client and keep their end-to-end encryption keys in the main database
//! ([`BotCryptoStore`]). Room state, the event cache and media stay in memory: the first sync
//! after a start asks for the full state of every room, which rebuilds what the bot knows
//! (which rooms are encrypted included) before it hands any event on. ARCHITECTURE.md ("A
//! thousand bots") has the measurements behind this.

use std::path::PathBuf;
use std::time::Duration;

use matrix_sdk::authentication::matrix::MatrixSession;
use matrix_sdk::config::{RequestConfig, StoreConfig};
use matrix_sdk::cross_process_lock::CrossProcessLockConfig;
use matrix_sdk::ruma::{OwnedDeviceId, OwnedUserId};
use matrix_sdk::store::RoomLoadSettings;
use matrix_sdk::{Client, SessionMeta, SessionTokens};
use maubot_types::secret::Secret;
use serde::Deserialize;

use super::crypto_store::{BotCryptoStore, import_legacy};
use super::{AccessDetails, Error, Result};
use crate::db::Database;

const LOG: &str = "maubot.client";

/// Where bots' keys live, and the key that encrypts them.
#[derive(Debug, Clone)]
pub struct BotStores {
    pub db: Database,
    pub pickle_key: Secret,
    /// `crypto_store_path`: where earlier versions kept a store folder per bot, imported into
    /// the database at a bot's first start.
    pub legacy_dir: PathBuf,
}

impl BotStores {
    /// The key that encrypts `user_id`'s keys, derived from `crypto_db_pickle_key`. A key rather
    /// than the passphrase itself: a passphrase goes through a slow KDF at every start, which
    /// costs each bot noticeable CPU time when hundreds start at once.
    fn key_for(&self, user_id: &str) -> [u8; 32] {
        use sha2::Digest as _;
        let mut hasher = sha2::Sha256::new();
        hasher.update(b"maubot-rs bot store\0");
        hasher.update(self.pickle_key.expose().as_bytes());
        hasher.update(b"\0");
        hasher.update(user_id.as_bytes());
        hasher.finalize().into()
    }

    /// Imports `user_id`'s legacy store folder into `store` if it has nothing yet, then removes
    /// the folder. A folder of the older naming may be another bot's and is skipped with a
    /// warning if it does not open as this bot's.
    async fn import_legacy(&self, store: &BotCryptoStore, user_id: &str) -> Result<()> {
        if !store.is_empty().await.map_err(setup_error)? {
            return Ok(());
        }
        let key = self.key_for(user_id);
        let exact = self.legacy_dir.join(folder_name(user_id));
        let (folder, shared) = if exact.is_dir() {
            (exact, false)
        } else {
            let older = self.legacy_dir.join(older_folder_name(user_id));
            if !older.is_dir() {
                return Ok(());
            }
            (older, true)
        };
        match import_legacy(store, user_id, &folder, &key).await {
            Ok(true) => {
                tracing::info!(
                    target: LOG, client = %user_id, folder = %folder.display(),
                    "Moved the bot's keys from its store folder into the database"
                );
                if let Err(err) = std::fs::remove_dir_all(&folder) {
                    tracing::warn!(
                        target: LOG, client = %user_id, folder = %folder.display(), error = %err,
                        "Could not remove the imported store folder"
                    );
                }
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(err) if shared => {
                tracing::warn!(
                    target: LOG, client = %user_id, folder = %folder.display(), error = %err,
                    "A store folder of an earlier version did not open as this bot's and was left alone"
                );
                Ok(())
            }
            Err(err) => Err(Error::Setup(format!(
                "could not import the bot's keys from {}: {err}",
                folder.display()
            ))),
        }
    }
}

/// The legacy store folder of `user_id`: every byte but ASCII letters, digits, `-` and `.`
/// written as `_` and two hex digits.
fn folder_name(user_id: &str) -> String {
    let mut name = String::with_capacity(user_id.len() + 8);
    for byte in user_id.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'.' {
            name.push(char::from(byte));
        } else {
            name.push_str(&format!("_{byte:02x}"));
        }
    }
    name
}

/// The folder the first versions used, which mapped every other character to `_` (so `@a=b`
/// and `@a_b` shared one).
fn older_folder_name(user_id: &str) -> String {
    user_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn setup_error(err: impl std::fmt::Display) -> Error {
    Error::Setup(err.to_string())
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
    stores: &BotStores,
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
    match open(http, stores, user_id, &device_id, details).await {
        Ok(client) => Ok(client),
        Err(err) if err.contains("MismatchedAccount") || err.contains("doesn't match") => {
            // The store holds another device's keys (the client was given a new device).
            tracing::warn!(
                target: LOG,
                client = %user_id,
                "Mismatching device ID in crypto store and main database, resetting encryption"
            );
            BotCryptoStore::delete(stores.db.clone(), user_id)
                .await
                .map_err(setup_error)?;
            open(http, stores, user_id, &device_id, details)
                .await
                .map_err(Error::Setup)
        }
        Err(err) => Err(Error::Setup(err)),
    }
}

async fn open(
    http: &reqwest::Client,
    stores: &BotStores,
    user_id: &str,
    device_id: &str,
    details: &AccessDetails,
) -> Result<Client, String> {
    let crypto = BotCryptoStore::new(stores.db.clone(), user_id, &stores.key_for(user_id));
    stores
        .import_legacy(&crypto, user_id)
        .await
        .map_err(|e| e.to_string())?;
    let store = StoreConfig::new(CrossProcessLockConfig::SingleProcess).crypto_store(crypto);
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
    fn legacy_folder_names() {
        assert_ne!(folder_name("@a=b:hs"), folder_name("@a_b:hs"));
        assert_eq!(folder_name("@bot.1-x:hs"), "_40bot.1-x_3ahs");
        assert_eq!(folder_name("@a_b:hs"), "_40a_5fb_3ahs");
        assert_eq!(older_folder_name("@a=b:hs"), older_folder_name("@a_b:hs"));
    }
}
