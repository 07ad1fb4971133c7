//! When each bot's first `/sync` after a start was answered, read from Synapse's access log
//! as it is written (one `Processed request` line per answered request, naming the user). This
//! judges "syncing" the same way for both servers; maubot 0.6 reports `sync_ok: true` before
//! its first sync.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;

/// Follows the log from its current end.
#[derive(Debug)]
pub struct SyncWatch {
    first: Arc<Mutex<BTreeMap<String, Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SyncWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SyncWatch {
    pub fn start(log: &Path, users: BTreeSet<String>) -> anyhow::Result<SyncWatch> {
        let offset = std::fs::metadata(log)?.len();
        let first = Arc::new(Mutex::new(BTreeMap::new()));
        let task = tokio::spawn(follow(log.to_path_buf(), offset, users, Arc::clone(&first)));
        Ok(SyncWatch { first, task })
    }

    /// Waits until every user had a `/sync` answered; when the last one was.
    pub async fn all_synced(&self, count: usize, timeout: Duration) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let first = self.first.lock().unwrap_or_else(|p| p.into_inner());
                if first.len() >= count {
                    return Ok(*first.values().max().unwrap_or(&deadline));
                }
                if Instant::now() > deadline {
                    bail!(
                        "only {} of {count} bots had a /sync answered within {timeout:?}",
                        first.len()
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn follow(
    log: PathBuf,
    mut offset: u64,
    users: BTreeSet<String>,
    first: Arc<Mutex<BTreeMap<String, Instant>>>,
) {
    let mut pending = String::new();
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let Ok(mut file) = std::fs::File::open(&log) else {
            continue;
        };
        let mut fresh = String::new();
        if file.seek(SeekFrom::Start(offset)).is_err() || file.read_to_string(&mut fresh).is_err() {
            continue;
        }
        if fresh.is_empty() {
            continue;
        }
        let now = Instant::now();
        offset += fresh.len() as u64;
        pending.push_str(&fresh);
        let complete = pending.rfind('\n').map_or(0, |i| i + 1);
        let mut first = first.lock().unwrap_or_else(|p| p.into_inner());
        for line in pending[..complete].lines() {
            if let Some(user) = answered_sync(line)
                && users.contains(user)
            {
                first.entry(user.to_owned()).or_insert(now);
            }
        }
        pending.drain(..complete);
    }
}

/// The user of an access log line of an answered `/sync` (status 200).
fn answered_sync(line: &str) -> Option<&str> {
    if !line.contains("Processed request") || !line.contains(" 200 \"GET /_matrix/client/v3/sync") {
        return None;
    }
    let start = line.find("{@")? + 1;
    let end = start + line[start..].find('}')?;
    Some(&line[start..end])
}
