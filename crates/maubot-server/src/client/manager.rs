//! The client manager: every bot account of the database, started and stopped with the server,
//! changed through the API.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{RwLock, Semaphore};

use super::bot::Bot;
use super::session::{self, BotStores};
use super::store::{self, ClientRecord};
use super::{AccessDetails, ClientRequest, ClientView, Error, Result, Upserted};
use crate::db::Database;

/// How many bots start at once. Starting all of them at the same moment would make them sync in
/// lock-step (maubot issue #78); a few at a time spreads them out by their own start times
/// (token check, keys, profile) without making the last of many bots wait long.
const START_CONCURRENCY: usize = 8;
/// How many first syncs after a start run at once, over all bots: each asks the homeserver for
/// the full state of the bot's rooms (see `Bot::first_sync_permit`).
const FIRST_SYNC_CONCURRENCY: usize = 8;
/// A bot whose homeserver is slow to answer gives its start slot up after this long, so that it
/// does not hold up the others.
const START_SLOT_HOLD: Duration = Duration::from_secs(1);

/// All bot accounts.
#[derive(Debug)]
pub struct ClientManager {
    db: Database,
    http: reqwest::Client,
    stores: BotStores,
    first_syncs: Arc<Semaphore>,
    bots: RwLock<BTreeMap<String, Arc<Bot>>>,
    /// Serialises adding and removing bots, so that the map's lock is only ever held for a
    /// lookup or an insert, never across the database or a bot's network calls (plugins'
    /// Matrix requests look bots up all the time).
    changes: tokio::sync::Mutex<()>,
    /// The start-up tasks; stopping waits for them.
    tasks: tokio_util::task::TaskTracker,
}

impl ClientManager {
    /// Loads every stored client (without starting any).
    pub async fn load(db: Database, stores: BotStores) -> Result<Arc<Self>> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("maubot-rs/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Setup(e.to_string()))?;
        let manager = Arc::new(Self {
            db,
            http,
            stores,
            first_syncs: Arc::new(Semaphore::new(FIRST_SYNC_CONCURRENCY)),
            bots: RwLock::new(BTreeMap::new()),
            changes: tokio::sync::Mutex::new(()),
            tasks: tokio_util::task::TaskTracker::new(),
        });
        let records = store::all(&manager.db).await?;
        let mut bots = manager.bots.write().await;
        for record in records {
            let id = record.id.clone();
            bots.insert(id, manager.new_bot(record));
        }
        drop(bots);
        Ok(manager)
    }

    fn new_bot(&self, record: ClientRecord) -> Arc<Bot> {
        Bot::new(
            record,
            self.db.clone(),
            self.http.clone(),
            self.stores.clone(),
            Arc::clone(&self.first_syncs),
        )
    }

    /// The HTTP client all bots share.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Starts every enabled client, a few at a time.
    pub async fn start_all(&self) {
        let bots: Vec<Arc<Bot>> = self.bots.read().await.values().cloned().collect();
        let slots = Arc::new(Semaphore::new(START_CONCURRENCY));
        for bot in bots {
            let slots = Arc::clone(&slots);
            self.tasks.spawn(async move {
                // The semaphore is never closed, so a permit always comes.
                let slot = slots.acquire().await;
                let start = bot.start();
                tokio::pin!(start);
                if tokio::time::timeout(START_SLOT_HOLD, &mut start)
                    .await
                    .is_err()
                {
                    drop(slot);
                    start.await;
                }
            });
        }
    }

    pub async fn stop_all(&self) {
        // Starts still under way finish first: a bot started after its stop would sync on.
        self.tasks.close();
        self.tasks.wait().await;
        let bots: Vec<Arc<Bot>> = self.bots.read().await.values().cloned().collect();
        for bot in bots {
            bot.stop().await;
        }
    }

    pub async fn get(&self, id: &str) -> Option<Arc<Bot>> {
        self.bots.read().await.get(id).cloned()
    }

    pub async fn views(&self) -> Vec<ClientView> {
        self.bots
            .read()
            .await
            .values()
            .map(|bot| bot.view())
            .collect()
    }

    /// Creates a client from a request, checking the token with the homeserver. `expected_id`
    /// (from `PUT /client/{id}`) must match the token's user; without it (`POST /client/new`)
    /// an existing client for the token's user is a conflict.
    pub async fn create(
        &self,
        request: ClientRequest,
        expected_id: Option<&str>,
    ) -> Result<ClientView> {
        let (homeserver, access_token) = match (request.homeserver, request.access_token) {
            (Some(hs), Some(token)) if !hs.is_empty() && !token.is_empty() => (hs, token),
            _ => {
                return Err(Error::InvalidRequest(
                    "homeserver and access_token are required".into(),
                ));
            }
        };
        let details = AccessDetails {
            homeserver,
            access_token,
            device_id: request.device_id.unwrap_or_default(),
        };
        let (user_id, device_id) = session::whoami(&self.http, &details).await?;
        if let Some(expected) = expected_id
            && expected != user_id
        {
            return Err(Error::UserMismatch(user_id));
        }
        check_device(&details.device_id, device_id.as_deref())?;
        let record = ClientRecord {
            id: user_id,
            homeserver: details.homeserver,
            access_token: details.access_token,
            device_id: details.device_id,
            enabled: request.enabled.unwrap_or(true),
            next_batch: String::new(),
            filter_id: String::new(),
            sync: request.sync.unwrap_or(true),
            autojoin: request.autojoin.unwrap_or(true),
            online: request.online.unwrap_or(true),
            displayname: request.displayname.unwrap_or_else(|| "disable".into()),
            avatar_url: request.avatar_url.unwrap_or_else(|| "disable".into()),
        };
        let bot = {
            let _change = self.changes.lock().await;
            if self.bots.read().await.contains_key(&record.id) {
                return Err(Error::UserExists);
            }
            store::save(&self.db, &record).await?;
            crate::fault::point("client.create.row_saved");
            let bot = self.new_bot(record);
            self.bots.write().await.insert(bot.id(), Arc::clone(&bot));
            bot
        };
        bot.start().await;
        Ok(bot.view())
    }

