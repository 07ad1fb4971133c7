//! `/plugins`, `/plugin/*`: plugin archives.

use std::collections::HashMap;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::detached;
use super::error::{ApiError, ApiResult};
use super::json::read_body;
use crate::plugins::{self, PluginView};
use crate::state::AppState;

/// Feature `plugin`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/plugins", get(list))
        .route("/plugin/{id}", get(read).delete(delete))
        .route("/plugin/{id}/reload", post(reload))
}

/// Feature `plugin_upload`.
pub fn upload_router() -> Router<AppState> {
    Router::new()
        .route("/plugin/{id}", put(put_plugin))
        .route("/plugins/upload", post(upload))
}

/// `GET /_matrix/maubot/v1/plugins`
async fn list(State(state): State<AppState>) -> Json<Vec<PluginView>> {
    Json(state.plugins.plugins())
}

/// `GET /_matrix/maubot/v1/plugin/{id}`
async fn read(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<PluginView>> {
    Ok(Json(state.plugins.plugin(&id)?))
}

/// `DELETE /_matrix/maubot/v1/plugin/{id}`: 412 while instances of it exist.
async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    detached(async move { state.plugins.delete_plugin(&id).await }).await??;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /_matrix/maubot/v1/plugin/{id}/reload`
async fn reload(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    detached(async move { state.plugins.reload(&id).await }).await??;
    Ok(Json(json!({ "success": true })))
}

/// `PUT /_matrix/maubot/v1/plugin/{id}`: the archive's ID must be the path's; replaces.
async fn put_plugin(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> ApiResult<(StatusCode, Json<PluginView>)> {
    let body = read_body(request, state.config.server.max_body_size).await?;
    let (created, view) =
        detached(async move { state.plugins.upload(body.to_vec(), Some(&id), true).await })
            .await??;
    Ok((status(created), Json(view)))
}

/// `POST /_matrix/maubot/v1/plugins/upload?allow_override=...`: like maubot, any non-empty
/// `allow_override` (even `false`) allows replacing.
async fn upload(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> ApiResult<(StatusCode, Json<PluginView>)> {
    let allow_override = query.get("allow_override").is_some_and(|v| !v.is_empty());
    let body = read_body(request, state.config.server.max_body_size).await?;
    let (created, view) = detached(async move {
        state
            .plugins
            .upload(body.to_vec(), None, allow_override)
            .await
    })
    .await??;
    Ok((status(created), Json(view)))
}

fn status(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

impl From<plugins::Error> for ApiError {
    fn from(err: plugins::Error) -> Self {
        use plugins::Error as E;
        match err {
            E::PluginNotFound => ApiError::PluginNotFound,
            E::InstanceNotFound => ApiError::InstanceNotFound,
            E::PluginInUse => ApiError::PluginInUse,
            E::PluginExists => ApiError::PluginExists,
            E::PidMismatch => ApiError::PidMismatch,
            E::Invalid { message, detail } => ApiError::PluginInvalid { message, detail },
            E::ReloadFailed { message, detail } => ApiError::PluginReloadFail { message, detail },
            E::PluginTypeRequired => ApiError::PluginTypeRequired,
            E::PrimaryUserRequired => ApiError::PrimaryUserRequired,
            E::PrimaryUserNotFound => ApiError::PrimaryUserNotFound,
            E::PluginTypeNotFound => ApiError::PluginTypeNotFound,
            E::InvalidInstanceId(message) => ApiError::InvalidBody(message),
            E::InstanceExists(id) => {
                ApiError::InvalidBody(format!("an instance with the ID {id} already exists"))
            }
            err @ (E::Db(_) | E::Io(_)) => ApiError::internal(err),
        }
    }
}
