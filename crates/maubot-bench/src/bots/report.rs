//! The figures of `maubot-bench bots`: a table on standard error, JSON on standard output.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use super::e2ee::SecretPing;
use crate::cli::BotsArgs;
use crate::compare::server::Kind;
use crate::compare::stats::Summary;
use crate::procfs::Usage;

/// The server process alone, and with its children.
#[derive(Debug, Clone, Copy)]
pub struct Usages {
    pub main: Usage,
    pub tree: Usage,
}

impl Usages {
    fn to_json(self) -> Value {
        json!({ "server": self.main.to_json(), "tree": self.tree.to_json() })
    }
}

#[derive(Debug)]
pub struct Measured {
    pub bots: usize,
    pub usage: Usages,
    /// Adding this step's bots through the API until all of them synced.
    pub add_seconds: f64,
}

#[derive(Debug)]
pub struct Restart {
    /// Spawn to the API answering.
    pub api: Duration,
    /// Spawn to Synapse answering the last bot's first `/sync`.
    pub all_synced: Duration,
    pub usage: Usages,
    /// The encrypted `!ping` to the last bot, sent once the API answered.
    pub secret_ping: Option<SecretPing>,
}

/// One server's measurements.
#[derive(Debug)]
pub struct Run {
    pub kind: Kind,
    pub encryption: bool,
    pub idle: Usages,
    /// With the first bot and its echo instance (what per-bot figures are taken over).
    pub lone: Usages,
    pub lone_pings: Summary,
    pub at_counts: Vec<Measured>,
    pub last_pings: Summary,
    pub restart: Restart,
}

/// Memory and descriptors per bot beyond the first: `(RSS bytes, PSS bytes, fds)`.
fn per_bot(at: &Usage, lone: &Usage, bots: usize) -> (f64, f64, f64) {
    let n = bots.saturating_sub(1).max(1) as f64;
    (
        at.rss_bytes.saturating_sub(lone.rss_bytes) as f64 / n,
        at.pss_bytes.saturating_sub(lone.pss_bytes) as f64 / n,
        at.fds.saturating_sub(lone.fds) as f64 / n,
    )
}

const MIB: f64 = 1_048_576.0;
const KIB: f64 = 1024.0;

impl Run {
    fn to_json(&self) -> Value {
        let counts: Vec<Value> = self
            .at_counts
            .iter()
            .map(|m| {
                let (rss, pss, fds) = per_bot(&m.usage.tree, &self.lone.tree, m.bots);
                json!({
                    "bots": m.bots, "usage": m.usage.to_json(), "add_seconds": m.add_seconds,
                    "per_bot": { "rss_bytes": rss, "pss_bytes": pss, "fds": fds },
                })
            })
            .collect();
        json!({
            "server": self.kind.name(),
            "encryption": self.encryption,
            "idle": self.idle.to_json(),
            "lone_bot": self.lone.to_json(),
            "ping_lone_ms": self.lone_pings.to_json(),
            "counts": counts,
            "ping_last_ms": self.last_pings.to_json(),
            "restart": {
                "seconds_to_api": self.restart.api.as_secs_f64(),
                "seconds_to_all_synced": self.restart.all_synced.as_secs_f64(),
                "usage": self.restart.usage.to_json(),
                "secret_ping": self.restart.secret_ping.as_ref().map(SecretPing::to_json),
            },
        })
    }
}

pub struct Report<'a> {
    pub args: &'a BotsArgs,
    pub runs: &'a [Run],
    pub seconds: f64,
}

