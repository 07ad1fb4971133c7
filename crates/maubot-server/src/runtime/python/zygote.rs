//! The zygote (`python -m maubot_host.zygote`): one pre-loaded Python process that forks the
//! workers, so that they share its imports' memory and start in milliseconds.
//!
//! The server and the zygote talk over a `SOCK_SEQPACKET` socket (one JSON message per packet,
//! descriptors alongside; docs/python-host-protocol.md, "The zygote"). A `spawn` carries the
//! worker's protocol socket, its standard output and error and, when it is sandboxed, the
//! Landlock ruleset the child enters before anything else; the answer carries the child's pid
//! and a pidfd, through which the server watches and kills the worker as if it were its own
//! child. The zygote reports each child's exit status.
//!
//! Workers do not depend on the zygote once forked: if it dies, they run on (their protocol
//! socket and pidfd are the server's), and the next worker needs a new zygote.

use std::collections::HashMap;
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use serde_json::{Value, json};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::process::Command;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::env::Prepared;
use super::sandbox;
use crate::runtime::RuntimeError;
use crate::sync::lock;

const LOG: &str = "maubot.host";
/// The zygote imports the host, mautrix and aiohttp before it says it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const SPAWN_TIMEOUT: Duration = Duration::from_secs(10);
/// The zygote's messages are small: an answer or an exit report.
const MAX_MESSAGE: usize = 64 * 1024;
const PROTOCOL_VERSION: u64 = 1;

/// The runtime's zygote: started with the first worker, started again after it died.
#[derive(Debug)]
pub struct Zygotes {
    enabled: bool,
    current: tokio::sync::Mutex<Option<(Arc<Zygote>, tempfile::TempDir)>>,
}

impl Zygotes {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            current: tokio::sync::Mutex::new(None),
        }
    }

    /// The running zygote, or a new one; `None` (workers are then executed afresh) when zygotes
    /// are off or one cannot start.
    pub async fn get(&self, base: &Prepared) -> Option<Arc<Zygote>> {
        if !self.enabled {
            return None;
        }
        let mut current = self.current.lock().await;
        if let Some((zygote, _)) = current.as_ref().filter(|(z, _)| !z.is_dead()) {
            return Some(Arc::clone(zygote));
        }
        let clock = std::time::Instant::now();
        let started = async {
            let home = tempfile::Builder::new()
                .prefix("maubot-zygote-")
                .tempdir()
                .map_err(|e| RuntimeError::Unavailable(format!("the zygote's folder: {e}")))?;
            let zygote = Zygote::start(base, home.path()).await?;
            Ok::<_, RuntimeError>((Arc::new(zygote), home))
        };
        match started.await {
            Ok((zygote, home)) => {
                let zygote_start_us =
                    u64::try_from(clock.elapsed().as_micros()).unwrap_or(u64::MAX);
                tracing::debug!(target: "maubot.timing", zygote_start_us, "Zygote started");
                *current = Some((Arc::clone(&zygote), home));
                Some(zygote)
            }
            Err(err) => {
                tracing::warn!(target: LOG, error = %err, "No zygote: workers start as processes of their own");
                *current = None;
                None
            }
        }
    }
}

/// A worker forked by the zygote.
#[derive(Debug)]
pub struct Forked {
    pub pid: u32,
    pub pidfd: OwnedFd,
    /// The exit status, as the zygote reports it once it reaped the worker.
    pub exit: oneshot::Receiver<String>,
}

/// What a worker is started with.
#[derive(Debug)]
pub struct SpawnRequest<'a> {
    pub env: Vec<(String, String)>,
    /// Added to the host's packages on the worker's `sys.path`.
    pub path: Vec<PathBuf>,
    pub cwd: PathBuf,
    pub socket: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    pub ruleset: Option<BorrowedFd<'a>>,
}

type Reply = Result<Forked, String>;

#[derive(Debug, Default)]
struct Pending {
    replies: HashMap<u64, oneshot::Sender<Reply>>,
    exits: HashMap<u32, oneshot::Sender<String>>,
}

