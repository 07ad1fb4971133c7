//! A maubot-rs server per test (the real server, in this process, on a loopback port and a
//! fresh SQLite file) and the `mbc` binary run as a process, without a terminal, with its own
//! config folder.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use maubot_server::Running;
use maubot_test_support::Synapse;
use maubot_test_support::synapse::REGISTRATION_SECRET;
use maubot_types::config::Homeserver;
use maubot_types::config::{self, Config};
use maubot_types::secret::Secret;
use serde_json::Value;

pub const SECRET: &str = "test-unshared-secret-0123456789";
pub const ALICE_PASSWORD: &str = "wonderland";
/// bcrypt("wonderland"), cost 4 so that tests stay fast.
pub const ALICE_HASH: &str = "$2b$04$WrH.udMZBfCm23zoZnYvkuctRagFqXe9J3Myst6k2wVTes3UKFd7q";

/// A running server.
#[derive(Debug)]
pub struct TestServer {
    pub running: Running,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// A server whose admins are root (secret login only) and alice (password), logging at
    /// WARNING.
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        Self::start_logging("WARNING", adjust).await
    }

    /// A server whose root logger has `level` (a Python level name).
    pub async fn start_logging(level: &str, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let yaml = format!(
            "database: sqlite:{}\n\
             server:\n  hostname: 127.0.0.1\n  port: 0\n  unshared_secret: {SECRET}\n\
             admins:\n  root: ''\n  alice: '{ALICE_HASH}'\n\
             logging:\n  root: {{level: {level}}}\n",
            dir.path().join("maubot.db").display()
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
        adjust(&mut config);
        let running = maubot_server::start(config).await.expect("server starts");
        TestServer {
            running,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:PORT`, the URL mbc is given.
    pub fn url(&self) -> String {
        format!("http://{}", self.running.local_addr())
    }

    /// A root token, obtained with the secret.
    pub async fn root_token(&self) -> String {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/auth/login",
                None,
                Some(serde_json::json!({ "secret": SECRET })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["token"].as_str().expect("token").to_owned()
    }

    /// Calls the management API; status and JSON body (`Null` if empty).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}/_matrix/maubot/v1{path}", self.url()));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text}"))
        };
        (status, body)
    }

    /// `GET {path}` as root.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let token = self.root_token().await;
        self.call(reqwest::Method::GET, path, Some(&token), None)
            .await
    }

    pub async fn stop(self) {
        self.running.shutdown().await.expect("clean shutdown");
    }
}

/// `mbc` with a config folder and a working folder of its own.
#[derive(Debug)]
pub struct Mbc {
    home: tempfile::TempDir,
    work: tempfile::TempDir,
}

/// What an `mbc` run did.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert_eq!(self.code, 0, "mbc failed:\n{self}");
        assert!(!self.stderr.contains("error:"), "{self}");
        self
    }

    /// Exit status 1 and an `error:` line containing `message`.
    #[track_caller]
    pub fn assert_error(&self, message: &str) -> &Self {
        assert_eq!(self.code, 1, "expected a failure:\n{self}");
        let error = self
            .stderr
            .lines()
            .find(|line| line.starts_with("error: "))
            .unwrap_or_else(|| panic!("no error line:\n{self}"));
        assert!(error.contains(message), "expected `{message}`:\n{self}");
        self
    }

    /// A `hint:` line containing `text`.
    #[track_caller]
    pub fn assert_hint(&self, text: &str) -> &Self {
        assert!(
            self.stderr
                .lines()
                .any(|line| line.starts_with("hint: ") && line.contains(text)),
            "expected a hint with `{text}`:\n{self}"
        );
        self
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit status {}\n--- stdout\n{}--- stderr\n{}---",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Mbc {
    pub fn new() -> Mbc {
        Mbc {
            home: tempfile::tempdir().expect("temp dir"),
            work: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.home.path().join("maubot-cli.json")
    }

    /// The config file as JSON.
    pub fn config(&self) -> Value {
        let text = std::fs::read_to_string(self.config_path()).expect("config file");
        serde_json::from_str(&text).expect("config JSON")
    }

    /// The working folder of the runs (unless [`Mbc::run_in`] names another).
    pub fn work(&self) -> &Path {
        self.work.path()
    }

    pub fn command(&self, dir: &Path, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_mbc"));
        command
            .args(args)
            .current_dir(dir)
            .env("XDG_CONFIG_HOME", self.home.path())
            .env("HOME", self.home.path())
            .env("USER", "alice")
            // WebAssembly plugins' builds share one target folder (the SDK compiles once).
            .env(
                "CARGO_TARGET_DIR",
                maubot_test_support::target_dir().join("wasm-plugins/cargo"),
            )
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Runs `mbc args` in the working folder.
    pub async fn run(&self, args: &[&str]) -> Output {
        self.run_in(self.work.path(), args).await
    }

    /// Runs `mbc args` in `dir`.
    pub async fn run_in(&self, dir: &Path, args: &[&str]) -> Output {
        let output = self.command(dir, args).output().await.expect("run mbc");
        Output {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
            stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
        }
    }

    /// `mbc login` as alice.
    pub async fn login(&self, server: &TestServer) {
        self.run(&[
            "login",
            "-u",
            "alice",
            "-p",
            ALICE_PASSWORD,
            "-s",
            &server.url(),
        ])
        .await
        .assert_success();
    }
}

/// A server whose `homeservers` has `localhost`, the shared test Synapse, and `nosecret`, the
/// same Synapse without a registration secret.
pub async fn server_with_synapse() -> TestServer {
    let synapse = tokio::task::spawn_blocking(Synapse::shared)
        .await
        .expect("synapse");
    TestServer::start_logging("WARNING", |config| {
        config.homeservers.clear();
        config.homeservers.insert(
            "localhost".into(),
            Homeserver {
                url: synapse.base_url(),
                secret: Some(Secret::new(REGISTRATION_SECRET)),
            },
        );
        config.homeservers.insert(
            "nosecret".into(),
            Homeserver {
                url: synapse.base_url(),
                secret: None,
            },
        );
    })
    .await
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}{:08x}", rand::random::<u32>())
}

/// A test plugin of the server's suite (`crates/maubot-server/tests/plugins/{name}`).
pub fn test_plugin(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../maubot-server/tests/plugins")
        .join(name)
}

/// A copy of a test plugin in `parent/name`, to change or build in.
pub fn copy_plugin(name: &str, parent: &Path) -> PathBuf {
    let target = parent.join(name);
    copy_dir(&test_plugin(name), &target);
    target
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

/// The entry names of a ZIP archive.
pub fn entries(bytes: &[u8]) -> Vec<String> {
    let archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a ZIP archive");
    let mut names: Vec<String> = archive
        .file_names()
        .map(|name| name.expect("entry name").into_owned())
        .collect();
    names.sort();
    names
}

/// Uploads an archive with the API (not with mbc), as root; status and body.
pub async fn upload_with_api(server: &TestServer, bytes: Vec<u8>) -> (u16, Value) {
    let token = server.root_token().await;
    let response = server
        .http
        .post(format!(
            "{}/_matrix/maubot/v1/plugins/upload?allow_override=true",
            server.url()
        ))
        .bearer_auth(token)
        .body(bytes)
        .send()
        .await
        .expect("upload");
    let status = response.status().as_u16();
    let body = response.json().await.expect("JSON");
    (status, body)
}
