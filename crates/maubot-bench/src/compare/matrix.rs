//! The Matrix side: users registered on Synapse, and a tester (a plain Matrix user) who makes
//! rooms with the bots and measures `!ping` → `pong` through its own `/sync`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::StreamExt as _;
use maubot_test_support::{RegisteredUser, Synapse};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The echo plugin of the server's tests (`!ping` → reply `pong`); valid for maubot 0.6 too.
pub const ECHO_ID: &str = "xyz.maubot-rs.test.echo";

/// The `.mbp` of the test echo plugin.
pub fn echo_mbp() -> anyhow::Result<Vec<u8>> {
    plugin_mbp("echo")
}

/// The `.mbp` of a test plugin of `crates/maubot-server/tests/plugins`: every file of its
/// folder (and its subfolders) at the archive's root, as the server's tests build it.
pub fn plugin_mbp(folder: &str) -> anyhow::Result<Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) -> anyhow::Result<()> {
        for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "__pycache__") {
                    walk(root, &path, out)?;
                }
            } else {
                let name = path.strip_prefix(root)?.to_string_lossy().into_owned();
                out.push((name, std::fs::read(&path)?));
            }
        }
        Ok(())
    }
    let root = plugins_dir().join(folder);
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    walk(&root, &root, &mut files)?;
    files.sort();
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in &files {
        writer.start_file(name.as_str(), zip::write::SimpleFileOptions::default())?;
        writer.write_all(data)?;
    }
    Ok(writer.finish()?.into_inner())
}

/// The server's test plugins.
pub fn plugins_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../maubot-server/tests/plugins")
}

