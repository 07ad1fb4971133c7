//! `mbc init`: a scaffold that builds into an archive the server accepts.

use maubot_types::plugin::{ArchiveLimits, PluginArchive};

use crate::support::{Mbc, TestServer, entries};

mod run {
    crate::server_test!(init_scaffolds_a_plugin_the_server_accepts);
}

async fn init_scaffolds_a_plugin_the_server_accepts(server: &TestServer, mbc: &Mbc) {
    let dir = mbc.work().join("hello");
    std::fs::create_dir(&dir).expect("mkdir");
    // The name defaults to the folder's name; version and licence to maubot's defaults.
    let out = mbc.run_in(&dir, &["init", "-i", "com.example.hello"]).await;
    out.assert_success();
    assert_eq!(
        out.stdout,
        "Created maubot.yaml\nCreated hello/__init__.py\nCreated LICENSE\n"
    );
    let module = std::fs::read_to_string(dir.join("hello/__init__.py")).expect("module");
    assert!(
        module.contains("from maubot import Plugin, MessageEvent"),
        "{module}"
    );
    assert!(
        module.contains("from maubot.handlers import command"),
        "{module}"
    );
    assert!(module.contains("class HelloBot(Plugin):"), "{module}");
    assert!(module.contains("@command.new(\"ping\""), "{module}");
    let license = std::fs::read_to_string(dir.join("LICENSE")).expect("licence");
    assert!(license.contains("GNU AFFERO GENERAL PUBLIC LICENSE"));

    mbc.login(server).await;
    let out = mbc.run_in(&dir, &["build", "-u"]).await;
    out.assert_success();
    assert!(
        out.stdout
            .contains("Plugin com.example.hello v0.1.0 uploaded"),
        "{out}"
    );
    let (status, plugin) = server.get("/plugin/com.example.hello").await;
    assert_eq!(status, 200, "{plugin}");

    // A second init does not overwrite anything.
    let out = mbc.run_in(&dir, &["init", "-i", "com.example.other"]).await;
    out.assert_error("not overwriting maubot.yaml, hello/__init__.py, LICENSE");
    let yaml = std::fs::read_to_string(dir.join("maubot.yaml")).expect("yaml");
    assert!(yaml.contains("com.example.hello"));
}

#[tokio::test]
async fn init_with_every_option() {
    let mbc = Mbc::new();
    let out = mbc
        .run(&[
            "init",
            "-n",
            "greeter",
            "-i",
            "com.example.greeter",
            "-v",
            "1.2rc1",
            "-l",
            "MIT",
            "-c",
        ])
        .await;
    out.assert_success();
    let dir = mbc.work();
    for file in [
        "maubot.yaml",
        "greeter/__init__.py",
        "base-config.yaml",
        "LICENSE",
    ] {
        assert!(dir.join(file).is_file(), "{file}\n{out}");
    }
    assert!(
        std::fs::read_to_string(dir.join("LICENSE"))
            .expect("licence")
            .starts_with("MIT License")
    );
    let module = std::fs::read_to_string(dir.join("greeter/__init__.py")).expect("module");
    assert!(module.contains("def get_config_class(cls)"), "{module}");

    mbc.run(&["build"]).await.assert_success();
    let bytes = std::fs::read(dir.join("com.example.greeter-v1.2rc1.mbp")).expect("archive");
    let archive = PluginArchive::read(&bytes, &ArchiveLimits::default()).expect("valid");
    assert_eq!(archive.meta.license, "MIT");
    assert!(archive.meta.config);
    assert_eq!(
        archive.base_config.as_deref(),
        Some(
            std::fs::read_to_string(dir.join("base-config.yaml"))
                .expect("config")
                .as_str()
        )
    );
    assert_eq!(
        entries(&bytes),
        ["base-config.yaml", "greeter/__init__.py", "maubot.yaml"]
    );
}

#[tokio::test]
async fn init_with_a_licence_mbc_has_no_text_for() {
    let mbc = Mbc::new();
    let out = mbc
        .run(&[
            "init",
            "-n",
            "x",
            "-i",
            "com.example.x",
            "-l",
            "BSD-3-Clause",
        ])
        .await;
    out.assert_success();
    assert!(
        out.stderr
            .contains("mbc has no text of the licence BSD-3-Clause"),
        "{out}"
    );
    assert!(!mbc.work().join("LICENSE").exists());
    let yaml = std::fs::read_to_string(mbc.work().join("maubot.yaml")).expect("yaml");
    assert!(yaml.contains("license: BSD-3-Clause"), "{yaml}");
}

