//! `mbc logs`: the log websocket protocol of §9 (token frame, `auth_success`, `history`, one
//! record per frame) and maubot's line format.
//!
//! The server side of the websocket is not in maubot-rs yet, so the protocol cases run against
//! a small websocket server written here that follows §9 to the letter; the test against the
//! real server is ignored until the server has its `/logs` route.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::support::{Mbc, TestServer, test_plugin, upload_with_api};

fn record(n: usize) -> Value {
    json!({
        "name": "maubot.instance.echo", "levelname": "INFO", "levelno": 20,
        "filename": "echo.py", "funcName": "ping", "lineno": 10, "module": "echo",
        "pathname": "/plugins/echo.py", "msg": format!("record {n}"),
        "time": format!("2025-01-0{n}T12:00:0{n}.123456-05:00"), "id": format!("{n}.5"),
    })
}

/// What the fake server does after reading the first text frame (the token).
#[derive(Debug, Clone, Copy)]
enum Script {
    /// §9 with a valid token: auth, five records of history, two live records, close 1000.
    Good,
    /// An invalid token: `{"auth_success": false}`, the socket stays open.
    BadToken,
    /// Closes with 4000, as the server does 5 s after an unauthenticated connect.
    Close4000,
    /// Live records, then a server shutdown: close 1012.
    Shutdown,
}

/// A one-connection websocket server; returns its base URL and the task that yields the
/// request path and the token it received.
#[allow(clippy::result_large_err)] // the handshake callback's type is tungstenite's
async fn fake_server(script: Script) -> (String, tokio::task::JoinHandle<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        let mut path = String::new();
        let mut socket = tokio_tungstenite::accept_hdr_async(
            stream,
            |request: &tokio_tungstenite::tungstenite::handshake::server::Request, response| {
                path = request.uri().path().to_owned();
                Ok(response)
            },
        )
        .await
        .expect("handshake");
        let token = loop {
            match socket.next().await.expect("a frame").expect("frame") {
                Message::Text(text) => break text.as_str().to_owned(),
                _ => continue,
            }
        };
        let send = |value: Value| Message::text(value.to_string());
        match script {
            Script::Good | Script::Shutdown => {
                socket
                    .send(send(json!({"auth_success": true})))
                    .await
                    .expect("send");
                let history: Vec<Value> = (1..=5).map(record).collect();
                socket
                    .send(send(json!({ "history": history })))
                    .await
                    .expect("send");
                socket.send(send(record(6))).await.expect("send");
                let mut failed = record(7);
                failed["levelname"] = "ERROR".into();
                failed["exc_info"] =
                    "Traceback (most recent call last):\n  boom\nValueError: x\n".into();
                socket.send(send(failed)).await.expect("send");
                let code = match script {
                    Script::Good => CloseCode::Normal,
                    _ => CloseCode::Restart,
                };
                socket
                    .close(Some(CloseFrame {
                        code,
                        reason: "".into(),
                    }))
                    .await
                    .expect("close");
            }
            Script::BadToken => {
                socket
                    .send(send(json!({"auth_success": false})))
                    .await
                    .expect("send");
                // Stays open until mbc goes.
                while let Some(Ok(_)) = socket.next().await {}
            }
            Script::Close4000 => {
                socket
                    .close(Some(CloseFrame {
                        code: CloseCode::from(4000),
                        reason: "".into(),
                    }))
                    .await
                    .expect("close");
            }
        }
        // Let the close handshake finish.
        while let Some(Ok(_)) = socket.next().await {}
        (path, token)
    });
    (url, task)
}

fn write_config(mbc: &Mbc, url: &str, token: &str) {
    std::fs::write(
        mbc.config_path(),
        json!({"servers": {url: token}, "aliases": {}, "default_server": url}).to_string(),
    )
    .expect("write");
}

