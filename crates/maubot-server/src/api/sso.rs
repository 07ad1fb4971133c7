//! Single sign-on for bot accounts, as maubot does it, for homeservers that offer no password
//! login (more and more, with the Matrix Authentication Service):
//!
//! 1. `POST /client/auth/{server}/login?sso=true` opens a session and answers the homeserver's
//!    SSO redirect URL, which sends the browser back to the completion route with a login token;
//! 2. `POST /client/auth/{server}/sso/{id}/wait` waits for that token, then logs in with it
//!    and answers as a password login does (a client made or updated with `update_client`);
//! 3. `GET /client/auth_external_sso/complete/{id}?loginToken=...` (no token: it is the
//!    browser) hands the token over and answers in plain text.
//!
//! Sessions live in memory for at most [`SESSION_LIFETIME`], at most [`MAX_SESSIONS`] at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use maubot_types::secret::Secret;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::client_auth::{AuthOutcome, homeserver, homeserver_error, respond};
use super::error::{ApiError, ApiResult};
use crate::homeserver_auth;
use crate::state::AppState;
use crate::sync::lock;

/// How long a session waits for its login token.
const SESSION_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Sessions open at once; beyond, the oldest goes.
const MAX_SESSIONS: usize = 64;
/// The longest login token taken from the (unauthenticated) completion route.
const MAX_TOKEN: usize = 4096;

#[derive(Debug, Clone)]
enum Progress {
    Waiting,
    Received(Secret),
    /// The waiting request went away before the token came.
    Cancelled,
    /// The token was taken to log in.
    Used,
}

#[derive(Debug)]
struct Session {
    server: String,
    update_client: bool,
    device_name: String,
    opened: Instant,
    progress: watch::Sender<Progress>,
}

/// The open single sign-on sessions.
#[derive(Debug, Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

impl Sessions {
    fn open(&self, server: &str, update_client: bool, device_name: &str) -> String {
        // maubot's session IDs: 16 of `[a-z0-9]`.
        let id = Secret::random(16).expose().to_owned();
        let mut sessions = lock(&self.0);
        sessions.retain(|_, s| s.opened.elapsed() < SESSION_LIFETIME);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.opened)
                .map(|(id, _)| id.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            id.clone(),
            Session {
                server: server.to_owned(),
                update_client,
                device_name: device_name.to_owned(),
                opened: Instant::now(),
                progress: watch::channel(Progress::Waiting).0,
            },
        );
        id
    }
}

/// Step 1, for `login?sso=true`.
pub(crate) async fn start(
    state: &AppState,
    server: &str,
    update_client: bool,
    device_name: Option<&str>,
) -> ApiResult<Value> {
    let homeserver = homeserver(state, server)?;
    let offered = homeserver_auth::offers(state.clients.http(), &homeserver.url, "m.login.sso")
        .await
        .map_err(|err| homeserver_error(err, false))?;
    if !offered {
        return Err(ApiError::SsoNotSupported);
    }
    let id = state
        .sso
        .open(server, update_client, device_name.unwrap_or("Maubot"));
    let complete = format!(
        "{}{}/client/auth_external_sso/complete/{id}",
        state.config.server.public_url.trim_end_matches('/'),
        super::PREFIX
    );
    let sso_url = format!(
        "{}/_matrix/client/v3/login/sso/redirect?redirectUrl={}",
        homeserver.url.trim_end_matches('/'),
        utf8_percent_encode(&complete, NON_ALPHANUMERIC)
    );
    Ok(json!({ "sso_url": sso_url, "id": id }))
}

/// Marks the session cancelled if the waiting request goes away before the token came.
struct Waiter<'a> {
    progress: &'a watch::Sender<Progress>,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.progress.send_if_modified(|p| {
            let waiting = matches!(p, Progress::Waiting);
            if waiting {
                *p = Progress::Cancelled;
            }
            waiting
        });
    }
}

