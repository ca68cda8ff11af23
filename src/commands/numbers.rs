//! Request numbers: `REQ-YYYYMMDD-NNNNN`, allocated per day, and the number → id lookup.

use chrono::NaiveDate;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::CommandError;
use crate::domain::values::RequestNumber;

/// Allocates the next request number of `day` for `request_id` in the caller's transaction
/// (the request's own, so a request that is not written leaves no number behind): the
/// counter row is locked by the upsert until that transaction ends, so concurrent callers
/// on any replica get distinct numbers without gaps.
pub async fn allocate_request_number(
    tx: &mut PgConnection,
    day: NaiveDate,
    request_id: Uuid,
) -> Result<RequestNumber, CommandError> {
    let next: i32 = sqlx::query_scalar(
        "INSERT INTO request_number_counters (day, last_value) VALUES ($1, 1) \
         ON CONFLICT (day) DO UPDATE SET last_value = request_number_counters.last_value + 1 \
         RETURNING last_value",
    )
    .bind(day)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| {
        if e.as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|c| c == "23514")
        {
            CommandError::Refused(format!("no request numbers left for {day}; try tomorrow"))
        } else {
            CommandError::internal(e)
        }
    })?;
    let number = RequestNumber::new(day, u32::try_from(next).unwrap_or(0))?;
    sqlx::query(
        "INSERT INTO request_number_allocations (request_number, request_id) VALUES ($1, $2)",
    )
    .bind(number.as_ref())
    .bind(request_id)
    .execute(&mut *tx)
    .await?;
    Ok(number)
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
