//! `maubot-bench compare`: maubot-rs (the release binary) and maubot 0.6.0 (from PyPI, in a
//! venv of its own) as separate processes with equivalent configs, against one Synapse, in two
//! phases:
//!
//! 1. plugins, both servers side by side: `plugin_bots` bots each, every bot with an instance
//!    of the test echo plugin and a room with the server's tester: memory, `!ping` round trips
//!    (the servers taking turns), then management API load on one server at a time. With
//!    `--wasm`, maubot-rs's bots run the WebAssembly ping example instead;
//! 2. many plugins, one server at a time: one bot with an instance of each of many different
//!    plugins of the test plugin zoo: memory per plugin, maubot-rs's worker start times;
//! 3. scale, one server at a time: `bots` bots without plugins, ten to a room: memory and
//!    descriptors per bot, then a restart (cold start) until Synapse has answered a `/sync` of
//!    every bot.
//!
//! Before these, the Python plugin host of maubot-rs is driven directly (events per second).
//! `--phases` runs only some of them.

pub(crate) mod api;
mod host_dispatch;
mod load;
mod many;
pub(crate) mod matrix;
mod report;
pub(crate) mod server;
pub(crate) mod stats;
pub(crate) mod synapse_log;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use maubot_test_support::Synapse;

use self::api::Api;
use self::matrix::{ECHO_ID, Tester};
use self::report::{Figures, PluginFigures, ScaleFigures};
use self::server::{Kind, Programs, Server, Setup};
use self::stats::Summary;
use crate::cli::{CompareArgs, Phase};
use crate::procfs::Usage;

/// Unmeasured `!ping`s before the measured ones.
const WARM_UP_PINGS: usize = 5;

pub async fn run(args: CompareArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let load_before = crate::procfs::load_average();
    let maubot_rs = server::maubot_rs_binary(args.maubot_rs.as_deref())?;
    let maubot_venv = server::maubot_venv().await?;
    let maubot_crypto = server::maubot_has_crypto(&maubot_venv).await;
    let python_host_venv = maubot_test_support::python_host_venv();
    eprintln!("preparing maubot-rs's Python plugin host environment");
    let python =
        maubot_server::runtime::python::prepare_environment(&maubot_types::config::PythonHost {
            venv: python_host_venv.display().to_string(),
            ..Default::default()
        })
        .await
        .context("prepare the Python plugin host's environment")?;
    let archive = matrix::echo_mbp()?;
    let phase = |p: Phase| args.phases.contains(&p);

    let dispatch = if phase(Phase::Dispatch) {
        eprintln!(
            "Python plugin host: {} events through one echo instance",
            args.events
        );
        let pythonpath = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../python");
        Some(host_dispatch::run(&python, &pythonpath, &archive, args.events).await?)
    } else {
        None
    };

    eprintln!("starting Synapse");
    let synapse = tokio::task::spawn_blocking(Synapse::start).await??;
    let programs = Programs {
        maubot_rs,
        maubot_venv,
        python_host_venv,
        homeserver: synapse.base_url(),
    };
    let plugins = if phase(Phase::Plugins) {
        let python_echo = || Echo {
            archive: archive.clone(),
            id: ECHO_ID,
        };
        let rs_echo = if args.wasm {
            eprintln!("building the WebAssembly ping example for wasm32-wasip2");
            let project = maubot_test_support::wasm::example("ping");
            let built =
                tokio::task::spawn_blocking(move || maubot_test_support::wasm::try_build(&project))
                    .await??;
            Echo {
                archive: std::fs::read(&built.mbp).context("read the ping example's .mbp")?,
                id: WASM_ECHO_ID,
            }
        } else {
            python_echo()
        };
        plugin_phase(&args, &synapse, &programs, [rs_echo, python_echo()])
            .await?
            .into_iter()
            .map(Some)
            .collect()
    } else {
        vec![None, None]
    };
    let mut figures = Vec::new();
    for (kind, plugins) in [Kind::MaubotRs, Kind::Maubot].into_iter().zip(plugins) {
        let many = if phase(Phase::Many) {
            Some(many::run(kind, &args, &synapse, &programs).await?)
        } else {
            None
        };
        let scale = if phase(Phase::Scale) {
            Some(scale_phase(kind, &args, &synapse, &programs).await?)
        } else {
            None
        };
        figures.push(Figures {
            kind,
            plugins,
            many,
            scale,
        });
    }
    drop(synapse);

    let report = report::Report {
        args: &args,
        dispatch,
        maubot_rs: &figures[0],
        maubot: &figures[1],
        maubot_crypto,
        seconds: started.elapsed().as_secs_f64(),
        load_average: [load_before, crate::procfs::load_average()],
    };
    crate::report(&report.table(), &report.to_json(), args.json.as_deref())
}

