//! One worker process and the protocol connection to it (docs/python-host-protocol.md).

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;

use super::env::Prepared;
use super::in_flight::{Delivery, InFlight, Refused, Unhandled};
use super::process::{Launch, WorkerProcess};
use super::protocol::{FromWorker, Hello, Notification, ToWorker, WorkerError, WorkerRequest};
use super::sandbox::Sandbox;
use super::zygote::Zygote;
use crate::runtime::RuntimeError;
use crate::sync::lock;

const LOG: &str = "maubot.host";

/// The protocol version this server speaks.
pub const PROTOCOL_VERSION: u64 = 1;

/// How long a new worker may take to say hello (imports of mautrix and aiohttp).
const HELLO_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest message a worker may send: a media upload of up to about 140 MiB, as base64.
/// Longer ones are dropped unread, so a plugin cannot make the server buffer without end.
const MAX_MESSAGE: usize = 192 * 1024 * 1024;
/// The longest line of a worker's own output that is logged; the rest of it is dropped.
const MAX_OUTPUT_LINE: usize = 16 * 1024;
/// How long the rest of a dead worker's messages may take to be read.
const READ_REST: Duration = Duration::from_secs(2);
/// Requests of one worker the server works on at once; further ones wait to be read.
const MAX_REQUESTS_IN_FLIGHT: usize = 64;

/// Requests and notifications the worker sends (the protocol's own, `hello` and
/// `events_read`, are the connection's).
#[async_trait]
pub trait Inbound: Send + Sync {
    /// A request; the answer is the `result`.
    async fn request(&self, request: WorkerRequest) -> Result<Value, String>;
    fn notify(&self, notification: Notification);
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, RuntimeError>>>>>;

/// A running worker. Dropping the last handle kills the process.
#[derive(Debug)]
pub struct Worker {
    plugin_id: String,
    out: mpsc::UnboundedSender<String>,
    pending: Pending,
    next_id: AtomicU64,
    /// Set once, with the reason, when the worker is gone.
    dead: watch::Receiver<Option<String>>,
    /// Events handed over and not finished with.
    events: Arc<InFlight>,
    /// Set once everything the worker wrote was read.
    read_all: watch::Receiver<bool>,
    kill: mpsc::UnboundedSender<String>,
    /// The worker's home, temporary and working folder; removed with the worker.
    _home: tempfile::TempDir,
    /// The connection's writer and reader and the process's watcher. They end with the
    /// connection and the process; dropping the worker cancels them (and the watcher's
    /// process handle kills the process).
    _tasks: Mutex<JoinSet<()>>,
}

impl Worker {
    /// Starts `python -m maubot_host` in `sandbox` (if any), with `home` as its home, temporary
    /// and working folder and nothing of the server's environment, and waits for its hello.
    pub async fn spawn(
        env: &Prepared,
        plugin_id: &str,
        inbound: Arc<dyn Inbound>,
        home: tempfile::TempDir,
        sandbox: Option<&Sandbox>,
        zygote: Option<&Zygote>,
    ) -> Result<Arc<Worker>, RuntimeError> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()
            .map_err(|e| RuntimeError::Unavailable(format!("cannot create a socket: {e}")))?;
        ours.set_nonblocking(true)
            .map_err(|e| RuntimeError::Unavailable(format!("cannot set up a socket: {e}")))?;
        let socket = tokio::net::UnixStream::from_std(ours)
            .map_err(|e| RuntimeError::Unavailable(format!("cannot set up a socket: {e}")))?;
        let launch = Launch {
            plugin_id,
            env: vec![
                ("PYTHONUNBUFFERED".into(), "1".into()),
                ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
                ("MAUBOT_HOST_PROTOCOL".into(), PROTOCOL_VERSION.to_string()),
                ("MAUBOT_HOST_PLUGIN".into(), plugin_id.to_owned()),
                (
                    "MAUBOT_HOST_LOG_LEVEL".into(),
                    instance_log_level().to_owned(),
                ),
            ],
            home: home.path(),
            socket: OwnedFd::from(theirs),
            sandbox,
        };
        let child = WorkerProcess::start(env, launch, zygote).await?;
        let pid = child.id();
        if let Some(pid) = pid {
            crate::metrics::worker_started(pid, plugin_id);
        }

