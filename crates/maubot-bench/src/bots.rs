//! `maubot-bench bots`: memory and file descriptors per idle syncing bot, with the maubot-rs
//! server running in this process.

use std::time::{Duration, Instant};

use anyhow::bail;
use maubot_server::client::ClientRequest;
use maubot_test_support::Synapse;
use maubot_types::secret::Secret;

use crate::procfs;

pub async fn run(count: usize, idle: u64) -> anyhow::Result<()> {
    let me = std::process::id();
    eprintln!("starting Synapse");
    let synapse = tokio::task::spawn_blocking(Synapse::start).await??;
    let dir = tempfile::tempdir()?;
    let yaml = format!(
        "database: sqlite:{}\nserver: {{hostname: 127.0.0.1, port: 0, unshared_secret: bench}}\n\
         logging: {{root: {{level: ERROR}}}}\n",
        dir.path().join("maubot.db").display()
    );
    let mut config = maubot_types::config::parse(&yaml)?.config;
    config.crypto_store_path = dir.path().join("crypto-stores").display().to_string();
    let running = maubot_server::start(config).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_before, fds_before) = (procfs::rss(me)?, procfs::fds(me)?);

    eprintln!("registering and starting {count} bots");
    let started = Instant::now();
    let clients = &running.state().clients;
    for i in 0..count {
        let user = synapse
            .register(&format!("benchbot{i}"), "bench-password", false)
            .await?;
        let request = ClientRequest {
            homeserver: Some(synapse.base_url()),
            access_token: Some(Secret::new(user.access_token)),
            device_id: Some(user.device_id),
            ..ClientRequest::default()
        };
        clients.create(request, None).await?;
        if (i + 1) % 10 == 0 {
            eprintln!(
                "  {} bots started after {:.1} s",
                i + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while clients.views().await.iter().any(|c| !c.sync_ok) {
        if Instant::now() > deadline {
            bail!("not all bots were syncing after 5 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let all_syncing = started.elapsed();
    tokio::time::sleep(Duration::from_secs(idle)).await;
    let (rss_after, fds_after) = (procfs::rss(me)?, procfs::fds(me)?);

    let per_bot_rss = rss_after.saturating_sub(rss_before) as f64 / count as f64;
    let per_bot_fds = fds_after.saturating_sub(fds_before) as f64 / count as f64;
    eprintln!(
        "| bots | RSS without bots | RSS with bots | RSS per bot | fds per bot | time to all syncing |"
    );
    eprintln!("|---|---|---|---|---|---|");
    eprintln!(
        "| {count} | {:.1} MiB | {:.1} MiB | {:.2} MiB | {per_bot_fds:.1} | {:.1} s |",
        rss_before as f64 / 1048576.0,
        rss_after as f64 / 1048576.0,
        per_bot_rss / 1048576.0,
        all_syncing.as_secs_f64()
    );
    crate::print_json(&serde_json::json!({
        "bench": "bots", "bots": count, "rss_bytes_without_bots": rss_before,
        "rss_bytes_with_bots": rss_after, "rss_bytes_per_bot": per_bot_rss,
        "fds_without_bots": fds_before, "fds_with_bots": fds_after, "fds_per_bot": per_bot_fds,
        "seconds_to_all_syncing": all_syncing.as_secs_f64(),
    }));
    running.shutdown().await?;
    drop(synapse);
    Ok(())
}