impl Report<'_> {
    pub fn table(&self) -> String {
        let mut out = String::new();
        let names: Vec<&str> = self.runs.iter().map(|r| r.kind.name()).collect();
        let _ = writeln!(out, "| | {} |", names.join(" | "));
        let _ = writeln!(out, "|---|{}", "---|".repeat(names.len()));
        let mut row = |label: String, cell: &dyn Fn(&Run) -> String| {
            let cells: Vec<String> = self.runs.iter().map(cell).collect();
            let _ = writeln!(out, "| {label} | {} |", cells.join(" | "));
        };
        row("RSS / PSS idle, MiB".into(), &|r| {
            format!(
                "{:.1} / {:.1}",
                r.idle.tree.rss_mib(),
                r.idle.tree.pss_mib()
            )
        });
        row(
            "RSS / PSS with the lone bot and its echo instance".into(),
            &|r| {
                format!(
                    "{:.1} / {:.1}",
                    r.lone.tree.rss_mib(),
                    r.lone.tree.pss_mib()
                )
            },
        );
        for (i, &count) in self.args.counts.iter().enumerate() {
            row(
                format!("{count} bots: RSS / PSS in total, MiB (server alone)"),
                &|r| {
                    let u = &r.at_counts[i].usage;
                    format!(
                        "{:.1} / {:.1} ({:.1} / {:.1})",
                        u.tree.rss_mib(),
                        u.tree.pss_mib(),
                        u.main.rss_mib(),
                        u.main.pss_mib()
                    )
                },
            );
            row(format!("{count} bots: per bot RSS / PSS KiB, fds"), &|r| {
                let m = &r.at_counts[i];
                let (rss, pss, fds) = per_bot(&m.usage.tree, &r.lone.tree, m.bots);
                format!("{:.0} / {:.0}, {fds:.2}", rss / KIB, pss / KIB)
            });
            row(format!("{count} bots: descriptors in total"), &|r| {
                r.at_counts[i].usage.tree.fds.to_string()
            });
        }
        row("!ping median, lone bot / last bot, ms".into(), &|r| {
            format!(
                "{:.1} / {:.1}",
                r.lone_pings.median(),
                r.last_pings.median()
            )
        });
        row("restart: API / all bots synced, s".into(), &|r| {
            format!(
                "{:.2} / {:.2}",
                r.restart.api.as_secs_f64(),
                r.restart.all_synced.as_secs_f64()
            )
        });
        row("restart: RSS / PSS, MiB".into(), &|r| {
            format!(
                "{:.1} / {:.1}",
                r.restart.usage.tree.rss_mib(),
                r.restart.usage.tree.pss_mib()
            )
        });
        row(
            "encrypted !ping right after the restart".into(),
            &|r| match &r.restart.secret_ping {
                None => "no encryption".into(),
                Some(SecretPing {
                    answered_after: Some(after),
                    encrypted,
                    ..
                }) => format!(
                    "answered {} after {:.1} s",
                    if *encrypted {
                        "encrypted"
                    } else {
                        "UNENCRYPTED"
                    },
                    after.as_secs_f64()
                ),
                Some(ping) => format!("FAILED: {}", ping.error.as_deref().unwrap_or("?")),
            },
        );
        if let Some(rs) = self.runs.iter().find(|r| r.kind == Kind::MaubotRs)
            && let Some(top) = rs.at_counts.last()
        {
            let (_, _, fds) = per_bot(&top.usage.tree, &rs.lone.tree, top.bots);
            let ping_ok = rs.last_pings.median() <= rs.lone_pings.median();
            let secret_ok = rs
                .restart
                .secret_ping
                .as_ref()
                .is_some_and(|p| p.answered_after.is_some() && p.encrypted);
            let _ = writeln!(out);
            let _ = writeln!(out, "maubot-rs targets at {} bots:", top.bots);
            let _ = writeln!(
                out,
                "- RSS in total ≤ 300 MiB: {:.1} MiB, {}",
                top.usage.tree.rss_mib(),
                holds(top.usage.tree.rss_bytes as f64 <= 300.0 * MIB)
            );
            let _ = writeln!(
                out,
                "- ≤ 2 descriptors per bot: {fds:.2}, {}",
                holds(fds <= 2.0)
            );
            let _ = writeln!(
                out,
                "- all syncing within 30 s of a restart: {:.1} s, {}",
                rs.restart.all_synced.as_secs_f64(),
                holds(rs.restart.all_synced <= Duration::from_secs(30))
            );
            let _ = writeln!(
                out,
                "- !ping through the last bot no slower than through a lone bot: {}",
                holds(ping_ok)
            );
            let _ = writeln!(
                out,
                "- an encrypted !ping right after the restart answered encrypted: {}",
                holds(secret_ok)
            );
        }
        let _ = writeln!(out, "({:.0} s in all)", self.seconds);
        out
    }

    pub fn to_json(&self) -> Value {
        json!({
            "bench": "bots",
            "settings": {
                "counts": self.args.counts, "pings": self.args.pings, "settle": self.args.settle,
            },
            "runs": self.runs.iter().map(Run::to_json).collect::<Vec<_>>(),
            "seconds": self.seconds,
        })
    }
}

fn holds(ok: bool) -> &'static str {
    if ok { "holds" } else { "NOT met" }
}
