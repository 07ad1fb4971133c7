//! Plugin web apps under `server.plugin_base_path` (docs/compatibility.md, "Plugin web apps"): every request below
//! `<base><instance id>/` goes to that instance's web app, with the path below the prefix. No
//! authentication: plugins do their own, as in maubot.

use axum::Router;
use axum::body::Body;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

use crate::api::json::read_body;
use crate::runtime::WebRequest;
use crate::state::AppState;

const LOG: &str = "maubot.server";

/// Headers about one hop of the connection, not passed on either way.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::CONTENT_LENGTH,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

pub fn router(state: &AppState) -> Router<AppState> {
    let base = state.config.server.plugin_base_path.trim_end_matches('/');
    Router::new()
        .route(&format!("{base}/{{id}}/"), any(web_app))
        .route(&format!("{base}/{{id}}/{{*path}}"), any(web_app))
}

async fn web_app(
    State(state): State<AppState>,
    Path(params): Path<Vec<(String, String)>>,
    request: Request,
) -> Response {
    let Some(id) = params.into_iter().find(|(k, _)| k == "id").map(|(_, v)| v) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // The path as received (still percent-encoded), below `<base><id>`; keeps its leading `/`.
    let base = state.config.server.plugin_base_path.trim_end_matches('/');
    let full = request.uri().path().to_owned();
    let path = full
        .strip_prefix(base)
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|rest| rest.split_once('/').map(|(_, below)| format!("/{below}")))
        .unwrap_or_else(|| "/".to_owned());
    let remote = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string());
    let method = request.method().to_string();
    let query_string = request.uri().query().unwrap_or_default().to_owned();
    // Plugins never see the web UI's session cookie (an admin's token), though it is sent to
    // every path below the UI's.
    let mut headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .filter(|(name, _)| !HOP_BY_HOP.contains(name) && *name != header::COOKIE)
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
        .collect();
    if let Some(cookies) = crate::api::session::cookies_without_session(request.headers()) {
        headers.push((header::COOKIE.to_string(), cookies));
    }
    let body = match read_body(request, state.config.server.max_body_size).await {
        Ok(body) => body.to_vec(),
        Err(err) => return err.into_response(),
    };
    let web_request = WebRequest {
        method,
        path,
        query_string,
        headers,
        body,
        remote,
    };
    match state
        .plugins
        .web_request(&id.to_lowercase(), web_request)
        .await
    {
        // As maubot: no web app of that instance is an empty 404.
        None => StatusCode::NOT_FOUND.into_response(),
        Some(Err(err)) => {
            tracing::warn!(target: LOG, instance = %id, error = %err, "A plugin web app failed");
            (
                StatusCode::BAD_GATEWAY,
                "The plugin's web app is not available",
            )
                .into_response()
        }
        Some(Ok(answer)) => {
            let mut response = Response::builder().status(answer.status);
            for (name, value) in &answer.headers {
                if let Ok(name) = HeaderName::try_from(name.as_str())
                    && !HOP_BY_HOP.contains(&name)
                {
                    response = response.header(name, value);
                }
            }
            response
                .body(Body::from(answer.body))
                .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
        }
    }
}
