#![doc = include_str!("../README.md")]

// `export_plugin!` and the generated bindings name the SDK by its crate name, here too.
extern crate self as maubot_plugin;

#[doc(hidden)]
pub mod bindings;
pub mod commands;
pub mod config;
pub mod db;
mod error;
mod event;
mod guest;
pub mod http;
pub mod kv;
pub mod log;
pub mod matrix;
pub mod timers;
pub mod web;

pub use commands::{Args, Captures, Handlers};
pub use config::NoConfig;
pub use error::{Error, Result};
pub use event::Event;
#[doc(hidden)]
pub use guest::Adapter as __Adapter;
pub use web::{WebRequest, WebResponse};
#[doc(hidden)]
pub use wit_bindgen::rt as __wit_rt;

/// Who an instance is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Instance {
    /// The instance's ID.
    pub id: String,
    /// The Matrix user ID of the instance's bot.
    pub user_id: String,
    /// Where the instance's web app is served, for plugins with `webapp: true`.
    pub webapp_url: Option<String>,
}

impl From<bindings::maubot::plugin::types::Instance> for Instance {
    fn from(instance: bindings::maubot::plugin::types::Instance) -> Self {
        Instance {
            id: instance.id,
            user_id: instance.user_id,
            webapp_url: instance.webapp_url,
        }
    }
}

/// The running instance (its ID, its bot, its web app's URL).
pub fn instance() -> Instance {
    guest::instance()
}

/// A plugin: what each instance runs. Everything but [`Plugin::start`] has a default.
///
/// Each instance runs in a component instance of its own, one call at a time, so `&mut self`
/// is all the state there is: no locks. A panic, an endless loop or too much memory is a trap:
/// the server drops the instance and starts it anew (with backoff), so in-memory state is
/// lost and what must last goes into [`db`] or [`kv`].
pub trait Plugin: Sized + 'static {
    /// The instance's config, parsed from its YAML (`base-config.yaml` is where new instances
    /// start); [`NoConfig`] for plugins without one.
    type Config: serde::de::DeserializeOwned;

    /// Starts an instance; an error means it does not run (the admin sees why).
    fn start(instance: &Instance, config: Self::Config) -> Result<Self>;

    /// The commands and passive patterns, asked once at each start.
    fn handlers() -> Handlers<Self> {
        Handlers::new()
    }

    /// The instance stops (disabled, deleted, the server shutting down).
    fn stop(&mut self) {}

    /// The admin changed the config. By default the instance is stopped and started again
    /// with it.
    fn config_updated(&mut self, config: Self::Config) -> Result<()> {
        self.stop();
        *self = Self::start(&instance(), config)?;
        Ok(())
    }

    /// Every room event the bot receives, after the handlers ran (its own messages too).
    fn on_event(&mut self, _event: &Event) {}

    /// A timer set with [`timers::set`] is due.
    fn on_timer(&mut self, _id: u64) {}

    /// A request to the instance's web app (`webapp: true` in `maubot.yaml`); 404 by default.
    fn web_request(&mut self, _request: &WebRequest) -> WebResponse {
        WebResponse::not_found()
    }
}

/// Exports a [`Plugin`] as the component's `plugin` world: once per plugin crate, at its root.
///
/// ```ignore
/// maubot_plugin::export_plugin!(PingBot);
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[doc(hidden)]
        type __MaubotPluginExport = $crate::__Adapter<$plugin>;
        $crate::bindings::__export_plugin_world!(
            __MaubotPluginExport with_types_in $crate::bindings
        );
    };
}
