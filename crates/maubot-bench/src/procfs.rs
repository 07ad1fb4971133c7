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
    /// Sum of the processes' proportional set sizes (`Pss` of `smaps_rollup`): each page
    /// divided by the number of processes that map it, so pages that forked workers share with
    /// their zygote, or that processes share with each other, count once over the tree (RSS
    /// counts them once per process).
    pub pss_bytes: u64,
    /// Sum of the processes' private dirty pages (`Private_Dirty`): memory that is theirs alone
    /// and written, e.g. what a forked worker copied from its zygote by writing to it.
    pub private_dirty_bytes: u64,
}

impl Usage {
    pub fn rss_mib(&self) -> f64 {
        self.rss_bytes as f64 / 1_048_576.0
    }

    pub fn anon_mib(&self) -> f64 {
        self.anon_bytes as f64 / 1_048_576.0
    }

    pub fn pss_mib(&self) -> f64 {
        self.pss_bytes as f64 / 1_048_576.0
    }

    pub fn to_json(self) -> Value {
        json!({
            "rss_bytes": self.rss_bytes, "fds": self.fds, "processes": self.processes,
            "main_rss_bytes": self.main_rss_bytes, "anon_bytes": self.anon_bytes,
            "pss_bytes": self.pss_bytes, "private_dirty_bytes": self.private_dirty_bytes,
        })
    }
}

/// One process's memory from `/proc/<pid>/smaps_rollup`, in bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rollup {
    pub rss: u64,
    pub pss: u64,
    /// Of `pss`, anonymous pages (heap, stacks, and the pages a fork shares until written).
    pub pss_anon: u64,
    pub shared_clean: u64,
    pub shared_dirty: u64,
    pub private_clean: u64,
    pub private_dirty: u64,
    pub anonymous: u64,
}

impl Rollup {
    pub fn to_json(self) -> Value {
        json!({
            "rss_bytes": self.rss, "pss_bytes": self.pss, "pss_anon_bytes": self.pss_anon,
            "shared_clean_bytes": self.shared_clean, "shared_dirty_bytes": self.shared_dirty,
            "private_clean_bytes": self.private_clean, "private_dirty_bytes": self.private_dirty,
            "anonymous_bytes": self.anonymous,
        })
    }
}

/// The memory of one process, summed over its mappings by the kernel.
pub fn smaps_rollup(pid: u32) -> anyhow::Result<Rollup> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .with_context(|| format!("read /proc/{pid}/smaps_rollup"))?;
    let mut rollup = Rollup::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let Some(kib) = value
            .trim()
            .strip_suffix("kB")
            .and_then(|v| v.trim().parse::<u64>().ok())
        else {
            continue;
        };
        let field = match key {
            "Rss" => &mut rollup.rss,
            "Pss" => &mut rollup.pss,
            "Pss_Anon" => &mut rollup.pss_anon,
            "Shared_Clean" => &mut rollup.shared_clean,
            "Shared_Dirty" => &mut rollup.shared_dirty,
            "Private_Clean" => &mut rollup.private_clean,
            "Private_Dirty" => &mut rollup.private_dirty,
            "Anonymous" => &mut rollup.anonymous,
            _ => continue,
        };
        *field = kib * 1024;
    }
    Ok(rollup)
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
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// Memory and descriptors of `pid` and its descendants (processes that end meanwhile are
/// skipped).
pub fn tree_usage(pid: u32) -> anyhow::Result<Usage> {
    let mut usage = Usage::default();
    for p in tree(pid) {
        match (rss(p), fds(p), status_bytes(p, "RssAnon:"), smaps_rollup(p)) {
            (Ok(rss), Ok(fds), Ok(anon), Ok(rollup)) => {
                if p == pid {
                    usage.main_rss_bytes = rss;
                }
                usage.rss_bytes += rss;
                usage.anon_bytes += anon;
                usage.pss_bytes += rollup.pss;
                usage.private_dirty_bytes += rollup.private_dirty;
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
