//! WebAssembly plugins end to end, built from source in the test run (`examples/wasm` and the
//! hostile plugins of `tests/wasm-plugins`) and uploaded like any `.mbp`: the examples answer in
//! a plain and an encrypted room, keep their state and pending timers across a restart and
//! serve their web app, on both databases; each hostile plugin is contained to its own instance
//! while another instance keeps answering; a plugin replaced while messages arrive answers every
//! one of them.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use maubot_test_support::{Synapse, wasm};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::clients::{
    create_room, encrypted_room_with, joins, matrix_call, server_with_synapse_and, syncing_bot,
    unique,
};
use crate::plugins::{Room, create_instance, put_instance, upload, wait_for_instance};
use crate::support::{Backend, TestServer};

const PING: &str = "xyz.maubot-rs.example.ping";
const COUNTER: &str = "xyz.maubot-rs.example.counter";
const WEBHOOK: &str = "xyz.maubot-rs.example.webhook";

/// A server for the shared test Synapse that takes archives of WebAssembly plugins (a few hundred
/// KB; the test config's limit is 4 KiB).
async fn wasm_server(backend: Backend, test: &str) -> Option<(TestServer, &'static Synapse)> {
    server_with_synapse_and(backend, test, |config| {
        config.server.max_body_size = 4 * 1024 * 1024;
    })
    .await
}

/// Builds a plugin project for wasm32-wasip2 (or finds it built) and reads its archive.
async fn built(project: PathBuf) -> Vec<u8> {
    tokio::task::spawn_blocking(move || {
        std::fs::read(wasm::build(&project)).expect("the built archive")
    })
    .await
    .expect("build task")
}

async fn upload_built(server: &TestServer, token: &str, project: PathBuf) -> Value {
    let (status, plugin) =
        upload(server, token, built(project).await, "?allow_override=true").await;
    assert!(status.is_success(), "{status}: {plugin}");
    plugin
}

/// The room's messages from `sender` whose body `check` accepts, newest first.
async fn messages_from(room: &Room, sender: &str, check: impl Fn(&str) -> bool) -> Vec<Value> {
    room.messages_from(sender, |e| {
        e["content"]["body"].as_str().is_some_and(&check)
    })
    .await
}

mod wasm_examples_answer_keep_their_state_and_serve_their_web_app {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        if let Some((server, _)) = wasm_server(Backend::Sqlite, "wasm_examples").await {
            examples(server).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some((server, _)) = wasm_server(Backend::Postgres, "wasm_examples").await {
            examples(server).await;
        }
    }
}

