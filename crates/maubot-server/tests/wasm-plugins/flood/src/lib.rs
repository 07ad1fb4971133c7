//! `!flood` sends 10,000 notices into the room as fast as it can, then answers
//! "accepted: <a>, rate-limited: <r>, failed: <f>" (a + r + f = 10,000). The answer itself
//! may be rate-limited: it is tried again every 2 seconds (a timer) until it goes through.
//! `!alive` → "alive".

use std::time::Duration;

use maubot_plugin::{Error, Event, Handlers, Instance, NoConfig, Plugin, Result, matrix, timers};

const MESSAGES: u32 = 10_000;
const ANSWER_TIMER: u64 = 1;

struct Flood {
    /// The answer still to send: room, event, text.
    answer: Option<(String, String, String)>,
}

impl Plugin for Flood {
    type Config = NoConfig;

    fn start(_: &Instance, _: NoConfig) -> Result<Self> {
        Ok(Flood { answer: None })
    }

    fn handlers() -> Handlers<Self> {
        Handlers::new()
            .command("alive", "", |_, event, _| event.reply("alive").map(drop))
            .command("flood", "Send 10,000 messages", |flood, event, _| {
                flood.flood(event);
                Ok(())
            })
    }

    fn on_timer(&mut self, _id: u64) {
        self.answer();
    }
}

impl Flood {
    fn flood(&mut self, event: &Event) {
        let (mut accepted, mut limited, mut failed) = (0, 0, 0);
        for i in 0..MESSAGES {
            match matrix::send_notice(&event.room_id, &format!("flood {i}")) {
                Ok(_) => accepted += 1,
                Err(Error::RateLimited) => limited += 1,
                Err(_) => failed += 1,
            }
        }
        self.answer = Some((
            event.room_id.clone(),
            event.event_id.clone(),
            format!("accepted: {accepted}, rate-limited: {limited}, failed: {failed}"),
        ));
        self.answer();
    }

    fn answer(&mut self) {
        let Some((room, event, text)) = &self.answer else {
            return;
        };
        match matrix::reply(room, event, text) {
            Err(Error::RateLimited) => timers::set(ANSWER_TIMER, Duration::from_secs(2)),
            Err(err) => {
                maubot_plugin::error!("cannot answer: {err}");
                self.answer = None;
            }
            Ok(_) => self.answer = None,
        }
    }
}

maubot_plugin::export_plugin!(Flood);
