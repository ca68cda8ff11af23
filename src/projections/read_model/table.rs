//! One table of a batch, in memory: the rows the batch touches, as loaded and as the batch
//! leaves them. Events are applied to these rows without the database; what changed is
//! written back in one statement per table ([`Record::write`]).
//!
//! A row the batch asks for that was not loaded is a *miss*: the pass treats it as absent,
//! and [`super::apply_batch`] loads every miss (one query per table) and applies the batch
//! again, until a pass misses nothing.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use sqlx::PgConnection;

/// A row type of the read model: how it is keyed, loaded and written.
pub(super) trait Record: Clone + PartialEq + Send + Sync + Sized + 'static {
    /// What the batch looks it up by.
    type Key: Clone + Eq + Hash + Send + Sync;

    /// Its key.
    fn key(&self) -> Self::Key;

    /// The stored rows of `keys` (those that exist).
    fn load<'a>(
        conn: &'a mut PgConnection,
        keys: &'a [Self::Key],
    ) -> impl Future<Output = anyhow::Result<Vec<Self>>> + Send + 'a;

    /// Writes the rows the batch changed: each as it was stored (if it was) and as it is now.
    fn write<'a>(
        conn: &'a mut PgConnection,
        changed: &'a [(Option<&'a Self>, &'a Self)],
    ) -> impl Future<Output = anyhow::Result<()>> + Send + 'a;
}

/// A text array as one jsonb value, for a writer's `unnest`: arrays of arrays cannot be
/// unnested into rows.
pub(super) fn text_array(values: &Option<Vec<String>>) -> Option<serde_json::Value> {
    values.as_ref().map(|values| serde_json::json!(values))
}

struct Slot<R> {
    stored: Option<R>,
    now: Option<R>,
}

impl<R: Clone> Slot<R> {
    /// A row as stored, not changed yet.
    fn loaded(row: R) -> Self {
        Self {
            stored: Some(row.clone()),
            now: Some(row),
        }
    }
}

/// The rows of one table that a batch touches.
pub(super) struct Table<R: Record> {
    slots: HashMap<R::Key, Slot<R>>,
    missing: HashSet<R::Key>,
    /// Every row is known: an unknown key is absent, not a miss (tests).
    complete: bool,
}

impl<R: Record> Default for Table<R> {
    fn default() -> Self {
        Self {
            slots: HashMap::new(),
            missing: HashSet::new(),
            complete: false,
        }
    }
}

impl<R: Record> Table<R> {
    /// A table whose rows are all known: `rows` exist, nothing else does (for tests).
    #[cfg(test)]
    pub(super) fn known(rows: impl IntoIterator<Item = R>) -> Self {
        let mut table = Self {
            complete: true,
            ..Self::default()
        };
        for row in rows {
            table.slots.insert(row.key(), Slot::loaded(row));
        }
        table
    }

    /// The slot of `key`; `None` when it was not loaded (a miss, remembered).
    fn slot(&mut self, key: &R::Key) -> Option<&mut Slot<R>> {
        if !self.slots.contains_key(key) {
            if !self.complete {
                self.missing.insert(key.clone());
                return None;
            }
            self.slots.insert(
                key.clone(),
                Slot {
                    stored: None,
                    now: None,
                },
            );
        }
        self.slots.get_mut(key)
    }

    /// The row of `key` as the batch has it so far; `None` if it does not exist (or was
    /// not loaded: then it is a miss).
    pub(super) fn get(&mut self, key: &R::Key) -> Option<&R> {
        self.slot(key).and_then(|slot| slot.now.as_ref())
    }

    /// The row of `key`, to change it; `None` as for [`Table::get`].
    pub(super) fn get_mut(&mut self, key: &R::Key) -> Option<&mut R> {
        self.slot(key).and_then(|slot| slot.now.as_mut())
    }

    /// The row of `key`, created by `new` if it does not exist.
    pub(super) fn get_or_insert_with(
        &mut self,
        key: &R::Key,
        new: impl FnOnce() -> R,
    ) -> Option<&mut R> {
        self.slot(key).map(|slot| slot.now.get_or_insert_with(new))
    }

    /// Inserts `row` unless a row of its key exists (`INSERT … ON CONFLICT DO NOTHING`).
    pub(super) fn insert_if_absent(&mut self, row: R) {
        let _ = self.get_or_insert_with(&row.key(), || row);
    }

    /// The rows as the batch leaves them (for tests).
    #[cfg(test)]
    pub(super) fn rows(&self) -> Vec<&R> {
        self.slots
            .values()
            .filter_map(|slot| slot.now.as_ref())
            .collect()
    }

    /// Whether a pass missed rows of this table.
    pub(super) fn has_misses(&self) -> bool {
        !self.missing.is_empty()
    }

    /// Loads the missed rows; a missed key with no row is known to be absent.
    pub(super) async fn load_misses(&mut self, conn: &mut PgConnection) -> anyhow::Result<()> {
        if self.missing.is_empty() {
            return Ok(());
        }
        let keys: Vec<R::Key> = self.missing.drain().collect();
        for row in R::load(conn, &keys).await? {
            self.slots.insert(row.key(), Slot::loaded(row));
        }
        for key in keys {
            self.slots.entry(key).or_insert(Slot {
                stored: None,
                now: None,
            });
        }
        Ok(())
    }

    /// Forgets what the last pass did to the rows (before a pass starts again).
    pub(super) fn reset(&mut self) {
        for slot in self.slots.values_mut() {
            slot.now.clone_from(&slot.stored);
        }
    }

    /// Writes what the batch changed.
    pub(super) async fn write(&self, conn: &mut PgConnection) -> anyhow::Result<()> {
        let changed: Vec<(Option<&R>, &R)> = self
            .slots
            .values()
            .filter_map(|slot| match &slot.now {
                Some(now) if slot.stored.as_ref() != Some(now) => Some((slot.stored.as_ref(), now)),
                _ => None,
            })
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        R::write(conn, &changed).await
    }
}
