//! A real Synapse homeserver for tests, on loopback only.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Deserialize;

/// The Synapse release the tests run against.
pub const SYNAPSE_VERSION: &str = "1.163.2";
/// Synapse's `registration_shared_secret` in every test homeserver.
pub const REGISTRATION_SECRET: &str = "maubot-rs-test-registration-secret";
/// The homeserver's `server_name`.
pub const SERVER_NAME: &str = "localhost";

/// A running (or stopped) test homeserver. Dropping it stops it and deletes its data.
#[derive(Debug)]
pub struct Synapse {
    dir: tempfile::TempDir,
    port: u16,
    process: Mutex<Option<Process>>,
}

/// A user created through shared-secret registration.
#[derive(Debug, Clone, Deserialize)]
pub struct RegisteredUser {
    pub user_id: String,
    pub access_token: String,
    pub device_id: String,
}

impl Synapse {
    /// One homeserver for the whole test process, started on first use. Blocks while it starts.
    ///
    /// It lives as long as the process, so its folder outlives it: the folders of shared
    /// homeservers whose test process has ended are removed here.
    pub fn shared() -> &'static Synapse {
        static SHARED: OnceLock<Synapse> = OnceLock::new();
        SHARED.get_or_init(|| {
            remove_folders_of_ended_processes();
            let synapse = Synapse::start().expect("start the shared test Synapse");
            // Best effort: without the mark the folder is left, as before.
            let _ = std::fs::write(
                synapse.dir.path().join(OWNER_FILE),
                std::process::id().to_string(),
            );
            synapse
        })
    }

    /// A homeserver of the caller's own, e.g. to stop and restart it. Blocks while it starts.
    pub fn start() -> anyhow::Result<Synapse> {
        Self::start_with("")
    }

    /// [`Synapse::start`] with `extra` appended to the homeserver's config (YAML of top-level
    /// keys), e.g. to offer single sign-on.
    pub fn start_with(extra: &str) -> anyhow::Result<Synapse> {
        let venv = venv()?;
        let dir = tempfile::Builder::new()
            .prefix("maubot-synapse-")
            .tempdir()?;
        let port = crate::free_port();
        write_config(dir.path(), port, extra)?;
        let status = Command::new(venv.join("bin/python"))
            .args(["-m", "synapse.app.homeserver", "-c"])
            .arg(dir.path().join("homeserver.yaml"))
            .arg("--generate-keys")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("generate Synapse's signing key")?;
        if !status.success() {
            bail!("Synapse --generate-keys failed: {status}");
        }
        let synapse = Synapse {
            dir,
            port,
            process: Mutex::new(None),
        };
        synapse.resume()?;
        Ok(synapse)
    }

    /// The client API base URL, e.g. `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Synapse's log file (INFO and up, the access log included: one `Processed request` line
    /// per answered request, naming the user who made it).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("homeserver.log")
    }

    /// Stops the homeserver (SIGTERM, then SIGKILL after 10 s), keeping its data.
    pub fn stop(&self) {
        if let Some(process) = self.lock().take() {
            process.stop();
        }
    }

    /// Starts a stopped homeserver again on the same port with the same data, and waits until
    /// it answers.
    pub fn resume(&self) -> anyhow::Result<()> {
        let mut slot = self.lock();
        if slot.is_some() {
            return Ok(());
        }
        let venv = venv()?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("console.log"))?;
        let mut command = Command::new(venv.join("bin/python"));
        command
            .args(["-m", "synapse.app.homeserver", "-c"])
            .arg(self.dir.path().join("homeserver.yaml"))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let process = Process::spawn(command)?;
        if let Err(err) = wait_ready(self.port, Duration::from_secs(90)) {
            process.stop();
            let log =
                std::fs::read_to_string(self.dir.path().join("console.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            bail!(
                "Synapse did not become ready: {err}\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        *slot = Some(process);
        Ok(())
    }

    /// Registers a user with Synapse's shared-secret admin API.
    pub async fn register(
        &self,
        username: &str,
        password: &str,
        admin: bool,
    ) -> anyhow::Result<RegisteredUser> {
        let url = format!("{}/_synapse/admin/v1/register", self.base_url());
        let http = reqwest::Client::new();
        #[derive(Deserialize)]
        struct Nonce {
            nonce: String,
        }
        let Nonce { nonce } = http
            .get(&url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let mac = maubot_types::registration::registration_mac(
            REGISTRATION_SECRET,
            &nonce,
            username,
            password,
            admin,
            None,
        );
        let response = http
            .post(&url)
            .json(&serde_json::json!({
                "nonce": nonce, "username": username, "password": password, "admin": admin, "mac": mac,
            }))
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            bail!(
                "registering {username} failed: {status} {}",
                response.text().await.unwrap_or_default()
            );
        }
        Ok(response.json().await?)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Process>> {
        self.process
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Synapse {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A child process owned by a thread of its own. The child gets `PR_SET_PDEATHSIG`, which fires
/// when the *thread* that spawned it ends; keeping that thread alive until stop (or process exit)
/// means the homeserver dies with the test process, however that ends.
#[derive(Debug)]
struct Process {
    stop: mpsc::Sender<()>,
    stopped: mpsc::Receiver<()>,
}

impl Process {
    fn spawn(mut command: Command) -> anyhow::Result<Process> {
        use std::os::unix::process::CommandExt as _;
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        #[allow(unsafe_code)]
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let (started_tx, started_rx) = mpsc::channel();
        let (stop, stop_rx) = mpsc::channel::<()>();
        let (stopped_tx, stopped) = mpsc::channel();
        std::thread::Builder::new()
            .name("synapse-owner".into())
            .spawn(move || {
                let mut child = match command.spawn() {
                    Ok(child) => child,
                    Err(err) => {
                        let _ = started_tx.send(Err(err));
                        return;
                    }
                };
                let _ = started_tx.send(Ok(()));
                // Returns on stop() and when the sender is dropped.
                let _ = stop_rx.recv();
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = child.try_wait() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = child.kill();
                let _ = child.wait();
                let _ = stopped_tx.send(());
            })?;
        started_rx
            .recv()
            .context("the process owner thread died")?
            .context("spawn Synapse")?;
        Ok(Process { stop, stopped })
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.stopped.recv();
    }
}

/// In a shared homeserver's folder: the ID of the test process it belongs to.
const OWNER_FILE: &str = "test-process.pid";

/// Removes the folders of shared homeservers whose test process has ended. Only marked folders
/// are touched: one without the mark may be a homeserver starting in another process.
fn remove_folders_of_ended_processes() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let ours = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with("maubot-synapse-"));
        let owner = std::fs::read_to_string(path.join(OWNER_FILE))
            .ok()
            .and_then(|pid| pid.trim().parse::<u32>().ok());
        if let Some(pid) = owner.filter(|_| ours)
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

fn wait_ready(port: u16, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match http_status(port, "/_matrix/client/versions") {
            Ok(200) => return Ok(()),
            Ok(_) | Err(_) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Ok(status) => bail!("/_matrix/client/versions answered {status}"),
            Err(err) => return Err(err),
        }
    }
}

/// The status of a GET on loopback, with nothing but the standard library.
fn http_status(port: u16, path: &str) -> anyhow::Result<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    let text = std::str::from_utf8(&head)?;
    Ok(text.get(9..12).context("short status line")?.parse()?)
}

/// The venv with Synapse installed, created on first use and shared by later runs. Under a file
/// lock, so that concurrent test processes install it once.
fn venv() -> anyhow::Result<PathBuf> {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    if let Some(dir) = VENV.get() {
        return Ok(dir.clone());
    }
    let dir = match std::env::var_os("SYNAPSE_TEST_VENV") {
        Some(dir) => PathBuf::from(dir),
        None => crate::target_dir().join("synapse-venv"),
    };
    let marker = dir.join(format!(".installed-matrix-synapse-{SYNAPSE_VERSION}"));
    if !marker.exists() {
        std::fs::create_dir_all(dir.parent().unwrap_or(Path::new(".")))?;
        let lock = std::fs::File::create(dir.with_extension("lock"))?;
        lock.lock()?;
        if !marker.exists() {
            install(&dir)?;
            std::fs::write(&marker, "")?;
        }
    }
    Ok(VENV.get_or_init(|| dir).clone())
}

fn install(dir: &Path) -> anyhow::Result<()> {
    let python = std::env::var("SYNAPSE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    eprintln!(
        "installing matrix-synapse {SYNAPSE_VERSION} into {} (once)",
        dir.display()
    );
    if !dir.join("bin/python").exists() {
        run(Command::new(&python).args(["-m", "venv"]).arg(dir)).with_context(|| {
            format!("create a venv with {python} (is Python 3 with venv installed?)")
        })?;
    }
    run(Command::new(dir.join("bin/pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("matrix-synapse=={SYNAPSE_VERSION}"),
    ]))
    .context("pip install matrix-synapse")
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command.output()?;
    if !output.status.success() {
        bail!(
            "{:?} failed: {}\n{}",
            command,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

fn write_config(dir: &Path, port: u16, extra: &str) -> anyhow::Result<()> {
    let d = dir.display();
    let limit = "{per_second: 10000, burst_count: 100000}";
    let config = format!(
        r#"server_name: "{SERVER_NAME}"
public_baseurl: "http://127.0.0.1:{port}/"
pid_file: "{d}/homeserver.pid"
signing_key_path: "{d}/localhost.signing.key"
log_config: "{d}/log.config"
media_store_path: "{d}/media_store"
report_stats: false
enable_registration: false
registration_shared_secret: "{REGISTRATION_SECRET}"
# Synapse hashes every registered password (default cost 12, about 0.25 s of CPU each); tests
# and benches register hundreds of users.
bcrypt_rounds: 4
macaroon_secret_key: "maubot-rs-test-macaroon"
form_secret: "maubot-rs-test-form"
listeners:
  - {{port: {port}, type: http, tls: false, bind_addresses: ["127.0.0.1"], x_forwarded: false,
     resources: [{{names: [client], compress: false}}]}}
database: {{name: sqlite3, args: {{database: "{d}/homeserver.db"}}}}
federation_domain_whitelist: []
trusted_key_servers: []
suppress_key_server_warning: true
allow_public_rooms_over_federation: false
url_preview_enabled: false
enable_metrics: false
presence: {{enabled: false}}
rc_message: {limit}
rc_registration: {limit}
rc_registration_token_validity: {limit}
rc_login:
  address: {limit}
  account: {limit}
  failed_attempts: {limit}
rc_admin_redaction: {limit}
rc_joins:
  local: {limit}
  remote: {limit}
rc_joins_per_room: {limit}
rc_3pid_validation: {limit}
rc_invites:
  per_room: {limit}
  per_user: {limit}
  per_issuer: {limit}
rc_third_party_invite: {limit}
rc_media_create: {limit}
rc_federation: {{window_size: 1000, sleep_limit: 10000, sleep_delay: 0, reject_limit: 100000, concurrent: 1000}}
rc_presence:
  per_user: {limit}
rc_delayed_event_mgmt: {limit}
rc_reports: {limit}
rc_room_creation: {limit}
rc_key_requests: {limit}
rc_profile: {limit}
rc_user_directory: {limit}
"#
    );
    std::fs::write(dir.join("homeserver.yaml"), format!("{config}{extra}\n"))?;
    let log_config = format!(
        r#"version: 1
formatters:
  precise: {{format: "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s"}}
filters:
  context: {{(): synapse.logging.context.LoggingContextFilter, request: ""}}
handlers:
  file: {{class: logging.FileHandler, formatter: precise, filename: "{d}/homeserver.log", filters: [context]}}
root: {{level: INFO, handlers: [file]}}
disable_existing_loggers: false
"#
    );
    std::fs::write(dir.join("log.config"), log_config)?;
    Ok(())
}
