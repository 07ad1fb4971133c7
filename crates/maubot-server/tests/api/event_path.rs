//! The way events take to a plugin, under load: nothing lost, nothing doubled, nothing out of
//! order.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::clients::syncing_bot;
use crate::plugins::{ECHO, Room, create_instance, echo_bot, python_server, upload_plugin};

const BURST: usize = 1000;

/// 1,000 messages sent as fast as one client sends them, to one instance: every one handled
/// once, in the order sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_messages_is_handled_completely_and_in_order() {
    let (server, synapse) = python_server("burst").await;
    let (_, bot, room) = echo_bot(&server, synapse, "echo1").await;

    let started = Instant::now();
    for n in 0..BURST {
        room.say(&format!("!seq {n}")).await;
    }
    let sent = started.elapsed();
    let is_seq = |e: &serde_json::Value| {
        e["content"]["body"]
            .as_str()
            .is_some_and(|b| b.starts_with("seq "))
    };
    let mut replies = Vec::new();
    while started.elapsed() < sent + Duration::from_secs(120) {
        replies = room.messages_from(&bot, is_seq).await;
        if replies.len() >= BURST {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // `seq <n> #<k>`: message n was the k-th the plugin handled.
    let mut order = BTreeMap::new();
    for reply in &replies {
        let body = reply["content"]["body"].as_str().unwrap_or_default();
        let parsed = body
            .strip_prefix("seq ")
            .and_then(|rest| rest.split_once(" #"))
            .and_then(|(n, k)| Some((n.parse::<usize>().ok()?, k.parse::<usize>().ok()?)));
        let (n, k) = parsed.unwrap_or_else(|| panic!("a reply of another shape: {body}"));
        assert!(
            order.insert(n, k).is_none(),
            "message {n} was answered twice"
        );
    }
    assert_eq!(
        order.len(),
        BURST,
        "{} of {BURST} messages answered (sent in {sent:?})",
        order.len()
    );
    let handled: Vec<usize> = order.values().copied().collect();
    let expected: Vec<usize> = (1..=BURST).collect();
    assert_eq!(handled, expected, "handled out of the order sent");
    server.stop().await;
}

/// The worker's process ID, as the blocker plugin's worker says.
async fn worker_pid(room: &Room, bot: &str) -> i32 {
    let asked = room.say("!pid").await;
    let reply = room
        .message_from(bot, "the worker's pid", |e| {
            e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == asked.as_str()
        })
        .await;
    let body = reply["content"]["body"].as_str().unwrap_or_default();
    body.rsplit(' ')
        .next()
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("not a pid: {body}"))
}

/// A worker stopped (SIGSTOP) or killed (SIGKILL) while messages arrive: the liveness check or
/// the exit is noticed, the worker replaced, and every message answered; another plugin's
/// instance on the same bot answers all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_faults_lose_no_message() {
    let (server, synapse) = python_server("worker_faults").await;
    let token = server.root_token().await;
    let (bot, _) = syncing_bot(&server, &token).await;
    upload_plugin(&server, &token, "echo").await;
    upload_plugin(&server, &token, "blocker").await;
    create_instance(&server, &token, "echo1", ECHO, &bot).await;
    create_instance(
        &server,
        &token,
        "blocker1",
        "xyz.maubot-rs.test.blocker",
        &bot,
    )
    .await;
    let room = Room::with_bot(synapse, &bot).await;
    room.expect_reply(&bot, "!alive", "alive").await;

    for signal in [libc::SIGSTOP, libc::SIGKILL] {
        let pid = worker_pid(&room, &bot).await;
        let mut asked = Vec::new();
        for n in 0..30 {
            if n == 10 {
                // SAFETY: a plain kill(2) of the worker process the test's server started.
                #[allow(unsafe_code)]
                let sent = unsafe { libc::kill(pid, signal) };
                assert_eq!(sent, 0, "kill {pid}");
            }
            asked.push(room.say("!alive").await);
        }
        room.expect_reply(&bot, "!ping", "pong").await;
        let counts = room.answers(&bot, &asked).await;
        assert!(
            counts.iter().all(|&n| n > 0),
            "signal {signal}: answers per message {counts:?}"
        );
        // Only a message whose handler was running when the worker stopped goes to the next
        // worker a second time (its reply may be out already): one or two here.
        let twice = counts.iter().filter(|&&n| n > 1).count();
        assert!(
            twice <= 2,
            "signal {signal}: answers per message {counts:?}"
        );
        assert_ne!(
            worker_pid(&room, &bot).await,
            pid,
            "the worker was replaced"
        );
    }
    server.stop().await;
}
