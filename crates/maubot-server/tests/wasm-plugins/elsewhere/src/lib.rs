//! `!elsewhere <room>` sends "hello from elsewhere" into that room and answers "sent <event
//! ID>", or "error: <why>" (e.g. "error: forbidden: ..." for a room the bot is not in).
//! `!alive` → "alive".

use maubot_plugin::{Handlers, Instance, NoConfig, Plugin, Result, matrix};

struct Elsewhere;

impl Plugin for Elsewhere {
    type Config = NoConfig;

    fn start(_: &Instance, _: NoConfig) -> Result<Self> {
        Ok(Elsewhere)
    }

    fn handlers() -> Handlers<Self> {
        Handlers::new()
            .command("alive", "", |_, event, _| event.reply("alive").map(drop))
            .command(
                "elsewhere <room>",
                "Send into another room",
                |_, event, args| {
                    let answer = match matrix::send_notice(args.str("room"), "hello from elsewhere")
                    {
                        Ok(event_id) => format!("sent {event_id}"),
                        Err(err) => format!("error: {err}"),
                    };
                    event.reply(&answer).map(drop)
                },
            )
    }
}

maubot_plugin::export_plugin!(Elsewhere);