#[tokio::test]
async fn logs_prints_the_tail_of_the_history_then_live_records() {
    let (url, server) = fake_server(Script::Good).await;
    let mbc = Mbc::new();
    write_config(&mbc, &url, "the-token");
    let out = mbc.run(&["logs", "--tail", "3"]).await;
    out.assert_success();
    assert_eq!(
        out.stdout,
        "[2025-01-03 12:00:03] [INFO@maubot.instance.echo] record 3\n\
         [2025-01-04 12:00:04] [INFO@maubot.instance.echo] record 4\n\
         [2025-01-05 12:00:05] [INFO@maubot.instance.echo] record 5\n\
         [2025-01-06 12:00:06] [INFO@maubot.instance.echo] record 6\n\
         [2025-01-07 12:00:07] [ERROR@maubot.instance.echo] record 7\n\
         Traceback (most recent call last):\n  boom\nValueError: x\n"
    );
    let (path, token) = server.await.expect("fake server");
    assert_eq!(path, "/_matrix/maubot/v1/logs");
    assert_eq!(token, "the-token");
}

#[tokio::test]
async fn logs_ends_cleanly_when_the_server_shuts_down() {
    let (url, server) = fake_server(Script::Shutdown).await;
    let mbc = Mbc::new();
    write_config(&mbc, &url, "t");
    // -t 0: no history.
    let out = mbc.run(&["logs", "-t", "0", &url]).await;
    out.assert_success();
    assert_eq!(out.stdout.lines().count(), 5, "{out}");
    assert!(
        out.stdout.starts_with("[2025-01-06 12:00:06] [INFO@"),
        "{out}"
    );
    server.await.expect("fake server");
}

#[tokio::test]
async fn logs_fails_when_the_token_is_refused() {
    let (url, _server) = fake_server(Script::BadToken).await;
    let mbc = Mbc::new();
    write_config(&mbc, &url, "stale");
    let out = mbc.run(&["logs"]).await;
    out.assert_error("did not accept the saved token");
    out.assert_hint(&format!("mbc login -s {url}"));

    let (url, _server) = fake_server(Script::Close4000).await;
    write_config(&mbc, &url, "slow");
    mbc.run(&["logs"])
        .await
        .assert_error("the token was not accepted in time");
}

#[tokio::test]
async fn logs_fails_without_a_websocket() {
    // The management API without a log websocket (a plain HTTP server here).
    let server = TestServer::start_with(|config| config.api_features.log = false).await;
    let mbc = Mbc::new();
    mbc.login(&server).await;
    let out = mbc.run(&["logs"]).await;
    out.assert_error("cannot open the log websocket");
    out.assert_hint("`log` API feature");
    server.stop().await;
}

/// A log line of the server reaches `mbc logs`, and a server shutdown (close 1012) ends it
/// with success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the server's log websocket (GET /_matrix/maubot/v1/logs), not in maubot-rs yet"]
async fn logs_follows_the_real_server() {
    let server = TestServer::start_logging("INFO", |_| {}).await;
    let mbc = Mbc::new();
    mbc.login(&server).await;
    let mut child = mbc
        .command(mbc.work(), &["logs", "--tail", "0"])
        .spawn()
        .expect("mbc logs");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    // Give mbc time to authenticate before the record is made.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let bytes = {
        let dir = tempfile::tempdir().expect("dir");
        let out = mbc
            .run(&[
                "build",
                test_plugin("echo").to_str().expect("UTF-8"),
                "-o",
                dir.path().join("echo.mbp").to_str().expect("UTF-8"),
            ])
            .await;
        out.assert_success();
        std::fs::read(dir.path().join("echo.mbp")).expect("archive")
    };
    let (status, body) = upload_with_api(&server, bytes).await;
    assert_eq!(status, 201, "{body}");

    let line = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let line = lines
                .next_line()
                .await
                .expect("read")
                .expect("mbc logs ended");
            if line.contains("Plugin uploaded") {
                return line;
            }
        }
    })
    .await
    .expect("the upload's log line within 30 s");
    let shape = line.len() > 22 && line.as_bytes()[0] == b'[' && &line[20..22] == "] ";
    assert!(shape && line.contains("[INFO@maubot.loader.zip]"), "{line}");

    server.stop().await;
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("mbc logs ends with the server")
        .expect("status");
    assert!(status.success(), "{status}");
}
