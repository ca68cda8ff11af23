//! The read model as a consumer of the event feed: the documented tables and views.

use sqlx::{PgConnection, PgPool};

use super::read_model;
use crate::feed::{ConsumerStatus, FeedConsumer, Projector, StoredEvent};

/// The consumer that maintains the documented tables.
pub const READ_MODEL: &str = "read_model";

/// The documented tables and views.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadModel;

impl FeedConsumer for ReadModel {
    fn name(&self) -> &'static str {
        READ_MODEL
    }

    fn begin<'a>(
        &'a self,
        conn: &'a mut PgConnection,
    ) -> impl Future<Output = anyhow::Result<()>> + Send + 'a {
        read_model::begin(conn)
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a StoredEvent,
    ) -> impl Future<Output = anyhow::Result<()>> + Send + 'a {
        read_model::apply_batch(conn, std::slice::from_ref(event))
    }

    fn apply_batch<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        events: &'a [StoredEvent],
    ) -> impl Future<Output = anyhow::Result<()>> + Send + 'a {
        read_model::apply_batch(conn, events)
    }
}

impl Projector<ReadModel> {
    /// The read model's projector over `pool`, up to 500 events per transaction.
    pub fn new(pool: PgPool) -> Self {
        Self::for_consumer(pool, ReadModel)
    }

    /// Every consumer's checkpoint and lag.
    pub async fn status(pool: &PgPool) -> anyhow::Result<Vec<ConsumerStatus>> {
        crate::feed::consumer_status(pool).await
    }
}
