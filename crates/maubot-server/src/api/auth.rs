//! `/auth/*`: logging in to the management API.

use axum::Json;
use axum::extract::State;
use maubot_types::config::ApiFeatures;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use super::json::ApiJson;
use super::openapi::ErrorBody;
use super::session::Admin;
use crate::state::AppState;

pub fn router(features: ApiFeatures) -> OpenApiRouter<AppState> {
    let router = OpenApiRouter::new().routes(routes!(ping));
    if features.login {
        router.routes(routes!(login))
    } else {
        router
    }
}

#[derive(Debug, Deserialize, ToSchema)]
struct LoginRequest {
    secret: Option<String>,
    user: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct TokenResponse {
    token: String,
}

/// `POST /_matrix/maubot/v1/auth/login`
///
/// With the unshared secret (`{"secret", "user"?}`) or an admin's password
/// (`{"username", "password"}`). A wrong secret falls through to the password check, as in maubot.
#[utoipa::path(post, path = "/auth/login", tag = "auth", security(()), request_body = LoginRequest, responses(
    (status = 200, description = "A token for the admin", body = TokenResponse),
    (status = 401, description = "Wrong secret, user or password (`invalid_auth`)", body = ErrorBody),
    (status = 429, description = "Too many password logins waiting", body = ErrorBody),
))]
async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<LoginRequest>,
) -> ApiResult<Json<TokenResponse>> {
    if let Some(secret) = body.secret.as_deref().filter(|s| !s.is_empty())
        && let Some(token) = state.auth.login_with_secret(secret, body.user.as_deref())
    {
        return Ok(Json(TokenResponse { token }));
    }
    if let (Some(username), Some(password)) = (&body.username, &body.password)
        && let Some(token) = state
            .auth
            .login_with_password(username, password)
            .await
            .map_err(|_| ApiError::TooManyLogins)?
    {
        tracing::info!(target: "maubot.server", admin = %username, "admin logged in with a password");
        return Ok(Json(TokenResponse { token }));
    }
    Err(ApiError::InvalidAuth)
}

#[derive(Debug, Serialize, ToSchema)]
struct PingResponse {
    username: String,
    #[schema(value_type = Object)]
    features: ApiFeatures,
}

/// `POST /_matrix/maubot/v1/auth/ping`
///
/// Who the token belongs to, and the enabled API features.
#[utoipa::path(post, path = "/auth/ping", tag = "auth", responses(
    (status = 200, description = "Who the token belongs to, and the enabled features", body = PingResponse),
    (status = 401, description = "No valid token", body = ErrorBody),
))]
async fn ping(State(state): State<AppState>, admin: Admin) -> Json<PingResponse> {
    Json(PingResponse {
        username: admin.username,
        features: state.config.api_features,
    })
}
