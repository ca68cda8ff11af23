//! Request numbers: `REQ-YYYYMMDD-NNNNN`, counted per day without gaps, and the number → id
//! lookup.
//!
//! A number is taken in the same statement that writes its request (one commit, see
//! [`crate::eventstore::append_numbered`]): the day's counter moves from the value this
//! process last saw, or the statement writes nothing and the next value is tried. Inside one
//! process the submissions take turns, so the value it expects is right unless another
//! replica counted in between; no submission waits on a row lock in the database.

use std::collections::HashMap;

use chrono::NaiveDate;
use sqlx::PgPool;
use tokio::sync::Mutex;
use uuid::Uuid;

use super::CommandError;
use crate::domain::values::RequestNumber;
use crate::eventstore::{NewStream, NumberClaim};

/// How often a number is tried again after other replicas took the expected one.
const NUMBER_RETRIES: usize = 32;

/// This process's turn-taking on the day's counter, and the last value it wrote.
#[derive(Debug, Default)]
pub(super) struct Numbers {
    last: Mutex<Option<(NaiveDate, u32)>>,
}

impl Numbers {
    /// Writes the streams `streams(number)` makes under the next number of `day`, for
    /// `request_id`, in one commit; returns the number.
    pub(super) async fn write_next<F>(
        &self,
        pool: &PgPool,
        day: NaiveDate,
        request_id: Uuid,
        metadata: &HashMap<String, String>,
        streams: impl Fn(RequestNumber) -> F,
    ) -> Result<RequestNumber, CommandError>
    where
        F: Future<Output = Result<Vec<NewStream>, CommandError>>,
    {
        let mut last = self.last.lock().await;
        let mut value = match *last {
            Some((seen, value)) if seen == day => value + 1,
            _ => counted(pool, day).await? + 1,
        };
        for _ in 0..NUMBER_RETRIES {
            let number = RequestNumber::new(day, value).map_err(|_| {
                CommandError::Refused(format!("no request numbers left for {day}; try tomorrow"))
            })?;
            let claim = NumberClaim {
                day,
                value: i32::try_from(value).map_err(CommandError::internal)?,
                number: number.as_ref(),
                request_id,
            };
            let streams = streams(number.clone()).await?;
            if crate::eventstore::append_numbered(pool, claim, &streams, metadata).await? {
                *last = Some((day, value));
                return Ok(number);
            }
            // Another replica took it: go on from the counter as it stands.
            value = counted(pool, day).await? + 1;
        }
        Err(CommandError::Conflict("the request number".to_owned()))
    }
}

/// How many numbers `day` has given out.
async fn counted(pool: &PgPool, day: NaiveDate) -> Result<u32, CommandError> {
    let value: Option<i32> =
        sqlx::query_scalar("SELECT last_value FROM request_number_counters WHERE day = $1")
            .bind(day)
            .fetch_optional(pool)
            .await?;
    Ok(value.map_or(0, |v| u32::try_from(v).unwrap_or(0)))
}

/// The request id of a number.
pub async fn request_id_of(pool: &PgPool, number: &RequestNumber) -> Result<Uuid, CommandError> {
    sqlx::query_scalar(
        "SELECT request_id FROM request_number_allocations WHERE request_number = $1",
    )
    .bind(number.as_ref())
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| CommandError::NotFound(format!("there is no request {number}")))
}
