//! The page shell (head, navigation, alerts) and the small pieces every view uses: state badges,
//! confirmation pages, empty states.

use maud::{DOCTYPE, Markup, html};

use super::Ctx;
use super::assets::{css_path, js_path};
use crate::client::ClientView;
use crate::views::InstanceView;

/// The sections of the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Bots,
    Plugins,
    Instances,
    Logs,
}

/// A message at the top of a page.
#[derive(Debug, Clone)]
pub enum Alert {
    Ok(String),
    Error(String),
    /// A success that hands over a secret, shown once (a recovery key).
    Secret {
        text: String,
        secret: String,
    },
}

impl Alert {
    pub fn render(&self) -> Markup {
        match self {
            Alert::Ok(text) => html! { p.alert.ok role="status" { (text) } },
            Alert::Secret { text, secret } => html! {
                div.alert.ok role="status" {
                    p { (text) }
                    code.secret { (secret) }
                }
            },
            Alert::Error(text) => html! {
                div.alert.error role="alert" {
                    strong { "Error: " } span.message { (text) }
                }
            },
        }
    }
}

/// A whole page: the shell around `content`.
pub fn page(ctx: &Ctx, title: &str, nav: Nav, alert: Option<&Alert>, content: Markup) -> Markup {
    let item = |section: Nav, href: &str, label: &str| {
        html! {
            a href=(ctx.href(href)) aria-current=[(nav == section).then_some("page")] { (label) }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · maubot" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href=(ctx.href(css_path()));
                script defer src=(ctx.href(js_path())) {}
            }
            body data-api=(ctx.api) data-base=(ctx.base) {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href=(ctx.base) { "maubot" }
                    nav aria-label="Main" {
                        (item(Nav::Overview, "", "Overview"))
                        (item(Nav::Bots, "bots", "Bots"))
                        (item(Nav::Plugins, "plugins", "Plugins"))
                        (item(Nav::Instances, "instances", "Instances"))
                        (item(Nav::Logs, "logs", "Logs"))
                    }
                    form.logout method="post" action=(ctx.href("logout")) {
                        span.who { (ctx.admin) }
                        button.link type="submit" { "Log out" }
                    }
                }
                main #main tabindex="-1" {
                    @if let Some(alert) = alert { (alert.render()) }
                    (content)
                }
            }
        }
    }
}

/// A page without the navigation (the login).
pub fn bare_page(ctx: &Ctx, title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · maubot" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href=(ctx.href(css_path()));
            }
            body.bare {
                main #main { (content) }
            }
        }
    }
}

/// A status badge: `kind` picks the colour (`ok`, `warn`, `bad`, `off`).
pub fn badge(kind: &str, text: &str) -> Markup {
    html! { span class={ "badge " (kind) } { (text) } }
}

/// A bot's state: disabled, stopped, sync error, syncing, connecting; and whether it needs
/// attention.
pub fn bot_state(bot: &ClientView) -> (Markup, bool) {
    if !bot.enabled {
        (badge("off", "disabled"), false)
    } else if let Some(error) = &bot.sync_error {
        (
            html! { (badge("bad", "sync error")) " " span.reason { (error) } },
            true,
        )
    } else if !bot.started {
        (badge("warn", "stopped"), true)
    } else if !bot.sync {
        (badge("off", "not syncing"), false)
    } else if bot.sync_ok {
        (badge("ok", "syncing"), false)
    } else {
        (badge("warn", "connecting"), false)
    }
}

/// An instance's state: disabled, failed with its reason, started, stopped.
pub fn instance_state(instance: &InstanceView) -> (Markup, bool) {
    if let Some(failure) = &instance.failure {
        (
            html! { (badge("bad", "failed")) " " span.reason { (failure) } },
            true,
        )
    } else if !instance.enabled {
        (badge("off", "disabled"), false)
    } else if instance.started {
        (badge("ok", "started"), false)
    } else {
        (badge("warn", "stopped"), true)
    }
}

/// A list that is empty: what it is, and what to do next.
pub fn empty(text: &str, next: Markup) -> Markup {
    html! { div.empty { p { (text) } (next) } }
}

/// The confirmation step before something destructive: what will happen, a button that does it
/// and a way back.
pub fn confirm(
    what: &str,
    consequences: Markup,
    action: &str,
    button: &str,
    back: &str,
    blocked: bool,
) -> Markup {
    html! {
        section.card.confirm {
            h1 { (what) }
            (consequences)
            form method="post" action=(action) {
                div.actions {
                    @if !blocked {
                        button.danger type="submit" autofocus { (button) }
                    }
                    a.button href=(back) { "Cancel" }
                }
            }
        }
    }
}

/// A yes/no cell.
pub fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

/// A form without fields (a button).
#[derive(Debug, serde::Deserialize)]
pub struct Empty {}
