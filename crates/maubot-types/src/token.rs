//! Management API tokens, in maubot's format so that tokens move freely between maubot and
//! maubot-rs servers that share an `unshared_secret`.
//!
//! A token is `<checksum>:<payload>`. `payload` is the URL-safe base64 of the JSON
//! `{"user_id": <user>, "created_at": <unix seconds>}` (Python `json.dumps` spacing) without `=`
//! padding; `checksum` is the URL-safe base64, unpadded, of HMAC-SHA256 keyed with the unshared
//! secret over the *padded* payload.

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// What a token says about its holder.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Claims {
    /// The admin user the token was issued to (`root` or a key of `admins`).
    pub user_id: String,
    /// Unix seconds at issue. maubot never checks it; maubot-rs does when a lifetime is set.
    #[serde(default)]
    pub created_at: Option<i64>,
}

/// Why a token was refused. Callers answer every variant the same way (`auth_token_invalid`);
/// the variants exist for logs and tests.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Not of the form `<checksum>:<payload>`.
    #[error("token is not of the form <checksum>:<payload>")]
    Malformed,
    /// The checksum does not match: forged, or signed with another secret.
    #[error("token signature does not match")]
    BadSignature,
    /// The signature matches but the payload is not the expected JSON.
    #[error("token payload is not valid")]
    BadPayload,
}

/// Signs a token for `user_id`, issued at `created_at` (unix seconds).
pub fn sign(secret: &Secret, user_id: &str, created_at: i64) -> String {
    let json = format!(
        r#"{{"user_id": {}, "created_at": {created_at}}}"#,
        python_json_string(user_id)
    );
    let padded = URL_SAFE.encode(json.as_bytes());
    let checksum = checksum(secret, &padded);
    format!("{checksum}:{}", padded.trim_end_matches('='))
}

/// Verifies the signature of `token` and returns its claims. Whether the user is still an admin
/// and whether the token has expired is the caller's business.
pub fn verify(secret: &Secret, token: &str) -> Result<Claims, TokenError> {
    let (given, payload) = token.split_once(':').ok_or(TokenError::Malformed)?;
    let mut padded = payload.to_owned();
    padded.extend(std::iter::repeat_n('=', (4 - payload.len() % 4) % 4));
    let expected = checksum(secret, &padded);
    if !bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
        return Err(TokenError::BadSignature);
    }
    let json = URL_SAFE
        .decode(padded)
        .map_err(|_| TokenError::BadPayload)?;
    serde_json::from_slice(&json).map_err(|_| TokenError::BadPayload)
}

fn checksum(secret: &Secret, padded_payload: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(padded_payload.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// A JSON string literal as Python's `json.dumps` writes it (`ensure_ascii=True`), so that our
/// tokens are byte-identical to maubot's.
fn python_json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let secret = Secret::new("testsecret");
        let token = sign(&secret, "alice", 1_700_000_123);
        let claims = verify(&secret, &token).expect("valid token");
        assert_eq!(claims.user_id, "alice");
        assert_eq!(claims.created_at, Some(1_700_000_123));
    }

    /// Vectors from maubot 0.6.0's own signer (mautrix.util.signed_token), secret `testsecret`.
    /// The second one needs padding, which the HMAC covers.
    #[test]
    fn matches_maubots_tokens_byte_for_byte() {
        let secret = Secret::new("testsecret");
        let root = "KFyCvZ_PxjdbjlY5ExfgaGCJqW6gkIAykQoI7jdDow4:eyJ1c2VyX2lkIjogInJvb3QiLCAiY3JlYXRlZF9hdCI6IDE3MDAwMDAwMDB9";
        let alice = "i0ccpThgdNECFsBiEy7wncHH5Stwxzdb_4AJh6hRbHE:eyJ1c2VyX2lkIjogImFsaWNlIiwgImNyZWF0ZWRfYXQiOiAxNzAwMDAwMTIzfQ";
        assert_eq!(sign(&secret, "root", 1_700_000_000), root);
        assert_eq!(sign(&secret, "alice", 1_700_000_123), alice);
        assert_eq!(
            verify(&secret, alice).map(|c| c.user_id),
            Ok("alice".to_owned())
        );
    }

    #[test]
    fn refuses_other_secrets_and_tampering() {
        let secret = Secret::new("testsecret");
        let token = sign(&secret, "root", 1_700_000_000);
        assert_eq!(
            verify(&Secret::new("other"), &token),
            Err(TokenError::BadSignature)
        );

        let (checksum, _) = token.split_once(':').expect("has a colon");
        let forged_payload = URL_SAFE_NO_PAD.encode(br#"{"user_id": "mallory", "created_at": 1}"#);
        let forged = format!("{checksum}:{forged_payload}");
        assert_eq!(verify(&secret, &forged), Err(TokenError::BadSignature));

        assert_eq!(verify(&secret, "no-colon-here"), Err(TokenError::Malformed));
        assert_eq!(verify(&secret, ""), Err(TokenError::Malformed));
    }

    #[test]
    fn escapes_like_python() {
        assert_eq!(python_json_string("root"), r#""root""#);
        assert_eq!(python_json_string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(python_json_string("é😀"), r#""\u00e9\ud83d\ude00""#);
    }
}
