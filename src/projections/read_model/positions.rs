//! The position guard: each aggregate's last applied sequence, read and moved once per batch,
//! so an event that comes again is skipped.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use sqlx::PgConnection;

use crate::feed::StoredEvent;

/// Each aggregate's last applied sequence, for the aggregates of one batch.
pub(super) struct Positions {
    last: HashMap<(String, String), i64>,
    moved: HashSet<(String, String)>,
}

impl Positions {
    pub(super) async fn load(
        conn: &mut PgConnection,
        events: &[StoredEvent],
    ) -> anyhow::Result<Self> {
        let keys: HashSet<(&str, &str)> = events
            .iter()
            .map(|e| (e.aggregate_type.as_str(), e.aggregate_id.as_str()))
            .collect();
        let (types, ids): (Vec<&str>, Vec<&str>) = keys.into_iter().unzip();
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT p.aggregate_type, p.aggregate_id, p.last_sequence \
               FROM projection_positions p \
               JOIN unnest($1::text[], $2::text[]) AS k(aggregate_type, aggregate_id) \
                 USING (aggregate_type, aggregate_id)",
        )
        .bind(&types)
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await
        .context("reading the projection positions")?;
        Ok(Self {
            last: rows.into_iter().map(|(t, i, s)| ((t, i), s)).collect(),
            moved: HashSet::new(),
        })
    }

    /// Whether `event` is new to the tables; if so, it becomes its aggregate's position.
    pub(super) fn advance(&mut self, event: &StoredEvent) -> bool {
        let key = (event.aggregate_type.clone(), event.aggregate_id.clone());
        if self
            .last
            .get(&key)
            .is_some_and(|&last| last >= event.sequence)
        {
            return false;
        }
        self.last.insert(key.clone(), event.sequence);
        self.moved.insert(key);
        true
    }

    pub(super) async fn save(self, conn: &mut PgConnection) -> anyhow::Result<()> {
        if self.moved.is_empty() {
            return Ok(());
        }
        let mut types = Vec::with_capacity(self.moved.len());
        let mut ids = Vec::with_capacity(self.moved.len());
        let mut sequences = Vec::with_capacity(self.moved.len());
        for key in self.moved {
            sequences.push(self.last[&key]);
            types.push(key.0);
            ids.push(key.1);
        }
        sqlx::query(
            "INSERT INTO projection_positions (aggregate_type, aggregate_id, last_sequence) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) \
             ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE \
                SET last_sequence = EXCLUDED.last_sequence \
              WHERE projection_positions.last_sequence < EXCLUDED.last_sequence",
        )
        .bind(&types)
        .bind(&ids)
        .bind(&sequences)
        .execute(&mut *conn)
        .await
        .context("moving the projection positions")?;
        Ok(())
    }
}
