//! The command line: one subcommand per benchmark.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "maubot-bench",
    about = "Benchmarks of maubot-rs that print figures"
)]
pub struct Cli {
    #[command(subcommand)]
    pub bench: Bench,
}

#[derive(Debug, Subcommand)]
pub enum Bench {
    /// Many syncing bots on one server (maubot-rs's release binary, and maubot 0.6.0 with
    /// `--maubot`): memory, descriptors, cold start, `!ping` through the last bot, and an
    /// encrypted `!ping` right after a restart.
    Bots(BotsArgs),
    /// maubot-rs (release binary) side by side with maubot 0.6.0, against one Synapse.
    Compare(CompareArgs),
    /// maubot-rs (release binary) under a steady message rate for a long while: each bot with an
    /// echo instance, every `!ping` answered exactly once, and memory sampled throughout.
    Soak(SoakArgs),
    /// The WebAssembly runtime alone, in this process: bot-side handling time, events per
    /// second on one core, memory per idle instance.
    Wasm(WasmArgs),
}

#[derive(Debug, clap::Args)]
pub struct WasmArgs {
    /// Events dispatched to one instance for the events per second.
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// `!ping`s handed over one at a time for the handling time.
    #[arg(long, default_value_t = 2000)]
    pub pings: usize,
    /// Idle instances started for the memory per instance.
    #[arg(long, default_value_t = 500)]
    pub instances: usize,
}

#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// Bots, each with an instance of the Python echo plugin and a room with the tester.
    #[arg(long, default_value_t = 20)]
    pub bots: usize,
    /// Minutes of load.
    #[arg(long, default_value_t = 10.0)]
    pub minutes: f64,
    /// `!ping`s per second, over all bots (they take turns).
    #[arg(long, default_value_t = 2.0)]
    pub rate: f64,
    /// Seconds between memory samples.
    #[arg(long, default_value_t = 30)]
    pub sample_every: u64,
    /// The maubot-rs server binary [default: `maubot` next to this program].
    #[arg(long)]
    pub maubot_rs: Option<PathBuf>,
    /// Also write the JSON results to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct BotsArgs {
    /// The numbers of bots measured, in ascending order: bots are added up to each in turn, and
    /// the last is restarted.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    pub counts: Vec<usize>,
    /// `!ping`s measured through the lone first bot and through the last one (after 3
    /// unmeasured ones each).
    #[arg(long, default_value_t = 20)]
    pub pings: usize,
    /// Seconds a server idles before its memory is measured.
    #[arg(long, default_value_t = 10)]
    pub settle: u64,
    /// Also run maubot 0.6.0 (from PyPI) with the same number of bots.
    #[arg(long)]
    pub maubot: bool,
    /// The maubot-rs server binary [default: `maubot` next to this program].
    #[arg(long)]
    pub maubot_rs: Option<PathBuf>,
    /// Also write the JSON results to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// Bots of the scale phase (memory and fds per bot, cold start).
    #[arg(long, default_value_t = 100)]
    pub bots: usize,
    /// Bots with an echo instance each in the plugin phase (memory, `!ping`, API).
    #[arg(long, default_value_t = 10)]
    pub plugin_bots: usize,
    /// Seconds of load per management API route.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Connections of the API load generator.
    #[arg(long, default_value_t = 2)]
    pub connections: usize,
    /// `!ping`s measured per server (after 5 unmeasured ones).
    #[arg(long, default_value_t = 50)]
    pub pings: usize,
    /// Seconds servers idle before their memory is measured.
    #[arg(long, default_value_t = 10)]
    pub settle: u64,
    /// Times each instance of the many-plugins phase is stopped and started again on
    /// maubot-rs, each time in a new worker (worker start times).
    #[arg(long, default_value_t = 3)]
    pub restarts: usize,
    /// The phases to run (the host's dispatch, plugins, many, scale); the others' figures are
    /// n/a.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Phase::ALL)]
    pub phases: Vec<Phase>,
    /// maubot-rs's echo bots of the plugin phase run the WebAssembly ping example (built for
    /// wasm32-wasip2 first) instead of the Python echo plugin; maubot's keep the Python one.
    #[arg(long)]
    pub wasm: bool,
    /// Events sent to the Python plugin host in its dispatch benchmark.
    #[arg(long, default_value_t = 5000)]
    pub events: usize,
    /// The maubot-rs server binary [default: `maubot` next to this program, i.e.
    /// `target/release/maubot`].
    #[arg(long)]
    pub maubot_rs: Option<PathBuf>,
    /// Also write the JSON results to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// A phase of `compare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    /// The Python plugin host alone: events per second through one worker.
    Dispatch,
    /// Both servers side by side with `plugin_bots` echo bots: memory, `!ping`, API load.
    Plugins,
    /// One bot with an instance of each of many different plugins: memory per plugin, worker
    /// start.
    Many,
    /// `bots` bots without plugins: memory per bot, cold start.
    Scale,
}

impl Phase {
    pub const ALL: [Phase; 4] = [Phase::Dispatch, Phase::Plugins, Phase::Many, Phase::Scale];
}
