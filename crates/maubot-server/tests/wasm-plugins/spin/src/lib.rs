//! `!spin` loops forever (the server's fuel or time limit ends it); `!alive` → "alive".

use maubot_plugin::{Handlers, Instance, NoConfig, Plugin, Result};

struct Spin;

impl Plugin for Spin {
    type Config = NoConfig;

    fn start(_: &Instance, _: NoConfig) -> Result<Self> {
        Ok(Spin)
    }

    fn handlers() -> Handlers<Self> {
        Handlers::new()
            .command("alive", "", |_, event, _| event.reply("alive").map(drop))
            .command("spin", "Loop forever", |_, _, _| {
                let mut turns: u64 = 0;
                loop {
                    turns = std::hint::black_box(turns.wrapping_add(1));
                }
            })
    }
}

maubot_plugin::export_plugin!(Spin);
