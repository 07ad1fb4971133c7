//! `/auth/*`: logging in to the management API.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use maubot_types::config::ApiFeatures;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::json::ApiJson;
use super::session::Admin;
use crate::state::AppState;

pub fn router(features: ApiFeatures) -> Router<AppState> {
    let router = Router::new().route("/auth/ping", post(ping));
    if features.login {
        router.route("/auth/login", post(login))
    } else {
        router
    }
}

#[derive(Debug, Deserialize)]
struct LoginRequest {
    secret: Option<String>,
    user: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

#[derive(Debug, Serialize)]
struct TokenResponse {
    token: String,
}

/// `POST /_matrix/maubot/v1/auth/login`
///
/// With the unshared secret (`{"secret", "user"?}`) or an admin's password
/// (`{"username", "password"}`). A wrong secret falls through to the password check, as in maubot.
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

#[derive(Debug, Serialize)]
struct PingResponse {
    username: String,
    features: ApiFeatures,
}

/// `POST /_matrix/maubot/v1/auth/ping`
///
/// Who the token belongs to, and the enabled API features.
async fn ping(State(state): State<AppState>, admin: Admin) -> Json<PingResponse> {
    Json(PingResponse {
        username: admin.username,
        features: state.config.api_features,
    })
}
