//! `/plugins`, `/plugin/*`: plugin archives.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::detached;
use super::error::{ApiError, ApiResult};
use super::json::read_body;
use super::openapi::{ErrorBody, PluginArchive};
use crate::plugins;
use crate::state::AppState;
use crate::views::{self, PluginView};

/// Feature `plugin`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(read, delete))
        .routes(routes!(reload))
}

/// Feature `plugin_upload`.
pub fn upload_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(put_plugin))
        .routes(routes!(upload))
}

/// `GET /_matrix/maubot/v1/plugins`
#[utoipa::path(get, path = "/plugins", tag = "plugins", responses(
    (status = 200, description = "Every plugin", body = Vec<PluginView>),
    (status = 401, description = "No valid token", body = ErrorBody),
))]
async fn list(State(state): State<AppState>) -> Json<Vec<PluginView>> {
    Json(views::plugins(&state))
}

/// `GET /_matrix/maubot/v1/plugin/{id}`
#[utoipa::path(get, path = "/plugin/{id}", tag = "plugins", params(("id" = String, Path, description = "The plugin's ID")), responses(
    (status = 200, description = "The plugin", body = PluginView),
    (status = 401, description = "No valid token", body = ErrorBody),
    (status = 404, description = "`plugin_not_found`", body = ErrorBody),
))]
async fn read(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<PluginView>> {
    Ok(Json(views::plugin(&state, &id)?))
}

/// `DELETE /_matrix/maubot/v1/plugin/{id}`: 412 while instances of it exist.
#[utoipa::path(delete, path = "/plugin/{id}", tag = "plugins", params(("id" = String, Path, description = "The plugin's ID")), responses(
    (status = 204, description = "Deleted (its archive moved to the trash)"),
    (status = 401, description = "No valid token", body = ErrorBody),
    (status = 404, description = "`plugin_not_found`", body = ErrorBody),
    (status = 412, description = "`plugin_in_use`: instances of it exist", body = ErrorBody),
))]
async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    detached(async move { state.plugins.delete_plugin(&id).await }).await??;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /_matrix/maubot/v1/plugin/{id}/reload`
#[utoipa::path(post, path = "/plugin/{id}/reload", tag = "plugins", params(("id" = String, Path, description = "The plugin's ID")), responses(
    (status = 200, description = "`{\"success\": true}`", body = serde_json::Value),
    (status = 401, description = "No valid token", body = ErrorBody),
    (status = 404, description = "`plugin_not_found`", body = ErrorBody),
    (status = 500, description = "`plugin_reload_fail`", body = ErrorBody),
))]
async fn reload(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    detached(async move { state.plugins.reload(&id).await }).await??;
    Ok(Json(json!({ "success": true })))
}

/// `PUT /_matrix/maubot/v1/plugin/{id}`: the archive's ID must be the path's; replaces.
#[utoipa::path(put, path = "/plugin/{id}", tag = "plugins", params(("id" = String, Path, description = "The plugin's ID")),
    request_body(content = PluginArchive, content_type = "application/zip", description = "The `.mbp`"),
    responses(
    (status = 200, description = "Replaced", body = PluginView),
    (status = 201, description = "Uploaded", body = PluginView),
    (status = 400, description = "`pid_mismatch`, `plugin_invalid`", body = ErrorBody),
    (status = 401, description = "No valid token", body = ErrorBody),
    (status = 413, description = "Over `server.max_body_size`", body = ErrorBody),
    (status = 500, description = "`plugin_reload_fail`: the old code runs again", body = ErrorBody),
))]
async fn put_plugin(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> ApiResult<(StatusCode, Json<PluginView>)> {
    let body = read_body(request, state.config.server.max_body_size).await?;
    let routes = views::database_routes(&state);
    let (created, facts) =
        detached(async move { state.plugins.upload(body.to_vec(), Some(&id), true).await })
            .await??;
    Ok((status(created), Json(PluginView::new(facts, routes))))
}

/// `POST /_matrix/maubot/v1/plugins/upload?allow_override=...`: like maubot, any non-empty
/// `allow_override` (even `false`) allows replacing.
#[utoipa::path(post, path = "/plugins/upload", tag = "plugins",
    params(("allow_override" = Option<String>, Query, description = "Any non-empty value replaces an existing plugin of the ID")),
    request_body(content = PluginArchive, content_type = "application/zip", description = "The `.mbp`"),
    responses(
    (status = 200, description = "Replaced", body = PluginView),
    (status = 201, description = "Uploaded", body = PluginView),
    (status = 400, description = "`plugin_invalid`", body = ErrorBody),
    (status = 401, description = "No valid token", body = ErrorBody),
    (status = 409, description = "`plugin_exists` (without `allow_override`)", body = ErrorBody),
    (status = 413, description = "Over `server.max_body_size`", body = ErrorBody),
    (status = 500, description = "`plugin_reload_fail`: the old code runs again", body = ErrorBody),
))]
async fn upload(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> ApiResult<(StatusCode, Json<PluginView>)> {
    let allow_override = query.get("allow_override").is_some_and(|v| !v.is_empty());
    let body = read_body(request, state.config.server.max_body_size).await?;
    let routes = views::database_routes(&state);
    let (created, facts) = detached(async move {
        state
            .plugins
            .upload(body.to_vec(), None, allow_override)
            .await
    })
    .await??;
    Ok((status(created), Json(PluginView::new(facts, routes))))
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
