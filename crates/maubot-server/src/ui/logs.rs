//! The live log: the `/logs` websocket in the browser, with level and logger filters (the
//! server's), search and pause (the page's).

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use maud::html;
use serde::Deserialize;

use super::layout::{Alert, Nav, page};
use super::{Session, html as page_html};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/logs", get(show))
}

#[derive(Debug, Default, Deserialize)]
struct LogQuery {
    #[serde(default)]
    level: String,
    #[serde(default)]
    logger: String,
}

/// `GET {ui}/logs[?level=&logger=]`
async fn show(
    Session(ctx): Session,
    State(state): State<AppState>,
    Query(query): Query<LogQuery>,
) -> Response {
    if !state.config.api_features.log {
        let alert =
            Alert::Error("The live log is disabled on this server (api_features.log).".into());
        return page_html(
            StatusCode::NOT_FOUND,
            page(
                &ctx,
                "Logs",
                Nav::Logs,
                Some(&alert),
                html! { h1 { "Logs" } },
            ),
        );
    }
    let level = if query.level.is_empty() {
        "INFO"
    } else {
        query.level.as_str()
    };
    let content = html! {
        h1 { "Logs" }
        form.log-controls #log-controls method="get" action=(ctx.href("logs")) {
            div {
                label for="level" { "Level" }
                select #level name="level" {
                    @for name in ["DEBUG", "INFO", "WARNING", "ERROR"] {
                        option value=(name) selected[name == level] { (name) }
                    }
                }
            }
            div {
                label for="logger" { "Logger" }
                input #logger name="logger" value=(query.logger) placeholder="maubot.instance.echo" autocomplete="off";
            }
            div {
                label for="search" { "Search" }
                input #search type="search" placeholder="Filter the lines shown" autocomplete="off";
            }
            div.actions {
                button type="submit" { "Apply" }
                button #pause type="button" aria-pressed="false" { "Pause" }
                button #clear type="button" { "Clear" }
            }
        }
        p #log-status.hint aria-live="polite" { "Connecting…" }
        div.scroll.log-view {
            table.log #log-lines data-level=(level) data-logger=(query.logger) {
                thead { tr { th { "Time" } th { "Level" } th { "Logger" } th { "Message" } } }
                tbody {}
            }
        }
        noscript { p { "The live log needs JavaScript." } }
    };
    page_html(StatusCode::OK, page(&ctx, "Logs", Nav::Logs, None, content))
}
