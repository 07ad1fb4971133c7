//! The UI's stylesheet and script, inside the binary. Their URLs carry a hash of their content,
//! so browsers may keep them for good.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use crate::state::AppState;

const CSS: &str = include_str!("static/app.css");
const JS: &str = include_str!("static/app.js");

fn versioned(name: &str, content: &str) -> String {
    let hash = Sha256::digest(content.as_bytes());
    format!("static/{name}?v={}", hex_prefix(&hash))
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes[..6].iter().map(|b| format!("{b:02x}")).collect()
}

static CSS_PATH: LazyLock<String> = LazyLock::new(|| versioned("app.css", CSS));
static JS_PATH: LazyLock<String> = LazyLock::new(|| versioned("app.js", JS));

/// `static/app.css?v=<hash>`, below the UI's base.
pub fn css_path() -> &'static str {
    &CSS_PATH
}

/// `static/app.js?v=<hash>`, below the UI's base.
pub fn js_path() -> &'static str {
    &JS_PATH
}

pub fn router() -> Router<AppState> {
    Router::new().route("/static/{file}", get(file))
}

/// `GET {ui}/static/{file}`
async fn file(Path(file): Path<String>) -> Response {
    let (content, kind) = match file.as_str() {
        "app.css" => (CSS, "text/css; charset=utf-8"),
        "app.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "404: Not Found").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        content,
    )
        .into_response()
}
