//! The figures of both servers: a table on standard error, JSON on standard output.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use super::host_dispatch::{self, DispatchResult};
use super::load::LoadResult;
use super::many::{self, ManyFigures};
use super::server::{Kind, MAUBOT_VERSION};
use super::stats::Summary;
use crate::cli::CompareArgs;
use crate::procfs::Usage;

/// One server's measurements (`None` for a phase not run).
#[derive(Debug)]
pub struct Figures {
    pub kind: Kind,
    pub plugins: Option<PluginFigures>,
    pub many: Option<ManyFigures>,
    pub scale: Option<ScaleFigures>,
}

/// The plugin phase.
#[derive(Debug)]
pub struct PluginFigures {
    /// Spawn to the API answering, first start.
    pub listen: Duration,
    pub idle: Usage,
    /// With the plugin bots, their instances and rooms.
    pub with_plugins: Usage,
    /// `!ping` round trips, ms.
    pub pings: Summary,
    /// maubot-rs: from its pump receiving the event to the plugin's send arriving, ms.
    pub handling: Option<Summary>,
    pub api_load: Vec<(&'static str, LoadResult)>,
}

#[derive(Debug)]
pub struct ScaleFigures {
    /// Spawn to the API answering, on a fresh database with nothing else running.
    pub listen: Duration,
    pub bots: usize,
    pub idle: Usage,
    pub with: Usage,
    /// Adding the bots through the API until all sync.
    pub add_seconds: f64,
    pub cold_listen: Duration,
    /// Spawn to Synapse answering the last bot's first `/sync`.
    pub cold_start: Duration,
}

impl Figures {
    fn per_bot(&self) -> Option<(f64, f64)> {
        let scale = self.scale.as_ref()?;
        Some(scale.with.per_bot_over(&scale.idle, scale.bots))
    }

    fn load(&self, route: &str) -> Option<&LoadResult> {
        self.plugins
            .as_ref()?
            .api_load
            .iter()
            .find(|(r, _)| *r == route)
            .map(|(_, l)| l)
    }

    fn to_json(&self) -> Value {
        let plugins = self.plugins.as_ref().map(|plugins| {
            let api: serde_json::Map<String, Value> = plugins
                .api_load
                .iter()
                .map(|(route, load)| (format!("GET {route}"), load.to_json()))
                .collect();
            json!({
                "seconds_to_api": plugins.listen.as_secs_f64(),
                "idle": plugins.idle.to_json(),
                "with_plugin_bots": plugins.with_plugins.to_json(),
                "ping_round_trip_ms": plugins.pings.to_json(),
                "bot_handling_ms": plugins.handling.as_ref().map(Summary::to_json),
                "api": api,
            })
        });
        let scale = self.scale.as_ref().map(|scale| {
            let (rss_per_bot, fds_per_bot) = scale.with.per_bot_over(&scale.idle, scale.bots);
            json!({
                "seconds_to_api": scale.listen.as_secs_f64(),
                "bots": scale.bots,
                "idle": scale.idle.to_json(),
                "with_bots": scale.with.to_json(),
                "rss_bytes_per_bot": rss_per_bot,
                "fds_per_bot": fds_per_bot,
                "seconds_adding_bots_until_syncing": scale.add_seconds,
                "cold_start_seconds_to_api": scale.cold_listen.as_secs_f64(),
                "cold_start_seconds_to_all_syncing": scale.cold_start.as_secs_f64(),
            })
        });
        json!({
            "implementation": self.kind.name(),
            "plugins": plugins,
            "many_plugins": self.many.as_ref().map(ManyFigures::to_json),
            "scale": scale,
        })
    }
}

/// How a ratio (maubot-rs ÷ maubot) is judged.
#[derive(Debug, Clone, Copy)]
enum Target {
    None,
    /// The ratio must be at most this.
    RatioAtMost(f64),
    /// The ratio must be at least this.
    RatioAtLeast(f64),
    /// maubot-rs's own value must be at most this.
    ValueAtMost(f64),
}

struct Metric {
    key: &'static str,
    name: String,
    unit: &'static str,
    maubot_rs: Option<f64>,
    maubot: Option<f64>,
    target: Target,
}

impl Metric {
    fn new(key: &'static str, name: impl Into<String>, unit: &'static str) -> Metric {
        Metric {
            key,
            name: name.into(),
            unit,
            maubot_rs: None,
            maubot: None,
            target: Target::None,
        }
    }

