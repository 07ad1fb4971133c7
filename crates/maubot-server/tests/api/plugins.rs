//! Plugins and instances: archives checked on upload, maubot's routes and errcodes, and the test
//! plugins of `tests/plugins` running in the real Python plugin host against a real Synapse.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use maubot_test_support::{RegisteredUser, Synapse};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::clients::{
    create_room, encrypted_room_with, joins, matrix_call, server_with_synapse, syncing_bot, unique,
    wait_for_client,
};
use crate::support::{Backend, TestServer, assert_error, on_both_databases};

/// The test echo plugin's ID.
pub(crate) const ECHO: &str = "xyz.maubot-rs.test.echo";

fn plugin_source(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/plugins")
        .join(name)
}

/// A zip of the given entries.
pub(crate) fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    for (name, data) in entries {
        writer.start_file(*name, options).expect("zip entry");
        writer.write_all(data).expect("zip data");
    }
    writer.finish().expect("zip").into_inner()
}

/// The `.mbp` of a test plugin: every file of its folder at the archive's root.
pub(crate) fn mbp(name: &str) -> Vec<u8> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).expect("plugin dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "__pycache__") {
                    walk(root, &path, out);
                }
            } else {
                let relative = path.strip_prefix(root).expect("under root");
                out.push((
                    relative.to_string_lossy().into_owned(),
                    std::fs::read(&path).expect("read"),
                ));
            }
        }
    }
    let root = plugin_source(name);
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    files.sort();
    let entries: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    zip_of(&entries)
}

pub(crate) async fn upload(
    server: &TestServer,
    token: &str,
    bytes: Vec<u8>,
    query: &str,
) -> (StatusCode, Value) {
    server
        .send(
            server
                .http
                .post(server.api(&format!("/plugins/upload{query}")))
                .body(bytes),
            Some(token),
        )
        .await
}

