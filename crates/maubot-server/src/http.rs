//! The whole HTTP application: the management API, the web UI, maubot's other top-level routes,
//! the access log and panic containment.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use crate::api::{self, error::ApiError};
use crate::state::AppState;

/// The application for `state`, ready to serve.
pub fn app(state: AppState) -> Router {
    let management = if state.config.server.management {
        Router::new()
            .nest(api::PREFIX, api::router(&state))
            .merge(crate::ui::router(&state))
    } else {
        Router::new()
    };
    management
        .merge(crate::plugin_web::router(&state))
        // maubot's appservice stub: present, never implemented.
        .route(
            "/_matrix/appservice/v1/transactions",
            put(|| async { StatusCode::NOT_IMPLEMENTED }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "404: Not Found") })
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!(target: "maubot.server", "a request handler panicked");
            ApiError::internal(anyhow::anyhow!("handler panicked")).into_response()
        }))
        .layer(from_fn(access_log))
        .with_state(state)
}

/// One line per request, in maubot's access log shape. The query string is left out: it may
/// carry an access token.
async fn access_log(req: Request, next: Next) -> Response {
    // Most servers log at WARNING: then a request costs no allocations for a line never written
    // nor a span nobody sees.
    if !tracing::enabled!(target: "maubot.server.access", tracing::Level::INFO)
        && !tracing::span_enabled!(target: "maubot.server", tracing::Level::INFO)
    {
        return next.run(req).await;
    }
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let remote = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "-".to_owned(), |ConnectInfo(addr)| addr.ip().to_string());
    let span = tracing::info_span!(target: "maubot.server", "request", %method, %path);
    let response = next.run(req).instrument(span).await;
    let length = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    tracing::info!(
        target: "maubot.server.access",
        "{remote} \"{method} {path} {} {length} in {:.4}s\"",
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
