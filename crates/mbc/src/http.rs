//! Calls to the management API (`/_matrix/maubot/v1`), and its error answers as [`Failure`]s.

use std::time::Duration;

use maubot_types::secret::Secret;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::error::{Failure, Result};
use crate::term::Progress;

/// The management API's path prefix.
pub const API_PREFIX: &str = "/_matrix/maubot/v1";
/// The most of an answer mbc reads (answers are small JSON documents).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
/// Uploads are sent in pieces of this size, so that progress can be shown.
const UPLOAD_CHUNK: usize = 64 * 1024;

/// A maubot server's management API.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    server: String,
    token: Option<Secret>,
}

/// An answer: its status and JSON body (`Value::Null` when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Api {
    /// An API client for the server at `server` (a base URL), sending `token` if given.
    pub fn new(server: &str, token: Option<Secret>) -> Result<Api> {
        check_url(server)?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("mbc/", env!("CARGO_PKG_VERSION"), " (maubot-rs)"))
            .connect_timeout(Duration::from_secs(15))
            .build()
            .map_err(|err| Failure::new("cannot set up the HTTP client").caused_by(&err))?;
        Ok(Api {
            http,
            server: server.to_owned(),
            token,
        })
    }

    /// The server's base URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// `{server}/_matrix/maubot/v1{path}`
    pub fn url(&self, path: &str) -> String {
        format!("{}{API_PREFIX}{path}", self.server)
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, self.url(path));
        match &self.token {
            Some(token) => request.bearer_auth(token.expose()),
            None => request,
        }
    }

    /// Sends a JSON body.
    pub async fn send_json(&self, method: Method, path: &str, body: &Value) -> Result<Answer> {
        self.send(self.request(method, path).json(body)).await
    }

    /// A `GET`.
    pub async fn get(&self, path: &str) -> Result<Answer> {
        self.send(self.request(Method::GET, path)).await
    }

    /// Posts a plugin archive, showing `progress` as it is sent.
    pub async fn post_archive(
        &self,
        path: &str,
        archive: Vec<u8>,
        progress: Option<Progress>,
    ) -> Result<Answer> {
        let len = archive.len();
        let request = self
            .request(Method::POST, path)
            .header(reqwest::header::CONTENT_TYPE, "application/zip");
        let Some(mut progress) = progress else {
            return self.send(request.body(archive)).await;
        };
        let chunks: Vec<Vec<u8>> = archive.chunks(UPLOAD_CHUNK).map(<[u8]>::to_vec).collect();
        let stream = futures_util::stream::iter(chunks.into_iter().map(move |chunk| {
            progress.advance(chunk.len() as u64);
            Ok::<_, std::io::Error>(chunk)
        }));
        let request = request
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(reqwest::Body::wrap_stream(stream));
        self.send(request).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Answer> {
        let mut response = request.send().await.map_err(|err| self.unreachable(&err))?;
        let status = response.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| self.unreachable(&err))?
        {
            if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(Failure::new(format!(
                    "the answer of {} is larger than {MAX_ANSWER_BYTES} bytes",
                    self.server
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            match serde_json::from_slice(&bytes) {
                Ok(body) => body,
                Err(_) => {
                    let text = String::from_utf8_lossy(&bytes);
                    let first = text.lines().next().unwrap_or_default().trim();
                    return Err(Failure::new(format!(
                        "{} answered HTTP {status} with something that is not JSON: {}",
                        self.server,
                        truncate(first, 200)
                    ))
                    .hint(format!(
                        "is {} a maubot server? Give its base URL, without {API_PREFIX}",
                        self.server
                    )));
                }
            }
        };
        Ok(Answer { status, body })
    }

    fn unreachable(&self, err: &reqwest::Error) -> Failure {
        Failure::new(format!("cannot reach {}", self.server))
            .caused_by(err)
            .hint(format!("is maubot running at {}?", self.server))
    }

    /// The failure for an error answer: maubot's `error` text, its `stacktrace` as details,
    /// and hints for the errors that have an obvious remedy.
    pub fn failure(&self, answer: &Answer) -> Failure {
        let body = &answer.body;
        let errcode = body["errcode"].as_str().unwrap_or_default();
        let message = match body["error"].as_str() {
            Some(error) if !error.is_empty() => error.to_owned(),
            _ => format!("{} answered HTTP {}", self.server, answer.status),
        };
        let mut failure = Failure::new(message);
        if let Some(stacktrace) = body["stacktrace"].as_str().filter(|s| !s.trim().is_empty()) {
            failure = failure.details(stacktrace);
        }
        match errcode {
            "auth_token_invalid" | "auth_token_missing" => failure.hint(format!(
                "the saved token is not accepted by {0}; log in again: mbc login -s {0}",
                self.server
            )),
            "invalid_auth" => failure.hint(
                "check the user name and password (admins are listed in the server's config)",
            ),
            _ => failure,
        }
    }
}

/// A server must be given by its base URL, `http://` or `https://`.
pub fn check_url(server: &str) -> Result<()> {
    let scheme_ok = ["http://", "https://"].iter().any(|scheme| {
        server.len() > scheme.len() && server[..scheme.len()].eq_ignore_ascii_case(scheme)
    });
    if scheme_ok {
        Ok(())
    } else {
        Err(
            Failure::new(format!("`{server}` is not a server URL")).hint(format!(
                "give the server's base URL with http:// or https://, e.g. {}",
                crate::cli::DEFAULT_SERVER
            )),
        )
    }
}

/// Percent-encodes a path segment (a homeserver name, an SSO session ID).
pub fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(check_url("http://localhost:29316").is_ok());
        assert!(check_url("HTTPS://maubot.example").is_ok());
        for bad in ["localhost:29316", "http://", "ftp://x", "local"] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        assert_eq!(path_segment("matrix.org"), "matrix.org");
        assert_eq!(path_segment("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn error_answers() {
        let api = Api::new("http://localhost:1", None).expect("api");
        let answer = |status: u16, body: Value| Answer {
            status: StatusCode::from_u16(status).expect("status"),
            body,
        };
        // plugin_invalid: the plugin's traceback comes before the error.
        let failure = api.failure(&answer(
            400,
            serde_json::json!({
                "error": "Failed to load module x", "errcode": "plugin_invalid",
                "stacktrace": "Traceback (most recent call last):\nImportError: y\n",
            }),
        ));
        assert_eq!(failure.message, "Failed to load module x");
        assert_eq!(
            failure.details.as_deref(),
            Some("Traceback (most recent call last):\nImportError: y\n")
        );
        let failure = api.failure(&answer(
            400,
            serde_json::json!({"error": "File is not a maubot plugin", "errcode": "plugin_invalid", "stacktrace": null}),
        ));
        assert_eq!(failure.details, None);
        // A revoked token: log in again.
        let failure = api.failure(&answer(
            401,
            serde_json::json!({"error": "Invalid authorization token", "errcode": "auth_token_invalid"}),
        ));
        assert!(
            failure.hints[0].contains("mbc login -s http://localhost:1"),
            "{failure:?}"
        );
        // No error text: the status.
        let failure = api.failure(&answer(502, Value::Null));
        assert_eq!(
            failure.message,
            "http://localhost:1 answered HTTP 502 Bad Gateway"
        );
    }
}
