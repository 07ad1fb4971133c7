//! A bot's events for the instances on it: one broadcast channel, made at the first
//! subscription. Most of a thousand bots may have no instance, and a channel's buffer is made
//! with it (256 slots, about 17 KiB a bot).

use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::bot::SharedEvent;

/// How many events a subscriber may fall behind before it misses some.
const CAPACITY: usize = 256;

#[derive(Debug, Default, Clone)]
pub(super) struct Fanout(Arc<Mutex<Option<broadcast::Sender<Arc<SharedEvent>>>>>);

impl Fanout {
    /// Every event from now on.
    pub(super) fn subscribe(&self) -> broadcast::Receiver<Arc<SharedEvent>> {
        self.lock()
            .get_or_insert_with(|| broadcast::channel(CAPACITY).0)
            .subscribe()
    }

    /// Passes `event` to the subscribers, if there are any.
    pub(super) fn send(&self, event: Arc<SharedEvent>) {
        if let Some(sender) = self.lock().as_ref() {
            // No receiver left is no error: the instances stopped.
            let _ = sender.send(event);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<broadcast::Sender<Arc<SharedEvent>>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
