//! Changes of an instance that touch both its row and its database (a rename moves the SQLite
//! file or the schema, a delete removes it) cannot be one transaction. The change is written down
//! before its first step and crossed out after its last, so that a server killed in between
//! finishes or undoes it at its next start, and rows and databases agree again. Changes are
//! serialised by the host's lock of changes, so one file holds at most one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::store::{self, InstanceRecord};
use super::{LOG, database, files};
use crate::db::{self, Database};

const FILE: &str = ".instance-change.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub(super) enum Intent {
    /// The row and database of `from` become `to`'s.
    Rename { from: String, to: String },
    /// The row and database of `id` go.
    Delete { id: String },
}

/// Where the change in progress is written: next to the SQLite instance databases, which the
/// server owns whatever engine the instances use.
#[derive(Debug, Clone)]
pub(super) struct Journal {
    path: PathBuf,
}

impl Journal {
    pub(super) fn new(sqlite_dir: &str) -> Self {
        Self {
            path: Path::new(sqlite_dir).join(FILE),
        }
    }

    /// Writes the change down; until this succeeds, nothing of it may be done.
    pub(super) fn begin(&self, intent: &Intent) -> std::io::Result<()> {
        let json = serde_json::to_vec(intent).map_err(std::io::Error::other)?;
        files::write_atomically(&self.path, &json)
    }

    /// Crosses the change out: it is done, or was undone.
    pub(super) fn end(&self) {
        if let Err(err) = std::fs::remove_file(&self.path)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(target: LOG, error = %err, "Could not remove the record of a finished instance change");
        }
    }

    fn pending(&self) -> Option<Intent> {
        let bytes = std::fs::read(&self.path).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(intent) => Some(intent),
            Err(err) => {
                tracing::warn!(target: LOG, error = %err, "Ignoring an unreadable record of an interrupted instance change");
                None
            }
        }
    }

    /// At start-up, before any instance runs: an interrupted rename is undone (the row still
    /// has the old ID, so the database goes back to it) or, if the row was moved, left done; an
    /// interrupted delete is finished. `records` is the instance table, kept in step.
    pub(super) async fn recover(
        &self,
        db: &Database,
        databases: &database::Databases,
        trash_dir: &str,
        records: &mut Vec<InstanceRecord>,
    ) -> Result<(), db::DbError> {
        let Some(intent) = self.pending() else {
            return Ok(());
        };
        let engine_of = |id: &str| {
            records
                .iter()
                .find(|r| r.id == id)
                .map(|r| database::Engine::recorded(r.database_engine.as_deref()))
        };
        match &intent {
            Intent::Rename { from, to } => {
                if let Some(engine) = engine_of(from) {
                    match databases.rename(to, from, engine).await {
                        Ok(()) => {
                            tracing::warn!(target: LOG, instance = %from, new_id = %to, "An interrupted rename was undone");
                        }
                        Err(err) => {
                            tracing::warn!(target: LOG, instance = %from, new_id = %to, error = %err, "Could not undo an interrupted rename's database move");
                        }
                    }
                }
            }
            Intent::Delete { id } => {
                let engine = engine_of(id).unwrap_or(database::Engine::Sqlite);
                store::delete(db, id).await?;
                records.retain(|r| r.id != *id);
                databases.remove(id, engine, trash_dir).await;
                tracing::warn!(target: LOG, instance = %id, "An interrupted delete was finished");
            }
        }
        self.end();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_written_read_back_and_crossed_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = Journal::new(dir.path().to_str().expect("utf-8"));
        assert_eq!(journal.pending(), None);
        let intent = Intent::Rename {
            from: "a".into(),
            to: "b".into(),
        };
        journal.begin(&intent).expect("begin");
        assert_eq!(journal.pending(), Some(intent));
        journal.end();
        assert_eq!(journal.pending(), None);
        journal.end();
    }
}
