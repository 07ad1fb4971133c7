//! One bot account at run time: its stored row, its Matrix client and sync loop, its status.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use matrix_sdk::Client;
use matrix_sdk::config::SyncSettings;
use matrix_sdk::room::Room;
use matrix_sdk::ruma::OwnedRoomId;
use matrix_sdk::ruma::api::client::filter::FilterDefinition;
use matrix_sdk::ruma::events::AnySyncTimelineEvent;
use matrix_sdk::ruma::events::room::member::{MembershipState, StrippedRoomMemberEvent};
use matrix_sdk::ruma::events::room::tombstone::OriginalSyncRoomTombstoneEvent;
use matrix_sdk::ruma::presence::PresenceState;
use matrix_sdk::ruma::serde::Raw;
use tokio::sync::{Semaphore, broadcast};
use tokio::task::JoinHandle;

use super::fanout::Fanout;
use super::session::{self, BotStores};
use super::store::{self, ClientRecord};
use super::{AccessDetails, ClientView};
use crate::db::Database;
use crate::sync::unix_millis;

/// What a bot sees happen, for the plugin runtimes: decrypted timeline events and invites.
#[derive(Debug, Clone)]
pub enum BotEvent {
    /// A room event as it arrived in sync, decrypted if it was encrypted.
    Timeline {
        room_id: OwnedRoomId,
        event: Raw<AnySyncTimelineEvent>,
    },
    /// The bot was invited to a room.
    Invite {
        room_id: OwnedRoomId,
        sender: String,
    },
}

/// A bot's event as every subscriber gets it: shared, with what the first subscriber makes of it
/// kept for the others (each instance on the bot reads the event as the same JSON, so that is
/// made once per bot rather than once per instance).
#[derive(Debug)]
pub struct SharedEvent {
    pub event: BotEvent,
    derived: std::sync::OnceLock<Option<Arc<serde_json::Value>>>,
}

impl SharedEvent {
    fn new(event: BotEvent) -> Arc<Self> {
        Arc::new(Self {
            event,
            derived: std::sync::OnceLock::new(),
        })
    }

    /// `derive(event)`, made by the first subscriber that asks; subscribers must all derive the
    /// same way.
    pub fn derived(
        &self,
        derive: impl FnOnce(&BotEvent) -> Option<serde_json::Value>,
    ) -> Option<Arc<serde_json::Value>> {
        self.derived
            .get_or_init(|| derive(&self.event).map(Arc::new))
            .clone()
    }
}

/// tracing targets are static; the client's ID is the `client` field, and log viewers name the
/// logger `maubot.client.<id>` from it.
const LOG: &str = "maubot.client";

/// Sync backoff after errors: 5 s doubling to 25 s. maubot doubles up to 320 s, which leaves
/// a bot deaf for minutes after its homeserver is back; a bot here is back within 25 s of it,
/// and the jitter (see [`retry_wait`]) keeps many bots from returning in lock-step.
const BACKOFF_START: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(25);

/// A first sync waits up to this long, at random, before it queues for one of the shared
/// permits, so that bots started together do not reach the homeserver in lock-step.
const FIRST_SYNC_JITTER: Duration = Duration::from_millis(250);

/// Timeline events per room in a sync that resumes from a stored position. The homeserver's
/// default (10 for Synapse) cuts off what was said to a bot while it could not sync for a
/// moment (a homeserver outage, a restart), and a cut-off command is never answered.
const RESUMED_TIMELINE_LIMIT: u32 = 100;

fn resumed_sync_filter() -> FilterDefinition {
    let mut filter = FilterDefinition::with_lazy_loading();
    filter.room.timeline.limit = Some(RESUMED_TIMELINE_LIMIT.into());
    filter
}