pub(crate) async fn put_instance(
    server: &TestServer,
    token: &str,
    id: &str,
    body: Value,
) -> (StatusCode, Value) {
    server
        .send(
            server
                .http
                .put(server.api(&format!("/instance/{id}")))
                .body(body.to_string()),
            Some(token),
        )
        .await
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Plugin uploads may be larger than the other tests' 4 KiB bodies.
async fn server_for_plugins(backend: Backend, test: &str) -> Option<TestServer> {
    TestServer::start_with(backend, test, |config| {
        config.server.max_body_size = 2 * 1024 * 1024;
    })
    .await
}

on_both_databases!(
    start = crate::plugins::server_for_plugins;
    uploads_store_replace_and_survive_restarts_of_nothing_but_valid_archives,
    plugin_and_instance_routes_refuse_bad_input,
);

async fn uploads_store_replace_and_survive_restarts_of_nothing_but_valid_archives(
    server: &TestServer,
) {
    let token = server.root_token().await;
    let plugins = server.dir().join("plugins");
    let trash = server.dir().join("trash");

    let (status, plugin) = upload(server, &token, mbp("echo"), "").await;
    assert_eq!(status, StatusCode::CREATED, "{plugin}");
    assert_eq!(plugin["id"], ECHO);
    assert_eq!(plugin["version"], "1.0.0");
    assert_eq!(plugin["instances"], json!([]));
    let path = plugins.join(format!("{ECHO}-v1.0.0.mbp"));
    assert_eq!(plugin["path"], path.display().to_string());
    assert_eq!(files_in(&plugins), [format!("{ECHO}-v1.0.0.mbp")]);

    let (status, list) = server.get("/plugins", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!([plugin]));
    assert_eq!(
        server.get(&format!("/plugin/{ECHO}"), Some(&token)).await.1,
        plugin
    );

    // The same ID again: refused without allow_override; any value of it allows (maubot).
    let again = upload(server, &token, mbp("echo-v2"), "").await;
    assert_error(&again, StatusCode::CONFLICT, "plugin_exists");
    let again = upload(server, &token, mbp("echo-v2"), "?allow_override=").await;
    assert_error(&again, StatusCode::CONFLICT, "plugin_exists");
    let (status, replaced) = upload(server, &token, mbp("echo-v2"), "?allow_override=false").await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["version"], "2.0.0");
    assert_eq!(files_in(&plugins), [format!("{ECHO}-v2.0.0.mbp")]);
    let trashed = files_in(&trash);
    assert!(
        trashed.len() == 1 && trashed[0].ends_with(&format!("-update-{ECHO}-v1.0.0.mbp")),
        "{trashed:?}"
    );
    // The same version again gets a time-stamped name.
    let (status, same) = server
        .send(
            server
                .http
                .put(server.api(&format!("/plugin/{ECHO}")))
                .body(mbp("echo-v2")),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{same}");
    let name = files_in(&plugins).pop().expect("a file");
    assert!(name.starts_with(&format!("{ECHO}-v2.0.0-ts")), "{name}");

    // Deleting moves the file to the trash.
    let (status, _) = server
        .send(
            server.http.delete(server.api(&format!("/plugin/{ECHO}"))),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(files_in(&plugins).is_empty());
    assert!(files_in(&trash).iter().any(|n| n.contains("-delete-")));
    let gone = server.get(&format!("/plugin/{ECHO}"), Some(&token)).await;
    assert_error(&gone, StatusCode::NOT_FOUND, "plugin_not_found");
}

/// Plugins are files: a restarted server finds them again in its load directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploaded_plugins_are_found_after_a_restart() {
    let server = server_for_plugins(Backend::Sqlite, "plugin_restart")
        .await
        .expect("sqlite");
    let token = server.root_token().await;
    let (status, plugin) = upload(&server, &token, mbp("echo"), "").await;
    assert_eq!(status, StatusCode::CREATED, "{plugin}");
    let server = server.restart().await;
    let token = server.root_token().await;
    let (status, list) = server.get("/plugins", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!([plugin]));
    server.stop().await;
}

/// Every kind of bad archive: 400 `plugin_invalid` with a message a person can act on, and
/// nothing written.
async fn plugin_and_instance_routes_refuse_bad_input(server: &TestServer) {
    let token = server.root_token().await;
    let plugins = server.dir().join("plugins");
    let meta = "id: test.bad\nversion: 1.0.0\nmodules: [bad]\nmain_class: Bad\n";
    let module: &[u8] = b"from maubot import Plugin\n\nclass Bad(Plugin):\n    pass\n";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "not a zip",
            b"definitely not a zip".to_vec(),
            "File is not a maubot plugin",
        ),
        (
            "no maubot.yaml",
            zip_of(&[("bad.py", module)]),
            "File does not contain a maubot plugin definition",
        ),
        (
            "maubot.yaml in a folder",
            zip_of(&[
                ("bad-main/maubot.yaml", meta.as_bytes()),
                ("bad-main/bad.py", module),
            ]),
            "bad-main",
        ),
        (
            "invalid YAML",
            zip_of(&[("maubot.yaml", b"id: [unclosed\n"), ("bad.py", module)]),
            "not valid YAML",
        ),
        (
            "missing field",
            zip_of(&[
                (
                    "maubot.yaml",
                    b"id: test.bad\nversion: 1.0.0\nmain_class: Bad\n",
                ),
                ("bad.py", module),
            ]),
            "modules",
        ),
        (
            "version as a number",
            zip_of(&[
                (
                    "maubot.yaml",
                    b"id: test.bad\nversion: 1.0\nmodules: [bad]\nmain_class: Bad\n",
                ),
                ("bad.py", module),
            ]),
            "version",
        ),
        (
            "missing module",
            zip_of(&[("maubot.yaml", meta.as_bytes())]),
            "Module bad not found in file",
        ),
        (
            "main class missing",
            zip_of(&[("maubot.yaml", meta.as_bytes()), ("bad.py", b"x = 1\n")]),
            "Main class Bad not in bad",
        ),
        (
            "newer maubot",
            zip_of(&[
                ("maubot.yaml", format!("{meta}maubot: 9.0.0\n").as_bytes()),
                ("bad.py", module),
            ]),
            "Plugin requires maubot 9.0.0",
        ),
        (
            "zip slip",
            zip_of(&[
                ("maubot.yaml", meta.as_bytes()),
                ("bad.py", module),
                ("../../evil.py", b"x"),
            ]),
            "../../evil.py",
        ),
    ];
    for (what, bytes, message) in cases {
        let answer = upload(server, &token, bytes, "").await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "plugin_invalid");
        let error = answer.1["error"].as_str().unwrap_or_default();
        assert!(error.contains(message), "{what}: {error}");
        assert!(files_in(&plugins).is_empty(), "{what} left files behind");
    }
    // Too many entries (a cheap zip bomb).
    let names: Vec<String> = (0..10_001).map(|i| format!("f{i}")).collect();
    let mut entries: Vec<(&str, &[u8])> =
        vec![("maubot.yaml", meta.as_bytes()), ("bad.py", module)];
    entries.extend(names.iter().map(|n| (n.as_str(), &b""[..])));
    let answer = upload(server, &token, zip_of(&entries), "").await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "plugin_invalid");
    // Larger than the server takes: refused from the announced length, before any of it is
    // read (over a raw connection, since a client still writing the body would see the
    // connection close under it).
    let status_line = {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut stream = tokio::net::TcpStream::connect(server.addr())
            .await
            .expect("connect");
        let head = format!(
            "POST /_matrix/maubot/v1/plugins/upload HTTP/1.1\r\nHost: localhost\r\n\
             Authorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n",
            3 * 1024 * 1024
        );
        stream.write_all(head.as_bytes()).await.expect("write");
        let mut answer = vec![0; 4096];
        let read = stream.read(&mut answer).await.expect("read");
        String::from_utf8_lossy(&answer[..read]).into_owned()
    };
    assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line}");
    assert!(status_line.contains("unhandled_http_413"), "{status_line}");
    assert!(files_in(&plugins).is_empty());

    // Legacy SQLAlchemy databases are supported, and a bare `- ` among the dependencies is
    // nothing (maubot accepts both).
    let legacy = zip_of(&[
        (
            "maubot.yaml",
            format!("{meta}database: true\ndependencies:\n- \n").as_bytes(),
        ),
        ("bad.py", module),
    ]);
    let (status, body) = upload(server, &token, legacy, "").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = server
        .send(
            server.http.delete(server.api("/plugin/test.bad")),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    // PUT with another ID in the path.
    let answer = server
        .send(
            server
                .http
                .put(server.api("/plugin/other.id"))
                .body(mbp("echo")),
            Some(&token),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "pid_mismatch");
    assert!(files_in(&plugins).is_empty());

    // Unknown IDs.
    for (method, path, errcode) in [
        (reqwest::Method::GET, "/plugin/nope", "plugin_not_found"),
        (reqwest::Method::DELETE, "/plugin/nope", "plugin_not_found"),
        (
            reqwest::Method::POST,
            "/plugin/nope/reload",
            "plugin_not_found",
        ),
        (reqwest::Method::GET, "/instance/nope", "instance_not_found"),
        (
            reqwest::Method::DELETE,
            "/instance/nope",
            "instance_not_found",
        ),
    ] {
        let answer = server
            .send(server.http.request(method, server.api(path)), Some(&token))
            .await;
        assert_error(&answer, StatusCode::NOT_FOUND, errcode);
    }

    // Instance bodies.
    let answer = server
        .send(
            server.http.put(server.api("/instance/x")).body("{not json"),
            Some(&token),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "body_not_json");
    let answer = put_instance(
        server,
        &token,
        "x",
        json!({ "type": ECHO, "enabled": "yes" }),
    )
    .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_request_body");
    let answer = put_instance(server, &token, "x", json!({ "primary_user": "@a:b" })).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "plugin_type_required");
    let answer = put_instance(server, &token, "x", json!({ "type": ECHO })).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "primary_user_required");
    let answer = put_instance(
        server,
        &token,
        "x",
        json!({ "type": ECHO, "primary_user": "@nobody:localhost" }),
    )
    .await;
    assert_error(&answer, StatusCode::NOT_FOUND, "primary_user_not_found");
    // IDs that would not work as database file names (maubot does not check).
    for id in ["bad%2Fid", "with%23hash", "back%5Cslash"] {
        let answer = put_instance(
            server,
            &token,
            id,
            json!({ "type": ECHO, "primary_user": "@a:b" }),
        )
        .await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_request_body");
    }
    assert_eq!(server.get("/instances", Some(&token)).await.1, json!([]));
}

