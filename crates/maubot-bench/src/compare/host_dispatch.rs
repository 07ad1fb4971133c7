//! The Python plugin host driven directly: one worker (`python -m maubot_host` over a socket
//! pair, as the server runs it) with one echo instance, fed `!ping` events as fast as it takes
//! them while its `matrix` requests are answered at once.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use maubot_types::plugin::{ArchiveLimits, PluginArchive};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

use super::stats::Summary;
use crate::procfs;

/// Events in flight at once.
pub const WINDOW: usize = 64;
/// Events sent before the clock starts.
const WARM_UP: usize = 200;
/// Events sent one at a time for the latency.
pub const SINGLE: usize = 200;

#[derive(Debug, Clone)]
pub struct DispatchResult {
    pub events: usize,
    pub seconds: f64,
    /// The worker's RSS with the instance started, before the events.
    pub worker_rss_bytes: u64,
    /// One event at a time: from writing the event to the instance's `matrix` send request
    /// arriving, in ms.
    pub single: Summary,
}

impl DispatchResult {
    pub fn per_second(&self) -> f64 {
        self.events as f64 / self.seconds
    }

    pub fn to_json(&self) -> Value {
        json!({
            "events": self.events, "seconds": self.seconds, "window": WINDOW,
            "events_per_second": self.per_second(), "worker_rss_bytes": self.worker_rss_bytes,
            "single_event_to_send_ms": self.single.to_json(),
        })
    }
}

/// Runs `events` events (plus a warm-up) through one worker of `python`, with the `maubot` and
/// `maubot_host` packages of `pythonpath`.
pub async fn run(
    python: &Path,
    pythonpath: &Path,
    archive: &[u8],
    events: usize,
) -> anyhow::Result<DispatchResult> {
    let dir = tempfile::tempdir()?;
    let mbp = dir.path().join("echo.mbp");
    std::fs::write(&mbp, archive)?;
    let meta = PluginArchive::read(archive, &ArchiveLimits::default())?
        .meta
        .to_json();
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    let output = std::fs::File::create(dir.path().join("worker.log"))?;
    let mut child = tokio::process::Command::new(python)
        .args(["-m", "maubot_host"])
        .env("PYTHONPATH", pythonpath)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("MAUBOT_HOST_PROTOCOL", "1")
        .env("MAUBOT_HOST_PLUGIN", super::matrix::ECHO_ID)
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(output.try_clone()?)
        .stderr(output)
        .kill_on_drop(true)
        .spawn()
        .context("start the Python plugin host")?;
    let pid = child.id().context("the worker exited at once")?;
    ours.set_nonblocking(true)?;
    let (read, mut write) = tokio::net::UnixStream::from_std(ours)?.into_split();
    let mut lines = BufReader::new(read).lines();
    let log = dir.path().join("worker.log");

    let mut next = async || -> anyhow::Result<Value> {
        match tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await {
            Ok(Ok(Some(line))) => Ok(serde_json::from_str(&line)?),
            _ => bail!(
                "the worker stopped answering:\n{}",
                super::server::tail(&log, 30)
            ),
        }
    };
    let hello = next().await?;
    if hello["method"] != "hello" {
        bail!("the worker did not say hello first: {hello}");
    }
    let requests = [
        json!({ "id": 1, "method": "load", "params": { "path": mbp, "meta": meta } }),
        json!({ "id": 2, "method": "start", "params": {
            "instance_id": "echo1",
            "client": { "user_id": "@bot:localhost", "device_id": "BENCH", "homeserver": "http://127.0.0.1:1" },
            "config": "", "database": null, "webapp_url": null,
        }}),
    ];
    for request in requests {
        send(&mut write, &request).await?;
        loop {
            let message = next().await?;
            if message.get("method").is_some() {
                continue;
            }
            if message["id"] != request["id"] || message.get("error").is_some() {
                bail!("{} failed: {message}", request["method"]);
            }
            break;
        }
    }
    let worker_rss_bytes = procfs::rss(pid)?;

    let total = WARM_UP + events;
    let (mut sent, mut done) = (0usize, 0usize);
    let mut clock = Instant::now();
    while sent < total.min(WINDOW) {
        send(&mut write, &event(sent)).await?;
        sent += 1;
    }
    while done < total {
        let message = next().await?;
        match message["method"].as_str() {
            Some("matrix") => {
                let answer = json!({ "id": message["id"], "result": {
                    "status": 200, "body": { "event_id": "$bench-answer" },
                }});
                send(&mut write, &answer).await?;
            }
            Some(_) => {}
            None => {
                if message.get("error").is_some() {
                    bail!("an event failed: {message}");
                }
                done += 1;
                if done == WARM_UP {
                    clock = Instant::now();
                }
                if sent < total {
                    send(&mut write, &event(sent)).await?;
                    sent += 1;
                }
            }
        }
    }
    let seconds = clock.elapsed().as_secs_f64();

    // One at a time: the worker's share of a bot's handling time.
    let mut single = Vec::with_capacity(SINGLE);
    for n in total..total + SINGLE {
        let started = Instant::now();
        send(&mut write, &event(n)).await?;
        let mut answered = false;
        while !answered {
            let message = next().await?;
            match message["method"].as_str() {
                Some("matrix") => {
                    single.push(started.elapsed().as_secs_f64() * 1000.0);
                    let answer = json!({ "id": message["id"], "result": {
                        "status": 200, "body": { "event_id": "$bench-answer" },
                    }});
                    send(&mut write, &answer).await?;
                }
                Some(_) => {}
                None => answered = true,
            }
        }
    }
    drop(write);
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        child.kill().await?;
    }
    Ok(DispatchResult {
        events,
        seconds,
        worker_rss_bytes,
        single: Summary::of(single),
    })
}

/// The `n`-th `event` request: a `!ping` from a user in a room.
fn event(n: usize) -> Value {
    json!({ "id": 1000 + n, "method": "event", "params": { "instance_id": "echo1", "event": {
        "type": "m.room.message", "room_id": "!room:localhost", "event_id": format!("$bench{n}"),
        "sender": "@alice:localhost", "origin_server_ts": 1_700_000_000_000u64,
        "content": { "msgtype": "m.text", "body": "!ping" },
    }}})
}

async fn send(write: &mut tokio::net::unix::OwnedWriteHalf, message: &Value) -> anyhow::Result<()> {
    let mut line = serde_json::to_vec(message)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    Ok(())
}
