//! `/features`, `/version` and `/health`: what this server offers and whether it is well.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::openapi::ErrorBody;
use super::session::Admin;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(features))
        .routes(routes!(version))
        .routes(routes!(health))
}

/// maubot's "open in editor" route (feature `dev_open`), which its web UI asks on every page.
/// maubot-rs opens no editors: it is never enabled, and `POST` does not exist (405, as in
/// maubot without an editor config).
pub fn debug_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(debug_open))
}

/// `GET /_matrix/maubot/v1/debug/open`
#[utoipa::path(get, path = "/debug/open", tag = "meta", responses(
    (status = 200, description = "`{\"enabled\": false}`: maubot-rs opens no editors", body = serde_json::Value),
    (status = 401, description = "No valid token", body = ErrorBody),
))]
async fn debug_open(_: Admin) -> Json<Value> {
    Json(json!({ "enabled": false }))
}

/// `GET /_matrix/maubot/v1/features`
///
/// All of `api_features` for an admin; only whether password login exists for anyone else.
#[utoipa::path(get, path = "/features", tag = "meta", security(()), responses(
    (status = 200, description = "`api_features` for an admin; `{\"login\": bool}` for anyone else", body = serde_json::Value),
))]
async fn features(State(state): State<AppState>, admin: Option<Admin>) -> Json<Value> {
    let features = state.config.api_features;
    match admin {
        Some(_) => Json(json!(features)),
        None => Json(json!({ "login": features.login })),
    }
}

/// `GET /_matrix/maubot/v1/version`
///
/// The maubot version whose API this server speaks, and this implementation's own version.
#[utoipa::path(get, path = "/version", tag = "meta", responses(
    (status = 200, description = "The maubot version whose API this is, and the implementation", body = serde_json::Value),
    (status = 401, description = "No valid token", body = ErrorBody),
))]
async fn version(_: Admin) -> Json<Value> {
    Json(json!({
        "version": maubot_types::MAUBOT_COMPAT_VERSION,
        "implementation": { "name": "maubot-rs", "version": env!("CARGO_PKG_VERSION") },
    }))
}

/// `GET /_matrix/maubot/v1/health` (maubot-rs addition, no authentication)
///
/// 200 when the database answers, 503 otherwise; for load balancers and container health checks.
#[utoipa::path(get, path = "/health", tag = "meta", security(()), responses(
    (status = 200, description = "The database answers", body = serde_json::Value),
    (status = 503, description = "The database does not answer", body = ErrorBody),
))]
async fn health(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    match state.db.ping().await {
        Ok(()) => Ok(Json(
            json!({ "status": "ok", "database": state.db.engine() }),
        )),
        Err(err) => {
            tracing::error!(target: "maubot.server", error = %err, "health check: database unavailable");
            Err(ApiError::DatabaseUnavailable)
        }
    }
}
