//! Encryption of a bot's stored crypto objects: what keeps its private keys unreadable to whoever
//! can read the main database but not the config.

use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use matrix_sdk_crypto::store::CryptoStoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The first byte of every sealed value; another one means another format.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

/// Seals and opens the values of one bot.
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(key)),
        }
    }

    /// `value` as JSON, encrypted and bound to `place` (the row's kind, scope and name), so that
    /// a value moved to another row does not open there.
    pub fn seal(
        &self,
        place: &[&str],
        value: &impl Serialize,
    ) -> Result<Vec<u8>, CryptoStoreError> {
        let plain = zeroize::Zeroizing::new(serde_json::to_vec(value)?);
        let nonce: [u8; NONCE_LEN] = rand::random();
        let aad = aad(place);
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoStoreError::UnpicklingError)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub fn open<T: DeserializeOwned>(
        &self,
        place: &[&str],
        sealed: &[u8],
    ) -> Result<T, CryptoStoreError> {
        let Some((&VERSION, rest)) = sealed.split_first() else {
            return Err(CryptoStoreError::UnpicklingError);
        };
        if rest.len() < NONCE_LEN {
            return Err(CryptoStoreError::UnpicklingError);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let aad = aad(place);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map(zeroize::Zeroizing::new)
            // The wrong pickle key, or a value from another row or bot.
            .map_err(|_| CryptoStoreError::UnpicklingError)?;
        Ok(serde_json::from_slice(&plain)?)
    }
}

fn aad(place: &[&str]) -> Vec<u8> {
    let mut aad = Vec::new();
    for part in place {
        aad.extend_from_slice(part.as_bytes());
        aad.push(0);
    }
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_open_only_in_their_place_and_with_their_key() {
        let sealer = Sealer::new(&[1; 32]);
        let sealed = sealer
            .seal(&["session", "sender", "id"], &"secret pickle")
            .expect("seal");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        let opened: String = sealer
            .open(&["session", "sender", "id"], &sealed)
            .expect("open");
        assert_eq!(opened, "secret pickle");
        assert!(
            sealer
                .open::<String>(&["session", "sender", "other"], &sealed)
                .is_err()
        );
        assert!(
            Sealer::new(&[2; 32])
                .open::<String>(&["session", "sender", "id"], &sealed)
                .is_err()
        );
        assert!(sealer.open::<String>(&["session"], &[VERSION]).is_err());
    }
}
