//! The figures of both servers: a table on standard error, JSON on standard output.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use super::host_dispatch::{self, DispatchResult};
use super::load::LoadResult;
use super::server::{Kind, MAUBOT_VERSION};
use super::stats::Summary;
use crate::cli::CompareArgs;
use crate::procfs::Usage;

/// One server's measurements.
#[derive(Debug)]
pub struct Figures {
    pub kind: Kind,
    pub plugins: PluginFigures,
    pub scale: ScaleFigures,
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
    fn per_bot(&self) -> (f64, f64) {
        self.scale
            .with
            .per_bot_over(&self.scale.idle, self.scale.bots)
    }

    fn load(&self, route: &str) -> Option<&LoadResult> {
        self.plugins
            .api_load
            .iter()
            .find(|(r, _)| *r == route)
            .map(|(_, l)| l)
    }

    fn to_json(&self) -> Value {
        let (rss_per_bot, fds_per_bot) = self.per_bot();
        let api: serde_json::Map<String, Value> = self
            .plugins
            .api_load
            .iter()
            .map(|(route, load)| (format!("GET {route}"), load.to_json()))
            .collect();
        json!({
            "implementation": self.kind.name(),
            "seconds_to_api": self.plugins.listen.as_secs_f64(),
            "idle": self.plugins.idle.to_json(),
            "with_plugin_bots": self.plugins.with_plugins.to_json(),
            "ping_round_trip_ms": self.plugins.pings.to_json(),
            "bot_handling_ms": self.plugins.handling.as_ref().map(Summary::to_json),
            "api": api,
            "scale": {
                "seconds_to_api": self.scale.listen.as_secs_f64(),
                "bots": self.scale.bots,
                "idle": self.scale.idle.to_json(),
                "with_bots": self.scale.with.to_json(),
                "rss_bytes_per_bot": rss_per_bot,
                "fds_per_bot": fds_per_bot,
                "seconds_adding_bots_until_syncing": self.scale.add_seconds,
                "cold_start_seconds_to_api": self.scale.cold_listen.as_secs_f64(),
                "cold_start_seconds_to_all_syncing": self.scale.cold_start.as_secs_f64(),
            },
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

    fn values(mut self, maubot_rs: f64, maubot: Option<f64>) -> Metric {
        self.maubot_rs = Some(maubot_rs).filter(|v| v.is_finite());
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
    pub dispatch: DispatchResult,
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
        let both = |f: &dyn Fn(&Figures) -> f64| (f(rs), Some(f(mb)));
        let mib = |u: &Usage| u.rss_mib();
        let n = self.args.plugin_bots;
        let bots = self.args.bots;
        let mut metrics = vec![
            Metric::new("rss_idle_mib", "RSS idle", "MiB")
                .values(mib(&rs.plugins.idle), Some(mib(&mb.plugins.idle))),
            {
                let (a, b) = both(&|f| mib(&f.plugins.with_plugins));
                Metric::new(
                    "rss_plugin_bots_mib",
                    format!("RSS, {n} bots with echo instances"),
                    "MiB",
                )
                .values(a, b)
                .target(Target::RatioAtMost(1.0))
            },
            Metric::new(
                "rss_plugin_worker_mib",
                "  of which the Python plugin worker",
                "MiB",
            )
            .values(
                rs.plugins
                    .with_plugins
                    .rss_bytes
                    .saturating_sub(rs.plugins.with_plugins.main_rss_bytes) as f64
                    / 1_048_576.0,
                None,
            ),
            {
                let (a, b) = both(&|f| f.plugins.with_plugins.anon_mib());
                Metric::new(
                    "rss_anon_plugin_bots_mib",
                    "  of which anonymous (not code or files)",
                    "MiB",
                )
                .values(a, b)
            },
            {
                let (a, b) = both(&|f| f.plugins.with_plugins.fds as f64);
                Metric::new(
                    "fds_plugin_bots",
                    format!("fds, {n} bots with echo instances"),
                    "",
                )
                .values(a, b)
            },
            {
                let (a, b) = both(&|f| f.scale.with.rss_mib());
                Metric::new("rss_scale_mib", format!("RSS, {bots} syncing bots"), "MiB")
                    .values(a, b)
            },
            {
                let (a, b) = both(&|f| f.per_bot().0 / 1_048_576.0);
                Metric::new(
                    "rss_per_bot_mib",
                    format!("RSS per bot at {bots} bots"),
                    "MiB",
                )
                .values(a, b)
            },
            {
                let (a, b) = both(&|f| f.per_bot().1);
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
                .values(get(rs, &rps).unwrap_or(f64::NAN), get(mb, &rps))
                .target(Target::RatioAtLeast(10.0)),
            );
            metrics.push(
                Metric::new(key("p50", route), format!("GET {route} latency p50"), "ms")
                    .values(get(rs, &p50).unwrap_or(f64::NAN), get(mb, &p50)),
            );
            metrics.push(
                Metric::new(key("p99", route), format!("GET {route} latency p99"), "ms")
                    .values(get(rs, &p99).unwrap_or(f64::NAN), get(mb, &p99)),
            );
        }
        let handling = rs.plugins.handling.clone().unwrap_or_default();
        metrics.extend([
            Metric::new("ping_median_ms", "!ping round trip median", "ms")
                .values(rs.plugins.pings.median(), Some(mb.plugins.pings.median()))
                .target(Target::RatioAtMost(1.0)),
            Metric::new("ping_p90_ms", "!ping round trip p90", "ms").values(
                rs.plugins.pings.percentile(90.0),
                Some(mb.plugins.pings.percentile(90.0)),
            ),
            Metric::new("handling_p50_ms", "bot-side handling p50", "ms")
                .values(handling.median(), None),
            Metric::new("handling_p99_ms", "bot-side handling p99", "ms")
                .values(handling.percentile(99.0), None)
                .target(Target::ValueAtMost(1.0)),
            Metric::new(
                "python_host_single_p50_ms",
                "  Python host alone: event → send p50",
                "ms",
            )
            .values(self.dispatch.single.median(), None),
            Metric::new(
                "python_host_single_p99_ms",
                "  Python host alone: event → send p99",
                "ms",
            )
            .values(self.dispatch.single.percentile(99.0), None),
            Metric::new(
                "python_host_events_per_s",
                "Python host dispatch (1 worker)",
                "ev/s",
            )
            .values(self.dispatch.per_second(), None),
            {
                let (a, b) = both(&|f| f.scale.listen.as_secs_f64());
                Metric::new("seconds_to_api", "start to API answering", "s").values(a, b)
            },
            {
                let (a, b) = both(&|f| f.scale.add_seconds);
                Metric::new(
                    "seconds_adding_bots",
                    format!("adding {bots} bots until all sync"),
                    "s",
                )
                .values(a, b)
            },
            {
                let (a, b) = both(&|f| f.scale.cold_start.as_secs_f64());
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
        for note in self.notes() {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = vec![
            "ratio = maubot-rs ÷ maubot; maubot-rs's memory and fds include its Python plugin \
             worker"
                .to_owned(),
            format!(
                "Python host dispatch: {} `!ping` events, {} in flight, `matrix` requests \
                 answered at once; event → send: {} events one at a time, from writing the event \
                 to the worker until its send request arrives; maubot has no separate host to \
                 measure",
                self.dispatch.events,
                host_dispatch::WINDOW,
                host_dispatch::SINGLE
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
            "schema": 1,
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
                "events": self.args.events,
                "maubot_version": MAUBOT_VERSION, "maubot_crypto": self.maubot_crypto,
            },
            "metrics": metrics,
            "python_host_dispatch": self.dispatch.to_json(),
            "maubot_rs": self.maubot_rs.to_json(),
            "maubot": self.maubot.to_json(),
            "notes": self.notes(),
        })
    }
}
