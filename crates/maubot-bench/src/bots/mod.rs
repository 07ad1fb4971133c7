//! `maubot-bench bots`: many syncing bots on one server, one server at a time (maubot-rs, then
//! maubot 0.6.0 with `--maubot`), against one Synapse:
//!
//! 1. one bot with an echo instance in a room with the tester: `!ping` round trips through it
//!    alone;
//! 2. bots added up to each of `--counts`, ten to a room with the tester, nothing else: memory
//!    and descriptors, in total and per bot over the lone bot;
//! 3. an echo instance on the last bot: `!ping` through it;
//! 4. a restart: the time from the spawn until Synapse has answered a `/sync` of every bot, and
//!    meanwhile an encrypted `!ping` to the last bot from a tester with its own keys (sent as
//!    soon as the API answers), which must come back decrypted-and-answered, encrypted.

mod e2ee;
mod report;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;
use futures_util::StreamExt as _;
use maubot_test_support::{RegisteredUser, Synapse};

use crate::cli::BotsArgs;
use crate::compare::api::Api;
use crate::compare::matrix::{self, ECHO_ID, Tester};
use crate::compare::server::{self, Kind, Programs, Server, Setup};
use crate::compare::stats::Summary;
use crate::compare::synapse_log::SyncWatch;
use crate::procfs::{self, Usage};
use report::{Measured, Restart, Run};

/// Unmeasured `!ping`s before the measured ones.
const WARM_UP_PINGS: usize = 3;
/// Bots per room.
const ROOM_SIZE: usize = 10;
/// Bots added through the API at once.
const ADDING_AT_ONCE: usize = 8;

pub async fn run(args: BotsArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let Some(&most) = args.counts.last() else {
        bail!("--counts names no count");
    };
    if args.counts.windows(2).any(|w| w[0] >= w[1]) || args.counts[0] < 2 {
        bail!("--counts must ascend, from at least 2");
    }
    let maubot_rs = server::maubot_rs_binary(args.maubot_rs.as_deref())?;
    let maubot_venv = if args.maubot {
        server::maubot_venv().await?
    } else {
        PathBuf::new()
    };
    let archive = matrix::echo_mbp()?;
    eprintln!("starting Synapse");
    let synapse = tokio::task::spawn_blocking(Synapse::start).await??;
    let programs = Programs {
        maubot_rs,
        maubot_venv: maubot_venv.clone(),
        python_host_venv: maubot_test_support::python_host_venv(),
        homeserver: synapse.base_url(),
    };
    let mut runs = Vec::new();
    let kinds: &[Kind] = if args.maubot {
        &[Kind::MaubotRs, Kind::Maubot]
    } else {
        &[Kind::MaubotRs]
    };
    for &kind in kinds {
        let encryption = kind == Kind::MaubotRs || server::maubot_has_crypto(&maubot_venv).await;
        runs.push(one_server(kind, &args, most, encryption, &synapse, &programs, &archive).await?);
    }
    drop(synapse);
    let report = report::Report {
        args: &args,
        runs: &runs,
        seconds: started.elapsed().as_secs_f64(),
    };
    crate::report(&report.table(), &report.to_json(), args.json.as_deref())
}

