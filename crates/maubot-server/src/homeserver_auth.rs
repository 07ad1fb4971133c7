//! Getting bot accounts from a homeserver: Synapse's shared-secret registration and password
//! login. Plain HTTP, because neither needs a Matrix client yet and the homeserver's own
//! errcodes must reach the caller unchanged.

use maubot_types::registration::registration_mac;
use maubot_types::secret::Secret;
use rand::Rng as _;
use serde::Deserialize;
use serde_json::{Value, json};

/// What went wrong talking to the homeserver.
#[derive(Debug, thiserror::Error)]
pub enum HomeserverAuthError {
    /// The homeserver could not be reached.
    #[error("could not connect to the homeserver: {0}")]
    Connection(#[source] reqwest::Error),
    /// The homeserver answered with a Matrix error.
    #[error("{errcode}: {error}")]
    Matrix {
        status: u16,
        errcode: String,
        error: String,
    },
    /// The homeserver does not offer what was asked (not Synapse, or no password login).
    #[error("{0}")]
    Unsupported(&'static str),
}

/// The homeserver's login (or registration) answer: `user_id`, `access_token`, `device_id`, ...
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user_id: String,
    pub access_token: Secret,
    pub device_id: String,
    /// The answer as the homeserver sent it, for callers that return it.
    pub raw: Value,
}

/// Registers `username` with Synapse's shared-secret admin API, as maubot does.
pub async fn register(
    http: &reqwest::Client,
    homeserver: &str,
    shared_secret: &Secret,
    username: &str,
    password: &Secret,
    user_type: Option<&str>,
) -> Result<Credentials, HomeserverAuthError> {
    let url = format!(
        "{}/_synapse/admin/v1/register",
        homeserver.trim_end_matches('/')
    );
    let response = http
        .get(&url)
        .send()
        .await
        .map_err(HomeserverAuthError::Connection)?;
    if !response.status().is_success() {
        // What non-Synapse homeservers answer (maubot issue #273: a bare 500).
        return Err(HomeserverAuthError::Unsupported(
            "The homeserver does not offer Synapse's shared-secret registration",
        ));
    }
    #[derive(Deserialize)]
    struct Nonce {
        nonce: String,
    }
    let Nonce { nonce } = response.json().await.map_err(|_| {
        HomeserverAuthError::Unsupported(
            "The homeserver does not offer Synapse's shared-secret registration",
        )
    })?;
    let mac = registration_mac(
        shared_secret.expose(),
        &nonce,
        username,
        password.expose(),
        false,
        user_type,
    );
    let mut body = json!({
        "nonce": nonce, "username": username, "password": password.expose(), "admin": false, "mac": mac,
    });
    if let Some(user_type) = user_type {
        body["user_type"] = json!(user_type);
    }
    post_for_credentials(http, &url, &body).await
}

/// Password login with a new `maubot_XXXXXXXX` device, as maubot does.
pub async fn login(
    http: &reqwest::Client,
    homeserver: &str,
    username: &str,
    password: &Secret,
    device_name: &str,
) -> Result<Credentials, HomeserverAuthError> {
    let url = login_url(homeserver);
    // An OIDC-only homeserver (MAS) offers no password login: say so (maubot issue #283).
    if !offers(http, homeserver, "m.login.password").await? {
        return Err(HomeserverAuthError::Unsupported(
            "The homeserver does not offer password login (it may use single sign-on only)",
        ));
    }
    let body = json!({
        "type": "m.login.password",
        "identifier": { "type": "m.id.user", "user": username },
        "password": password.expose(),
        "device_id": new_device_id(),
        "initial_device_display_name": device_name,
    });
    post_for_credentials(http, &url, &body).await
}

/// Whether the homeserver offers the login type `kind` (`GET /login`'s flows).
pub async fn offers(
    http: &reqwest::Client,
    homeserver: &str,
    kind: &str,
) -> Result<bool, HomeserverAuthError> {
    let url = login_url(homeserver);
    let flows: Value = http
        .get(&url)
        .send()
        .await
        .map_err(HomeserverAuthError::Connection)?
        .json()
        .await
        .unwrap_or(Value::Null);
    Ok(flows["flows"]
        .as_array()
        .is_some_and(|flows| flows.iter().any(|f| f["type"] == kind)))
}

/// Logs in with the `loginToken` a single sign-on redirect brought, on a new device.
pub async fn login_with_token(
    http: &reqwest::Client,
    homeserver: &str,
    token: &Secret,
    device_name: &str,
) -> Result<Credentials, HomeserverAuthError> {
    let url = login_url(homeserver);
    let body = json!({
        "type": "m.login.token",
        "token": token.expose(),
        "device_id": new_device_id(),
        "initial_device_display_name": device_name,
    });
    post_for_credentials(http, &url, &body).await
}

/// POSTs `body` and reads the homeserver's login answer (or its refusal).
async fn post_for_credentials(
    http: &reqwest::Client,
    url: &str,
    body: &Value,
) -> Result<Credentials, HomeserverAuthError> {
    let response = http
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(HomeserverAuthError::Connection)?;
    let status = response.status().as_u16();
    let raw: Value = response.json().await.unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        return Err(HomeserverAuthError::Matrix {
            status,
            errcode: raw["errcode"].as_str().unwrap_or("M_UNKNOWN").to_owned(),
            error: raw["error"]
                .as_str()
                .unwrap_or("The homeserver refused the request")
                .to_owned(),
        });
    }
    let field = |name: &str| raw[name].as_str().map(str::to_owned);
    match (field("user_id"), field("access_token"), field("device_id")) {
        (Some(user_id), Some(token), Some(device_id)) => Ok(Credentials {
            user_id,
            access_token: Secret::new(token),
            device_id,
            raw,
        }),
        _ => Err(HomeserverAuthError::Unsupported(
            "The homeserver's answer lacks user_id, access_token or device_id",
        )),
    }
}

fn login_url(homeserver: &str) -> String {
    format!(
        "{}/_matrix/client/v3/login",
        homeserver.trim_end_matches('/')
    )
}

/// `maubot_` and eight characters of `[A-Z0-9]`.
fn new_device_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    let suffix: String = (0..8)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    format!("maubot_{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_look_like_maubots() {
        let id = new_device_id();
        assert_eq!(id.len(), 15);
        assert!(id.starts_with("maubot_"));
        assert!(
            id[7..]
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        );
    }
}
