//! The live log: every `tracing` event the logging config lets through becomes a record in
//! maubot's log-record shape (docs/compatibility.md, "The log websocket"), kept in a ring of the last 2048 and
//! broadcast to the `/logs` websocket.
//!
//! tracing targets are static, so per-client and per-instance loggers are fields; records get
//! maubot's logger names back from them (`maubot.client.<mxid>`, `maubot.instance.<id>`,
//! `maubot.plugin.<id>` for a plugin's records that belong to no instance).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use crate::sync::lock;

/// How many records the websocket's history holds, as maubot.
pub const HISTORY: usize = 2048;

/// The records of this process.
#[derive(Debug)]
pub struct LogHub {
    started: Instant,
    history: Mutex<VecDeque<Arc<Value>>>,
    live: broadcast::Sender<Arc<Value>>,
}

static HUB: LazyLock<LogHub> = LazyLock::new(|| LogHub {
    started: Instant::now(),
    history: Mutex::new(VecDeque::with_capacity(HISTORY)),
    live: broadcast::channel(1024).0,
});

/// The process's log hub (the subscriber is process-wide, and so is the hub).
pub fn hub() -> &'static LogHub {
    &HUB
}

impl LogHub {
    /// The kept records, oldest first, and a receiver of everything after them.
    pub fn subscribe(&self) -> (Vec<Arc<Value>>, broadcast::Receiver<Arc<Value>>) {
        let history = lock(&self.history);
        // Subscribing under the history's lock: no record is in both or in neither.
        let receiver = self.live.subscribe();
        (history.iter().cloned().collect(), receiver)
    }

    fn push(&self, record: Value) {
        let record = Arc::new(record);
        let mut history = lock(&self.history);
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(Arc::clone(&record));
        let _ = self.live.send(record);
    }
}

/// The `tracing` layer that feeds the hub.
#[derive(Debug, Default)]
pub struct HubLayer;

/// Targets whose records describe the sending of records (frames, connections): at TRACE they
/// would feed the websocket its own traffic, each record bigger than the last.
const SELF_FEEDING: [&str; 5] = [
    "tungstenite",
    "tokio_tungstenite",
    "hyper",
    "h2",
    "axum::extract::ws",
];

