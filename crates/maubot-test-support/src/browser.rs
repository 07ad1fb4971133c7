//! A headless Chromium driven through chromedriver's W3C WebDriver protocol (plain JSON over
//! HTTP, on loopback): Debian's `chromium` and `chromium-driver`, which `scripts/test` installs.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// The key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Desktop and phone window sizes of the screenshots.
pub const DESKTOP: (u32, u32) = (1280, 900);
pub const PHONE: (u32, u32) = (390, 844);

/// A browser session. Ends (browser and driver) on [`Browser::quit`] or when dropped.
#[derive(Debug)]
pub struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

/// An element of the page.
#[derive(Debug, Clone)]
pub struct Element(String);

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

impl Browser {
    /// Starts chromedriver on a free loopback port and a headless Chromium with a fresh profile,
    /// without any of Chromium's background connections.
    pub async fn start() -> anyhow::Result<Browser> {
        let driver_path = find_program(&["chromedriver"])
            .context("chromedriver not found (scripts/test installs Debian's chromium-driver)")?;
        let chromium = find_program(&["chromium", "chromium-browser"])
            .context("chromium not found (scripts/test installs Debian's chromium)")?;
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            listener.local_addr()?.port()
        };
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting chromedriver")?;
        let http = reqwest::Client::new();
        let root = format!("http://127.0.0.1:{port}");
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(response) = http.get(format!("{root}/status")).send().await
                && response.status().is_success()
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !ready {
            bail!("chromedriver did not start");
        }
        let profile = tempfile::tempdir()?;
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--hide-scrollbars".to_owned(),
            format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
            "goog:loggingPrefs": { "browser": "ALL" },
        } } });
        let answer: Value = http
            .post(format!("{root}/session"))
            .json(&capabilities)
            .send()
            .await?
            .json()
            .await?;
        let session = answer["value"]["sessionId"]
            .as_str()
            .with_context(|| format!("no session: {answer}"))?;
        let browser = Browser {
            http,
            session: format!("{root}/session/{session}"),
            driver,
            _profile: profile,
        };
        browser
            .command(
                reqwest::Method::POST,
                "/timeouts",
                json!({ "implicit": 10_000, "pageLoad": 60_000, "script": 30_000 }),
            )
            .await?;
        Ok(browser)
    }

    async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.session));
        if method != reqwest::Method::GET {
            request = request.json(&body);
        }
        let answer: Value = request.send().await?.json().await?;
        if let Some(error) = answer["value"]["error"].as_str() {
            bail!(
                "WebDriver {method} {path}: {error}: {}",
                answer["value"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or_default()
            );
        }
        Ok(answer["value"].clone())
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.command(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await
            .map(drop)
    }

    /// The page's URL.
    pub async fn url(&self) -> anyhow::Result<String> {
        let url = self
            .command(reqwest::Method::GET, "/url", Value::Null)
            .await?;
        Ok(url.as_str().unwrap_or_default().to_owned())
    }

    /// The first element matching `css` (waiting up to 10 s for it to appear).
    pub async fn find(&self, css: &str) -> anyhow::Result<Element> {
        let found = self
            .command(
                reqwest::Method::POST,
                "/element",
                json!({ "using": "css selector", "value": css }),
            )
            .await
            .with_context(|| format!("finding {css}"))?;
        let id = found[ELEMENT]
            .as_str()
            .with_context(|| format!("no element for {css}"))?;
        Ok(Element(id.to_owned()))
    }

    /// Clicks the first element matching `css`.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        let element = self.find(css).await?;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{}/click", element.0),
            json!({}),
        )
        .await
        .with_context(|| format!("clicking {css}"))
        .map(drop)
    }

    /// Replaces the text of the field matching `css` with `text`, as typed.
    pub async fn type_into(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let element = self.find(css).await?;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{}/clear", element.0),
            json!({}),
        )
        .await?;
        self.send_keys(&element, text).await
    }

    /// Types `text` into an element (for a file input: the path of the file to pick).
    pub async fn send_keys(&self, element: &Element, text: &str) -> anyhow::Result<()> {
        self.command(
            reqwest::Method::POST,
            &format!("/element/{}/value", element.0),
            json!({ "text": text }),
        )
        .await
        .map(drop)
    }

    /// The visible text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> anyhow::Result<String> {
        let element = self.find(css).await?;
        let text = self
            .command(
                reqwest::Method::GET,
                &format!("/element/{}/text", element.0),
                Value::Null,
            )
            .await?;
        Ok(text.as_str().unwrap_or_default().to_owned())
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns its value.
    pub async fn execute(&self, script: &str, args: Value) -> anyhow::Result<Value> {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": args }),
        )
        .await
    }

    /// Waits (up to `timeout`) until the page's text contains `needle`; the text otherwise.
    pub async fn wait_for_text(&self, needle: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let text = self
                .execute(
                    "return document.body ? document.body.innerText : '';",
                    json!([]),
                )
                .await?;
            let text = text.as_str().unwrap_or_default();
            if text.contains(needle) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the page never showed {needle:?}; it shows:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Sets the window's size.
    pub async fn resize(&self, (width, height): (u32, u32)) -> anyhow::Result<()> {
        self.command(
            reqwest::Method::POST,
            "/window/rect",
            json!({ "width": width, "height": height }),
        )
        .await
        .map(drop)
    }

    /// Shows pages as with the system in dark (or light) mode: `prefers-color-scheme`.
    pub async fn dark_mode(&self, dark: bool) -> anyhow::Result<()> {
        let scheme = if dark { "dark" } else { "light" };
        self.command(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            json!({ "cmd": "Emulation.setEmulatedMedia", "params": {
                "features": [{ "name": "prefers-color-scheme", "value": scheme }],
            } }),
        )
        .await
        .map(drop)
    }

    /// Saves a PNG of the whole page as `<dir>/<name>.png`.
    pub async fn screenshot(&self, dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
        let png = self
            .command(reqwest::Method::GET, "/screenshot", Value::Null)
            .await?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .context("screenshot is not base64")?;
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes)?;
        Ok(path)
    }

    /// The browser console's messages since the last call (level and text).
    pub async fn console(&self) -> anyhow::Result<Vec<(String, String)>> {
        let entries = self
            .command(
                reqwest::Method::POST,
                "/se/log",
                json!({ "type": "browser" }),
            )
            .await?;
        Ok(entries
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                (
                    e["level"].as_str().unwrap_or_default().to_owned(),
                    e["message"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect())
    }

    /// Ends the session, the browser and the driver.
    pub async fn quit(mut self) {
        let _ = self
            .http
            .delete(&self.session)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        let _ = self.driver.kill().await;
    }
}
