//! The instance's web app (`webapp: true` in `maubot.yaml`): requests under
//! `<server.plugin_base_path><instance id>/` reach [`crate::Plugin::web_request`], with the
//! path below that prefix.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::maubot::plugin::types as wit;
use crate::{Error, Result};

/// A request to the instance's web app.
#[derive(Debug, Clone, PartialEq)]
pub struct WebRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Below the instance's prefix; starts with `/`, percent-encoded as received.
    pub path: String,
    /// The query string, without `?`.
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl From<wit::WebRequest> for WebRequest {
    fn from(request: wit::WebRequest) -> Self {
        WebRequest {
            method: request.method,
            path: request.path,
            query: request.query,
            headers: crate::http::from_wit(request.headers),
            body: request.body,
        }
    }
}

impl WebRequest {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::http::header(&self.headers, name)
    }

    /// The first query parameter named `name`, decoded (`+` is a space).
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key) == name).then(|| decode(value))
        })
    }

    /// The body parsed as JSON; [`Error::Failed`] if it is not the JSON of a `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    /// The body as text (UTF-8, invalid bytes replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Percent-decoding of a query string component.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|d| d as u8)
}

/// The answer to a [`WebRequest`].
#[derive(Debug, Clone, PartialEq)]
pub struct WebResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl WebResponse {
    /// An empty answer with `status`.
    pub fn new(status: u16) -> Self {
        WebResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `200` with a plain-text body.
    pub fn text(text: &str) -> Self {
        Self::new(200)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(text)
    }

    /// `200` with a JSON body.
    pub fn json<T: Serialize>(value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self::new(200)
                .header("Content-Type", "application/json")
                .body(body),
            Err(err) => Self::error(500, &Error::from(err).to_string()),
        }
    }

    /// `status` with a JSON body `{"error": message}`.
    pub fn error(status: u16, message: &str) -> Self {
        Self::json(&serde_json::json!({ "error": message })).status(status)
    }

    /// `404` with a JSON error.
    pub fn not_found() -> Self {
        Self::error(404, "not found")
    }

    /// Sets the status.
    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
}

impl From<WebResponse> for wit::WebResponse {
    fn from(response: WebResponse) -> Self {
        wit::WebResponse {
            status: response.status,
            headers: crate::http::to_wit(&response.headers),
            body: response.body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &str) -> WebRequest {
        WebRequest {
            method: "GET".into(),
            path: "/".into(),
            query: query.into(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: br#"{"room_id": "!r:x", "text": "hi"}"#.to_vec(),
        }
    }

    #[test]
    fn requests() {
        let r = request("name=Ada+L%C3%B6we&x&bad=%zz&end=%4&odd=%%C3%A9");
        assert_eq!(r.query_param("name").as_deref(), Some("Ada Löwe"));
        assert_eq!(r.query_param("x").as_deref(), Some(""));
        assert_eq!(r.query_param("bad").as_deref(), Some("%zz"));
        assert_eq!(r.query_param("end").as_deref(), Some("%4"));
        assert_eq!(r.query_param("odd").as_deref(), Some("%é"));
        assert_eq!(r.query_param("missing"), None);
        assert_eq!(r.header("content-type"), Some("application/json"));
        let body: serde_json::Value = r.json().expect("JSON");
        assert_eq!(body["text"], "hi");
        assert!(request("").json::<u32>().is_err());
    }

    #[test]
    fn responses() {
        let r = WebResponse::json(&serde_json::json!({"count": 2}));
        assert_eq!((r.status, r.body.as_slice()), (200, &br#"{"count":2}"#[..]));
        let r = WebResponse::not_found();
        assert_eq!(r.status, 404);
        assert_eq!(r.headers[0].1, "application/json");
        assert_eq!(WebResponse::text("x").status(201).status, 201);
    }
}
