//! The management web UI at `server.ui_base_path`: server-rendered pages (maud, which escapes
//! every value it is given) with a little JavaScript for the live parts (uploads with progress,
//! the live log, the overview's refresh). One module per view; pages read the same managers the
//! API's handlers use, forms call the same operations, and the scripts call the JSON API itself.
//!
//! The session is a management token in an HttpOnly cookie ([`SESSION_COOKIE`]), which the API
//! accepts as well. Every form post must come from this server's own origin (CSRF), and every
//! page carries a Content-Security-Policy that allows only this server's own scripts and styles.

mod assets;
mod bots;
mod bots_new;
mod database;
mod instance;
mod instances;
mod layout;
mod login;
mod logs;
mod overview;
mod plugins;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::Markup;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::de::DeserializeOwned;

use crate::api::error::ApiError;
use crate::api::json::read_body;
use crate::api::session::{SESSION_COOKIE, same_origin, session_cookie};
use crate::auth::Admin;
use crate::state::AppState;

pub use layout::Alert;

/// The UI's routes, below `server.ui_base_path` (and a redirect from that path without its
/// trailing slash).
pub fn router(state: &AppState) -> Router<AppState> {
    let base = base_path(&state.config.server.ui_base_path);
    let pages = Router::new()
        .merge(login::router())
        .merge(assets::router())
        .merge(bots::router())
        .merge(bots_new::router())
        .merge(plugins::router())
        .merge(instances::router())
        .merge(database::router())
        .merge(logs::router());
    let ui = if base == "/" {
        pages.route("/", get(overview::page_handler))
    } else {
        let bare = base.trim_end_matches('/').to_owned();
        let target = base.clone();
        Router::new()
            .nest(&bare, pages)
            .route(&base, get(overview::page_handler))
            .route(&bare, get(move || async move { Redirect::to(&target) }))
    };
    ui.layer(from_fn(security_headers))
}

/// `ui_base_path` with exactly one trailing slash.
pub fn base_path(configured: &str) -> String {
    format!("/{}/", configured.trim_matches('/')).replace("//", "/")
}

/// What every page needs to know: where things are and who is logged in.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The UI's base path, ending with `/`.
    pub base: String,
    /// The management API's path, as the browser sees it (`public_url`'s path and the prefix).
    pub api: String,
    pub admin: String,
    /// Whether to mark the session cookie `Secure` (`public_url` is https).
    secure: bool,
    cookie_path: String,
    token_lifetime: Option<u64>,
}

impl Ctx {
    fn new(state: &AppState, admin: String) -> Ctx {
        let server = &state.config.server;
        let base = base_path(&server.ui_base_path);
        let public_path = server
            .public_url
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|at| rest[at..].trim_end_matches('/')))
            .unwrap_or("");
        let api = format!("{public_path}{}", crate::api::PREFIX);
        let cookie_path = common_path(&base, &api);
        Ctx {
            base,
            api,
            admin,
            secure: server.public_url.starts_with("https://"),
            cookie_path,
            token_lifetime: server.token_lifetime,
        }
    }

    /// A path below the UI.
    pub fn href(&self, below: &str) -> String {
        format!("{}{below}", self.base)
    }

    /// The `Set-Cookie` value that starts a session with `token`, or ends it (`None`).
    fn session_cookie(&self, token: Option<&str>) -> String {
        // Without a configured lifetime tokens never expire; browsers keep cookies 400 days at
        // most.
        let max_age = match token {
            Some(_) => self.token_lifetime.unwrap_or(400 * 24 * 3600),
            None => 0,
        };
        format!(
            "{SESSION_COOKIE}={}; Path={}; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
            token.unwrap_or(""),
            self.cookie_path,
            if self.secure { "; Secure" } else { "" }
        )
    }
}

/// The longest common path of two paths, at a segment boundary (the session cookie's path: it
/// must reach the UI and the API).
fn common_path(a: &str, b: &str) -> String {
    let mut common = Vec::new();
    for (x, y) in a.split('/').zip(b.split('/')).skip(1) {
        if x != y || x.is_empty() {
            break;
        }
        common.push(x);
    }
    format!("/{}", common.join("/"))
}

