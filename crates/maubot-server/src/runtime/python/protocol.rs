//! The worker protocol as types (docs/python-host-protocol.md): what the server writes, and
//! what a worker may send. A worker runs plugin code, so a line from it is read into one of
//! these or refused with the reason, never guessed at.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::runtime::{InstanceStart, MatrixRequest, Placement};

/// Server → worker requests.
#[derive(Debug, Serialize)]
#[serde(tag = "method", content = "params", rename_all = "snake_case")]
pub enum ToWorker<'a> {
    Load {
        path: &'a Path,
        meta: Value,
    },
    Start(Start<'a>),
    Stop {
        instance_id: &'a str,
    },
    Event {
        instance_id: &'a str,
        event: &'a Value,
    },
    ConfigUpdated {
        instance_id: &'a str,
        config: &'a str,
    },
    WebRequest {
        instance_id: &'a str,
        method: &'a str,
        path: &'a str,
        query_string: &'a str,
        headers: &'a [(String, String)],
        body_base64: String,
        remote: Option<&'a str>,
    },
    Ping {},
}

#[derive(Debug, Serialize)]
pub struct Start<'a> {
    instance_id: &'a str,
    client: StartClient<'a>,
    config: &'a str,
    database: Option<StartDatabase<'a>>,
    webapp_url: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct StartClient<'a> {
    user_id: &'a str,
    device_id: &'a str,
    homeserver: &'a str,
}

#[derive(Debug, Serialize)]
struct StartDatabase<'a> {
    url: &'a str,
    schema: Option<&'a str>,
    max_conns: Option<u32>,
}

impl<'a> Start<'a> {
    pub fn of(instance: &'a InstanceStart) -> Self {
        Self {
            instance_id: &instance.instance_id,
            client: StartClient {
                user_id: &instance.user_id,
                device_id: &instance.device_id,
                homeserver: &instance.homeserver,
            },
            config: &instance.config,
            database: instance
                .database
                .as_ref()
                .map(|db: &Placement| StartDatabase {
                    url: &db.url,
                    schema: db.schema.as_deref(),
                    max_conns: db.max_conns,
                }),
            webapp_url: instance.webapp_url.as_deref(),
        }
    }
}

impl ToWorker<'_> {
    /// The request as the line the worker reads.
    pub fn line(&self, id: u64) -> String {
        #[derive(Serialize)]
        struct Line<'m, 'a> {
            id: u64,
            #[serde(flatten)]
            message: &'m ToWorker<'a>,
        }
        // Only a path that is not UTF-8 could fail, and the server's paths are.
        serde_json::to_string(&Line { id, message: self }).unwrap_or_default()
    }
}

/// The answer to `start`.
#[derive(Debug, Default, Deserialize)]
pub struct Started {
    #[serde(default)]
    pub base_config: Option<String>,
}

/// The answer to `web_request`.
#[derive(Debug, Deserialize)]
pub struct WebAnswer {
    #[serde(default = "internal_error")]
    pub status: u16,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(default)]
    pub body_base64: String,
}

fn internal_error() -> u16 {
    500
}

/// One line from the worker.
#[derive(Debug)]
pub enum FromWorker {
    /// A request the server answers.
    Request {
        id: u64,
        request: WorkerRequest,
    },
    Notification(Notification),
    /// The answer to one of the server's requests.
    Response {
        id: u64,
        outcome: Result<Value, WorkerError>,
    },
}

/// Worker → server requests.
#[derive(Debug)]
pub enum WorkerRequest {
    /// A Matrix request as one of the worker's instances.
    Matrix(MatrixCall),
}

#[derive(Debug, Deserialize)]
pub struct MatrixCall {
    pub instance_id: String,
    #[serde(flatten)]
    pub request: MatrixRequest,
}

/// Worker → server notifications.
#[derive(Debug)]
pub enum Notification {
    Hello(Hello),
    Log(LogRecord),
    ConfigSave(ConfigSave),
    /// The worker read every `event` request up to this ID.
    EventsRead {
        up_to: u64,
    },
}

#[derive(Debug, Deserialize)]
pub struct Hello {
    pub protocol: u64,
    #[serde(default)]
    pub python: String,
    #[serde(default)]
    pub mautrix: String,
}

#[derive(Debug, Deserialize)]
pub struct LogRecord {
    #[serde(default)]
    pub instance_id: Option<String>,
    #[serde(default = "root_logger")]
    pub logger: String,
    #[serde(default)]
    pub level: LogLevel,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub exception: Option<String>,
}

/// Python's level names; anything else counts as an error.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LogLevel {
    Debug,
    #[default]
    Info,
    Warning,
    #[serde(other)]
    Error,
}

fn root_logger() -> String {
    "root".to_owned()
}

#[derive(Debug, Deserialize)]
pub struct ConfigSave {
    pub instance_id: String,
    pub config: String,
}

/// An `error` answer: the message for people, and Python's traceback.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkerError {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub traceback: Option<String>,
}

/// A line refused, and the ID to answer with the error if it was a request (so that the
/// worker's caller is not left waiting).
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Refused {
    pub request_id: Option<u64>,
    #[source]
    pub error: ProtocolError,
}

/// Why a line from the worker was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("not a JSON object: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("not a JSON object")]
    NotAnObject,
    #[error("neither a request, a notification nor a response")]
    NoKind,
    #[error("unknown method {0:?}")]
    UnknownMethod(String),
    #[error("invalid params of {method}: {source}")]
    InvalidParams {
        method: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The envelope every message shares; `params` is read once its method is known.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    method: Option<String>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error: Option<WorkerError>,
}

