//! The exports of the `plugin` world, implemented once for every [`Plugin`]: the running
//! plugin and its handlers are kept between calls, events are routed to the handlers.

use std::any::Any;
use std::cell::RefCell;
use std::marker::PhantomData;

use crate::bindings::Guest;
use crate::bindings::maubot::plugin::types as wit;
use crate::{Event, Handlers, Instance, Plugin, WebResponse, config};

/// The instance's plugin while it runs.
struct Running<P> {
    plugin: P,
    handlers: Handlers<P>,
}

thread_local! {
    /// A `Running<P>` of the one plugin type the component exports.
    static RUNNING: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    static INSTANCE: RefCell<Option<Instance>> = const { RefCell::new(None) };
}

/// The started instance (empty before `start`).
pub(crate) fn instance() -> Instance {
    INSTANCE.with_borrow(|instance| instance.clone().unwrap_or_default())
}

/// Runs `f` on the running plugin, if there is one. The plugin is taken out for the call, so a
/// handler can use every function of the SDK.
fn with_running<P: Plugin, R>(f: impl FnOnce(&mut Running<P>) -> R) -> Option<R> {
    let mut running = RUNNING.with_borrow_mut(Option::take)?;
    let result = running.downcast_mut::<Running<P>>().map(f);
    RUNNING.with_borrow_mut(|slot| *slot = Some(running));
    result
}

/// What `export_plugin!` exports: the `plugin` world for `P`.
#[doc(hidden)]
#[derive(Debug)]
pub struct Adapter<P>(PhantomData<P>);

impl<P: Plugin> Guest for Adapter<P> {
    fn start(instance: wit::Instance, config: String) -> Result<(), String> {
        // A panic is a trap, after which the server starts the instance anew; its message goes
        // to the instance's log first.
        std::panic::set_hook(Box::new(|info| {
            crate::log::log(crate::log::Level::Error, &format!("panic: {info}"));
        }));
        let instance = Instance::from(instance);
        INSTANCE.with_borrow_mut(|slot| *slot = Some(instance.clone()));
        let config = config::parse::<P::Config>(&config).map_err(|err| err.to_string())?;
        let handlers = P::handlers();
        if !handlers.errors().is_empty() {
            return Err(format!(
                "invalid handlers: {}",
                handlers.errors().join("; ")
            ));
        }
        let plugin = P::start(&instance, config).map_err(|err| err.to_string())?;
        RUNNING.with_borrow_mut(|slot| *slot = Some(Box::new(Running { plugin, handlers })));
        Ok(())
    }

    fn stop() {
        let running = RUNNING.with_borrow_mut(Option::take);
        if let Some(mut running) = running.and_then(|r| r.downcast::<Running<P>>().ok()) {
            running.plugin.stop();
        }
    }

    fn config_updated(config: String) -> Result<(), String> {
        let config = config::parse::<P::Config>(&config).map_err(|err| err.to_string())?;
        with_running::<P, _>(|running| running.plugin.config_updated(config))
            .unwrap_or(Ok(()))
            .map_err(|err| err.to_string())
    }

    fn on_event(event: wit::RoomEvent) {
        let event = Event::from(event);
        let own_user = instance().user_id;
        with_running::<P, _>(|running| {
            running
                .handlers
                .dispatch(&mut running.plugin, &event, &own_user);
            running.plugin.on_event(&event);
        });
    }

    fn on_timer(id: u64) {
        with_running::<P, _>(|running| running.plugin.on_timer(id));
    }

    fn web_request(request: wit::WebRequest) -> wit::WebResponse {
        let request = request.into();
        with_running::<P, _>(|running| running.plugin.web_request(&request))
            .unwrap_or_else(|| WebResponse::error(503, "the instance is not running"))
            .into()
    }
}