    fn values(mut self, maubot_rs: Option<f64>, maubot: Option<f64>) -> Metric {
        self.maubot_rs = maubot_rs.filter(|v| v.is_finite());
        self.maubot = maubot.filter(|v| v.is_finite());
        self
    }

    fn target(mut self, target: Target) -> Metric {
        self.target = target;
        self
    }

    fn ratio(&self) -> Option<f64> {
        match (self.maubot_rs, self.maubot) {
            (Some(a), Some(b)) if b != 0.0 => Some(a / b),
            _ => None,
        }
    }

    fn met(&self) -> Option<bool> {
        match self.target {
            Target::None => None,
            Target::RatioAtMost(max) => self.ratio().map(|r| r <= max),
            Target::RatioAtLeast(min) => self.ratio().map(|r| r >= min),
            Target::ValueAtMost(max) => self.maubot_rs.map(|v| v <= max),
        }
    }

    fn target_text(&self) -> String {
        match self.target {
            Target::None => String::new(),
            Target::RatioAtMost(max) => format!("ratio ≤ {max}"),
            Target::RatioAtLeast(min) => format!("ratio ≥ {min}"),
            Target::ValueAtMost(max) => format!("≤ {max} {}", self.unit),
        }
    }
}

fn number(value: Option<f64>, unit: &str) -> String {
    match value {
        None => "n/a".into(),
        Some(v) if v.abs() >= 1000.0 => format!("{v:.0} {unit}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1} {unit}"),
        Some(v) => format!("{v:.3} {unit}"),
    }
}

#[derive(Debug)]
pub struct Report<'a> {
    pub args: &'a CompareArgs,
    pub dispatch: Option<DispatchResult>,
    pub maubot_rs: &'a Figures,
    pub maubot: &'a Figures,
    pub maubot_crypto: bool,
    pub seconds: f64,
    /// The machine's 1-minute load average at the start and at the end.
    pub load_average: [Option<f64>; 2],
}

