//! Logging in (an admin's username and password, or the server's secret as `root`) and out. The
//! session is the token `/auth/login` would give, in an HttpOnly cookie.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{Alert, bare_page};
use super::{Ctx, Session, UiForm, html as page_html, read_form, see_other};
use crate::api::error::ApiError;
use crate::api::json::PUBLIC_BODY_LIMIT;
use crate::api::session::session_cookie;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(page).post(login))
        .route("/logout", post(logout))
}

fn anonymous(state: &AppState) -> Ctx {
    Ctx::new(state, String::new())
}

/// `GET {ui}/login`
async fn page(State(state): State<AppState>, request: Request) -> Response {
    let ctx = anonymous(&state);
    let logged_in =
        session_cookie(request.headers()).is_some_and(|token| state.auth.verify(&token).is_ok());
    if logged_in {
        return see_other(&ctx.base);
    }
    page_html(StatusCode::OK, form(&state, &ctx, None, ""))
}

fn form(state: &AppState, ctx: &Ctx, error: Option<Alert>, username: &str) -> Markup {
    let enabled = state.config.api_features.login;
    bare_page(
        ctx,
        "Log in",
        html! {
            section.card.login {
                h1 { "maubot" }
                @if !enabled {
                    (Alert::Error("Logging in is disabled on this server (api_features.login).".into()).render())
                } @else {
                    @if let Some(error) = &error { (error.render()) }
                    form method="post" action=(ctx.href("login")) {
                        label for="username" { "Username" }
                        input #username name="username" autocomplete="username" value=(username) autofocus;
                        label for="password" { "Password" }
                        input #password type="password" name="password" autocomplete="current-password";
                        details {
                            summary { "Log in with the server's secret" }
                            p.hint { "The " code { "server.unshared_secret" } " of the config logs in as " code { "root" } "." }
                            label for="secret" { "Secret" }
                            input #secret type="password" name="secret" autocomplete="off";
                        }
                        div.actions { button.primary type="submit" { "Log in" } }
                    }
                }
            }
        },
    )
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    secret: String,
}

/// `POST {ui}/login`: as `POST /auth/login`, then the token goes into the session cookie.
async fn login(State(state): State<AppState>, request: Request) -> Response {
    let ctx = anonymous(&state);
    // Anyone can post here: the body is as small as the API's login body.
    let form_data: LoginForm = match read_form(request, &state, PUBLIC_BODY_LIMIT).await {
        Ok(form_data) => form_data,
        Err(response) => return response,
    };
    if !state.config.api_features.login {
        return page_html(
            StatusCode::NOT_FOUND,
            form(&state, &ctx, None, &form_data.username),
        );
    }
    let token = if form_data.secret.is_empty() {
        if form_data.username.is_empty() || form_data.password.is_empty() {
            None
        } else {
            match state
                .auth
                .login_with_password(&form_data.username, &form_data.password)
                .await
            {
                Ok(token) => token,
                Err(_) => return failed(&state, &ctx, ApiError::TooManyLogins, &form_data),
            }
        }
    } else {
        state.auth.login_with_secret(&form_data.secret, None)
    };
    match token {
        Some(token) => {
            let who = if form_data.secret.is_empty() {
                form_data.username.as_str()
            } else {
                "root"
            };
            tracing::info!(target: "maubot.server", admin = %who, "admin logged in to the web UI");
            (
                [(header::SET_COOKIE, ctx.session_cookie(Some(&token)))],
                see_other(&ctx.base),
            )
                .into_response()
        }
        None => failed(&state, &ctx, ApiError::InvalidAuth, &form_data),
    }
}

fn failed(state: &AppState, ctx: &Ctx, err: ApiError, form_data: &LoginForm) -> Response {
    let status = err.status();
    let alert = Alert::Error(err.message());
    page_html(status, form(state, ctx, Some(alert), &form_data.username))
}

/// `POST {ui}/logout`: ends the session (the cookie; tokens themselves cannot be revoked).
async fn logout(Session(ctx): Session, UiForm(_): UiForm<super::layout::Empty>) -> Response {
    (
        [(header::SET_COOKIE, ctx.session_cookie(None))],
        see_other(&ctx.href("login")),
    )
        .into_response()
}
