//! Settings of the server process itself: what other processes of the same user (plugin workers
//! among them) may see of it, the modes its files are created with, and its descriptor limit.

use std::path::Path;

use rustix::fs::Mode;
use rustix::process::{DumpableBehavior, Resource, Rlimit};

const LOG: &str = "maubot.server";

/// Hardens the process once, at start:
/// - not dumpable, so that processes of the same user can neither read its `/proc/<pid>/environ`,
///   `mem` or `fd/` nor attach a debugger (children get their own setting back at `exec`);
/// - umask 077, so that the databases, stores, archives and folders it creates are the user's
///   alone (0600 and 0700).
pub fn harden() {
    if let Err(err) = rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable) {
        tracing::warn!(target: LOG, error = %err, "Could not make the process non-dumpable");
    }
    rustix::process::umask(Mode::from_raw_mode(0o077));
}

/// Raises the soft limit of open files to the hard one: every bot holds a few descriptors for
/// its stores and every connection one, and the common soft default (1024) runs out at about a
/// hundred bots. Logs both limits.
pub fn raise_open_files_limit() {
    let limit = rustix::process::getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(err) = rustix::process::setrlimit(Resource::Nofile, raised) {
            tracing::warn!(
                target: LOG, soft = ?limit.current, hard = ?limit.maximum, error = %err,
                "Could not raise the open files limit"
            );
            return;
        }
    }
    let (soft, hard) = open_files_limit();
    tracing::info!(target: LOG, soft = ?soft, hard = ?hard, "Open files limit");
}

/// The soft and hard limit of open files (`None`: unlimited).
pub fn open_files_limit() -> (Option<u64>, Option<u64>) {
    let limit = rustix::process::getrlimit(Resource::Nofile);
    (limit.current, limit.maximum)
}

/// Takes group and other permissions off a file or folder that earlier versions (or maubot)
/// created with the default umask. Missing paths are fine.
pub fn make_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        let private = std::fs::Permissions::from_mode(mode & 0o700);
        if let Err(err) = std::fs::set_permissions(path, private) {
            tracing::warn!(target: LOG, path = %path.display(), error = %err, "Could not make a data file private");
        }
    }
}
