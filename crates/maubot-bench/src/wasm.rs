//! `maubot-bench wasm`: the WebAssembly runtime driven directly, in this process, with the ping
//! example (`examples/wasm/ping`, built for wasm32-wasip2 first) and a host that answers every
//! Matrix request at once:
//!
//! - one event at a time: the time from handing a `!ping` to the runtime until the instance's
//!   send request reaches the host (the bot-side handling of the runtime alone);
//! - on one core (a single-threaded executor): events per second dispatched to one instance,
//!   messages it reads and ignores, as most messages in a room are for a bot;
//! - memory: this process's RSS and PSS before and after starting `--instances` idle instances.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_trait::async_trait;
use maubot_server::runtime::wasm::WasmRuntime;
use maubot_server::runtime::{
    InstanceStart, LoadedPlugin, MatrixRequest, MatrixResponse, PluginCode, PluginRuntime,
    RuntimeError, RuntimeHost, Started,
};
use maubot_types::plugin::{ArchiveLimits, PluginArchive};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::cli::WasmArgs;
use crate::compare::stats::Summary;
use crate::procfs;

/// Events handled before the clock of the throughput starts.
const WARM_UP: usize = 1000;
/// `!ping`s handled before the handling time is measured.
const PING_WARM_UP: usize = 100;
const ROOM: &str = "!bench:localhost";

/// Answers every Matrix request at once and says when a send arrived.
#[derive(Debug)]
struct Host {
    sends: mpsc::UnboundedSender<Instant>,
}

#[async_trait]
impl RuntimeHost for Host {
    async fn database_files(&self) -> Vec<PathBuf> {
        Vec::new()
    }

    async fn matrix_request(&self, _instance_id: &str, _request: MatrixRequest) -> MatrixResponse {
        let _ = self.sends.send(Instant::now());
        MatrixResponse::json(200, json!({ "event_id": "$sent" }))
    }

    fn config_saved(&self, _instance_id: &str, _config: String) {}

    fn instance_failed(&self, instance_id: &str, reason: String) {
        eprintln!("instance {instance_id} failed: {reason}");
    }

    fn instance_recovered(&self, _instance_id: &str, _started: Started) {}

    fn instance_gave_up(&self, instance_id: &str, error: RuntimeError) {
        eprintln!("instance {instance_id} gave up: {error}");
    }
}

fn message(n: usize, body: &str) -> Arc<Value> {
    Arc::new(json!({
        "type": "m.room.message",
        "room_id": ROOM,
        "sender": "@tester:localhost",
        "event_id": format!("$event{n}"),
        "origin_server_ts": 1_700_000_000_000u64 + n as u64,
        "content": { "msgtype": "m.text", "body": body },
    }))
}

fn instance(id: &str) -> InstanceStart {
    InstanceStart {
        instance_id: id.to_owned(),
        user_id: "@bot:localhost".into(),
        device_id: "BENCH".into(),
        homeserver: "http://127.0.0.1:1".into(),
        config: String::new(),
        database: None,
        webapp_url: None,
    }
}

/// The runtime and the ping plugin (`mbp`) prepared on it, with a host that reports sends.
fn ping_plugin(
    dir: &Path,
    mbp: &Path,
    queue_length: usize,
) -> anyhow::Result<(
    WasmRuntime,
    Arc<dyn LoadedPlugin>,
    mpsc::UnboundedReceiver<Instant>,
)> {
    let archive = PluginArchive::read(&std::fs::read(mbp)?, &ArchiveLimits::default())?;
    let settings = maubot_types::config::WasmHost {
        cache_dir: dir.join("cache").display().to_string(),
        // The bench measures the runtime, not the send budget.
        sends_per_second: 1e9,
        send_burst: u32::MAX,
        queue_length,
        ..Default::default()
    };
    let runtime = WasmRuntime::new(settings).context("the WebAssembly runtime")?;
    let (sends, received) = mpsc::unbounded_channel();
    let plugin = runtime.prepare(
        PluginCode {
            path: mbp.to_owned(),
            meta: archive.meta,
        },
        Arc::new(Host { sends }),
    );
    Ok((runtime, plugin, received))
}

pub fn run(args: WasmArgs) -> anyhow::Result<()> {
    if args.instances == 0 || args.events == 0 || args.pings == 0 {
        bail!("--events, --pings and --instances must be at least 1");
    }
    let dir = tempfile::tempdir()?;
    eprintln!("building the ping example for wasm32-wasip2");
    let mbp =
        maubot_test_support::wasm::try_build(&maubot_test_support::wasm::example("ping"))?.mbp;
    // One core: everything of the runtime runs on this thread's executor (the epoch ticker
    // aside, which only counts).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(measure(&args, dir.path(), &mbp))?;
    crate::report(&report.table(), &report.to_json(), None)
}

