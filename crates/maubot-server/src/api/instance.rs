//! `/instances`, `/instance/*`: plugin instances. Instance IDs are lower-cased from the path, as
//! in maubot.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};

use super::detached;
use super::error::ApiResult;
use super::json::ApiJson;
use crate::plugins::{InstanceRequest, InstanceView};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/instances", get(list))
        .route("/instance/{id}", get(read).put(put).delete(delete))
}

/// `GET /_matrix/maubot/v1/instances`
async fn list(State(state): State<AppState>) -> Json<Vec<InstanceView>> {
    Json(state.plugins.instances())
}

/// `GET /_matrix/maubot/v1/instance/{id}`
async fn read(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<InstanceView>> {
    Ok(Json(state.plugins.instance(&id.to_lowercase())?))
}

/// `PUT /_matrix/maubot/v1/instance/{id}`: creates (201) or updates (200).
async fn put(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<InstanceRequest>,
) -> ApiResult<(StatusCode, Json<InstanceView>)> {
    let id = id.to_lowercase();
    let (created, view) =
        detached(async move { state.plugins.put_instance(&id, request).await }).await??;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)))
}

/// `DELETE /_matrix/maubot/v1/instance/{id}`
async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    detached(async move { state.plugins.delete_instance(&id.to_lowercase()).await }).await??;
    Ok(StatusCode::NO_CONTENT)
}
