//! Workers forked by the zygote: they are its children, not the server's; they outlive it; and
//! a new zygote starts when the next worker needs one.

use std::time::Duration;

use serde_json::Value;

use crate::clients::{syncing_bot, unique};
use crate::plugins::{
    ECHO, Room, create_instance, python_server, upload_plugin, wait_for_instance,
};

const BLOCKER: &str = "xyz.maubot-rs.test.blocker";

/// The parent process of the blocker instance's worker, as it says.
async fn parent_of_worker(room: &Room, bot: &str) -> u32 {
    let asked = room.say("!parent").await;
    let answer = room
        .message_from(bot, "the worker's parent", |e: &Value| {
            e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == asked.as_str()
        })
        .await;
    let body = answer["content"]["body"].as_str().unwrap_or_default();
    body.rsplit("parent: ")
        .next()
        .and_then(|pid| pid.trim().parse().ok())
        .unwrap_or_else(|| panic!("no parent in {body:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_are_forked_and_outlive_their_zygote() {
    let (server, synapse) = python_server("zygote").await;
    let token = server.root_token().await;
    let (bot, _) = syncing_bot(&server, &token).await;
    let room = Room::with_bot(synapse, &bot).await;
    upload_plugin(&server, &token, "blocker").await;
    let blocker = unique("blocker");
    create_instance(&server, &token, &blocker, BLOCKER, &bot).await;

    let zygote = parent_of_worker(&room, &bot).await;
    assert_ne!(
        zygote,
        std::process::id(),
        "the worker is the server's own child"
    );
    let status = std::fs::read_to_string(format!("/proc/{zygote}/cmdline")).expect("zygote");
    assert!(status.contains("maubot_host.zygote"), "{status:?}");

    // The zygote dies: the running worker goes on.
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &zygote.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    tokio::time::sleep(Duration::from_millis(200)).await;
    room.expect_reply(&bot, "!alive", "alive").await;

    // The next worker gets a new zygote.
    upload_plugin(&server, &token, "echo").await;
    let echo = unique("echo");
    let instance = create_instance(&server, &token, &echo, ECHO, &bot).await;
    assert_eq!(instance["started"], true, "{instance}");
    room.expect_reply(&bot, "!ping", "pong").await;

    // A worker whose zygote is gone still has its crash noticed, and comes back (now a child
    // of the new zygote).
    room.say("!crash").await;
    wait_for_instance(&server, &token, &blocker, "a crash", |i| {
        i["failure"].as_str().is_some_and(|f| f.contains("exited"))
    })
    .await;
    wait_for_instance(&server, &token, &blocker, "running again", |i| {
        i["started"] == true
    })
    .await;
    let new_zygote = parent_of_worker(&room, &bot).await;
    assert_ne!(new_zygote, zygote);
    assert_ne!(new_zygote, std::process::id());
    server.stop().await;
}
