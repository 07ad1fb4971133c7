//! `/proxy/{id}/_matrix/...`: the homeserver API as the bot, for web UIs (avatar uploads and
//! downloads). The admin's token (header, query or the web UI's session cookie) is taken off; the
//! bot's goes on.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderName, header};
use axum::response::Response;
use axum::routing::any;

use super::error::{ApiError, ApiResult};
use super::json::read_body;
use crate::matrix_path::MatrixPath;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/proxy/{id}/{*path}", any(proxy))
}

/// Request headers not passed on: the connection's own, and the admin's credentials.
const DROPPED_REQUEST_HEADERS: [HeaderName; 5] = [
    header::HOST,
    header::AUTHORIZATION,
    header::CONNECTION,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
];
/// Response headers the server sets itself.
const DROPPED_RESPONSE_HEADERS: [HeaderName; 3] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::CONTENT_LENGTH,
];

/// `ANY /_matrix/maubot/v1/proxy/{id}/{path}`
///
/// Forwards to `{homeserver}/{path}` with the same method, body and query (less `access_token`),
/// authenticated as the bot; streams the answer back with its status and headers. `path` must
/// be below `_matrix/`, checked as [`MatrixPath`] checks it and sent on in its checked form.
#[utoipa::path(method(get, post, put, delete), path = "/proxy/{id}/{path}", tag = "clients",
    params(("id" = String, Path, description = "The client's Matrix user ID"), ("path" = String, Path, description = "A homeserver path below `_matrix/`")),
    responses(
    (status = 200, description = "The homeserver's answer, as it came, made as the bot"),
    (status = 401, description = "No valid token", body = super::openapi::ErrorBody),
    (status = 404, description = "`client_not_found`, or a path outside `_matrix/`", body = super::openapi::ErrorBody),
))]
pub(super) async fn proxy(
    State(state): State<AppState>,
    Path((id, _)): Path<(String, String)>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    request: Request,
) -> ApiResult<Response> {
    // The path as received, not axum's decoded one: `_matrix/..%2F_synapse` decodes to a path
    // that leaves `_matrix/`.
    let raw = request.uri().path();
    let below_id = raw
        .strip_prefix("/proxy/")
        .and_then(|rest| rest.split_once('/'))
        .map(|(_, below)| format!("/{below}"))
        .ok_or(ApiError::NotFound)?;
    let path = MatrixPath::parse(&below_id).map_err(|err| {
        tracing::warn!(target: "maubot.security", client = %id, path = ?below_id, reason = %err, "proxy: refused a path");
        ApiError::NotFound
    })?;
    let bot = state
        .clients
        .get(&id)
        .await
        .ok_or(ApiError::ClientNotFound)?;
    let record = bot.record();
    let query: Vec<(String, String)> = request
        .uri()
        .query()
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|(key, _)| key != "access_token")
        .collect();
    let mut headers = request.headers().clone();
    for name in &DROPPED_REQUEST_HEADERS {
        headers.remove(name);
    }
    // The web UI's session is the admin's credential too.
    headers.remove(header::COOKIE);
    if let Some(cookies) = super::session::cookies_without_session(request.headers())
        .and_then(|c| header::HeaderValue::from_str(&c).ok())
    {
        headers.insert(header::COOKIE, cookies);
    }
    headers.entry("x-forwarded-for").or_insert_with(|| {
        remote
            .to_string()
            .parse()
            .unwrap_or_else(|_| header::HeaderValue::from_static("unknown"))
    });
    let method = request.method().clone();
    let body = read_body(request, state.config.server.max_body_size).await?;
    let mut url = format!(
        "{}{}",
        record.homeserver.trim_end_matches('/'),
        path.to_wire()
    );
    if !query.is_empty() {
        url.push('?');
        url.push_str(&serde_urlencoded::to_string(&query).map_err(ApiError::internal)?);
    }
    let upstream = state
        .clients
        .http()
        .request(method, url)
        .headers(headers)
        .bearer_auth(record.access_token.expose())
        .body(body)
        .send()
        .await
        .map_err(|err| {
            tracing::warn!(target: "maubot.server", client = %id, error = %err, "proxy: homeserver unreachable");
            ApiError::BadClientConnectionDetails
        })?;
    let mut response = Response::builder().status(upstream.status());
    for (name, value) in upstream.headers() {
        if !DROPPED_RESPONSE_HEADERS.contains(name) {
            response = response.header(name, value);
        }
    }
    response
        .body(Body::from_stream(upstream.bytes_stream()))
        .map_err(ApiError::internal)
}
