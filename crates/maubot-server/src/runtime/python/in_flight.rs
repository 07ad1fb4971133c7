//! The events a worker was handed and has not finished with. They are bounded, so that a slow
//! plugin holds up only itself. When the worker dies, they go to the next worker: at least
//! once, and more than once only for an event whose handler was running when a worker died
//! (the worker says which events it read, before their handlers run). An event that was being
//! handled when two workers in a row died is dropped as the likely cause.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::sync::lock;

/// Events one worker may have unfinished at once. Past that, an event of its plugin is
/// dropped (and logged): a plugin that cannot keep up must not make the server hold without
/// end what it has not handled.
pub const MAX_EVENTS_IN_FLIGHT: usize = 1024;

/// Workers that may read an event before it is dropped, if each of them dies.
const MAX_READS: u8 = 2;

/// An event for an instance, and how many dead workers had read it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event: Arc<Value>,
    pub reads: u8,
}

impl Delivery {
    pub fn new(event: Arc<Value>) -> Self {
        Self { event, reads: 0 }
    }
}

type Entry = (Arc<str>, Delivery);

#[derive(Debug, Default)]
pub struct InFlight {
    state: Mutex<State>,
    /// The highest request ID of an event the worker said it read (`events_read`).
    read_up_to: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    events: BTreeMap<u64, Entry>,
    /// Set once the worker is gone and what it left was taken: nothing is admitted after.
    closed: bool,
}

/// Why an event was not handed to the worker.
#[derive(Debug)]
pub enum Refused {
    /// The worker has [`MAX_EVENTS_IN_FLIGHT`] unfinished events.
    Full,
    /// The worker is gone; the event goes to the next one.
    Gone(Delivery),
}

/// What a dead worker left unfinished.
#[derive(Debug, Default)]
pub struct Unhandled {
    /// Events for the next worker, oldest first.
    pub again: Vec<Entry>,
    /// Per instance, how many events are dropped: read by [`MAX_READS`] workers that died.
    pub dropped: BTreeMap<Arc<str>, usize>,
}

impl InFlight {
    /// Records an event and writes it to the worker with `send`, which numbers the request
    /// and returns its ID. Under the lock, so that events reach the worker in the order of
    /// their IDs (the worker says how far it read by ID). An event that could not be written
    /// stays recorded: it counts as unread.
    pub fn admit(
        &self,
        instance_id: &str,
        delivery: Delivery,
        send: impl FnOnce(&Value) -> u64,
    ) -> Result<(), Refused> {
        let mut state = lock(&self.state);
        if state.closed {
            return Err(Refused::Gone(delivery));
        }
        if state.events.len() >= MAX_EVENTS_IN_FLIGHT {
            return Err(Refused::Full);
        }
        let id = send(&delivery.event);
        state.events.insert(id, (Arc::from(instance_id), delivery));
        Ok(())
    }

    /// The worker read every event up to request `id`.
    pub fn read(&self, id: u64) {
        self.read_up_to.fetch_max(id, Ordering::Relaxed);
    }

    /// The worker answered request `id`: the instance whose event it was, if it was one.
    pub fn answered(&self, id: u64) -> Option<Arc<str>> {
        lock(&self.state)
            .events
            .remove(&id)
            .map(|(instance, _)| instance)
    }

    /// Takes what the worker left unfinished; from now on, events are refused as gone.
    pub fn close(&self) -> Unhandled {
        let events = {
            let mut state = lock(&self.state);
            state.closed = true;
            std::mem::take(&mut state.events)
        };
        let read_up_to = self.read_up_to.load(Ordering::Relaxed);
        let mut unhandled = Unhandled::default();
        for (id, (instance, mut delivery)) in events {
            if id <= read_up_to {
                delivery.reads += 1;
            }
            if delivery.reads < MAX_READS {
                unhandled.again.push((instance, delivery));
            } else {
                *unhandled.dropped.entry(instance).or_default() += 1;
            }
        }
        unhandled
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(n: u64) -> Delivery {
        Delivery::new(Arc::new(json!(n)))
    }

    /// What `unhandled.again` holds, as (instance, event, reads).
    fn again(unhandled: &Unhandled) -> Vec<(String, Value, u8)> {
        let again = unhandled.again.iter();
        again
            .map(|(i, d)| (i.to_string(), (*d.event).clone(), d.reads))
            .collect()
    }

    #[test]
    fn events_go_again_once_if_read_and_as_often_as_needed_if_not() {
        let in_flight = InFlight::default();
        let mut sent = Vec::new();
        for id in 1..=4 {
            let instance = if id % 2 == 0 { "a" } else { "b" };
            let admitted = in_flight.admit(instance, event(id), |e| {
                sent.push(e.clone());
                id
            });
            admitted.expect("admitted");
        }
        assert_eq!(sent.len(), 4);
        assert_eq!(in_flight.answered(1).as_deref(), Some("b"));
        assert_eq!(in_flight.answered(1), None);
        in_flight.read(2);
        let unhandled = in_flight.close();
        assert!(unhandled.dropped.is_empty());
        assert_eq!(
            again(&unhandled),
            [
                ("a".into(), json!(2), 1),
                ("b".into(), json!(3), 0),
                ("a".into(), json!(4), 0)
            ]
        );
        assert!(matches!(
            in_flight.admit("a", event(5), |_| 5),
            Err(Refused::Gone(_))
        ));

        // The next worker reads all of them and dies too: the one read twice is dropped.
        let next = InFlight::default();
        for (id, (instance, delivery)) in (10..).zip(unhandled.again) {
            next.admit(&instance, delivery, |_| id).expect("admitted");
        }
        next.read(12);
        let unhandled = next.close();
        assert_eq!(unhandled.dropped, BTreeMap::from([(Arc::from("a"), 1)]));
        assert_eq!(
            again(&unhandled),
            [("b".into(), json!(3), 1), ("a".into(), json!(4), 1)]
        );
    }

    #[test]
    fn a_worker_gets_a_bounded_number_of_events() {
        let in_flight = InFlight::default();
        for id in 0..MAX_EVENTS_IN_FLIGHT as u64 {
            in_flight.admit("a", event(id), |_| id).expect("admitted");
        }
        assert!(matches!(
            in_flight.admit("a", event(0), |_| u64::MAX),
            Err(Refused::Full)
        ));
        in_flight.answered(0);
        assert!(in_flight.admit("a", event(0), |_| u64::MAX).is_ok());
    }
}