/// Registers `count` users `{prefix}{i}`, eight at a time (the test Synapse hashes passwords
/// cheaply).
pub async fn register_many(
    synapse: &Synapse,
    prefix: &str,
    count: usize,
) -> anyhow::Result<Vec<RegisteredUser>> {
    let mut users: Vec<(usize, RegisteredUser)> = futures_util::stream::iter(0..count)
        .map(|i| async move {
            let user = synapse
                .register(&format!("{prefix}{i}"), "bench-password", false)
                .await?;
            anyhow::Ok((i, user))
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    users.sort_by_key(|(i, _)| *i);
    Ok(users.into_iter().map(|(_, u)| u).collect())
}

/// A room event the tester's sync saw, and when.
#[derive(Debug)]
struct Seen {
    at: Instant,
    event: Value,
}

/// A plain Matrix user on the homeserver.
#[derive(Debug)]
pub struct Tester {
    http: reqwest::Client,
    homeserver: String,
    pub user: RegisteredUser,
    txn: AtomicU64,
    seen: Option<mpsc::UnboundedReceiver<Seen>>,
    sync: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Tester {
    fn drop(&mut self) {
        if let Some(sync) = self.sync.take() {
            sync.abort();
        }
    }
}

impl Tester {
    pub fn new(homeserver: &str, user: RegisteredUser) -> Tester {
        Tester {
            http: reqwest::Client::new(),
            homeserver: homeserver.to_owned(),
            user,
            txn: AtomicU64::new(0),
            seen: None,
            sync: None,
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        call(
            &self.http,
            &self.homeserver,
            &self.user.access_token,
            method,
            path,
            body,
        )
        .await
    }

    /// A new unencrypted room (room version 10, public chat) with `invite` invited; its ID.
    pub async fn create_room(&self, invite: &[String]) -> anyhow::Result<String> {
        let body = json!({ "invite": invite, "preset": "public_chat", "room_version": "10" });
        let created = self.call(Method::POST, "createRoom", Some(body)).await?;
        Ok(created["room_id"]
            .as_str()
            .with_context(|| format!("createRoom: {created}"))?
            .to_owned())
    }

    /// A new room with `bot` invited, once the bot has joined; its ID.
    pub async fn room_with(&self, bot: &str) -> anyhow::Result<String> {
        let members = [bot.to_owned()];
        let room = self.create_room(&members).await?;
        self.wait_joined(&room, &members, Duration::from_secs(60))
            .await?;
        Ok(room)
    }

    /// Waits until every user of `users` is joined to `room`.
    pub async fn wait_joined(
        &self,
        room: &str,
        users: &[String],
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let path = format!("rooms/{}/joined_members", encode(room));
        loop {
            let members = self.call(Method::GET, &path, None).await?;
            let missing = users
                .iter()
                .filter(|u| members["joined"].get(u.as_str()).is_none())
                .count();
            if missing == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{missing} bots did not join {room} within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends a text message; its event ID.
    pub async fn say(&self, room: &str, text: &str) -> anyhow::Result<String> {
        let txn = self.txn.fetch_add(1, Ordering::Relaxed);
        let path = format!(
            "rooms/{}/send/m.room.message/bench{}-{txn}",
            encode(room),
            std::process::id()
        );
        let sent = self
            .call(
                Method::PUT,
                &path,
                Some(json!({ "msgtype": "m.text", "body": text })),
            )
            .await?;
        Ok(sent["event_id"]
            .as_str()
            .with_context(|| format!("send: {sent}"))?
            .to_owned())
    }

    /// Starts following the tester's `/sync` (from now on), to see the bots' answers.
    pub async fn start_sync(&mut self) -> anyhow::Result<()> {
        let filter = json!({
            "room": {
                "timeline": { "types": ["m.room.message"], "limit": 50 },
                "state": { "lazy_load_members": true, "types": [] },
                "ephemeral": { "types": [] },
                "account_data": { "types": [] },
            },
            "presence": { "types": [] },
            "account_data": { "types": [] },
        })
        .to_string();
        let filter = utf8_percent_encode(&filter, NON_ALPHANUMERIC).to_string();
        let first = self
            .call(Method::GET, &format!("sync?filter={filter}"), None)
            .await?;
        let mut since = first["next_batch"]
            .as_str()
            .context("no next_batch")?
            .to_owned();
        let (tx, rx) = mpsc::unbounded_channel();
        let (http, homeserver, token) = (
            self.http.clone(),
            self.homeserver.clone(),
            self.user.access_token.clone(),
        );
        let task = tokio::spawn(async move {
            loop {
                let path = format!(
                    "sync?filter={filter}&timeout=30000&since={}",
                    encode(&since)
                );
                let Ok(page) = call(&http, &homeserver, &token, Method::GET, &path, None).await
                else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let at = Instant::now();
                if let Some(rooms) = page["rooms"]["join"].as_object() {
                    for (room_id, room) in rooms {
                        for event in room["timeline"]["events"].as_array().into_iter().flatten() {
                            let mut event = event.clone();
                            event["room_id"] = json!(room_id);
                            if tx.send(Seen { at, event }).is_err() {
                                return;
                            }
                        }
                    }
                }
                if let Some(next) = page["next_batch"].as_str() {
                    since = next.to_owned();
                }
            }
        });
        self.seen = Some(rx);
        self.sync = Some(task);
        Ok(())
    }

    /// The next room event the tester's sync sees (after [`Tester::start_sync`]), and when it
    /// arrived; `None` after `timeout`.
    pub async fn next_event(&mut self, timeout: Duration) -> Option<(Instant, Value)> {
        let seen = self.seen.as_mut()?;
        match tokio::time::timeout(timeout, seen.recv()).await {
            Ok(Some(Seen { at, event })) => Some((at, event)),
            _ => None,
        }
    }

    /// Says `!ping` in `room` and waits for `bot`'s reply to it; the round trip, from before
    /// the send to the reply arriving in the tester's sync.
    pub async fn ping(&mut self, room: &str, bot: &str) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let asked = self.say(room, "!ping").await?;
        let seen = self.seen.as_mut().context("start_sync first")?;
        let deadline = started + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(Some(Seen { at, event })) = tokio::time::timeout(left, seen.recv()).await else {
                bail!("{bot} did not answer !ping in {room} within 60 s");
            };
            let reply_to = &event["content"]["m.relates_to"]["m.in_reply_to"]["event_id"];
            if event["sender"] == bot && *reply_to == asked.as_str() {
                return Ok(at - started);
            }
        }
    }
}

fn encode(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

async fn call(
    http: &reqwest::Client,
    homeserver: &str,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut request = http
        .request(
            method.clone(),
            format!("{homeserver}/_matrix/client/v3/{path}"),
        )
        .bearer_auth(token)
        .timeout(Duration::from_secs(90));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        bail!("{method} {path}: {status} {text}");
    }
    Ok(serde_json::from_str(&text)?)
}
