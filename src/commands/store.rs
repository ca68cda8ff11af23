//! Small write-side tables beside the event store: request numbers, wrapped data keys, and
//! the policy rows of `system_config` that commands read.

use chrono::NaiveDate;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use crate::domain::certificate::{CertificateEvent, IssuedCertificate};
use crate::domain::values::{CertificateType, RequestNumber, RevocationReason, ValueError};
use crate::pki::envelope::WrappedDataKey;

use super::CommandError;

/// Allocates the next request number of `day` for `request_id`, atomically: the counter row
/// is locked by the upsert, so concurrent callers on any replica get distinct numbers.
pub async fn allocate_request_number(
    pool: &PgPool,
    day: NaiveDate,
    request_id: Uuid,
) -> Result<RequestNumber, CommandError> {
    let mut tx = pool.begin().await?;
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
    tx.commit().await?;
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

/// Stores a wrapped data key.
pub async fn store_data_key(pool: &PgPool, key: &WrappedDataKey) -> Result<(), CommandError> {
    sqlx::query("INSERT INTO data_keys (id, kek_id, wrapped_key) VALUES ($1, $2, $3)")
        .bind(key.id)
        .bind(&key.kek_id)
        .bind(&key.wrapped)
        .execute(pool)
        .await?;
    Ok(())
}

/// Loads a wrapped data key; `None` if it never existed or was destroyed.
pub async fn load_data_key(
    pool: &PgPool,
    id: Uuid,
) -> Result<Option<WrappedDataKey>, CommandError> {
    let row: Option<(String, Option<Vec<u8>>)> =
        sqlx::query_as("SELECT kek_id, wrapped_key FROM data_keys WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(row.and_then(|(kek_id, wrapped)| {
        wrapped.map(|wrapped| WrappedDataKey {
            id,
            kek_id,
            wrapped,
        })
    }))
}

