//! `/clients`, `/client/*`: the bot accounts.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::json::ApiJson;
use crate::client::{self, ClientRequest, ClientView};
use crate::plugins::InstanceView;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/clients", get(list))
        .route("/client/new", post(create))
        .route("/client/{id}", get(read).put(put).delete(delete))
        // maubot's route is POST; its spec says PUT. Both work.
        .route(
            "/client/{id}/clearcache",
            post(clear_cache).put(clear_cache),
        )
        .route("/client/{id}/verify", post(verify))
        .route(
            "/client/{id}/generate_recovery_key",
            post(generate_recovery_key),
        )
}

/// A client as maubot shows it: its view and the instances that run on it. (The client module
/// knows nothing of plugins; the API puts the two together.)
#[derive(Debug, Serialize)]
pub(crate) struct ClientAnswer {
    #[serde(flatten)]
    client: ClientView,
    instances: Vec<InstanceView>,
}

impl ClientAnswer {
    pub(crate) fn id(&self) -> &str {
        &self.client.id
    }

    pub(crate) fn of(state: &AppState, client: ClientView) -> Json<ClientAnswer> {
        let instances = state.plugins.instances_of_client(&client.id);
        Json(ClientAnswer { client, instances })
    }
}

/// `GET /_matrix/maubot/v1/clients`
async fn list(State(state): State<AppState>) -> Json<Vec<ClientAnswer>> {
    let views = state.clients.views().await;
    Json(
        views
            .into_iter()
            .map(|view| ClientAnswer::of(&state, view).0)
            .collect(),
    )
}

/// `GET /_matrix/maubot/v1/client/{id}`
async fn read(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ClientAnswer>> {
    let bot = state
        .clients
        .get(&id)
        .await
        .ok_or(ApiError::ClientNotFound)?;
    Ok(ClientAnswer::of(&state, bot.view()))
}

/// `POST /_matrix/maubot/v1/client/new`
///
/// Creates a client for the user the access token belongs to; 409 if it exists.
async fn create(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<ClientRequest>,
) -> ApiResult<(StatusCode, Json<ClientAnswer>)> {
    let client = state.clients.create(request, None).await?;
    Ok((StatusCode::CREATED, ClientAnswer::of(&state, client)))
}

/// `PUT /_matrix/maubot/v1/client/{id}`
///
/// Updates the client (200), or creates it if it does not exist (201; the token must be the
/// user's in the path).
async fn put(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ClientRequest>,
) -> ApiResult<(StatusCode, Json<ClientAnswer>)> {
    if state.clients.get(&id).await.is_some() {
        let client = state.clients.update(&id, request).await?;
        Ok((StatusCode::OK, ClientAnswer::of(&state, client)))
    } else {
        let client = state.clients.create(request, Some(&id)).await?;
        Ok((StatusCode::CREATED, ClientAnswer::of(&state, client)))
    }
}

/// `DELETE /_matrix/maubot/v1/client/{id}`
///
/// 412 while plugin instances use the client.
async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.clients.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /_matrix/maubot/v1/client/{id}/clearcache`
async fn clear_cache(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    state.clients.clear_cache(&id).await?;
    Ok(Json(json!({ "success": true })))
}

#[derive(Debug, Deserialize)]
struct VerifyRequest {
    recovery_key: String,
}

/// `POST /_matrix/maubot/v1/client/{id}/verify`
///
/// Verifies the bot's device with the account's recovery key.
async fn verify(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<VerifyRequest>,
) -> ApiResult<Json<Value>> {
    let bot = state
        .clients
        .get(&id)
        .await
        .ok_or(ApiError::ClientNotFound)?;
    bot.verify(&request.recovery_key).await?;
    Ok(Json(json!({ "success": true })))
}

/// `POST /_matrix/maubot/v1/client/{id}/generate_recovery_key`
///
/// Sets up cross-signing and recovery for an account without keys; 201 with the recovery key.
async fn generate_recovery_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let bot = state
        .clients
        .get(&id)
        .await
        .ok_or(ApiError::ClientNotFound)?;
    let recovery_key = bot.generate_recovery_key().await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "success": true, "recovery_key": recovery_key })),
    ))
}

impl From<client::Error> for ApiError {
    fn from(err: client::Error) -> Self {
        match err {
            client::Error::NotFound => ApiError::ClientNotFound,
            client::Error::UserExists => ApiError::UserExists,
            client::Error::InUse => ApiError::ClientInUse,
            client::Error::BadAccessToken => ApiError::BadClientAccessToken,
            client::Error::BadAccessDetails(_) => ApiError::BadClientAccessDetails,
            client::Error::Connection(_) => ApiError::BadClientConnectionDetails,
            client::Error::UserMismatch(user) => ApiError::MxidMismatch(user),
            client::Error::DeviceMismatch(device) => ApiError::DeviceIdMismatch(device),
            client::Error::InvalidRequest(message) => ApiError::InvalidBody(message),
            client::Error::HasKeys => ApiError::ClientHasKeys,
            client::Error::Crypto(message) => ApiError::InternalCrypto(message),
            err @ (client::Error::Db(_) | client::Error::Setup(_)) => ApiError::internal(err),
        }
    }
}