struct Report {
    single: Summary,
    events: usize,
    seconds: f64,
    instances: usize,
    before: procfs::Rollup,
    before_rss: u64,
    after: procfs::Rollup,
    after_rss: u64,
}

impl Report {
    fn per_second(&self) -> f64 {
        self.events as f64 / self.seconds
    }

    fn per_instance(&self) -> (f64, f64) {
        let n = self.instances.max(1) as f64;
        (
            self.after_rss.saturating_sub(self.before_rss) as f64 / n,
            self.after.pss.saturating_sub(self.before.pss) as f64 / n,
        )
    }

    fn table(&self) -> String {
        let (rss, pss) = self.per_instance();
        let p99 = self.single.percentile(99.0);
        let holds = |ok: bool| if ok { "holds" } else { "NOT met" };
        format!(
            "| WebAssembly runtime (ping example) | |\n|---|---|\n\
             | event handed over → send request, ms: p50 / p99 / max | {:.3} / {:.3} / {:.3} |\n\
             | events per second on one core | {:.0} |\n\
             | per idle instance ({} instances): RSS / PSS, KiB | {:.1} / {:.1} |\n\n\
             targets:\n\
             - bot-side handling p99 ≤ 1 ms: {:.3} ms, {}\n\
             - ≥ 100,000 events/s on one core: {:.0}, {}\n\
             - ≤ 100 KB per idle instance: {:.1} KB (RSS), {}\n",
            self.single.median(),
            p99,
            self.single.percentile(100.0),
            self.per_second(),
            self.instances,
            rss / 1024.0,
            pss / 1024.0,
            p99,
            holds(p99 <= 1.0),
            self.per_second(),
            holds(self.per_second() >= 100_000.0),
            rss / 1000.0,
            holds(rss <= 100_000.0),
        )
    }

    fn to_json(&self) -> Value {
        let (rss, pss) = self.per_instance();
        json!({
            "single_event_to_send_ms": self.single.to_json(),
            "events": self.events, "seconds": self.seconds,
            "events_per_second": self.per_second(),
            "instances": self.instances,
            "per_instance_rss_bytes": rss, "per_instance_pss_bytes": pss,
            "before": { "rss_bytes": self.before_rss, "rollup": self.before.to_json() },
            "after": { "rss_bytes": self.after_rss, "rollup": self.after.to_json() },
        })
    }
}

async fn measure(args: &WasmArgs, dir: &Path, mbp: &Path) -> anyhow::Result<Report> {
    // Room for every event of the throughput run: none is dropped for a full queue.
    let queue = args.events + WARM_UP + 16;
    let (_runtime, plugin, mut sends) = ping_plugin(dir, mbp, queue)?;
    plugin.load().await.context("compile the component")?;
    plugin.start(instance("bench")).await.context("start")?;

    // One at a time.
    let mut samples = Vec::with_capacity(args.pings);
    for n in 0..PING_WARM_UP + args.pings {
        let started = Instant::now();
        plugin.deliver("bench", message(n, "!ping"));
        let arrived = tokio::time::timeout(Duration::from_secs(10), sends.recv())
            .await
            .context("no send within 10 s")?
            .context("the host is gone")?;
        if n >= PING_WARM_UP {
            samples.push(arrived.duration_since(started).as_secs_f64() * 1000.0);
        }
    }
    let single = Summary::of(samples);

    // Throughput: messages the plugin reads and ignores, then one it answers, which says that
    // all before it were handled (one instance handles its events in order).
    for n in 0..WARM_UP {
        plugin.deliver("bench", message(n, "hello there"));
    }
    plugin.deliver("bench", message(WARM_UP, "!ping"));
    sends.recv().await.context("the host is gone")?;
    let started = Instant::now();
    for n in 0..args.events {
        plugin.deliver("bench", message(n, "hello there"));
    }
    plugin.deliver("bench", message(args.events, "!ping"));
    tokio::time::timeout(Duration::from_secs(600), sends.recv())
        .await
        .context("the events were not handled within 600 s")?
        .context("the host is gone")?;
    let seconds = started.elapsed().as_secs_f64();

    // Idle instances.
    let pid = std::process::id();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = procfs::smaps_rollup(pid)?;
    let before_rss = procfs::rss(pid)?;
    for n in 0..args.instances {
        plugin
            .start(instance(&format!("idle{n}")))
            .await
            .with_context(|| format!("start idle instance {n}"))?;
    }
    // Each has answered an event, as a started instance in use has.
    for n in 0..args.instances {
        plugin.deliver(&format!("idle{n}"), message(n, "!ping"));
    }
    for _ in 0..args.instances {
        sends.recv().await.context("the host is gone")?;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = procfs::smaps_rollup(pid)?;
    let after_rss = procfs::rss(pid)?;
    Ok(Report {
        single,
        events: args.events,
        seconds,
        instances: args.instances,
        before,
        before_rss,
        after,
        after_rss,
    })
}
