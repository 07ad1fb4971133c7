//! The handlers of the config's `logging` section, as maubot's dictConfig uses them: stream
//! handlers (standard error or output) and (rotating) file handlers, each with its formatter
//! (Python's `%(name)s` format strings) and level. Without `handlers` in the config, logs go to
//! standard error in maubot's line format, as before.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;

use maubot_types::config::{LogLevel, LoggingConfig};
use serde_json::{Map, Value};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use crate::sync::lock;

/// maubot's format, for handlers without a formatter.
const DEFAULT_FORMAT: &str = "[%(asctime)s] [%(levelname)s@%(name)s] %(message)s";

/// Record keys that are not extra fields of the message.
const STANDARD: &[&str] = &[
    "name",
    "levelname",
    "levelno",
    "filename",
    "funcName",
    "lineno",
    "module",
    "pathname",
    "msg",
    "time",
    "id",
    "client",
    "instance",
    "plugin",
    "exc_info",
];

/// The configured handlers, as one `tracing` layer.
#[derive(Debug)]
pub struct HandlersLayer {
    outputs: Vec<Output>,
}

#[derive(Debug)]
struct Output {
    /// Python's level number below which records are not written.
    level: u8,
    format: Format,
    sink: Sink,
}

#[derive(Debug)]
enum Sink {
    Stderr,
    Stdout,
    File(Mutex<RotatingFile>),
}

