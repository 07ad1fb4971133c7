//! `/instances`, `/instance/*`: plugin instances. Instance IDs are lower-cased from the path, as
//! in maubot.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::detached;
use super::error::ApiResult;
use super::json::ApiJson;
use super::openapi::ErrorBody;
use crate::plugins::InstanceRequest;
use crate::state::AppState;
use crate::views::{self, InstanceView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(read, put, delete))
}

/// `GET /_matrix/maubot/v1/instances`
#[utoipa::path(get, path = "/instances", tag = "instances", responses(
    (status = 200, description = "Every instance", body = Vec<InstanceView>),
    (status = 401, description = "No valid token", body = ErrorBody),
))]
async fn list(State(state): State<AppState>) -> Json<Vec<InstanceView>> {
    Json(views::instances(&state))
}

/// `GET /_matrix/maubot/v1/instance/{id}`
#[utoipa::path(get, path = "/instance/{id}", tag = "instances", params(("id" = String, Path, description = "The instance's ID (lower-cased)")), responses(
    (status = 200, description = "The instance", body = InstanceView),
    (status = 401, description = "No valid token", body = ErrorBody),
    (status = 404, description = "`instance_not_found`", body = ErrorBody),
))]
async fn read(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<InstanceView>> {
    Ok(Json(views::instance(&state, &id.to_lowercase())?))
}

/// `PUT /_matrix/maubot/v1/instance/{id}`: creates (201) or updates (200).
#[utoipa::path(put, path = "/instance/{id}", tag = "instances", params(("id" = String, Path, description = "The instance's ID (lower-cased)")), request_body = InstanceRequest, responses(
    (status = 200, description = "Updated", body = InstanceView),
    (status = 201, description = "Created", body = InstanceView),
    (status = 400, description = "`body_not_json`, `invalid_request_body`, `plugin_type_required`, `primary_user_required`", body = ErrorBody),
    (status = 401, description = "No valid token", body = ErrorBody),
    (status = 404, description = "`primary_user_not_found`, `plugin_type_not_found`", body = ErrorBody),
))]
async fn put(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<InstanceRequest>,
) -> ApiResult<(StatusCode, Json<InstanceView>)> {
    let id = id.to_lowercase();
    let routes = views::database_routes(&state);
    let (created, facts) =
        detached(async move { state.plugins.put_instance(&id, request).await }).await??;
    let view = InstanceView::new(facts, routes);
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)))
}

/// `DELETE /_matrix/maubot/v1/instance/{id}`
#[utoipa::path(delete, path = "/instance/{id}", tag = "instances", params(("id" = String, Path, description = "The instance's ID (lower-cased)")), responses(
    (status = 204, description = "Deleted, with its database"),
    (status = 401, description = "No valid token", body = ErrorBody),
    (status = 404, description = "`instance_not_found`", body = ErrorBody),
))]
async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    detached(async move { state.plugins.delete_instance(&id.to_lowercase()).await }).await??;
    Ok(StatusCode::NO_CONTENT)
}