        let (read, mut write) = socket.into_split();
        let (out, mut lines) = mpsc::unbounded_channel::<String>();
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            while let Some(mut line) = lines.recv().await {
                // An empty line is ours: the request to close the connection.
                if line.is_empty() {
                    break;
                }
                line.push('\n');
                if write.write_all(line.as_bytes()).await.is_err() {
                    break;
                }
            }
            // Closing our end tells the worker to exit.
            let _ = write.shutdown().await;
        });

        let pending: Pending = Arc::default();
        let events: Arc<InFlight> = Arc::default();
        let (read_all_tx, read_all) = watch::channel(false);
        let (dead_tx, dead) = watch::channel(None);
        let (kill, kill_rx) = mpsc::unbounded_channel();
        let (hello_tx, hello_rx) = oneshot::channel();
        tasks.spawn(read_loop(
            read,
            Replies {
                out: out.clone(),
                pending: Arc::clone(&pending),
                events: Arc::clone(&events),
            },
            inbound,
            hello_tx,
            plugin_id.to_owned(),
            read_all_tx,
        ));
        tasks.spawn(watch_process(
            child,
            kill_rx,
            dead_tx,
            Arc::clone(&pending),
            plugin_id.to_owned(),
        ));

        let worker = Arc::new(Worker {
            plugin_id: plugin_id.to_owned(),
            out,
            pending,
            next_id: AtomicU64::new(1),
            dead,
            events,
            read_all,
            kill,
            _home: home,
            _tasks: Mutex::new(tasks),
        });
        let hello = tokio::select! {
            hello = tokio::time::timeout(HELLO_TIMEOUT, hello_rx) => hello,
            reason = worker.died() => {
                return Err(RuntimeError::Unavailable(format!("the Python worker exited at start: {reason}")));
            }
        };
        match hello {
            Ok(Ok(Hello {
                protocol,
                python,
                mautrix,
            })) => {
                if protocol != PROTOCOL_VERSION {
                    worker.kill("it speaks another protocol version");
                    return Err(RuntimeError::Unavailable(format!(
                        "the Python worker speaks protocol {protocol}, this server {PROTOCOL_VERSION}"
                    )));
                }
                tracing::debug!(
                    target: LOG, plugin = %plugin_id, pid, python, mautrix, "Python worker started"
                );
                Ok(worker)
            }
            _ => {
                worker.kill("it did not say hello in time");
                Err(RuntimeError::Unavailable(
                    "the Python worker did not start in time".into(),
                ))
            }
        }
    }

    /// Sends a request now (so that requests keep their order) and returns the answer's future.
    pub fn request(
        &self,
        message: &ToWorker<'_>,
    ) -> impl Future<Output = Result<Value, RuntimeError>> + Send + 'static {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let sent = if self.is_dead() {
            false
        } else {
            lock(&self.pending).insert(id, tx);
            self.out.send(message.line(id)).is_ok()
        };
        let mut dead = self.dead.clone();
        async move {
            if !sent {
                return Err(unavailable(&dead.borrow()));
            }
            tokio::select! {
                answer = rx => answer.unwrap_or_else(|_| Err(RuntimeError::Unavailable("the Python worker exited".into()))),
                reason = dead.wait_for(Option::is_some) => {
                    let reason = reason.map(|r| r.clone()).unwrap_or_default();
                    Err(unavailable(&reason))
                }
            }
        }
    }

    /// Hands an event to one of the worker's instances; its answer is only logged if it is an
    /// error. Refused when the worker has too many unfinished events, or is gone.
    /// A worker that died still takes events until [`Worker::unhandled_events`]: they count as
    /// unread, for the next worker.
    pub fn deliver(&self, instance_id: &str, delivery: Delivery) -> Result<(), Refused> {
        self.events.admit(instance_id, delivery, |event| {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let message = ToWorker::Event { instance_id, event };
            let _ = self.out.send(message.line(id));
            id
        })
    }

    /// What the worker, now gone, left unfinished (once everything it wrote before it ended
    /// was read, so that its last answers count). Events are refused as gone from then on.
    pub async fn unhandled_events(&self) -> Unhandled {
        let mut read_all = self.read_all.clone();
        // A descendant the plugin left behind may hold the socket open: not for long.
        let _ = tokio::time::timeout(READ_REST, read_all.wait_for(|done| *done)).await;
        self.events.close()
    }

    /// A request with a deadline; past it, the worker is killed, since a worker that does not
    /// answer has a blocked event loop.
    pub async fn request_within(
        &self,
        message: &ToWorker<'_>,
        timeout: Duration,
        what: &str,
    ) -> Result<Value, RuntimeError> {
        match tokio::time::timeout(timeout, self.request(message)).await {
            Ok(answer) => answer,
            Err(_) => {
                let reason = format!("{what} did not finish within {} s", timeout.as_secs_f64());
                self.kill(&reason);
                Err(RuntimeError::Timeout(reason))
            }
        }
    }

    pub fn is_dead(&self) -> bool {
        self.dead.borrow().is_some()
    }

    /// Waits until the worker is gone; the reason.
    pub async fn died(&self) -> String {
        let mut dead = self.dead.clone();
        match dead.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            Err(_) => "the worker's watcher stopped".to_owned(),
        }
    }

    /// Kills the process; `reason` is what its instances are reported failed with.
    pub fn kill(&self, reason: &str) {
        let _ = self.kill.send(reason.to_owned());
    }

    /// Asks the worker to exit (by closing the connection) and kills it if it does not.
    pub async fn shut_down(&self) {
        let _ = self.out.send(String::new());
        let _ = self.kill.send(String::new());
        let _ = tokio::time::timeout(Duration::from_secs(5), self.died()).await;
        if !self.is_dead() {
            self.kill("it did not exit when asked");
        }
        tracing::debug!(target: LOG, plugin = %self.plugin_id, "Python worker stopped");
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // A worker nobody holds any more must not outlive its handle (e.g. a start cancelled
        // half-way). After a shutdown this finds the process gone and does nothing.
        let _ = self
            .kill
            .send("the server no longer uses this worker".to_owned());
    }
}

