//! What a WebAssembly instance may ask of the server: the `maubot:plugin` imports, each bound
//! to the instance's own bot, database, config and hosts. Matrix requests go the way a Python
//! plugin's do (`RuntimeHost::matrix_request`: the allow-list, the identity check, encryption).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value as Json, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::actor::Command;
use super::bindings::v0_1_0::{config, database, http, kv, logging, matrix, timers, types};
use super::content;
use super::storage::Storage;
use crate::runtime::{MatrixRequest, RuntimeHost, SECURITY};

type Error = types::Error;

/// Timers one instance may have waiting.
const MAX_TIMERS: usize = 1000;
/// The longest log message kept; a plugin's flood of text is cut.
const MAX_LOG_MESSAGE: usize = 64 * 1024;
/// The most bytes of an HTTP response a plugin gets.
const MAX_HTTP_RESPONSE: usize = 16 * 1024 * 1024;
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends an instance may make: a bucket of `burst` that refills at `per_second`.
#[derive(Debug)]
pub struct SendBudget {
    tokens: f64,
    burst: f64,
    per_second: f64,
    refilled: Instant,
}

impl SendBudget {
    pub fn new(per_second: f64, burst: u32) -> Self {
        Self {
            tokens: f64::from(burst),
            burst: f64::from(burst),
            per_second,
            refilled: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        let earned = now.duration_since(self.refilled).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + earned).min(self.burst);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One instance's store data.
pub struct State {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limits: StoreLimits,
    pub instance_id: String,
    pub host: Arc<dyn RuntimeHost>,
    pub config: String,
    pub storage: Storage,
    pub sends: SendBudget,
    pub http: reqwest::Client,
    /// Where due timers are delivered: the instance's own command queue.
    pub commands: mpsc::Sender<Command>,
    pub timers: HashMap<u64, JoinHandle<()>>,
    /// When the current call of the plugin began (for its wall-clock limit).
    pub call_started: Instant,
    next_txn: u64,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("instance_id", &self.instance_id)
            .finish_non_exhaustive()
    }
}

impl Drop for State {
    fn drop(&mut self) {
        for timer in self.timers.values() {
            timer.abort();
        }
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// What a new [`State`] is made of.
pub struct StateParts {
    pub instance_id: String,
    pub host: Arc<dyn RuntimeHost>,
    pub config: String,
    pub storage: Storage,
    pub sends: SendBudget,
    pub http: reqwest::Client,
    pub commands: mpsc::Sender<Command>,
    pub limits: StoreLimits,
}

impl State {
    pub fn new(parts: StateParts) -> Self {
        Self {
            // Nothing of the system: no files, no environment, no sockets. Standard output and
            // error go nowhere; plugins log through `logging`.
            wasi: wasmtime_wasi::WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
            limits: parts.limits,
            instance_id: parts.instance_id,
            host: parts.host,
            config: parts.config,
            storage: parts.storage,
            sends: parts.sends,
            http: parts.http,
            commands: parts.commands,
            timers: HashMap::new(),
            call_started: Instant::now(),
            next_txn: 0,
        }
    }

    fn txn(&mut self) -> String {
        self.next_txn += 1;
        format!("mbw{:x}.{}", rand::random::<u64>(), self.next_txn)
    }

    async fn matrix(
        &mut self,
        method: &str,
        path: String,
        body: Option<Json>,
    ) -> Result<Json, Error> {
        let request = MatrixRequest {
            method: method.to_owned(),
            path,
            query: Default::default(),
            body,
            body_base64: None,
            content_type: None,
        };
        let response = self.host.matrix_request(&self.instance_id, request).await;
        let message = || {
            response.body["error"]
                .as_str()
                .unwrap_or("the homeserver refused")
                .to_owned()
        };
        match response.status {
            200..=299 => Ok(response.body.clone()),
            403 => Err(Error::Forbidden(message())),
            404 => Err(Error::NotFound),
            429 => Err(Error::RateLimited),
            _ => Err(Error::Failed(message())),
        }
    }

    async fn send(
        &mut self,
        room_id: &str,
        event_type: &str,
        content: Json,
    ) -> Result<String, Error> {
        if !self.sends.take() {
            return Err(Error::RateLimited);
        }
        let path = format!(
            "/_matrix/client/v3/rooms/{}/send/{}/{}",
            segment(room_id),
            segment(event_type),
            self.txn()
        );
        let answer = self.matrix("PUT", path, Some(content)).await?;
        Ok(answer["event_id"].as_str().unwrap_or_default().to_owned())
    }

    /// The hosts the admin allows in the instance's config (`allowed_hosts`).
    fn allowed_hosts(config: &str) -> Vec<String> {
        let Ok(tree) = serde_saphyr::from_str::<Json>(config) else {
            return Vec::new();
        };
        tree["allowed_hosts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h.as_str().map(str::to_ascii_lowercase))
            .collect()
    }
}

fn segment(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

fn host_allowed(allowed: &[String], host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    allowed
        .iter()
        .any(|pattern| match pattern.strip_prefix("*.") {
            Some(domain) => host.ends_with(&format!(".{domain}")),
            None => *pattern == host,
        })
}

impl types::Host for State {}

impl matrix::Host for State {
    async fn send_text(
        &mut self,
        room_id: String,
        text: String,
        format: matrix::TextFormat,
        notice: bool,
    ) -> Result<String, Error> {
        let content = content::text(&text, format, notice);
        self.send(&room_id, "m.room.message", content).await
    }

    async fn reply(
        &mut self,
        room_id: String,
        event_id: String,
        text: String,
        format: matrix::TextFormat,
        notice: bool,
    ) -> Result<String, Error> {
        let content = content::reply(&event_id, &text, format, notice);
        self.send(&room_id, "m.room.message", content).await
    }

    async fn edit(
        &mut self,
        room_id: String,
        event_id: String,
        text: String,
        format: matrix::TextFormat,
    ) -> Result<String, Error> {
        let content = content::edit(&event_id, &text, format);
        self.send(&room_id, "m.room.message", content).await
    }

    async fn react(
        &mut self,
        room_id: String,
        event_id: String,
        key: String,
    ) -> Result<String, Error> {
        let content = content::reaction(&event_id, &key);
        self.send(&room_id, "m.reaction", content).await
    }

    async fn redact(
        &mut self,
        room_id: String,
        event_id: String,
        reason: Option<String>,
    ) -> Result<String, Error> {
        if !self.sends.take() {
            return Err(Error::RateLimited);
        }
        let path = format!(
            "/_matrix/client/v3/rooms/{}/redact/{}/{}",
            segment(&room_id),
            segment(&event_id),
            self.txn()
        );
        let body = reason.map_or_else(|| json!({}), |reason| json!({ "reason": reason }));
        let answer = self.matrix("PUT", path, Some(body)).await?;
        Ok(answer["event_id"].as_str().unwrap_or_default().to_owned())
    }

    async fn send_event(
        &mut self,
        room_id: String,
        event_type: String,
        content: String,
    ) -> Result<String, Error> {
        let content: Json = serde_json::from_str(&content)
            .map_err(|e| Error::Failed(format!("the content is not JSON: {e}")))?;
        self.send(&room_id, &event_type, content).await
    }

    async fn get_state(
        &mut self,
        room_id: String,
        event_type: String,
        state_key: String,
    ) -> Result<Option<String>, Error> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/state/{}/{}",
            segment(&room_id),
            segment(&event_type),
            segment(&state_key)
        );
        match self.matrix("GET", path, None).await {
            Ok(content) => Ok(Some(content.to_string())),
            Err(Error::NotFound) => Ok(None),
            Err(err) => Err(err),
        }
    }

    async fn members(&mut self, room_id: String) -> Result<Vec<String>, Error> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/joined_members",
            segment(&room_id)
        );
        let answer = self.matrix("GET", path, None).await?;
        Ok(answer["joined"]
            .as_object()
            .map(|joined| joined.keys().cloned().collect())
            .unwrap_or_default())
    }

