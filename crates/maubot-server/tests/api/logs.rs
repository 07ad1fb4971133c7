//! The live log websocket (`GET /logs`, docs/compatibility.md): token as the first frame,
//! history, one frame per record with maubot's field names, 4000 without authentication, 1012
//! on shutdown; and a Python plugin's log line reaching it.

use std::sync::Once;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::support::{Backend, TestServer};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The live log needs the process-wide subscriber; tests share one (INFO for maubot's loggers).
pub(crate) fn capture_logs() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let config = maubot_types::config::parse(
            "logging:\n  root: {level: WARNING}\n  loggers:\n    maubot: {level: INFO}\n",
        )
        .expect("logging config");
        maubot_server::logging::init_live_log_only(&config.config.logging);
    });
}

async fn connect(server: &TestServer, query: &str) -> Socket {
    let url = format!("ws://{}/_matrix/maubot/v1/logs{query}", server.addr());
    tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket")
        .0
}

async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).expect("JSON frame");
        }
    }
}

/// Reads records until one satisfies `check`.
pub(crate) async fn record_where(socket: &mut Socket, check: impl Fn(&Value) -> bool) -> Value {
    loop {
        let record = next_json(socket).await;
        if check(&record) {
            return record;
        }
    }
}

/// A socket past authentication, and the `history` frame it got.
pub(crate) async fn authenticated(server: &TestServer, query: &str) -> (Socket, Value) {
    let token = server.root_token().await;
    let mut socket = connect(server, query).await;
    socket
        .send(Message::Text(token.into()))
        .await
        .expect("send token");
    assert_eq!(
        next_json(&mut socket).await,
        json!({ "auth_success": true })
    );
    let history = next_json(&mut socket).await;
    assert!(history["history"].is_array(), "{history}");
    (socket, history)
}

/// Waits for the server to close the socket; the close code.
async fn close_code(socket: &mut Socket) -> Option<CloseCode> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| f.code),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_authenticate_then_stream_records_in_maubots_shape() {
    capture_logs();
    let server = TestServer::start(Backend::Sqlite, "logs_stream")
        .await
        .expect("sqlite");
    let mut socket = connect(&server, "").await;
    socket
        .send(Message::Text("not a token".into()))
        .await
        .expect("send");
    assert_eq!(
        next_json(&mut socket).await,
        json!({ "auth_success": false })
    );
    let token = server.root_token().await;
    socket
        .send(Message::Text(token.clone().into()))
        .await
        .expect("send");
    assert_eq!(
        next_json(&mut socket).await,
        json!({ "auth_success": true })
    );
    let history = next_json(&mut socket).await;
    assert!(
        history["history"]
            .as_array()
            .is_some_and(|h| h.len() <= 2048),
        "{history}"
    );

    tracing::warn!(target: "maubot.test", answer = 42, "a record for the websocket");
    let record = record_where(&mut socket, |r| r["name"] == "maubot.test").await;
    assert_eq!(record["levelname"], "WARNING");
    assert_eq!(record["levelno"], 30);
    assert_eq!(record["msg"], "a record for the websocket");
    assert_eq!(record["answer"], 42);
    assert!(
        record["time"]
            .as_str()
            .is_some_and(|t| t.contains('T') && t.ends_with("+00:00")),
        "{record}"
    );
    assert!(
        record["id"]
            .as_str()
            .is_some_and(|id| id.parse::<f64>().is_ok()),
        "{record}"
    );
    for field in ["filename", "funcName", "lineno", "module", "pathname"] {
        assert!(record.get(field).is_some(), "{field} missing: {record}");
    }
    // Client loggers get their ID back in the name.
    tracing::warn!(target: "maubot.client", client = "@bot:test", "a client record");
    let record = record_where(&mut socket, |r| r["msg"] == "a client record").await;
    assert_eq!(record["name"], "maubot.client.@bot:test");

    // A later connection gets the records as history; filters apply to it.
    let mut filtered = authenticated(&server, "?logger=maubot.client&level=WARNING").await;
    let history = filtered.1["history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        history.iter().any(|r| r["msg"] == "a client record"),
        "{history:?}"
    );
    assert!(
        history.iter().all(|r| r["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("maubot.client."))),
        "{history:?}"
    );
    tracing::warn!(target: "maubot.test", "not for the filtered socket");
    tracing::warn!(target: "maubot.client", client = "@bot:test", "for the filtered socket");
    let record = next_json(&mut filtered.0).await;
    assert_eq!(record["msg"], "for the filtered socket");

    // Shutdown closes live sockets with 1012.
    server.stop().await;
    assert_eq!(close_code(&mut socket).await, Some(CloseCode::Restart));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_close_unauthenticated_sockets_after_five_seconds() {
    let server = TestServer::start(Backend::Sqlite, "logs_timeout")
        .await
        .expect("sqlite");
    let mut socket = connect(&server, "").await;
    let started = std::time::Instant::now();
    assert_eq!(close_code(&mut socket).await, Some(CloseCode::from(4000)));
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    server.stop().await;
}
