//! The smallest useful plugin: `!ping` answers "pong", `!echo <text>` answers the text.

use maubot_plugin::{Args, Event, Handlers, Instance, NoConfig, Plugin, Result};

struct PingBot;

impl Plugin for PingBot {
    type Config = NoConfig;

    fn start(_instance: &Instance, _config: NoConfig) -> Result<Self> {
        Ok(PingBot)
    }

    fn handlers() -> Handlers<Self> {
        Handlers::new()
            .command("ping", "Answer with pong", Self::ping)
            .command("echo <text...>", "Repeat the text", Self::echo)
    }
}

impl PingBot {
    fn ping(&mut self, event: &Event, _args: &Args) -> Result<()> {
        event.reply("pong")?;
        Ok(())
    }

    fn echo(&mut self, event: &Event, args: &Args) -> Result<()> {
        event.reply(args.str("text"))?;
        Ok(())
    }
}

maubot_plugin::export_plugin!(PingBot);
