//! The plugin zoo (`tests/plugins/`: reminder, karma, sed, hooks, templated, imagebot): test
//! plugins with the shapes public plugins have, each run end to end against Synapse on SQLite
//! and on PostgreSQL — one command answered per plugin, and their data still there after a
//! restart of the server and after an upgrade of the plugin.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::clients::{server_with_synapse_and, syncing_bot, unique};
use crate::plugins::{Room, create_instance, upload_plugin, wait_for_instance};
use crate::support::{Backend, TestServer};

const PREFIX: &str = "xyz.maubot-rs.test.";

/// The zoo's instances, by plugin.
struct Zoo {
    reminder: String,
    karma: String,
    sed: String,
    hooks: String,
    templated: String,
    imagebot: String,
}

impl Zoo {
    async fn create(server: &TestServer, token: &str, bot: &str) -> Zoo {
        let mut ids = Vec::new();
        for plugin in ["reminder", "karma", "sed", "hooks", "templated", "imagebot"] {
            upload_plugin(server, token, plugin).await;
            let id = unique(plugin);
            let instance =
                create_instance(server, token, &id, &format!("{PREFIX}{plugin}"), bot).await;
            assert_eq!(instance["started"], true, "{instance}");
            ids.push(id);
        }
        let [reminder, karma, sed, hooks, templated, imagebot] =
            <[String; 6]>::try_from(ids).expect("six instances");
        Zoo {
            reminder,
            karma,
            sed,
            hooks,
            templated,
            imagebot,
        }
    }
}

fn body_is(expected: &str) -> impl Fn(&Value) -> bool + '_ {
    move |event: &Value| event["content"]["body"] == expected
}

async fn hook(server: &TestServer, instance: &str, path: &str, body: Option<Value>) -> Value {
    let url = format!(
        "http://{}/_matrix/maubot/plugin/{instance}{path}",
        server.addr()
    );
    let request = match body {
        Some(body) => server.http.post(url).json(&body),
        None => server.http.get(url),
    };
    let response = request.send().await.expect("web app");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("JSON")
}

async fn zoo(backend: Backend, test: &str) {
    let Some((mut server, synapse)) = server_with_synapse_and(backend, test, |config| {
        if matches!(backend, Backend::Postgres) {
            config.plugin_databases.postgres = Some("default".into());
        }
    })
    .await
    else {
        return;
    };
    let token = server.root_token().await;
    let (bot, _) = syncing_bot(&server, &token).await;
    let room = Room::with_bot(synapse, &bot).await;
    let zoo = Zoo::create(&server, &token, &bot).await;
    let engine = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    for id in [&zoo.reminder, &zoo.karma, &zoo.hooks] {
        let (_, instance) = server.get(&format!("/instance/{id}"), Some(&token)).await;
        assert_eq!(instance["database_engine"], engine, "{instance}");
    }

    // reminder: a legacy SQLAlchemy database and a scheduler.
    room.expect_reply(&bot, "!remind 1 buy milk", "ok, reminding in 1s")
        .await;
    room.message_from(&bot, "the reminder", body_is("reminder: buy milk"))
        .await;
    room.expect_reply(&bot, "!remind 3600 call home", "ok, reminding in 3600s")
        .await;
    room.expect_reply(&bot, "!reminders", "reminders: 1").await;

    // karma: a declarative ORM database and stacked passive commands.
    room.expect_reply(&bot, "rust++", "karma rust: 1").await;
    room.expect_reply(&bot, "rust++", "karma rust: 2").await;
    room.expect_reply(&bot, "!karma rust", "rust has karma 2")
        .await;

    // sed: message history and `event.off` over stacked passives, called directly.
    room.say("hello wrld").await;
    let meant = format!("{} meant: hello world", room.tester.user_id);
    room.say("s/wrld/world/").await;
    room.message_from(&bot, "the correction", |e| {
        e["content"]["body"]
            .as_str()
            .is_some_and(|b| b.ends_with(&meant))
    })
    .await;

    // hooks: an asyncpg database and a web app.
    let pushed = hook(
        &server,
        &zoo.hooks,
        "/push",
        Some(json!({ "room_id": room.id, "text": "from a hook" })),
    )
    .await;
    assert_eq!(pushed["count"], 1, "{pushed}");
    room.message_from(&bot, "the hook's notice", body_is("from a hook"))
        .await;
    assert_eq!(hook(&server, &zoo.hooks, "/count", None).await["count"], 1);
    room.expect_reply(&bot, "!hooks", "hooks: 1").await;

    // templated: jinja2 from maubot's environment and a soft dependency.
    room.expect_reply(&bot, "!render alice", "Hello, alice!")
        .await;
    room.expect_reply(&bot, "!bump 1.2.3", "1.2.4").await;

    // imagebot: Pillow, as maubot's container image ships it, and a media upload.
    room.say("!image").await;
    let image = room
        .message_from(&bot, "the image", |e| {
            e["content"]["msgtype"] == "m.image" && e["content"]["body"] == "square.png"
        })
        .await;
    assert!(
        image["content"]["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("mxc://")),
        "{image}"
    );

    // The database routes, in maubot's shapes: SQLAlchemy's for legacy databases.
    let (status, tables) = server
        .get(&format!("/instance/{}/database", zoo.karma), Some(&token))
        .await;
    assert_eq!(status, StatusCode::OK, "{tables}");
    let columns = tables
        .as_object()
        .and_then(|t| t.values().find_map(|t| t["columns"].as_object()))
        .unwrap_or_else(|| panic!("no table in {tables}"));
    assert!(
        columns.values().all(|c| c["unique"].is_boolean()),
        "SQLAlchemy's columns have `unique`: {tables}"
    );
    let (status, tables) = server
        .get(&format!("/instance/{}/database", zoo.hooks), Some(&token))
        .await;
    assert_eq!(status, StatusCode::OK, "{tables}");
    assert!(tables.get("version").is_some(), "{tables}");

    // Everything is still there after a restart...
    server = server.restart().await;
    for id in [&zoo.reminder, &zoo.karma, &zoo.hooks] {
        wait_for_instance(&server, &token, id, "started again", |i| {
            i["started"] == true
        })
        .await;
    }
    room.expect_reply(&bot, "!reminders", "reminders: 1").await;
    room.expect_reply(&bot, "!karma rust", "rust has karma 2")
        .await;
    room.expect_reply(&bot, "!hooks", "hooks: 1").await;

    // ... and after an upgrade whose schema adds a column.
    upload_plugin(&server, &token, "reminder-v2").await;
    upload_plugin(&server, &token, "hooks-v2").await;
    room.expect_reply(&bot, "!reminders", "reminders: 1 (v2, 0 yours)")
        .await;
    room.expect_reply(&bot, "!hooks", "hooks: 1 (v2, 0 dated)")
        .await;

    for id in [
        &zoo.reminder,
        &zoo.karma,
        &zoo.sed,
        &zoo.hooks,
        &zoo.templated,
        &zoo.imagebot,
    ] {
        let (status, _) = server
            .send(
                server.http.delete(server.api(&format!("/instance/{id}"))),
                Some(&token),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_zoo_runs_on_sqlite() {
    zoo(Backend::Sqlite, "zoo_sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_zoo_runs_on_postgres() {
    zoo(Backend::Postgres, "zoo_postgres").await;
}
