//! `/auth/login`, `/auth/ping`, `/features`, `/version` and tokens.

use maubot_types::secret::Secret;
use maubot_types::token;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{ALICE_PASSWORD, SECRET, TestServer, assert_error, on_both_databases};

on_both_databases!(
    secret_login_gives_a_working_token,
    password_login,
    wrong_credentials_are_refused,
    tokens_are_checked,
    features_show_more_to_admins,
    version_needs_a_token,
);

async fn secret_login_gives_a_working_token(server: &TestServer) {
    let token = server.root_token().await;
    let (status, body) = server
        .post_json("/auth/ping", Some(&token), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["username"], "root");
    assert_eq!(body["features"]["plugin_upload"], true);

    // A token for another admin, bought with the secret.
    let (status, body) = server
        .post_json(
            "/auth/login",
            None,
            json!({ "secret": SECRET, "user": "carol" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let carol = body["token"].as_str().expect("token");
    let (_, body) = server.post_json("/auth/ping", Some(carol), json!({})).await;
    assert_eq!(body["username"], "carol");

    // The token also works as ?access_token= (how the web UI loads avatars).
    let url = format!("{}?access_token={token}", server.api("/version"));
    let response = server.http.get(url).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
}

async fn password_login(server: &TestServer) {
    for (username, password) in [("alice", ALICE_PASSWORD), ("bob", "builder")] {
        let (status, body) = server
            .post_json(
                "/auth/login",
                None,
                json!({ "username": username, "password": password }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{username}: {body}");
        let token = body["token"].as_str().expect("token");
        let (status, body) = server.post_json("/auth/ping", Some(token), json!({})).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["username"], username);
    }
}

async fn wrong_credentials_are_refused(server: &TestServer) {
    let refused = [
        json!({ "secret": "wrong" }),
        json!({ "secret": "" }),
        json!({}),
        json!({ "username": "alice", "password": "bad" }),
        json!({ "username": "alice" }),
        json!({ "username": "nobody", "password": "x" }),
        // root never logs in with a password, whatever it is.
        json!({ "username": "root", "password": "" }),
        json!({ "username": "root", "password": SECRET }),
        // An admin with an empty password cannot log in with one.
        json!({ "username": "carol", "password": "" }),
        // The secret does not buy tokens for users who are not admins (maubot signs useless ones).
        json!({ "secret": SECRET, "user": "mallory" }),
    ];
    for body in refused {
        let answer = server.post_json("/auth/login", None, body.clone()).await;
        assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid_auth");
        assert_eq!(answer.1["error"], "Invalid username or password", "{body}");
    }
    // A wrong secret falls through to the password check, as in maubot.
    let (status, _) = server
        .post_json(
            "/auth/login",
            None,
            json!({ "secret": "wrong", "username": "alice", "password": ALICE_PASSWORD }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

async fn tokens_are_checked(server: &TestServer) {
    let answer = server.get("/version", None).await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "auth_token_missing");

    let answer = server.get("/version", Some("garbage")).await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "auth_token_invalid");

    // Signed with another secret.
    let foreign = token::sign(&Secret::new("another-secret"), "root", 1_700_000_000);
    assert_error(
        &server.get("/version", Some(&foreign)).await,
        StatusCode::UNAUTHORIZED,
        "auth_token_invalid",
    );

    // Forged: a valid token's checksum on another payload.
    let real = server.root_token().await;
    let (checksum, _) = real.split_once(':').expect("token format");
    let alice = token::sign(&Secret::new(SECRET), "alice", 1);
    let (_, alice_payload) = alice.split_once(':').expect("token format");
    let forged = format!("{checksum}:{alice_payload}");
    assert_error(
        &server.get("/version", Some(&forged)).await,
        StatusCode::UNAUTHORIZED,
        "auth_token_invalid",
    );

    // Correctly signed, but for someone who is not an admin.
    let stranger = token::sign(&Secret::new(SECRET), "mallory", 1_700_000_000);
    assert_error(
        &server.get("/version", Some(&stranger)).await,
        StatusCode::UNAUTHORIZED,
        "auth_token_invalid",
    );

    // Without a configured lifetime, tokens never expire (as in maubot).
    let old = token::sign(&Secret::new(SECRET), "alice", 1_000_000_000);
    assert_eq!(server.get("/version", Some(&old)).await.0, StatusCode::OK);

    // Only `Bearer ` exactly; anything else counts as no token, as in maubot.
    let request = server
        .http
        .get(server.api("/version"))
        .header("Authorization", format!("Token {real}"));
    let answer = server.send(request, None).await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "auth_token_missing");
}

async fn features_show_more_to_admins(server: &TestServer) {
    let (status, body) = server.get("/features", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "login": true }));
    let (_, body) = server.get("/features", Some("garbage")).await;
    assert_eq!(body, json!({ "login": true }));

    let token = server.root_token().await;
    let (status, body) = server.get("/features", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({
            "login": true, "plugin": true, "plugin_upload": true, "instance": true,
            "instance_database": true, "client": true, "client_proxy": true, "client_auth": true,
            "dev_open": true, "log": true,
        })
    );
}

async fn version_needs_a_token(server: &TestServer) {
    let token = server.root_token().await;
    let (status, body) = server.get("/version", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["version"], "0.6.0");
}

/// Token lifetime (a maubot-rs addition): an old token is refused once a lifetime is set.
#[tokio::test]
async fn token_lifetime_expires_old_tokens() {
    let server = TestServer::start_with(
        crate::support::Backend::Sqlite,
        "token_lifetime",
        |config| {
            config.server.token_lifetime = Some(3600);
        },
    )
    .await
    .expect("sqlite is always available");
    let fresh = server.root_token().await;
    assert_eq!(server.get("/version", Some(&fresh)).await.0, StatusCode::OK);
    let old = token::sign(&Secret::new(SECRET), "root", 1_700_000_000);
    assert_error(
        &server.get("/version", Some(&old)).await,
        StatusCode::UNAUTHORIZED,
        "auth_token_invalid",
    );
    server.stop().await;
}

/// With `api_features.login` off, the login route does not exist; ping still does.
#[tokio::test]
async fn disabled_login_feature_removes_the_route() {
    let server = TestServer::start_with(crate::support::Backend::Sqlite, "login_off", |config| {
        config.api_features.login = false;
    })
    .await
    .expect("sqlite is always available");
    let answer = server
        .post_json("/auth/login", None, json!({ "secret": SECRET }))
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, "resource_not_found");
    assert_eq!(
        server.get("/features", None).await.1,
        json!({ "login": false })
    );
    let token = token::sign(&Secret::new(SECRET), "root", 1_700_000_000);
    let (status, body) = server
        .post_json("/auth/ping", Some(&token), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["features"]["login"], false);
    server.stop().await;
}