/// A running zygote. Dropping it ends it (its workers run on).
#[derive(Debug)]
pub struct Zygote {
    control: Arc<AsyncFd<OwnedFd>>,
    pending: Arc<Mutex<Pending>>,
    next_id: AtomicU64,
    dead: watch::Receiver<bool>,
    reader: JoinHandle<()>,
    /// The tasks logging the zygote's output; cancelled with it.
    _output: tokio::task::JoinSet<()>,
    _process: tokio::process::Child,
}

impl Drop for Zygote {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Zygote {
    /// Starts a zygote in `env` (the host's packages only) and waits until it has imported
    /// everything and is ready to fork.
    pub async fn start(env: &Prepared, home: &std::path::Path) -> Result<Zygote, RuntimeError> {
        let unavailable = |what: &str, e: std::io::Error| {
            RuntimeError::Unavailable(format!("the zygote: {what}: {e}"))
        };
        let (ours, theirs) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| unavailable("cannot create its socket", e.into()))?;
        rustix::io::ioctl_fionbio(&ours, true)
            .map_err(|e| unavailable("cannot set up its socket", e.into()))?;
        let control =
            Arc::new(watch_fd(ours).map_err(|e| unavailable("cannot set up its socket", e))?);
        let pythonpath = std::env::join_paths(&env.pythonpath)
            .map_err(|e| RuntimeError::Unavailable(format!("invalid PYTHONPATH: {e}")))?;
        let mut process = Command::new(&env.python)
            .env_clear()
            .envs(sandbox::minimal_environment(home))
            .current_dir(home)
            .args(["-m", "maubot_host.zygote"])
            .env("PYTHONPATH", pythonpath)
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| unavailable("cannot start it", e))?;
        let mut output = tokio::task::JoinSet::new();
        if let Some(stdout) = process.stdout.take() {
            output.spawn(super::worker::log_output("zygote".into(), stdout, false));
        }
        if let Some(stderr) = process.stderr.take() {
            output.spawn(super::worker::log_output("zygote".into(), stderr, true));
        }
        let pending = Arc::new(Mutex::new(Pending::default()));
        let (dead_tx, dead) = watch::channel(false);
        let (ready_tx, ready_rx) = oneshot::channel();
        let reader = tokio::spawn(read_loop(
            Arc::clone(&control),
            Arc::clone(&pending),
            dead_tx,
            ready_tx,
        ));
        let zygote = Zygote {
            control,
            pending,
            next_id: AtomicU64::new(1),
            dead,
            reader,
            _output: output,
            _process: process,
        };
        match tokio::time::timeout(READY_TIMEOUT, ready_rx).await {
            Ok(Ok(params)) if params["protocol"].as_u64() == Some(PROTOCOL_VERSION) => {
                tracing::debug!(target: LOG, pid = %params["pid"], "Zygote ready");
                Ok(zygote)
            }
            Ok(Ok(params)) => Err(RuntimeError::Unavailable(format!(
                "the zygote speaks protocol {}, this server {PROTOCOL_VERSION}",
                params["protocol"]
            ))),
            _ => Err(RuntimeError::Unavailable(
                "the zygote did not start in time (its output is in the log)".into(),
            )),
        }
    }

    pub fn is_dead(&self) -> bool {
        *self.dead.borrow()
    }

    /// Forks a worker.
    pub async fn spawn(&self, request: SpawnRequest<'_>) -> Result<Forked, RuntimeError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let message = json!({
            "id": id,
            "method": "spawn",
            "params": {
                "env": request.env.iter().cloned().collect::<HashMap<_, _>>(),
                "path": request.path,
                "cwd": request.cwd,
            },
        })
        .to_string();
        let (reply_tx, reply_rx) = oneshot::channel();
        lock(&self.pending).replies.insert(id, reply_tx);
        let mut fds = vec![
            request.socket.as_fd(),
            request.stdout.as_fd(),
            request.stderr.as_fd(),
        ];
        fds.extend(request.ruleset);
        let sent = self
            .control
            .async_io(Interest::WRITABLE, |fd| {
                let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
                let mut control = SendAncillaryBuffer::new(&mut space);
                control.push(SendAncillaryMessage::ScmRights(&fds));
                rustix::net::sendmsg(
                    fd,
                    &[IoSlice::new(message.as_bytes())],
                    &mut control,
                    SendFlags::NOSIGNAL,
                )
                .map_err(std::io::Error::from)
            })
            .await;
        // The zygote has its own copies now; ours close here.
        drop(request);
        if let Err(err) = sent {
            lock(&self.pending).replies.remove(&id);
            return Err(RuntimeError::Unavailable(format!(
                "cannot reach the zygote: {err}"
            )));
        }
        let reply = match tokio::time::timeout(SPAWN_TIMEOUT, reply_rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err("the zygote is gone".to_owned()),
            Err(_) => {
                lock(&self.pending).replies.remove(&id);
                Err("the zygote did not answer in time".to_owned())
            }
        };
        reply.map_err(|e| {
            RuntimeError::Unavailable(format!("the zygote could not start a worker: {e}"))
        })
    }
}

