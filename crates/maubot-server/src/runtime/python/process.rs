//! A worker's process: forked by the zygote, or executed afresh (`python -m maubot_host`) when
//! there is no zygote. Either way the server watches it and can kill it; the worker's standard
//! output and error are logged.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use super::env::Prepared;
use super::sandbox::{self, Sandbox};
use super::worker::log_output;
use super::zygote::{SpawnRequest, Zygote, watch_fd};
use crate::runtime::RuntimeError;

/// How long a reaped worker's exit status may take to arrive from the zygote.
const STATUS_WAIT: Duration = Duration::from_secs(2);

/// How long the worker's last output may take to be logged once it has ended.
const OUTPUT_WAIT: Duration = Duration::from_secs(1);

/// A running worker process and the tasks that log its output, which end with it (or are
/// cancelled with this handle).
#[derive(Debug)]
pub struct WorkerProcess {
    process: Process,
    output: JoinSet<()>,
}

#[derive(Debug)]
enum Process {
    Executed(Child),
    Forked {
        pid: u32,
        pidfd: AsyncFd<OwnedFd>,
        exit: Option<oneshot::Receiver<String>>,
    },
}

/// What the worker's process starts with.
#[derive(Debug)]
pub struct Launch<'a> {
    pub plugin_id: &'a str,
    /// `MAUBOT_HOST_*` and the other variables of the worker's own.
    pub env: Vec<(String, String)>,
    pub home: &'a Path,
    /// The worker's end of the protocol socket (its standard input).
    pub socket: OwnedFd,
    pub sandbox: Option<&'a Sandbox>,
}

impl WorkerProcess {
    /// Starts the worker: forked by `zygote` if there is one, else executed.
    pub async fn start(
        env: &Prepared,
        launch: Launch<'_>,
        zygote: Option<&Zygote>,
    ) -> Result<WorkerProcess, RuntimeError> {
        let mut variables = sandbox::minimal_environment(launch.home);
        variables.extend(launch.env.iter().cloned());
        match zygote {
            Some(zygote) => Self::fork(zygote, env, launch, variables).await,
            None => Self::execute(env, launch, variables),
        }
    }

    async fn fork(
        zygote: &Zygote,
        env: &Prepared,
        launch: Launch<'_>,
        variables: Vec<(String, String)>,
    ) -> Result<WorkerProcess, RuntimeError> {
        let pipe = || {
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| {
                RuntimeError::Unavailable(format!("cannot create the worker's pipes: {e}"))
            })
        };
        let (out_read, out_write) = pipe()?;
        let (err_read, err_write) = pipe()?;
        let forked = zygote
            .spawn(SpawnRequest {
                env: variables,
                path: env.pythonpath.clone(),
                cwd: launch.home.to_owned(),
                socket: launch.socket,
                stdout: out_write,
                stderr: err_write,
                ruleset: launch.sandbox.map(Sandbox::ruleset),
            })
            .await?;
        let mut output = JoinSet::new();
        for (read, stderr) in [(out_read, false), (err_read, true)] {
            match tokio::net::unix::pipe::Receiver::from_owned_fd(read) {
                Ok(receiver) => {
                    output.spawn(log_output(launch.plugin_id.to_owned(), receiver, stderr));
                }
                Err(err) => {
                    tracing::warn!(target: "maubot.host", error = %err, "Cannot read a worker's output")
                }
            }
        }
        let pidfd = watch_fd(forked.pidfd).map_err(|e| {
            RuntimeError::Unavailable(format!("cannot watch the forked worker: {e}"))
        })?;
        Ok(WorkerProcess {
            process: Process::Forked {
                pid: forked.pid,
                pidfd,
                exit: Some(forked.exit),
            },
            output,
        })
    }

    fn execute(
        env: &Prepared,
        launch: Launch<'_>,
        variables: Vec<(String, String)>,
    ) -> Result<WorkerProcess, RuntimeError> {
        let pythonpath = std::env::join_paths(&env.pythonpath)
            .map_err(|e| RuntimeError::Unavailable(format!("invalid PYTHONPATH: {e}")))?;
        let mut command = Command::new(&env.python);
        if let Some(sandbox) = launch.sandbox {
            sandbox.confine(&mut command);
        }
        let mut child = command
            .env_clear()
            .envs(variables)
            .env("PYTHONPATH", pythonpath)
            .current_dir(launch.home)
            .args(["-m", "maubot_host"])
            .stdin(Stdio::from(launch.socket))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                RuntimeError::Unavailable(format!(
                    "cannot start the Python worker {}: {e}",
                    env.python.display()
                ))
            })?;
        let mut output = JoinSet::new();
        if let Some(stdout) = child.stdout.take() {
            output.spawn(log_output(launch.plugin_id.to_owned(), stdout, false));
        }
        if let Some(stderr) = child.stderr.take() {
            output.spawn(log_output(launch.plugin_id.to_owned(), stderr, true));
        }
        Ok(WorkerProcess {
            process: Process::Executed(child),
            output,
        })
    }

    pub fn id(&self) -> Option<u32> {
        match &self.process {
            Process::Executed(child) => child.id(),
            Process::Forked { pid, .. } => Some(*pid),
        }
    }

    /// Waits until the process has ended and its last output is logged (a crash's traceback
    /// comes before the news of the crash); how it ended.
    pub async fn wait(&mut self) -> String {
        let ended = self.process.wait().await;
        let output = &mut self.output;
        let _ = tokio::time::timeout(OUTPUT_WAIT, async {
            while output.join_next().await.is_some() {}
        })
        .await;
        ended
    }

    /// Kills the process and waits for its end.
    pub async fn kill(&mut self) {
        self.process.kill().await;
    }
}

impl Process {
    async fn wait(&mut self) -> String {
        match self {
            Self::Executed(child) => match child.wait().await {
                Ok(status) => format!("the worker exited ({status})"),
                Err(err) => format!("the worker could not be watched: {err}"),
            },
            Self::Forked { pidfd, exit, .. } => {
                // A pidfd turns readable when its process ends.
                let _ = pidfd.readable().await;
                let status = match exit.take() {
                    Some(exit) => tokio::time::timeout(STATUS_WAIT, exit).await.ok(),
                    None => None,
                };
                match status {
                    Some(Ok(status)) => format!("the worker exited ({status})"),
                    _ => "the worker exited".to_owned(),
                }
            }
        }
    }

    async fn kill(&mut self) {
        match self {
            Self::Executed(child) => {
                let _ = child.kill().await;
            }
            Self::Forked { pidfd, .. } => {
                let _ = rustix::process::pidfd_send_signal(
                    pidfd.get_ref(),
                    rustix::process::Signal::KILL,
                );
                let _ = pidfd.readable().await;
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // An executed child is killed on drop by tokio; a forked one must not outlive its
        // handle either.
        if let Self::Forked { pidfd, .. } = self {
            let _ =
                rustix::process::pidfd_send_signal(pidfd.get_ref(), rustix::process::Signal::KILL);
        }
    }
}