/// The WebAssembly ping example's plugin ID (`examples/wasm/ping`): `!ping` → reply `pong`, as
/// the Python echo plugin answers.
const WASM_ECHO_ID: &str = "xyz.maubot-rs.example.ping";

/// The plugin a server's echo bots run in the plugin phase.
struct Echo {
    archive: Vec<u8>,
    id: &'static str,
}

/// One server in the plugin phase.
struct PluginRun {
    kind: Kind,
    setup: Setup,
    server: Server,
    api: Api,
    tester: Tester,
    /// Each bot's room with the tester, and the bot.
    rooms: Vec<(String, String)>,
    listen: Duration,
    idle: Usage,
    pings: Vec<f64>,
    log_offset: u64,
}

/// The plugin phase for both servers, which run side by side here so that their `!ping`s can
/// take turns (the machine's other load then weighs on both alike). Memory is per process tree,
/// and the API load runs against one server at a time while the other idles.
async fn plugin_phase(
    args: &CompareArgs,
    synapse: &Synapse,
    programs: &Programs,
    echoes: [Echo; 2],
) -> anyhow::Result<Vec<PluginFigures>> {
    let settle = Duration::from_secs(args.settle);
    let hs = synapse.base_url();
    let mut runs = Vec::new();
    for (kind, echo) in [Kind::MaubotRs, Kind::Maubot].into_iter().zip(echoes) {
        let name = kind.name();
        let prefix = kind.user_prefix();
        eprintln!("{name}: registering {} users", 1 + args.plugin_bots);
        let tester = synapse
            .register(&format!("{prefix}tester"), "bench-password", false)
            .await?;
        let tester = Tester::new(&hs, tester);
        let bots = matrix::register_many(synapse, &format!("{prefix}p"), args.plugin_bots).await?;
        let setup = Setup::new(kind, programs)?;
        let mut server = setup.spawn(programs)?;
        let (api, listen) = server.wait_api(Duration::from_secs(120)).await?;
        eprintln!(
            "{name}: API up after {:.2} s; idling {} s",
            listen.as_secs_f64(),
            args.settle
        );
        tokio::time::sleep(settle).await;
        let idle = server.usage()?;
        eprintln!(
            "{name}: adding {} bots with an echo instance each",
            args.plugin_bots
        );
        for bot in &bots {
            api.add_client(&hs, &bot.access_token, &bot.device_id)
                .await?;
        }
        api.wait_clients_syncing(bots.len(), Duration::from_secs(120))
            .await?;
        api.upload_plugin(echo.archive).await?;
        for (i, bot) in bots.iter().enumerate() {
            api.create_instance(&format!("echo{i}"), echo.id, &bot.user_id)
                .await?;
        }
        let mut rooms = Vec::new();
        for bot in &bots {
            rooms.push((tester.room_with(&bot.user_id).await?, bot.user_id.clone()));
        }
        runs.push(PluginRun {
            kind,
            setup,
            server,
            api,
            tester,
            rooms,
            listen,
            idle,
            pings: Vec::new(),
            log_offset: 0,
        });
    }
    eprintln!("bots joined their rooms; idling {} s", args.settle);
    tokio::time::sleep(settle).await;
    let mut with_plugins = Vec::new();
    for run in &runs {
        with_plugins.push(run.server.usage()?);
    }

    eprintln!("{} pings to each server, taking turns", args.pings);
    for run in &mut runs {
        run.tester.start_sync().await?;
        for i in 0..WARM_UP_PINGS {
            let (room, bot) = &run.rooms[i % run.rooms.len()];
            run.tester.ping(room, bot).await?;
        }
        run.log_offset = std::fs::metadata(run.setup.log_path())?.len();
    }
    for i in 0..args.pings {
        for run in &mut runs {
            let (room, bot) = &run.rooms[i % run.rooms.len()];
            let round_trip = run.tester.ping(room, bot).await?;
            run.pings.push(round_trip.as_secs_f64() * 1000.0);
        }
    }
    // Let the last timing line reach the log.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut figures = Vec::new();
    for (run, with_plugins) in runs.into_iter().zip(with_plugins) {
        let name = run.kind.name();
        let handling = (run.kind == Kind::MaubotRs)
            .then(|| handling_times(&run.setup.log_path(), run.log_offset))
            .transpose()?;
        let mut api_load = Vec::new();
        for route in ["/plugins", "/clients"] {
            eprintln!(
                "{name}: GET {route} for {} s over {} connections",
                args.duration, args.connections
            );
            let result = load::run(
                run.server.port,
                route,
                &run.api.token,
                args.connections,
                Duration::from_secs(args.duration),
            )
            .await
            .with_context(|| format!("load on GET {route}"))?;
            api_load.push((route, result));
        }
        run.server.stop().await?;
        figures.push(PluginFigures {
            listen: run.listen,
            idle: run.idle,
            with_plugins,
            pings: Summary::of(run.pings),
            handling,
            api_load,
        });
    }
    Ok(figures)
}

