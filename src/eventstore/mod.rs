//! Typed lookups in the event store, for what the aggregates do not answer by themselves:
//! which certificate has a serial, which certificate a request got, and the facts an event
//! recorded once (a request's creation, a certificate's issuance). The one place besides
//! [`crate::feed`] that reads the `events` table; everything above gets domain types back,
//! so renaming an event field breaks at compile time or in this module's tests, not in a
//! worker in production. New aggregates whose first events belong in one commit are written
//! by [`append`].

mod append;

pub use append::{AppendError, NewStream, NumberClaim, append_new, append_numbered};

use cqrs_es::Aggregate as _;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::domain::approval::Approval;
use crate::domain::certificate::{Certificate, CertificateEvent, IssuedCertificate};
use crate::domain::config::{Config, ConfigEvent};
use crate::domain::request::{CertificateRequest, RequestEvent};
use crate::domain::user::User;

/// Why a lookup failed (not finding anything is `Ok(None)`).
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The database did not answer.
    #[error("the event store could not be read")]
    Database(#[from] sqlx::Error),
    /// A stored event does not decode as this version's type.
    #[error("a stored {0} event is unreadable: {1}")]
    Unreadable(&'static str, serde_json::Error),
}

/// The certificate issued with serial `$1`, or renewed by its CA to it (on
/// `idx_events_issued_serial` and `idx_events_renewed_serial`).
pub const CERTIFICATE_BY_SERIAL: &str = "(SELECT aggregate_id FROM events \
      WHERE aggregate_type = 'Certificate' AND event_type = 'CertificateIssued' \
        AND payload -> 'CertificateIssued' -> 'certificate' ->> 'serial_number' = $1 \
      LIMIT 1) \
    UNION ALL \
    (SELECT aggregate_id FROM events \
      WHERE aggregate_type = 'Certificate' AND event_type = 'CertificateRenewedAtCa' \
        AND payload -> 'CertificateRenewedAtCa' -> 'renewal' ->> 'serial_number' = $1 \
      LIMIT 1) \
    LIMIT 1";

/// The certificate issued for request `$1` (on `idx_events_issued_request`).
pub const CERTIFICATE_OF_REQUEST: &str = "SELECT aggregate_id FROM events \
      WHERE aggregate_type = 'Certificate' AND event_type = 'CertificateIssued' \
        AND payload -> 'CertificateIssued' -> 'certificate' ->> 'request_id' = $1 \
      LIMIT 1";

/// The id of the certificate issued with `serial` (its canonical text form).
pub async fn certificate_with_serial<'e>(
    executor: impl PgExecutor<'e>,
    serial: &str,
) -> Result<Option<Uuid>, LookupError> {
    let id: Option<String> = sqlx::query_scalar(CERTIFICATE_BY_SERIAL)
        .bind(serial)
        .fetch_optional(executor)
        .await?;
    Ok(id.and_then(|id| id.parse().ok()))
}

/// Whether the notification `id` was ever queued (its aggregate has events).
pub async fn notification_exists<'e>(
    executor: impl PgExecutor<'e>,
    id: Uuid,
) -> Result<bool, LookupError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM events \
            WHERE aggregate_type = 'Notification' AND aggregate_id = $1)",
    )
    .bind(id.to_string())
    .fetch_one(executor)
    .await?)
}

/// The id of the certificate issued for a request, if any.
pub async fn certificate_of_request<'e>(
    executor: impl PgExecutor<'e>,
    request_id: Uuid,
) -> Result<Option<Uuid>, LookupError> {
    let id: Option<String> = sqlx::query_scalar(CERTIFICATE_OF_REQUEST)
        .bind(request_id.to_string())
        .fetch_optional(executor)
        .await?;
    Ok(id.and_then(|id| id.parse().ok()))
}

/// A certificate as it stands: as its issuance event recorded it, with the renewals its CA
/// did by itself since (a new serial, validity and artifacts).
pub async fn issued_certificate<'e>(
    executor: impl PgExecutor<'e>,
    certificate_id: Uuid,
) -> Result<Option<IssuedCertificate>, LookupError> {
    let payloads: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT payload FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 \
            AND event_type IN ('CertificateIssued', 'CertificateRenewedAtCa') \
          ORDER BY sequence",
    )
    .bind(Certificate::TYPE)
    .bind(certificate_id.to_string())
    .fetch_all(executor)
    .await?;
    let mut issued: Option<IssuedCertificate> = None;
    for payload in payloads {
        match serde_json::from_value::<CertificateEvent>(payload)
            .map_err(|error| LookupError::Unreadable("CertificateIssued", error))?
        {
            CertificateEvent::CertificateIssued { certificate, .. } => {
                issued.get_or_insert(*certificate);
            }
            CertificateEvent::CertificateRenewedAtCa { renewal, .. } => {
                if let Some(issued) = issued.as_mut() {
                    issued.renew(*renewal);
                }
            }
            _ => {}
        }
    }
    Ok(issued)
}