/// Says which rooms' timelines came cut off (`limited`): events in the gap never reach the
/// plugins.
fn warn_of_gaps(client: &str, response: &matrix_sdk::sync::SyncResponse) {
    for (room, update) in &response.rooms.joined {
        // A full-state sync says `limited` for every room; only a full page means a gap.
        if update.timeline.limited
            && update.timeline.events.len() >= RESUMED_TIMELINE_LIMIT as usize
        {
            tracing::warn!(
                target: LOG, client, room = %room,
                "Events were missed: more than {RESUMED_TIMELINE_LIMIT} arrived in the room while the bot did not sync"
            );
        }
    }
}

/// A wait of between 80 % and 100 % of `backoff`, at random.
fn retry_wait(backoff: Duration) -> Duration {
    backoff.mul_f64(0.8 + 0.2 * rand::random::<f64>())
}

/// Events older than this are not passed on after a restart (see `forward_events`).
pub const MAX_EVENT_AGE: Duration = Duration::from_secs(5 * 60);

/// A bot account.
#[derive(Debug)]
pub struct Bot {
    record: Mutex<ClientRecord>,
    running: tokio::sync::Mutex<Option<Running>>,
    started: AtomicBool,
    sync_ok: Arc<AtomicBool>,
    /// The last sync's (or start's) error while it lasts, for the view.
    sync_error: Mutex<Option<String>>,
    /// Whether the first sync since the start has completed: room state lives in memory and is
    /// rebuilt by it, so until then the bot does not know its rooms.
    synced: tokio::sync::watch::Sender<bool>,
    /// Whether sync results are live (passed on) rather than the history of a first sync.
    live: Arc<AtomicBool>,
    profile: Mutex<RemoteProfile>,
    fingerprint: Mutex<Option<String>>,
    trust_state: Mutex<Option<String>>,
    events: Fanout,
    db: Database,
    http: reqwest::Client,
    stores: BotStores,
    /// Shared by all bots: how many first syncs (full state) run at once.
    first_syncs: Arc<Semaphore>,
}

#[derive(Debug, Default, Clone)]
struct RemoteProfile {
    displayname: Option<String>,
    avatar_url: Option<String>,
}

#[derive(Debug)]
struct Running {
    client: Client,
    sync: Option<JoinHandle<()>>,
}

impl Bot {
    pub(super) fn new(
        record: ClientRecord,
        db: Database,
        http: reqwest::Client,
        stores: BotStores,
        first_syncs: Arc<Semaphore>,
    ) -> Arc<Bot> {
        Arc::new(Bot {
            record: Mutex::new(record),
            running: tokio::sync::Mutex::new(None),
            started: AtomicBool::new(false),
            sync_ok: Arc::new(AtomicBool::new(false)),
            sync_error: Mutex::new(None),
            synced: tokio::sync::watch::Sender::new(false),
            live: Arc::new(AtomicBool::new(false)),
            profile: Mutex::new(RemoteProfile::default()),
            fingerprint: Mutex::new(None),
            trust_state: Mutex::new(None),
            events: Fanout::default(),
            db,
            http,
            stores,
            first_syncs,
        })
    }

    pub fn id(&self) -> String {
        self.record().id
    }

    /// A copy of the stored row.
    pub fn record(&self) -> ClientRecord {
        self.record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(super) fn set_record(&self, record: ClientRecord) {
        *self.record.lock().unwrap_or_else(|p| p.into_inner()) = record;
    }

    /// The bot's events, for plugin runtimes. Each subscriber gets every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<SharedEvent>> {
        self.events.subscribe()
    }

    pub fn is_started(&self) -> bool {
        self.started.load(Ordering::SeqCst)
    }