/// The scale phase for one server, alone.
async fn scale_phase(
    kind: Kind,
    args: &CompareArgs,
    synapse: &Synapse,
    programs: &Programs,
) -> anyhow::Result<ScaleFigures> {
    let name = kind.name();
    let prefix = kind.user_prefix();
    let settle = Duration::from_secs(args.settle);
    let hs = synapse.base_url();
    eprintln!("{name}: registering {} users", 1 + args.bots);
    let scale_bots = matrix::register_many(synapse, &format!("{prefix}s"), args.bots).await?;
    let scale_tester = Tester::new(
        &hs,
        synapse
            .register(&format!("{prefix}scaletester"), "bench-password", false)
            .await?,
    );
    let setup = Setup::new(kind, programs)?;
    let mut server = setup.spawn(programs)?;
    let (api, listen) = server.wait_api(Duration::from_secs(120)).await?;
    tokio::time::sleep(settle).await;
    let scale_idle = server.usage()?;
    eprintln!("{name}: adding {} bots", args.bots);
    let adding = Instant::now();
    for (i, bot) in scale_bots.iter().enumerate() {
        api.add_client(&hs, &bot.access_token, &bot.device_id)
            .await?;
        if (i + 1) % 20 == 0 {
            eprintln!(
                "  {} added after {:.1} s",
                i + 1,
                adding.elapsed().as_secs_f64()
            );
        }
    }
    api.wait_clients_syncing(scale_bots.len(), Duration::from_secs(300))
        .await?;
    let add_seconds = adding.elapsed().as_secs_f64();
    let mut scale_rooms = Vec::new();
    for group in scale_bots.chunks(10) {
        let members: Vec<String> = group.iter().map(|b| b.user_id.clone()).collect();
        let room = scale_tester.create_room(&members).await?;
        scale_tester
            .wait_joined(&room, &members, Duration::from_secs(120))
            .await?;
        scale_rooms.push(room);
    }
    eprintln!(
        "{name}: {} bots syncing and in rooms; idling {} s",
        args.bots, args.settle
    );
    tokio::time::sleep(settle).await;
    let scale_with = server.usage()?;
    server.stop().await?;

    // A message waits in every room, so that each bot's first sync after the restart is
    // answered at once (instead of after the long poll's 30 s).
    for room in &scale_rooms {
        scale_tester.say(room, "wake up").await?;
    }
    let users: BTreeSet<String> = scale_bots.iter().map(|b| b.user_id.clone()).collect();
    let watch = synapse_log::SyncWatch::start(&synapse.log_path(), users)?;
    let mut server = setup.spawn(programs)?;
    let (_, cold_listen) = server.wait_api(Duration::from_secs(120)).await?;
    let last = watch
        .all_synced(scale_bots.len(), Duration::from_secs(300))
        .await?;
    let cold_start = last.saturating_duration_since(server.spawned_at);
    eprintln!(
        "{name}: cold start: API after {:.2} s, all {} bots synced after {:.2} s",
        cold_listen.as_secs_f64(),
        args.bots,
        cold_start.as_secs_f64()
    );
    server.stop().await?;
    Ok(ScaleFigures {
        listen,
        bots: args.bots,
        idle: scale_idle,
        with: scale_with,
        add_seconds,
        cold_listen,
        cold_start,
    })
}

/// `handling_us` of the `maubot.timing` lines of maubot-rs's log after `offset`, in ms.
fn handling_times(log: &std::path::Path, offset: u64) -> anyhow::Result<Summary> {
    let text = std::fs::read(log)?;
    let text = String::from_utf8_lossy(text.get(offset as usize..).unwrap_or_default());
    Ok(many::timing_field(&text, "handling_us"))
}

impl Usage {
    /// Per bot, over a baseline.
    pub fn per_bot_over(&self, baseline: &Usage, bots: usize) -> (f64, f64) {
        let bots = bots.max(1) as f64;
        (
            self.rss_bytes.saturating_sub(baseline.rss_bytes) as f64 / bots,
            self.fds.saturating_sub(baseline.fds) as f64 / bots,
        )
    }
}