#[tokio::test]
async fn init_without_a_terminal_needs_the_id() {
    let mbc = Mbc::new();
    let out = mbc.run(&["init", "-n", "x"]).await;
    out.assert_error("missing plugin id (give it with --id)");
    out.assert_hint("terminal");
    assert!(!mbc.work().join("maubot.yaml").exists());

    // The folder's name (a temporary folder's) is no Python module name.
    let dir = mbc.work().join("my-plugin");
    std::fs::create_dir(&dir).expect("mkdir");
    let out = mbc.run_in(&dir, &["init", "-i", "com.example.x"]).await;
    out.assert_error("`my-plugin` cannot be the plugin name");
    out.assert_hint("--name, e.g. my_plugin");

    let out = mbc
        .run(&["init", "-n", "x", "-i", "com.example.x", "-v", "one"])
        .await;
    out.assert_error("`one` cannot be the version");
    assert!(
        std::fs::read_dir(mbc.work()).expect("dir").count() == 1,
        "only my-plugin/"
    );
}

/// The scaffold is a working plugin: built and uploaded with mbc, on a bot made with
/// `mbc auth`, it answers `!ping` with the reply from its config in a real room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scaffold_answers_ping() {
    use std::time::Duration;

    use maubot_test_support::Synapse;
    use serde_json::{Value, json};

    use crate::support::{server_with_synapse, unique};

    let server = server_with_synapse().await;
    let synapse = Synapse::shared();
    let mbc = Mbc::new();
    mbc.login(&server).await;
    let bot_name = unique("mbcping");
    let bot = format!("@{bot_name}:localhost");
    mbc.run(&[
        "auth",
        "-h",
        "localhost",
        "-u",
        &bot_name,
        "-p",
        "pw",
        "-r",
        "-c",
    ])
    .await
    .assert_success();

    let dir = mbc.work().join("hello");
    std::fs::create_dir(&dir).expect("mkdir");
    mbc.run_in(&dir, &["init", "-i", "com.example.hello", "-c"])
        .await
        .assert_success();
    mbc.run_in(&dir, &["build", "-u"]).await.assert_success();
    let token = server.root_token().await;
    let (status, instance) = server
        .call(
            reqwest::Method::PUT,
            "/instance/hello",
            Some(&token),
            Some(json!({ "type": "com.example.hello", "primary_user": bot })),
        )
        .await;
    assert_eq!(status, 201, "{instance}");
    assert_eq!(instance["started"], true, "{instance}");

    // A tester invites the bot (which joins by itself) and pings it.
    let tester = synapse
        .register(&unique("tester"), "tester-password", false)
        .await
        .expect("tester");
    let http = reqwest::Client::new();
    let matrix = |method: reqwest::Method, path: String, body: Value| {
        let request = http
            .request(
                method,
                format!("{}/_matrix/client/v3/{path}", synapse.base_url()),
            )
            .bearer_auth(&tester.access_token)
            .json(&body);
        async move {
            let response = request.send().await.expect("Matrix request");
            response.json::<Value>().await.expect("JSON")
        }
    };
    let room = matrix(
        reqwest::Method::POST,
        "createRoom".into(),
        json!({ "preset": "public_chat", "invite": [bot] }),
    )
    .await;
    let room = room["room_id"].as_str().expect("room").to_owned();
    let mut joined = false;
    for _ in 0..300 {
        let members = matrix(
            reqwest::Method::GET,
            format!("rooms/{room}/joined_members"),
            json!({}),
        )
        .await;
        if members["joined"].get(&bot).is_some() {
            joined = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(joined, "the bot did not join");
    let sent = matrix(
        reqwest::Method::PUT,
        format!("rooms/{room}/send/m.room.message/{}", unique("txn")),
        json!({ "msgtype": "m.text", "body": "!ping" }),
    )
    .await;
    let ping = sent["event_id"].as_str().expect("event").to_owned();
    for _ in 0..300 {
        let page = matrix(
            reqwest::Method::GET,
            format!("rooms/{room}/messages?dir=b&limit=50"),
            json!({}),
        )
        .await;
        let reply = page["chunk"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|event| {
                event["sender"] == bot.as_str()
                    && event["content"]["m.relates_to"]["m.in_reply_to"]["event_id"]
                        == ping.as_str()
            });
        if let Some(reply) = reply {
            assert_eq!(reply["content"]["body"], "pong", "{reply}");
            server.stop().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the scaffold did not answer !ping");
}
