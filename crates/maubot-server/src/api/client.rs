//! `/clients`, `/client/*`: the bot accounts.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::json::ApiJson;
use super::openapi::ErrorBody;
use crate::client::{self, ClientRequest, ClientView};
use crate::state::AppState;
use crate::views::{self, InstanceView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(create))
        .routes(routes!(read, put, delete))
        // maubot's route is POST; its spec says PUT. Both work.
        .routes(routes!(clear_cache))
        .routes(routes!(verify))
        .routes(routes!(generate_recovery_key))
}

/// A client as maubot shows it: its view and the instances that run on it. (The client module
/// knows nothing of plugins; the API puts the two together.)
#[derive(Debug, Serialize, ToSchema)]
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
        let instances = views::instances_of_client(state, &client.id);
        Json(ClientAnswer { client, instances })
    }
}

/// `GET /_matrix/maubot/v1/clients`
#[utoipa::path(get, path = "/clients", tag = "clients", responses(
    (status = 200, description = "Every client, with its instances", body = Vec<ClientAnswer>),
    (status = 401, description = "No valid token", body = ErrorBody),
))]
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
#[utoipa::path(get, path = "/client/{id}", tag = "clients", params(("id" = String, Path, description = "The client's Matrix user ID")), responses(
    (status = 200, description = "The client, with its instances", body = ClientAnswer),
    (status = 401, description = "No valid token", body = ErrorBody),
    (status = 404, description = "`client_not_found`", body = ErrorBody),
))]
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
#[utoipa::path(post, path = "/client/new", tag = "clients", request_body = ClientRequest, responses(
    (status = 201, description = "Created for the access token's user", body = ClientAnswer),
    (status = 400, description = "`bad_client_access_token`, `bad_client_access_details`, `bad_client_connection_details`, `device_id_mismatch`, `invalid_request_body`", body = ErrorBody),
    (status = 401, description = "No valid token", body = ErrorBody),
    (status = 404, description = "Listed by maubot's spec; not answered", body = ErrorBody),
    (status = 409, description = "`user_exists`", body = ErrorBody),
))]
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
#[utoipa::path(put, path = "/client/{id}", tag = "clients", params(("id" = String, Path, description = "The client's Matrix user ID")), request_body = ClientRequest, responses(
    (status = 200, description = "Updated", body = ClientAnswer),
    (status = 201, description = "Created (the access token must be the path's user's)", body = ClientAnswer),
    (status = 202, description = "Listed by maubot's spec for an update; maubot and maubot-rs answer 200", body = ClientAnswer),
    (status = 400, description = "`mxid_mismatch`, `device_id_mismatch`, `bad_client_access_token`, `invalid_request_body`", body = ErrorBody),
    (status = 401, description = "No valid token", body = ErrorBody),
))]
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
#[utoipa::path(delete, path = "/client/{id}", tag = "clients", params(("id" = String, Path, description = "The client's Matrix user ID")), responses(
    (status = 204, description = "Deleted"),
    (status = 401, description = "No valid token", body = ErrorBody),
    (status = 404, description = "`client_not_found`", body = ErrorBody),
    (status = 412, description = "`client_in_use`: instances run on it", body = ErrorBody),
))]
async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.clients.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /_matrix/maubot/v1/client/{id}/clearcache`
#[utoipa::path(method(post, put), path = "/client/{id}/clearcache", tag = "clients", params(("id" = String, Path, description = "The client's Matrix user ID")), responses(
    (status = 200, description = "`{\"success\": true}`: the sync starts afresh", body = serde_json::Value),
    (status = 401, description = "No valid token", body = ErrorBody),
    (status = 404, description = "`client_not_found`", body = ErrorBody),
))]
async fn clear_cache(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    state.clients.clear_cache(&id).await?;
    Ok(Json(json!({ "success": true })))
}

#[derive(Debug, Deserialize, ToSchema)]
struct VerifyRequest {
    recovery_key: String,
}

/// `POST /_matrix/maubot/v1/client/{id}/verify`
///
/// Verifies the bot's device with the account's recovery key.
#[utoipa::path(post, path = "/client/{id}/verify", tag = "clients", params(("id" = String, Path, description = "The client's Matrix user ID")), request_body = VerifyRequest, responses(
    (status = 200, description = "`{\"success\": true}`: the device is verified", body = serde_json::Value),
    (status = 400, description = "A wrong recovery key", body = ErrorBody),
    (status = 401, description = "No valid token", body = ErrorBody),
    (status = 404, description = "`client_not_found`", body = ErrorBody),
))]
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
#[utoipa::path(post, path = "/client/{id}/generate_recovery_key", tag = "clients", params(("id" = String, Path, description = "The client's Matrix user ID")), responses(
    (status = 201, description = "`{\"success\": true, \"recovery_key\": ...}`, shown once", body = serde_json::Value),
    (status = 400, description = "The account has cross-signing keys already", body = ErrorBody),
    (status = 401, description = "No valid token", body = ErrorBody),
    (status = 404, description = "`client_not_found`", body = ErrorBody),
))]
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