impl FromWorker {
    pub fn parse(line: &[u8]) -> Result<Self, Refused> {
        // serde reads a struct from an array too; the protocol has objects only.
        if line.trim_ascii_start().first() != Some(&b'{') {
            return Err(Refused {
                request_id: None,
                error: ProtocolError::NotAnObject,
            });
        }
        let envelope: Envelope<'_> = serde_json::from_slice(line).map_err(|e| Refused {
            request_id: None,
            error: ProtocolError::NotJson(e),
        })?;
        let request_id = envelope.id.filter(|_| envelope.method.is_some());
        Self::read(envelope).map_err(|error| Refused { request_id, error })
    }

    fn read(envelope: Envelope<'_>) -> Result<Self, ProtocolError> {
        let params = |method: &str| Params {
            method: method.to_owned(),
            raw: envelope.params,
        };
        Ok(match (envelope.method.as_deref(), envelope.id) {
            (Some("matrix"), Some(id)) => FromWorker::Request {
                id,
                request: WorkerRequest::Matrix(params("matrix").read()?),
            },
            (Some(method), Some(_)) => {
                return Err(ProtocolError::UnknownMethod(method.to_owned()));
            }
            (Some(method), None) => FromWorker::Notification(match method {
                "hello" => Notification::Hello(params(method).read()?),
                "log" => Notification::Log(params(method).read()?),
                "config_save" => Notification::ConfigSave(params(method).read()?),
                "events_read" => {
                    #[derive(Deserialize)]
                    struct EventsRead {
                        up_to: u64,
                    }
                    let read: EventsRead = params(method).read()?;
                    Notification::EventsRead { up_to: read.up_to }
                }
                other => return Err(ProtocolError::UnknownMethod(other.to_owned())),
            }),
            (None, Some(id)) => FromWorker::Response {
                id,
                outcome: match envelope.error {
                    Some(error) => Err(error),
                    None => Ok(envelope.result.unwrap_or(Value::Null)),
                },
            },
            (None, None) => return Err(ProtocolError::NoKind),
        })
    }
}

struct Params<'a> {
    method: String,
    raw: Option<&'a RawValue>,
}

impl Params<'_> {
    fn read<T: DeserializeOwned>(self) -> Result<T, ProtocolError> {
        let text = self.raw.map_or("{}", RawValue::get);
        serde_json::from_str(text).map_err(|source| ProtocolError::InvalidParams {
            method: self.method,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<FromWorker, Refused> {
        FromWorker::parse(line.as_bytes())
    }

    #[test]
    fn every_kind_of_line_is_read_into_its_type() {
        let matrix = r#"{"id": 3, "method": "matrix", "params": {"instance_id": "echo1",
            "method": "PUT", "path": "/_matrix/client/v3/rooms/!r/send/m.room.message/t",
            "body": {"body": "hi"}}}"#;
        let Ok(FromWorker::Request {
            id: 3,
            request: WorkerRequest::Matrix(call),
        }) = parse(matrix)
        else {
            panic!("{:?}", parse(matrix));
        };
        assert_eq!(call.instance_id, "echo1");
        assert_eq!(call.request.method, "PUT");

        let log = r#"{"method": "log", "params": {"instance_id": null, "level": "CRITICAL",
            "message": "boom"}}"#;
        let Ok(FromWorker::Notification(Notification::Log(record))) = parse(log) else {
            panic!("{:?}", parse(log));
        };
        assert_eq!(record.level, LogLevel::Error);
        assert_eq!(record.logger, "root");

        assert!(matches!(
            parse(r#"{"method": "events_read", "params": {"up_to": 9}}"#),
            Ok(FromWorker::Notification(Notification::EventsRead {
                up_to: 9
            }))
        ));
        let answer = parse(r#"{"id": 4, "error": {"message": "no", "traceback": null}}"#);
        let Ok(FromWorker::Response {
            id: 4,
            outcome: Err(error),
        }) = answer
        else {
            panic!("{answer:?}");
        };
        assert_eq!(error.message.as_deref(), Some("no"));
        assert!(matches!(
            parse(r#"{"id": 5, "result": {}}"#),
            Ok(FromWorker::Response {
                id: 5,
                outcome: Ok(_)
            })
        ));
    }

    #[test]
    fn requests_are_written_as_the_worker_reads_them() {
        assert_eq!(
            ToWorker::Ping {}.line(1),
            r#"{"id":1,"method":"ping","params":{}}"#
        );
        let event = serde_json::json!({"type": "m.room.message"});
        let line = ToWorker::Event {
            instance_id: "echo1",
            event: &event,
        }
        .line(2);
        assert_eq!(
            serde_json::from_str::<Value>(&line).expect("json"),
            serde_json::json!({"id": 2, "method": "event",
                "params": {"instance_id": "echo1", "event": {"type": "m.room.message"}}})
        );
    }

    #[test]
    fn lines_outside_the_protocol_are_refused_with_the_reason() {
        for (line, expected) in [
            ("[1]", "not a JSON object"),
            ("{}", "neither"),
            (
                r#"{"id": 1, "method": "sync", "params": {}}"#,
                "unknown method",
            ),
            (r#"{"method": "shell", "params": {}}"#, "unknown method"),
            (
                r#"{"method": "config_save", "params": {"instance_id": 5}}"#,
                "invalid params",
            ),
            (
                r#"{"id": 2, "method": "matrix", "params": {"instance_id": "a"}}"#,
                "invalid params",
            ),
            (r#"{"id": -1, "result": {}}"#, "not a JSON object"),
        ] {
            let refused = parse(line).expect_err(line).to_string();
            assert!(refused.contains(expected), "{line}: {refused}");
        }
        // A refused request is answered, so that the plugin's call does not wait for ever.
        let refused = parse(r#"{"id": 7, "method": "sync", "params": {}}"#).expect_err("sync");
        assert_eq!(refused.request_id, Some(7));
    }
}
