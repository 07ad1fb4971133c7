//! Bot accounts against a real Synapse: registration and login through the API, creating,
//! updating and deleting clients, sync, autojoin, profiles.

use std::time::Duration;

use maubot_test_support::synapse::REGISTRATION_SECRET;
use maubot_test_support::{RegisteredUser, Synapse};
use maubot_types::config::Homeserver;
use maubot_types::secret::Secret;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Backend, TestServer, assert_error, on_both_databases};

/// A server for the shared test Synapse (see [`server_for`]); tests get the homeserver itself from
/// [`Synapse::shared`], already started.
pub(crate) async fn server_for_shared_synapse(backend: Backend, test: &str) -> Option<TestServer> {
    Some(server_with_synapse(backend, test).await?.0)
}

/// A server for the shared test Synapse (see [`server_for`]).
pub(crate) async fn server_with_synapse(
    backend: Backend,
    test: &str,
) -> Option<(TestServer, &'static Synapse)> {
    server_with_synapse_and(backend, test, |_| {}).await
}

/// [`server_with_synapse`] with more changes to the config.
pub(crate) async fn server_with_synapse_and(
    backend: Backend,
    test: &str,
    adjust: impl FnOnce(&mut maubot_types::config::Config),
) -> Option<(TestServer, &'static Synapse)> {
    let synapse = tokio::task::spawn_blocking(Synapse::shared)
        .await
        .expect("synapse");
    Some((server_for(backend, test, synapse, adjust).await?, synapse))
}

/// A server whose `homeservers` has `localhost` = `synapse`, and `not-synapse`, an HTTP server
/// that answers 404 to everything (as a homeserver without Synapse's admin API and without
/// password login does to those requests).
pub(crate) async fn server_for(
    backend: Backend,
    test: &str,
    synapse: &Synapse,
    adjust: impl FnOnce(&mut maubot_types::config::Config),
) -> Option<TestServer> {
    let not_synapse = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let not_synapse_url = format!("http://{}", not_synapse.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(not_synapse, axum::Router::new()).await });
    TestServer::start_with(backend, test, |config| {
        config.homeservers.insert(
            "localhost".into(),
            Homeserver {
                url: synapse.base_url(),
                secret: Some(Secret::new(REGISTRATION_SECRET)),
            },
        );
        config.homeservers.insert(
            "not-synapse".into(),
            Homeserver {
                url: not_synapse_url,
                secret: Some(Secret::new("irrelevant")),
            },
        );
        adjust(config);
    })
    .await
}

pub(crate) fn unique(prefix: &str) -> String {
    format!("{prefix}{:08x}", rand::random::<u32>())
}

