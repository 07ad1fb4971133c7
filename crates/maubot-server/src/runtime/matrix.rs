//! Matrix requests a plugin makes, performed as its bot. Sends go through matrix-sdk so that they
//! are encrypted in encrypted rooms; fetching one event answers it decrypted; what is not on the
//! allow-list (`matrix_routes`) is refused; the rest is forwarded to the homeserver with the
//! bot's access token, on the path as checked.

use std::collections::BTreeMap;

use base64::Engine as _;
use matrix_sdk::Client;
use matrix_sdk::ruma::{OwnedEventId, OwnedRoomId, OwnedTransactionId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::SECURITY;
use super::matrix_routes::{Route, route};
use crate::client::Bot;
use crate::matrix_path::MatrixPath;

/// How long a send into a room the bot does not know yet waits for its first sync.
const FIRST_SYNC_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// A client-server API request from a plugin.
#[derive(Debug, Clone, Deserialize)]
pub struct MatrixRequest {
    pub method: String,
    /// `/_matrix/...`, percent-encoded as on the wire.
    pub path: String,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<Value>,
    /// Raw bytes (media uploads), base64.
    #[serde(default)]
    pub body_base64: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
}

/// The homeserver's answer (or the server's own, as a Matrix error).
#[derive(Debug, Clone, Serialize)]
pub struct MatrixResponse {
    pub status: u16,
    pub body: Value,
    /// A body that is not JSON (media downloads), base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

impl MatrixResponse {
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            body,
            body_base64: None,
            content_type: None,
        }
    }

    fn error(status: u16, errcode: &str, error: impl Into<String>) -> Self {
        Self::json(status, json!({ "errcode": errcode, "error": error.into() }))
    }
}

/// Performs a plugin's request as `bot`.
pub async fn perform(bot: &Bot, http: &reqwest::Client, request: MatrixRequest) -> MatrixResponse {
    let (path, route) = match MatrixPath::parse(&request.path) {
        Ok(path) => {
            let route = route(&request.method, &path);
            (path, route)
        }
        Err(err) => {
            tracing::warn!(
                target: SECURITY, client = %bot.id(), method = ?request.method, path = ?request.path,
                reason = %err, "Refused a plugin's Matrix request with a malformed path"
            );
            return forbidden();
        }
    };
    if route == Route::Refused {
        tracing::warn!(
            target: SECURITY, client = %bot.id(), method = ?request.method, path = ?request.path,
            "Refused a plugin's Matrix request to an endpoint plugins may not use"
        );
        return forbidden();
    }
    match route {
        // Never forwarded as they are: into an encrypted room that would be plaintext.
        Route::Send {
            room,
            event_type,
            txn,
        } => {
            send(
                bot,
                &room,
                &event_type,
                &txn,
                request.body.unwrap_or(json!({})),
            )
            .await
        }
        Route::GetEvent { room, event } => {
            let decrypted = match bot.matrix().await {
                Some(client) => get_event(&client, &room, &event).await,
                None => None,
            };
            match decrypted {
                Some(response) => response,
                None => forward(bot, http, &path, request).await,
            }
        }
        _ => forward(bot, http, &path, request).await,
    }
}

fn forbidden() -> MatrixResponse {
    MatrixResponse::error(
        403,
        "M_FORBIDDEN",
        "maubot-rs does not let plugins use this endpoint",
    )
}

