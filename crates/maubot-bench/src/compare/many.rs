//! The many-plugins phase: one bot with an instance of each of many different plugins of the
//! test plugin zoo, on one server at a time. What each plugin adds to the server's memory (its
//! whole process tree, by PSS and RSS), what each maubot-rs worker holds after it forked, and
//! how long a worker takes to start.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use maubot_test_support::Synapse;
use serde_json::{Value, json};

use super::matrix::{self, Tester};
use super::server::{Kind, Programs, Setup};
use super::stats::Summary;
use crate::cli::CompareArgs;
use crate::procfs::{self, Rollup, Usage};

/// A plugin of the zoo (`crates/maubot-server/tests/plugins/<folder>`) and what it imports
/// beyond what maubot's plugins share (mautrix, aiohttp, maubot), for the per-plugin target.
#[derive(Debug, Clone, Copy)]
pub struct ZooPlugin {
    pub folder: &'static str,
    pub own_imports: &'static str,
}

/// The plugins of the phase, in the order their instances are created. The first one's cost
/// on maubot-rs includes the zygote.
pub const ZOO: &[ZooPlugin] = &[
    zoo("echo", ""),
    zoo("commands", ""),
    zoo("passive", ""),
    zoo("members", ""),
    zoo("configured", ""),
    zoo("storage", ""),
    zoo("webhook", ""),
    zoo("sed", ""),
    zoo("hooks", ""),
    zoo("reminder", "sqlalchemy"),
    zoo("karma", "sqlalchemy"),
    zoo("templated", "jinja2, semver"),
    zoo("imagebot", "PIL"),
];

const fn zoo(folder: &'static str, own_imports: &'static str) -> ZooPlugin {
    ZooPlugin {
        folder,
        own_imports,
    }
}

/// How long after an instance's start its memory is read.
const AFTER_START: Duration = Duration::from_secs(2);

/// What one plugin costs.
#[derive(Debug, Clone)]
pub struct PluginCost {
    pub plugin: ZooPlugin,
    /// The server's tree after the instance started, less before it (PSS and RSS, bytes).
    pub added_pss: i64,
    pub added_rss: i64,
    /// maubot-rs: the plugin's worker at the end of the phase.
    pub worker: Option<Rollup>,
}

impl PluginCost {
    fn to_json(&self) -> Value {
        json!({
            "plugin": self.plugin.folder, "own_imports": self.plugin.own_imports,
            "added_pss_bytes": self.added_pss, "added_rss_bytes": self.added_rss,
            "worker": self.worker.map(Rollup::to_json),
        })
    }
}

/// The phase's figures for one server.
#[derive(Debug, Clone)]
pub struct ManyFigures {
    /// The server with its bot, before any plugin.
    pub idle: Usage,
    /// With every instance started, the event handled, settled.
    pub with_plugins: Usage,
    pub plugins: Vec<PluginCost>,
    /// The server process alone, and maubot-rs's zygote, at the end.
    pub server: Rollup,
    pub zygote: Option<Rollup>,
    /// maubot-rs: request to plugin loaded for each worker started (`maubot.timing`), ms; of
    /// which before the fork; the zygote's own start.
    pub worker_start: Option<Summary>,
    pub worker_prepare: Option<Summary>,
    pub zygote_start_ms: Option<f64>,
}

impl ManyFigures {
    /// The added PSS of plugins after the first (whose figure includes maubot-rs's zygote)
    /// that import nothing of their own; bytes.
    pub fn added_pss_plain(&self) -> Summary {
        Summary::of(
            self.plugins
                .iter()
                .skip(1)
                .filter(|c| c.plugin.own_imports.is_empty())
                .map(|c| c.added_pss as f64)
                .collect(),
        )
    }

    pub fn to_json(&self) -> Value {
        json!({
            "idle": self.idle.to_json(),
            "with_plugins": self.with_plugins.to_json(),
            "plugins": self.plugins.iter().map(PluginCost::to_json).collect::<Vec<_>>(),
            "server": self.server.to_json(),
            "zygote": self.zygote.map(Rollup::to_json),
            "worker_start_ms": self.worker_start.as_ref().map(Summary::to_json),
            "worker_prepare_ms": self.worker_prepare.as_ref().map(Summary::to_json),
            "zygote_start_ms": self.zygote_start_ms,
        })
    }
}

