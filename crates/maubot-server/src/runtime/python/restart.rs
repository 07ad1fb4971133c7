//! How events reach a plugin's worker, and what happens when the worker dies: its instances are
//! reported failed and started again in a new worker with backoff, and the events the old
//! worker had not finished go to the new one first (see `in_flight` for how often), so that a
//! crash or a hang loses no event.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::in_flight::{Delivery, MAX_EVENTS_IN_FLIGHT, Refused};
use super::protocol::ToWorker;
use super::worker::Worker;
use super::{BACKOFF_MAX, BACKOFF_START, HEALTHY_AFTER, LOG, PythonPlugin, seconds};
use crate::runtime::InstanceStart;
use crate::sync::lock;

/// An instance of a worker that died, waiting for the next one.
#[derive(Debug)]
pub struct Restart {
    pub start: InstanceStart,
    /// Events for it, oldest first: those the dead worker had not finished, then those that
    /// arrived before the server knew (later ones wait in the instance's pump).
    events: VecDeque<Delivery>,
}

impl PythonPlugin {
    /// Hands an event to the instance's worker; for an instance whose worker died, keeps it for
    /// the next worker.
    pub(super) fn hand_over(&self, instance_id: &str, delivery: Delivery) {
        // The worker as it is, also one that just died: until its leftovers are taken (see
        // `worker_died`), it keeps the event as unread.
        let worker = lock(&self.worker).clone();
        let delivery = match worker {
            Some(worker) if lock(&self.running).contains_key(instance_id) => {
                match worker.deliver(instance_id, delivery) {
                    Ok(()) => return,
                    Err(Refused::Full) => return self.dropped(instance_id, 1),
                    Err(Refused::Gone(delivery)) => delivery,
                }
            }
            _ => delivery,
        };
        if let Some(restart) = lock(&self.restarting).get_mut(instance_id) {
            if restart.events.len() < MAX_EVENTS_IN_FLIGHT {
                restart.events.push_back(delivery);
            } else {
                self.dropped(instance_id, 1);
            }
        }
    }

    fn dropped(&self, instance_id: &str, count: u64) {
        crate::metrics::instance(instance_id)
            .dropped
            .fetch_add(count, Ordering::Relaxed);
        let before = self.dropped.fetch_add(count, Ordering::Relaxed);
        let dropped = before + count;
        if before == 0 || before / 1000 != dropped / 1000 {
            tracing::warn!(
                target: LOG, plugin = %self.id(), instance = %instance_id, dropped,
                limit = MAX_EVENTS_IN_FLIGHT,
                "Events are dropped: the plugin's worker has not finished the ones it has"
            );
        }
    }

    /// Liveness checks, and the restart after a crash.
    pub(super) fn spawn_watchers(&self, worker: &Arc<Worker>) {
        let interval = seconds(self.settings.ping_interval);
        let timeout = seconds(self.settings.ping_timeout);
        let pinged = Arc::downgrade(worker);
        let unloaded = self.unloaded.clone();
        self.watchers
            .spawn(unloaded.run_until_cancelled_owned(async move {
                loop {
                    tokio::time::sleep(interval).await;
                    let Some(worker) = pinged.upgrade().filter(|w| !w.is_dead()) else {
                        return;
                    };
                    let _ = worker
                        .request_within(&ToWorker::Ping {}, timeout, "A liveness check")
                        .await;
                }
            }));
        let watched = Arc::clone(worker);
        let plugin = self.this.clone();
        let spawned = Instant::now();
        let unloaded = self.unloaded.clone();
        self.watchers
            .spawn(unloaded.run_until_cancelled_owned(async move {
                let reason = watched.died().await;
                if let Some(plugin) = plugin.upgrade() {
                    plugin
                        .worker_died(&watched, reason, spawned.elapsed())
                        .await;
                }
            }));
    }