/// The most verbose level at which this server logs plugin records (they are logged under the
/// `maubot.instance` target), so that the worker does not format and send what would be dropped.
fn instance_log_level() -> &'static str {
    use tracing::Level;
    if tracing::enabled!(target: "maubot.instance", Level::DEBUG) {
        "DEBUG"
    } else if tracing::enabled!(target: "maubot.instance", Level::INFO) {
        "INFO"
    } else if tracing::enabled!(target: "maubot.instance", Level::WARN) {
        "WARNING"
    } else if tracing::enabled!(target: "maubot.instance", Level::ERROR) {
        "ERROR"
    } else {
        "OFF"
    }
}

fn unavailable(reason: &Option<String>) -> RuntimeError {
    RuntimeError::Unavailable(match reason {
        Some(reason) if !reason.is_empty() => format!("the Python worker is gone: {reason}"),
        _ => "the Python worker is gone".to_owned(),
    })
}

/// Where the worker's answers go: the requests waiting for them, and the events in flight.
struct Replies {
    out: mpsc::UnboundedSender<String>,
    pending: Pending,
    events: Arc<InFlight>,
}

impl Replies {
    fn answer(&self, id: u64, outcome: Result<Value, WorkerError>, plugin_id: &str) {
        if let Some(tx) = lock(&self.pending).remove(&id) {
            let _ = tx.send(outcome.map_err(|error| RuntimeError::Plugin {
                message: error.message.unwrap_or_else(|| "unknown error".to_owned()),
                detail: error.traceback,
            }));
        } else if let Some(instance) = self.events.answered(id) {
            let counters = crate::metrics::instance(&instance);
            counters.handled.fetch_add(1, Ordering::Relaxed);
            if let Err(error) = outcome {
                counters.handler_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    target: LOG, plugin = %plugin_id, instance = %instance,
                    error = error.message.as_deref().unwrap_or("unknown error"),
                    "An event handler failed"
                );
            }
        }
    }

    fn error(&self, id: u64, message: &str) {
        let reply = json!({ "id": id, "error": { "message": message, "traceback": null } });
        let _ = self.out.send(reply.to_string());
    }
}

async fn read_loop(
    read: tokio::net::unix::OwnedReadHalf,
    replies: Replies,
    inbound: Arc<dyn Inbound>,
    hello: oneshot::Sender<Hello>,
    plugin_id: String,
    read_all: watch::Sender<bool>,
) {
    let mut hello = Some(hello);
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    let in_flight = Arc::new(Semaphore::new(MAX_REQUESTS_IN_FLIGHT));
    // The worker's requests being answered; they end with the connection.
    let mut requests = JoinSet::new();
    // A worker can send bad messages as fast as it likes: the log hears of the 1st, 2nd, 4th,
    // 8th... so that it cannot be flooded.
    let (mut oversized, mut refusals) = (0u64, 0u64);
    while let Ok(Some(complete)) = next_line(&mut reader, &mut line, MAX_MESSAGE).await {
        while requests.try_join_next().is_some() {}
        if !complete {
            oversized += 1;
            if oversized.is_power_of_two() {
                tracing::warn!(target: crate::runtime::SECURITY, plugin = %plugin_id, limit = MAX_MESSAGE, count = oversized, "The Python worker sent a message over the limit; dropped");
            }
            continue;
        }
        let message = match FromWorker::parse(&line) {
            Ok(message) => message,
            Err(refused) => {
                refusals += 1;
                if refusals.is_power_of_two() {
                    tracing::warn!(target: LOG, plugin = %plugin_id, error = %refused, count = refusals, "Refused a message of the Python worker");
                }
                if let Some(id) = refused.request_id {
                    replies.error(id, &refused.to_string());
                }
                continue;
            }
        };
        match message {
            FromWorker::Notification(Notification::Hello(params)) => {
                if let Some(hello) = hello.take() {
                    let _ = hello.send(params);
                }
            }
            FromWorker::Notification(Notification::EventsRead { up_to }) => {
                replies.events.read(up_to);
            }
            FromWorker::Notification(notification) => inbound.notify(notification),
            FromWorker::Request { id, request } => {
                let Ok(slot) = Arc::clone(&in_flight).acquire_owned().await else {
                    break;
                };
                let inbound = Arc::clone(&inbound);
                let out = replies.out.clone();
                requests.spawn(async move {
                    let reply = match inbound.request(request).await {
                        Ok(result) => json!({ "id": id, "result": result }),
                        Err(message) => {
                            json!({ "id": id, "error": { "message": message, "traceback": null } })
                        }
                    };
                    let _ = out.send(reply.to_string());
                    drop(slot);
                });
            }
            FromWorker::Response { id, outcome } => replies.answer(id, outcome, &plugin_id),
        }
    }
    let _ = read_all.send(true);
}

