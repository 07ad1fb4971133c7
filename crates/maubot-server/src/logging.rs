//! Logging: `tracing` with maubot's logger names as targets, levels from the config's `logging`
//! section, and maubot's line format `[time] [LEVEL@logger] message`.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use maubot_types::config::{LogLevel, LoggingConfig};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::log_handlers::HandlersLayer;
use crate::logs::HubLayer;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Installs the global subscriber: maubot's lines on standard error, and the live log of the
/// `/logs` websocket. `RUST_LOG`, when set, replaces the config's levels.
pub fn init(logging: &LoggingConfig) {
    // The config's handlers if it has any (maubot's configs do), else maubot's lines on
    // standard error.
    let (handlers, stderr) = match HandlersLayer::from_config(logging) {
        Some(handlers) => (Some(handlers), None),
        None => (
            None,
            Some(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(use_colour())
                    .event_format(MaubotFormat),
            ),
        ),
    };
    let _ = tracing_subscriber::registry()
        .with(filter(logging))
        .with(Quiet)
        .with(stderr)
        .with(handlers)
        .with(HubLayer)
        .try_init();
}

/// Installs a global subscriber that feeds only the live log (for tests and benchmarks, which
/// keep standard error for themselves).
pub fn init_live_log_only(logging: &LoggingConfig) {
    let _ = tracing_subscriber::registry()
        .with(filter(logging))
        .with(Quiet)
        .with(HubLayer)
        .try_init();
}

/// Records of libraries that describe normal operation at levels that alarm operators: the
/// HTTP client of matrix-sdk logs a 404 (account data or an event that does not exist, which
/// the callers expect and handle) as an ERROR, and its key backup warns at every sync while no
/// backup is set up. They are left out; what the server makes of those answers it logs itself.
struct Quiet;

/// `(target prefix, level, text in the message)` of the records [`Quiet`] leaves out.
const QUIETED: &[(&str, Level, &str)] = &[
    ("matrix_sdk::http_client", Level::ERROR, "status_code: 404"),
    (
        "matrix_sdk_crypto::backups",
        Level::WARN,
        "no backup key was found",
    ),
];

impl<S: Subscriber> tracing_subscriber::Layer<S> for Quiet {
    fn event_enabled(
        &self,
        event: &Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        let meta = event.metadata();
        let rules = QUIETED.iter().filter(|(target, level, _)| {
            meta.level() == level && meta.target().starts_with(target)
        });
        let mut rules = rules.peekable();
        if rules.peek().is_none() {
            return true;
        }
        let mut message = String::new();
        event.record(&mut MessageText(&mut message));
        !rules.any(|(_, _, text)| message.contains(text))
    }
}

/// The `message` field of a record, as text.
struct MessageText<'a>(&'a mut String);

impl tracing::field::Visit for MessageText<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            use fmt::Write as _;
            let _ = write!(self.0, "{value:?}");
        }
    }
}

fn filter(logging: &LoggingConfig) -> EnvFilter {
    match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => EnvFilter::builder().parse_lossy(directives),
        _ => EnvFilter::builder().parse_lossy(directives(logging)),
    }
}

/// Colour only on a terminal, and never with `NO_COLOR` set.
pub(crate) fn use_colour() -> bool {
    use std::io::IsTerminal as _;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `tracing` filter directives equivalent to the dictConfig levels: logger names are prefixes,
/// as Python's dotted logger hierarchy is.
pub fn directives(logging: &LoggingConfig) -> String {
    let root = logging.root.level.unwrap_or(LogLevel::Warning);
    let mut directives = vec![level_directive(root).to_owned()];
    for (name, logger) in &logging.loggers {
        if let Some(level) = logger.level {
            directives.push(format!("{name}={}", level_directive(level)));
        }
    }
    directives.join(",")
}

fn level_directive(level: LogLevel) -> &'static str {
    match level {
        LogLevel::NotSet => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warning => "warn",
        LogLevel::Error | LogLevel::Critical => "error",
    }
}

