//! A maubot-rs server per test: the real router on a loopback port, on a fresh SQLite or
//! PostgreSQL database.

use std::net::SocketAddr;

use maubot_server::Running;
use maubot_test_support::TestPostgres;
use maubot_types::config::{self, Config};
use reqwest::StatusCode;
use serde_json::Value;

pub const SECRET: &str = "test-unshared-secret-0123456789";
pub const ALICE_PASSWORD: &str = "wonderland";
/// bcrypt("wonderland"), cost 4 so that tests stay fast.
pub const ALICE_HASH: &str = "$2b$04$WrH.udMZBfCm23zoZnYvkuctRagFqXe9J3Myst6k2wVTes3UKFd7q";

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs `$test(server)` once per database backend, as `$test::sqlite` and `$test::postgres`.
/// `start = path;` names another way to start the server (same signature as
/// [`TestServer::start`]).
macro_rules! on_both_databases {
    (start = $start:path; $($test:ident),* $(,)?) => {$(
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(server) = $start($crate::support::Backend::Sqlite, stringify!($test)).await {
                    super::$test(&server).await;
                    server.stop().await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(server) = $start($crate::support::Backend::Postgres, stringify!($test)).await {
                    super::$test(&server).await;
                    server.stop().await;
                }
            }
        }
    )*};
    ($($test:ident),* $(,)?) => {
        $crate::support::on_both_databases!(start = $crate::support::TestServer::start; $($test),*);
    };
}
pub(crate) use on_both_databases;

/// A running server and a client for it.
#[derive(Debug)]
pub struct TestServer {
    pub running: Running,
    pub http: reqwest::Client,
    pub backend: Backend,
    config: Config,
    _dir: tempfile::TempDir,
    _postgres: Option<TestPostgres>,
}

impl TestServer {
    /// The test config on `backend`: alice (bcrypt) and bob (plaintext) are admins, bodies are
    /// limited to 4 KiB. `None` when PostgreSQL is not available (and that is allowed).
    pub async fn start(backend: Backend, test: &str) -> Option<TestServer> {
        Self::start_with(backend, test, |_| {}).await
    }

    pub async fn start_with(
        backend: Backend,
        test: &str,
        adjust: impl FnOnce(&mut Config),
    ) -> Option<TestServer> {
        Self::start_on(backend, test, adjust, None).await
    }

    /// [`TestServer::start_with`], plugins run by `runtime` instead of the real runtimes.
    pub async fn start_on(
        backend: Backend,
        test: &str,
        adjust: impl FnOnce(&mut Config),
        runtime: Option<std::sync::Arc<dyn maubot_server::runtime::PluginRuntime>>,
    ) -> Option<TestServer> {
        let dir = tempfile::tempdir().expect("temp dir");
        let postgres = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(TestPostgres::create(test).await?),
        };
        let database = match &postgres {
            None => format!("sqlite:{}", dir.path().join("maubot.db").display()),
            Some(pg) => pg.url().to_owned(),
        };
        let yaml = format!(
            "database: {database}\n\
             server:\n  hostname: 127.0.0.1\n  port: 0\n  unshared_secret: {SECRET}\n  max_body_size: 4096\n\
             admins:\n  root: ''\n  alice: '{ALICE_HASH}'\n  bob: builder\n  carol: ''\n\
             logging:\n  root: {{level: WARNING}}\n"
        );
        let mut config = config::parse(&yaml).expect("test config").config;
        config.crypto_store_path = dir.path().join("crypto-stores").display().to_string();
        let plugins = dir.path().join("plugins").display().to_string();
        config.plugin_directories.upload = plugins.clone();
        config.plugin_directories.load = vec![plugins];
        config.plugin_directories.trash = dir.path().join("trash").display().to_string();
        config.plugin_databases.sqlite = dir.path().join("dbs").display().to_string();
        config.python_host.venv = maubot_test_support::python_host_venv()
            .display()
            .to_string();
        // Compiled components are shared by the tests' servers (written atomically).
        config.wasm_host.cache_dir = maubot_test_support::target_dir()
            .join("wasm-cache")
            .display()
            .to_string();
        config.python_host.ping_interval = 1.0;
        config.python_host.ping_timeout = 3.0;
        config.python_host.start_timeout = 10.0;
        adjust(&mut config);
        let running = match runtime {
            Some(runtime) => maubot_server::start_with_runtime(config.clone(), runtime).await,
            None => maubot_server::start(config.clone()).await,
        }
        .expect("server starts");
        Some(TestServer {
            running,
            http: reqwest::Client::new(),
            backend,
            config,
            _dir: dir,
            _postgres: postgres,
        })
    }

    /// The server's data directory (plugins, trash, databases).
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub fn addr(&self) -> SocketAddr {
        self.running.local_addr()
    }

    /// The metrics listener's address, when `metrics.enabled`.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.running.metrics_addr()
    }

    /// `http://127.0.0.1:PORT/_matrix/maubot/v1{path}`
    pub fn api(&self, path: &str) -> String {
        format!("http://{}/_matrix/maubot/v1{path}", self.addr())
    }

    /// A root token, obtained with the secret.
    pub async fn root_token(&self) -> String {
        let (status, body) = self
            .post_json("/auth/login", None, serde_json::json!({ "secret": SECRET }))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["token"].as_str().expect("token").to_owned()
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.send(self.http.get(self.api(path)), token).await
    }

    pub async fn post_json(
        &self,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> (StatusCode, Value) {
        self.post_raw(path, token, body.to_string()).await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        self.send(self.http.post(self.api(path)).body(body), token)
            .await
    }

    /// Sends any request, with `token` as a bearer token if given, and decodes the answer.
    pub async fn send(
        &self,
        mut request: reqwest::RequestBuilder,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        decode(request.send().await.expect("request")).await
    }

    /// Stops the server and starts it again on the same config, database and directories (on a
    /// new port).
    pub async fn restart(self) -> TestServer {
        let TestServer {
            running,
            http,
            backend,
            config,
            _dir,
            _postgres,
        } = self;
        running.shutdown().await.expect("clean shutdown");
        let running = maubot_server::start(config.clone())
            .await
            .expect("server restarts");
        TestServer {
            running,
            http,
            backend,
            config,
            _dir,
            _postgres,
        }
    }

    pub async fn stop(self) {
        self.running.shutdown().await.expect("clean shutdown");
    }
}

/// Status and JSON body; a body that is not JSON fails the test, since every API answer is JSON.
pub async fn decode(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: body is not JSON: {text}"))
    };
    (status, body)
}

/// Asserts a maubot error answer.
#[track_caller]
pub fn assert_error(answer: &(StatusCode, Value), status: StatusCode, errcode: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["errcode"], errcode, "{}", answer.1);
    assert!(
        answer.1["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{}",
        answer.1
    );
}