impl<S: Subscriber> Layer<S> for HubLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let target = event.metadata().target();
        if SELF_FEEDING.iter().any(|t| {
            target
                .strip_prefix(t)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        }) {
            return;
        }
        let hub = hub();
        hub.push(record(event, hub.started.elapsed().as_secs_f64() * 1000.0));
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    extra: Map<String, Value>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.extra.insert(field.name().to_owned(), json!(value));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.extra
                .insert(field.name().to_owned(), json!(format!("{value:?}")));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.extra.insert(field.name().to_owned(), json!(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.extra.insert(field.name().to_owned(), json!(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.extra.insert(field.name().to_owned(), json!(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.extra.insert(field.name().to_owned(), json!(value));
    }
}

/// `(levelname, levelno)` as Python's logging names them.
pub fn level_name(level: &Level) -> (&'static str, u8) {
    match *level {
        Level::TRACE => ("TRACE", 5),
        Level::DEBUG => ("DEBUG", 10),
        Level::INFO => ("INFO", 20),
        Level::WARN => ("WARNING", 30),
        Level::ERROR => ("ERROR", 40),
    }
}

/// An event as a record in maubot's shape (for the log handlers).
pub(crate) fn record_of(event: &Event<'_>) -> Value {
    record(event, hub().started.elapsed().as_secs_f64() * 1000.0)
}

fn record(event: &Event<'_>, relative_ms: f64) -> Value {
    let meta = event.metadata();
    let mut fields = Fields::default();
    event.record(&mut fields);
    let name = logger_name(meta.target(), &fields.extra);
    let (levelname, levelno) = level_name(meta.level());
    let pathname = meta.file().unwrap_or_default();
    let filename = pathname.rsplit('/').next().unwrap_or_default();
    let mut record = fields.extra;
    // A Python record carries its traceback as `exception`; maubot's field is `exc_info`.
    if let Some(exception) = record.remove("exception") {
        record.insert("exc_info".into(), exception);
    }
    record.insert("name".into(), json!(name));
    record.insert("levelname".into(), json!(levelname));
    record.insert("levelno".into(), json!(levelno));
    record.insert("filename".into(), json!(filename));
    record.insert("funcName".into(), json!(""));
    record.insert("lineno".into(), json!(meta.line().unwrap_or(0)));
    record.insert(
        "module".into(),
        json!(meta.module_path().unwrap_or_default()),
    );
    record.insert("pathname".into(), json!(pathname));
    record.insert("msg".into(), json!(fields.message));
    record.insert("time".into(), json!(iso_time(SystemTime::now())));
    record.insert("id".into(), json!(relative_ms.to_string()));
    Value::Object(record)
}

/// maubot's logger name for a record. A plugin's own records carry the Python logger's name
/// only as the `python_logger` field: their name is always their instance's (or plugin's).
fn logger_name(target: &str, fields: &Map<String, Value>) -> String {
    let field = |name: &str| fields.get(name).and_then(Value::as_str);
    match (target, field("client"), field("instance"), field("plugin")) {
        ("maubot.client", Some(client), _, _) => format!("maubot.client.{client}"),
        ("maubot.instance", _, Some(instance), _) => format!("maubot.instance.{instance}"),
        ("maubot.plugin", _, _, Some(plugin)) => format!("maubot.plugin.{plugin}"),
        _ => target.to_owned(),
    }
}

/// ISO 8601 with microseconds and the UTC offset, as Python's `datetime.isoformat()`.
fn iso_time(now: SystemTime) -> String {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (year, month, day) = crate::logging::civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since_epoch.subsec_micros()
    )
}

/// Which records a websocket client asked for: `?level=INFO&logger=maubot.instance`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Filter {
    /// The least level, by name (`DEBUG`, `INFO`, `WARNING`, `ERROR`) or number.
    pub level: Option<String>,
    /// A logger name prefix (dotted, as Python's hierarchy: `maubot.client` matches
    /// `maubot.client.@bot:hs` but not `maubot.clientele`).
    pub logger: Option<String>,
}

impl Filter {
    pub fn accepts(&self, record: &Value) -> bool {
        let level_ok = match self.level.as_deref().map(level_number) {
            Some(Some(least)) => record["levelno"].as_u64().unwrap_or(0) >= least,
            _ => true,
        };
        let logger_ok = match self.logger.as_deref() {
            Some(prefix) if !prefix.is_empty() => {
                let name = record["name"].as_str().unwrap_or_default();
                name == prefix
                    || name
                        .strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with('.'))
            }
            _ => true,
        };
        level_ok && logger_ok
    }
}

fn level_number(level: &str) -> Option<u64> {
    match level.to_ascii_uppercase().as_str() {
        "TRACE" => Some(5),
        "DEBUG" => Some(10),
        "INFO" => Some(20),
        "WARNING" | "WARN" => Some(30),
        "ERROR" => Some(40),
        "CRITICAL" => Some(50),
        other => other.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn names_loggers_like_maubot() {
        let fields = |pairs: &[(&str, &str)]| -> Map<String, Value> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), json!(v)))
                .collect()
        };
        assert_eq!(
            logger_name("maubot.client", &fields(&[("client", "@bot:hs")])),
            "maubot.client.@bot:hs"
        );
        assert_eq!(
            logger_name("maubot.instance", &fields(&[("instance", "echo")])),
            "maubot.instance.echo"
        );
        // Regression: a plugin named its Python logger `maubot.server` and its records came out
        // as the server's.
        assert_eq!(
            logger_name(
                "maubot.instance",
                &fields(&[("instance", "echo"), ("python_logger", "maubot.server")])
            ),
            "maubot.instance.echo"
        );
        assert_eq!(
            logger_name(
                "maubot.plugin",
                &fields(&[("plugin", "xyz.echo"), ("python_logger", "maubot.server")])
            ),
            "maubot.plugin.xyz.echo"
        );
        assert_eq!(logger_name("maubot.server", &fields(&[])), "maubot.server");
    }

    #[test]
    fn formats_time_like_isoformat() {
        let t = UNIX_EPOCH + Duration::from_micros(1_795_947_771_123_456);
        assert_eq!(iso_time(t), "2026-11-29T10:22:51.123456+00:00");
    }

    #[test]
    fn filters_by_level_and_logger_prefix() {
        let record = json!({ "name": "maubot.client.@bot:hs", "levelno": 20 });
        let filter = |level: Option<&str>, logger: Option<&str>| Filter {
            level: level.map(str::to_owned),
            logger: logger.map(str::to_owned),
        };
        assert!(filter(None, None).accepts(&record));
        assert!(filter(Some("info"), Some("maubot.client")).accepts(&record));
        assert!(!filter(Some("WARNING"), None).accepts(&record));
        assert!(!filter(None, Some("maubot.cli")).accepts(&record));
        assert!(filter(Some("20"), Some("maubot")).accepts(&record));
    }
}
