//! Matrix requests a plugin makes, performed as its bot. Sends go through matrix-sdk so that they
//! are encrypted in encrypted rooms; fetching one event answers it decrypted; requests that would
//! let a plugin take over the bot's session or keys are refused; the rest is forwarded to the
//! homeserver with the bot's access token.

use std::collections::BTreeMap;

use base64::Engine as _;
use matrix_sdk::Client;
use matrix_sdk::ruma::{OwnedEventId, OwnedRoomId, OwnedTransactionId};
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::Bot;

const LOG: &str = "maubot.host";

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

/// What a request is, as far as the server treats it specially.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Refused,
    Send {
        room: OwnedRoomId,
        event_type: String,
        txn: OwnedTransactionId,
    },
    GetEvent {
        room: OwnedRoomId,
        event: OwnedEventId,
    },
    Forward,
}

fn route(method: &str, path: &str) -> Route {
    // The path goes to the homeserver as it is: anything that could make it mean another
    // endpoint there than here (a query or fragment inside it, dot segments) is refused.
    if path.contains(['?', '#']) {
        return Route::Refused;
    }
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    if segments
        .iter()
        .any(|s| s == "." || s == ".." || s.contains('/'))
    {
        return Route::Refused;
    }
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let api = match segments.as_slice() {
        ["_matrix", "client", version, rest @ ..]
            if version.starts_with('v') || *version == "r0" =>
        {
            rest
        }
        ["_matrix", "media", ..] => return Route::Forward,
        // Plugins reach only the client and media APIs.
        _ => return Route::Refused,
    };
    match api {
        // The bot's session and keys are the server's: a plugin syncing or logging in would
        // steal events or break encryption.
        ["sync", ..]
        | ["keys", ..]
        | ["sendToDevice", ..]
        | ["login", ..]
        | ["logout", ..]
        | ["register", ..]
        | ["devices", ..]
        | ["delete_devices", ..]
        | ["refresh", ..] => Route::Refused,
        ["account", "whoami"] => Route::Forward,
        ["account", ..] => Route::Refused,
        ["rooms", room, "send", event_type, txn] if method == "PUT" => {
            match OwnedRoomId::try_from(*room) {
                Ok(room) => Route::Send {
                    room,
                    event_type: (*event_type).to_owned(),
                    txn: (*txn).into(),
                },
                Err(_) => Route::Forward,
            }
        }
        ["rooms", room, "event", event] if method == "GET" => {
            match (OwnedRoomId::try_from(*room), OwnedEventId::try_from(*event)) {
                (Ok(room), Ok(event)) => Route::GetEvent { room, event },
                _ => Route::Forward,
            }
        }
        _ => Route::Forward,
    }
}

/// Performs a plugin's request as `bot`.
pub async fn perform(bot: &Bot, http: &reqwest::Client, request: MatrixRequest) -> MatrixResponse {
    let route = route(&request.method, &request.path);
    if route == Route::Refused {
        tracing::warn!(
            target: LOG, client = %bot.id(), method = %request.method, path = %request.path,
            "Refused a plugin's Matrix request"
        );
        return MatrixResponse::error(
            403,
            "M_FORBIDDEN",
            "maubot-rs does not let plugins use this endpoint",
        );
    }
    let client = bot.matrix().await;
    match (route, client) {
        (
            Route::Send {
                room,
                event_type,
                txn,
            },
            Some(client),
        ) => {
            send(
                &client,
                &room,
                &event_type,
                &txn,
                request.body.unwrap_or(json!({})),
            )
            .await
        }
        (Route::GetEvent { room, event }, Some(client)) => {
            match get_event(&client, &room, &event).await {
                Some(response) => response,
                None => forward(bot, http, request).await,
            }
        }
        _ => forward(bot, http, request).await,
    }
}

async fn send(
    client: &Client,
    room_id: &OwnedRoomId,
    event_type: &str,
    txn: &OwnedTransactionId,
    content: Value,
) -> MatrixResponse {
    let Some(room) = client.get_room(room_id) else {
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

async fn forward(bot: &Bot, http: &reqwest::Client, request: MatrixRequest) -> MatrixResponse {
    let record = bot.record();
    let Ok(method) = reqwest::Method::from_bytes(request.method.as_bytes()) else {
        return MatrixResponse::error(400, "M_UNRECOGNIZED", "Invalid method");
    };
    let mut url = format!(
        "{}{}",
        record.homeserver.trim_end_matches('/'),
        request.path
    );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_session_and_key_endpoints() {
        for path in [
            "/_matrix/client/v3/sync",
            "/_matrix/client/v3/keys/upload",
            "/_matrix/client/r0/login",
            "/_matrix/client/v3/logout/all",
            "/_matrix/client/v3/sendToDevice/m.room.encrypted/1",
            "/_matrix/client/v3/account/password",
            "/_matrix/client/v3/devices/ABC",
            "/_synapse/admin/v1/users",
        ] {
            assert_eq!(route("POST", path), Route::Refused, "{path}");
        }
        assert_eq!(
            route("GET", "/_matrix/client/v3/account/whoami"),
            Route::Forward
        );
    }

    #[test]
    fn refuses_paths_that_could_mean_another_endpoint_upstream() {
        for path in [
            "/_matrix/client/v3/sync?since=x",
            "/_matrix/client/v3/rooms/../logout/all",
            "/_matrix/client/v3/rooms/%2e%2e/logout",
            "/_matrix/client/v3/rooms/%2F..%2Flogout",
            "/_matrix/client/v3/profile/x#/../../logout",
        ] {
            assert_eq!(route("GET", path), Route::Refused, "{path}");
        }
    }

    #[test]
    fn recognises_sends_and_event_fetches_with_encoded_ids() {
        assert_eq!(
            route(
                "PUT",
                "/_matrix/client/v3/rooms/%21abc%3Ahs.test/send/m.room.message/txn1"
            ),
            Route::Send {
                room: OwnedRoomId::try_from("!abc:hs.test").expect("room id"),
                event_type: "m.room.message".into(),
                txn: "txn1".into(),
            }
        );
        assert!(matches!(
            route("GET", "/_matrix/client/v3/rooms/!abc:hs.test/event/$ev"),
            Route::GetEvent { .. }
        ));
        assert_eq!(
            route(
                "GET",
                "/_matrix/client/v3/rooms/!abc:hs.test/state/m.room.power_levels/"
            ),
            Route::Forward
        );
    }
}
