//! Prometheus metrics (`metrics` in the config; off by default), served on a listener of their
//! own in Prometheus's text format.
//!
//! Counters are kept whether or not they are served: an atomic add each, on counters looked up
//! once per instance or bot. They live in one registry for the process, like Prometheus clients'
//! default registry, so that the runtimes count without a handle threaded through them. What
//! is a state rather than a count (bots and instances by state, a worker's memory) is read when
//! scraped.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::time::Duration;

use crate::client::ClientView;
use crate::sync::lock;
use crate::views::{self, InstanceView};

/// What happens to an instance's events.
#[derive(Debug, Default)]
pub struct InstanceCounters {
    /// Handed to the runtime.
    pub delivered: AtomicU64,
    /// Finished by a handler, with or without an error.
    pub handled: AtomicU64,
    /// Dropped: a queue was full, or the event was being handled each time two workers died.
    pub dropped: AtomicU64,
    /// Handled with an error (an exception, a trap).
    pub handler_errors: AtomicU64,
}

/// A bot's syncs.
#[derive(Debug, Default)]
pub struct BotCounters {
    syncs: AtomicU64,
    errors: AtomicU64,
    /// Microseconds spent in sync requests (long polls included).
    micros: AtomicU64,
}

impl BotCounters {
    pub fn synced(&self, took: Duration, ok: bool) {
        let counter = if ok { &self.syncs } else { &self.errors };
        counter.fetch_add(1, Ordering::Relaxed);
        self.micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

#[derive(Debug, Default)]
struct Registry {
    instances: RwLock<HashMap<String, Arc<InstanceCounters>>>,
    bots: RwLock<HashMap<String, Arc<BotCounters>>>,
    /// Python worker restarts after a failure, by plugin.
    restarts: Mutex<BTreeMap<String, u64>>,
    /// Running Python workers: process ID → plugin.
    workers: Mutex<BTreeMap<u32, String>>,
    /// API requests by route template, method and status.
    requests: Mutex<HashMap<(String, String, u16), u64>>,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::default);

fn counters<T: Default>(map: &RwLock<HashMap<String, Arc<T>>>, id: &str) -> Arc<T> {
    if let Some(found) = map.read().unwrap_or_else(|p| p.into_inner()).get(id) {
        return Arc::clone(found);
    }
    let mut map = map.write().unwrap_or_else(|p| p.into_inner());
    Arc::clone(map.entry(id.to_owned()).or_default())
}

/// The counters of an instance's events.
pub fn instance(id: &str) -> Arc<InstanceCounters> {
    counters(&REGISTRY.instances, id)
}

/// The counters of a bot's syncs.
pub fn bot(id: &str) -> Arc<BotCounters> {
    counters(&REGISTRY.bots, id)
}

/// A deleted instance's series end.
pub fn forget_instance(id: &str) {
    REGISTRY
        .instances
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .remove(id);
}

/// A deleted bot's series end.
pub fn forget_bot(id: &str) {
    REGISTRY
        .bots
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .remove(id);
}

pub fn worker_restarted(plugin: &str) {
    *lock(&REGISTRY.restarts)
        .entry(plugin.to_owned())
        .or_default() += 1;
}

pub fn worker_started(pid: u32, plugin: &str) {
    lock(&REGISTRY.workers).insert(pid, plugin.to_owned());
}

pub fn worker_ended(pid: u32) {
    lock(&REGISTRY.workers).remove(&pid);
}

pub fn api_request(route: &str, method: &str, status: u16) {
    *lock(&REGISTRY.requests)
        .entry((route.to_owned(), method.to_owned(), status))
        .or_default() += 1;
}

/// A label value in the text format: backslash, quote and newline escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A bot's state as the web UI names it: `syncing`, `failing`, `stopped` or `disabled`.
fn bot_state(bot: &ClientView) -> &'static str {
    match (bot.enabled, bot.started, bot.sync_ok) {
        (false, _, _) => "disabled",
        (true, false, _) => "stopped",
        (true, true, true) => "syncing",
        (true, true, false) => "failing",
    }
}

fn instance_state(instance: &InstanceView) -> &'static str {
    match (
        instance.started,
        instance.failure.is_some(),
        instance.enabled,
    ) {
        (true, _, _) => "running",
        (false, true, _) => "failed",
        (false, false, true) => "stopped",
        (false, false, false) => "disabled",
    }
}

/// Resident memory of a process, from `/proc`.
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kib * 1024)
}