/// The examples, on a server that is restarted (and stopped at the end).
async fn examples(server: TestServer) {
    let synapse = Synapse::shared();
    let token = server.root_token().await;
    let (bot, _) = syncing_bot(&server, &token).await;
    let room = Room::with_bot(synapse, &bot).await;
    upload_built(&server, &token, wasm::example("ping")).await;
    upload_built(&server, &token, wasm::example("counter")).await;
    upload_built(&server, &token, wasm::example("webhook")).await;
    create_instance(&server, &token, "ping1", PING, &bot).await;
    let counter = create_instance(&server, &token, "counter1", COUNTER, &bot).await;
    assert!(
        counter["config"]
            .as_str()
            .is_some_and(|c| c.contains("greeting: Hello from the counter!")),
        "the base config: {counter}"
    );
    create_instance(&server, &token, "hook1", WEBHOOK, &bot).await;
    // A config that lacks a key of the base config gets it; its own keys stay. (The instance
    // is disabled, so that one counter answers the commands below.)
    let (status, partial) = put_instance(
        &server,
        &token,
        "counter-partial",
        json!({ "type": COUNTER, "primary_user": bot, "config": "note: mine\n" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{partial}");
    let config = partial["config"].as_str().unwrap_or_default();
    assert!(
        config.contains("note: mine") && config.contains("greeting: Hello from the counter!"),
        "{partial}"
    );
    let (status, disabled) = put_instance(
        &server,
        &token,
        "counter-partial",
        json!({ "enabled": false }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{disabled}");
    assert_eq!(disabled["config"], partial["config"], "{disabled}");

    // Commands with arguments.
    room.expect_reply(&bot, "!ping", "pong").await;
    room.expect_reply(&bot, "!echo hello there", "hello there")
        .await;

    // The key-value store, the config, a database table with timers.
    room.expect_reply(&bot, "!count", "count: 1").await;
    room.expect_reply(&bot, "!count", "count: 2").await;
    room.expect_reply(&bot, "!greet", "Hello from the counter!")
        .await;
    let (status, body) = put_instance(
        &server,
        &token,
        "counter1",
        json!({ "config": "greeting: Good evening\n" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    room.expect_reply(&bot, "!greet", "Good evening").await;
    room.expect_reply(&bot, "!remind 1 stretch", "ok, reminding in 1s")
        .await;
    room.message_from(&bot, "the reminder", |e| {
        e["content"]["body"] == "reminder: stretch"
    })
    .await;
    // The table is the instance's, in its own database, and the database browser shows it.
    let (status, tables) = server
        .get("/instance/counter1/database", Some(&token))
        .await;
    assert_eq!(status, StatusCode::OK, "{tables}");
    assert!(tables.get("reminder").is_some(), "{tables}");

    // The web app.
    let web = |path: &str| format!("http://{}/_matrix/maubot/plugin/hook1{path}", server.addr());
    let push = |body: Value| {
        let url = web("/push");
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .expect("push");
            let status = response.status();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, pushed) = push(json!({ "room_id": room.id, "text": "from the hook" })).await;
    assert_eq!(status, StatusCode::OK, "{pushed}");
    let event = room
        .message_from(&bot, "the pushed notice", |e| {
            e["content"]["body"] == "from the hook"
        })
        .await;
    assert_eq!(event["event_id"], pushed["event_id"], "{pushed}");
    let (status, _) = push(json!({ "text": "no room" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let elsewhere = create_room(synapse, &room.tester, "@nobody:localhost", "private_chat").await;
    let (status, _) = push(json!({ "room_id": elsewhere, "text": "not there" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let count = reqwest::get(web("/count"))
        .await
        .expect("count")
        .json::<Value>()
        .await
        .expect("json");
    assert_eq!(count, json!({ "count": 1 }));

    // A reminder pending at a restart, and the count, survive it.
    room.expect_reply(&bot, "!remind 4 after the restart", "ok, reminding in 4s")
        .await;
    let server = server.restart().await;
    wait_for_instance(&server, &token, "counter1", "a start", |i| {
        i["started"] == true
    })
    .await;
    room.expect_reply(&bot, "!count", "count: 3").await;
    room.message_from(&bot, "the reminder set before the restart", |e| {
        e["content"]["body"] == "reminder: after the restart"
    })
    .await;
    assert_eq!(
        messages_from(&room, &bot, |b| b == "reminder: after the restart")
            .await
            .len(),
        1,
        "the reminder came once"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_plugins_answer_in_encrypted_rooms() {
    let (server, synapse) = wasm_server(Backend::Sqlite, "wasm_e2ee")
        .await
        .expect("sqlite");
    let token = server.root_token().await;
    let (bot, _) = syncing_bot(&server, &token).await;
    upload_built(&server, &token, wasm::example("ping")).await;
    create_instance(&server, &token, "ping1", PING, &bot).await;
    let mut room = encrypted_room_with(synapse, &bot).await;
    let answer = room.ask("!echo a secret", &bot, "a secret").await;
    assert_eq!(answer, Some(true), "no encrypted answer from the bot");
    server.stop().await;
}

/// An HTTP server on loopback that answers "hello" and counts its requests.
async fn counting_http_server() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hello", listener.local_addr().expect("addr"));
    let app = axum::Router::new().route(
        "/hello",
        axum::routing::get(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async { "hello" }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits)
}

/// A bot with an instance of the hostile plugin `name`, in `room`.
async fn hostile_bot(server: &TestServer, token: &str, room: &Room, name: &str) -> String {
    let synapse = Synapse::shared();
    upload_built(server, token, wasm::test_plugin(name)).await;
    let (bot, _) = syncing_bot(server, token).await;
    matrix_call(
        synapse,
        &room.tester.access_token,
        reqwest::Method::POST,
        &format!("rooms/{}/invite", room.id),
        json!({ "user_id": bot }),
    )
    .await;
    assert!(
        joins(synapse, &room.tester, &room.id, &bot).await,
        "{name}'s bot did not join"
    );
    let plugin = format!("xyz.maubot-rs.test.wasm.{name}");
    create_instance(server, token, name, &plugin, &bot).await;
    room.expect_reply(&bot, "!alive", "alive").await;
    bot
}

/// `!ping` to the well-behaved bot is answered within a few seconds, while `what` goes on.
async fn still_answers(room: &Room, good: &str, what: &str) {
    let started = Instant::now();
    room.expect_reply(good, "!ping", "pong").await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "!ping took {took:?} while {what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_wasm_plugins_are_contained_to_their_own_instance() {
    crate::logs::capture_logs();
    // A slow refill: the flood's sends are awaited one by one, and at the default 5 a second a
    // loaded machine (sends of 200 ms) refills the budget as fast as the flood spends it.
    let (server, synapse) = server_with_synapse_and(Backend::Sqlite, "wasm_hostile", |config| {
        config.server.max_body_size = 4 * 1024 * 1024;
        config.wasm_host.sends_per_second = 0.5;
    })
    .await
    .expect("sqlite");
    let token = server.root_token().await;
    let (good, _) = syncing_bot(&server, &token).await;
    let room = Room::with_bot(synapse, &good).await;
    upload_built(&server, &token, wasm::example("ping")).await;
    create_instance(&server, &token, "good", PING, &good).await;
    room.expect_reply(&good, "!ping", "pong").await;

    // Endless loops, an allocation bomb and a panic each end in a trap; the instance is made
    // again and answers, and the other instance never stopped answering.
    let mut trapped = Vec::new();
    for (name, command) in [("spin", "!spin"), ("bomb", "!bomb"), ("panic", "!panic")] {
        let bot = hostile_bot(&server, &token, &room, name).await;
        trapped.push(bot.clone());
        room.say(command).await;
        still_answers(&room, &good, name).await;
        let failed = wait_for_instance(&server, &token, name, "the trap reported", |i| {
            i["started"] == false
        })
        .await;
        assert!(
            failed["failure"]
                .as_str()
                .is_some_and(|f| f.contains("trapped")),
            "{failed}"
        );
        let instance =
            wait_for_instance(&server, &token, name, "a start", |i| i["started"] == true).await;
        assert_eq!(instance["enabled"], true, "{instance}");
        room.expect_reply(&bot, "!alive", "alive").await;
    }

    // What arrives while a trapped instance waits out its backoff is handled once it runs
    // again. A second trap within a minute doubles the backoff to 2 s: time enough for a
    // message sent after the trap was reported to arrive meanwhile.
    room.say("!panic").await;
    wait_for_instance(&server, &token, "panic", "the second trap reported", |i| {
        i["started"] == false
    })
    .await;
    room.expect_reply(&trapped[2], "!alive", "alive").await;

    // 10,000 sends in a burst: most are refused by the instance's rate limit, and few reach
    // the room.
    let flood = hostile_bot(&server, &token, &room, "flood").await;
    let asked = room.say("!flood").await;
    still_answers(&room, &good, "a plugin floods").await;
    // A hundred sends one after the other, then the tally once the budget allows: on a loaded
    // machine that takes longer than most replies.
    let reply = room
        .message_within(Duration::from_secs(120), &flood, "the flood's tally", |e| {
            e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == asked.as_str()
        })
        .await;
    let tally = reply["content"]["body"].as_str().expect("body").to_owned();
    let numbers: Vec<u64> = tally
        .rsplit_once("accepted: ")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("{tally}"))
        .split(", ")
        .map(|part| {
            part.rsplit(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{tally}"))
        })
        .collect();
    let [accepted, limited, failed] = numbers[..] else {
        panic!("{tally}");
    };
    assert_eq!(accepted + limited + failed, 10_000, "{tally}");
    assert_eq!(failed, 0, "{tally}");
    assert!(
        accepted <= 100,
        "the rate limit let {accepted} through: {tally}"
    );
    let flooded = messages_from(&room, &flood, |b| b.starts_with("flood ")).await;
    assert_eq!(flooded.len() as u64, accepted, "{tally}");

    // HTTP only to the hosts the instance's config allows.
    let fetch = hostile_bot(&server, &token, &room, "fetch").await;
    let (url, hits) = counting_http_server().await;
    let refused = room
        .expect_reply(&fetch, &format!("!fetch {url}"), "")
        .await;
    assert!(
        refused["content"]["body"]
            .as_str()
            .is_some_and(|b| b.contains("error: forbidden") && b.contains("allowed_hosts")),
        "{refused}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the request went out");
    let (status, body) = put_instance(
        &server,
        &token,
        "fetch",
        json!({ "config": "allowed_hosts: [127.0.0.1]\n" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    room.expect_reply(&fetch, &format!("!fetch {url}"), "status 200: hello")
        .await;
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // Only rooms the bot is in.
    let elsewhere = hostile_bot(&server, &token, &room, "elsewhere").await;
    let other = create_room(synapse, &room.tester, &good, "private_chat").await;
    let asked = room.say(&format!("!elsewhere {other}")).await;
    let answer = room
        .message_from(&elsewhere, "the refusal", |e| {
            e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == asked.as_str()
        })
        .await;
    assert!(
        answer["content"]["body"]
            .as_str()
            .is_some_and(|b| b.contains("error: forbidden")),
        "{answer}"
    );
    let other_messages = matrix_call(
        synapse,
        &room.tester.access_token,
        reqwest::Method::GET,
        &format!("rooms/{other}/messages?dir=b&limit=50"),
        json!({}),
    )
    .await;
    assert!(
        !other_messages["chunk"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["sender"] == elsewhere.as_str()),
        "{other_messages}"
    );

    still_answers(&room, &good, "after everything").await;
    server.stop().await;
}

/// `archive` with another version in its `maubot.yaml`.
fn with_version(archive: &[u8], version: &str) -> Vec<u8> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(archive)).expect("zip");
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).expect("entry");
        let name = entry.name().expect("entry name").to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("read entry");
        if name == "maubot.yaml" {
            let text = String::from_utf8(data).expect("utf-8");
            let changed: Vec<String> = text
                .lines()
                .map(|line| {
                    if line.starts_with("version:") {
                        format!("version: {version}")
                    } else {
                        line.to_owned()
                    }
                })
                .collect();
            data = (changed.join("\n") + "\n").into_bytes();
        }
        writer
            .start_file(name, zip::write::SimpleFileOptions::default())
            .expect("zip entry");
        writer.write_all(&data).expect("zip data");
    }
    writer.finish().expect("zip").into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasm_plugin_replaced_while_messages_arrive_answers_every_one() {
    let (server, synapse) = wasm_server(Backend::Sqlite, "wasm_replace")
        .await
        .expect("sqlite");
    let token = server.root_token().await;
    let (bot, _) = syncing_bot(&server, &token).await;
    let room = Room::with_bot(synapse, &bot).await;
    let archive = built(wasm::example("ping")).await;
    let (status, plugin) = upload(&server, &token, archive.clone(), "").await;
    assert_eq!(status, StatusCode::CREATED, "{plugin}");
    create_instance(&server, &token, "ping1", PING, &bot).await;
    room.expect_reply(&bot, "!ping", "pong").await;

    let run = unique("run");
    let mut asked = Vec::new();
    for i in 0..10 {
        asked.push(room.say(&format!("!echo {run} {i}")).await);
    }
    let (status, plugin) = upload(
        &server,
        &token,
        with_version(&archive, "1.0.1"),
        "?allow_override=true",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{plugin}");
    assert_eq!(plugin["version"], "1.0.1");
    for i in 10..20 {
        asked.push(room.say(&format!("!echo {run} {i}")).await);
    }
    for (i, event_id) in asked.iter().enumerate() {
        let body = format!("{run} {i}");
        room.message_from(&bot, &format!("the answer to {body}"), |e| {
            e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == event_id.as_str()
                && e["content"]["body"]
                    .as_str()
                    .is_some_and(|b| b.ends_with(&body))
        })
        .await;
    }
    let answers = messages_from(&room, &bot, |b| b.contains(&run)).await;
    assert_eq!(answers.len(), 20, "each message answered once");
    let (_, plugin) = server.get(&format!("/plugin/{PING}"), Some(&token)).await;
    assert_eq!(plugin["version"], "1.0.1", "{plugin}");
    server.stop().await;
}
