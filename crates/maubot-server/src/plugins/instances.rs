//! Instances through the API: create, update, rename and delete, each stored before it takes
//! effect, as maubot does. What runs is changed through the instance's supervisor.

use std::sync::Arc;

use super::intent::Intent;
use super::store::{self, InstanceRecord};
use super::supervisor::Command;
use super::{
    Error, InstanceFacts, InstanceRequest, LOG, PluginHost, Result, check_instance_id, database,
};
use crate::sync::lock;

impl PluginHost {
    /// `PUT /instance/{id}`: creates the instance (`true`) or updates it.
    ///
    /// A create or rename changes the set of instances, under the write lock; any other change
    /// takes the read lock and the instance's own lock, so it waits for no other instance.
    pub async fn put_instance(
        &self,
        id: &str,
        request: InstanceRequest,
    ) -> Result<(bool, InstanceFacts)> {
        let renames = request
            .id
            .as_ref()
            .is_some_and(|n| !n.is_empty() && n.to_lowercase() != id);
        if !renames && let Some(changes) = self.changes_of(id) {
            let _ops = self.ops.read().await;
            let _changes = changes.lock().await;
            // Deleted (or renamed) while this waited: created anew below, as maubot would.
            if self
                .changes_of(id)
                .is_some_and(|now| Arc::ptr_eq(&now, &changes))
            {
                return Ok((false, self.update_instance(id, request).await?));
            }
        }
        let ops = self.ops.write().await;
        if lock(&self.state).instances.contains_key(id) {
            return Ok((false, self.update_instance(id, request).await?));
        }
        let enabled = self.create_instance(id, request).await?;
        // The instance exists now: its start waits for no other change.
        let changes = self.changes_of(id).ok_or(Error::InstanceNotFound)?;
        let _changes = changes.lock().await;
        let _ops = ops.downgrade();
        if enabled {
            let _ = self.start_instance(id, true).await;
        }
        Ok((true, self.instance(id)?))
    }

    /// The lock of an instance's API changes.
    fn changes_of(&self, id: &str) -> Option<Arc<tokio::sync::Mutex<()>>> {
        lock(&self.state)
            .instances
            .get(id)
            .map(|i| Arc::clone(&i.handle.changes))
    }

    /// A new instance, stored and registered (not started); whether it is enabled. Call with
    /// `ops` held for writing.
    async fn create_instance(&self, id: &str, request: InstanceRequest) -> Result<bool> {
        check_instance_id(id)?;
        if self.is_stopping() {
            return Err(Error::Io("the server is shutting down".into()));
        }
        let plugin = request
            .plugin
            .filter(|p| !p.is_empty())
            .ok_or(Error::PluginTypeRequired)?;
        let primary_user = request
            .primary_user
            .filter(|p| !p.is_empty())
            .ok_or(Error::PrimaryUserRequired)?;
        if self.clients.get(&primary_user).await.is_none() {
            return Err(Error::PrimaryUserNotFound);
        }
        if !lock(&self.state).plugins.contains_key(&plugin) {
            return Err(Error::PluginTypeNotFound);
        }
        let record = InstanceRecord {
            id: id.to_owned(),
            plugin,
            enabled: request.enabled.unwrap_or(true),
            primary_user,
            config: request.config.unwrap_or_default(),
            database_engine: None,
        };
        store::insert(&self.db, &record).await?;
        crate::fault::point("instance.create.row_inserted");
        let enabled = record.enabled;
        self.add_instance(record);
        Ok(enabled)
    }

    /// An existing instance changed in maubot's order: primary user, ID, enabled, config,
    /// started, type. Call with `ops` held: for writing if it renames.
    pub(super) async fn update_instance(
        &self,
        id: &str,
        request: InstanceRequest,
    ) -> Result<InstanceFacts> {
        let mut id = id.to_owned();
        let current = self.record(&id)?;

        if let Some(user) = request.primary_user.filter(|u| *u != current.primary_user) {
            if self.clients.get(&user).await.is_none() {
                return Err(Error::PrimaryUserNotFound);
            }
            let was_started = self.stop_instance(&id).await;
            self.change(&id, |r| r.primary_user = user).await?;
            if was_started {
                let _ = self.start_instance(&id, true).await;
            }
        }
        // maubot lower-cases the new ID too, so that it can be reached from a path.
        if let Some(new_id) = request
            .id
            .map(|n| n.to_lowercase())
            .filter(|n| *n != id && !n.is_empty())
        {
            self.rename_instance(&id, &new_id).await?;
            id = new_id;
        }
        if let Some(enabled) = request.enabled {
            // As in maubot, this only decides about future starts; `started` stops.
            self.change(&id, |r| r.enabled = enabled).await?;
        }
        if let Some(config) = request.config {
            self.configure(&id, config).await?;
        }
        match request.started {
            Some(true) => {
                let _ = self.start_instance(&id, true).await;
            }
            Some(false) => {
                self.stop_instance(&id).await;
            }
            None => {}
        }
        let plugin_exists = |p: &String| lock(&self.state).plugins.contains_key(p);
        if let Some(plugin) = request
            .plugin
            .filter(|p| *p != self.record(&id).map(|r| r.plugin).unwrap_or_default())
            // An unknown type is ignored, as in maubot.
            .filter(plugin_exists)
        {
            let was_started = self.stop_instance(&id).await;
            self.change(&id, |r| r.plugin = plugin).await?;
            if was_started {
                let _ = self.start_instance(&id, true).await;
            }
        }
        self.instance(&id)
    }

