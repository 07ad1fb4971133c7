//! `mbc logs`: maubot's log websocket protocol (token frame, `auth_success`, `history`, one
//! record per frame; docs/compatibility.md) and maubot's line format, against the real server; and, against a small
//! websocket server written here, what the real one cannot be made to send on demand: records
//! with chosen times and tracebacks, and the 4000 close of a socket that sent no token in time.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::support::{Mbc, TestServer, test_plugin};

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
    /// With a valid token: auth, five records of history, two live records, close 1000.
    Good,
    /// Closes with 4000, as the server does 5 s after an unauthenticated connect.
    Close4000,
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
            Script::Good => {
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
                socket
                    .close(Some(CloseFrame {
                        code: CloseCode::Normal,
                        reason: "".into(),
                    }))
                    .await
                    .expect("close");
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
async fn logs_fails_on_close_4000() {
    let (url, _server) = fake_server(Script::Close4000).await;
    let mbc = Mbc::new();
    write_config(&mbc, &url, "slow");
    let out = mbc.run(&["logs", &url]).await;
    out.assert_error("the token was not accepted in time");
    out.assert_hint(&format!("mbc login -s {url}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_fails_when_the_server_refuses_the_token() {
    capture_logs();
    let server = TestServer::start().await;
    let mbc = Mbc::new();
    let url = server.url();
    write_config(&mbc, &url, "stale-token");
    let out = mbc.run(&["logs"]).await;
    out.assert_error("did not accept the saved token");
    out.assert_hint(&format!("mbc login -s {url}"));
    server.stop().await;
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

/// The live log needs the process-wide `tracing` subscriber; the tests share one, with INFO
/// for maubot's loggers.
fn capture_logs() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let config = maubot_types::config::parse(
            "logging:\n  root: {level: WARNING}\n  loggers:\n    maubot: {level: INFO}\n",
        )
        .expect("logging config");
        maubot_server::logging::init_live_log_only(&config.config.logging);
    });
}

/// Reads `mbc logs`' output until a line contains `marker` (at most 30 s).
async fn line_with(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    marker: &str,
) -> String {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let line = lines
                .next_line()
                .await
                .expect("read")
                .expect("mbc logs ended");
            if line.contains(marker) {
                return line;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no line with {marker} within 30 s"))
}

/// The server's log lines reach `mbc logs`, live and from the history, in maubot's format, and
/// a server shutdown (close 1012) ends it with success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follows_the_real_server() {
    capture_logs();
    let server = TestServer::start().await;
    let mbc = Mbc::new();
    mbc.login(&server).await;
    let mut follower = mbc
        .command(mbc.work(), &["logs", "--tail", "0"])
        .spawn()
        .expect("mbc logs");
    let mut live = tokio::io::BufReader::new(follower.stdout.take().expect("stdout")).lines();
    // Requests until one shows up live: then mbc is following.
    let sync = format!("mbc-logs-sync-{:08x}", rand::random::<u32>());
    let requests = {
        let (http, url, token) = (server.http.clone(), server.url(), server.root_token().await);
        let sync = sync.clone();
        tokio::spawn(async move {
            loop {
                let _ = http
                    .get(format!("{url}/_matrix/maubot/v1/plugin/{sync}"))
                    .bearer_auth(&token)
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let _ = line_with(&mut live, &sync).await;
    requests.abort();

    // A request with a path of its own makes an access log line (maubot.server.access) that
    // no other test's server makes.
    let marker = format!("mbc-logs-{:08x}", rand::random::<u32>());
    let (status, _) = server.get(&format!("/plugin/{marker}")).await;
    assert_eq!(status, 404);
    let line = line_with(&mut live, &marker).await;
    let time = &line[..22];
    let shape = time.as_bytes()[0] == b'['
        && &time[20..] == "] "
        && time[1..20].bytes().filter(u8::is_ascii_digit).count() == 14;
    assert!(shape, "{line}");
    assert!(
        line[22..].starts_with("[INFO@maubot.server.access] "),
        "{line}"
    );

    // The same line from the history, for a second follower.
    let mut second = mbc
        .command(mbc.work(), &["logs", "-t", "2048"])
        .spawn()
        .expect("mbc logs");
    let mut history = tokio::io::BufReader::new(second.stdout.take().expect("stdout")).lines();
    assert_eq!(line_with(&mut history, &marker).await, line);
    second.kill().await.expect("stop the second follower");

    // A test plugin built and uploaded by mbc: the server's "Plugin uploaded" line.
    let echo = test_plugin("echo");
    mbc.run(&["build", "-u", echo.to_str().expect("UTF-8")])
        .await
        .assert_success();
    let _ = line_with(&mut live, "[INFO@maubot.loader.zip] Plugin uploaded").await;

    server.stop().await;
    let status = tokio::time::timeout(Duration::from_secs(30), follower.wait())
        .await
        .expect("mbc logs ends with the server")
        .expect("status");
    assert!(status.success(), "{status}");
}
