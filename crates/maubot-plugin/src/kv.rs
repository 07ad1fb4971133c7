//! A key-value store of the instance's, kept by the server in the instance's database
//! (`database: true` in `maubot.yaml`).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Result;
use crate::bindings::maubot::plugin::kv as wit;

/// The value of `key`, if it is set.
pub fn get(key: &str) -> Result<Option<Vec<u8>>> {
    Ok(wit::get(key)?)
}

/// The value of `key` as text (UTF-8, invalid bytes replaced), if it is set.
pub fn get_string(key: &str) -> Result<Option<String>> {
    Ok(get(key)?.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
}

/// The value of `key` parsed from JSON, if it is set.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>> {
    match get(key)? {
        Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
        None => Ok(None),
    }
}

/// Sets `key` to `value`.
pub fn set(key: &str, value: impl AsRef<[u8]>) -> Result<()> {
    Ok(wit::set(key, value.as_ref())?)
}

/// Sets `key` to `value` as JSON.
pub fn set_json<T: Serialize>(key: &str, value: &T) -> Result<()> {
    set(key, serde_json::to_vec(value)?)
}

/// Removes `key`.
pub fn delete(key: &str) -> Result<()> {
    Ok(wit::delete(key)?)
}

/// The keys that start with `prefix`, in order.
pub fn keys(prefix: &str) -> Result<Vec<String>> {
    Ok(wit::keys(prefix)?)
}