impl Report<'_> {
    fn metrics(&self) -> Vec<Metric> {
        let (rs, mb) = (self.maubot_rs, self.maubot);
        let both = |f: &dyn Fn(&Figures) -> Option<f64>| (f(rs), f(mb));
        const MIB: f64 = 1_048_576.0;
        let n = self.args.plugin_bots;
        // With `--wasm`, maubot-rs's echo is a WebAssembly instance and the target is a third of
        // maubot's memory with its Python echo.
        let (echo, echo_target) = if self.args.wasm {
            (
                "echo instances (maubot-rs: WASM)",
                Target::RatioAtMost(1.0 / 3.0),
            )
        } else {
            ("echo instances", Target::RatioAtMost(1.0))
        };
        let bots = self.args.bots;
        let zoo = many::ZOO.len();
        fn plugins(f: &Figures) -> Option<&PluginFigures> {
            f.plugins.as_ref()
        }
        fn many(f: &Figures) -> Option<&ManyFigures> {
            f.many.as_ref()
        }
        fn scale(f: &Figures) -> Option<&ScaleFigures> {
            f.scale.as_ref()
        }
        let worker_start = rs.many.as_ref().and_then(|m| m.worker_start.clone());
        let mut metrics = vec![
            {
                let (a, b) = both(&|f| plugins(f).map(|p| p.idle.rss_mib()));
                Metric::new("rss_idle_mib", "RSS idle", "MiB").values(a, b)
            },
            {
                let (a, b) = both(&|f| plugins(f).map(|p| p.with_plugins.rss_mib()));
                Metric::new(
                    "rss_plugin_bots_mib",
                    format!("RSS, {n} bots with {echo}"),
                    "MiB",
                )
                .values(a, b)
                .target(echo_target)
            },
            {
                let (a, b) = both(&|f| plugins(f).map(|p| p.with_plugins.pss_mib()));
                Metric::new(
                    "pss_plugin_bots_mib",
                    format!("PSS, {n} bots with {echo}"),
                    "MiB",
                )
                .values(a, b)
                .target(echo_target)
            },
            Metric::new(
                "rss_plugin_worker_mib",
                "  of which (RSS) child processes (zygote, Python workers)",
                "MiB",
            )
            .values(
                plugins(rs).map(|p| {
                    p.with_plugins
                        .rss_bytes
                        .saturating_sub(p.with_plugins.main_rss_bytes) as f64
                        / MIB
                }),
                None,
            ),
            {
                let (a, b) = both(&|f| plugins(f).map(|p| p.with_plugins.anon_mib()));
                Metric::new(
                    "rss_anon_plugin_bots_mib",
                    "  of which (RSS) anonymous (not code or files)",
                    "MiB",
                )
                .values(a, b)
            },
            {
                let (a, b) = both(&|f| plugins(f).map(|p| p.with_plugins.fds as f64));
                Metric::new("fds_plugin_bots", format!("fds, {n} bots with {echo}"), "")
                    .values(a, b)
            },
            {
                let (a, b) = both(&|f| many(f).map(|m| m.with_plugins.pss_mib()));
                Metric::new(
                    "pss_many_plugins_mib",
                    format!("PSS, {zoo} different plugins on one bot"),
                    "MiB",
                )
                .values(a, b)
                .target(Target::RatioAtMost(1.0))
            },
            {
                let (a, b) = both(&|f| many(f).map(|m| m.with_plugins.rss_mib()));
                Metric::new(
                    "rss_many_plugins_mib",
                    format!("RSS, {zoo} different plugins on one bot"),
                    "MiB",
                )
                .values(a, b)
            },
            {
                let (a, b) = both(&|f| {
                    many(f).map(|m| (m.with_plugins.pss_mib() - m.idle.pss_mib()) / zoo as f64)
                });
                Metric::new(
                    "pss_per_plugin_mib",
                    "  PSS per plugin (all, over the idle server)",
                    "MiB",
                )
                .values(a, b)
            },
            {
                let (a, b) = both(&|f| many(f).map(|m| m.added_pss_plain().median() / MIB));
                Metric::new(
                    "pss_added_plain_p50_mib",
                    "  PSS a plugin adds, median (no imports of its own)",
                    "MiB",
                )
                .values(a, b)
            },
            {
                let (a, b) =
                    both(&|f| many(f).map(|m| m.added_pss_plain().percentile(100.0) / MIB));
                Metric::new(
                    "pss_added_plain_max_mib",
                    "  PSS a plugin adds, max (no imports of its own)",
                    "MiB",
                )
                .values(a, b)
                .target(Target::ValueAtMost(8.0))
            },
            Metric::new(
                "worker_start_p50_ms",
                "worker start p50 (request → plugin loaded)",
                "ms",
            )
            .values(worker_start.as_ref().map(Summary::median), None)
            .target(Target::ValueAtMost(50.0)),
            Metric::new("worker_start_p90_ms", "worker start p90", "ms")
                .values(worker_start.as_ref().map(|s| s.percentile(90.0)), None),
            Metric::new("zygote_start_ms", "zygote start (once)", "ms")
                .values(rs.many.as_ref().and_then(|m| m.zygote_start_ms), None),
            {
                let (a, b) = both(&|f| scale(f).map(|s| s.with.rss_mib()));
                Metric::new("rss_scale_mib", format!("RSS, {bots} syncing bots"), "MiB")
                    .values(a, b)
            },
            {
                let (a, b) = both(&|f| f.per_bot().map(|p| p.0 / MIB));
                Metric::new(
                    "rss_per_bot_mib",
                    format!("RSS per bot at {bots} bots"),
                    "MiB",
                )
                .values(a, b)
            },
            {
                let (a, b) = both(&|f| f.per_bot().map(|p| p.1));
                Metric::new("fds_per_bot", format!("fds per bot at {bots} bots"), "").values(a, b)
            },
        ];
        for route in ["/plugins", "/clients"] {
            let get = |f: &Figures, g: &dyn Fn(&LoadResult) -> f64| f.load(route).map(g);
            let rps = |l: &LoadResult| l.per_second();
            let p50 = |l: &LoadResult| l.latency.median() / 1000.0;
            let p99 = |l: &LoadResult| l.latency.percentile(99.0) / 1000.0;
            let key = |k: &'static str, r: &str| match (k, r) {
                ("rps", "/plugins") => "api_plugins_rps",
                ("p50", "/plugins") => "api_plugins_p50_ms",
                ("p99", "/plugins") => "api_plugins_p99_ms",
                ("rps", _) => "api_clients_rps",
                ("p50", _) => "api_clients_p50_ms",
                _ => "api_clients_p99_ms",
            };
            metrics.push(
                Metric::new(
                    key("rps", route),
                    format!("GET {route} throughput"),
                    "req/s",
                )
                .values(get(rs, &rps), get(mb, &rps))
                .target(Target::RatioAtLeast(10.0)),
            );
            metrics.push(
                Metric::new(key("p50", route), format!("GET {route} latency p50"), "ms")
                    .values(get(rs, &p50), get(mb, &p50)),
            );
            metrics.push(
                Metric::new(key("p99", route), format!("GET {route} latency p99"), "ms")
                    .values(get(rs, &p99), get(mb, &p99)),
            );
        }
        let handling = plugins(rs).and_then(|p| p.handling.clone());
        let dispatch = self.dispatch.as_ref();
        metrics.extend([
            {
                let (a, b) = both(&|f| plugins(f).map(|p| p.pings.median()));
                Metric::new("ping_median_ms", "!ping round trip median", "ms")
                    .values(a, b)
                    .target(Target::RatioAtMost(1.0))
            },
            {
                let (a, b) = both(&|f| plugins(f).map(|p| p.pings.percentile(90.0)));
                Metric::new("ping_p90_ms", "!ping round trip p90", "ms").values(a, b)
            },
            Metric::new("handling_p50_ms", "bot-side handling p50", "ms")
                .values(handling.as_ref().map(Summary::median), None),
            Metric::new("handling_p99_ms", "bot-side handling p99", "ms")
                .values(handling.as_ref().map(|h| h.percentile(99.0)), None)
                .target(Target::ValueAtMost(1.0)),
            Metric::new(
                "python_host_single_p50_ms",
                "  Python host alone: event → send p50",
                "ms",
            )
            .values(dispatch.map(|d| d.single.median()), None),
            Metric::new(
                "python_host_single_p99_ms",
                "  Python host alone: event → send p99",
                "ms",
            )
            .values(dispatch.map(|d| d.single.percentile(99.0)), None),
            Metric::new(
                "python_host_events_per_s",
                "Python host dispatch (1 worker)",
                "ev/s",
            )
            .values(dispatch.map(DispatchResult::per_second), None),
            {
                let (a, b) = both(&|f| scale(f).map(|s| s.listen.as_secs_f64()));
                Metric::new("seconds_to_api", "start to API answering", "s").values(a, b)
            },
            {
                let (a, b) = both(&|f| scale(f).map(|s| s.add_seconds));
                Metric::new(
                    "seconds_adding_bots",
                    format!("adding {bots} bots until all sync"),
                    "s",
                )
                .values(a, b)
            },
            {
                let (a, b) = both(&|f| scale(f).map(|s| s.cold_start.as_secs_f64()));
                Metric::new(
                    "cold_start_s",
                    format!("cold start to all {bots} bots syncing"),
                    "s",
                )
                .values(a, b)
            },
        ]);
        metrics
    }

    /// Per plugin of the many-plugins phase: what it added to each server, and maubot-rs's
    /// worker for it.
    fn plugin_table(&self) -> Option<String> {
        let (rs, mb) = (self.maubot_rs.many.as_ref(), self.maubot.many.as_ref());
        let rows = rs.or(mb)?.plugins.len();
        let mib = |v: f64| format!("{:.1}", v / 1_048_576.0);
        let mut out = String::from(
            "| plugin | own imports | maubot-rs +PSS | maubot +PSS | maubot-rs +RSS | maubot +RSS | worker PSS | worker Private_Dirty |\n\
             |---|---|---:|---:|---:|---:|---:|---:|\n",
        );
        for i in 0..rows {
            let a = rs.and_then(|m| m.plugins.get(i));
            let b = mb.and_then(|m| m.plugins.get(i));
            let Some(plugin) = a.or(b).map(|c| c.plugin) else {
                continue;
            };
            let cell = |c: Option<f64>| c.map_or("n/a".to_owned(), mib);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                plugin.folder,
                plugin.own_imports,
                cell(a.map(|c| c.added_pss as f64)),
                cell(b.map(|c| c.added_pss as f64)),
                cell(a.map(|c| c.added_rss as f64)),
                cell(b.map(|c| c.added_rss as f64)),
                cell(a.and_then(|c| c.worker).map(|w| w.pss as f64)),
                cell(a.and_then(|c| c.worker).map(|w| w.private_dirty as f64)),
            );
        }
        let process = |name: &str, r: Option<crate::procfs::Rollup>| {
            r.map(|r| {
                format!(
                    "{name}: PSS {} MiB, RSS {} MiB, Private_Dirty {} MiB\n",
                    mib(r.pss as f64),
                    mib(r.rss as f64),
                    mib(r.private_dirty as f64)
                )
            })
            .unwrap_or_default()
        };
        out.push_str(&process("maubot-rs server", rs.map(|m| m.server)));
        out.push_str(&process("maubot-rs zygote", rs.and_then(|m| m.zygote)));
        out.push_str(&process("maubot 0.6 server", mb.map(|m| m.server)));
        Some(out)
    }

    /// The table: metric | maubot-rs | maubot 0.6 | ratio | target.
    pub fn table(&self) -> String {
        let rows: Vec<[String; 5]> = self
            .metrics()
            .iter()
            .map(|m| {
                let target = match m.met() {
                    Some(true) => format!("{}: met", m.target_text()),
                    Some(false) => format!("{}: NOT MET", m.target_text()),
                    None => m.target_text(),
                };
                [
                    m.name.clone(),
                    number(m.maubot_rs, m.unit),
                    number(m.maubot, m.unit),
                    m.ratio().map_or("".into(), |r| format!("{r:.2}")),
                    target,
                ]
            })
            .collect();
        let header = [
            "metric".to_owned(),
            "maubot-rs".to_owned(),
            format!("maubot {MAUBOT_VERSION}"),
            "ratio".to_owned(),
            "target".to_owned(),
        ];
        let mut widths = [0usize; 5];
        for row in std::iter::once(&header).chain(&rows) {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |row: &[String; 5]| {
            let mut out = String::from("|");
            for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
                let pad = w - cell.chars().count();
                if i == 0 || i == 4 {
                    let _ = write!(out, " {cell}{} |", " ".repeat(pad));
                } else {
                    let _ = write!(out, " {}{cell} |", " ".repeat(pad));
                }
            }
            out.push('\n');
            out
        };
        let mut out = line(&header);
        out.push('|');
        for w in widths {
            let _ = write!(out, "{}|", "-".repeat(w + 2));
        }
        out.push('\n');
        for row in &rows {
            out.push_str(&line(row));
        }
        if let Some(plugins) = self.plugin_table() {
            out.push('\n');
            out.push_str(&plugins);
            out.push('\n');
        }
        for note in self.notes() {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = vec![
            "ratio = maubot-rs ÷ maubot; maubot-rs's memory and fds include its zygote and \
             Python plugin workers"
                .to_owned(),
            format!(
                "Python host dispatch: {} `!ping` events, {} in flight, `matrix` requests \
                 answered at once; event → send: {} events one at a time, from writing the event \
                 to the worker until its send request arrives; maubot has no separate host to \
                 measure",
                self.args.events,
                host_dispatch::WINDOW,
                host_dispatch::SINGLE
            ),
            "PSS: each page divided by the number of processes mapping it, summed over the \
             server's process tree (server, zygote, workers): pages a worker shares with its \
             zygote count once"
                .to_owned(),
            format!(
                "many plugins: one bot with an instance of each of {} zoo plugins, created one \
                 after the other; +PSS/+RSS is the tree's growth over the instance's start (the \
                 first one's on maubot-rs includes the zygote); worker start: maubot-rs's \
                 `maubot.timing` log, each worker from the request for it to its plugin \
                 loaded, over the first starts and {} stop/start rounds of every instance",
                many::ZOO.len(),
                self.args.restarts
            ),
            "bot-side handling: maubot-rs's `maubot.timing` log, from its pump receiving the \
             event to the plugin's send request arriving; maubot logs nothing comparable"
                .to_owned(),
            "cold start: until Synapse answered a /sync of every bot (a message waited for each); \
             maubot-rs starts its clients four at a time"
                .to_owned(),
            "adding bots: until each server reports every client started with sync_ok (maubot \
             0.6 reports sync_ok before its first sync, so its figure is to started)"
                .to_owned(),
        ];
        if let [Some(start), Some(end)] = self.load_average {
            notes.push(format!(
                "load average {start:.2} at the start, {end:.2} at the end ({} CPUs)",
                std::thread::available_parallelism().map_or(0, |n| n.get())
            ));
        }
        notes.push(if self.maubot_crypto {
            "both servers' bots have end-to-end encryption (maubot with python-olm); the rooms \
             are unencrypted"
                .to_owned()
        } else {
            "maubot's venv lacks python-olm: its bots run WITHOUT end-to-end encryption, \
             maubot-rs's with it"
                .to_owned()
        });
        notes
    }

    pub fn to_json(&self) -> Value {
        let metrics: Vec<Value> = self
            .metrics()
            .iter()
            .map(|m| {
                json!({
                    "key": m.key, "name": m.name, "unit": m.unit,
                    "maubot_rs": m.maubot_rs, "maubot": m.maubot, "ratio": m.ratio(),
                    "target": m.target_text(), "met": m.met(),
                })
            })
            .collect();
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        json!({
            "bench": "compare",
            "schema": 2,
            "unix_time": unix,
            "seconds": self.seconds,
            "machine": {
                "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
                "load_average_start": self.load_average[0],
                "load_average_end": self.load_average[1],
            },
            "settings": {
                "bots": self.args.bots, "plugin_bots": self.args.plugin_bots,
                "api_seconds": self.args.duration, "connections": self.args.connections,
                "pings": self.args.pings, "settle_seconds": self.args.settle,
                "events": self.args.events, "restarts": self.args.restarts,
                "wasm_echo": self.args.wasm,
                "phases": self.args.phases.iter().map(|p| format!("{p:?}").to_lowercase()).collect::<Vec<_>>(),
                "maubot_version": MAUBOT_VERSION, "maubot_crypto": self.maubot_crypto,
            },
            "metrics": metrics,
            "python_host_dispatch": self.dispatch.as_ref().map(DispatchResult::to_json),
            "maubot_rs": self.maubot_rs.to_json(),
            "maubot": self.maubot.to_json(),
            "notes": self.notes(),
        })
    }
}