    /// Renames an instance, with its database (maubot renames only the row).
    pub(super) async fn rename_instance(&self, id: &str, new_id: &str) -> Result<()> {
        check_instance_id(new_id)?;
        if lock(&self.state).instances.contains_key(new_id) {
            return Err(Error::InstanceExists(new_id.to_owned()));
        }
        let was_started = self.stop_instance(id).await;
        let mut record = self.record(id)?;
        let engine = database::Engine::recorded(record.database_engine.as_deref());
        let intent = Intent::Rename {
            from: id.to_owned(),
            to: new_id.to_owned(),
        };
        let moved = match self.journal.begin(&intent) {
            Ok(()) => self
                .databases
                .rename(id, new_id, engine)
                .await
                .map_err(|e| e.to_string()),
            Err(err) => Err(err.to_string()),
        };
        if let Err(err) = moved {
            self.journal.end();
            // Renamed without its data, the instance would start empty: keep the old name.
            if was_started {
                let _ = self.start_instance(id, true).await;
            }
            return Err(Error::Io(format!(
                "Cannot move the instance's database: {err}"
            )));
        }
        crate::fault::point("instance.rename.database_moved");
        record.id = new_id.to_owned();
        if let Err(err) = store::update(&self.db, id, &record).await {
            // The row keeps the old ID, so the database goes back to it.
            if let Err(back) = self.databases.rename(new_id, id, engine).await {
                tracing::warn!(target: LOG, instance = %id, error = %back, "Could not move the database back after a failed rename");
            } else {
                self.journal.end();
            }
            return Err(err.into());
        }
        self.journal.end();
        crate::metrics::forget_instance(id);
        let commands = {
            let mut state = lock(&self.state);
            state.instances.remove(id).map(|mut instance| {
                instance.record = record;
                let commands = instance.handle.commands.clone();
                state.instances.insert(new_id.to_owned(), instance);
                commands
            })
        };
        if let Some(commands) = commands {
            // Before any start under the new name: commands are carried out in order.
            let _ = commands
                .send(Command::Renamed {
                    to: new_id.to_owned(),
                })
                .await;
        }
        if was_started {
            let _ = self.start_instance(new_id, true).await;
        }
        Ok(())
    }

    /// `DELETE /instance/{id}`: stopped, its row and (if opened) its database removed.
    pub async fn delete_instance(&self, id: &str) -> Result<()> {
        let _ops = self.ops.write().await;
        self.record(id)?;
        self.stop_instance(id).await;
        self.journal
            .begin(&Intent::Delete { id: id.to_owned() })
            .map_err(|e| Error::Io(format!("Cannot record the delete: {e}")))?;
        if let Err(err) = store::delete(&self.db, id).await {
            self.journal.end();
            return Err(err.into());
        }
        crate::fault::point("instance.delete.row_deleted");
        // Dropping the handle ends the supervisor once it has nothing left to do.
        let removed = lock(&self.state).instances.remove(id);
        if let Some(instance) = removed {
            // Also a database this process never opened: one left by a delete that was
            // interrupted before, which a new instance of the same ID must not inherit.
            let engine = database::Engine::recorded(instance.record.database_engine.as_deref());
            self.databases
                .remove(id, engine, &self.config.plugin_directories.trash)
                .await;
        }
        self.journal.end();
        crate::metrics::forget_instance(id);
        Ok(())
    }

    pub(super) fn record(&self, id: &str) -> Result<InstanceRecord> {
        lock(&self.state)
            .instances
            .get(id)
            .map(|i| i.record.clone())
            .ok_or(Error::InstanceNotFound)
    }

    /// Changes a row in memory and in the database; changes by the API and by supervisors are
    /// stored in the order they were made.
    pub(super) async fn change(
        &self,
        id: &str,
        edit: impl FnOnce(&mut InstanceRecord),
    ) -> Result<()> {
        let _rows = self.rows.lock().await;
        let record = {
            let mut state = lock(&self.state);
            let instance = state.instances.get_mut(id).ok_or(Error::InstanceNotFound)?;
            edit(&mut instance.record);
            instance.record.clone()
        };
        store::update(&self.db, id, &record).await?;
        Ok(())
    }
}