// ----- with Synapse and the Python plugin host -----

/// A tester (a plain Matrix user) in a room with the bot.
pub(crate) struct Room {
    synapse: &'static Synapse,
    pub(crate) tester: RegisteredUser,
    pub(crate) id: String,
}

impl Room {
    pub(crate) async fn with_bot(synapse: &'static Synapse, bot_id: &str) -> Room {
        let name = unique("tester");
        let tester = synapse
            .register(&name, "tester-password", false)
            .await
            .expect("tester");
        let id = create_room(synapse, &tester, bot_id, "public_chat").await;
        assert!(
            joins(synapse, &tester, &id, bot_id).await,
            "the bot did not join"
        );
        Room {
            synapse,
            tester,
            id,
        }
    }

    pub(crate) async fn say(&self, text: &str) -> String {
        let path = format!("rooms/{}/send/m.room.message/{}", self.id, unique("txn"));
        let sent = matrix_call(
            self.synapse,
            &self.tester.access_token,
            reqwest::Method::PUT,
            &path,
            json!({ "msgtype": "m.text", "body": text }),
        )
        .await;
        sent["event_id"]
            .as_str()
            .unwrap_or_else(|| panic!("{sent}"))
            .to_owned()
    }

    /// A page of the room's messages, newest first, from `from` (a pagination token) on.
    async fn page(&self, limit: usize, from: Option<&str>) -> Value {
        let mut path = format!("rooms/{}/messages?dir=b&limit={limit}", self.id);
        if let Some(token) = from {
            path.push_str(&format!("&from={token}"));
        }
        let get = reqwest::Method::GET;
        matrix_call(
            self.synapse,
            &self.tester.access_token,
            get,
            &path,
            json!({}),
        )
        .await
    }

    /// The latest message from `sender` that `check` accepts, waiting up to 30 s for one. The
    /// whole history is searched: a reply may land before messages its plugin sent earlier
    /// (a flood's tally before the flood).
    pub(crate) async fn message_from(
        &self,
        sender: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        self.message_within(Duration::from_secs(30), sender, what, check)
            .await
    }