/// Waits for the process to exit or to be killed; then records why and fails what is pending.
async fn watch_process(
    mut child: WorkerProcess,
    mut kill: mpsc::UnboundedReceiver<String>,
    dead: watch::Sender<Option<String>>,
    pending: Pending,
    plugin_id: String,
) {
    let reason = tokio::select! {
        reason = child.wait() => reason,
        Some(reason) = kill.recv() => {
            if reason.is_empty() {
                // A polite shutdown: the connection is closed by dropping the writer below;
                // give the worker a moment, then insist.
                match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
                    Ok(_) => String::new(),
                    Err(_) => {
                        child.kill().await;
                        "it did not exit when asked".to_owned()
                    }
                }
            } else {
                tracing::warn!(target: LOG, plugin = %plugin_id, reason = %reason, "Killing the Python worker");
                child.kill().await;
                reason
            }
        }
    };
    if let Some(pid) = child.id() {
        crate::metrics::worker_ended(pid);
    }
    if !reason.is_empty() {
        tracing::warn!(target: LOG, plugin = %plugin_id, reason = %reason, "Python worker gone");
    }
    let error = unavailable(&Some(reason.clone()));
    let _ = dead.send(Some(reason));
    for (_, tx) in lock(&pending).drain() {
        let _ = tx.send(Err(error.clone()));
    }
}

/// Reads one line, without its newline, into `line`: `Some(true)`, or `Some(false)` for a line
/// longer than `max`, which is read to its end but not kept. `None` at the end of the stream.
async fn next_line(
    reader: &mut (impl AsyncBufRead + Unpin),
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<bool>> {
    line.clear();
    let mut complete = true;
    let mut read_any = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(read_any.then_some(complete));
        }
        read_any = true;
        let (piece, used, end) = match available.iter().position(|&b| b == b'\n') {
            Some(at) => (&available[..at], at + 1, true),
            None => (available, available.len(), false),
        };
        if complete && line.len() + piece.len() <= max {
            line.extend_from_slice(piece);
        } else {
            complete = false;
            line.clear();
        }
        reader.consume(used);
        if end {
            return Ok(Some(complete));
        }
    }
}

/// The worker's own output: stray prints and Python's crash reports.
pub(super) async fn log_output(plugin_id: String, stream: impl AsyncRead + Unpin, stderr: bool) {
    let mut reader = BufReader::new(stream);
    let mut bytes = Vec::new();
    while let Ok(Some(complete)) = next_line(&mut reader, &mut bytes, MAX_OUTPUT_LINE).await {
        let line = if complete {
            String::from_utf8_lossy(&bytes)
        } else {
            "(a line longer than 16 KiB, dropped)".into()
        };
        if stderr {
            tracing::warn!(target: LOG, plugin = %plugin_id, "{line}");
        } else {
            tracing::info!(target: LOG, plugin = %plugin_id, "{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_over_the_limit_are_read_past_not_kept() {
        let input: &[u8] = b"short\n0123456789abcdef\nafter\nend";
        // A small buffer, so that the long line arrives in pieces.
        let mut reader = BufReader::with_capacity(4, input);
        let mut line = Vec::new();
        let mut seen = Vec::new();
        while let Some(complete) = next_line(&mut reader, &mut line, 8).await.expect("reads") {
            seen.push((complete, String::from_utf8(line.clone()).expect("utf-8")));
        }
        assert_eq!(
            seen,
            [
                (true, "short".to_owned()),
                (false, String::new()),
                (true, "after".to_owned()),
                (true, "end".to_owned()),
            ]
        );
    }
}