/// A request's creation event (always [`RequestEvent::RequestCreated`]): what was asked,
/// by whom, with which CSR and key.
pub async fn request_creation<'e>(
    executor: impl PgExecutor<'e>,
    request_id: Uuid,
) -> Result<Option<RequestEvent>, LookupError> {
    let event = first_event::<RequestEvent>(
        executor,
        CertificateRequest::TYPE,
        request_id,
        "RequestCreated",
    )
    .await?;
    Ok(event.filter(|event| matches!(event, RequestEvent::RequestCreated { .. })))
}

/// The first event of `event_type` of one aggregate, decoded.
async fn first_event<'e, E: serde::de::DeserializeOwned>(
    executor: impl PgExecutor<'e>,
    aggregate_type: &'static str,
    aggregate_id: Uuid,
    event_type: &'static str,
) -> Result<Option<E>, LookupError> {
    let payload: Option<serde_json::Value> = sqlx::query_scalar(
        "SELECT payload FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 \
            AND event_type = $3 ORDER BY sequence LIMIT 1",
    )
    .bind(aggregate_type)
    .bind(aggregate_id.to_string())
    .bind(event_type)
    .fetch_optional(executor)
    .await?;
    payload.map(|p| decode(p, event_type)).transpose()
}

/// A request as its aggregates stand: the request, its approval, and the certificate it got.
#[derive(Debug, Default)]
pub struct RequestState {
    /// The request's id.
    pub request_id: Uuid,
    /// The request aggregate.
    pub request: CertificateRequest,
    /// Its approval aggregate.
    pub approval: Approval,
    /// The certificate issued for it, with its id.
    pub certificate: Option<(Uuid, Certificate)>,
}

/// Everything [`RequestState`] holds for request `number`, read in one statement: the
/// request's and the approval's events, and the certificate's latest snapshot with the
/// events after it (the same state cqrs-es would load, aggregate by aggregate).
const REQUEST_STATE: &str = "WITH r AS (SELECT request_id::text AS id FROM request_number_allocations \
                   WHERE request_number = $1), \
          c AS (SELECT e.aggregate_id AS id FROM events e, r \
                 WHERE e.aggregate_type = 'Certificate' AND e.event_type = 'CertificateIssued' \
                   AND e.payload -> 'CertificateIssued' -> 'certificate' ->> 'request_id' = r.id \
                 LIMIT 1), \
          s AS (SELECT s.last_sequence, s.payload FROM snapshots s, c \
                 WHERE s.aggregate_type = 'Certificate' AND s.aggregate_id = c.id) \
     SELECT part, id::uuid, payload FROM ( \
       SELECT 0 AS part, r.id, 0::bigint AS sequence, NULL::json AS payload FROM r \
       UNION ALL \
       SELECT CASE e.aggregate_type WHEN 'CertificateRequest' THEN 1 ELSE 2 END, \
              e.aggregate_id, e.sequence, e.payload \
         FROM events e, r \
        WHERE e.aggregate_type IN ('CertificateRequest', 'Approval') AND e.aggregate_id = r.id \
       UNION ALL \
       SELECT 3, c.id, s.last_sequence, s.payload FROM c, s \
       UNION ALL \
       SELECT 4, e.aggregate_id, e.sequence, e.payload FROM events e, c \
        WHERE e.aggregate_type = 'Certificate' AND e.aggregate_id = c.id \
          AND e.sequence > coalesce((SELECT last_sequence FROM s), 0) \
     ) parts ORDER BY part, sequence";

/// Request `number` as its aggregates stand (`None`: no such number), in one round trip.
pub async fn request_state<'e>(
    executor: impl PgExecutor<'e>,
    number: &str,
) -> Result<Option<RequestState>, LookupError> {
    let rows: Vec<(i32, Uuid, Option<serde_json::Value>)> = sqlx::query_as(REQUEST_STATE)
        .bind(number)
        .fetch_all(executor)
        .await?;
    let mut state: Option<RequestState> = None;
    for (part, id, payload) in rows {
        let Some(state) = state.as_mut() else {
            state = Some(RequestState {
                request_id: id,
                ..RequestState::default()
            });
            continue;
        };
        let payload = payload.unwrap_or_default();
        match part {
            1 => state.request.apply(decode(payload, "CertificateRequest")?),
            2 => state.approval.apply(decode(payload, "Approval")?),
            3 => state.certificate = Some((id, decode(payload, "Certificate snapshot")?)),
            _ => state
                .certificate
                .get_or_insert_with(|| (id, Certificate::default()))
                .1
                .apply(decode(payload, "Certificate")?),
        }
    }
    Ok(state)
}

