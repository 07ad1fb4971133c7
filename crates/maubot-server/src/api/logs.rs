//! `GET /logs`: the live log websocket. The token comes as the first text frame; then the history
//! and every new record, one JSON frame each. A socket opened with a token already (the web UI's
//! session cookie from its own origin, or maubot's other token places) gets the history at once.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::IntoResponse as _;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::error::ApiError;
use super::session::Admin;
use crate::logs::{self, Filter};
use crate::state::AppState;

/// Sockets that have not sent a valid token by then are closed with 4000, as in maubot.
const AUTH_TIMEOUT: Duration = Duration::from_secs(5);
const CLOSE_UNAUTHENTICATED: u16 = 4000;
/// "Service restart": the server is shutting down.
const CLOSE_SHUTDOWN: u16 = 1012;
/// Clients send one thing, the token; tungstenite would otherwise buffer 64 MiB messages from
/// anyone.
const MAX_MESSAGE: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new().route("/logs", get(logs))
}

/// `GET /_matrix/maubot/v1/logs[?level=INFO&logger=maubot.instance]`
#[utoipa::path(get, path = "/logs", tag = "logs", security(()),
    params(("level" = Option<String>, Query, description = "Records of this level and up"), ("logger" = Option<String>, Query, description = "Records of this logger and below")),
    responses(
    (status = 101, description = "A websocket: send the token as the first message, then receive the log history and records as JSON"),
    (status = 400, description = "`websocket_required`", body = super::openapi::ErrorBody),
))]
pub(super) async fn logs(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    State(state): State<AppState>,
    Query(filter): Query<Filter>,
    admin: Option<Admin>,
) -> Response {
    let Ok(ws) = ws else {
        return ApiError::WebsocketRequired.into_response();
    };
    let authenticated = admin.is_some();
    ws.max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| serve(socket, state, filter, authenticated))
}

async fn serve(mut socket: WebSocket, state: AppState, filter: Filter, authenticated: bool) {
    let mut shutdown = state.shutdown.clone();
    let deadline = tokio::time::sleep(AUTH_TIMEOUT);
    tokio::pin!(deadline);
    let mut live: Option<broadcast::Receiver<Arc<Value>>> = None;
    if authenticated {
        match start_streaming(&mut socket, &filter).await {
            Some(receiver) => live = Some(receiver),
            None => return,
        }
    }
    loop {
        tokio::select! {
            message = socket.recv() => match message {
                Some(Ok(Message::Text(token))) if live.is_none() => {
                    if state.auth.verify(token.as_str()).is_err() {
                        if send(&mut socket, &json!({ "auth_success": false })).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    match start_streaming(&mut socket, &filter).await {
                        Some(receiver) => live = Some(receiver),
                        None => return,
                    }
                }
                // After authentication, and anything but text, is ignored (as maubot).
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
            () = &mut deadline, if live.is_none() => {
                close(socket, CLOSE_UNAUTHENTICATED, "Authentication timed out").await;
                return;
            }
            record = next_record(&mut live) => match record {
                Ok(record) => {
                    if filter.accepts(&record) && send(&mut socket, &record).await.is_err() {
                        return;
                    }
                }
                // A slow reader misses records rather than slowing the server down.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
            () = stopping(&mut shutdown) => {
                close(socket, CLOSE_SHUTDOWN, "Server shutting down").await;
                return;
            }
        }
    }
}

/// Says the socket is authenticated and sends the history; `None` if the socket broke.
async fn start_streaming(
    socket: &mut WebSocket,
    filter: &Filter,
) -> Option<broadcast::Receiver<Arc<Value>>> {
    let (history, receiver) = logs::hub().subscribe();
    let history: Vec<&Value> = history
        .iter()
        .map(|r| &**r)
        .filter(|r| filter.accepts(r))
        .collect();
    if send(socket, &json!({ "auth_success": true }))
        .await
        .is_err()
        || send(socket, &json!({ "history": history })).await.is_err()
    {
        return None;
    }
    Some(receiver)
}

async fn stopping(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live across the close that follows.
    let _ = shutdown.wait_for(|stopping| *stopping).await.map(drop);
}

async fn next_record(
    live: &mut Option<broadcast::Receiver<Arc<Value>>>,
) -> Result<Arc<Value>, broadcast::error::RecvError> {
    match live {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

async fn send(socket: &mut WebSocket, value: &Value) -> Result<(), axum::Error> {
    socket.send(Message::Text(value.to_string().into())).await
}

async fn close(mut socket: WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}
