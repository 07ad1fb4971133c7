//! The way events take to a plugin, under load: nothing lost, nothing doubled, nothing out of
//! order.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::clients::syncing_bot;
use crate::plugins::{Room, create_instance, python_server, upload_plugin};

const ECHO: &str = "xyz.maubot-rs.test.echo";
const BURST: usize = 1000;

/// 1,000 messages sent as fast as one client sends them, to one instance: every one handled
/// once, in the order sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_messages_is_handled_completely_and_in_order() {
    let (server, synapse) = python_server("burst").await;
    let token = server.root_token().await;
    let (bot, _) = syncing_bot(&server, &token).await;
    upload_plugin(&server, &token, "echo").await;
    create_instance(&server, &token, "echo1", ECHO, &bot).await;
    let room = Room::with_bot(synapse, &bot).await;
    room.expect_reply(&bot, "!ping", "pong").await;

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