    async fn worker_died(&self, worker: &Arc<Worker>, reason: String, lived: Duration) {
        // A worker let go or replaced before it ended: its instances are not its any more.
        if !lock(&self.worker)
            .as_ref()
            .is_some_and(|w| Arc::ptr_eq(w, worker))
        {
            return;
        }
        lock(&self.admitted).clear();
        if reason.is_empty() {
            self.let_go(worker);
            return;
        }
        // From here on an event for these instances is kept for the next worker: under the
        // lock of `running`, so that `hand_over` finds each instance in one place or the other.
        let failed: Vec<String> = {
            let mut running = lock(&self.running);
            let mut restarting = lock(&self.restarting);
            std::mem::take(&mut *running)
                .into_iter()
                .map(|(id, start)| {
                    restarting.insert(
                        id.clone(),
                        Restart {
                            start,
                            events: VecDeque::new(),
                        },
                    );
                    id
                })
                .collect()
        };
        self.let_go(worker);
        if failed.is_empty() {
            return;
        }
        crate::metrics::worker_restarted(self.id());
        let reason = format!("The plugin's Python worker failed: {reason}");
        for id in &failed {
            self.host.instance_failed(id, reason.clone());
        }
        self.keep_unhandled(worker).await;
        let mut delay = {
            let mut ops = self.ops.lock().await;
            let delay = match ops.next {
                Some(previous) if lived < HEALTHY_AFTER => (previous * 2).min(BACKOFF_MAX),
                _ => BACKOFF_START,
            };
            ops.next = Some(delay);
            delay
        };
        loop {
            tracing::info!(
                target: LOG, plugin = %self.id(), seconds = delay.as_secs(),
                "Restarting the Python worker after a failure"
            );
            tokio::time::sleep(delay).await;
            let _ops = self.ops.lock().await;
            // What is still wanted: stops and new starts through the API took theirs out.
            if lock(&self.restarting).is_empty() {
                return;
            }
            // The current worker if a start through the API brought one up meanwhile.
            let worker = match self.worker().await {
                Ok(worker) => worker,
                Err(err) => {
                    tracing::warn!(target: LOG, plugin = %self.id(), error = %err, "Could not restart the Python worker");
                    delay = (delay * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            let wanted = std::mem::take(&mut *lock(&self.restarting));
            for (id, restart) in wanted {
                match self.start_in(&worker, restart.start).await {
                    Ok(started) => {
                        // Before the pump hands on what it held since the failure: these are
                        // older.
                        for delivery in restart.events {
                            self.hand_over(&id, delivery);
                        }
                        self.host.instance_recovered(&id, started);
                    }
                    Err(err) => self.host.instance_gave_up(&id, err),
                }
            }
            return;
        }
    }

    /// Clears the plugin's worker if it still is `worker`.
    fn let_go(&self, worker: &Arc<Worker>) {
        let mut current = lock(&self.worker);
        if current.as_ref().is_some_and(|w| Arc::ptr_eq(w, worker)) {
            *current = None;
        }
    }

    /// Keeps what the dead `worker` had not finished for the next worker, in front of what
    /// arrived since.
    async fn keep_unhandled(&self, worker: &Worker) {
        let unhandled = worker.unhandled_events().await;
        let mut restarting = lock(&self.restarting);
        for (instance, events) in &unhandled.dropped {
            crate::metrics::instance(instance)
                .dropped
                .fetch_add(*events as u64, Ordering::Relaxed);
            tracing::warn!(
                target: LOG, plugin = %self.id(), instance = %instance, events,
                "Events are dropped: they were being handled each time two workers in a row died"
            );
        }
        for (instance, delivery) in unhandled.again.into_iter().rev() {
            if let Some(restart) = restarting.get_mut(&*instance) {
                restart.events.push_front(delivery);
            }
        }
        for (id, restart) in restarting.iter_mut() {
            let over = restart.events.len().saturating_sub(MAX_EVENTS_IN_FLIGHT);
            if over > 0 {
                restart.events.truncate(MAX_EVENTS_IN_FLIGHT);
                self.dropped(id, over as u64);
            }
        }
    }
}