    /// [`Room::message_from`], waiting up to `limit`.
    pub(crate) async fn message_within(
        &self,
        limit: Duration,
        sender: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            let found = self.messages_from(sender, &check).await;
            if let Some(event) = found.into_iter().next() {
                return event;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no message from {sender} within {limit:?}: {what}");
    }

    /// Every message of the room from `sender` that `check` accepts, newest first (as they
    /// are now: this does not wait).
    pub(crate) async fn messages_from(
        &self,
        sender: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let mut found = Vec::new();
        let mut from: Option<String> = None;
        loop {
            let page = self.page(100, from.as_deref()).await;
            let chunk = page["chunk"].as_array().cloned().unwrap_or_default();
            found.extend(
                chunk
                    .iter()
                    .filter(|e| e["sender"] == sender && check(e))
                    .cloned(),
            );
            match page["end"].as_str() {
                Some(end) if !chunk.is_empty() => from = Some(end.to_owned()),
                _ => return found,
            }
        }
    }

    /// How many replies of `bot` each of `asked` (event IDs) has, once each has one (or after
    /// 60 s).
    pub(crate) async fn answers(&self, bot: &str, asked: &[String]) -> Vec<usize> {
        let answered = |e: &Value, question: &str| {
            e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == question
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let replies = self
                .messages_from(bot, |e| asked.iter().any(|a| answered(e, a)))
                .await;
            let counts: Vec<usize> = asked
                .iter()
                .map(|a| replies.iter().filter(|r| answered(r, a)).count())
                .collect();
            if counts.iter().all(|&n| n > 0) || std::time::Instant::now() > deadline {
                return counts;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Says `text` and waits for the bot's reply to it with `body`.
    pub(crate) async fn expect_reply(&self, bot: &str, text: &str, body: &str) -> Value {
        let asked = self.say(text).await;
        self.message_from(bot, &format!("reply {body:?} to {text:?}"), |e| {
            e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == asked.as_str()
                && e["content"]["body"]
                    .as_str()
                    .is_some_and(|b| b.ends_with(body))
        })
        .await
    }
}

pub(crate) async fn wait_for_instance(
    server: &TestServer,
    token: &str,
    id: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..600 {
        let (status, body) = server.get(&format!("/instance/{id}"), Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if check(&body) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("instance {id} never got {what}");
}

pub(crate) async fn upload_plugin(server: &TestServer, token: &str, name: &str) -> Value {
    let (status, plugin) = upload(server, token, mbp(name), "?allow_override=true").await;
    assert!(status.is_success(), "{status}: {plugin}");
    plugin
}

pub(crate) async fn create_instance(
    server: &TestServer,
    token: &str,
    id: &str,
    plugin: &str,
    bot: &str,
) -> Value {
    let (status, instance) = put_instance(
        server,
        token,
        id,
        json!({ "type": plugin, "primary_user": bot }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{instance}");
    instance
}

/// A syncing bot of `server`'s with an echo instance `instance`, in a room with a tester, once
/// it answers `!ping`: the root token, the bot's ID and the room.
pub(crate) async fn echo_bot(
    server: &TestServer,
    synapse: &'static Synapse,
    instance: &str,
) -> (String, String, Room) {
    let token = server.root_token().await;
    let (bot, _) = syncing_bot(server, &token).await;
    upload_plugin(server, &token, "echo").await;
    create_instance(server, &token, instance, ECHO, &bot).await;
    let room = Room::with_bot(synapse, &bot).await;
    room.expect_reply(&bot, "!ping", "pong").await;
    (token, bot, room)
}

pub(crate) async fn python_server(test: &str) -> (TestServer, &'static Synapse) {
    server_with_synapse(Backend::Sqlite, test)
        .await
        .expect("sqlite")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_plugins_answer_commands_and_follow_config_and_new_code() {
    let (server, synapse) = python_server("python_plugins").await;
    let token = server.root_token().await;
    let (bot, _) = syncing_bot(&server, &token).await;
    let room = Room::with_bot(synapse, &bot).await;

    upload_plugin(&server, &token, "echo").await;
    let instance = create_instance(&server, &token, "echo1", ECHO, &bot).await;
    assert_eq!(instance["started"], true, "{instance}");
    assert_eq!(instance["enabled"], true);
    assert_eq!(instance["type"], ECHO);
    assert_eq!(instance["primary_user"], bot.as_str());
    assert_eq!(instance["database"], false);
    assert_eq!(instance["database_interface"], Value::Null);

    // `!ping` → "pong", as a reply, an m.notice rendered from markdown (like maubot).
    let pong = room.expect_reply(&bot, "!ping", "pong").await;
    assert_eq!(pong["content"]["msgtype"], "m.notice", "{pong}");
    assert_eq!(
        pong["content"]["format"], "org.matrix.custom.html",
        "{pong}"
    );
    room.say("!echo some **bold** text").await;
    let echo = room
        .message_from(&bot, "the echo", |e| {
            e["content"]["formatted_body"]
                .as_str()
                .is_some_and(|h| h.contains("<strong>bold</strong>"))
        })
        .await;
    assert!(
        echo["content"]["body"]
            .as_str()
            .is_some_and(|b| b.contains("bold")),
        "{echo}"
    );

    // Commands with subcommands and arguments; a passive handler; membership events.
    upload_plugin(&server, &token, "commands").await;
    create_instance(
        &server,
        &token,
        "commands1",
        "xyz.maubot-rs.test.commands",
        &bot,
    )
    .await;
    room.expect_reply(&bot, "!calc add 2 3", "5").await;
    room.expect_reply(&bot, "!greet Alice", "Hello, Alice!")
        .await;
    room.expect_reply(&bot, "!greet", "Hello, stranger!").await;
    let usage = room.say("!calc add 2 x").await;
    room.message_from(&bot, "usage after a bad argument", |e| {
        e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == usage.as_str()
            && e["content"]["body"]
                .as_str()
                .is_some_and(|b| b.contains("Usage:"))
    })
    .await;
    upload_plugin(&server, &token, "passive").await;
    create_instance(
        &server,
        &token,
        "passive1",
        "xyz.maubot-rs.test.passive",
        &bot,
    )
    .await;
    room.expect_reply(&bot, "well HELLO there", "hi there")
        .await;
    upload_plugin(&server, &token, "members").await;
    create_instance(
        &server,
        &token,
        "members1",
        "xyz.maubot-rs.test.members",
        &bot,
    )
    .await;
    let newcomer = synapse
        .register(&unique("newcomer"), "newcomer-password", false)
        .await
        .expect("newcomer");
    matrix_call(
        synapse,
        &newcomer.access_token,
        reqwest::Method::POST,
        &format!("join/{}", room.id),
        json!({}),
    )
    .await;
    room.message_from(&bot, "a welcome", |e| {
        e["content"]["body"] == format!("welcome {}", newcomer.user_id)
    })
    .await;

    // A config with base-config.yaml: normalised by the plugin at start, changed live.
    upload_plugin(&server, &token, "configured").await;
    let configured = create_instance(
        &server,
        &token,
        "configured1",
        "xyz.maubot-rs.test.configured",
        &bot,
    )
    .await;
    assert!(
        configured["base_config"]
            .as_str()
            .is_some_and(|b| b.contains("greeting")),
        "{configured}"
    );
    let configured = wait_for_instance(&server, &token, "configured1", "its saved config", |i| {
        i["config"]
            .as_str()
            .is_some_and(|c| c.contains("greeting: Hello"))
    })
    .await;
    assert_eq!(configured["started"], true);
    room.expect_reply(&bot, "!greeting", "Hello").await;
    let (status, updated) = put_instance(
        &server,
        &token,
        "configured1",
        json!({ "config": "greeting: Howdy\n" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    // The plugin's on_external_config_update normalised it against base-config.yaml.
    assert!(
        updated["config"]
            .as_str()
            .is_some_and(|c| c.contains("greeting: Howdy")),
        "{updated}"
    );
    room.expect_reply(&bot, "!greeting", "Howdy").await;

    // The client shows its instances.
    let client = wait_for_client(&server, &token, &bot, "instances", |c| {
        c["instances"].as_array().is_some_and(|i| i.len() == 5)
    })
    .await;
    assert!(
        client["instances"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|i| i["started"] == true),
        "{client}"
    );

    // New code: v2 answers differently; the instance was restarted on it.
    let (status, v2) = upload(&server, &token, mbp("echo-v2"), "?allow_override=true").await;
    assert_eq!(status, StatusCode::OK, "{v2}");
    assert_eq!(v2["instances"][0]["started"], true, "{v2}");
    room.expect_reply(&bot, "!ping", "pong v2").await;

    // New code that fails to import while instances run: refused, the old code keeps running,
    // the new file goes to the trash.
    let broken = zip_of(&[
        (
            "maubot.yaml",
            format!("id: {ECHO}\nversion: 3.0.0\nmodules: [mbrs_test_echo]\nmain_class: EchoBot\n")
                .as_bytes(),
        ),
        (
            "mbrs_test_echo.py",
            b"import no_such_module_anywhere\nfrom maubot import Plugin\n\nclass EchoBot(Plugin):\n    pass\n",
        ),
    ]);
    let refused = upload(&server, &token, broken, "?allow_override=true").await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "plugin_invalid");
    assert!(
        refused.1["error"]
            .as_str()
            .is_some_and(|e| e.contains("no_such_module_anywhere")),
        "{}",
        refused.1
    );
    let (_, still) = server.get(&format!("/plugin/{ECHO}"), Some(&token)).await;
    assert_eq!(still["version"], "2.0.0", "{still}");
    assert!(
        files_in(&server.dir().join("trash"))
            .iter()
            .any(|n| n.contains("-failed_update-")),
        "the broken file was not trashed"
    );
    room.expect_reply(&bot, "!ping", "pong v2").await;

    // Delete rules: a plugin with instances and a client with instances stay.
    let in_use = server
        .send(
            server.http.delete(server.api(&format!("/plugin/{ECHO}"))),
            Some(&token),
        )
        .await;
    assert_error(&in_use, StatusCode::PRECONDITION_FAILED, "plugin_in_use");
    let in_use = server
        .send(
            server.http.delete(server.api(&format!("/client/{bot}"))),
            Some(&token),
        )
        .await;
    assert_error(&in_use, StatusCode::PRECONDITION_FAILED, "client_in_use");
    let unknown_type = put_instance(
        &server,
        &token,
        "x",
        json!({ "type": "no.such.plugin", "primary_user": bot }),
    )
    .await;
    assert_error(
        &unknown_type,
        StatusCode::NOT_FOUND,
        "plugin_type_not_found",
    );

    // Reload from disk, then stop and start through `started`.
    let (status, body) = server
        .post_raw(&format!("/plugin/{ECHO}/reload"), Some(&token), "")
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "success": true })));
    wait_for_instance(&server, &token, "echo1", "a restart", |i| {
        i["started"] == true
    })
    .await;
    room.expect_reply(&bot, "!ping", "pong v2").await;
    let (_, stopped) = put_instance(&server, &token, "echo1", json!({ "started": false })).await;
    assert_eq!(stopped["started"], false, "{stopped}");
    let (_, started) = put_instance(&server, &token, "echo1", json!({ "started": true })).await;
    assert_eq!(started["started"], true, "{started}");
    room.expect_reply(&bot, "!ping", "pong v2").await;

    // Delete the instance, then the plugin.
    let (status, _) = server
        .send(
            server.http.delete(server.api("/instance/echo1")),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = server
        .send(
            server.http.delete(server.api(&format!("/plugin/{ECHO}"))),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_plugins_are_reported_and_isolated() {
    let (server, synapse) = python_server("failing_plugins").await;
    let token = server.root_token().await;
    let (bot, _) = syncing_bot(&server, &token).await;
    let room = Room::with_bot(synapse, &bot).await;
    upload_plugin(&server, &token, "echo").await;
    create_instance(&server, &token, "echo1", ECHO, &bot).await;

    // A plugin raising in start(): not started, disabled (as maubot), the reason shown.
    upload_plugin(&server, &token, "failstart").await;
    let failed = create_instance(
        &server,
        &token,
        "fail1",
        "xyz.maubot-rs.test.failstart",
        &bot,
    )
    .await;
    assert_eq!(failed["started"], false, "{failed}");
    assert_eq!(failed["enabled"], false, "{failed}");
    assert!(
        failed["failure"]
            .as_str()
            .is_some_and(|f| f.contains("deliberate failure in start")),
        "{failed}"
    );

    // A plugin that blocks its worker forever in a handler: the worker is killed and restarted,
    // the instance reported failed meanwhile; the echo plugin answers all along.
    upload_plugin(&server, &token, "blocker").await;
    create_instance(
        &server,
        &token,
        "blocker1",
        "xyz.maubot-rs.test.blocker",
        &bot,
    )
    .await;
    room.expect_reply(&bot, "!alive", "alive").await;
    room.say("!hang").await;
    // Sent while the worker hangs (some reach it before the liveness check kills it, some
    // arrive while it restarts): each is answered once. The `!hang` goes to the next worker
    // too, which hangs as well; after that it is dropped, and the third worker answers.
    let mut asked = Vec::new();
    for _ in 0..50 {
        asked.push(room.say("!alive").await);
    }
    room.expect_reply(&bot, "!ping", "pong").await;
    let failing = wait_for_instance(&server, &token, "blocker1", "a failure", |i| {
        i["failure"]
            .as_str()
            .is_some_and(|f| f.contains("liveness"))
    })
    .await;
    assert_eq!(failing["enabled"], true, "{failing}");
    room.expect_reply(&bot, "!alive", "alive").await;
    wait_for_instance(&server, &token, "blocker1", "a restart", |i| {
        i["started"] == true && i["failure"].is_null()
    })
    .await;
    let answers = room.answers(&bot, &asked).await;
    assert!(
        answers.iter().all(|&n| n == 1),
        "answers per message: {answers:?}"
    );

    // A worker that crashes: reported with its exit status, restarted.
    room.say("!crash").await;
    wait_for_instance(&server, &token, "blocker1", "a crash", |i| {
        i["failure"]
            .as_str()
            .is_some_and(|f| f.contains("exit status: 3"))
    })
    .await;
    wait_for_instance(
        &server,
        &token,
        "blocker1",
        "a restart after the crash",
        |i| i["started"] == true && i["failure"].is_null(),
    )
    .await;
    room.expect_reply(&bot, "!alive", "alive").await;

    // Blocking in start(): the start times out, the instance is disabled with the reason.
    let (status, hung) = put_instance(
        &server,
        &token,
        "blocker2",
        json!({ "type": "xyz.maubot-rs.test.blocker", "primary_user": bot, "config": "hang_in_start: true\n" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{hung}");
    assert_eq!(hung["started"], false, "{hung}");
    assert_eq!(hung["enabled"], false, "{hung}");
    assert!(
        hung["failure"]
            .as_str()
            .is_some_and(|f| f.contains("did not finish")),
        "{hung}"
    );
    // The other instance of the same plugin came back after its worker was killed.
    wait_for_instance(&server, &token, "blocker1", "a restart", |i| {
        i["started"] == true
    })
    .await;
    room.expect_reply(&bot, "!ping", "pong").await;
    server.stop().await;
}

/// The echo plugin in an encrypted room: the event reaches it decrypted, and its reply goes out
/// encrypted (matrix-sdk in the server encrypts what the plugin sends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_plugins_answer_in_encrypted_rooms() {
    let (server, synapse) = python_server("python_e2ee").await;
    let token = server.root_token().await;
    let (bot, _) = syncing_bot(&server, &token).await;
    upload_plugin(&server, &token, "echo").await;
    create_instance(&server, &token, "echo1", ECHO, &bot).await;

    let mut room = encrypted_room_with(synapse, &bot).await;
    let pong = room.ask("!ping", &bot, "pong").await;
    assert_eq!(pong, Some(true), "no encrypted pong from the bot");
    server.stop().await;
}

/// The Python package's own unit tests (python/tests), in the environment the server prepares.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_package_unit_tests_pass() {
    let settings = maubot_types::config::PythonHost {
        venv: maubot_test_support::python_host_venv()
            .display()
            .to_string(),
        ..Default::default()
    };
    let python = maubot_server::runtime::python::prepare_environment(&settings)
        .await
        .expect("the Python environment");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = tokio::process::Command::new(python)
        .args([
            "-m",
            "unittest",
            "discover",
            "-s",
            "python/tests",
            "-t",
            "python",
        ])
        .env("PYTHONPATH", repo.join("python"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(&repo)
        .output()
        .await
        .expect("python runs");
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{report}");
    assert!(report.contains("OK"), "{report}");
}

/// Without Python, preparing the plugin host says what to install or configure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_python_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = maubot_types::config::PythonHost {
        interpreter: Some("/nonexistent/python3".into()),
        venv: dir.path().join("venv").display().to_string(),
        ..Default::default()
    };
    let error = maubot_server::runtime::python::prepare_environment(&settings)
        .await
        .expect_err("no interpreter");
    let message = error.to_string();
    assert!(
        message.contains("`/nonexistent/python3` was not found")
            && message.contains("python_host.interpreter"),
        "{message}"
    );
}

/// What a Python plugin logs reaches the live log websocket under its instance's logger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_plugin_log_lines_reach_the_log_websocket() {
    crate::logs::capture_logs();
    let (server, synapse) = python_server("python_logs").await;
    let token = server.root_token().await;
    let (bot, _) = syncing_bot(&server, &token).await;
    let room = Room::with_bot(synapse, &bot).await;
    upload_plugin(&server, &token, "echo").await;
    create_instance(&server, &token, "logecho", ECHO, &bot).await;
    let (mut socket, _) =
        crate::logs::authenticated(&server, "?logger=maubot.instance.logecho").await;
    room.expect_reply(&bot, "!ping", "pong").await;
    let record = crate::logs::record_where(&mut socket, |r| {
        r["msg"]
            .as_str()
            .is_some_and(|m| m.starts_with("ping from"))
    })
    .await;
    assert_eq!(record["name"], "maubot.instance.logecho", "{record}");
    assert_eq!(record["levelname"], "INFO", "{record}");
    assert_eq!(record["msg"], format!("ping from {}", room.tester.user_id));
    server.stop().await;
}

/// A plugin with `webapp: true`: its routes answer under `/_matrix/maubot/plugin/<instance>/`,
/// without the management token, and can act as the bot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_plugin_web_apps_answer_http() {
    let (server, synapse) = python_server("python_webapp").await;
    let token = server.root_token().await;
    let (bot, _) = syncing_bot(&server, &token).await;
    let room = Room::with_bot(synapse, &bot).await;
    upload_plugin(&server, &token, "webhook").await;
    create_instance(&server, &token, "hook1", "xyz.maubot-rs.test.webhook", &bot).await;
    let web = |path: &str| format!("http://{}/_matrix/maubot/plugin/{path}", server.addr());

    let hello = server
        .http
        .get(web("hook1/hello?name=bob"))
        .send()
        .await
        .expect("request");
    assert_eq!(hello.status(), StatusCode::OK);
    assert_eq!(hello.text().await.expect("body"), "hello bob");

    let notified = server
        .http
        .post(web("hook1/notify"))
        .json(&json!({ "room_id": room.id, "text": "deploy finished" }))
        .send()
        .await
        .expect("request");
    assert_eq!(notified.status(), StatusCode::OK);
    let answer: Value = notified.json().await.expect("JSON");
    let event_id = answer["event_id"].as_str().expect("event_id").to_owned();
    room.message_from(&bot, "the webhook's notice", |e| {
        e["event_id"] == event_id.as_str() && e["content"]["body"] == "deploy finished"
    })
    .await;

    room.expect_reply(&bot, "!url", "/_matrix/maubot/plugin/hook1/")
        .await;

    // No such route in the plugin, no such web app, no trailing slash: 404.
    for path in ["hook1/nothing-here", "nohook/hello", "hook1"] {
        let status = server
            .http
            .get(web(path))
            .send()
            .await
            .expect("request")
            .status();
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (_, stopped) = put_instance(&server, &token, "hook1", json!({ "started": false })).await;
    assert_eq!(stopped["started"], false);
    let status = server
        .http
        .get(web("hook1/hello"))
        .send()
        .await
        .expect("request")
        .status();
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

/// A plugin's `dependencies` are installed by the server (maubot leaves that to the operator);
/// one that cannot be installed is reported on the instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_plugin_dependencies_install_themselves() {
    let (server, synapse) = python_server("python_deps").await;
    let token = server.root_token().await;
    let (bot, _) = syncing_bot(&server, &token).await;
    let room = Room::with_bot(synapse, &bot).await;
    upload_plugin(&server, &token, "deps").await;
    let instance = create_instance(&server, &token, "deps1", "xyz.maubot-rs.test.deps", &bot).await;
    assert_eq!(instance["started"], true, "{instance}");
    room.expect_reply(&bot, "!when 5 March 2024", "2024-03-05")
        .await;

    let impossible = zip_of(&[
        (
            "maubot.yaml",
            b"id: test.nodeps\nversion: 1.0.0\nmodules: [nodeps]\nmain_class: NoDeps\n\
              dependencies: [maubot-rs-no-such-package-anywhere==1.0]\n",
        ),
        (
            "nodeps.py",
            b"from maubot import Plugin\n\nclass NoDeps(Plugin):\n    pass\n",
        ),
    ]);
    let (status, _) = upload(&server, &token, impossible, "").await;
    assert_eq!(status, StatusCode::CREATED);
    let failed = create_instance(&server, &token, "nodeps1", "test.nodeps", &bot).await;
    assert_eq!(failed["started"], false, "{failed}");
    assert!(
        failed["failure"]
            .as_str()
            .is_some_and(|f| f.contains("maubot-rs-no-such-package-anywhere")),
        "{failed}"
    );
    server.stop().await;
}

/// An instance database: created with the plugin's upgrade table, kept across restarts of the
/// instance, browsed and changed through the database routes, moved to the trash when the
/// instance is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_plugin_databases_persist_can_be_browsed_and_go_with_the_instance() {
    let (server, synapse) = python_server("python_db").await;
    let token = server.root_token().await;
    let (bot, _) = syncing_bot(&server, &token).await;
    let room = Room::with_bot(synapse, &bot).await;
    upload_plugin(&server, &token, "storage").await;
    let instance = create_instance(
        &server,
        &token,
        "notes1",
        "xyz.maubot-rs.test.storage",
        &bot,
    )
    .await;
    assert_eq!(instance["started"], true, "{instance}");
    assert_eq!(instance["database"], true, "{instance}");
    assert_eq!(instance["database_interface"], "asyncpg", "{instance}");
    assert_eq!(instance["database_engine"], "sqlite", "{instance}");
    let db = server.dir().join("dbs").join("notes1.db");
    assert!(db.exists(), "no {}", db.display());

    room.expect_reply(&bot, "!remember buy milk", "noted").await;
    let (_, stopped) = put_instance(&server, &token, "notes1", json!({ "started": false })).await;
    assert_eq!(stopped["started"], false);
    let (_, started) = put_instance(&server, &token, "notes1", json!({ "started": true })).await;
    assert_eq!(started["started"], true);
    room.expect_reply(&bot, "!recall", "latest: buy milk").await;

    // The database browser of the web UI.
    let (status, tables) = server.get("/instance/notes1/database", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{tables}");
    let note = &tables["note"]["columns"];
    assert_eq!(note["id"]["primary"], true, "{tables}");
    assert_eq!(note["text"]["type"], "TEXT", "{tables}");
    assert_eq!(note["text"]["nullable"], false, "{tables}");
    assert!(
        tables.get("version").is_some(),
        "the upgrade table's version table: {tables}"
    );
    let (status, rows) = server
        .get(
            "/instance/notes1/database/note?order=id:desc&order=nonsense",
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rows}");
    assert_eq!(rows["rows"], json!([[1, "buy milk"]]), "{rows}");
    assert_eq!(rows["columns"], json!(["id", "text"]), "{rows}");
    let query =
        |body: Value| server.post_json("/instance/notes1/database/query", Some(&token), body);
    let (status, rows) =
        query(json!({ "query": "SELECT text FROM note", "rows_as_dict": true })).await;
    assert_eq!(status, StatusCode::OK, "{rows}");
    assert_eq!(rows["rows"], json!([{ "text": "buy milk" }]), "{rows}");
    let (status, done) =
        query(json!({ "query": "INSERT INTO note (text) VALUES ('from the UI')" })).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["rowcount"], 1, "{done}");
    room.expect_reply(&bot, "!recall", "latest: from the UI")
        .await;
    let bad = query(json!({ "query": "SELEC nonsense" })).await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "sql_error");
    assert_eq!(bad.1["ok"], false);
    assert_eq!(bad.1["query"], "SELEC nonsense");
    // Regression: ATTACH let an admin read the main database's access tokens through an
    // instance database.
    let main_db = server.dir().join("maubot.db");
    let attach = format!("ATTACH DATABASE '{}' AS main_db", main_db.display());
    let refused = query(json!({ "query": attach })).await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "sql_error");
    let (status, tables) = query(json!({ "query": "SELECT name FROM pragma_database_list" })).await;
    assert_eq!(status, StatusCode::OK, "{tables}");
    assert_eq!(tables["rows"], json!([["main"]]), "{tables}");
    assert_error(
        &query(json!({})).await,
        StatusCode::BAD_REQUEST,
        "query_missing",
    );
    let missing = server
        .get("/instance/notes1/database/nope", Some(&token))
        .await;
    assert_error(&missing, StatusCode::NOT_FOUND, "table_not_found");
    let unknown = server.get("/instance/nope/database", Some(&token)).await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "instance_not_found");
    let (status, _) = put_instance(
        &server,
        &token,
        "notes2",
        json!({ "type": "xyz.maubot-rs.test.storage", "primary_user": bot, "enabled": false }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let unopened = server.get("/instance/notes2/database", Some(&token)).await;
    assert_error(&unopened, StatusCode::NOT_FOUND, "plugin_has_no_database");

    let (status, _) = server
        .send(
            server.http.delete(server.api("/instance/notes1")),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!db.exists(), "the database stayed");
    assert!(
        files_in(&server.dir().join("trash"))
            .iter()
            .any(|n| n.ends_with("-deleted-notes1.db")),
        "the database was not trashed"
    );
    server.stop().await;
}