/// The phase for one server, alone.
pub async fn run(
    kind: Kind,
    args: &CompareArgs,
    synapse: &Synapse,
    programs: &Programs,
) -> anyhow::Result<ManyFigures> {
    let name = kind.name();
    let prefix = kind.user_prefix();
    let hs = synapse.base_url();
    let settle = Duration::from_secs(args.settle);
    let mut archives = Vec::new();
    for plugin in ZOO {
        let archive = matrix::plugin_mbp(plugin.folder)?;
        let id = plugin_id(plugin.folder)?;
        archives.push((plugin, id, archive));
    }
    let bot = synapse
        .register(&format!("{prefix}many"), "bench-password", false)
        .await?;
    let mut tester = Tester::new(
        &hs,
        synapse
            .register(&format!("{prefix}manytester"), "bench-password", false)
            .await?,
    );
    let setup = Setup::new(kind, programs)?;
    let mut server = setup.spawn(programs)?;
    let (api, _) = server.wait_api(Duration::from_secs(120)).await?;
    api.add_client(&hs, &bot.access_token, &bot.device_id)
        .await?;
    api.wait_clients_syncing(1, Duration::from_secs(120))
        .await?;
    let room = tester.room_with(&bot.user_id).await?;
    eprintln!(
        "{name}: one bot in a room; idling {} s before {} plugins",
        args.settle,
        ZOO.len()
    );
    tokio::time::sleep(settle).await;
    let idle = server.usage()?;
    let log_offset = std::fs::metadata(setup.log_path())?.len();

    let mut plugins = Vec::new();
    let mut before = idle;
    let mut known: BTreeSet<u32> = procfs::tree(server.pid).into_iter().collect();
    let mut worker_pids = Vec::new();
    for (plugin, id, archive) in &archives {
        let instance = instance_id(plugin.folder);
        let started = Instant::now();
        api.upload_plugin(archive.clone())
            .await
            .with_context(|| format!("upload {}", plugin.folder))?;
        api.create_instance(&instance, id, &bot.user_id)
            .await
            .with_context(|| format!("start {}", plugin.folder))?;
        let took = started.elapsed();
        tokio::time::sleep(AFTER_START).await;
        let after = server.usage()?;
        let tree = procfs::tree(server.pid);
        // maubot-rs: the new worker is the new process whose parent is not the server (the
        // zygote, or the server itself without one).
        let new: Vec<u32> = tree
            .iter()
            .copied()
            .filter(|p| !known.contains(p))
            .collect();
        let worker = new
            .iter()
            .copied()
            .find(|&p| procfs::parent_of(p) != Some(server.pid))
            .or_else(|| new.first().copied());
        known.extend(tree);
        worker_pids.push(worker);
        let cost = PluginCost {
            plugin: **plugin,
            added_pss: after.pss_bytes as i64 - before.pss_bytes as i64,
            added_rss: after.rss_bytes as i64 - before.rss_bytes as i64,
            worker: None,
        };
        eprintln!(
            "  {:<10} started in {:>6.2} s: +{:.1} MiB PSS, +{:.1} MiB RSS",
            plugin.folder,
            took.as_secs_f64(),
            cost.added_pss as f64 / 1_048_576.0,
            cost.added_rss as f64 / 1_048_576.0
        );
        plugins.push(cost);
        before = after;
    }

    // One message that every plugin sees: `echo` and `passive` answer it.
    tester.start_sync().await?;
    tester.ping(&room, &bot.user_id).await?;
    eprintln!("{name}: every plugin running; idling {} s", args.settle);
    tokio::time::sleep(settle).await;
    let with_plugins = server.usage()?;
    for (cost, pid) in plugins.iter_mut().zip(&worker_pids) {
        if kind == Kind::MaubotRs {
            cost.worker = pid.and_then(|p| procfs::smaps_rollup(p).ok());
        }
    }
    let server_rollup = procfs::smaps_rollup(server.pid)?;
    let zygote = (kind == Kind::MaubotRs)
        .then(|| {
            procfs::tree(server.pid)
                .into_iter()
                .find(|&p| procfs::parent_of(p) == Some(server.pid))
        })
        .flatten()
        .and_then(|p| procfs::smaps_rollup(p).ok());

    let (mut worker_start, mut worker_prepare, mut zygote_start_ms) = (None, None, None);
    if kind == Kind::MaubotRs {
        eprintln!(
            "{name}: stopping and starting each instance {} times (a new worker each)",
            args.restarts
        );
        for _ in 0..args.restarts {
            for plugin in ZOO {
                let instance = instance_id(plugin.folder);
                api.set_started(&instance, false).await?;
                api.set_started(&instance, true).await?;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let log = std::fs::read(setup.log_path())?;
        let log = String::from_utf8_lossy(log.get(log_offset as usize..).unwrap_or_default());
        worker_start = Some(timing_field(&log, "worker_start_us"));
        worker_prepare = Some(timing_field(&log, "prepare_us"));
        zygote_start_ms = Some(timing_field(&log, "zygote_start_us").percentile(100.0));
    }
    server.stop().await?;
    Ok(ManyFigures {
        idle,
        with_plugins,
        plugins,
        server: server_rollup,
        zygote,
        worker_start,
        worker_prepare,
        zygote_start_ms: zygote_start_ms.filter(|v| v.is_finite()),
    })
}

fn instance_id(folder: &str) -> String {
    format!("many-{folder}")
}

/// The `id` of a zoo plugin's `maubot.yaml`.
fn plugin_id(folder: &str) -> anyhow::Result<String> {
    let meta = matrix::plugins_dir().join(folder).join("maubot.yaml");
    let text =
        std::fs::read_to_string(&meta).with_context(|| format!("read {}", meta.display()))?;
    text.lines()
        .find_map(|l| l.strip_prefix("id:"))
        .map(|id| id.trim().to_owned())
        .with_context(|| format!("no id in {}", meta.display()))
}

/// The values of `field` (µs) of the `maubot.timing` lines of `log`, in ms.
pub fn timing_field(log: &str, field: &str) -> Summary {
    let key = format!("{field}=");
    Summary::of(
        log.lines()
            .filter(|l| l.contains("@maubot.timing]"))
            .filter_map(|l| l.split(key.as_str()).nth(1))
            .filter_map(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map(|us| us / 1000.0)
            .collect(),
    )
}
