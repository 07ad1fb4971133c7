//! A homeserver outage: the bots lose their homeserver for a minute while people go on writing
//! to them.

use std::time::{Duration, Instant};

use maubot_test_support::{Partition, Synapse};

use crate::clients::{server_with_synapse_and, wait_for_client};
use crate::plugins::echo_bot;
use crate::support::Backend;

const OUTAGE: Duration = Duration::from_secs(60);
/// How soon after the homeserver is back a bot must sync again.
const BACK_WITHIN: Duration = Duration::from_secs(30);

/// The server reaches Synapse through a partition that is cut for 60 s; the tester reaches
/// Synapse directly and sends messages all along. Once the partition heals, the bot syncs
/// within 30 s, and every message sent meanwhile is answered exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bots_return_after_a_homeserver_outage_and_answer_what_came_meanwhile_once() {
    let synapse = tokio::task::spawn_blocking(Synapse::shared)
        .await
        .expect("synapse");
    let partition = Partition::to(synapse.base_url().trim_start_matches("http://"))
        .await
        .expect("partition");
    let through_partition = partition.url();
    let (server, _) = server_with_synapse_and(Backend::Sqlite, "outage", |config| {
        if let Some(homeserver) = config.homeservers.get_mut("localhost") {
            homeserver.url = through_partition;
        }
    })
    .await
    .expect("sqlite");
    let (token, bot, room) = echo_bot(&server, synapse, "echo1").await;

    partition.cut();
    let cut = Instant::now();
    wait_for_client(&server, &token, &bot, "sync_ok false", |c| {
        c["sync_ok"] == false
    })
    .await;
    let mut asked = Vec::new();
    while cut.elapsed() < OUTAGE {
        asked.push(room.say("!ping").await);
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    partition.heal();
    let healed = Instant::now();
    wait_for_client(&server, &token, &bot, "sync_ok again", |c| {
        c["sync_ok"] == true
    })
    .await;
    let back_after = healed.elapsed();
    assert!(
        back_after <= BACK_WITHIN,
        "the bot synced {back_after:?} after the homeserver was back"
    );

    let counts = room.answers(&bot, &asked).await;
    assert!(
        counts.iter().all(|&n| n == 1),
        "answers to the {} messages sent during the outage: {counts:?}",
        asked.len()
    );
    // A second answer would come soon after the first, from a sync replayed twice.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let counts = room.answers(&bot, &asked).await;
    assert!(counts.iter().all(|&n| n == 1), "answered twice: {counts:?}");
    server.stop().await;
}
