//! Cross-signing and recovery for a bot's own identity: the `verify` and
//! `generate_recovery_key` routes, and the trust state the API shows.

use matrix_sdk::Client;

use super::{Error, Result};

/// The bot's own device's trust, named as maubot names mautrix's `TrustState` (`None` where
/// maubot shows null: unverified, or no crypto). A device always trusts itself locally, so only
/// cross-signing counts here.
pub async fn trust_state(client: &Client) -> Option<String> {
    let device = client.encryption().get_own_device().await.ok().flatten()?;
    if !device.is_cross_signed_by_owner() {
        return None;
    }
    let state = if device.is_verified_with_cross_signing() {
        "cross-signed-trusted"
    } else {
        "cross-signed-untrusted"
    };
    Some(state.to_owned())
}

/// Creates cross-signing keys and a recovery key for an account that has none.
pub async fn generate_recovery_key(client: &Client) -> Result<String> {
    let encryption = client.encryption();
    encryption.wait_for_e2ee_initialization_tasks().await;
    // The server's view, not just ours: another device may have set up cross-signing.
    if let Some(user_id) = client.user_id() {
        let identity = encryption
            .request_user_identity(user_id)
            .await
            .map_err(crypto_error)?;
        if identity.is_some() {
            return Err(Error::HasKeys);
        }
    }
    encryption
        .bootstrap_cross_signing(None)
        .await
        .map_err(crypto_error)?;
    let key = encryption.recovery().enable().await.map_err(crypto_error)?;
    refresh_own_keys(client).await;
    Ok(key)
}

/// Fetches the account's cross-signing secrets with `recovery_key` and signs this device.
pub async fn verify(client: &Client, recovery_key: &str) -> Result<()> {
    let encryption = client.encryption();
    encryption.wait_for_e2ee_initialization_tasks().await;
    encryption
        .recovery()
        .recover(recovery_key)
        .await
        .map_err(crypto_error)?;
    refresh_own_keys(client).await;
    Ok(())
}

/// Downloads the account's own keys again: the signature of this device that was just uploaded
/// reaches the local copy, which [`trust_state`] reads, only with the next key query, which a
/// later sync would trigger (the API's answer would otherwise race it).
async fn refresh_own_keys(client: &Client) {
    let Some(user_id) = client.user_id() else {
        return;
    };
    if let Err(err) = client.encryption().request_user_identity(user_id).await {
        tracing::debug!(target: "maubot.client", client = %user_id, error = %err, "could not refresh the bot's own keys");
    }
}

fn crypto_error(err: impl std::fmt::Display) -> Error {
    Error::Crypto(err.to_string())
}