/// Characters escaped in a path segment (bot IDs hold `@` and `:`; anything may be in an ID).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_');

/// One path segment, percent-encoded.
pub fn seg(value: &str) -> String {
    utf8_percent_encode(value, SEGMENT).to_string()
}

/// The logged-in admin of a page request. Without a valid session, pages redirect to the login.
#[derive(Debug, Clone)]
pub struct Session(pub Ctx);

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let admin = session_cookie(&parts.headers)
            .and_then(|token| state.auth.verify(&token).ok())
            .map(|Admin { username }| username);
        match admin {
            Some(admin) => Ok(Session(Ctx::new(state, admin))),
            None => {
                let ctx = Ctx::new(state, String::new());
                Err(see_other(&ctx.href("login")))
            }
        }
    }
}

/// A form post's fields, parsed as `T`: only from this server's own pages (CSRF), bounded by
/// `server.max_json_body_size`.
#[derive(Debug)]
pub struct UiForm<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for UiForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        read_form(req, state, state.config.server.max_json_body_size)
            .await
            .map(UiForm)
    }
}

/// Reads a form post of at most `limit` bytes, refusing posts from other origins.
async fn read_form<T: DeserializeOwned>(
    req: Request,
    state: &AppState,
    limit: u64,
) -> Result<T, Response> {
    if !same_origin(req.headers(), &state.config.server) {
        tracing::warn!(target: "maubot.security", path = %req.uri().path(), "refused a cross-origin form post to the web UI");
        return Err(plain_error(ApiError::CrossOrigin));
    }
    let body = read_body(req, limit).await.map_err(plain_error)?;
    serde_urlencoded::from_bytes(&body)
        .map_err(|err| plain_error(ApiError::InvalidBody(err.to_string())))
}

/// An error where no page can show it (a refused or malformed post): the message as text.
fn plain_error(err: ApiError) -> Response {
    (err.status(), err.message()).into_response()
}

/// `303 See Other` to `location`: where a successful form post leads.
pub fn see_other(location: &str) -> Response {
    Redirect::to(location).into_response()
}

/// A page's HTML with its status.
pub fn html(status: StatusCode, markup: Markup) -> Response {
    (status, axum::response::Html(markup.into_string())).into_response()
}

/// Every UI answer: a Content-Security-Policy without inline scripts or styles, no framing, no
/// sniffing, and pages not kept in caches (they show bot state and keys).
async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The result of a form post: where to go on success, or the page again with the error.
pub type PostResult = Result<Response, Response>;

/// A success notice named in a redirect's query (`?ok=saved`); only these fixed texts are shown,
/// never text from the URL.
pub fn notice(key: Option<&str>) -> Option<Alert> {
    let text = match key? {
        "saved" => "Saved.",
        "created" => "Created.",
        "started" => "Started.",
        "stopped" => "Stopped.",
        "enabled" => "Enabled.",
        "disabled" => "Disabled.",
        "deleted" => "Deleted.",
        "reloaded" => "Reloaded.",
        "cleared" => "Cache cleared.",
        "verified" => "The device is verified.",
        "renamed" => "Renamed.",
        "uploaded" => "Uploaded.",
        _ => return None,
    };
    Some(Alert::Ok(text.to_owned()))
}

/// The `?ok=` query of pages.
#[derive(Debug, Default, serde::Deserialize)]
pub struct NoticeQuery {
    pub ok: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised() {
        assert_eq!(base_path("/_matrix/maubot"), "/_matrix/maubot/");
        assert_eq!(base_path("/_matrix/maubot/"), "/_matrix/maubot/");
        assert_eq!(base_path("/"), "/");
        assert_eq!(base_path(""), "/");
        assert_eq!(
            common_path("/_matrix/maubot/", "/_matrix/maubot/v1"),
            "/_matrix/maubot"
        );
        assert_eq!(common_path("/admin/", "/_matrix/maubot/v1"), "/");
        assert_eq!(seg("@bot:example.com"), "%40bot%3Aexample.com");
        assert_eq!(seg("a/b?c"), "a%2Fb%3Fc");
    }
}