impl HandlersLayer {
    /// The handlers `root.handlers` names (all, if it names none). `None` if the config has no
    /// `handlers`. Handlers that cannot be used are reported on standard error and skipped.
    pub fn from_config(logging: &LoggingConfig) -> Option<HandlersLayer> {
        let handlers = logging.handlers.as_ref()?.as_object()?;
        let formatters = logging
            .formatters
            .as_ref()
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let wanted: Vec<String> = logging
            .root
            .handlers
            .as_ref()
            .and_then(Value::as_array)
            .map(|names| {
                names
                    .iter()
                    .filter_map(|n| n.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_else(|| handlers.keys().cloned().collect());
        let mut outputs = Vec::new();
        for name in wanted {
            let Some(handler) = handlers.get(&name) else {
                warn(&format!(
                    "logging.root.handlers names `{name}`, which logging.handlers does not define"
                ));
                continue;
            };
            match Output::from_config(&name, handler, &formatters) {
                Ok(output) => outputs.push(output),
                Err(problem) => warn(&format!("logging.handlers.{name}: {problem}; not used")),
            }
        }
        Some(HandlersLayer { outputs })
    }
}

/// Before logging is set up, problems with it can only go to standard error.
#[allow(clippy::print_stderr)]
fn warn(message: &str) {
    eprintln!("warning: {message}");
}

impl Output {
    fn from_config(
        name: &str,
        handler: &Value,
        formatters: &Map<String, Value>,
    ) -> Result<Output, String> {
        let class = handler["class"].as_str().unwrap_or_default();
        let text = |key: &str| handler[key].as_str();
        let sink = match class {
            "logging.StreamHandler" => match text("stream") {
                Some("ext://sys.stdout") => Sink::Stdout,
                _ => Sink::Stderr,
            },
            "logging.FileHandler" | "logging.handlers.RotatingFileHandler" => {
                let filename = text("filename").ok_or("no `filename`")?;
                let max_bytes = if class == "logging.FileHandler" {
                    0
                } else {
                    handler["maxBytes"].as_u64().unwrap_or(0)
                };
                let backups = handler["backupCount"].as_u64().unwrap_or(0);
                let file = RotatingFile::open(PathBuf::from(filename), max_bytes, backups)
                    .map_err(|e| format!("cannot open {filename}: {e}"))?;
                Sink::File(Mutex::new(file))
            }
            other => {
                return Err(format!(
                    "the handler class `{other}` is not supported (StreamHandler, FileHandler and RotatingFileHandler are)"
                ));
            }
        };
        let formatter = text("formatter").and_then(|f| formatters.get(f));
        let format = formatter
            .and_then(|f| f["format"].as_str())
            .unwrap_or(DEFAULT_FORMAT);
        // maubot's `colored` formatter: the same format, in colour on a terminal.
        let colored = formatter
            .and_then(|f| f["()"].as_str())
            .is_some_and(|c| c.ends_with("ColorFormatter"))
            && matches!(sink, Sink::Stderr | Sink::Stdout)
            && crate::logging::use_colour();
        let level = handler["level"]
            .as_str()
            .and_then(LogLevel::from_python_name)
            .map_or(0, |l| l.python_number() as u8);
        let _ = name;
        Ok(Output {
            level,
            format: Format::parse(format, colored),
            sink,
        })
    }

    fn write(&self, line: &str) {
        match &self.sink {
            Sink::Stderr => {
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
            Sink::Stdout => {
                let _ = std::io::stdout().lock().write_all(line.as_bytes());
            }
            Sink::File(file) => lock(file).write(line.as_bytes()),
        }
    }
}

impl<S: Subscriber> Layer<S> for HandlersLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let record = crate::logs::record_of(event);
        let levelno = record["levelno"].as_u64().unwrap_or(0) as u8;
        for output in &self.outputs {
            if levelno >= output.level {
                let mut line = output.format.render(&record);
                line.push('\n');
                output.write(&line);
            }
        }
    }
}

/// A Python `%`-style format string.
#[derive(Debug)]
struct Format {
    pieces: Vec<Piece>,
    colored: bool,
}

#[derive(Debug)]
enum Piece {
    Text(String),
    /// `%(key)s`, left-aligned (`-`) or right-aligned to a width.
    Field {
        key: String,
        width: usize,
        left: bool,
    },
}

impl Format {
    fn parse(format: &str, colored: bool) -> Format {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = format;
        while let Some(at) = rest.find('%') {
            text.push_str(&rest[..at]);
            rest = &rest[at + 1..];
            if let Some(after) = rest.strip_prefix('%') {
                text.push('%');
                rest = after;
                continue;
            }
            let Some(spec) = rest.strip_prefix('(').and_then(|r| r.split_once(')')) else {
                text.push('%');
                continue;
            };
            let (key, after) = spec;
            // Flags and width, then one conversion letter (s, d, f, ...).
            let left = after.starts_with('-');
            let digits: String = after
                .trim_start_matches(['-', '+', ' ', '0', '#'])
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            let conversion = after
                .find(|c: char| c.is_ascii_alphabetic())
                .map_or(after.len(), |i| i + 1);
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(Piece::Field {
                key: key.to_owned(),
                width: digits.parse().unwrap_or(0),
                left,
            });
            rest = &after[conversion..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Format { pieces, colored }
    }

    fn render(&self, record: &Value) -> String {
        let mut line = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => line.push_str(text),
                Piece::Field { key, width, left } => {
                    let value = field(record, key);
                    let value = match (self.colored, key.as_str()) {
                        (true, "levelname") => colour_level(&value, record),
                        (true, "name") => format!("\x1b[94m{value}\x1b[0m"),
                        _ => value,
                    };
                    let pad = width.saturating_sub(value.chars().count());
                    if *left {
                        line.push_str(&value);
                        line.extend(std::iter::repeat_n(' ', pad));
                    } else {
                        line.extend(std::iter::repeat_n(' ', pad));
                        line.push_str(&value);
                    }
                }
            }
        }
        line
    }
}

fn colour_level(name: &str, record: &Value) -> String {
    let colour = match record["levelno"].as_u64().unwrap_or(0) {
        0..=10 => "\x1b[36m",
        11..=20 => "\x1b[32m",
        21..=30 => "\x1b[33m",
        _ => "\x1b[31m",
    };
    format!("{colour}{name}\x1b[0m")
}

/// A record's value for `%(key)s`. `message` is the text with the record's other fields, with
/// every line after the first indented, so that no text of a plugin's passes for a line of its
/// own.
fn field(record: &Value, key: &str) -> String {
    match key {
        "asctime" => crate::logging::timestamp(std::time::SystemTime::now()),
        "message" => {
            let mut message = record["msg"].as_str().unwrap_or_default().to_owned();
            if let Some(fields) = record.as_object() {
                for (name, value) in fields
                    .iter()
                    .filter(|(k, _)| !STANDARD.contains(&k.as_str()))
                {
                    let value = value
                        .as_str()
                        .map_or_else(|| value.to_string(), str::to_owned);
                    let _ = write!(message, " {name}={value}");
                }
            }
            if let Some(exception) = record["exc_info"].as_str() {
                let _ = write!(message, "\n{exception}");
            }
            crate::logging::escape_lines(&message)
        }
        "process" => std::process::id().to_string(),
        other => match &record[other] {
            Value::String(text) => text.clone(),
            Value::Null => String::new(),
            value => value.to_string(),
        },
    }
}

/// A file that is renamed to `.1`, `.2`, ... once it would grow past `max_bytes` (0: never), as
/// Python's `RotatingFileHandler` does, keeping `backups` old files.
#[derive(Debug)]
struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    backups: u64,
    file: File,
    size: u64,
}

impl RotatingFile {
    fn open(path: PathBuf, max_bytes: u64, backups: u64) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = File::options().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path,
            max_bytes,
            backups,
            file,
            size,
        })
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.max_bytes > 0 && self.size > 0 && self.size + bytes.len() as u64 > self.max_bytes {
            self.rotate();
        }
        if self.file.write_all(bytes).is_ok() {
            self.size += bytes.len() as u64;
        }
    }

    fn rotate(&mut self) {
        let numbered = |n: u64| {
            let mut name = self.path.as_os_str().to_owned();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        if self.backups == 0 {
            let _ = self.file.set_len(0);
        } else {
            for n in (1..self.backups).rev() {
                let _ = std::fs::rename(numbered(n), numbered(n + 1));
            }
            let _ = std::fs::rename(&self.path, numbered(1));
        }
        if let Ok(file) = File::options().create(true).append(true).open(&self.path) {
            self.file = file;
        }
        self.size = 0;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn formats_like_python() {
        let record = json!({
            "name": "maubot.instance.echo", "levelname": "INFO", "levelno": 20,
            "msg": "hello\n[forged] line", "python_logger": "x",
        });
        let format = Format::parse("%(levelname)-8s|%(name)s: %(message)s %%", false);
        assert_eq!(
            format.render(&record),
            "INFO    |maubot.instance.echo: hello\n    [forged] line python_logger=x %"
        );
    }

    #[test]
    fn rotates_by_size_and_keeps_backups() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("maubot.log");
        let mut file = RotatingFile::open(path.clone(), 10, 2).expect("open");
        for line in ["aaaaaa\n", "bbbbbb\n", "cccccc\n", "dddddd\n"] {
            file.write(line.as_bytes());
        }
        let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
        assert_eq!(read(&path), "dddddd\n");
        assert_eq!(read(&dir.path().join("maubot.log.1")), "cccccc\n");
        assert_eq!(read(&dir.path().join("maubot.log.2")), "bbbbbb\n");
        assert!(!dir.path().join("maubot.log.3").exists());
    }
}
