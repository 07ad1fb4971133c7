//! Memory and file descriptors of processes, from `/proc`.

use std::collections::BTreeMap;

use anyhow::Context as _;
use serde_json::{Value, json};

/// What a process and its descendants hold.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// Sum of the processes' resident set sizes (`VmRSS`), in bytes.
    pub rss_bytes: u64,
    /// Open file descriptors of all the processes.
    pub fds: u64,
    /// How many processes were counted.
    pub processes: usize,
    /// The resident set size of the root process alone.
    pub main_rss_bytes: u64,
    /// Of `rss_bytes`, the anonymous pages (heap, stacks): what the processes allocated, as
    /// opposed to program code and libraries mapped from files, which the kernel can drop and
    /// read again.
    pub anon_bytes: u64,
}

impl Usage {
    pub fn rss_mib(&self) -> f64 {
        self.rss_bytes as f64 / 1_048_576.0
    }

    pub fn anon_mib(&self) -> f64 {
        self.anon_bytes as f64 / 1_048_576.0
    }

    pub fn to_json(self) -> Value {
        json!({
            "rss_bytes": self.rss_bytes, "fds": self.fds, "processes": self.processes,
            "main_rss_bytes": self.main_rss_bytes, "anon_bytes": self.anon_bytes,
        })
    }
}

/// Resident set size of one process, in bytes.
pub fn rss(pid: u32) -> anyhow::Result<u64> {
    status_bytes(pid, "VmRSS:")
}

/// A `kB` figure of `/proc/<pid>/status`, in bytes.
fn status_bytes(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    Ok(kib * 1024)
}

/// Open file descriptors of one process.
pub fn fds(pid: u32) -> anyhow::Result<u64> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))
        .with_context(|| format!("read /proc/{pid}/fd"))?
        .count() as u64)
}

/// `pid` and every process below it (children, grandchildren, ...).
pub fn tree(pid: u32) -> Vec<u32> {
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(parent) = parent_of(child) {
            children.entry(parent).or_default().push(child);
        }
    }
    let mut all = vec![pid];
    let mut next = 0;
    while let Some(&p) = all.get(next) {
        all.extend(children.get(&p).into_iter().flatten().copied());
        next += 1;
    }
    all
}

/// The parent PID from `/proc/<pid>/stat` (the field after the command name in parentheses).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// Memory and descriptors of `pid` and its descendants (processes that end meanwhile are
/// skipped).
pub fn tree_usage(pid: u32) -> anyhow::Result<Usage> {
    let mut usage = Usage::default();
    for p in tree(pid) {
        match (rss(p), fds(p), status_bytes(p, "RssAnon:")) {
            (Ok(rss), Ok(fds), Ok(anon)) => {
                if p == pid {
                    usage.main_rss_bytes = rss;
                }
                usage.rss_bytes += rss;
                usage.anon_bytes += anon;
                usage.fds += fds;
                usage.processes += 1;
            }
            _ if p == pid => anyhow::bail!("process {pid} is gone"),
            _ => {}
        }
    }
    Ok(usage)
}

/// The 1-minute load average (other work on the machine skews every figure).
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