    /// Applies a `PUT /client/{id}` to an existing client, in maubot's order: access details,
    /// avatar, display name, `started`, `enabled`, `autojoin`, `online`, `sync`; then saves.
    pub async fn update(&self, id: &str, request: ClientRequest) -> Result<ClientView> {
        let bot = self.get(id).await.ok_or(Error::NotFound)?;
        let mut record = bot.record();
        let mut restart = false;
        if request.access_token.is_some() || request.homeserver.is_some() {
            let details = AccessDetails {
                homeserver: request
                    .homeserver
                    .clone()
                    .unwrap_or_else(|| record.homeserver.clone()),
                access_token: request
                    .access_token
                    .clone()
                    .unwrap_or_else(|| record.access_token.clone()),
                device_id: request
                    .device_id
                    .clone()
                    .unwrap_or_else(|| record.device_id.clone()),
            };
            let changed = details.homeserver != record.homeserver
                || details.access_token != record.access_token
                || details.device_id != record.device_id;
            if changed {
                let (user_id, device_id) = session::whoami(&self.http, &details).await?;
                if user_id != record.id {
                    return Err(Error::UserMismatch(user_id));
                }
                check_device(&details.device_id, device_id.as_deref())?;
                record.homeserver = details.homeserver;
                record.access_token = details.access_token;
                record.device_id = details.device_id;
                restart = true;
            }
        }
        for (field, value) in [
            (&mut record.avatar_url, request.avatar_url),
            (&mut record.displayname, request.displayname),
        ] {
            if let Some(value) = value
                && *field != value
            {
                *field = value;
                restart = true;
            }
        }
        if let Some(enabled) = request.enabled {
            record.enabled = enabled;
        }
        for (field, value) in [
            (&mut record.autojoin, request.autojoin),
            (&mut record.sync, request.sync),
        ] {
            if let Some(value) = value
                && *field != value
            {
                *field = value;
                restart = true;
            }
        }
        if let Some(online) = request.online {
            // Read by the sync loop at its next request.
            record.online = online;
        }
        store::save(&self.db, &record).await?;
        let was_started = bot.is_started();
        bot.set_record(record);
        // A running client picks up connection, profile and handler changes by restarting; maubot
        // applies them one by one to the live client, with the same effect.
        match request.started {
            Some(false) => bot.stop().await,
            Some(true) if !was_started => bot.start().await,
            _ if restart && was_started => {
                bot.stop().await;
                bot.start().await;
            }
            _ => {}
        }
        Ok(bot.view())
    }

    /// Creates or updates the client of a fresh login (`?update_client=true`).
    pub async fn upsert_from_login(
        &self,
        user_id: &str,
        details: AccessDetails,
    ) -> Result<(Upserted, ClientView)> {
        let request = ClientRequest {
            homeserver: Some(details.homeserver),
            access_token: Some(details.access_token),
            device_id: Some(details.device_id),
            ..ClientRequest::default()
        };
        if self.get(user_id).await.is_some() {
            Ok((Upserted::Updated, self.update(user_id, request).await?))
        } else {
            Ok((
                Upserted::Created,
                self.create(request, Some(user_id)).await?,
            ))
        }
    }

    /// Deletes a client without instances: stopped, its row removed. (Its crypto store stays, as
    /// in maubot, so that re-adding the same device keeps its keys.)
    pub async fn delete(&self, id: &str) -> Result<()> {
        let _change = self.changes.lock().await;
        let bot = self.get(id).await.ok_or(Error::NotFound)?;
        if store::has_instances(&self.db, id).await? {
            return Err(Error::InUse);
        }
        bot.stop().await;
        store::delete(&self.db, id).await?;
        self.bots.write().await.remove(id);
        crate::metrics::forget_bot(id);
        Ok(())
    }

    /// Forgets the sync position and filter and syncs afresh.
    pub async fn clear_cache(&self, id: &str) -> Result<()> {
        let bot = self.get(id).await.ok_or(Error::NotFound)?;
        let was_started = bot.is_started();
        bot.stop().await;
        let mut record = bot.record();
        record.next_batch.clear();
        record.filter_id.clear();
        store::save(&self.db, &record).await?;
        bot.set_record(record);
        if was_started {
            bot.start().await;
        }
        Ok(())
    }
}

/// Both device IDs set and different: the token belongs to another device.
fn check_device(given: &str, actual: Option<&str>) -> Result<()> {
    match actual {
        Some(actual) if !given.is_empty() && given != actual => {
            Err(Error::DeviceMismatch(actual.to_owned()))
        }
        _ => Ok(()),
    }
}
