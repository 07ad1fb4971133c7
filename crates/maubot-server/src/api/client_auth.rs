//! `/client/auth/*`: registering and logging in bot accounts on the homeservers of the config's
//! `homeservers` section, optionally turning the result into a client (`?update_client=true`).

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use axum::Json;
use maubot_types::config::Homeserver;
use maubot_types::secret::Secret;
use serde::Deserialize;

use super::client::ClientAnswer;
use super::error::{ApiError, ApiResult};
use super::json::ApiJson;
use super::openapi::ErrorBody;
use super::sso;
use crate::client::{AccessDetails, Upserted};
use crate::homeserver_auth::{self, Credentials, HomeserverAuthError};
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(servers))
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(sso::wait))
        .routes(routes!(sso::complete))
}

/// `GET /_matrix/maubot/v1/client/auth/servers`
///
/// The configured homeservers, as `{name: url}`.
#[utoipa::path(get, path = "/client/auth/servers", tag = "client auth", responses(
    (status = 200, description = "The configured homeservers, `{name: url}`", body = std::collections::BTreeMap<String, String>),
    (status = 401, description = "No valid token", body = ErrorBody),
))]
async fn servers(State(state): State<AppState>) -> Json<BTreeMap<String, String>> {
    Json(
        state
            .config
            .homeservers
            .iter()
            .map(|(name, hs)| (name.clone(), hs.url.clone()))
            .collect(),
    )
}

/// maubot's truthy query values: `1`, `true`, `yes`, any case.
#[derive(Debug, Default, Deserialize)]
struct AuthQuery {
    update_client: Option<String>,
    sso: Option<String>,
}

fn truthy(value: &Option<String>) -> bool {
    value
        .as_deref()
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// The body of the register and login routes.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub(crate) struct AuthRequest {
    pub username: Option<String>,
    pub password: Option<String>,
    pub user_type: Option<String>,
    pub device_name: Option<String>,
}

/// What a registration or login led to.
#[derive(Debug)]
pub(crate) enum AuthOutcome {
    /// The homeserver's login answer (without `update_client`).
    Credentials(serde_json::Value),
    /// The client made or updated from it (`update_client`).
    Client(Upserted, Box<ClientAnswer>),
}

impl IntoResponse for AuthOutcome {
    fn into_response(self) -> Response {
        match self {
            AuthOutcome::Credentials(raw) => Json(raw).into_response(),
            AuthOutcome::Client(upserted, client) => {
                let status = match upserted {
                    Upserted::Created => StatusCode::CREATED,
                    Upserted::Updated => StatusCode::ACCEPTED,
                };
                (status, Json(client)).into_response()
            }
        }
    }
}

impl AuthRequest {
    fn username_and_password(&self) -> ApiResult<(&str, Secret)> {
        match (self.username.as_deref(), self.password.as_deref()) {
            (Some(user), Some(password)) if !user.is_empty() && !password.is_empty() => {
                Ok((user, Secret::new(password)))
            }
            _ => Err(ApiError::UsernameOrPasswordMissing),
        }
    }
}

pub(crate) fn homeserver<'a>(state: &'a AppState, name: &str) -> ApiResult<&'a Homeserver> {
    state
        .config
        .homeservers
        .get(name)
        .ok_or(ApiError::ServerNotFound)
}

/// `POST /_matrix/maubot/v1/client/auth/{server}/register`
///
/// Registers a bot account with Synapse's shared secret. With `?update_client=true` the new
/// account becomes a client (201), else the homeserver's login answer is returned (200).
#[utoipa::path(post, path = "/client/auth/{server}/register", tag = "client auth",
    params(("server" = String, Path, description = "A key of the config's `homeservers`"), ("update_client" = Option<String>, Query, description = "`true`: make a client of the account"),
        ("sso" = Option<String>, Query, description = "Refused (`registration_no_sso`)")),
    request_body = AuthRequest,
    responses(
    (status = 200, description = "The homeserver's login answer", body = serde_json::Value),
    (status = 201, description = "The new client (`update_client`)", body = ClientAnswer),
    (status = 400, description = "`username_or_password_missing`, `registration_no_sso`, `registration_unsupported`", body = ErrorBody),
    (status = 401, description = "No valid token", body = ErrorBody),
    (status = 404, description = "`server_not_found`, `registration_secret_not_found`", body = ErrorBody),
    (status = 409, description = "Listed by maubot's spec: the user exists", body = ErrorBody),
    (status = 500, description = "The homeserver refused: its errcode and error", body = ErrorBody),
))]
async fn register(
    State(state): State<AppState>,
    Path(server): Path<String>,
    Query(query): Query<AuthQuery>,
    ApiJson(body): ApiJson<AuthRequest>,
) -> ApiResult<AuthOutcome> {
    if truthy(&query.sso) {
        // After the checks of the server and the body, as maubot.
        homeserver(&state, &server)?;
        body.username_and_password()?;
        return Err(ApiError::RegistrationNoSso);
    }
    register_account(&state, &server, &body, truthy(&query.update_client)).await
}

