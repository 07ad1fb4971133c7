//! maubot's error model: unknown paths, wrong methods, bad bodies.

use std::io::{Read as _, Write as _};

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{TestServer, assert_error, on_both_databases};

on_both_databases!(
    unknown_paths_need_a_token_first,
    wrong_method_is_405,
    malformed_bodies_are_400,
    oversized_bodies_are_413_without_being_read,
    outside_the_api,
    routes_maubots_ui_calls_answer_like_maubot,
);

/// maubot's web UI asks `/debug/open` on every page; `/logs` is only a websocket.
async fn routes_maubots_ui_calls_answer_like_maubot(server: &TestServer) {
    let token = server.root_token().await;
    let (status, body) = server.get("/debug/open", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "enabled": false }));
    assert_error(
        &server.get("/debug/open", None).await,
        StatusCode::UNAUTHORIZED,
        "auth_token_missing",
    );
    assert_error(
        &server
            .post_json(
                "/debug/open",
                Some(&token),
                json!({ "path": "/etc/passwd", "line": 1 }),
            )
            .await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    assert_error(
        &server.get("/logs", Some(&token)).await,
        StatusCode::BAD_REQUEST,
        "websocket_required",
    );
}

async fn unknown_paths_need_a_token_first(server: &TestServer) {
    assert_error(
        &server.get("/does/not/exist", None).await,
        StatusCode::UNAUTHORIZED,
        "auth_token_missing",
    );
    let token = server.root_token().await;
    let answer = server.get("/does/not/exist", Some(&token)).await;
    assert_error(&answer, StatusCode::NOT_FOUND, "resource_not_found");
    assert_eq!(answer.1["error"], "Resource not found");
    // Below /auth/ no token is needed, so unknown paths there are plain 404s.
    assert_error(
        &server.get("/auth/nonexistent", None).await,
        StatusCode::NOT_FOUND,
        "resource_not_found",
    );
}

async fn wrong_method_is_405(server: &TestServer) {
    // GET on a POST route, with and without a token (/auth/ needs none).
    let answer = server.get("/auth/login", None).await;
    assert_error(
        &answer,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    assert_eq!(answer.1["error"], "Method not allowed");
    let token = server.root_token().await;
    assert_error(
        &server.get("/auth/ping", Some(&token)).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    // POST on a GET route: the token check comes first, as in maubot.
    assert_error(
        &server.post_json("/version", None, json!({})).await,
        StatusCode::UNAUTHORIZED,
        "auth_token_missing",
    );
    assert_error(
        &server.post_json("/version", Some(&token), json!({})).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    let answer = server
        .send(server.http.delete(server.api("/features")), None)
        .await;
    assert_error(
        &answer,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

async fn malformed_bodies_are_400(server: &TestServer) {
    for body in ["not json", "{\"secret\": ", "", "\u{0}"] {
        let answer = server.post_raw("/auth/login", None, body).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "body_not_json");
        assert_eq!(answer.1["error"], "Request body is not JSON", "{body:?}");
    }
    // JSON, but not an object (maubot answers these with a 500).
    for body in ["[1, 2]", "null", "\"secret\"", "5"] {
        let answer = server.post_raw("/auth/login", None, body).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "body_not_json");
    }
    // Fields of the wrong type name the field (maubot: 401 or 500).
    for body in [
        json!({ "secret": 5 }),
        json!({ "username": "alice", "password": 5 }),
    ] {
        let answer = server.post_json("/auth/login", None, body).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_request_body");
        let message = answer.1["error"].as_str().unwrap_or_default();
        assert!(
            message.contains("`secret`") || message.contains("`password`"),
            "{message}"
        );
    }
}

async fn oversized_bodies_are_413_without_being_read(server: &TestServer) {
    // Routes that need no token take 16 KiB, whatever `server.max_body_size` says (4 KiB here).
    let big = json!({ "secret": "x".repeat(32 * 1024) });
    let answer = server.post_json("/auth/login", None, big).await;
    assert_error(&answer, StatusCode::PAYLOAD_TOO_LARGE, "unhandled_http_413");
    assert!(
        answer.1["error"]
            .as_str()
            .unwrap_or_default()
            .contains("16384"),
        "{}",
        answer.1
    );

    // A chunked body announces no length; it is cut off once it passes the limit. The rest is
    // never read, so the answer says the connection closes (a client that pooled it would send
    // its next request into a closing socket), and the server closes it.
    let mut stream = std::net::TcpStream::connect(server.addr()).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let chunk = "y".repeat(20_000);
    write!(
        stream,
        "POST /_matrix/maubot/v1/auth/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    )
    .expect("send");
    let mut response = String::new();
    // Unread bytes may make the close a reset; what was answered before it is what counts.
    let _ = stream.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("unhandled_http_413"), "{response}");
    assert!(response.contains("connection: close"), "{response}");

    // JSON routes behind a token take `server.max_json_body_size` (1 MiB by default), not the
    // uploads' `max_body_size`.
    let token = server.root_token().await;
    let config = "x".repeat(1024 * 1024);
    let answer = server
        .send(
            server
                .http
                .put(server.api("/instance/too-big"))
                .body(json!({ "config": config }).to_string()),
            Some(&token),
        )
        .await;
    assert_error(&answer, StatusCode::PAYLOAD_TOO_LARGE, "unhandled_http_413");
    assert!(
        answer.1["error"]
            .as_str()
            .unwrap_or_default()
            .contains("1048576")
    );
    let (status, _) = server.get("/instance/too-big", Some(&token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was created");
}

async fn outside_the_api(server: &TestServer) {
    let base = format!("http://{}", server.addr());
    let response = server
        .http
        .put(format!("{base}/_matrix/appservice/v1/transactions"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::NOT_IMPLEMENTED);
    let response = server
        .http
        .get(format!("{base}/nothing/here"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
