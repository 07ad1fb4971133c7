//! A stateful plugin:
//! - `!count` → "count: <n>", a count kept in the key-value store (it survives restarts);
//! - `!remind <seconds> <text>` → "ok, reminding in <seconds>s", then "reminder: <text>" when
//!   due: the reminder is a row of a database table and a timer, set again at start for the
//!   reminders a restart interrupted;
//! - `!greet` → the `greeting` of the instance's config.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use maubot_plugin::db::{self, params};
use maubot_plugin::{Args, Event, Handlers, Instance, Plugin, Result, kv, matrix, timers};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(default)]
struct Config {
    greeting: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            greeting: "Hello!".to_owned(),
        }
    }
}

struct Counter {
    config: Config,
}

impl Plugin for Counter {
    type Config = Config;

    fn start(_instance: &Instance, config: Config) -> Result<Self> {
        db::execute(
            "CREATE TABLE IF NOT EXISTS reminder (
                id BIGINT PRIMARY KEY,
                room_id TEXT NOT NULL,
                text TEXT NOT NULL,
                due_ms BIGINT NOT NULL
            )",
            &[],
        )?;
        // Timers end with the instance: set again those of the reminders still pending.
        let now = now_ms();
        for row in db::query("SELECT id, due_ms FROM reminder", &[])? {
            let (id, due): (u64, i64) = (row.get(0)?, row.get(1)?);
            timers::set(
                id,
                Duration::from_millis(due.saturating_sub(now).max(0) as u64),
            );
        }
        Ok(Counter { config })
    }

    fn handlers() -> Handlers<Self> {
        Handlers::new()
            .command("count", "Count, and say how far", Self::count)
            .command(
                "remind <seconds> <text...>",
                "Remind this room",
                Self::remind,
            )
            .command("greet", "Say the configured greeting", Self::greet)
    }

    fn config_updated(&mut self, config: Config) -> Result<()> {
        self.config = config;
        Ok(())
    }

    fn on_timer(&mut self, id: u64) {
        if let Err(err) = remind_now(id) {
            maubot_plugin::error!("reminder {id}: {err}");
        }
    }
}

impl Counter {
    fn count(&mut self, event: &Event, _args: &Args) -> Result<()> {
        let count = kv::get_string("count")?
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        kv::set("count", count.to_string())?;
        event.reply(&format!("count: {count}"))?;
        Ok(())
    }

    fn remind(&mut self, event: &Event, args: &Args) -> Result<()> {
        let seconds: u32 = args.parse("seconds")?;
        let id: i64 = db::query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM reminder", &[])?
            .map(|row| row.get(0))
            .transpose()?
            .unwrap_or(1);
        let due = now_ms() + i64::from(seconds) * 1000;
        db::execute(
            "INSERT INTO reminder (id, room_id, text, due_ms) VALUES ($1, $2, $3, $4)",
            &params![id, &event.room_id, args.str("text"), due],
        )?;
        timers::set(id as u64, Duration::from_secs(seconds.into()));
        event.reply(&format!("ok, reminding in {seconds}s"))?;
        Ok(())
    }

    fn greet(&mut self, event: &Event, _args: &Args) -> Result<()> {
        event.reply(&self.config.greeting)?;
        Ok(())
    }
}

/// Sends reminder `id` and forgets it.
fn remind_now(id: u64) -> Result<()> {
    let Some(row) = db::query_row(
        "SELECT room_id, text FROM reminder WHERE id = $1",
        &params![id as i64],
    )?
    else {
        return Ok(());
    };
    let (room_id, text): (String, String) = (row.get(0)?, row.get(1)?);
    matrix::send_text(&room_id, &format!("reminder: {text}"))?;
    db::execute("DELETE FROM reminder WHERE id = $1", &params![id as i64])?;
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

maubot_plugin::export_plugin!(Counter);
