//! Adding a bot: registering an account or logging one in on a homeserver of the config's
//! `homeservers`, or with an access token of an existing account.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use maubot_types::secret::Secret;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{Alert, Nav, page};
use super::{Ctx, PostResult, Session, UiForm, html as page_html, see_other, seg};
use crate::api::client::ClientAnswer;
use crate::api::client_auth::{AuthOutcome, AuthRequest, login_account, register_account};
use crate::api::error::ApiError;
use crate::client::ClientRequest;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/new/bot", get(show).post(create))
}

/// What the form held, shown again after an error (never the password or token).
#[derive(Debug, Default, Deserialize)]
struct NewBotForm {
    #[serde(default)]
    method: String,
    #[serde(default)]
    server: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    homeserver: String,
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    device_id: String,
}

/// `GET {ui}/new/bot`
async fn show(
    Session(ctx): Session,
    State(state): State<AppState>,
    Query(form): Query<NewBotForm>,
) -> Response {
    page_html(StatusCode::OK, render(&ctx, &state, &form, None))
}

fn render(ctx: &Ctx, state: &AppState, form: &NewBotForm, alert: Option<&Alert>) -> Markup {
    let servers: Vec<(&String, &String)> = state
        .config
        .homeservers
        .iter()
        .map(|(name, hs)| (name, &hs.url))
        .collect();
    let client_auth = state.config.api_features.client_auth && !servers.is_empty();
    let method = if form.method.is_empty() {
        if client_auth { "register" } else { "token" }
    } else {
        form.method.as_str()
    };
    let server_picker = |id: &str| {
        html! {
            label for=(id) { "Homeserver" }
            select #(id) name="server" {
                @for (name, url) in &servers {
                    option value=(name) selected[form.server == **name] { (name) " (" (url) ")" }
                }
            }
        }
    };
    let credentials = |prefix: &str, what: &str| {
        html! {
            label for={ (prefix) "-username" } { "Username" }
            input id={ (prefix) "-username" } name="username" value=(form.username) required autocomplete="off" placeholder="mybot";
            label for={ (prefix) "-password" } { "Password" }
            input id={ (prefix) "-password" } type="password" name="password" required autocomplete="new-password";
            p.hint { (what) }
        }
    };
    let content = html! {
        h1 { "Add a bot" }
        div.columns {
            @if client_auth {
                section.card {
                    h2 { "Register a new account" }
                    form method="post" action=(ctx.href("new/bot")) {
                        input type="hidden" name="method" value="register";
                        (server_picker("register-server"))
                        (credentials("register", "The account is registered with the homeserver's registration secret from the config, as a bot account."))
                        div.actions { button.primary type="submit" autofocus[method == "register"] { "Register" } }
                    }
                }
                section.card {
                    h2 { "Log in an existing account" }
                    form method="post" action=(ctx.href("new/bot")) {
                        input type="hidden" name="method" value="login";
                        (server_picker("login-server"))
                        (credentials("login", "maubot logs in on a new device of that account."))
                        div.actions { button type="submit" { "Log in" } }
                    }
                }
            }
            section.card {
                h2 { "Use an access token" }
                form method="post" action=(ctx.href("new/bot")) {
                    input type="hidden" name="method" value="token";
                    label for="homeserver" { "Homeserver URL" }
                    input #homeserver name="homeserver" type="url" value=(form.homeserver) required placeholder="https://matrix.example.com";
                    label for="access_token" { "Access token" }
                    input #access_token name="access_token" type="password" required autocomplete="off";
                    label for="device_id" { "Device ID (for end-to-end encryption)" }
                    input #device_id name="device_id" value=(form.device_id) autocomplete="off";
                    div.actions { button type="submit" { "Add" } }
                }
            }
        }
        @if !client_auth {
            p.hint { "To register or log in accounts here, add homeservers under " code { "homeservers" } " in the config." }
        }
    };
    page(ctx, "Add a bot", Nav::Bots, alert, content)
}

/// `POST {ui}/new/bot`: as `POST /client/auth/{server}/register?update_client=true`,
/// `.../login?update_client=true` or `POST /client/new`.
async fn create(
    Session(ctx): Session,
    State(state): State<AppState>,
    UiForm(mut form): UiForm<NewBotForm>,
) -> PostResult {
    let auth = || AuthRequest {
        username: Some(form.username.trim().to_owned()),
        password: Some(form.password.clone()),
        ..AuthRequest::default()
    };
    let result = match form.method.as_str() {
        "register" if state.config.api_features.client_auth => {
            register_account(&state, &form.server, &auth(), true).await
        }
        "login" if state.config.api_features.client_auth => {
            login_account(&state, &form.server, &auth(), true).await
        }
        "token" => {
            let request = ClientRequest {
                homeserver: Some(form.homeserver.trim().to_owned()),
                access_token: Some(Secret::new(form.access_token.trim())),
                device_id: Some(form.device_id.trim().to_owned()),
                ..ClientRequest::default()
            };
            state
                .clients
                .create(request, None)
                .await
                .map(|view| {
                    let answer = ClientAnswer::of(&state, view).0;
                    AuthOutcome::Client(crate::client::Upserted::Created, Box::new(answer))
                })
                .map_err(ApiError::from)
        }
        _ => Err(ApiError::InvalidBody("unknown method".into())),
    };
    form.password.clear();
    form.access_token.clear();
    match result {
        Ok(AuthOutcome::Client(_, view)) => Ok(see_other(
            &ctx.href(&format!("bots/{}?ok=created", seg(view.id()))),
        )),
        Ok(AuthOutcome::Credentials(_)) => Ok(see_other(&ctx.href("bots"))),
        Err(err) => Err(page_html(
            err.status(),
            render(&ctx, &state, &form, Some(&Alert::Error(err.message()))),
        )),
    }
}
