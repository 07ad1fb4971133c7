//! `maubot-bench soak`: maubot-rs with `bots` echo bots under a steady rate of `!ping`s for
//! `minutes`. It passes when every `!ping` is answered exactly once and memory stays flat: the
//! process tree's PSS in the last fifth of the run is at most 10 % (and at least 4 MiB) above
//! its PSS in the second fifth, after the start's growth (caches, the workers' first imports).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use maubot_test_support::Synapse;
use serde_json::{Value, json};

use crate::cli::SoakArgs;
use crate::compare::matrix::{self, ECHO_ID, Tester};
use crate::compare::server::{self, Kind, Programs, Setup};
use crate::compare::stats::Summary;

/// How long the last `!ping`s may take to be answered, and how long after that a second answer
/// is waited for.
const DRAIN: Duration = Duration::from_secs(60);
const DUPLICATE_WATCH: Duration = Duration::from_secs(10);

/// One `!ping` sent.
struct Asked {
    sent: Instant,
    answers: u32,
    round_trip: Option<Duration>,
}

pub async fn run(args: SoakArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.bots > 0 && args.rate > 0.0,
        "--bots and --rate must be positive"
    );
    let started = Instant::now();
    let maubot_rs = server::maubot_rs_binary(args.maubot_rs.as_deref())?;
    let python_host_venv = maubot_test_support::python_host_venv();
    eprintln!("preparing maubot-rs's Python plugin host environment");
    maubot_server::runtime::python::prepare_environment(&maubot_types::config::PythonHost {
        venv: python_host_venv.display().to_string(),
        ..Default::default()
    })
    .await
    .context("prepare the Python plugin host's environment")?;
    eprintln!("starting Synapse");
    let synapse = tokio::task::spawn_blocking(Synapse::start).await??;
    let hs = synapse.base_url();
    let programs = Programs {
        maubot_rs,
        // Only maubot-rs runs here.
        maubot_venv: Default::default(),
        python_host_venv,
        homeserver: hs.clone(),
    };
    let setup = Setup::new(Kind::MaubotRs, &programs)?;
    let mut server = setup.spawn(&programs)?;
    let (api, _) = server.wait_api(Duration::from_secs(120)).await?;

    eprintln!("registering {} bots and the tester", args.bots);
    let tester = synapse
        .register("soaktester", "bench-password", false)
        .await?;
    let mut tester = Tester::new(&hs, tester);
    let bots = matrix::register_many(&synapse, "soak", args.bots).await?;
    for bot in &bots {
        api.add_client(&hs, &bot.access_token, &bot.device_id)
            .await?;
    }
    api.wait_clients_syncing(bots.len(), Duration::from_secs(120))
        .await?;
    api.upload_plugin(matrix::echo_mbp()?).await?;
    let mut rooms = Vec::new();
    for (i, bot) in bots.iter().enumerate() {
        api.create_instance(&format!("echo{i}"), ECHO_ID, &bot.user_id)
            .await?;
        rooms.push((tester.room_with(&bot.user_id).await?, bot.user_id.clone()));
    }
    tester.start_sync().await?;

    let load = Duration::from_secs_f64(args.minutes * 60.0);
    eprintln!(
        "{:.1} minutes of {} !ping/s over {} bots",
        args.minutes, args.rate, args.bots
    );
    let mut asked: HashMap<String, Asked> = HashMap::new();
    let mut strays = 0u64;
    let mut samples: Vec<(f64, f64, f64)> = Vec::new();
    let mut send = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    send.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sample = tokio::time::interval(Duration::from_secs(args.sample_every));
    let load_started = Instant::now();
    let mut sent = 0usize;
    let me = tester.user.user_id.clone();
    let mut count = |event: &Value, at: Instant, asked: &mut HashMap<String, Asked>| {
        let reply_to = event["content"]["m.relates_to"]["m.in_reply_to"]["event_id"]
            .as_str()
            .unwrap_or_default();
        if event["sender"] == me.as_str() {
            return;
        }
        match asked.get_mut(reply_to) {
            Some(entry) => {
                entry.answers += 1;
                entry.round_trip.get_or_insert(at - entry.sent);
            }
            None => strays += 1,
        }
    };
    while load_started.elapsed() < load {
        tokio::select! {
            _ = send.tick() => {
                let (room, _) = &rooms[sent % rooms.len()];
                let sent_at = Instant::now();
                let id = tester.say(room, "!ping").await?;
                asked.insert(id, Asked { sent: sent_at, answers: 0, round_trip: None });
                sent += 1;
            }
            _ = sample.tick() => {
                let usage = server.usage()?;
                let minute = load_started.elapsed().as_secs_f64() / 60.0;
                eprintln!(
                    "{minute:5.1} min: {sent} sent, RSS {:.1} MiB, PSS {:.1} MiB",
                    usage.rss_mib(), usage.pss_mib()
                );
                samples.push((minute, usage.rss_mib(), usage.pss_mib()));
            }
            Some((at, event)) = tester.next_event(Duration::from_secs(3600)) => {
                count(&event, at, &mut asked);
            }
        }
    }
    eprintln!("load done; waiting for the last answers");
    let drain_until = Instant::now() + DRAIN;
    let mut quiet_until: Option<Instant> = None;
    loop {
        let unanswered = asked.values().filter(|a| a.answers == 0).count();
        let deadline = match quiet_until {
            Some(until) => until,
            None if unanswered == 0 => *quiet_until.insert(Instant::now() + DUPLICATE_WATCH),
            None => drain_until,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        if let Some((at, event)) = tester.next_event(left).await {
            count(&event, at, &mut asked);
        }
    }
    let final_usage = server.usage()?;
    server.stop().await?;
    drop(synapse);

    let missed = asked.values().filter(|a| a.answers == 0).count();
    let doubled = asked.values().filter(|a| a.answers > 1).count();
    let round_trips = Summary::of(
        asked
            .values()
            .filter_map(|a| a.round_trip)
            .map(|d| d.as_secs_f64() * 1000.0)
            .collect(),
    );
    let fifth = |k: usize| -> f64 {
        let n = samples.len();
        let part: Vec<f64> = samples[n * k / 5..(n * (k + 1) / 5).max(n * k / 5 + 1).min(n)]
            .iter()
            .map(|s| s.2)
            .collect();
        part.iter().sum::<f64>() / part.len().max(1) as f64
    };
    let (early, late) = if samples.len() >= 5 {
        (fifth(1), fifth(4))
    } else {
        (f64::NAN, f64::NAN)
    };
    let allowed = (early * 0.10).max(4.0);
    let flat = samples.len() >= 5 && late - early <= allowed;
    let passed = missed == 0 && doubled == 0 && flat;
    let table = format!(
        "soak: {} bots, {:.1} min, {} !ping/s\n\
         sent {sent}, missed {missed}, answered twice or more {doubled}, stray replies {strays}\n\
         round trip ms: p50 {:.1}, p99 {:.1}, max {:.1}\n\
         PSS MiB: second fifth {early:.1}, last fifth {late:.1} (allowed growth {allowed:.1}); \
         final RSS {:.1}, PSS {:.1}\n\
         verdict: {}\n",
        args.bots,
        args.minutes,
        args.rate,
        round_trips.median(),
        round_trips.percentile(99.0),
        round_trips.percentile(100.0),
        final_usage.rss_mib(),
        final_usage.pss_mib(),
        if passed { "PASS" } else { "FAIL" },
    );
    let json = json!({
        "bench": "soak",
        "bots": args.bots, "minutes": args.minutes, "rate": args.rate,
        "sent": sent, "missed": missed, "doubled": doubled, "strays": strays,
        "round_trip_ms": round_trips.to_json(),
        "samples": samples.iter().map(|(m, rss, pss)| json!({"minute": m, "rss_mib": rss, "pss_mib": pss})).collect::<Vec<_>>(),
        "pss_early_mib": early, "pss_late_mib": late, "passed": passed,
        "seconds": started.elapsed().as_secs_f64(),
    });
    crate::report(&table, &json, args.json.as_deref())?;
    if !passed {
        bail!("the soak failed: see the verdict above");
    }
    Ok(())
}
