//! `!bomb` allocates memory without end (the server's memory limit ends it); `!alive` →
//! "alive".

use maubot_plugin::{Handlers, Instance, NoConfig, Plugin, Result};

struct Bomb;

impl Plugin for Bomb {
    type Config = NoConfig;

    fn start(_: &Instance, _: NoConfig) -> Result<Self> {
        Ok(Bomb)
    }

    fn handlers() -> Handlers<Self> {
        Handlers::new()
            .command("alive", "", |_, event, _| event.reply("alive").map(drop))
            .command("bomb", "Allocate without end", |_, _, _| {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    // Written to, so that every page is really used.
                    hoard.push(std::hint::black_box(vec![0x55; 1 << 20]));
                }
            })
    }
}

maubot_plugin::export_plugin!(Bomb);