/// maubot's console format: `[2026-01-01 12:00:00,123] [INFO@maubot.server] message`, in UTC.
struct MaubotFormat;

impl<S, N> FormatEvent<S, N> for MaubotFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let level = match *meta.level() {
            Level::TRACE => "TRACE",
            Level::DEBUG => "DEBUG",
            Level::INFO => "INFO",
            Level::WARN => "WARNING",
            Level::ERROR => "ERROR",
        };
        write!(
            writer,
            "[{}] [{level}@{}] ",
            timestamp(SystemTime::now()),
            meta.target()
        )?;
        // Messages and fields come from plugins and homeservers too: none of their text may
        // start a line of its own or steer the terminal.
        let mut escaped = Escaped(&mut writer);
        ctx.field_format()
            .format_fields(Writer::new(&mut escaped), event)?;
        writeln!(writer)
    }
}

/// `text` as [`Escaped`] writes it.
pub(crate) fn escape_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let _ = fmt::Write::write_str(&mut Escaped(&mut out), text);
    out
}

/// Writes text so that it cannot pass for log lines of its own: every line after the first is
/// indented, and other control characters (carriage returns, terminal escapes) are escaped.
struct Escaped<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some(at) = rest.find(|c: char| c.is_control() && c != '\t') {
            self.0.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            match c {
                '\n' => self.0.write_str("\n    ")?,
                other => write!(self.0, "{}", other.escape_default())?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

/// `YYYY-MM-DD HH:MM:SS,mmm` in UTC.
pub(crate) fn timestamp(now: SystemTime) -> String {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02},{:03}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since_epoch.subsec_millis()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn formats_time_like_python_logging() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_947_771_123);
        assert_eq!(timestamp(t), "2026-11-29 10:22:51,123");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01 00:00:00,000");
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29 00:00:00,000"
        );
    }

    #[test]
    fn plugin_text_cannot_forge_lines_or_steer_the_terminal() {
        use std::fmt::Write as _;
        let mut out = String::new();
        write!(
            Escaped(&mut out),
            "hi\n[2026-01-01 00:00:00,000] [INFO@maubot.server] forged\r\u{1b}[2J\tend"
        )
        .expect("writes");
        assert_eq!(
            out,
            "hi\n    [2026-01-01 00:00:00,000] [INFO@maubot.server] forged\\r\\u{1b}[2J\tend"
        );
    }

    #[test]
    fn benign_library_records_are_left_out() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};

        struct Count(Arc<AtomicUsize>);
        impl<S: Subscriber> tracing_subscriber::Layer<S> for Count {
            fn on_event(&self, _: &Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let seen = Arc::new(AtomicUsize::new(0));
        let subscriber = tracing_subscriber::registry()
            .with(Quiet)
            .with(Count(Arc::clone(&seen)));
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "matrix_sdk::http_client", "Error while sending request: Api(Server(MatrixError(Error {{ status_code: 404, body: NotFound }})))");
            tracing::warn!(target: "matrix_sdk_crypto::backups", "Trying to backup room keys but no backup key was found");
            assert_eq!(seen.load(Ordering::SeqCst), 0);
            tracing::error!(target: "matrix_sdk::http_client", "Error while sending request: status_code: 500");
            tracing::error!(target: "maubot.server", "status_code: 404");
            assert_eq!(seen.load(Ordering::SeqCst), 2);
        });
    }

    #[test]
    fn maps_dictconfig_levels_to_directives() {
        let config = maubot_types::config::parse(
            "logging:\n  root: {level: WARNING}\n  loggers:\n    maubot: {level: DEBUG}\n    maubot.client: {level: 30}\n",
        )
        .expect("valid");
        assert_eq!(
            directives(&config.config.logging),
            "warn,maubot=debug,maubot.client=warn"
        );
    }
}