/// Destroys a data key for good (its private key becomes undecryptable).
pub async fn destroy_data_key(pool: &PgPool, id: Uuid) -> Result<bool, CommandError> {
    let result = sqlx::query(
        "UPDATE data_keys SET wrapped_key = NULL, destroyed_at = now() \
         WHERE id = $1 AND destroyed_at IS NULL",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Approvals a request needs under `approval.required_approvals`: the largest of the
/// default, the entry for its certificate type, and the entry for its criticality.
pub async fn required_approvals(
    pool: &PgPool,
    certificate_type: CertificateType,
    criticality: Option<&str>,
) -> Result<u8, CommandError> {
    let policy = crate::db::setting(pool, "approval.required_approvals").await?;
    let policy: serde_json::Value = policy
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(CommandError::internal)?
        .unwrap_or_default();
    let read = |key: &str| policy.get(key).and_then(serde_json::Value::as_u64);
    let mut required = read("default").unwrap_or(1);
    for key in [Some(certificate_type.as_str()), criticality]
        .into_iter()
        .flatten()
    {
        required = required.max(read(key).unwrap_or(0));
    }
    u8::try_from(required.clamp(1, 5)).map_err(|_| {
        CommandError::Invalid(vec![ValueError::new(
            "approval.required_approvals",
            "the approval policy is out of range",
        )])
    })
}

/// `certificate.default_validity_days`, if set.
pub async fn default_validity_days(pool: &PgPool) -> Result<Option<String>, CommandError> {
    Ok(crate::db::setting(pool, "certificate.default_validity_days").await?)
}

/// The certificate issued with serial `$1` (on `idx_events_issued_serial`).
pub const CERTIFICATE_BY_SERIAL: &str = "SELECT aggregate_id FROM events \
      WHERE aggregate_type = 'Certificate' AND event_type = 'CertificateIssued' \
        AND payload -> 'CertificateIssued' -> 'certificate' ->> 'serial_number' = $1 \
      LIMIT 1";

/// The certificate issued for request `$1` (on `idx_events_issued_request`).
pub const CERTIFICATE_OF_REQUEST: &str = "SELECT aggregate_id FROM events \
      WHERE aggregate_type = 'Certificate' AND event_type = 'CertificateIssued' \
        AND payload -> 'CertificateIssued' -> 'certificate' ->> 'request_id' = $1 \
      LIMIT 1";

/// Finds a certificate's id by serial in the event store (until the read model has it).
pub async fn certificate_id_of(pool: &PgPool, serial: &str) -> Result<Uuid, CommandError> {
    let id: Option<String> = sqlx::query_scalar(CERTIFICATE_BY_SERIAL)
        .bind(serial)
        .fetch_optional(pool)
        .await?;
    id.and_then(|id| id.parse().ok()).ok_or_else(|| {
        CommandError::NotFound(format!("there is no certificate with serial {serial}"))
    })
}

/// A certificate as its issuance event recorded it (the one reader of that event).
pub async fn issued_certificate<'e>(
    executor: impl PgExecutor<'e>,
    certificate_id: Uuid,
) -> Result<IssuedCertificate, CommandError> {
    let payload: Option<serde_json::Value> = sqlx::query_scalar(
        "SELECT payload FROM events WHERE aggregate_type = 'Certificate' \
            AND aggregate_id = $1 AND event_type = 'CertificateIssued'",
    )
    .bind(certificate_id.to_string())
    .fetch_optional(executor)
    .await?;
    let payload =
        payload.ok_or_else(|| CommandError::NotFound("there is no such certificate".to_owned()))?;
    match serde_json::from_value(payload).map_err(CommandError::internal)? {
        CertificateEvent::CertificateIssued { certificate, .. } => Ok(*certificate),
        _ => Err(CommandError::internal(anyhow::anyhow!(
            "a CertificateIssued row holds another event"
        ))),
    }
}

/// The certificate issued for a request, if any.
pub async fn certificate_of_request(
    pool: &PgPool,
    request_id: Uuid,
) -> Result<Option<Uuid>, CommandError> {
    let id: Option<String> = sqlx::query_scalar(CERTIFICATE_OF_REQUEST)
        .bind(request_id.to_string())
        .fetch_optional(pool)
        .await?;
    Ok(id.and_then(|id| id.parse().ok()))
}

/// Whether revoking for `reason` needs an approver first
/// (`revocation.approval_required_reasons`, a JSON list of reason codes; none by default).
pub async fn revocation_needs_approval(
    pool: &PgPool,
    reason: RevocationReason,
) -> Result<bool, CommandError> {
    let Some(value) = crate::db::setting(pool, "revocation.approval_required_reasons").await?
    else {
        return Ok(false);
    };
    match serde_json::from_str::<Vec<String>>(&value) {
        Ok(reasons) => Ok(reasons
            .iter()
            .any(|r| RevocationReason::parse(r).is_ok_and(|r| r == reason))),
        Err(_) => {
            tracing::warn!(
                "revocation.approval_required_reasons is not a list of reason codes; \
                 requiring approval for every reason until it is fixed"
            );
            Ok(true)
        }
    }
}

/// The people to ask for approvals: active approvers and admins, as the read model knows
/// them (it may lag a moment behind a role change; any approver may decide regardless).
pub async fn approvers(pool: &PgPool) -> Result<Vec<crate::domain::actor::Actor>, CommandError> {
    active_users(pool, &["approver", "admin"]).await
}

/// The active admins, as the read model knows them.
pub async fn admins(pool: &PgPool) -> Result<Vec<crate::domain::actor::Actor>, CommandError> {
    active_users(pool, &["admin"]).await
}

async fn active_users(
    pool: &PgPool,
    roles: &[&str],
) -> Result<Vec<crate::domain::actor::Actor>, CommandError> {
    use crate::domain::actor::{Actor, Role};
    use crate::domain::values::Email;
    let rows: Vec<(Uuid, String, String)> = sqlx::query_as(
        "SELECT id, email, role FROM users \
          WHERE role = ANY($1) AND is_active AND deleted_at IS NULL \
          ORDER BY email LIMIT 50",
    )
    .bind(roles)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(user_id, email, role)| {
            Some(Actor {
                user_id,
                email: Email::parse(&email).ok()?,
                role: Role::parse(&role).ok()?,
            })
        })
        .collect())
}