async fn one_server(
    kind: Kind,
    args: &BotsArgs,
    most: usize,
    encryption: bool,
    synapse: &Synapse,
    programs: &Programs,
    archive: &[u8],
) -> anyhow::Result<Run> {
    let name = kind.name();
    let prefix = kind.user_prefix();
    let hs = synapse.base_url();
    let settle = Duration::from_secs(args.settle);
    eprintln!("{name}: registering {most} bots and two testers");
    let registering = Instant::now();
    let bots = matrix::register_many(synapse, &format!("{prefix}b"), most).await?;
    let mut tester = Tester::new(
        &hs,
        synapse
            .register(&format!("{prefix}btester"), "bench-password", false)
            .await?,
    );
    eprintln!(
        "{name}: registered in {:.1} s",
        registering.elapsed().as_secs_f64()
    );
    let setup = Setup::new(kind, programs)?;
    let mut server = setup.spawn(programs)?;
    let (api, _) = server.wait_api(Duration::from_secs(120)).await?;
    tokio::time::sleep(settle).await;
    let idle = measure(&server)?;

    // The lone bot, with an echo instance.
    add_bots(&api, &hs, &bots[..1]).await?;
    api.wait_clients_syncing(1, Duration::from_secs(120))
        .await?;
    api.upload_plugin(archive.to_vec()).await?;
    api.create_instance("echo-first", ECHO_ID, &bots[0].user_id)
        .await?;
    let mut rooms = vec![joined_room(&tester, &bots[..1]).await?];
    tester.start_sync().await?;
    let lone_pings = pings(&mut tester, &rooms[0], &bots[0].user_id, args.pings).await?;
    eprintln!(
        "{name}: !ping through the lone bot: {:.1} ms median",
        lone_pings.median()
    );
    tokio::time::sleep(settle).await;
    let lone = measure(&server)?;

    let mut at_counts = Vec::new();
    let mut added = 1;
    for &count in &args.counts {
        eprintln!("{name}: adding bots {}..{count}", added + 1);
        let adding = Instant::now();
        add_bots(&api, &hs, &bots[added..count]).await?;
        api.wait_clients_syncing(count, Duration::from_secs(600))
            .await?;
        let add_seconds = adding.elapsed().as_secs_f64();
        for group in bots[added..count].chunks(ROOM_SIZE) {
            rooms.push(joined_room(&tester, group).await?);
        }
        added = count;
        eprintln!(
            "{name}: {count} bots syncing and in rooms (added in {add_seconds:.1} s); idling {} s",
            args.settle
        );
        tokio::time::sleep(settle).await;
        at_counts.push(Measured {
            bots: count,
            usage: measure(&server)?,
            add_seconds,
        });
    }

    // `!ping` through the last bot, alone with the tester in a room of its own so that only it
    // answers.
    let last = &bots[most - 1];
    api.create_instance("echo-last", ECHO_ID, &last.user_id)
        .await?;
    let last_room = joined_room(&tester, std::slice::from_ref(last)).await?;
    let last_pings = pings(&mut tester, &last_room, &last.user_id, args.pings).await?;
    eprintln!(
        "{name}: !ping through bot #{most}: {:.1} ms median",
        last_pings.median()
    );
    rooms.push(last_room);

    let secret_tester = if encryption {
        let user = synapse
            .register(&format!("{prefix}bsecret"), "bench-password", false)
            .await?;
        Some(e2ee::Tester::with_room(&hs, &user, &last.user_id).await?)
    } else {
        None
    };

    // Restart. A message waits in every room, so that each bot's first sync after the restart
    // is answered at once (instead of after the long poll's 30 s) on either server.
    server.stop().await?;
    for room in &rooms {
        tester.say(room, "wake up").await?;
    }
    let users: BTreeSet<String> = bots.iter().map(|b| b.user_id.clone()).collect();
    let watch = SyncWatch::start(&synapse.log_path(), users)?;
    let mut server = setup.spawn(programs)?;
    let spawned = server.spawned_at;
    let (_, api_after) = server.wait_api(Duration::from_secs(120)).await?;
    let secret_ping = match &secret_tester {
        Some(secret) => Some(secret.ping(&last.user_id, Duration::from_secs(120)).await),
        None => None,
    };
    let all_synced = watch
        .all_synced(most, Duration::from_secs(600))
        .await?
        .saturating_duration_since(spawned);
    eprintln!(
        "{name}: restart: API after {:.2} s, all {most} bots synced after {:.2} s",
        api_after.as_secs_f64(),
        all_synced.as_secs_f64()
    );
    tokio::time::sleep(settle).await;
    let after_restart = measure(&server)?;
    server.stop().await?;
    Ok(Run {
        kind,
        encryption,
        idle,
        lone,
        lone_pings,
        at_counts,
        last_pings,
        restart: Restart {
            api: api_after,
            all_synced,
            usage: after_restart,
            secret_ping,
        },
    })
}

/// The server process alone and its process tree (maubot-rs's plugin workers).
fn measure(server: &Server) -> anyhow::Result<report::Usages> {
    Ok(report::Usages {
        tree: server.usage()?,
        main: main_usage(server.pid)?,
    })
}

fn main_usage(pid: u32) -> anyhow::Result<Usage> {
    let rollup = procfs::smaps_rollup(pid)?;
    Ok(Usage {
        rss_bytes: procfs::rss(pid)?,
        fds: procfs::fds(pid)?,
        processes: 1,
        main_rss_bytes: procfs::rss(pid)?,
        anon_bytes: 0,
        pss_bytes: rollup.pss,
        private_dirty_bytes: rollup.private_dirty,
    })
}

/// Adds `bots` as clients through the API, a few at a time.
async fn add_bots(api: &Api, homeserver: &str, bots: &[RegisteredUser]) -> anyhow::Result<()> {
    let mut adding = futures_util::stream::iter(bots)
        .map(|bot| api.add_client(homeserver, &bot.access_token, &bot.device_id))
        .buffer_unordered(ADDING_AT_ONCE);
    let mut done = 0;
    while let Some(added) = adding.next().await {
        added?;
        done += 1;
        if done % 100 == 0 {
            eprintln!("  {done} of {} added", bots.len());
        }
    }
    Ok(())
}

/// A room of the tester's with `bots` in it, once they have joined.
async fn joined_room(tester: &Tester, bots: &[RegisteredUser]) -> anyhow::Result<String> {
    let members: Vec<String> = bots.iter().map(|b| b.user_id.clone()).collect();
    let room = tester.create_room(&members).await?;
    tester
        .wait_joined(&room, &members, Duration::from_secs(120))
        .await?;
    Ok(room)
}

async fn pings(
    tester: &mut Tester,
    room: &str,
    bot: &str,
    count: usize,
) -> anyhow::Result<Summary> {
    for _ in 0..WARM_UP_PINGS {
        tester.ping(room, bot).await?;
    }
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        samples.push(tester.ping(room, bot).await?.as_secs_f64() * 1000.0);
    }
    Ok(Summary::of(samples))
}
