//! `mbc login`, `mbc logout`, the config file and how servers are named.

use serde_json::json;

use crate::support::{ALICE_PASSWORD, Mbc, TestServer};

mod run {
    crate::server_test!(
        login_saves_the_token_as_maubots_mbc_does,
        login_refuses_a_bad_password,
        login_needs_a_password_without_a_terminal,
        login_takes_the_user_name_from_user,
        logout_forgets_the_token,
        an_unknown_alias_is_an_error,
        a_revoked_token_is_an_error_with_a_hint,
    );
}

async fn login_saves_the_token_as_maubots_mbc_does(server: &TestServer, mbc: &Mbc) {
    // A config written by someone else: its unknown keys survive.
    std::fs::write(
        mbc.config_path(),
        r#"{"servers": {}, "aliases": {}, "default_server": null, "future": {"x": 1}}"#,
    )
    .expect("write");
    let url = server.url();
    let out = mbc
        .run(&[
            "login",
            "-u",
            "alice",
            "-p",
            ALICE_PASSWORD,
            "-s",
            &url,
            "-a",
            "local",
        ])
        .await;
    out.assert_success();
    assert_eq!(out.stdout, "Logged in successfully\n");

    let config = mbc.config();
    let token = config["servers"][&url].as_str().expect("a token");
    assert_eq!(config["aliases"], json!({ "local": url }));
    assert_eq!(config["default_server"], url);
    assert_eq!(config["future"], json!({"x": 1}));
    assert_eq!(config.as_object().expect("object").len(), 4, "{config}");
    assert!(!out.stdout.contains(token) && !out.stderr.contains(token));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(mbc.config_path())
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    // The token is the server's.
    let (status, body) = server
        .call(reqwest::Method::POST, "/auth/ping", Some(token), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["username"], "alice");

    // A second server does not take the default; a trailing slash is not part of the URL.
    let other = TestServer::start().await;
    let other_url = other.url();
    mbc.run(&[
        "login",
        "-u",
        "alice",
        "-p",
        ALICE_PASSWORD,
        "-s",
        &format!("{other_url}/"),
    ])
    .await
    .assert_success();
    let config = mbc.config();
    assert_eq!(config["default_server"], url);
    assert!(config["servers"][&other_url].is_string(), "{config}");
    other.stop().await;
}

async fn login_refuses_a_bad_password(server: &TestServer, mbc: &Mbc) {
    let out = mbc
        .run(&["login", "-u", "alice", "-p", "wrong", "-s", &server.url()])
        .await;
    out.assert_error("Invalid username or password");
    assert!(out.stdout.is_empty(), "{out}");
    assert!(!mbc.config_path().exists());

    let out = mbc
        .run(&["login", "-u", "alice", "-p", "x", "-s", "localhost:1"])
        .await;
    out.assert_error("`localhost:1` is not a server URL");
    out.assert_hint("http://");

    // Nothing listens on port 1 (and no test server can take it: ports below 1024 are never
    // handed out for port 0).
    let gone_url = "http://127.0.0.1:1";
    let out = mbc
        .run(&["login", "-u", "alice", "-p", "x", "-s", gone_url])
        .await;
    out.assert_error(&format!("cannot reach {gone_url}"));
    out.assert_hint("is maubot running");
}

async fn login_needs_a_password_without_a_terminal(server: &TestServer, mbc: &Mbc) {
    let out = mbc
        .run(&["login", "-u", "alice", "-s", &server.url()])
        .await;
    out.assert_error("missing password (give it with --password)");
    out.assert_hint("terminal");
    assert!(!mbc.config_path().exists());
}

async fn login_takes_the_user_name_from_user(server: &TestServer, mbc: &Mbc) {
    // The harness sets USER=alice.
    mbc.run(&["login", "-p", ALICE_PASSWORD, "-s", &server.url()])
        .await
        .assert_success();
    assert!(mbc.config()["servers"][server.url()].is_string());
}

async fn logout_forgets_the_token(server: &TestServer, mbc: &Mbc) {
    mbc.login(server).await;
    let out = mbc.run(&["logout"]).await;
    out.assert_success();
    assert_eq!(out.stdout, format!("Logged out of {}\n", server.url()));
    let config = mbc.config();
    assert_eq!(config["servers"], json!({}));
    assert_eq!(config["default_server"], json!(null));

    let out = mbc.run(&["logout", "-s", &server.url()]).await;
    out.assert_error(&format!("No access token saved for {}.", server.url()));
    mbc.run(&["logout"])
        .await
        .assert_error("Default server not configured. Perhaps you forgot to mbc login?");
    mbc.run(&["upload", "x.mbp"])
        .await
        .assert_error("Default server not configured")
        .assert_hint("mbc login");
}

async fn an_unknown_alias_is_an_error(server: &TestServer, mbc: &Mbc) {
    mbc.run(&[
        "login",
        "-u",
        "alice",
        "-p",
        ALICE_PASSWORD,
        "-s",
        &server.url(),
        "-a",
        "here",
    ])
    .await
    .assert_success();
    let out = mbc.run(&["upload", "-s", "nowhere", "x.mbp"]).await;
    out.assert_error("No access token saved for nowhere.");
    out.assert_hint("neither a server URL nor an alias (there are: here)");
    mbc.run(&["logs", "nowhere"])
        .await
        .assert_error("No access token saved for nowhere.");
    mbc.run(&["auth", "--list", "-s", "nowhere"])
        .await
        .assert_error("No access token saved for nowhere.");
    // The alias works.
    let out = mbc.run(&["auth", "--list", "-s", "here"]).await;
    assert_eq!(out.code, 0, "{out}");
}

async fn a_revoked_token_is_an_error_with_a_hint(server: &TestServer, mbc: &Mbc) {
    let url = server.url();
    std::fs::write(
        mbc.config_path(),
        json!({"servers": {&url: "not-a-token"}, "aliases": {}, "default_server": &url})
            .to_string(),
    )
    .expect("write");
    let out = mbc.run(&["auth", "--list"]).await;
    out.assert_error("Invalid authorization token");
    out.assert_hint(&format!("mbc login -s {url}"));
}

#[tokio::test]
async fn usage_errors_exit_with_2_and_help_is_everywhere() {
    let mbc = Mbc::new();
    let out = mbc.run(&["login", "--bogus"]).await;
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("--bogus"), "{out}");
    let out = mbc.run(&["upload"]).await;
    assert_eq!(out.code, 2, "{out}");
    for verb in ["login", "logout", "init", "build", "upload", "auth", "logs"] {
        let out = mbc.run(&[verb, "--help"]).await;
        assert_eq!(out.code, 0, "{out}");
        assert!(out.stdout.contains("Usage: mbc"), "{out}");
    }
    let out = mbc.run(&["auth", "--help"]).await;
    assert!(out.stdout.contains("-h, --homeserver"), "{out}");
    let out = mbc.run(&["--help"]).await;
    for verb in ["login", "logout", "init", "build", "upload", "auth", "logs"] {
        assert!(out.stdout.contains(verb), "{out}");
    }
}

#[tokio::test]
async fn a_broken_config_file_is_an_error() {
    let mbc = Mbc::new();
    std::fs::write(mbc.config_path(), "{not json").expect("write");
    let out = mbc.run(&["upload", "x.mbp"]).await;
    out.assert_error("is not a valid mbc config");
    out.assert_hint("delete it");
}
