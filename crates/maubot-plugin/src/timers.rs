//! Timers: [`crate::Plugin::on_timer`] is called with the timer's ID when it is due, once.
//!
//! Timers live as long as the instance does: after a restart (of the server, or of an
//! instance the server re-instantiated after a trap) a plugin sets again what it still needs,
//! e.g. from its database in `start`.

use std::time::Duration;

use crate::bindings::maubot::plugin::timers as wit;

/// Calls `on_timer(id)` after `delay`, once. A timer with the same ID is replaced.
pub fn set(id: u64, delay: Duration) {
    wit::set_timer(id, u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
}

/// Cancels the timer `id`, if it is set.
pub fn cancel(id: u64) {
    wit::cancel_timer(id);
}
