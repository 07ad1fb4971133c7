//! `!panic` panics (a trap); `!alive` → "alive".

use maubot_plugin::{Handlers, Instance, NoConfig, Plugin, Result};

struct Panic;

impl Plugin for Panic {
    type Config = NoConfig;

    fn start(_: &Instance, _: NoConfig) -> Result<Self> {
        Ok(Panic)
    }

    fn handlers() -> Handlers<Self> {
        Handlers::new()
            .command("alive", "", |_, event, _| event.reply("alive").map(drop))
            .command("panic", "Panic", |_, _, _| panic!("deliberate panic"))
    }
}

maubot_plugin::export_plugin!(Panic);