    /// Waits up to `limit` for the first sync since the start to complete; whether it has.
    pub async fn wait_until_synced(&self, limit: Duration) -> bool {
        let mut synced = self.synced.subscribe();
        tokio::time::timeout(limit, synced.wait_for(|synced| *synced))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The Matrix client while the bot is started.
    pub async fn matrix(&self) -> Option<Client> {
        self.running.lock().await.as_ref().map(|r| r.client.clone())
    }

    /// The API's view of this client.
    pub fn view(&self) -> ClientView {
        let record = self.record();
        let profile = self
            .profile
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        ClientView {
            id: record.id,
            homeserver: record.homeserver,
            access_token: record.access_token.expose().to_owned(),
            device_id: record.device_id,
            fingerprint: self
                .fingerprint
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            enabled: record.enabled,
            started: self.is_started(),
            sync: record.sync,
            sync_ok: self.sync_ok.load(Ordering::SeqCst),
            sync_error: self
                .sync_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            autojoin: record.autojoin,
            online: record.online,
            displayname: record.displayname,
            avatar_url: record.avatar_url,
            remote_displayname: profile.displayname,
            remote_avatar_url: profile.avatar_url,
            trust_state: self
                .trust_state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    /// Connects, applies the profile, starts syncing. Problems are logged, never raised (as in
    /// maubot); an invalid token disables the client.
    pub async fn start(self: &Arc<Self>) {
        let record = self.record();
        if !record.enabled || self.is_started() {
            return;
        }
        let mut running = self.running.lock().await;
        let details = AccessDetails {
            homeserver: record.homeserver.clone(),
            access_token: record.access_token.clone(),
            device_id: record.device_id.clone(),
        };
        let client = match session::build(&self.http, &self.stores, &record.id, &details).await {
            Ok(client) => client,
            Err(super::Error::BadAccessToken) => {
                tracing::error!(target: LOG, client = %record.id, "Invalid token, disabling client");
                self.set_sync_error(Some("Invalid access token: the client was disabled".into()));
                self.disable().await;
                return;
            }
            Err(err) => {
                tracing::error!(target: LOG, client = %record.id, error = %err, "Failed to start client");
                self.set_sync_error(Some(format!("Failed to start: {err}")));
                return;
            }
        };
        self.set_sync_error(None);
        if !record.device_id.is_empty() {
            let key = client.encryption().ed25519_key().await;
            *self.fingerprint.lock().unwrap_or_else(|p| p.into_inner()) =
                key.as_deref().map(fingerprint);
        }
        self.refresh_trust_state(&client).await;
        self.apply_profile(&client, &record).await;
        if record.autojoin {
            client.add_event_handler(autojoin);
        }
        client.add_event_handler(follow_tombstone);
        self.forward_events(&client);
        let sync = Some(if record.sync {
            self.spawn_sync(client.clone())
        } else {
            self.spawn_room_state(client.clone())
        });
        *running = Some(Running { client, sync });
        self.started.store(true, Ordering::SeqCst);
        tracing::info!(target: LOG, client = %record.id, "Client started");
    }

    fn set_sync_error(&self, error: Option<String>) {
        *self.sync_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }

    async fn refresh_trust_state(&self, client: &Client) {
        let state = super::crypto::trust_state(client).await;
        *self.trust_state.lock().unwrap_or_else(|p| p.into_inner()) = state;
    }

    async fn running_client(&self) -> super::Result<Client> {
        self.matrix()
            .await
            .ok_or_else(|| super::Error::Crypto("the client is not running".into()))
    }

    /// `POST /client/{id}/generate_recovery_key`: new cross-signing keys and their recovery key.
    pub async fn generate_recovery_key(&self) -> super::Result<String> {
        let client = self.running_client().await?;
        let key = super::crypto::generate_recovery_key(&client).await?;
        self.refresh_trust_state(&client).await;
        Ok(key)
    }

    /// `POST /client/{id}/verify`: trusts this device through the account's recovery key.
    pub async fn verify(&self, recovery_key: &str) -> super::Result<()> {
        let client = self.running_client().await?;
        super::crypto::verify(&client, recovery_key).await?;
        self.refresh_trust_state(&client).await;
        Ok(())
    }

    /// Stops syncing and drops the Matrix client.
    pub async fn stop(&self) {
        let mut running = self.running.lock().await;
        if let Some(Running {
            sync: Some(sync), ..
        }) = running.take()
        {
            sync.abort();
        }
        self.started.store(false, Ordering::SeqCst);
        self.sync_ok.store(false, Ordering::SeqCst);
        self.synced.send_replace(false);
        self.set_sync_error(None);
    }

    async fn disable(&self) {
        let mut record = self.record();
        record.enabled = false;
        self.set_record(record.clone());
        if let Err(err) = store::save(&self.db, &record).await {
            tracing::error!(target: LOG, client = %record.id, error = %err, "could not save the disabled client");
        }
    }

    /// Sets the display name and avatar the record asks for, each only where the homeserver has
    /// another (one profile request for a bot whose profile is as it should be: setting the
    /// display name makes the homeserver send a member event into every room of the bot, and a
    /// thousand bots starting would otherwise send thousands).
    async fn apply_profile(&self, client: &Client, record: &ClientRecord) {
        let account = client.account();
        let mut profile = match account.fetch_user_profile().await {
            Ok(fetched) => {
                let field = |name: &str| {
                    fetched
                        .get(name)
                        .and_then(|v| v.as_str())
                        .map(str::to_owned)
                };
                RemoteProfile {
                    displayname: field("displayname"),
                    avatar_url: field("avatar_url"),
                }
            }
            Err(err) => {
                tracing::debug!(target: LOG, client = %record.id, error = %err, "could not read the profile");
                RemoteProfile::default()
            }
        };
        if record.displayname != "disable"
            && profile.displayname.as_deref() != Some(record.displayname.as_str())
        {
            match account.set_display_name(Some(&record.displayname)).await {
                Ok(()) => profile.displayname = Some(record.displayname.clone()),
                Err(err) => {
                    tracing::warn!(target: LOG, client = %record.id, error = %err, "could not set the display name")
                }
            }
        }
        if record.avatar_url != "disable"
            && profile.avatar_url.as_deref() != Some(record.avatar_url.as_str())
        {
            match <&matrix_sdk::ruma::MxcUri>::from(record.avatar_url.as_str()) {
                uri if uri.is_valid() => match account.set_avatar_url(Some(uri)).await {
                    Ok(()) => profile.avatar_url = Some(record.avatar_url.clone()),
                    Err(err) => {
                        tracing::warn!(target: LOG, client = %record.id, error = %err, "could not set the avatar")
                    }
                },
                _ => {
                    tracing::warn!(target: LOG, client = %record.id, "avatar_url is not an mxc:// URI")
                }
            }
        }
        *self.profile.lock().unwrap_or_else(|p| p.into_inner()) = profile;
    }

    /// Reads the profile back from the homeserver (`remote_displayname`, `remote_avatar_url`).
    pub async fn refresh_profile(&self, client: &Client) {
        let account = client.account();
        let displayname = account.get_display_name().await.ok().flatten();
        let avatar_url = account
            .get_avatar_url()
            .await
            .ok()
            .flatten()
            .map(|u| u.to_string());
        *self.profile.lock().unwrap_or_else(|p| p.into_inner()) = RemoteProfile {
            displayname,
            avatar_url,
        };
    }

    /// Passes room events and invites to subscribers. Not the history of a first sync from
    /// scratch, and not events older than [`MAX_EVENT_AGE`]: a bot back from downtime answers
    /// what was said to it just now, never a backlog of old commands.
    fn forward_events(&self, client: &Client) {
        let events = self.events.clone();
        let live = Arc::clone(&self.live);
        client.add_event_handler(move |event: Raw<AnySyncTimelineEvent>, room: Room| {
            let events = events.clone();
            let live = live.load(Ordering::SeqCst);
            async move {
                let sent_at = event
                    .get_field::<u64>("origin_server_ts")
                    .ok()
                    .flatten()
                    .unwrap_or(0);
                if live && unix_millis().saturating_sub(sent_at) <= MAX_EVENT_AGE.as_millis() as u64
                {
                    events.send(SharedEvent::new(BotEvent::Timeline {
                        room_id: room.room_id().to_owned(),
                        event,
                    }));
                }
            }
        });
        let events = self.events.clone();
        client.add_event_handler(
            move |event: StrippedRoomMemberEvent, room: Room, client: Client| {
                let events = events.clone();
                async move {
                    let own = client.user_id().is_some_and(|id| id == event.state_key);
                    if own && event.content.membership == MembershipState::Invite {
                        events.send(SharedEvent::new(BotEvent::Invite {
                            room_id: room.room_id().to_owned(),
                            sender: event.sender.to_string(),
                        }));
                    }
                }
            },
        );
    }

    /// For a bot that does not sync: one sync for the state of its rooms, which lives in memory
    /// only, so that it can send (encrypted where it must). Its events are not passed on and its
    /// sync position is not moved, as a bot that does not sync answers nothing.
    fn spawn_room_state(self: &Arc<Self>, client: Client) -> JoinHandle<()> {
        let bot = Arc::clone(self);
        tokio::spawn(async move {
            bot.live.store(false, Ordering::SeqCst);
            let mut backoff = BACKOFF_START;
            loop {
                let settings = SyncSettings::default()
                    .timeout(Duration::ZERO)
                    .full_state(true)
                    .set_presence(PresenceState::Offline)
                    .filter(FilterDefinition::with_lazy_loading().into());
                let permit = bot.first_sync_permit().await;
                let result = client.sync_once(settings).await;
                drop(permit);
                match result {
                    Ok(_) => {
                        bot.synced.send_replace(true);
                        return;
                    }
                    Err(err) => {
                        let wait = retry_wait(backoff);
                        tracing::warn!(target: LOG, client = %bot.id(), error = %err, retry_in = ?wait, "could not load the state of the bot's rooms");
                        tokio::time::sleep(wait).await;
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                }
            }
        })
    }

    /// One of the shared first-sync permits, after a random wait of up to
    /// [`FIRST_SYNC_JITTER`].
    async fn first_sync_permit(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        let jitter = FIRST_SYNC_JITTER.mul_f64(rand::random::<f64>());
        tokio::time::sleep(jitter).await;
        // The semaphore is never closed, so a permit always comes.
        self.first_syncs.acquire().await.ok()
    }

    fn spawn_sync(self: &Arc<Self>, client: Client) -> JoinHandle<()> {
        let bot = Arc::clone(self);
        tokio::spawn(async move { bot.sync_loop(client).await })
    }

    /// Long-polls `/sync` until stopped: `sync_ok` mirrors the last result, errors back off from
    /// 5 s to 25 s, an invalid token disables the client. The sync token is stored after each
    /// sync, so a restart resumes where it stopped; the first sync after a start asks for the
    /// full state of every room, as room state is kept in memory only.
    async fn sync_loop(self: Arc<Self>, client: Client) {
        let mut backoff = BACKOFF_START;
        let mut first = true;
        let counters = crate::metrics::bot(&self.id());
        // Resuming from a stored position is live from the start; a first sync is history.
        self.live
            .store(!self.record().next_batch.is_empty(), Ordering::SeqCst);
        loop {
            let record = self.record();
            let presence = if record.online {
                PresenceState::Online
            } else {
                PresenceState::Offline
            };
            // After a failure the homeserver may be back with nothing new to say: a long poll
            // would keep `sync_ok` false for another 30 s, so the first try answers at once.
            let long_poll = if self.sync_ok.load(Ordering::SeqCst) {
                Duration::from_secs(30)
            } else {
                Duration::ZERO
            };
            let mut settings = SyncSettings::default()
                .timeout(long_poll)
                .set_presence(presence)
                .filter(FilterDefinition::with_lazy_loading().into());
            if !record.next_batch.is_empty() {
                settings = settings
                    .token(record.next_batch.clone())
                    .full_state(first)
                    .filter(resumed_sync_filter().into());
            }
            let syncing = std::time::Instant::now();
            let result = if first {
                // The homeserver answers a full-state sync at once (without the long poll),
                // and builds every room's state for it: the costly one, taken a few at a time.
                let _permit = self.first_sync_permit().await;
                client.sync_once(settings.timeout(Duration::ZERO)).await
            } else {
                client.sync_once(settings).await
            };
            counters.synced(syncing.elapsed(), result.is_ok());
            match result {
                Ok(response) => {
                    first = false;
                    if self.live.load(Ordering::SeqCst) {
                        warn_of_gaps(&self.id(), &response);
                    }
                    self.sync_ok.store(true, Ordering::SeqCst);
                    self.set_sync_error(None);
                    self.live.store(true, Ordering::SeqCst);
                    backoff = BACKOFF_START;
                    self.record
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .next_batch = response.next_batch.clone();
                    if let Err(err) =
                        store::save_next_batch(&self.db, &self.id(), &response.next_batch).await
                    {
                        tracing::warn!(target: LOG, client = %self.id(), error = %err, "could not store the sync token");
                    }
                    self.synced.send_replace(true);
                }
                Err(err) if is_unknown_token(&err) => {
                    tracing::error!(target: LOG, client = %self.id(), "Invalid token during sync, disabling client");
                    self.sync_ok.store(false, Ordering::SeqCst);
                    self.set_sync_error(Some(
                        "Invalid access token: the client was disabled".into(),
                    ));
                    self.disable().await;
                    return;
                }
                Err(err) => {
                    self.sync_ok.store(false, Ordering::SeqCst);
                    self.set_sync_error(Some(err.to_string()));
                    let wait = retry_wait(backoff);
                    tracing::warn!(target: LOG, client = %self.id(), error = %err, retry_in = ?wait, "sync failed");
                    tokio::time::sleep(wait).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

fn is_unknown_token(err: &matrix_sdk::Error) -> bool {
    matches!(
        err.client_api_error_kind(),
        Some(matrix_sdk::ruma::api::error::ErrorKind::UnknownToken(_))
    )
}

/// Joins rooms the bot is invited to.
async fn autojoin(event: StrippedRoomMemberEvent, room: Room, client: Client) {
    let own = client.user_id().is_some_and(|id| id == event.state_key);
    if !own || event.content.membership != MembershipState::Invite {
        return;
    }
    // Synapse may not have finished processing the invite; retry briefly.
    for attempt in 0..5u32 {
        match room.join().await {
            Ok(()) => {
                tracing::info!(target: LOG, room_id = %room.room_id(), "Joined room after invite");
                return;
            }
            Err(err) => {
                tracing::warn!(target: LOG, room_id = %room.room_id(), error = %err, attempt, "could not join");
                tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
            }
        }
    }
}

/// Follows a room upgrade: joins the replacement room (through the upgrader's server), then leaves
/// it again unless the upgrader may invite there, so that nobody can pull the bot into a room by
/// pointing a tombstone at it.
async fn follow_tombstone(event: OriginalSyncRoomTombstoneEvent, room: Room, client: Client) {
    let replacement = event.content.replacement_room.clone();
    if client
        .get_room(&replacement)
        .is_some_and(|r| r.state() == matrix_sdk::RoomState::Joined)
    {
        return;
    }
    let via = vec![event.sender.server_name().to_owned()];
    let new_room = match client
        .join_room_by_id_or_alias(
            <&matrix_sdk::ruma::RoomOrAliasId>::from(&*replacement),
            &via,
        )
        .await
    {
        Ok(new_room) => new_room,
        Err(err) => {
            tracing::warn!(target: LOG, old = %room.room_id(), new = %replacement, error = %err, "could not follow a room upgrade");
            return;
        }
    };
    // The new room's state arrives with the next sync.
    for _ in 0..30 {
        if let Ok(levels) = new_room.power_levels().await {
            if levels.for_user(&event.sender) < levels.invite {
                tracing::warn!(target: LOG, new = %replacement, sender = %event.sender, "room upgrader may not invite there; leaving");
                let _ = new_room.leave().await;
            } else {
                tracing::info!(target: LOG, old = %room.room_id(), new = %replacement, "followed a room upgrade");
            }
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// maubot's fingerprint format: the Ed25519 key in groups of four characters.
fn fingerprint(key: &str) -> String {
    key.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
