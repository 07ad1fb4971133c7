//! `mbc auth` against a real Synapse: listing homeservers, registering and logging in bot
//! accounts, with and without making them clients.

use maubot_test_support::Synapse;

use crate::support::{Mbc, TestServer, server_with_synapse, unique};

macro_rules! synapse_test {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let server = server_with_synapse().await;
            let mbc = Mbc::new();
            mbc.login(&server).await;
            super::$name(&server, &mbc).await;
            server.stop().await;
        }
    )*};
}

mod run {
    use super::*;
    synapse_test!(
        auth_lists_the_homeservers,
        auth_registers_and_logs_in_with_update_client,
        auth_without_update_client_prints_the_login,
        auth_failures,
    );
}

async fn auth_lists_the_homeservers(server: &TestServer, mbc: &Mbc) {
    let out = mbc.run(&["auth", "--list"]).await;
    out.assert_success();
    let synapse = Synapse::shared().base_url();
    assert_eq!(
        out.stdout,
        format!(
            "Available Matrix servers for registration and login:\n* localhost ({synapse})\n* nosecret ({synapse})\n"
        )
    );
    let out = mbc.run(&["auth", "-l", "-s", &server.url()]).await;
    out.assert_success();
}

async fn auth_registers_and_logs_in_with_update_client(server: &TestServer, mbc: &Mbc) {
    let username = unique("mbcbot");
    let user_id = format!("@{username}:localhost");
    let out = mbc
        .run(&[
            "auth",
            "-h",
            "localhost",
            "-u",
            &username,
            "-p",
            "bot-password",
            "-r",
            "-c",
        ])
        .await;
    out.assert_success();
    let (status, client) = server.get(&format!("/client/{user_id}")).await;
    assert_eq!(status, 200, "{client}");
    let device = client["device_id"].as_str().expect("device");
    assert_eq!(
        out.stdout,
        format!("Successfully created client for {user_id} / {device}\n")
    );

    // Logging in again updates the client with the new device.
    let out = mbc
        .run(&[
            "auth",
            "--homeserver",
            "localhost",
            "--username",
            &username,
            "--password",
            "bot-password",
            "--update-client",
            "--device-name",
            "mbc test",
        ])
        .await;
    out.assert_success();
    let (_, client) = server.get(&format!("/client/{user_id}")).await;
    let new_device = client["device_id"].as_str().expect("device");
    assert_ne!(new_device, device);
    assert_eq!(
        out.stdout,
        format!("Successfully updated client for {user_id} / {new_device}\n")
    );
}

async fn auth_without_update_client_prints_the_login(server: &TestServer, mbc: &Mbc) {
    let username = unique("mbcuser");
    let user_id = format!("@{username}:localhost");
    let out = mbc
        .run(&[
            "auth",
            "-h",
            "localhost",
            "-u",
            &username,
            "-p",
            "pw",
            "--register",
        ])
        .await;
    out.assert_success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], format!("Successfully registered {user_id}."));
    let token = lines[1].strip_prefix("Access token: ").expect("token line");
    assert!(
        lines[2].starts_with("Device ID: ") && lines[2].len() > 11,
        "{out}"
    );
    // No client was made, and the token is the account's.
    let (status, _) = server.get(&format!("/client/{user_id}")).await;
    assert_eq!(status, 404);
    let whoami: serde_json::Value = server
        .http
        .get(format!(
            "{}/_matrix/client/v3/account/whoami",
            Synapse::shared().base_url()
        ))
        .bearer_auth(token)
        .send()
        .await
        .expect("whoami")
        .json()
        .await
        .expect("JSON");
    assert_eq!(whoami["user_id"], user_id);

    let out = mbc
        .run(&["auth", "-h", "localhost", "-u", &username, "-p", "pw"])
        .await;
    out.assert_success();
    assert!(
        out.stdout.starts_with(&format!(
            "Successfully logged in as {user_id}.\nAccess token: "
        )),
        "{out}"
    );
}

async fn auth_failures(_server: &TestServer, mbc: &Mbc) {
    mbc.run(&["auth", "-h", "nope", "-u", "x", "-p", "y"])
        .await
        .assert_error("has no homeserver named `nope`")
        .assert_hint("mbc auth --list");
    mbc.run(&["auth", "-h", "nosecret", "-u", "x", "-p", "y", "-r"])
        .await
        .assert_error("Config does not have a registration secret for that server")
        .assert_hint("registration_shared_secret");
    let username = unique("mbcpw");
    mbc.run(&[
        "auth",
        "-h",
        "localhost",
        "-u",
        &username,
        "-p",
        "right",
        "-r",
    ])
    .await
    .assert_success();
    mbc.run(&["auth", "-h", "localhost", "-u", &username, "-p", "wrong"])
        .await
        .assert_error("Invalid username or password");
    mbc.run(&[
        "auth",
        "-h",
        "localhost",
        "-u",
        &username,
        "-p",
        "right",
        "-r",
    ])
    .await
    .assert_error("taken");
    mbc.run(&["auth", "-h", "localhost", "--sso"])
        .await
        .assert_error("That server does not seem to support single sign-on");
    mbc.run(&["auth", "-h", "localhost", "-u", &username])
        .await
        .assert_error("missing password (give it with --password)");
    mbc.run(&["auth", "-u", &username, "-p", "right"])
        .await
        .assert_error("missing homeserver (give it with --homeserver)");
}
