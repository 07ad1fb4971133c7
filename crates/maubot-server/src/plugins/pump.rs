//! An instance's pump: the task that hands its bot's events to the runtime running it. While an
//! instance switches to new code (its plugin is replaced) or its runtime brings it back after a
//! crash, the pump holds the events instead, and hands them on once the instance runs again, so
//! that none is lost in between.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

use serde_json::Value;
use tokio::task::JoinHandle;

use super::{LOG, TIMING, events};
use crate::client::Bot;
use crate::metrics::InstanceCounters;
use crate::runtime::LoadedPlugin;
use crate::sync::lock;

/// Events a held pump keeps; later ones are dropped (and logged).
const HELD_MAX: usize = 4096;

enum Target {
    Deliver(Arc<dyn LoadedPlugin>),
    /// The events kept, and how many were dropped beyond them.
    Hold(VecDeque<Arc<Value>>, u64),
}

/// A running pump; dropping it stops it.
pub struct Pump {
    instance_id: String,
    target: Arc<Mutex<Target>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Pump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pump")
            .field("instance_id", &self.instance_id)
            .field("held", &self.is_held())
            .finish_non_exhaustive()
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Pump {
    /// Hands every event of `bot` to `code` from now on.
    pub fn spawn(
        instance_id: &str,
        bot: Arc<Bot>,
        code: Arc<dyn LoadedPlugin>,
        last_event: Arc<EventClock>,
    ) -> Pump {
        let target = Arc::new(Mutex::new(Target::Deliver(code)));
        let mut events = bot.subscribe();
        let own = bot.id();
        let id = instance_id.to_owned();
        let pumped = Arc::clone(&target);
        let counters = crate::metrics::instance(instance_id);
        let task = tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) => {
                        if tracing::enabled!(target: TIMING, tracing::Level::DEBUG) {
                            last_event.mark();
                        }
                        if let Some(json) = event.derived(|e| events::to_json(e, &own)) {
                            pass(&id, &pumped, json, &counters);
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(target: LOG, instance = %id, missed, "The instance missed events: it is too slow");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Pump {
            instance_id: instance_id.to_owned(),
            target,
            task,
        }
    }

    /// Stops the pump and waits until its task has ended.
    pub async fn end(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }

    /// Keeps the events from now on instead of handing them on.
    pub fn hold(&self) {
        let mut target = lock(&self.target);
        if let Target::Deliver(_) = &*target {
            *target = Target::Hold(VecDeque::new(), 0);
        }
    }

    pub fn is_held(&self) -> bool {
        matches!(&*lock(&self.target), Target::Hold(..))
    }

    /// Hands what was held to `code`, in order, and every event after it.
    pub fn release_to(&self, code: Arc<dyn LoadedPlugin>) {
        let mut target = lock(&self.target);
        if let Target::Hold(held, _) =
            std::mem::replace(&mut *target, Target::Deliver(Arc::clone(&code)))
        {
            // Under the lock: no new event can overtake the held ones.
            crate::metrics::instance(&self.instance_id)
                .delivered
                .fetch_add(held.len() as u64, Ordering::Relaxed);
            for event in held {
                code.deliver(&self.instance_id, event);
            }
        }
    }
}

fn pass(instance_id: &str, target: &Mutex<Target>, event: Arc<Value>, counters: &InstanceCounters) {
    let code = match &mut *lock(target) {
        Target::Deliver(code) => Arc::clone(code),
        Target::Hold(held, dropped) => {
            if held.len() < HELD_MAX {
                held.push_back(event);
            } else {
                *dropped += 1;
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                if *dropped == 1 {
                    tracing::warn!(target: LOG, instance = %instance_id, "Events are dropped while the instance is not running: more than {HELD_MAX} arrived");
                }
            }
            return;
        }
    };
    counters.delivered.fetch_add(1, Ordering::Relaxed);
    code.deliver(instance_id, event);
}

/// A moment of an instance's events as nanoseconds since the first use (0: none yet), so that
/// the pump marks it without a lock or an allocation.
#[derive(Debug, Default)]
pub struct EventClock(AtomicU64);

static CLOCK_EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

impl EventClock {
    fn mark(&self) {
        let nanos = CLOCK_EPOCH.elapsed().as_nanos().max(1);
        self.0
            .store(u64::try_from(nanos).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Microseconds since the last mark, if there was one.
    pub fn micros_since(&self) -> Option<u64> {
        let marked = self.0.load(Ordering::Relaxed);
        let now = u64::try_from(CLOCK_EPOCH.elapsed().as_nanos()).unwrap_or(u64::MAX);
        (marked != 0).then(|| now.saturating_sub(marked) / 1000)
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use serde_json::json;

    use super::*;
    use crate::runtime::{InstanceStart, RuntimeError, Started, WebRequest, WebResponse};

    /// A runtime's plugin that only records what it is handed.
    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<Value>>);

    #[async_trait]
    impl LoadedPlugin for Recorder {
        async fn load(&self) -> Result<(), RuntimeError> {
            Ok(())
        }
        async fn start(&self, _: InstanceStart) -> Result<Started, RuntimeError> {
            Ok(Started::default())
        }
        async fn stop(&self, _: &str) {}
        fn deliver(&self, _: &str, event: Arc<Value>) {
            lock(&self.0).push((*event).clone());
        }
        async fn web_request(&self, _: &str, _: WebRequest) -> Result<WebResponse, RuntimeError> {
            Err(RuntimeError::Unavailable("none".into()))
        }
        async fn config_updated(&self, _: &str, _: &str) -> Result<(), RuntimeError> {
            Ok(())
        }
        async fn unload(&self) {}
    }

    #[tokio::test]
    async fn held_events_reach_the_new_code_in_order() {
        let old = Arc::new(Recorder::default());
        let new = Arc::new(Recorder::default());
        let counters = InstanceCounters::default();
        let pump = Pump {
            instance_id: "i".into(),
            target: Arc::new(Mutex::new(Target::Deliver(old.clone()))),
            task: tokio::spawn(async {}),
        };
        pass("i", &pump.target, Arc::new(json!(1)), &counters);
        pump.hold();
        assert!(pump.is_held());
        pass("i", &pump.target, Arc::new(json!(2)), &counters);
        pass("i", &pump.target, Arc::new(json!(3)), &counters);
        pump.release_to(new.clone());
        pass("i", &pump.target, Arc::new(json!(4)), &counters);
        assert_eq!(*lock(&old.0), [json!(1)]);
        assert_eq!(*lock(&new.0), [json!(2), json!(3), json!(4)]);
    }
}
