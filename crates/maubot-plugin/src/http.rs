//! Outgoing HTTP. The server lets an instance reach only the hosts its config lists under a
//! top-level `allowed_hosts:` (exact host names, or `*.example.com`); any other host is
//! [`Error::Forbidden`](crate::Error::Forbidden).
//!
//! ```yaml
//! allowed_hosts:
//! - api.example.com
//! - '*.example.org'
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Result;
use crate::bindings::maubot::plugin::http as wit;
use crate::bindings::maubot::plugin::types::Header;

/// A request to send with [`fetch`].
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// A request without headers or body.
    pub fn new(method: &str, url: &str) -> Self {
        Request {
            method: method.to_owned(),
            url: url.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `GET url`.
    pub fn get(url: &str) -> Self {
        Self::new("GET", url)
    }

    /// `POST url`.
    pub fn post(url: &str) -> Self {
        Self::new("POST", url)
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

    /// Sets a JSON body and its `Content-Type`.
    pub fn json<T: Serialize>(self, value: &T) -> Result<Self> {
        Ok(self
            .header("Content-Type", "application/json")
            .body(serde_json::to_vec(value)?))
    }

    /// Sends the request: [`fetch`].
    pub fn send(&self) -> Result<Response> {
        fetch(self)
    }
}

/// What the server answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body as text (UTF-8, invalid bytes replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        Ok(serde_json::from_slice(&self.body)?)
    }
}

/// Sends a request, to a host the config allows.
pub fn fetch(request: &Request) -> Result<Response> {
    let response = wit::fetch(&wit::Request {
        method: request.method.clone(),
        url: request.url.clone(),
        headers: to_wit(&request.headers),
        body: request.body.clone(),
    })?;
    Ok(Response {
        status: response.status,
        headers: from_wit(response.headers),
        body: response.body,
    })
}

/// `GET url`.
pub fn get(url: &str) -> Result<Response> {
    fetch(&Request::get(url))
}

pub(crate) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

pub(crate) fn to_wit(headers: &[(String, String)]) -> Vec<Header> {
    headers
        .iter()
        .map(|(name, value)| Header {
            name: name.clone(),
            value: value.clone(),
        })
        .collect()
}

pub(crate) fn from_wit(headers: Vec<Header>) -> Vec<(String, String)> {
    headers.into_iter().map(|h| (h.name, h.value)).collect()
}
