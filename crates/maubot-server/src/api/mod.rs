//! The management API under `/_matrix/maubot/v1`: one module per area, each with its own
//! `router()`, merged here according to `api_features`.

mod auth;
pub(crate) mod client;
pub(crate) mod client_auth;
pub mod error;
mod instance;
pub(crate) mod instance_database;
pub mod json;
mod logs;
mod meta;
mod openapi;
mod plugin;
mod proxy;
pub mod session;
pub mod sso;

use std::sync::Arc;

use axum::Router;
use axum::middleware::from_fn_with_state;
use maubot_types::config::ApiFeatures;
use utoipa_axum::router::OpenApiRouter;

use self::error::ApiError;
use crate::state::AppState;

/// Where the management API lives.
pub const PREFIX: &str = "/_matrix/maubot/v1";

/// The API's routes, with maubot's answers for unknown paths and methods and the token check in
/// front of everything.
pub fn router(state: &AppState) -> Router<AppState> {
    let (router, document) = routes(state.config.api_features);
    let document: Arc<str> = Arc::from(document.to_json().unwrap_or_default());
    router
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let document = Arc::clone(&document);
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        document.to_string(),
                    )
                }
            }),
        )
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(from_fn_with_state(state.clone(), session::require_token))
        // Outermost, so that refusals for a missing token count too; the route is known here,
        // as a router's layers run after routing.
        .layer(axum::middleware::from_fn(count_request))
}

/// `maubot_api_requests_total`: the route's template, not the path, so that IDs in paths do
/// not make a series each.
async fn count_request(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    crate::metrics::api_request(&route, &method, response.status().as_u16());
    response
}

/// The routes of the enabled features, and the OpenAPI document describing exactly those.
pub fn routes(features: ApiFeatures) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let when = |on: bool, router: fn() -> OpenApiRouter<AppState>| {
        if on {
            router()
        } else {
            OpenApiRouter::default()
        }
    };
    let (mut router, collected) = OpenApiRouter::default()
        .merge(meta::router())
        .merge(auth::router(features))
        // As in maubot, enabling client_auth also registers the client routes.
        .merge(when(
            features.client || features.client_auth,
            client::router,
        ))
        .merge(when(features.client_auth, client_auth::router))
        .merge(when(features.plugin, plugin::router))
        .merge(when(features.plugin_upload, plugin::upload_router))
        .merge(when(features.instance, instance::router))
        .merge(when(features.instance_database, instance_database::router))
        .merge(when(features.dev_open, meta::debug_router))
        .split_for_parts();
    let mut document = openapi::document(collected);
    // Described by hand (see `openapi`): mounted only with their features.
    if features.client_proxy {
        router = router.merge(proxy::router());
    } else {
        document
            .paths
            .paths
            .retain(|path, _| !path.starts_with("/proxy/"));
    }
    if features.log {
        router = router.merge(logs::router());
    } else {
        document.paths.paths.remove("/logs");
    }
    (router, document)
}

/// Runs a change to completion even if the client goes away: axum drops a handler's future when
/// its connection closes, which would leave a change half done (a worker started but not
/// recorded, a file written but not loaded).
pub(crate) async fn detached<T: Send + 'static>(
    work: impl Future<Output = T> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::spawn(work).await.map_err(ApiError::internal)
}