/// `POST /_matrix/maubot/v1/client/auth/{server}/sso/{id}/wait`: step 2.
#[utoipa::path(post, path = "/client/auth/{server}/sso/{id}/wait", tag = "client auth",
    params(("server" = String, Path, description = "A key of the config's `homeservers`"), ("id" = String, Path, description = "The session's ID")),
    responses(
    (status = 200, description = "The homeserver's login answer", body = serde_json::Value),
    (status = 201, description = "A new client (`update_client`)", body = super::client::ClientAnswer),
    (status = 202, description = "An existing client updated (`update_client`)", body = super::client::ClientAnswer),
    (status = 401, description = "No valid token", body = super::openapi::ErrorBody),
    (status = 404, description = "`sso_session_not_found`", body = super::openapi::ErrorBody),
))]
pub(crate) async fn wait(
    State(state): State<AppState>,
    Path((server, id)): Path<(String, String)>,
) -> ApiResult<AuthOutcome> {
    let found = lock(&state.sso.0)
        .get(&id)
        .filter(|s| s.server == server)
        .map(|s| {
            (
                s.progress.clone(),
                s.update_client,
                s.device_name.clone(),
                s.opened,
            )
        });
    let Some((progress, update_client, device_name, opened)) = found.filter(|(progress, ..)| {
        !matches!(*progress.borrow(), Progress::Used | Progress::Cancelled)
    }) else {
        return Err(ApiError::SsoSessionNotFound);
    };
    let token = {
        let waiter = Waiter {
            progress: &progress,
        };
        let mut watching = waiter.progress.subscribe();
        let left = SESSION_LIFETIME.saturating_sub(opened.elapsed());
        let arrived =
            tokio::time::timeout(left, watching.wait_for(|p| !matches!(p, Progress::Waiting)))
                .await;
        match arrived {
            Ok(Ok(progress)) => match &*progress {
                Progress::Received(token) => token.clone(),
                _ => return Err(ApiError::SsoSessionNotFound),
            },
            _ => return Err(ApiError::SsoSessionNotFound),
        }
    };
    progress.send_replace(Progress::Used);
    let homeserver = homeserver(&state, &server)?;
    let credentials = homeserver_auth::login_with_token(
        state.clients.http(),
        &homeserver.url,
        &token,
        &device_name,
    )
    .await
    .map_err(|err| homeserver_error(err, false))?;
    respond(&state, homeserver, credentials, update_client).await
}

#[derive(Debug, Deserialize)]
pub(crate) struct CompleteQuery {
    #[serde(rename = "loginToken")]
    login_token: Option<String>,
}

/// `GET /_matrix/maubot/v1/client/auth_external_sso/complete/{id}?loginToken=...`: step 3,
/// answered to the browser in plain text, as maubot words it.
#[utoipa::path(get, path = "/client/auth_external_sso/complete/{id}", tag = "client auth", security(()),
    params(("id" = String, Path, description = "The session's ID"), ("loginToken" = Option<String>, Query, description = "From the homeserver's redirect")),
    responses(
    (status = 200, description = "Plain text: received, already received, or cancelled", body = String, content_type = "text/plain"),
    (status = 400, description = "Plain text: no `loginToken`", body = String, content_type = "text/plain"),
    (status = 404, description = "Plain text: no such session", body = String, content_type = "text/plain"),
))]
pub(crate) async fn complete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<CompleteQuery>,
) -> impl IntoResponse {
    let sessions = lock(&state.sso.0);
    let Some(session) = sessions.get(&id) else {
        return (StatusCode::NOT_FOUND, "Invalid session ID\n");
    };
    let Some(token) = query
        .login_token
        .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN)
    else {
        return (
            StatusCode::BAD_REQUEST,
            "Missing loginToken query parameter\n",
        );
    };
    let current = session.progress.borrow().clone();
    match current {
        Progress::Cancelled => (
            StatusCode::OK,
            "The login was cancelled from the Maubot client\n",
        ),
        Progress::Received(_) | Progress::Used => {
            (StatusCode::OK, "The login token was already received\n")
        }
        Progress::Waiting => {
            session
                .progress
                .send_replace(Progress::Received(Secret::new(token)));
            (
                StatusCode::OK,
                "Login token received, please return to your Maubot client. This tab can be closed.\n",
            )
        }
    }
}