    async fn joined_rooms(&mut self) -> Vec<String> {
        let answer = self
            .matrix("GET", "/_matrix/client/v3/joined_rooms".to_owned(), None)
            .await
            .unwrap_or_default();
        answer["joined_rooms"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect()
    }
}

impl database::Host for State {
    async fn engine(&mut self) -> database::EngineKind {
        self.storage.engine()
    }

    async fn execute(&mut self, sql: String, params: Vec<database::Value>) -> Result<u64, Error> {
        self.storage.execute(&sql, params).await
    }

    async fn query(
        &mut self,
        sql: String,
        params: Vec<database::Value>,
    ) -> Result<database::Rows, Error> {
        self.storage.query(&sql, params).await
    }
}

impl kv::Host for State {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, Error> {
        self.storage.kv_get(key).await
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), Error> {
        self.storage.kv_set(key, value).await
    }

    async fn delete(&mut self, key: String) -> Result<(), Error> {
        self.storage.kv_delete(key).await
    }

    async fn keys(&mut self, prefix: String) -> Result<Vec<String>, Error> {
        self.storage.kv_keys(prefix).await
    }
}

impl config::Host for State {
    async fn get(&mut self) -> String {
        self.config.clone()
    }

    async fn save(&mut self, yaml: String) {
        if yaml == self.config {
            return;
        }
        // Which hosts a plugin may reach is the admin's to say, not the plugin's.
        if Self::allowed_hosts(&yaml) != Self::allowed_hosts(&self.config) {
            tracing::warn!(
                target: SECURITY, instance = %self.instance_id,
                "Refused a plugin's config save that changes its allowed_hosts"
            );
            return;
        }
        self.config = yaml.clone();
        self.host.config_saved(&self.instance_id, yaml);
    }
}

impl logging::Host for State {
    async fn log(&mut self, level: logging::Level, message: String) {
        let mut message = message;
        if message.len() > MAX_LOG_MESSAGE {
            let mut end = MAX_LOG_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push_str(" [cut]");
        }
        let instance = self.instance_id.as_str();
        match level {
            logging::Level::Debug => {
                tracing::debug!(target: "maubot.instance", instance, "{message}")
            }
            logging::Level::Info => {
                tracing::info!(target: "maubot.instance", instance, "{message}")
            }
            logging::Level::Warning => {
                tracing::warn!(target: "maubot.instance", instance, "{message}")
            }
            logging::Level::Error => {
                tracing::error!(target: "maubot.instance", instance, "{message}")
            }
        }
    }
}

impl timers::Host for State {
    async fn set_timer(&mut self, id: u64, delay_ms: u64) {
        if let Some(old) = self.timers.remove(&id) {
            old.abort();
        }
        self.timers.retain(|_, timer| !timer.is_finished());
        if self.timers.len() >= MAX_TIMERS {
            tracing::warn!(target: "maubot.instance", instance = %self.instance_id, "A plugin set more than {MAX_TIMERS} timers; this one is ignored");
            return;
        }
        let commands = self.commands.clone();
        let timer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            let _ = commands.send(Command::Timer(id)).await;
        });
        self.timers.insert(id, timer);
    }

