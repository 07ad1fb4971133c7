//! A web app (`webapp: true`), under `<plugin_base_path><instance id>/`:
//! - `POST /push` with JSON `{"room_id", "text"}` sends the text as a notice into the room and
//!   answers `{"event_id"}` (400 for a body without both, 403 for a room the bot is not in,
//!   429 when sends are rate-limited);
//! - `GET /count` answers `{"count": <n>}`, the pushes sent so far (kept in the key-value
//!   store).

use maubot_plugin::{
    Error, Instance, NoConfig, Plugin, Result, WebRequest, WebResponse, kv, matrix,
};
use serde::Deserialize;
use serde_json::json;

struct Webhook;

#[derive(Deserialize)]
struct Push {
    room_id: String,
    text: String,
}

impl Plugin for Webhook {
    type Config = NoConfig;

    fn start(instance: &Instance, _config: NoConfig) -> Result<Self> {
        if let Some(url) = &instance.webapp_url {
            maubot_plugin::info!("pushes go to {url}/push");
        }
        Ok(Webhook)
    }

    fn web_request(&mut self, request: &WebRequest) -> WebResponse {
        let answer = match (request.method.as_str(), request.path.as_str()) {
            ("POST", "/push") => push(request),
            ("GET", "/count") => count().map(|count| WebResponse::json(&json!({ "count": count }))),
            (_, "/push" | "/count") => Ok(WebResponse::error(405, "method not allowed")),
            _ => Ok(WebResponse::not_found()),
        };
        answer.unwrap_or_else(|err| {
            let status = match err {
                Error::Usage(_) => 400,
                Error::Forbidden(_) => 403,
                Error::NotFound => 404,
                Error::RateLimited => 429,
                Error::Failed(_) => 500,
            };
            WebResponse::error(status, &err.to_string())
        })
    }
}

fn push(request: &WebRequest) -> Result<WebResponse> {
    let push: Push = request
        .json()
        .map_err(|_| Error::usage("expected JSON {\"room_id\": ..., \"text\": ...}"))?;
    let event_id = matrix::send_notice(&push.room_id, &push.text)?;
    kv::set("pushes", (count()? + 1).to_string())?;
    Ok(WebResponse::json(&json!({ "event_id": event_id })))
}

fn count() -> Result<u64> {
    Ok(kv::get_string("pushes")?
        .and_then(|n| n.parse().ok())
        .unwrap_or(0))
}

maubot_plugin::export_plugin!(Webhook);