/// Every metric in the text format, with the bots and instances as they are now.
pub fn render(bots: &[ClientView], instances: &[InstanceView]) -> String {
    let mut out = String::new();

    header(&mut out, "maubot_bots", "gauge", "Bots by state.");
    let mut by_state = BTreeMap::from([
        ("disabled", 0),
        ("failing", 0),
        ("stopped", 0),
        ("syncing", 0),
    ]);
    for bot in bots {
        *by_state.entry(bot_state(bot)).or_default() += 1;
    }
    for (state, count) in by_state {
        let _ = writeln!(out, "maubot_bots{{state=\"{state}\"}} {count}");
    }
    header(
        &mut out,
        "maubot_bot_sync_ok",
        "gauge",
        "Whether the bot's last sync succeeded (1) or failed (0).",
    );
    for bot in bots {
        let _ = writeln!(
            out,
            "maubot_bot_sync_ok{{client=\"{}\"}} {}",
            label(&bot.id),
            u8::from(bot.sync_ok)
        );
    }
    let syncs: Vec<(String, Arc<BotCounters>)> =
        bots.iter().map(|b| (b.id.clone(), bot(&b.id))).collect();
    header(
        &mut out,
        "maubot_bot_syncs_total",
        "counter",
        "Sync requests, by outcome.",
    );
    for (id, c) in &syncs {
        for (outcome, n) in [("ok", &c.syncs), ("error", &c.errors)] {
            let _ = writeln!(
                out,
                "maubot_bot_syncs_total{{client=\"{}\",outcome=\"{outcome}\"}} {}",
                label(id),
                n.load(Ordering::Relaxed)
            );
        }
    }
    header(
        &mut out,
        "maubot_bot_sync_seconds",
        "summary",
        "Time in sync requests (long polls of up to 30 s included).",
    );
    for (id, c) in &syncs {
        let count = c.syncs.load(Ordering::Relaxed) + c.errors.load(Ordering::Relaxed);
        let seconds = c.micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "maubot_bot_sync_seconds_sum{{client=\"{}\"}} {seconds}",
            label(id)
        );
        let _ = writeln!(
            out,
            "maubot_bot_sync_seconds_count{{client=\"{}\"}} {count}",
            label(id)
        );
    }

    header(&mut out, "maubot_instances", "gauge", "Instances by state.");
    let mut by_state = BTreeMap::from([
        ("disabled", 0),
        ("failed", 0),
        ("running", 0),
        ("stopped", 0),
    ]);
    for instance in instances {
        *by_state.entry(instance_state(instance)).or_default() += 1;
    }
    for (state, count) in by_state {
        let _ = writeln!(out, "maubot_instances{{state=\"{state}\"}} {count}");
    }
    let events: Vec<(String, Arc<InstanceCounters>)> = instances
        .iter()
        .map(|i| (i.id.clone(), instance(&i.id)))
        .collect();
    let per_instance =
        |out: &mut String, name: &str, help: &str, pick: fn(&InstanceCounters) -> &AtomicU64| {
            header(out, name, "counter", help);
            for (id, c) in &events {
                let _ = writeln!(
                    out,
                    "{name}{{instance=\"{}\"}} {}",
                    label(id),
                    pick(c).load(Ordering::Relaxed)
                );
            }
        };
    per_instance(
        &mut out,
        "maubot_instance_events_delivered_total",
        "Events handed to the instance's runtime.",
        |c| &c.delivered,
    );
    per_instance(
        &mut out,
        "maubot_instance_events_handled_total",
        "Events the instance's handlers finished.",
        |c| &c.handled,
    );
    per_instance(
        &mut out,
        "maubot_instance_events_dropped_total",
        "Events dropped: a queue was full, or a worker died twice on the event.",
        |c| &c.dropped,
    );
    per_instance(
        &mut out,
        "maubot_instance_handler_errors_total",
        "Events whose handler failed (an exception or a trap).",
        |c| &c.handler_errors,
    );

    header(
        &mut out,
        "maubot_worker_restarts_total",
        "counter",
        "Python worker restarts after a crash or a hang, by plugin.",
    );
    for (plugin, n) in lock(&REGISTRY.restarts).iter() {
        let _ = writeln!(
            out,
            "maubot_worker_restarts_total{{plugin=\"{}\"}} {n}",
            label(plugin)
        );
    }
    header(
        &mut out,
        "maubot_worker_resident_bytes",
        "gauge",
        "Resident memory of each running Python worker.",
    );
    let workers = lock(&REGISTRY.workers).clone();
    for (pid, plugin) in workers {
        if let Some(bytes) = rss_bytes(pid) {
            let _ = writeln!(
                out,
                "maubot_worker_resident_bytes{{plugin=\"{}\",pid=\"{pid}\"}} {bytes}",
                label(&plugin)
            );
        }
    }

    header(
        &mut out,
        "maubot_api_requests_total",
        "counter",
        "Management API requests, by route, method and status.",
    );
    let mut requests: Vec<_> = lock(&REGISTRY.requests)
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    requests.sort();
    for ((route, method, status), n) in requests {
        let _ = writeln!(
            out,
            "maubot_api_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
            label(&route),
            label(&method)
        );
    }
    out
}

/// Serves `GET /metrics` on `listener` until `stop`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: crate::state::AppState,
    stop: tokio_util::sync::CancellationToken,
) {
    use axum::extract::State;
    use axum::http::header::CONTENT_TYPE;
    async fn metrics(
        State(state): State<crate::state::AppState>,
    ) -> impl axum::response::IntoResponse {
        let bots = state.clients.views().await;
        let instances = views::instances(&state);
        (
            [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            render(&bots, &instances),
        )
    }
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(metrics))
        .with_state(state);
    if let Err(err) = axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    {
        tracing::warn!(target: "maubot.server", error = %err, "The metrics listener failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn counters_are_kept_per_instance_and_forgotten() {
        let id = "metrics-unit-test-instance";
        instance(id).delivered.fetch_add(2, Ordering::Relaxed);
        assert_eq!(instance(id).delivered.load(Ordering::Relaxed), 2);
        forget_instance(id);
        assert_eq!(instance(id).delivered.load(Ordering::Relaxed), 0);
    }
}
