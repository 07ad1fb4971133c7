//! The management API of either server, as a bench needs it.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use reqwest::Method;
use serde_json::{Value, json};

/// A logged-in management API client.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/_matrix/maubot/v1`
    base: String,
    pub token: String,
}

impl Api {
    /// `POST /auth/login` with the unshared secret, as root.
    pub async fn login(base: &str, secret: &str) -> anyhow::Result<Api> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()?;
        let response = http
            .post(format!("{base}/auth/login"))
            .json(&json!({ "secret": secret, "user": "root" }))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("login answered {}", response.status());
        }
        let body: Value = response.json().await?;
        let token = body["token"].as_str().context("no token")?.to_owned();
        Ok(Api {
            http,
            base: base.to_owned(),
            token,
        })
    }

    /// A request; the answer's JSON if it succeeded.
    async fn call(&self, method: Method, path: &str, body: Body) -> anyhow::Result<Value> {
        let request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        let request = match body {
            Body::None => request,
            Body::Json(value) => request.json(&value),
            Body::Bytes(bytes) => request.body(bytes),
        };
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{method} {path} answered {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `POST /client/new`.
    pub async fn add_client(
        &self,
        homeserver: &str,
        access_token: &str,
        device_id: &str,
    ) -> anyhow::Result<Value> {
        let body = json!({
            "homeserver": homeserver, "access_token": access_token, "device_id": device_id,
        });
        self.call(Method::POST, "/client/new", Body::Json(body))
            .await
    }

    /// `GET /clients`.
    pub async fn clients(&self) -> anyhow::Result<Vec<Value>> {
        let list = self.call(Method::GET, "/clients", Body::None).await?;
        Ok(list.as_array().cloned().unwrap_or_default())
    }

    /// Waits until every client is started and its sync working (as the server sees it).
    pub async fn wait_clients_syncing(
        &self,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let clients = self.clients().await?;
            let ready = clients
                .iter()
                .filter(|c| c["started"] == true && c["sync_ok"] == true)
                .count();
            if ready >= count {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("only {ready} of {count} clients were syncing after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `POST /plugins/upload?allow_override=true`.
    pub async fn upload_plugin(&self, archive: Vec<u8>) -> anyhow::Result<Value> {
        self.call(
            Method::POST,
            "/plugins/upload?allow_override=true",
            Body::Bytes(archive),
        )
        .await
    }

    /// `PUT /instance/{id}`, creating a started instance; fails unless it started.
    pub async fn create_instance(&self, id: &str, plugin: &str, user: &str) -> anyhow::Result<()> {
        let body = json!({ "type": plugin, "primary_user": user, "enabled": true, "config": "" });
        let instance = self
            .call(Method::PUT, &format!("/instance/{id}"), Body::Json(body))
            .await?;
        if instance["started"] != true {
            bail!("instance {id} did not start: {instance}");
        }
        Ok(())
    }

    /// `PUT /instance/{id}` with `started` only: stops or starts an existing instance.
    pub async fn set_started(&self, id: &str, started: bool) -> anyhow::Result<()> {
        let instance = self
            .call(
                Method::PUT,
                &format!("/instance/{id}"),
                Body::Json(json!({ "started": started })),
            )
            .await?;
        if instance["started"] != started {
            bail!("instance {id} is not started={started}: {instance}");
        }
        Ok(())
    }
}

enum Body {
    None,
    Json(Value),
    Bytes(Vec<u8>),
}