/// Registers a descriptor with tokio's reactor.
pub fn watch_fd(fd: OwnedFd) -> std::io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: an `OwnedFd` is open, and stays the same descriptor until the `AsyncFd` that owns
    // it drops it.
    #[allow(unsafe_code)]
    unsafe {
        AsyncFd::register(fd).map_err(std::io::Error::from)
    }
}

/// Reads the zygote's messages until it goes: answers to `spawn`s, exit reports.
async fn read_loop(
    control: Arc<AsyncFd<OwnedFd>>,
    pending: Arc<Mutex<Pending>>,
    dead: watch::Sender<bool>,
    ready: oneshot::Sender<Value>,
) {
    let mut ready = Some(ready);
    let mut buffer = vec![0u8; MAX_MESSAGE];
    loop {
        let received = control
            .async_io(Interest::READABLE, |fd| {
                let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
                let mut ancillary = RecvAncillaryBuffer::new(&mut space);
                let message = rustix::net::recvmsg(
                    fd,
                    &mut [IoSliceMut::new(&mut buffer)],
                    &mut ancillary,
                    RecvFlags::CMSG_CLOEXEC,
                )
                .map_err(std::io::Error::from)?;
                let mut fds: Vec<OwnedFd> = Vec::new();
                for part in ancillary.drain() {
                    if let RecvAncillaryMessage::ScmRights(received) = part {
                        fds.extend(received);
                    }
                }
                Ok((message.bytes, fds))
            })
            .await;
        let (length, mut fds) = match received {
            Ok((0, _)) | Err(_) => break,
            Ok(received) => received,
        };
        let Ok(message) = serde_json::from_slice::<Value>(&buffer[..length.min(MAX_MESSAGE)])
        else {
            tracing::warn!(target: LOG, "The zygote sent a message that is not JSON");
            continue;
        };
        match (message["method"].as_str(), message["id"].as_u64()) {
            (Some("ready"), _) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(message["params"].clone());
                }
            }
            (Some("exited"), _) => {
                let pid = message["params"]["pid"].as_u64().unwrap_or_default() as u32;
                let status = message["params"]["status"]
                    .as_str()
                    .unwrap_or("exited")
                    .to_owned();
                if let Some(exit) = lock(&pending).exits.remove(&pid) {
                    let _ = exit.send(status);
                }
            }
            (None, Some(id)) => {
                let Some(reply) = lock(&pending).replies.remove(&id) else {
                    continue;
                };
                let answer = match (message["result"]["pid"].as_u64(), fds.pop()) {
                    (Some(pid), Some(pidfd)) => {
                        // Registered before the next message is read: that may be its exit.
                        let pid = pid as u32;
                        let (exit_tx, exit) = oneshot::channel();
                        lock(&pending).exits.insert(pid, exit_tx);
                        Ok(Forked { pid, pidfd, exit })
                    }
                    _ => Err(message["error"]["message"]
                        .as_str()
                        .unwrap_or("no pid in the answer")
                        .to_owned()),
                };
                let _ = reply.send(answer);
            }
            _ => {}
        }
    }
    tracing::warn!(target: LOG, "The zygote is gone; running workers go on, the next one starts a new zygote");
    let _ = dead.send(true);
    let mut pending = lock(&pending);
    pending.replies.clear();
    pending.exits.clear();
}