async fn send(
    bot: &Bot,
    room_id: &OwnedRoomId,
    event_type: &str,
    txn: &OwnedTransactionId,
    content: Value,
) -> MatrixResponse {
    // Right after a start the bot learns its rooms from its first sync; a plugin that sends at
    // once (a reminder due during the downtime) waits for it rather than failing.
    let known = match bot.matrix().await {
        Some(client) => client.get_room(room_id).is_some(),
        None => false,
    };
    if !known && bot.record().enabled {
        bot.wait_until_synced(FIRST_SYNC_WAIT).await;
    }
    let Some(client) = bot.matrix().await else {
        return MatrixResponse::error(503, "M_UNKNOWN", "The bot is not running");
    };
    // Plugins send only into rooms their bot has joined (not ones it left or is invited to).
    let Some(room) = client
        .get_room(room_id)
        .filter(|room| room.state() == matrix_sdk::RoomState::Joined)
    else {
        return MatrixResponse::error(403, "M_FORBIDDEN", "The bot is not in this room");
    };
    match room
        .send_raw(event_type, content)
        .with_transaction_id(txn)
        .await
    {
        Ok(result) => MatrixResponse::json(200, json!({ "event_id": result.response.event_id })),
        Err(err) => sdk_error(err),
    }
}

/// The event decrypted, if the SDK can fetch it; `None` lets the plain request answer instead.
async fn get_event(
    client: &Client,
    room_id: &OwnedRoomId,
    event_id: &OwnedEventId,
) -> Option<MatrixResponse> {
    let room = client.get_room(room_id)?;
    let event = room.event(event_id, None).await.ok()?;
    let mut body: Value = event.into_raw().deserialize_as_unchecked().ok()?;
    if let Some(object) = body.as_object_mut() {
        object.insert("room_id".into(), json!(room_id));
    }
    Some(MatrixResponse::json(200, body))
}

fn sdk_error(err: matrix_sdk::Error) -> MatrixResponse {
    if let Some(api) = err.as_client_api_error() {
        let status = api.status_code.as_u16();
        let body = match &api.body {
            matrix_sdk::ruma::api::error::ErrorBody::Standard(standard) => {
                json!({ "errcode": standard.kind.errcode().to_string(), "error": standard.message })
            }
            matrix_sdk::ruma::api::error::ErrorBody::Json(value) => value.clone(),
            other => json!({ "errcode": "M_UNKNOWN", "error": format!("{other:?}") }),
        };
        return MatrixResponse::json(status, body);
    }
    MatrixResponse::error(502, "M_UNKNOWN", format!("maubot-rs could not send: {err}"))
}

async fn forward(
    bot: &Bot,
    http: &reqwest::Client,
    path: &MatrixPath,
    mut request: MatrixRequest,
) -> MatrixResponse {
    let record = bot.record();
    let Ok(method) = reqwest::Method::from_bytes(request.method.as_bytes()) else {
        return MatrixResponse::error(400, "M_UNRECOGNIZED", "Invalid method");
    };
    let mut url = format!(
        "{}{}",
        record.homeserver.trim_end_matches('/'),
        path.to_wire()
    );
    // The bot's token goes in the header; a plugin's own must not stand in for it.
    request.query.remove("access_token");
    if !request.query.is_empty() {
        url.push('?');
        url.push_str(&serde_urlencoded::to_string(&request.query).unwrap_or_default());
    }
    let mut builder = http
        .request(method, url)
        .bearer_auth(record.access_token.expose());
    if let Some(data) = request.body_base64 {
        match base64::engine::general_purpose::STANDARD.decode(data) {
            Ok(bytes) => builder = builder.body(bytes),
            Err(_) => return MatrixResponse::error(400, "M_BAD_JSON", "Invalid base64 body"),
        }
        if let Some(content_type) = request.content_type {
            builder = builder.header(reqwest::header::CONTENT_TYPE, content_type);
        }
    } else if let Some(body) = request.body {
        builder = builder.json(&body);
    }
    let response = match builder.send().await {
        Ok(response) => response,
        Err(err) => {
            return MatrixResponse::error(
                502,
                "M_UNKNOWN",
                format!("The homeserver could not be reached: {err}"),
            );
        }
    };
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = response.bytes().await.unwrap_or_default();
    match serde_json::from_slice(&bytes) {
        Ok(body) => MatrixResponse::json(status, body),
        // Media and other non-JSON answers go back as bytes.
        Err(_) => MatrixResponse {
            status,
            body: Value::Null,
            body_base64: Some(base64::engine::general_purpose::STANDARD.encode(&bytes)),
            content_type,
        },
    }
}