    async fn cancel_timer(&mut self, id: u64) {
        if let Some(timer) = self.timers.remove(&id) {
            timer.abort();
        }
    }
}

impl http::Host for State {
    async fn fetch(&mut self, request: http::Request) -> Result<http::Response, Error> {
        let url = reqwest::Url::parse(&request.url)
            .map_err(|e| Error::Failed(format!("not a URL: {e}")))?;
        let allowed = Self::allowed_hosts(&self.config);
        let host = url.host_str().unwrap_or_default();
        if !matches!(url.scheme(), "http" | "https") || !host_allowed(&allowed, host) {
            tracing::warn!(
                target: SECURITY, instance = %self.instance_id, host,
                "Refused a plugin's HTTP request to a host its config does not allow"
            );
            return Err(Error::Forbidden(format!(
                "{host} is not in the instance's allowed_hosts"
            )));
        }
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| Error::Failed("invalid method".into()))?;
        let mut builder = self
            .http
            .request(method, url)
            .timeout(HTTP_TIMEOUT)
            .body(request.body);
        for header in request.headers {
            builder = builder.header(header.name, header.value);
        }
        // The client follows no redirects: a plugin that wants to follow one asks again, and
        // the new host is checked like the first.
        let mut response = builder
            .send()
            .await
            .map_err(|e| Error::Failed(e.to_string()))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(name, value)| {
                Some(types::Header {
                    name: name.to_string(),
                    value: value.to_str().ok()?.to_owned(),
                })
            })
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Error::Failed(e.to_string()))?
        {
            if body.len() + chunk.len() > MAX_HTTP_RESPONSE {
                return Err(Error::Failed(format!(
                    "the response is larger than {MAX_HTTP_RESPONSE} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(http::Response {
            status,
            headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_hosts_come_from_the_config() {
        let allowed = State::allowed_hosts("allowed_hosts: [api.example.com, '*.github.com']\n");
        assert!(host_allowed(&allowed, "api.example.com"));
        assert!(host_allowed(&allowed, "API.example.com"));
        assert!(host_allowed(&allowed, "raw.github.com"));
        assert!(!host_allowed(&allowed, "github.com"));
        assert!(!host_allowed(&allowed, "evil.com"));
        assert!(!host_allowed(
            &State::allowed_hosts("other: 1\n"),
            "api.example.com"
        ));
    }

    #[test]
    fn sends_are_budgeted() {
        let mut budget = SendBudget::new(0.0, 3);
        assert!(budget.take() && budget.take() && budget.take());
        assert!(!budget.take());
    }
}
