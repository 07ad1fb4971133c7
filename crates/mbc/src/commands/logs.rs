//! `mbc logs`: the server's log websocket (docs/compatibility.md, "The log websocket"). The token goes in
//! the first text frame; the server answers `{"auth_success": true}`, then
//! `{"history": [...]}` with its recent records, then one record per frame.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{Connector, connect_async_tls_with_config};

use crate::cli::LogsArgs;
use crate::config::CliConfig;
use crate::error::{Failure, Result};
use crate::http::{API_PREFIX, check_url};
use crate::term::{Style, Term};

/// How long the server may take to answer the token.
const AUTH_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn logs(args: LogsArgs, term: &Term) -> Result<()> {
    let (config, _) = CliConfig::load()?;
    let server = config.resolve(args.server.as_deref())?;
    let url = websocket_url(&server.url)?;
    let connector = if url.starts_with("wss://") {
        Some(tls_connector()?)
    } else {
        None
    };
    let (mut socket, _) = connect_async_tls_with_config(url.as_str(), None, true, connector)
        .await
        .map_err(|err| {
            Failure::new(format!("cannot open the log websocket {url}"))
                .caused_by(&err)
                .hint(format!(
                    "is maubot running at {} with the `log` API feature on?",
                    server.url
                ))
        })?;
    socket
        .send(Message::text(server.token.expose()))
        .await
        .map_err(|err| Failure::new("cannot send the token").caused_by(&err))?;

    let mut state = State::AwaitingAuth;
    loop {
        let next = if state == State::AwaitingAuth {
            match tokio::time::timeout(AUTH_TIMEOUT, socket.next()).await {
                Ok(next) => next,
                Err(_) => {
                    return Err(Failure::new(format!(
                        "{} did not answer the token within {} s",
                        server.url,
                        AUTH_TIMEOUT.as_secs()
                    )));
                }
            }
        } else {
            socket.next().await
        };
        let message = match next {
            Some(Ok(message)) => message,
            Some(Err(err)) => {
                return Err(
                    Failure::new(format!("the log websocket of {} failed", server.url))
                        .caused_by(&err),
                );
            }
            None => {
                return Err(Failure::new(format!(
                    "the log websocket of {} closed without a close frame",
                    server.url
                )));
            }
        };
        match message {
            Message::Text(text) => {
                let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
                    term.warn(&format!(
                        "the server sent a frame that is not JSON: {}",
                        text.as_str()
                    ));
                    continue;
                };
                state = handle(state, &frame, args.tail, &server.url, term)?;
            }
            Message::Close(frame) => return closed(frame, &server.url),
            // Pings are answered by the websocket library; binary frames are not part of the
            // protocol.
            _ => {}
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitingAuth,
    AwaitingHistory,
    Following,
}

fn handle(state: State, frame: &Value, tail: usize, server: &str, term: &Term) -> Result<State> {
    if let Some(success) = frame.get("auth_success") {
        return if success.as_bool() == Some(true) {
            Ok(if state == State::AwaitingAuth {
                State::AwaitingHistory
            } else {
                state
            })
        } else {
            Err(
                Failure::new(format!("{server} did not accept the saved token"))
                    .hint(format!("log in again: mbc login -s {server}")),
            )
        };
    }
    if let Some(history) = frame.get("history").and_then(Value::as_array) {
        let skip = history.len().saturating_sub(tail);
        for record in &history[skip..] {
            term.out(&format_record(record, term));
        }
        return Ok(State::Following);
    }
    if state != State::AwaitingAuth && frame.get("msg").is_some() {
        term.out(&format_record(frame, term));
    }
    Ok(state)
}

/// The end of the stream: a normal close (1000) or the server going away or restarting (1001,
/// 1012) ends the command successfully.
fn closed(frame: Option<CloseFrame>, server: &str) -> Result<()> {
    let Some(frame) = frame else {
        return Ok(());
    };
    let code = u16::from(frame.code);
    match frame.code {
        CloseCode::Normal | CloseCode::Away | CloseCode::Restart => Ok(()),
        _ if code == 4000 => Err(Failure::new(format!(
            "{server} closed the log websocket: the token was not accepted in time"
        ))
        .hint(format!("log in again: mbc login -s {server}"))),
        _ => {
            let reason = frame.reason.as_str();
            Err(Failure::new(if reason.is_empty() {
                format!("{server} closed the log websocket with code {code}")
            } else {
                format!("{server} closed the log websocket with code {code}: {reason}")
            }))
        }
    }
}

/// `http://host/prefix` → `ws://host/prefix/_matrix/maubot/v1/logs` (`https` → `wss`).
fn websocket_url(server: &str) -> Result<String> {
    check_url(server)?;
    let (scheme, rest) = server.split_once("://").unwrap_or(("http", server));
    let scheme = if scheme.eq_ignore_ascii_case("https") {
        "wss"
    } else {
        "ws"
    };
    Ok(format!("{scheme}://{rest}{API_PREFIX}/logs"))
}

/// TLS as reqwest does it in mbc: rustls with the platform's certificate verifier.
fn tls_connector() -> Result<Connector> {
    use rustls_platform_verifier::ConfigVerifierExt as _;
    let config = rustls::ClientConfig::with_platform_verifier()
        .map_err(|err| Failure::new("cannot set up TLS").caused_by(&err))?;
    Ok(Connector::Rustls(Arc::new(config)))
}

/// `[YYYY-mm-dd HH:MM:SS] [LEVEL@logger] message`, then the exception, if any, on the
/// following lines.
fn format_record(record: &Value, term: &Term) -> String {
    let text = |key: &str| match &record[key] {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let level = text("levelname");
    let style = match level.as_str() {
        "DEBUG" => Some(Style::Dim),
        "WARNING" => Some(Style::Warning),
        "ERROR" | "CRITICAL" => Some(Style::Error),
        _ => None,
    };
    let source = format!("[{level}@{}]", text("name"));
    let source = match style {
        Some(style) => term.paint_out(style, &source),
        None => source,
    };
    let mut line = format!("[{}] {source} {}", short_time(&text("time")), text("msg"));
    let exception = text("exc_info");
    if !exception.trim().is_empty() {
        line.push('\n');
        line.push_str(exception.trim_end());
    }
    line
}

/// `2025-01-01T12:00:00.123456+02:00` → `2025-01-01 12:00:00`, the time as the server gives
/// it (any offset; maubot's mbc fails on negative ones). Other texts are shown as they are.
fn short_time(iso: &str) -> String {
    let bytes = iso.as_bytes();
    let shaped = bytes.len() >= 19
        && matches!(bytes[10], b'T' | b't' | b' ')
        && bytes[4] == b'-'
        && bytes[13] == b':'
        && iso.is_char_boundary(19);
    if shaped {
        format!("{} {}", &iso[..10], &iso[11..19])
    } else {
        iso.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            websocket_url("http://localhost:29316").expect("ok"),
            "ws://localhost:29316/_matrix/maubot/v1/logs"
        );
        assert_eq!(
            websocket_url("https://example.com/maubot").expect("ok"),
            "wss://example.com/maubot/_matrix/maubot/v1/logs"
        );
        assert!(websocket_url("example.com").is_err());
    }

    #[test]
    fn wss_gets_a_tls_config() {
        assert!(matches!(tls_connector(), Ok(Connector::Rustls(_))));
    }

    #[test]
    fn records() {
        let term = Term::detect_for_tests();
        let record = json!({
            "name": "maubot.instance.echo", "levelname": "INFO", "levelno": 20,
            "msg": "hello", "time": "2025-01-01T12:00:00.123456-05:00", "id": "1.5",
        });
        assert_eq!(
            format_record(&record, &term),
            "[2025-01-01 12:00:00] [INFO@maubot.instance.echo] hello"
        );
        let record = json!({
            "name": "maubot.server", "levelname": "ERROR", "msg": "failed",
            "time": "2025-01-01T12:00:00+00:00", "exc_info": "Traceback:\n  boom\n",
        });
        assert_eq!(
            format_record(&record, &term),
            "[2025-01-01 12:00:00] [ERROR@maubot.server] failed\nTraceback:\n  boom"
        );
        assert_eq!(short_time("yesterday"), "yesterday");
    }

    #[test]
    fn protocol_states() {
        let term = Term::detect_for_tests();
        let s = "http://x";
        let state = handle(
            State::AwaitingAuth,
            &json!({"auth_success": true}),
            3,
            s,
            &term,
        )
        .expect("ok");
        assert_eq!(state, State::AwaitingHistory);
        let err = handle(
            State::AwaitingAuth,
            &json!({"auth_success": false}),
            3,
            s,
            &term,
        )
        .expect_err("refused");
        assert!(err.message.contains("did not accept"));
        let state =
            handle(State::AwaitingHistory, &json!({"history": []}), 3, s, &term).expect("ok");
        assert_eq!(state, State::Following);
        assert!(closed(None, s).is_ok());
        let close = |code: u16| {
            closed(
                Some(CloseFrame {
                    code: CloseCode::from(code),
                    reason: "".into(),
                }),
                s,
            )
        };
        assert!(close(1000).is_ok());
        assert!(close(1012).is_ok());
        assert!(close(4000).is_err());
        assert!(close(1011).is_err());
    }
}
