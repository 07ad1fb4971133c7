//! The two servers as processes on loopback: their configs, start, stop and usage.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::api::Api;
use crate::procfs::{self, Usage};

/// The PyPI release compared against.
pub const MAUBOT_VERSION: &str = "0.6.0";
/// The management API secret of both servers (their tokens are interchangeable).
pub const SECRET: &str = "maubot-bench-unshared-secret";

/// Which implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    MaubotRs,
    Maubot,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::MaubotRs => "maubot-rs",
            Kind::Maubot => "maubot 0.6",
        }
    }

    /// Prefix of the Synapse users made for this server.
    pub fn user_prefix(self) -> &'static str {
        match self {
            Kind::MaubotRs => "benchrs",
            Kind::Maubot => "benchmb",
        }
    }
}

/// What both servers need to run: the programs and the homeserver.
#[derive(Debug, Clone)]
pub struct Programs {
    /// The maubot-rs release binary.
    pub maubot_rs: PathBuf,
    /// maubot 0.6.0's venv.
    pub maubot_venv: PathBuf,
    /// The Python environment of maubot-rs's plugin host.
    pub python_host_venv: PathBuf,
    pub homeserver: String,
}

/// A server's data directory and config, kept across restarts.
#[derive(Debug)]
pub struct Setup {
    pub kind: Kind,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Setup {
    /// A fresh data directory with the server's config (SQLite, the same secret and admins,
    /// WARNING logs; maubot-rs also logs `maubot.timing` at DEBUG).
    pub fn new(kind: Kind, programs: &Programs) -> anyhow::Result<Setup> {
        let dir = tempfile::Builder::new()
            .prefix(match kind {
                Kind::MaubotRs => "bench-maubot-rs-",
                Kind::Maubot => "bench-maubot-",
            })
            .tempdir()?;
        let port = maubot_test_support::free_port();
        let d = dir.path().display();
        for sub in ["plugins", "trash", "dbs"] {
            std::fs::create_dir_all(dir.path().join(sub))?;
        }
        let mut config = format!(
            r#"database: sqlite:{d}/maubot.db
plugin_directories: {{upload: {d}/plugins, load: [{d}/plugins], trash: {d}/trash}}
plugin_databases: {{sqlite: {d}/dbs}}
server:
  hostname: 127.0.0.1
  port: {port}
  public_url: http://127.0.0.1:{port}
  unshared_secret: {SECRET}
homeservers:
  localhost: {{url: "{hs}", secret: null}}
admins: {{root: ""}}
logging:
  version: 1
  formatters: {{normal: {{format: "[%(asctime)s] [%(levelname)s@%(name)s] %(message)s"}}}}
  handlers: {{console: {{class: logging.StreamHandler, formatter: normal}}}}
  loggers: {{maubot.timing: {{level: DEBUG}}}}
  root: {{level: WARNING, handlers: [console]}}
"#,
            hs = programs.homeserver,
        );
        if kind == Kind::MaubotRs {
            config.push_str(&format!(
                "crypto_store_path: {d}/crypto-stores\npython_host: {{venv: \"{}\"}}\n",
                programs.python_host_venv.display()
            ));
        }
        std::fs::write(dir.path().join("config.yaml"), config)?;
        Ok(Setup { kind, dir, port })
    }

    /// The server's standard output and error (appended over restarts).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// Starts the server (not waiting for it).
    pub fn spawn(&self, programs: &Programs) -> anyhow::Result<Server> {
        let config = self.dir.path().join("config.yaml");
        let mut command = match self.kind {
            Kind::MaubotRs => {
                let mut command = tokio::process::Command::new(&programs.maubot_rs);
                command.arg("-c").arg(&config).env_remove("RUST_LOG");
                command
            }
            Kind::Maubot => {
                let mut command =
                    tokio::process::Command::new(programs.maubot_venv.join("bin/python"));
                command.args(["-m", "maubot", "-c"]).arg(&config);
                command
            }
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        command
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let spawned_at = Instant::now();
        let child = command
            .spawn()
            .with_context(|| format!("start {}", self.kind.name()))?;
        let pid = child.id().context("the server exited at once")?;
        Ok(Server {
            kind: self.kind,
            child,
            pid,
            port: self.port,
            spawned_at,
            log: self.log_path(),
        })
    }
}

/// A running server process.
#[derive(Debug)]
pub struct Server {
    pub kind: Kind,
    child: tokio::process::Child,
    pub pid: u32,
    pub port: u16,
    pub spawned_at: Instant,
    log: PathBuf,
}

impl Server {
    /// Waits until the management API answers a login; the API and how long after the spawn.
    pub async fn wait_api(&mut self, timeout: Duration) -> anyhow::Result<(Api, Duration)> {
        let base = format!("http://127.0.0.1:{}/_matrix/maubot/v1", self.port);
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(api) = Api::login(&base, SECRET).await {
                return Ok((api, self.spawned_at.elapsed()));
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited with {status} while starting:\n{}",
                    self.kind.name(),
                    tail(&self.log, 30)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not answer within {timeout:?}:\n{}",
                    self.kind.name(),
                    tail(&self.log, 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Memory and descriptors of the server and its children (maubot-rs's plugin workers).
    pub fn usage(&self) -> anyhow::Result<Usage> {
        procfs::tree_usage(self.pid)
    }

    /// Stops the server gracefully (SIGTERM, SIGKILL after 20 s), then any of its children
    /// that outlived it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let children: Vec<u32> = procfs::tree(self.pid)
            .into_iter()
            .filter(|&p| p != self.pid)
            .collect();
        signal("-TERM", self.pid).await;
        if tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .is_err()
        {
            eprintln!(
                "  {} did not stop within 20 s; killing it",
                self.kind.name()
            );
            self.child.kill().await?;
        }
        for child in children {
            if Path::new(&format!("/proc/{child}")).exists() {
                tokio::time::sleep(Duration::from_secs(2)).await;
                if Path::new(&format!("/proc/{child}")).exists() {
                    signal("-KILL", child).await;
                }
            }
        }
        Ok(())
    }
}

async fn signal(signal: &str, pid: u32) {
    let _ = tokio::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .await;
}

/// The last `lines` lines of a file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// What maubot's venv gets: maubot with the extras of its official container image
/// (encryption, and `legacydb` for SQLAlchemy plugins), and the packages that image ships
/// which the test plugin zoo imports without declaring them (Pillow) or as a soft dependency
/// (semver), which maubot itself never installs.
fn maubot_packages() -> [String; 3] {
    [
        format!("maubot[encryption,legacydb]=={MAUBOT_VERSION}"),
        "Pillow".to_owned(),
        "semver".to_owned(),
    ]
}

/// The maubot-rs server binary: `given`, or `maubot` next to this program.
pub fn maubot_rs_binary(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let binary = match given {
        Some(path) => path.to_owned(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory of this program")?
            .join("maubot"),
    };
    if !binary.is_file() {
        bail!(
            "the maubot-rs binary {} does not exist\nhint: build it first with \
             `cargo build --release --bin maubot`, or pass --maubot-rs PATH",
            binary.display()
        );
    }
    Ok(binary)
}

/// maubot 0.6.0 with what its container image has for the plugins, in a venv of its own under
/// `target/`, installed from PyPI on first use.
pub async fn maubot_venv() -> anyhow::Result<PathBuf> {
    let packages = maubot_packages();
    tokio::task::spawn_blocking(move || {
        let packages: Vec<&str> = packages.iter().map(String::as_str).collect();
        maubot_test_support::python_tools::venv("maubot-0.6", &packages)
    })
    .await?
    .context("install maubot 0.6")
}

/// Whether maubot's venv can do end-to-end encryption (python-olm imports).
pub async fn maubot_has_crypto(venv: &Path) -> bool {
    tokio::process::Command::new(venv.join("bin/python"))
        .args(["-c", "import olm, Crypto, unpaddedbase64"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}
