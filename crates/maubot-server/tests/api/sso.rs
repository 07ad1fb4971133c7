//! Single sign-on for bots against a Synapse that offers it. No identity provider installs from
//! a package registry, so the provider's leg is played by Synapse itself: it offers SSO through
//! CAS (pointing nowhere; the browser's trip there is not taken), and a login token for the bot's
//! account comes from Synapse's "login with an existing session" (`/login/get_token`), the same
//! kind of token an identity provider's redirect brings back. Everything of maubot-rs's part is
//! real: the redirect URL, the wait, the completion route, and the `m.login.token` login.

use std::time::Duration;

use maubot_test_support::Synapse;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::clients::{server_for, unique};
use crate::support::{Backend, TestServer, assert_error};

const SSO_CONFIG: &str = r#"
cas_config:
  enabled: true
  server_url: "http://127.0.0.1:9/cas"
login_via_existing_session:
  enabled: true
  require_ui_auth: false
  token_timeout: "5m"
"#;

/// A login token for `access_token`'s account, as an identity provider's redirect brings one.
async fn login_token(synapse: &Synapse, access_token: &str) -> String {
    let answer: Value = reqwest::Client::new()
        .post(format!(
            "{}/_matrix/client/v1/login/get_token",
            synapse.base_url()
        ))
        .bearer_auth(access_token)
        .json(&json!({}))
        .send()
        .await
        .expect("get_token")
        .json()
        .await
        .expect("json");
    answer["login_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no login token: {answer}"))
        .to_owned()
}

/// The completion route, as the browser calls it (no token): status and text.
async fn complete(server: &TestServer, id: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut url = server.api(&format!("/client/auth_external_sso/complete/{id}"));
    if let Some(token) = token {
        url.push_str(&format!("?loginToken={token}"));
    }
    let response = reqwest::get(url).await.expect("complete");
    (response.status(), response.text().await.expect("text"))
}

/// `login?sso=true`: the session's ID and SSO URL.
async fn open(server: &TestServer, token: &str) -> (String, String) {
    let (status, started) = server
        .post_json(
            "/client/auth/localhost/login?sso=true&update_client=true",
            Some(token),
            json!({ "device_name": "SSO bot" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let id = started["id"].as_str().expect("id").to_owned();
    let url = started["sso_url"].as_str().expect("sso_url").to_owned();
    (id, url)
}

fn wait(
    server: &TestServer,
    token: &str,
    id: &str,
) -> tokio::task::JoinHandle<(StatusCode, Value)> {
    let request = server
        .http
        .post(server.api(&format!("/client/auth/localhost/sso/{id}/wait")))
        .bearer_auth(token)
        .json(&json!({}));
    tokio::spawn(async move {
        let response = request.send().await.expect("wait");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_logs_in_with_single_sign_on() {
    let synapse = tokio::task::spawn_blocking(|| Synapse::start_with(SSO_CONFIG))
        .await
        .expect("join")
        .expect("a Synapse with SSO");
    let server = server_for(Backend::Sqlite, "sso", &synapse, |_| {})
        .await
        .expect("sqlite");
    let token = server.root_token().await;

    let (id, sso_url) = open(&server, &token).await;
    assert_eq!(id.len(), 16, "{id}");
    assert!(
        id.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
        "{id}"
    );
    let complete_path = format!("/_matrix/maubot/v1/client/auth_external_sso/complete/{id}");
    let expected = format!(
        "{}/_matrix/client/v3/login/sso/redirect?redirectUrl={}",
        synapse.base_url(),
        percent_encoding::utf8_percent_encode(
            &format!("http://localhost:29316{complete_path}"),
            percent_encoding::NON_ALPHANUMERIC
        )
    );
    assert_eq!(sso_url, expected);
    // The homeserver takes the URL: it sends the browser on to its identity provider.
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(&sso_url)
        .send()
        .await
        .expect("sso redirect");
    assert!(redirect.status().is_redirection(), "{}", redirect.status());

    assert_eq!(
        complete(&server, "nosuchsession000", Some("x")).await,
        (StatusCode::NOT_FOUND, "Invalid session ID\n".to_owned())
    );
    assert_eq!(
        complete(&server, &id, None).await,
        (
            StatusCode::BAD_REQUEST,
            "Missing loginToken query parameter\n".to_owned()
        )
    );

    let account = synapse
        .register(&unique("ssobot"), "sso-password", false)
        .await
        .expect("account");
    let waiting = wait(&server, &token, &id);
    let login_token = login_token(&synapse, &account.access_token).await;
    assert_eq!(
        complete(&server, &id, Some(&login_token)).await,
        (
            StatusCode::OK,
            "Login token received, please return to your Maubot client. This tab can be closed.\n"
                .to_owned()
        )
    );
    let (status, client) = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the wait ends")
        .expect("join");
    assert_eq!(status, StatusCode::CREATED, "{client}");
    assert_eq!(client["id"], account.user_id.as_str());
    assert!(
        client["device_id"]
            .as_str()
            .is_some_and(|d| d.starts_with("maubot_")),
        "{client}"
    );
    assert_eq!(
        complete(&server, &id, Some(&login_token)).await,
        (
            StatusCode::OK,
            "The login token was already received\n".to_owned()
        )
    );
    // The session is spent.
    let (status, spent) = wait(&server, &token, &id).await.expect("join");
    assert_error(
        &(status, spent),
        StatusCode::NOT_FOUND,
        "sso_session_not_found",
    );

    // A wait given up before the browser came back: the browser hears so.
    let (id, _) = open(&server, &token).await;
    let waiting = wait(&server, &token, &id);
    tokio::time::sleep(Duration::from_millis(500)).await;
    waiting.abort();
    // The server notices the closed connection and drops the wait.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        complete(&server, &id, Some("unused")).await,
        (
            StatusCode::OK,
            "The login was cancelled from the Maubot client\n".to_owned()
        )
    );

    // Registration is for passwords only.
    let (status, body) = server
        .post_json(
            "/client/auth/localhost/register?sso=true",
            Some(&token),
            json!({ "username": "x", "password": "y" }),
        )
        .await;
    assert_error(
        &(status, body),
        StatusCode::BAD_REQUEST,
        "registration_no_sso",
    );
    server.stop().await;
    drop(synapse);
}