/// One event in a request's story: which aggregate, what, when, and who (from its metadata).
#[derive(Debug, Clone)]
pub struct StoryEntry {
    /// `CertificateRequest`, `Approval` or `Certificate`.
    pub aggregate_type: String,
    /// The event's name.
    pub event_type: String,
    /// When it was recorded.
    pub at: chrono::DateTime<chrono::Utc>,
    /// Who did it, by e-mail, when a person did.
    pub by: Option<String>,
    /// From where (`slack`, `cli`, `system`, …).
    pub platform: Option<String>,
}

/// Request `number`'s whole story (its request's, approval's and certificate's events, in
/// the order they were recorded) and its state as of `as_of` (every event up to it folded;
/// `None`: now). `None` when there is no such request.
pub async fn request_story<'e>(
    executor: impl PgExecutor<'e>,
    number: &str,
    as_of: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Option<(RequestState, Vec<StoryEntry>)>, LookupError> {
    type Row = (
        Uuid,
        String,
        String,
        chrono::DateTime<chrono::Utc>,
        serde_json::Value,
        serde_json::Value,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "WITH r AS (SELECT request_id::text AS id FROM request_number_allocations \
                     WHERE request_number = $1), \
              c AS (SELECT e.aggregate_id AS id FROM events e, r \
                     WHERE e.aggregate_type = 'Certificate' AND e.event_type = 'CertificateIssued' \
                       AND e.payload -> 'CertificateIssued' -> 'certificate' ->> 'request_id' = r.id) \
         SELECT e.aggregate_id::uuid, e.aggregate_type, e.event_type, e.recorded_at, e.payload, \
                e.metadata \
           FROM events e \
          WHERE (e.aggregate_type IN ('CertificateRequest', 'Approval') \
                 AND e.aggregate_id = (SELECT id FROM r)) \
             OR (e.aggregate_type = 'Certificate' AND e.aggregate_id IN (SELECT id FROM c)) \
          ORDER BY e.recorded_at, e.global_seq",
    )
    .bind(number)
    .fetch_all(executor)
    .await?;
    let Some(request_id) = rows
        .iter()
        .find(|row| row.1 == CertificateRequest::TYPE)
        .map(|row| row.0)
    else {
        return Ok(None);
    };
    let mut state = RequestState {
        request_id,
        ..RequestState::default()
    };
    let mut story = Vec::with_capacity(rows.len());
    for (id, aggregate_type, event_type, at, payload, metadata) in rows {
        if as_of.is_none_or(|as_of| at <= as_of) {
            match aggregate_type.as_str() {
                "CertificateRequest" => state.request.apply(decode(payload, "CertificateRequest")?),
                "Approval" => state.approval.apply(decode(payload, "Approval")?),
                _ => state
                    .certificate
                    .get_or_insert_with(|| (id, Certificate::default()))
                    .1
                    .apply(decode(payload, "Certificate")?),
            }
        }
        let said = |key: &str| metadata[key].as_str().map(str::to_owned);
        story.push(StoryEntry {
            aggregate_type,
            event_type,
            at,
            by: said("actor_email"),
            platform: said("platform"),
        });
    }
    Ok(Some((state, story)))
}

fn decode<T: serde::de::DeserializeOwned>(
    payload: serde_json::Value,
    what: &'static str,
) -> Result<T, LookupError> {
    serde_json::from_value(payload).map_err(|error| LookupError::Unreadable(what, error))
}

/// Every setting an admin set, as its latest [`ConfigEvent`] left it: (key, value).
pub async fn settings_set<'e>(
    executor: impl PgExecutor<'e>,
) -> Result<Vec<(String, String)>, LookupError> {
    let payloads: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT DISTINCT ON (aggregate_id) payload FROM events \
          WHERE aggregate_type = $1 ORDER BY aggregate_id, sequence DESC",
    )
    .bind(Config::TYPE)
    .fetch_all(executor)
    .await?;
    payloads
        .into_iter()
        .map(|payload| {
            let ConfigEvent::ConfigValueSet { setting, .. } = decode(payload, "Config")?;
            Ok((setting.key, setting.value))
        })
        .collect()
}

/// Every registered user as their events leave them.
pub async fn users<'e>(executor: impl PgExecutor<'e>) -> Result<Vec<User>, LookupError> {
    let rows: Vec<(String, serde_json::Value)> = sqlx::query_as(
        "SELECT aggregate_id, payload FROM events WHERE aggregate_type = $1 \
          ORDER BY aggregate_id, sequence",
    )
    .bind(User::TYPE)
    .fetch_all(executor)
    .await?;
    let mut users: Vec<User> = Vec::new();
    let mut current: Option<String> = None;
    for (id, payload) in rows {
        if current.as_deref() != Some(id.as_str()) {
            users.push(User::default());
            current = Some(id);
        }
        if let Some(user) = users.last_mut() {
            user.apply(decode(payload, "User")?);
        }
    }
    Ok(users)
}