/// Polls the client until `check` holds (up to 60 s); returns its last view.
pub(crate) async fn wait_for_client(
    server: &TestServer,
    token: &str,
    id: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let path = format!("/client/{id}");
    for _ in 0..600 {
        let (status, body) = server.get(&path, Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if check(&body) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("client {id} never got {what}");
}

on_both_databases!(
    start = crate::clients::server_for_shared_synapse;
    registered_bot_syncs_with_encryption,
    bot_joins_invites_and_sets_its_profile,
    login_creates_then_updates_the_client,
    client_routes_refuse_bad_input,
    client_auth_routes_refuse_bad_input,
    delete_rules,
    proxy_acts_as_the_bot,
);
on_both_databases!(listing_and_unknown_clients);

/// A bot registered through the API, once it syncs: its ID and its view.
pub(crate) async fn syncing_bot(server: &TestServer, token: &str) -> (String, Value) {
    let bot = register_bot(server, token).await;
    let id = bot["id"].as_str().expect("id").to_owned();
    wait_for_client(server, token, &id, "sync_ok", |c| c["sync_ok"] == true).await;
    (id, bot)
}

pub(crate) async fn register_bot(server: &TestServer, token: &str) -> Value {
    let username = unique("bot");
    let (status, body) = server
        .post_json(
            "/client/auth/localhost/register?update_client=true",
            Some(token),
            json!({ "username": username, "password": "bot-password" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["id"], format!("@{username}:localhost"));
    body
}

async fn registered_bot_syncs_with_encryption(server: &TestServer) {
    let token = server.root_token().await;
    let bot = register_bot(server, &token).await;
    assert_eq!(bot["enabled"], true);
    assert_eq!(bot["started"], true);
    assert_eq!(bot["displayname"], "disable");
    assert!(
        bot["device_id"].as_str().is_some_and(|d| !d.is_empty()),
        "{bot}"
    );
    // E2EE is on for clients made by registration: the fingerprint is the device's Ed25519 key
    // in groups of four, as maubot shows it.
    let fingerprint = bot["fingerprint"]
        .as_str()
        .unwrap_or_else(|| panic!("no fingerprint: {bot}"));
    assert!(
        fingerprint.split(' ').all(|group| group.len() <= 4) && fingerprint.len() > 40,
        "{fingerprint}"
    );
    let id = bot["id"].as_str().expect("id");
    wait_for_client(server, &token, id, "sync_ok", |c| c["sync_ok"] == true).await;

    let (status, list) = server.get("/clients", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        list.as_array().expect("list").iter().any(|c| c["id"] == id),
        "{list}"
    );
}

async fn bot_joins_invites_and_sets_its_profile(server: &TestServer) {
    let synapse = Synapse::shared();
    let token = server.root_token().await;
    let bot = register_bot(server, &token).await;
    let id = bot["id"].as_str().expect("id").to_owned();

    let (status, body) = server
        .send(
            server
                .http
                .put(server.api(&format!("/client/{id}")))
                .json(&json!({ "displayname": "Echo Bot" })),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["displayname"], "Echo Bot");
    wait_for_client(server, &token, &id, "its display name", |c| {
        c["remote_displayname"] == "Echo Bot"
    })
    .await;

    let tester = synapse
        .register(&unique("tester"), "tester-password", false)
        .await
        .expect("tester");
    let room_id = create_room(synapse, &tester, &id, "private_chat").await;
    assert!(
        joins(synapse, &tester, &room_id, &id).await,
        "{id} did not join the room it was invited to"
    );
}

/// A client-server API call to `synapse` as `token`; the answer's JSON.
pub(crate) async fn matrix_call(
    synapse: &Synapse,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> Value {
    reqwest::Client::new()
        .request(
            method,
            format!("{}/_matrix/client/v3/{path}", synapse.base_url()),
        )
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A room made by `tester` with `invite` invited; `preset` as in `createRoom`.
pub(crate) async fn create_room(
    synapse: &Synapse,
    tester: &RegisteredUser,
    invite: &str,
    preset: &str,
) -> String {
    let body = json!({ "invite": [invite], "preset": preset, "room_version": "10" });
    let created = matrix_call(
        synapse,
        &tester.access_token,
        reqwest::Method::POST,
        "createRoom",
        body,
    )
    .await;
    created["room_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_owned()
}

/// Whether `user` joins `room` within 30 s, as `tester` sees it.
pub(crate) async fn joins(
    synapse: &Synapse,
    tester: &RegisteredUser,
    room: &str,
    user: &str,
) -> bool {
    for _ in 0..300 {
        let path = format!("rooms/{room}/joined_members");
        let members = matrix_call(
            synapse,
            &tester.access_token,
            reqwest::Method::GET,
            &path,
            json!({}),
        )
        .await;
        if members["joined"].get(user).is_some() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn login_creates_then_updates_the_client(server: &TestServer) {
    let synapse = Synapse::shared();
    let token = server.root_token().await;
    let username = unique("login");
    synapse
        .register(&username, "login-password", false)
        .await
        .expect("register");
    let body = json!({ "username": username, "password": "login-password" });

    // Without update_client: the homeserver's login answer.
    let (status, login) = server
        .post_json("/client/auth/localhost/login", Some(&token), body.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert!(
        login["device_id"]
            .as_str()
            .is_some_and(|d| d.starts_with("maubot_")),
        "{login}"
    );
    assert!(login["access_token"].is_string());

    let (status, created) = server
        .post_json(
            "/client/auth/localhost/login?update_client=true",
            Some(&token),
            body.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, updated) = server
        .post_json(
            "/client/auth/localhost/login?update_client=yes",
            Some(&token),
            body,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{updated}");
    assert_eq!(created["id"], updated["id"]);
    assert_ne!(
        created["device_id"], updated["device_id"],
        "a new login is a new device"
    );
    // The store held the first device's keys; the client resets them and runs on the new device.
    let id = updated["id"].as_str().expect("id");
    let view = wait_for_client(server, &token, id, "sync_ok on the new device", |c| {
        c["sync_ok"] == true && c["started"] == true
    })
    .await;
    assert_ne!(view["fingerprint"], created["fingerprint"], "{view}");
    assert!(view["fingerprint"].is_string(), "{view}");
}

async fn client_routes_refuse_bad_input(server: &TestServer) {
    let synapse = Synapse::shared();
    let token = server.root_token().await;
    let homeserver = synapse.base_url();
    let alice = synapse
        .register(&unique("alice"), "pw", false)
        .await
        .expect("register");

    let answer = server
        .post_json(
            "/client/new",
            Some(&token),
            json!({ "homeserver": homeserver, "access_token": "nope" }),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "bad_client_access_token");
    let answer = server
        .post_json(
            "/client/new",
            Some(&token),
            json!({ "homeserver": "http://127.0.0.1:1", "access_token": "x" }),
        )
        .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_client_connection_details",
    );
    let answer = server
        .post_json(
            "/client/new",
            Some(&token),
            json!({ "homeserver": homeserver }),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_request_body");
    let answer = server
        .post_json(
            "/client/new",
            Some(&token),
            json!({ "homeserver": homeserver, "access_token": "x", "enabled": "yes" }),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_request_body");
    let answer = server
        .post_raw("/client/new", Some(&token), "{not json")
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "body_not_json");

    // A token of another user than the path names.
    let put = |id: &str, body: Value| {
        server
            .http
            .put(server.api(&format!("/client/{id}")))
            .json(&body)
    };
    let answer = server
        .send(
            put(
                "@someone-else:localhost",
                json!({ "homeserver": homeserver, "access_token": alice.access_token }),
            ),
            Some(&token),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "mxid_mismatch");
    assert!(
        answer.1["error"]
            .as_str()
            .unwrap_or_default()
            .contains(&alice.user_id)
    );
    // ... and of another device than the body names (maubot's errcode here is mxid_mismatch too).
    let answer = server
        .send(put(&alice.user_id, json!({ "homeserver": homeserver, "access_token": alice.access_token, "device_id": "OTHERDEVICE" })), Some(&token))
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "mxid_mismatch");

    // Nothing was stored by the refused requests.
    assert_error(
        &server
            .get(&format!("/client/{}", alice.user_id), Some(&token))
            .await,
        StatusCode::NOT_FOUND,
        "client_not_found",
    );

    let good =
        json!({ "homeserver": homeserver, "access_token": alice.access_token, "sync": false });
    let (status, created) = server
        .post_json("/client/new", Some(&token), good.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["id"], alice.user_id.as_str());
    assert_eq!(
        created["device_id"], "",
        "no device_id given: no encryption"
    );
    assert_eq!(created["fingerprint"], Value::Null);
    assert_error(
        &server.post_json("/client/new", Some(&token), good).await,
        StatusCode::CONFLICT,
        "user_exists",
    );

    let (status, updated) = server
        .send(
            put(
                &alice.user_id,
                json!({ "autojoin": false, "online": false }),
            ),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["autojoin"], false);
    assert_eq!(updated["online"], false);

    let (status, body) = server
        .post_json(
            &format!("/client/{}/clearcache", alice.user_id),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "success": true }));
    assert_error(
        &server
            .post_json(
                "/client/@nobody:localhost/clearcache",
                Some(&token),
                json!({}),
            )
            .await,
        StatusCode::NOT_FOUND,
        "client_not_found",
    );
}

async fn client_auth_routes_refuse_bad_input(server: &TestServer) {
    let synapse = Synapse::shared();
    let token = server.root_token().await;
    let (status, servers) = server.get("/client/auth/servers", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(servers["localhost"], synapse.base_url());

    let credentials = json!({ "username": unique("x"), "password": "pw" });
    let answer = server
        .post_json(
            "/client/auth/nowhere/register",
            Some(&token),
            credentials.clone(),
        )
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, "server_not_found");
    let answer = server
        .post_json(
            "/client/auth/matrix.org/register",
            Some(&token),
            credentials.clone(),
        )
        .await;
    assert_error(
        &answer,
        StatusCode::NOT_FOUND,
        "registration_secret_not_found",
    );
    let answer = server
        .post_json(
            "/client/auth/localhost/register",
            Some(&token),
            json!({ "username": "x" }),
        )
        .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "username_or_password_missing",
    );
    let answer = server
        .post_json(
            "/client/auth/localhost/register?sso=true",
            Some(&token),
            credentials.clone(),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "registration_no_sso");
    let answer = server
        .post_raw("/client/auth/localhost/register", Some(&token), "[]")
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "body_not_json");

    // A taken username: the homeserver's errcode, with its status, as maubot reports it.
    let taken = synapse
        .register(&unique("taken"), "pw", false)
        .await
        .expect("register");
    let localpart = taken
        .user_id
        .trim_start_matches('@')
        .split(':')
        .next()
        .expect("localpart");
    let answer = server
        .post_json(
            "/client/auth/localhost/register",
            Some(&token),
            json!({ "username": localpart, "password": "pw" }),
        )
        .await;
    assert_error(&answer, StatusCode::INTERNAL_SERVER_ERROR, "M_USER_IN_USE");
    assert_eq!(answer.1["http_status"], 400);

    // A wrong password: the homeserver's status and errcode.
    let answer = server
        .post_json(
            "/client/auth/localhost/login",
            Some(&token),
            json!({ "username": localpart, "password": "wrong" }),
        )
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    // Without Synapse's admin API or password login: clear errors, not maubot's bare 500s
    // (maubot issues #273, #283).
    let answer = server
        .post_json(
            "/client/auth/not-synapse/register",
            Some(&token),
            credentials.clone(),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "registration_unsupported");
    let answer = server
        .post_json("/client/auth/not-synapse/login", Some(&token), credentials)
        .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "password_login_unsupported",
    );

    // Single sign-on on homeservers that offer none (the test Synapse has no identity
    // provider; `sso.rs` has one with).
    for server_name in ["localhost", "not-synapse"] {
        let answer = server
            .post_json(
                &format!("/client/auth/{server_name}/login?sso=true"),
                Some(&token),
                json!({}),
            )
            .await;
        assert_error(&answer, StatusCode::FORBIDDEN, "sso_not_supported");
    }
}

async fn delete_rules(server: &TestServer) {
    let synapse = Synapse::shared();
    let token = server.root_token().await;
    let user = synapse
        .register(&unique("del"), "pw", false)
        .await
        .expect("register");
    let body = json!({ "homeserver": synapse.base_url(), "access_token": user.access_token });
    let (status, _) = server.post_json("/client/new", Some(&token), body).await;
    assert_eq!(status, StatusCode::CREATED);

    // An instance on the client blocks deletion.
    let db = &server.running.state().db;
    maubot_server::with_pool!(db, |pool| {
        sqlx::query("INSERT INTO instance (id, type, enabled, primary_user, config) VALUES ('inst', 't', true, $1, '')")
            .bind(&user.user_id)
            .execute(pool)
            .await
            .map(drop)
    })
    .expect("insert instance");
    let delete = || {
        server
            .http
            .delete(server.api(&format!("/client/{}", user.user_id)))
    };
    assert_error(
        &server.send(delete(), Some(&token)).await,
        StatusCode::PRECONDITION_FAILED,
        "client_in_use",
    );
    maubot_server::with_pool!(db, |pool| sqlx::query("DELETE FROM instance")
        .execute(pool)
        .await
        .map(drop))
    .expect("delete");

    let (status, _) = server.send(delete(), Some(&token)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(
        &server
            .get(&format!("/client/{}", user.user_id), Some(&token))
            .await,
        StatusCode::NOT_FOUND,
        "client_not_found",
    );
    assert_error(
        &server.send(delete(), Some(&token)).await,
        StatusCode::NOT_FOUND,
        "client_not_found",
    );
}

async fn listing_and_unknown_clients(server: &TestServer) {
    let token = server.root_token().await;
    assert_eq!(
        server.get("/clients", Some(&token)).await,
        (StatusCode::OK, json!([]))
    );
    assert_error(
        &server.get("/client/@nobody:localhost", Some(&token)).await,
        StatusCode::NOT_FOUND,
        "client_not_found",
    );
    assert_error(
        &server.get("/clients", None).await,
        StatusCode::UNAUTHORIZED,
        "auth_token_missing",
    );
}

/// maubot's bots stop after homeserver hiccups (#55, #74); ours notice (`sync_ok` false) and come
/// back by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_recovers_when_the_homeserver_returns() {
    let synapse = tokio::task::spawn_blocking(Synapse::start)
        .await
        .expect("join")
        .expect("own synapse");
    let server = server_for(Backend::Sqlite, "sync_recovers", &synapse, |_| {})
        .await
        .expect("sqlite");
    let token = server.root_token().await;
    let (id, _) = syncing_bot(&server, &token).await;

    let synapse = tokio::task::spawn_blocking(move || {
        synapse.stop();
        synapse
    })
    .await
    .expect("join");
    // The view says why: the failed sync's error.
    let failing = wait_for_client(&server, &token, &id, "sync_ok false", |c| {
        c["sync_ok"] == false && c["sync_error"].is_string()
    })
    .await;
    assert!(
        !failing["sync_error"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{failing}"
    );
    let synapse = tokio::task::spawn_blocking(move || synapse.resume().map(|()| synapse))
        .await
        .expect("join")
        .expect("resume");
    let resumed = std::time::Instant::now();
    let view = wait_for_client(&server, &token, &id, "sync_ok again", |c| {
        c["sync_ok"] == true
    })
    .await;
    // The backoff stops at 25 s, so that a bot is back soon after its homeserver.
    assert!(
        resumed.elapsed() <= Duration::from_secs(30),
        "synced {:?} after the homeserver was back",
        resumed.elapsed()
    );
    assert_eq!(view["enabled"], true);
    assert_eq!(view["started"], true);
    assert_eq!(view["sync_error"], serde_json::Value::Null, "{view}");
    server.stop().await;
    drop(synapse);
}

/// A tester (a real matrix-sdk client with its own keys) in a new encrypted room with the bot.
pub(crate) struct EncryptedRoom {
    pub tester: matrix_sdk::Client,
    pub room: matrix_sdk::Room,
    /// Short syncs for polling.
    pub quick: matrix_sdk::config::SyncSettings,
    /// The messages the tester receives: sender, body, and whether it came encrypted.
    pub received: tokio::sync::mpsc::UnboundedReceiver<(String, String, bool)>,
}

impl EncryptedRoom {
    /// Says `text` (encrypted) and waits for a message from `sender` that ends with `ending`:
    /// whether it came encrypted, or `None` if none came.
    pub(crate) async fn ask(&mut self, text: &str, sender: &str, ending: &str) -> Option<bool> {
        use matrix_sdk::ruma::events::room::message::RoomMessageEventContent;

        let sent = self
            .room
            .send(RoomMessageEventContent::text_plain(text))
            .await
            .expect("send");
        assert!(
            sent.encryption_info.is_some(),
            "the tester's {text:?} went out unencrypted"
        );
        for _ in 0..120 {
            self.tester
                .sync_once(self.quick.clone())
                .await
                .expect("sync");
            while let Ok((from, body, encrypted)) = self.received.try_recv() {
                if from == sender && body.ends_with(ending) {
                    return Some(encrypted);
                }
            }
        }
        None
    }
}

/// Registers a tester, creates an encrypted room inviting the bot and waits until it joined.
pub(crate) async fn encrypted_room_with(synapse: &Synapse, bot_id: &str) -> EncryptedRoom {
    use matrix_sdk::config::SyncSettings;
    use matrix_sdk::deserialized_responses::EncryptionInfo;
    use matrix_sdk::ruma::api::client::room::create_room::v3::{
        Request as CreateRoomRequest, RoomPreset,
    };
    use matrix_sdk::ruma::events::InitialStateEvent;
    use matrix_sdk::ruma::events::room::encryption::RoomEncryptionEventContent;
    use matrix_sdk::ruma::events::room::member::MembershipState;
    use matrix_sdk::ruma::events::room::message::OriginalSyncRoomMessageEvent;
    use matrix_sdk::ruma::{OwnedUserId, assign};

    let tester_name = unique("tester");
    synapse
        .register(&tester_name, "tester-password", false)
        .await
        .expect("tester");
    let tester = matrix_sdk::Client::builder()
        .homeserver_url(synapse.base_url())
        .build()
        .await
        .expect("client");
    tester
        .matrix_auth()
        .login_username(&tester_name, "tester-password")
        .send()
        .await
        .expect("login");
    let quick = SyncSettings::default().timeout(Duration::from_millis(500));
    tester.sync_once(quick.clone()).await.expect("sync");
    let (received_tx, received) = tokio::sync::mpsc::unbounded_channel();
    tester.add_event_handler(
        move |event: OriginalSyncRoomMessageEvent, encryption: Option<EncryptionInfo>| {
            let received_tx = received_tx.clone();
            async move {
                let _ = received_tx.send((
                    event.sender.to_string(),
                    event.content.body().to_owned(),
                    encryption.is_some(),
                ));
            }
        },
    );

    let bot_user: OwnedUserId = bot_id.parse().expect("user id");
    let request = assign!(CreateRoomRequest::new(), {
        invite: vec![bot_user.clone()],
        preset: Some(RoomPreset::PrivateChat),
        initial_state: vec![
            InitialStateEvent::with_empty_state_key(RoomEncryptionEventContent::with_recommended_defaults()).to_raw_any(),
        ],
    });
    let room = tester.create_room(request).await.expect("create room");
    for _ in 0..120 {
        tester.sync_once(quick.clone()).await.expect("sync");
        let member = room.get_member_no_sync(&bot_user).await.expect("member");
        if member.is_some_and(|m| *m.membership() == MembershipState::Join) {
            return EncryptedRoom {
                tester,
                room,
                quick,
                received,
            };
        }
    }
    panic!("the bot did not join the encrypted room");
}

/// Encrypted rooms: the bot decrypts what a user sends, and what a plugin sends through it is
/// encrypted; its keys (in the main database) survive a restart of the server, and a plugin
/// that sends right after the restart, before the bot has synced, still sends encrypted.
mod encrypted_rooms_work_both_ways_and_across_restarts {
    use crate::support::Backend;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::encrypted_rooms_work_both_ways_and_across_restarts(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::encrypted_rooms_work_both_ways_and_across_restarts(Backend::Postgres).await;
    }
}

async fn encrypted_rooms_work_both_ways_and_across_restarts(backend: Backend) {
    use matrix_sdk::ruma::events::room::message::RoomMessageEventContent;
    use matrix_sdk::ruma::events::{AnySyncMessageLikeEvent, AnySyncTimelineEvent};

    let Some((server, synapse)) = server_with_synapse(backend, "e2ee").await else {
        return;
    };
    let token = server.root_token().await;
    let (bot_id, _) = syncing_bot(&server, &token).await;

    let EncryptedRoom {
        tester,
        room,
        quick,
        mut received,
    } = encrypted_room_with(synapse, &bot_id).await;

    // Sends a text as the tester and waits for the bot's event stream to show it, decrypted.
    async fn user_says(server: &TestServer, bot_id: &str, room: &matrix_sdk::Room, text: &str) {
        let bot = server
            .running
            .state()
            .clients
            .get(bot_id)
            .await
            .expect("bot");
        let mut events = bot.subscribe();
        let sent = room
            .send(RoomMessageEventContent::text_plain(text))
            .await
            .expect("send");
        assert!(
            sent.encryption_info.is_some(),
            "the tester's message went out unencrypted"
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let event = tokio::time::timeout_at(deadline, events.recv())
                .await
                .unwrap_or_else(|_| panic!("the bot never saw `{text}` decrypted"))
                .expect("event stream");
            if let maubot_server::client::BotEvent::Timeline { event, .. } = &event.event
                && let Ok(AnySyncTimelineEvent::MessageLike(AnySyncMessageLikeEvent::RoomMessage(
                    message,
                ))) = event.deserialize()
                && message
                    .as_original()
                    .is_some_and(|m| m.content.body() == text)
            {
                return;
            }
        }
    }

    // Sends `text` as a plugin does (the runtime's request path), and waits until the tester has
    // it: it must have come encrypted.
    async fn plugin_says(
        server: &TestServer,
        bot_id: &str,
        room: &matrix_sdk::Room,
        tester: &matrix_sdk::Client,
        quick: &matrix_sdk::config::SyncSettings,
        received: &mut tokio::sync::mpsc::UnboundedReceiver<(String, String, bool)>,
        text: &str,
    ) {
        let state = server.running.state();
        let bot = state.clients.get(bot_id).await.expect("bot");
        let request = serde_json::from_value(json!({
            "method": "PUT",
            "path": format!(
                "/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
                room.room_id(),
                unique("txn")
            ),
            "body": { "msgtype": "m.text", "body": text },
        }))
        .expect("request");
        let response =
            maubot_server::runtime::matrix::perform(&bot, state.clients.http(), request).await;
        assert_eq!(response.status, 200, "{}", response.body);
        for _ in 0..120 {
            tester.sync_once(quick.clone()).await.expect("sync");
            while let Ok((sender, body, encrypted)) = received.try_recv() {
                if sender == bot_id && body == text {
                    assert!(
                        encrypted,
                        "the bot sent `{text}` into an encrypted room unencrypted"
                    );
                    return;
                }
            }
        }
        panic!("the tester never got `{text}`");
    }

    user_says(&server, &bot_id, &room, "secret hello").await;
    plugin_says(
        &server,
        &bot_id,
        &room,
        &tester,
        &quick,
        &mut received,
        "pong",
    )
    .await;

    // After a restart: same device keys, and a plugin sending at once (before the bot's first
    // sync has told it which rooms are encrypted) still sends encrypted.
    let fingerprint = server
        .get(&format!("/client/{bot_id}"), Some(&token))
        .await
        .1["fingerprint"]
        .clone();
    let server = server.restart().await;
    plugin_says(
        &server,
        &bot_id,
        &room,
        &tester,
        &quick,
        &mut received,
        "pong after restart",
    )
    .await;
    let token = server.root_token().await;
    let view = wait_for_client(&server, &token, &bot_id, "sync_ok after restart", |c| {
        c["sync_ok"] == true
    })
    .await;
    assert_eq!(
        view["fingerprint"], fingerprint,
        "the bot's keys changed across a restart"
    );
    user_says(&server, &bot_id, &room, "still secret").await;
    server.stop().await;
}

async fn proxy_acts_as_the_bot(server: &TestServer) {
    let token = server.root_token().await;
    let bot = register_bot(server, &token).await;
    let id = bot["id"].as_str().expect("id").to_owned();
    let proxy = |path: &str| server.api(&format!("/proxy/{id}/{path}"));

    // The homeserver sees the bot's token, not the admin's.
    let (status, whoami) = server
        .send(
            server.http.get(proxy("_matrix/client/v3/account/whoami")),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{whoami}");
    assert_eq!(whoami["user_id"], id.as_str());

    // What the web UI does with avatars: upload, then show with ?access_token= in an <img>.
    let image = b"\x89PNG\r\n\x1a\nnot really a picture".to_vec();
    let upload = server
        .http
        .post(format!(
            "{}?access_token={token}&filename=a.png",
            proxy("_matrix/media/v3/upload")
        ))
        .header("Content-Type", "image/png")
        .body(image.clone());
    let (status, uploaded) = server.send(upload, None).await;
    assert_eq!(status, StatusCode::OK, "{uploaded}");
    let uri = uploaded["content_uri"].as_str().expect("content_uri");
    let media = uri.strip_prefix("mxc://").expect("an mxc URI");
    let download = format!(
        "{}?access_token={token}",
        proxy(&format!("_matrix/client/v1/media/download/{media}"))
    );
    let response = server.http.get(download).send().await.expect("download");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.bytes().await.expect("bytes").as_ref(),
        image.as_slice()
    );

    // ... and make it the bot's avatar.
    let set_avatar = server
        .http
        .put(server.api(&format!("/client/{id}")))
        .json(&json!({ "avatar_url": uri }));
    let (status, body) = server.send(set_avatar, Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_for_client(server, &token, &id, "its avatar", |c| {
        c["remote_avatar_url"] == uri
    })
    .await;

    assert_error(
        &server
            .get(
                &format!("/proxy/{id}/_matrix/client/v3/account/whoami"),
                None,
            )
            .await,
        StatusCode::UNAUTHORIZED,
        "auth_token_missing",
    );
    assert_error(
        &server
            .get(
                "/proxy/@nobody:localhost/_matrix/client/versions",
                Some(&token),
            )
            .await,
        StatusCode::NOT_FOUND,
        "client_not_found",
    );
    assert_error(
        &server
            .get(&format!("/proxy/{id}/not_matrix/x"), Some(&token))
            .await,
        StatusCode::NOT_FOUND,
        "resource_not_found",
    );
    // Regression: the check ran on the decoded path, so this reached Synapse's admin API.
    // (Plain dot segments and backslashes are resolved by the client's URL parser already.)
    assert_error(
        &server
            .get(
                &format!("/proxy/{id}/_matrix/..%2F_synapse/admin/v1/server_version"),
                Some(&token),
            )
            .await,
        StatusCode::NOT_FOUND,
        "resource_not_found",
    );
}

/// Cross-signing through the API: a recovery key is generated once, and verifies the device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_key_generation_and_verification() {
    let (server, _) = server_with_synapse(Backend::Sqlite, "recovery")
        .await
        .expect("sqlite");
    let token = server.root_token().await;
    let (id, bot) = syncing_bot(&server, &token).await;
    assert_eq!(
        bot["trust_state"],
        Value::Null,
        "a new device is unverified, which maubot shows as null"
    );

    let generate = format!("/client/{id}/generate_recovery_key");
    let (status, body) = server.post_json(&generate, Some(&token), json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["success"], true);
    let recovery_key = body["recovery_key"]
        .as_str()
        .expect("recovery_key")
        .to_owned();
    let (_, view) = server.get(&format!("/client/{id}"), Some(&token)).await;
    assert_eq!(view["trust_state"], "cross-signed-trusted", "{view}");

    assert_error(
        &server.post_json(&generate, Some(&token), json!({})).await,
        StatusCode::CONFLICT,
        "client_has_keys",
    );

    let verify = format!("/client/{id}/verify");
    let (status, body) = server
        .post_json(
            &verify,
            Some(&token),
            json!({ "recovery_key": recovery_key }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({ "success": true }));
    let answer = server
        .post_json(
            &verify,
            Some(&token),
            json!({ "recovery_key": "EsT1 not a key" }),
        )
        .await;
    assert_error(
        &answer,
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_crypto_error",
    );
    let answer = server.post_json(&verify, Some(&token), json!({})).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_request_body");
    let answer = server
        .post_json(
            "/client/@nobody:localhost/verify",
            Some(&token),
            json!({ "recovery_key": "x" }),
        )
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, "client_not_found");
    server.stop().await;
}

/// A token revoked at the homeserver disables the client (with a log line), instead of retrying
/// forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_disables_the_client() {
    let (server, synapse) = server_with_synapse(Backend::Sqlite, "revoked")
        .await
        .expect("sqlite");
    let token = server.root_token().await;
    let (id, bot) = syncing_bot(&server, &token).await;
    let bot_token = bot["access_token"].as_str().expect("token");
    matrix_call(
        synapse,
        bot_token,
        reqwest::Method::POST,
        "logout",
        json!({}),
    )
    .await;
    let view = wait_for_client(&server, &token, &id, "disabled", |c| c["enabled"] == false).await;
    assert_eq!(view["sync_ok"], false);
    assert_eq!(
        view["sync_error"], "Invalid access token: the client was disabled",
        "{view}"
    );
    server.stop().await
}

/// After a room upgrade by someone allowed to invite, the bot moves to the new room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_follows_room_upgrades() {
    let (server, synapse) = server_with_synapse(Backend::Sqlite, "tombstone")
        .await
        .expect("sqlite");
    let token = server.root_token().await;
    let bot = register_bot(&server, &token).await;
    let id = bot["id"].as_str().expect("id").to_owned();
    let tester = synapse
        .register(&unique("upgrader"), "pw", false)
        .await
        .expect("tester");
    // Public, so that the replacement room can be joined without a new invite.
    let old_room = create_room(synapse, &tester, &id, "public_chat").await;
    assert!(
        joins(synapse, &tester, &old_room, &id).await,
        "the bot did not join the first room"
    );

    let path = format!("rooms/{old_room}/upgrade");
    let upgraded = matrix_call(
        synapse,
        &tester.access_token,
        reqwest::Method::POST,
        &path,
        json!({ "new_version": "11" }),
    )
    .await;
    let new_room = upgraded["replacement_room"]
        .as_str()
        .unwrap_or_else(|| panic!("{upgraded}"));
    assert!(
        joins(synapse, &tester, new_room, &id).await,
        "the bot did not follow the upgrade"
    );
    server.stop().await
}
