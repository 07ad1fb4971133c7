//! `!fetch <url>` fetches the URL and answers "status <code>: <the body's first 200
//! characters>", or "error: <why>" (e.g. "error: forbidden: ..." for a host the config's
//! `allowed_hosts` does not list). `!alive` → "alive".

use maubot_plugin::{Handlers, Instance, NoConfig, Plugin, Result, http};

struct Fetch;

impl Plugin for Fetch {
    type Config = NoConfig;

    fn start(_: &Instance, _: NoConfig) -> Result<Self> {
        Ok(Fetch)
    }

    fn handlers() -> Handlers<Self> {
        Handlers::new()
            .command("alive", "", |_, event, _| event.reply("alive").map(drop))
            .command("fetch <url>", "Fetch a URL", |_, event, args| {
                let answer = match http::get(args.str("url")) {
                    Ok(response) => {
                        let body: String = response.text().chars().take(200).collect();
                        format!("status {}: {body}", response.status)
                    }
                    Err(err) => format!("error: {err}"),
                };
                event.reply(&answer).map(drop)
            })
    }
}

maubot_plugin::export_plugin!(Fetch);