/// Registers a bot account on the configured homeserver `server` with its shared secret; with
/// `update_client` the account becomes a client (the web UI's "register").
pub(crate) async fn register_account(
    state: &AppState,
    server: &str,
    body: &AuthRequest,
    update_client: bool,
) -> ApiResult<AuthOutcome> {
    let homeserver = homeserver(state, server)?;
    let (username, password) = body.username_and_password()?;
    let secret = homeserver
        .secret
        .as_ref()
        .filter(|s| !s.is_empty())
        .ok_or(ApiError::RegistrationSecretNotFound)?;
    let user_type = body.user_type.as_deref().unwrap_or("bot");
    let credentials = homeserver_auth::register(
        state.clients.http(),
        &homeserver.url,
        secret,
        username,
        &password,
        Some(user_type),
    )
    .await
    .map_err(|err| homeserver_error(err, true))?;
    tracing::info!(target: "maubot.server", user_id = %credentials.user_id, "registered a bot account");
    respond(state, homeserver, credentials, update_client).await
}

/// `POST /_matrix/maubot/v1/client/auth/{server}/login`
///
/// Logs in with a password on a new `maubot_XXXXXXXX` device. With `?update_client=true` the
/// session becomes a client: 201 if new, 202 if an existing client was updated.
#[utoipa::path(post, path = "/client/auth/{server}/login", tag = "client auth",
    params(("server" = String, Path, description = "A key of the config's `homeservers`"), ("update_client" = Option<String>, Query, description = "`true`: make or update a client"),
        ("sso" = Option<String>, Query, description = "`true`: single sign-on (then only `device_name` counts)")),
    request_body = AuthRequest,
    responses(
    (status = 200, description = "The homeserver's login answer; with `sso`, `{\"sso_url\", \"id\"}`", body = serde_json::Value),
    (status = 201, description = "A new client (`update_client`)", body = ClientAnswer),
    (status = 202, description = "An existing client updated (`update_client`)", body = ClientAnswer),
    (status = 400, description = "`username_or_password_missing`, `password_login_unsupported`", body = ErrorBody),
    (status = 401, description = "No valid token", body = ErrorBody),
    (status = 403, description = "`sso_not_supported`; or the homeserver's refusal, with its status", body = ErrorBody),
    (status = 404, description = "`server_not_found`", body = ErrorBody),
    (status = 500, description = "Listed by maubot's spec for a failed login", body = ErrorBody),
))]
async fn login(
    State(state): State<AppState>,
    Path(server): Path<String>,
    Query(query): Query<AuthQuery>,
    ApiJson(body): ApiJson<AuthRequest>,
) -> ApiResult<AuthOutcome> {
    if truthy(&query.sso) {
        let started = sso::start(
            &state,
            &server,
            truthy(&query.update_client),
            body.device_name.as_deref(),
        )
        .await?;
        return Ok(AuthOutcome::Credentials(started));
    }
    login_account(&state, &server, &body, truthy(&query.update_client)).await
}

/// Logs in to the configured homeserver `server` with a password on a new device; with
/// `update_client` the session becomes a client (the web UI's "log in").
pub(crate) async fn login_account(
    state: &AppState,
    server: &str,
    body: &AuthRequest,
    update_client: bool,
) -> ApiResult<AuthOutcome> {
    let homeserver = homeserver(state, server)?;
    let (username, password) = body.username_and_password()?;
    let device_name = body.device_name.as_deref().unwrap_or("Maubot");
    let credentials = homeserver_auth::login(
        state.clients.http(),
        &homeserver.url,
        username,
        &password,
        device_name,
    )
    .await
    .map_err(|err| homeserver_error(err, false))?;
    respond(state, homeserver, credentials, update_client).await
}

pub(crate) async fn respond(
    state: &AppState,
    homeserver: &Homeserver,
    credentials: Credentials,
    update_client: bool,
) -> ApiResult<AuthOutcome> {
    if !update_client {
        return Ok(AuthOutcome::Credentials(credentials.raw));
    }
    let details = AccessDetails {
        homeserver: homeserver.url.clone(),
        access_token: credentials.access_token,
        device_id: credentials.device_id,
    };
    let (upserted, client) = state
        .clients
        .upsert_from_login(&credentials.user_id, details)
        .await?;
    Ok(AuthOutcome::Client(
        upserted,
        Box::new(ClientAnswer::of(state, client).0),
    ))
}

/// maubot passes the homeserver's refusal on: registration as a 500 with `http_status`, login
/// with the homeserver's own status.
pub(crate) fn homeserver_error(err: HomeserverAuthError, registering: bool) -> ApiError {
    match err {
        HomeserverAuthError::Connection(_) => ApiError::BadClientConnectionDetails,
        HomeserverAuthError::Matrix {
            status,
            errcode,
            error,
        } => {
            let own_status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            if registering {
                ApiError::Homeserver {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    errcode,
                    error,
                    http_status: Some(status),
                }
            } else {
                ApiError::Homeserver {
                    status: own_status,
                    errcode,
                    error,
                    http_status: None,
                }
            }
        }
        HomeserverAuthError::Unsupported(message) => ApiError::HomeserverUnsupported {
            errcode: if registering {
                "registration_unsupported"
            } else {
                "password_login_unsupported"
            },
            message,
        },
    }
}
