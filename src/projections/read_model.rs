//! Applying one event to the documented tables. Plain SQL writers: every value is copied from
//! the event (times included), ids of derived rows are UUIDv5s of their identity, and the
//! per-aggregate position guard makes re-applying an event a no-op.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::audit::{self, AuditEntry};
use crate::domain::actor::Actor;
use crate::domain::approval::{Approval, ApprovalEvent};
use crate::domain::certificate::{Artifact, Certificate, CertificateEvent};
use crate::domain::config::{Config, ConfigEvent};
use crate::domain::notification::{Notification, NotificationEvent};
use crate::domain::refusal::{Refusal, RefusalEvent};
use crate::domain::request::{CertificateRequest, RequestEvent};
use crate::domain::user::{User, UserEvent};
use crate::domain::values::{CaType, RevocationReason};
use crate::feed::StoredEvent;

/// Namespace of derived row ids (approvals, answers, revocations, private keys).
const ROW_NAMESPACE: Uuid = Uuid::from_u128(0x2c7b_91d4_0e6f_4f3a_8a25_6e1d_9c0b_7a44);

fn row_id(parts: &[&str]) -> Uuid {
    Uuid::new_v5(&ROW_NAMESPACE, parts.join("/").as_bytes())
}

/// Prepares a projector transaction: `updated_at` comes from the events, not the trigger.
pub(crate) async fn begin(conn: &mut PgConnection) -> anyhow::Result<()> {
    sqlx::query("SET LOCAL cert_assistant.projector = 'on'")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// One batch's writer: its connection, and the `users` rows it knows exist (every event
/// names its actor, so most batches would otherwise ask for the same few rows again).
pub(crate) struct Cx<'c> {
    conn: &'c mut PgConnection,
    users: HashSet<Uuid>,
    /// Request numbers by request id (a request's events name it in their audit rows).
    numbers: HashMap<Uuid, String>,
}

/// Applies a batch of events in feed order (each with its audit row), skipping those
/// applied before. Per event only its own table writes go to the server; the position
/// guard, the audit rows and their hash chain are read and written once per batch.
pub(crate) async fn apply_batch(
    conn: &mut PgConnection,
    events: &[StoredEvent],
) -> anyhow::Result<()> {
    let mut positions = Positions::load(conn, events).await?;
    let mut audit_rows = Vec::with_capacity(events.len());
    let mut cx = Cx {
        conn,
        users: HashSet::new(),
        numbers: HashMap::new(),
    };
    for event in events {
        if !positions.advance(event) {
            continue;
        }
        let row = apply_one(&mut cx, event).await.with_context(|| {
            format!(
                "applying {} #{} of {} {}",
                event.event_type, event.sequence, event.aggregate_type, event.aggregate_id
            )
        })?;
        audit_rows.extend(row);
    }
    positions.save(cx.conn).await?;
    audit::append(cx.conn, &audit_rows).await
}

/// Each aggregate's last applied sequence, for the aggregates of one batch.
struct Positions {
    last: HashMap<(String, String), i64>,
    moved: HashSet<(String, String)>,
}

impl Positions {
    async fn load(conn: &mut PgConnection, events: &[StoredEvent]) -> anyhow::Result<Self> {
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
    fn advance(&mut self, event: &StoredEvent) -> bool {
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

    async fn save(self, conn: &mut PgConnection) -> anyhow::Result<()> {
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

/// Writes one event's rows; returns its audit row (none for unknown aggregate types).
async fn apply_one(
    cx: &mut Cx<'_>,
    event: &StoredEvent,
) -> anyhow::Result<Option<audit::AuditRow>> {
    let entry = match event.aggregate_type.as_str() {
        User::TYPE => users(cx, parse(event)?).await?,
        CertificateRequest::TYPE => requests(cx, event, parse(event)?).await?,
        Approval::TYPE => approvals(cx, event, parse(event)?).await?,
        Certificate::TYPE => certificates(cx, event, parse(event)?).await?,
        Refusal::TYPE => refusal(parse(event)?),
        Config::TYPE => config(cx, parse(event)?).await?,
        Notification::TYPE => notifications(cx, event, parse(event)?).await?,
        other => {
            tracing::warn!(
                aggregate_type = other,
                "projector: unknown aggregate type; skipped"
            );
            return Ok(None);
        }
    };
    let row = audit::AuditRow::new(event, entry);
    if let Some((user_id, email, role)) = row.actor() {
        ensure_user_row(cx, user_id, email, role, event.at()).await?;
    }
    Ok(Some(row))
}

fn parse<E: serde::de::DeserializeOwned>(event: &StoredEvent) -> anyhow::Result<E> {
    event.payload_as()
}

fn aggregate_uuid(event: &StoredEvent) -> anyhow::Result<Uuid> {
    event.aggregate_uuid()
}

/// Inserts a minimal `users` row for an actor the table does not know yet (foreign keys need
/// it); `UserRegistered` fills in the rest. Once per user and batch.
async fn ensure_user_row(
    cx: &mut Cx<'_>,
    user_id: Uuid,
    email: &str,
    role: &str,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    if cx.users.contains(&user_id) {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO users (id, email, role, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(user_id)
    .bind(email)
    .bind(role)
    .bind(at)
    .execute(&mut *cx.conn)
    .await?;
    cx.users.insert(user_id);
    Ok(())
}

async fn ensure_user(cx: &mut Cx<'_>, actor: &Actor, at: DateTime<Utc>) -> anyhow::Result<()> {
    ensure_user_row(
        cx,
        actor.user_id,
        actor.email.as_ref(),
        actor.role.as_str(),
        at,
    )
    .await
}

async fn users(cx: &mut Cx<'_>, event: UserEvent) -> anyhow::Result<AuditEntry> {
    Ok(match event {
        UserEvent::UserRegistered {
            user,
            display_name,
            platform,
            at,
        } => {
            sqlx::query(
                "INSERT INTO users (id, email, display_name, role, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) \
                 ON CONFLICT (id) DO UPDATE SET display_name = coalesce(EXCLUDED.display_name, users.display_name), \
                     role = EXCLUDED.role, created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at",
            )
            .bind(user.user_id)
            .bind(user.email.as_ref())
            .bind(display_name)
            .bind(user.role.as_str())
            .bind(at)
            .execute(&mut *cx.conn)
            .await?;
            AuditEntry::new("user_registered", "authentication", "user", "create")
                .actor(&user)
                .resource(Some(user.user_id), Some(user.email.to_string()))
                .details(json!({ "role": user.role, "platform": platform }))
        }
        UserEvent::RoleGranted {
            user,
            previous_role,
            by,
            at,
        } => {
            sqlx::query("UPDATE users SET role = $2, updated_at = $3 WHERE id = $1")
                .bind(user.user_id)
                .bind(user.role.as_str())
                .bind(at)
                .execute(&mut *cx.conn)
                .await?;
            AuditEntry::new("role_granted", "authorization", "user", "update")
                .actor(&by)
                .severity("warning")
                .resource(Some(user.user_id), Some(user.email.to_string()))
                .details(json!({ "role": user.role, "previous_role": previous_role }))
        }
        UserEvent::ChatAccountLinked {
            user,
            platform,
            account,
            ..
        } => AuditEntry::new("chat_account_linked", "authentication", "user", "update")
            .actor(&user)
            .severity("warning")
            .resource(Some(user.user_id), Some(user.email.to_string()))
            .details(json!({ "platform": platform, "account": account })),
    })
}

async fn set_request(
    conn: &mut PgConnection,
    id: Uuid,
    assignments: &str,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    sqlx::query(&format!(
        "UPDATE certificate_requests SET {assignments}, updated_at = $2 WHERE id = $1"
    ))
    .bind(id)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The number of request `id`; asked once per batch (numbers never change).
async fn request_number(cx: &mut Cx<'_>, id: Uuid) -> anyhow::Result<Option<String>> {
    if let Some(number) = cx.numbers.get(&id) {
        return Ok(Some(number.clone()));
    }
    let number: Option<String> =
        sqlx::query_scalar("SELECT request_number FROM certificate_requests WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *cx.conn)
            .await?;
    if let Some(number) = &number {
        cx.numbers.insert(id, number.clone());
    }
    Ok(number)
}

async fn requests(
    cx: &mut Cx<'_>,
    stored: &StoredEvent,
    event: RequestEvent,
) -> anyhow::Result<AuditEntry> {
    let id = aggregate_uuid(stored)?;
    let entry =
        |event_type: &str, action: &str| AuditEntry::new(event_type, "request", "request", action);
    let entry = match event {
        RequestEvent::RequestCreated {
            request_id,
            request_number,
            requester,
            subject,
            certificate_type,
            key_algorithm,
            validity_days,
            csr_type,
            csr_pem,
            private_key: _,
            business,
            answers,
            recommendation,
            requested_ca_type,
            override_requested,
            override_reason,
            // The renewal link lives in the events; `business.notes` says it for people.
            renews: _,
            // Recorded with the ARN in `acm_certificates` once ACM issues it.
            stays_in_acm: _,
            at,
        } => {
            ensure_user(cx, &requester, at).await?;
            cx.numbers.insert(request_id, request_number.to_string());
            let sans: Vec<String> = subject
                .subject_alternative_names
                .iter()
                .map(|n| n.as_ref().to_owned())
                .collect();
            let text =
                |t: &Option<crate::domain::text::Text>| t.as_ref().map(|t| t.as_str().to_owned());
            sqlx::query(
                "INSERT INTO certificate_requests (id, request_number, user_id, common_name, \
                     organization, organizational_unit, locality, state_province, country, \
                     email_address, subject_alternative_names, certificate_type, key_algorithm, \
                     validity_period_days, csr_type, csr_content, business_justification, \
                     department, cost_center, project_code, additional_notes, status, \
                     recommended_ca_type, override_requested, override_reason, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                     $17, $18, $19, $20, $21, 'draft', $22, $23, $24, $25, $25) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(request_id)
            .bind(request_number.as_ref())
            .bind(requester.user_id)
            .bind(subject.common_name.as_ref())
            .bind(text(&subject.organization))
            .bind(text(&subject.organizational_unit))
            .bind(text(&subject.locality))
            .bind(text(&subject.state_province))
            .bind(subject.country.as_ref().map(|c| c.as_ref().to_owned()))
            .bind(subject.email_address.as_ref().map(|e| e.as_ref().to_owned()))
            .bind(&sans)
            .bind(certificate_type.as_str())
            .bind(key_algorithm.as_str())
            .bind(i32::try_from(validity_days.days()).unwrap_or(i32::MAX))
            .bind(csr_type.as_str())
            .bind(&csr_pem)
            .bind(business.justification.as_str())
            .bind(text(&business.department))
            .bind(text(&business.cost_center))
            .bind(text(&business.project_code))
            .bind(text(&business.notes))
            .bind(recommendation.as_ref().map(|r| r.ca_type.as_str()))
            .bind(override_requested)
            .bind(&override_reason)
            .bind(at)
            .execute(&mut *cx.conn)
            .await?;
            if let (Some(answers), Some(recommendation)) = (&answers, &recommendation) {
                let compliance: Vec<&str> = answers
                    .compliance_requirements
                    .iter()
                    .map(|c| c.as_str())
                    .collect();
                sqlx::query(
                    "INSERT INTO recommendation_answers (id, request_id, service_type, \
                         publicly_accessible, expected_lifespan, browser_trust_required, \
                         environment_type, certificate_count, domain_type, criticality_level, \
                         compliance_requirements, renewal_preference, recommended_ca_type, \
                         recommendation_reason, recommendation_confidence, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                         $15::text::numeric, $16) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(row_id(&["answers", &request_id.to_string()]))
                .bind(request_id)
                .bind(answers.service_type.as_str())
                .bind(answers.publicly_accessible.as_str())
                .bind(answers.expected_lifespan.as_str())
                .bind(answers.browser_trust_required.as_str())
                .bind(answers.environment_type.as_str())
                .bind(answers.certificate_count.as_str())
                .bind(answers.domain_type.as_str())
                .bind(answers.criticality_level.as_str())
                .bind(&compliance)
                .bind(answers.renewal_preference.as_str())
                .bind(recommendation.ca_type.as_str())
                .bind(&recommendation.reason)
                .bind(recommendation.confidence.to_string())
                .bind(at)
                .execute(&mut *cx.conn)
                .await?;
            }
            entry("request_created", "create")
                .actor(&requester)
                .resource(Some(request_id), Some(request_number.to_string()))
                .details(json!({
                    "common_name": subject.common_name,
                    "certificate_type": certificate_type,
                    "key_algorithm": key_algorithm,
                    "validity_days": validity_days.days(),
                    "csr_type": csr_type,
                    "requested_ca_type": requested_ca_type,
                    "recommended_ca_type": recommendation.as_ref().map(|r| r.ca_type),
                    "override_requested": override_requested,
                }))
        }
        RequestEvent::RequestSubmitted { by, at } => {
            sqlx::query(
                "UPDATE certificate_requests SET status = 'pending_approval', submitted_at = $2, \
                     updated_at = $2 WHERE id = $1",
            )
            .bind(id)
            .bind(at)
            .execute(&mut *cx.conn)
            .await?;
            entry("request_submitted", "submit").actor(&by)
        }
        RequestEvent::RequestApproved { approvers, at } => {
            let last = approvers.last().map(|a| a.user_id);
            sqlx::query(
                "UPDATE certificate_requests SET status = 'approved', approved_at = $2, \
                     approver_id = coalesce($3, approver_id), updated_at = $2 WHERE id = $1",
            )
            .bind(id)
            .bind(at)
            .bind(last)
            .execute(&mut *cx.conn)
            .await?;
            let mut e = entry("request_approved", "approve").details(json!({
                "approvers": approvers.iter().map(|a| a.email.to_string()).collect::<Vec<_>>()
            }));
            if let Some(last) = approvers.last() {
                e = e.actor(last);
            }
            e
        }
        RequestEvent::RequestRejected { by, reason, at } => {
            sqlx::query(
                "UPDATE certificate_requests SET status = 'rejected', rejected_at = $2, \
                     approver_id = $3, updated_at = $2 WHERE id = $1",
            )
            .bind(id)
            .bind(at)
            .bind(by.user_id)
            .execute(&mut *cx.conn)
            .await?;
            entry("request_rejected", "reject")
                .actor(&by)
                .details(json!({ "reason": reason }))
        }
        RequestEvent::IssuanceStarted { at } => {
            set_request(cx.conn, id, "status = 'in_progress'", at).await?;
            entry("issuance_started", "issue")
        }
        RequestEvent::CaRequestRecorded {
            ca_request_id,
            ca_status,
            ca_type,
            at,
        } => {
            if ca_type == Some(CaType::Public) {
                // An ACM ARN, in ACM's own table; the request row just moves on.
                sqlx::query(
                    "INSERT INTO acm_certificates (arn, request_id, status, requested_at, updated_at) \
                     VALUES ($1, $2, 'pending', $3, $3) \
                     ON CONFLICT (arn) DO UPDATE SET updated_at = EXCLUDED.updated_at",
                )
                .bind(&ca_request_id)
                .bind(id)
                .bind(at)
                .execute(&mut *cx.conn)
                .await?;
                sqlx::query("UPDATE certificate_requests SET updated_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(at)
                    .execute(&mut *cx.conn)
                    .await?;
            } else {
                sqlx::query(
                    "UPDATE certificate_requests SET adcs_request_id = $2, adcs_status = $3, \
                         updated_at = $4 WHERE id = $1",
                )
                .bind(id)
                .bind(&ca_request_id)
                .bind(&ca_status)
                .bind(at)
                .execute(&mut *cx.conn)
                .await?;
            }
            entry("ca_request_recorded", "update")
                .details(json!({ "ca_request_id": ca_request_id, "ca_status": ca_status }))
        }
        RequestEvent::ValidationRecordsRequired { records, at } => {
            sqlx::query("UPDATE certificate_requests SET updated_at = $2 WHERE id = $1")
                .bind(id)
                .bind(at)
                .execute(&mut *cx.conn)
                .await?;
            entry("validation_records_required", "update").details(json!({
                "records": records
                    .iter()
                    .map(|r| json!({
                        "domain": r.domain,
                        "name": r.name,
                        "type": r.record_type,
                        "value": r.value,
                        "created_in": r.created_in,
                    }))
                    .collect::<Vec<_>>(),
            }))
        }
        RequestEvent::IssuanceRetryScheduled {
            retry_count,
            error,
            at,
        } => {
            sqlx::query(
                "UPDATE certificate_requests SET retry_count = $2, adcs_error_message = $3, \
                     updated_at = $4 WHERE id = $1",
            )
            .bind(id)
            .bind(i32::try_from(retry_count).unwrap_or(i32::MAX))
            .bind(&error)
            .bind(at)
            .execute(&mut *cx.conn)
            .await?;
            entry("issuance_retry_scheduled", "issue")
                .severity("warning")
                .details(json!({ "retry_count": retry_count, "error": error }))
        }
        RequestEvent::RequestIssued {
            certificate_id,
            serial_number,
            at,
        } => {
            sqlx::query(
                "UPDATE certificate_requests SET status = 'issued', issued_at = $2, updated_at = $2 \
                  WHERE id = $1",
            )
            .bind(id)
            .bind(at)
            .execute(&mut *cx.conn)
            .await?;
            entry("request_issued", "issue").details(json!({
                "certificate_id": certificate_id,
                "serial_number": serial_number,
            }))
        }
        RequestEvent::IssuanceFailed { error, at } => {
            sqlx::query(
                "UPDATE certificate_requests SET status = 'failed', adcs_error_message = $2, \
                     updated_at = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(&error)
            .bind(at)
            .execute(&mut *cx.conn)
            .await?;
            entry("issuance_failed", "issue")
                .severity("error")
                .failure(error)
        }
        RequestEvent::RequestCancelled { by, reason, at } => {
            set_request(cx.conn, id, "status = 'cancelled'", at).await?;
            entry("request_cancelled", "cancel")
                .actor(&by)
                .details(json!({ "reason": reason }))
        }
        RequestEvent::RequestExpired { waited_days, at } => {
            set_request(cx.conn, id, "status = 'cancelled'", at).await?;
            entry("request_expired", "cancel").details(json!({
                "reason": format!("no decision within {waited_days} days"),
                "waited_days": waited_days,
            }))
        }
        RequestEvent::RequestRevoked {
            certificate_id,
            reason,
            at,
        } => {
            set_request(cx.conn, id, "status = 'revoked'", at).await?;
            entry("request_revoked", "revoke")
                .details(json!({ "certificate_id": certificate_id, "reason": reason }))
        }
    };
    let number = request_number(cx, id).await?;
    Ok(if entry.resource_id.is_none() {
        entry.resource(Some(id), number)
    } else {
        entry
    })
}

/// Upserts one approver's row of a request.
#[expect(
    clippy::too_many_arguments,
    reason = "one row, many columns; a struct would only rename them"
)]
async fn approval_row(
    cx: &mut Cx<'_>,
    request_id: Uuid,
    approver: &Actor,
    status: &str,
    decision: Option<&str>,
    comments: Option<&str>,
    delegated_to: Option<Uuid>,
    delegation_reason: Option<&str>,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    ensure_user(cx, approver, at).await?;
    let decided_at = (status != "pending").then_some(at);
    let notified_at = (status == "pending").then_some(at);
    sqlx::query(
        "INSERT INTO approvals (id, request_id, approver_id, status, decision, comments, \
             decided_at, delegated_to_id, delegation_reason, notified_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
         ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, decision = EXCLUDED.decision, \
             comments = EXCLUDED.comments, decided_at = EXCLUDED.decided_at, \
             delegated_to_id = EXCLUDED.delegated_to_id, \
             delegation_reason = EXCLUDED.delegation_reason, updated_at = EXCLUDED.updated_at",
    )
    .bind(row_id(&[
        "approval",
        &request_id.to_string(),
        &approver.user_id.to_string(),
    ]))
    .bind(request_id)
    .bind(approver.user_id)
    .bind(status)
    .bind(decision)
    .bind(comments)
    .bind(decided_at)
    .bind(delegated_to)
    .bind(delegation_reason)
    .bind(notified_at)
    .bind(at)
    .execute(&mut *cx.conn)
    .await?;
    Ok(())
}

/// Approvers who never acted leave the table once the approval is closed, so
/// `v_pending_approvals` lists only what still waits for someone.
async fn drop_pending(conn: &mut PgConnection, request_id: Uuid) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM approvals WHERE request_id = $1 AND status = 'pending'")
        .bind(request_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn approvals(
    cx: &mut Cx<'_>,
    stored: &StoredEvent,
    event: ApprovalEvent,
) -> anyhow::Result<AuditEntry> {
    let request_id = aggregate_uuid(stored)?;
    let entry =
        |event_type: &str, action: &str| AuditEntry::new(event_type, "approval", "request", action);
    let entry = match event {
        ApprovalEvent::ApprovalOpened {
            required_approvals,
            approvers,
            at,
            ..
        } => {
            for approver in &approvers {
                approval_row(
                    cx, request_id, approver, "pending", None, None, None, None, at,
                )
                .await?;
            }
            entry("approval_requested", "create").details(json!({
                "required_approvals": required_approvals,
                "approvers": approvers.iter().map(|a| a.email.to_string()).collect::<Vec<_>>(),
            }))
        }
        ApprovalEvent::ApprovalGranted {
            by,
            comment,
            approvals,
            required_approvals,
            at,
        } => {
            approval_row(
                cx,
                request_id,
                &by,
                "approved",
                Some("approve"),
                comment.as_deref(),
                None,
                None,
                at,
            )
            .await?;
            entry("approval_granted", "approve")
                .actor(&by)
                .details(json!({ "approvals": approvals, "required_approvals": required_approvals, "comment": comment }))
        }
        ApprovalEvent::ApprovalRejected { by, reason, at } => {
            approval_row(
                cx,
                request_id,
                &by,
                "rejected",
                Some("reject"),
                Some(&reason),
                None,
                None,
                at,
            )
            .await?;
            drop_pending(cx.conn, request_id).await?;
            entry("approval_rejected", "reject")
                .actor(&by)
                .details(json!({ "reason": reason }))
        }
        ApprovalEvent::ApprovalDelegated { by, to, reason, at } => {
            ensure_user(cx, &to, at).await?;
            approval_row(
                cx,
                request_id,
                &by,
                "delegated",
                None,
                None,
                Some(to.user_id),
                Some(&reason),
                at,
            )
            .await?;
            approval_row(cx, request_id, &to, "pending", None, None, None, None, at).await?;
            entry("approval_delegated", "delegate")
                .actor(&by)
                .details(json!({ "to": to.email, "reason": reason }))
        }
        ApprovalEvent::ApprovalReminderSent {
            approvers,
            reminder_count,
            escalated_to,
            at,
        } => {
            sqlx::query(
                "UPDATE approvals SET reminder_count = $2, last_reminder_at = $3, updated_at = $3 \
                  WHERE request_id = $1 AND status = 'pending'",
            )
            .bind(request_id)
            .bind(i32::try_from(reminder_count).unwrap_or(i32::MAX))
            .bind(at)
            .execute(&mut *cx.conn)
            .await?;
            entry("approval_reminder_sent", "remind").details(json!({
                "reminder_count": reminder_count,
                "approvers": approvers.iter().map(|a| a.email.to_string()).collect::<Vec<_>>(),
                "escalated_to": escalated_to.iter().map(|a| a.email.to_string()).collect::<Vec<_>>(),
            }))
        }
        ApprovalEvent::ApprovalPolicySatisfied { approvers, .. } => {
            drop_pending(cx.conn, request_id).await?;
            entry("approval_policy_satisfied", "approve").details(json!({
                "approvers": approvers.iter().map(|a| a.email.to_string()).collect::<Vec<_>>(),
            }))
        }
        ApprovalEvent::ApprovalWithdrawn { reason, .. } => {
            drop_pending(cx.conn, request_id).await?;
            entry("approval_withdrawn", "cancel").details(json!({ "reason": reason }))
        }
    };
    let number = request_number(cx, request_id).await?;
    Ok(entry.resource(Some(request_id), number))
}

async fn certificates(
    cx: &mut Cx<'_>,
    stored: &StoredEvent,
    event: CertificateEvent,
) -> anyhow::Result<AuditEntry> {
    let id = aggregate_uuid(stored)?;
    let entry = |event_type: &str, action: &str| {
        AuditEntry::new(event_type, "certificate", "certificate", action)
    };
    let entry = match event {
        CertificateEvent::CertificateIssued { certificate: c, at } => {
            ensure_user(cx, &c.owner, at).await?;
            let sans: Vec<String> = c
                .subject_alternative_names
                .iter()
                .map(|n| n.as_ref().to_owned())
                .collect();
            sqlx::query(
                "INSERT INTO certificates (id, request_id, user_id, serial_number, thumbprint_sha1, \
                     thumbprint_sha256, common_name, subject_dn, issuer_dn, subject_alternative_names, \
                     valid_from, valid_to, key_algorithm, key_size, signature_algorithm, s3_bucket, \
                     s3_key_certificate, s3_key_chain, s3_key_private_key, status, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
                     $18, $19, 'active', $20, $20) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(c.certificate_id)
            .bind(c.request_id)
            .bind(c.owner.user_id)
            .bind(c.serial_number.as_ref())
            .bind(&c.thumbprint_sha1)
            .bind(&c.thumbprint_sha256)
            .bind(c.common_name.as_ref())
            .bind(&c.subject_dn)
            .bind(&c.issuer_dn)
            .bind(&sans)
            .bind(c.valid_from)
            .bind(c.valid_to)
            .bind(c.key_algorithm.as_str())
            .bind(i32::try_from(c.key_size).unwrap_or(i32::MAX))
            .bind(&c.signature_algorithm)
            .bind(&c.storage.bucket)
            .bind(&c.storage.certificate)
            .bind(&c.storage.chain)
            .bind(&c.storage.private_key)
            .bind(at)
            .execute(&mut *cx.conn)
            .await?;
            if let Some(key) = &c.private_key {
                sqlx::query(
                    "INSERT INTO private_keys (id, certificate_id, request_id, user_id, encrypted_key, \
                         encryption_algorithm, encryption_key_id, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
                )
                .bind(row_id(&["private_key", &c.certificate_id.to_string()]))
                .bind(c.certificate_id)
                .bind(c.request_id)
                .bind(c.owner.user_id)
                .bind(&key.ciphertext)
                .bind(&key.algorithm)
                .bind(key.data_key_id.to_string())
                .bind(at)
                .execute(&mut *cx.conn)
                .await?;
            }
            if let Some(acm) = &c.acm {
                sqlx::query(
                    "UPDATE acm_certificates SET certificate_id = $2, status = 'issued', \
                         exported = $3, serial_number = $4, not_after = $5, issued_at = $6, \
                         updated_at = $6 \
                      WHERE arn = $1",
                )
                .bind(&acm.arn)
                .bind(c.certificate_id)
                .bind(acm.exported)
                .bind(c.serial_number.as_ref())
                .bind(c.valid_to)
                .bind(at)
                .execute(&mut *cx.conn)
                .await?;
            }
            entry("certificate_issued", "create")
                .actor(&c.owner)
                .details(json!({
                    "request_number": c.request_number,
                    "common_name": c.common_name,
                    "valid_to": c.valid_to,
                    "issuer_dn": c.issuer_dn,
                    "acm_arn": c.acm.as_ref().map(|a| &a.arn),
                }))
        }
        CertificateEvent::CertificateRenewedAtCa {
            previous_serial,
            renewal: r,
            at,
        } => {
            sqlx::query(
                "UPDATE certificates SET serial_number = $2, thumbprint_sha1 = $3, \
                     thumbprint_sha256 = $4, valid_from = $5, valid_to = $6, s3_bucket = $7, \
                     s3_key_certificate = $8, s3_key_chain = $9, \
                     s3_key_private_key = coalesce($10, s3_key_private_key), status = 'active', \
                     expiry_notification_sent = false, expiry_notifications = '[]'::jsonb, \
                     updated_at = $11 \
                  WHERE id = $1",
            )
            .bind(id)
            .bind(r.serial_number.as_ref())
            .bind(&r.thumbprint_sha1)
            .bind(&r.thumbprint_sha256)
            .bind(r.valid_from)
            .bind(r.valid_to)
            .bind(&r.storage.bucket)
            .bind(&r.storage.certificate)
            .bind(&r.storage.chain)
            .bind(&r.storage.private_key)
            .bind(at)
            .execute(&mut *cx.conn)
            .await?;
            if let Some(key) = &r.private_key {
                sqlx::query(
                    "UPDATE private_keys SET encrypted_key = $2, encryption_algorithm = $3, \
                         encryption_key_id = $4, download_allowed = true, downloaded = false, \
                         download_count = 0, first_downloaded_at = NULL, \
                         last_downloaded_at = NULL, deleted_at = NULL \
                      WHERE certificate_id = $1",
                )
                .bind(id)
                .bind(&key.ciphertext)
                .bind(&key.algorithm)
                .bind(key.data_key_id.to_string())
                .execute(&mut *cx.conn)
                .await?;
            }
            sqlx::query(
                "UPDATE acm_certificates SET serial_number = $2, not_after = $3, renewed_at = $4, \
                     renewals = renewals + 1, updated_at = $4 \
                  WHERE certificate_id = $1",
            )
            .bind(id)
            .bind(r.serial_number.as_ref())
            .bind(r.valid_to)
            .bind(at)
            .execute(&mut *cx.conn)
            .await?;
            entry("certificate_renewed_at_ca", "renew").details(json!({
                "previous_serial": previous_serial,
                "serial_number": r.serial_number,
                "valid_to": r.valid_to,
            }))
        }
        CertificateEvent::CertificateDownloaded {
            by,
            artifact,
            download_count,
            at,
        } => {
            match artifact {
                Artifact::Certificate => {
                    sqlx::query(
                        "UPDATE certificates SET download_count = $2, \
                             first_downloaded_at = coalesce(first_downloaded_at, $3), \
                             last_downloaded_at = $3, updated_at = $3 WHERE id = $1",
                    )
                    .bind(id)
                    .bind(i32::try_from(download_count).unwrap_or(i32::MAX))
                    .bind(at)
                    .execute(&mut *cx.conn)
                    .await?;
                }
                Artifact::PrivateKey => {
                    sqlx::query(
                        "UPDATE private_keys SET downloaded = true, \
                             download_count = coalesce(download_count, 0) + 1, \
                             first_downloaded_at = coalesce(first_downloaded_at, $2), \
                             last_downloaded_at = $2 WHERE certificate_id = $1",
                    )
                    .bind(id)
                    .bind(at)
                    .execute(&mut *cx.conn)
                    .await?;
                }
                Artifact::Chain => {}
            }
            entry("certificate_downloaded", "download")
                .actor(&by)
                .details(json!({ "artifact": artifact }))
        }
        CertificateEvent::ExpiryReminderSent { days_before, at } => {
            sqlx::query(
                "UPDATE certificates SET expiry_notification_sent = true, \
                     expiry_notifications = coalesce(expiry_notifications, '[]'::jsonb) || \
                         jsonb_build_array(jsonb_build_object('sent_at', $2::timestamptz, 'days_before', $3::int)), \
                     updated_at = $2 WHERE id = $1",
            )
            .bind(id)
            .bind(at)
            .bind(i32::try_from(days_before).unwrap_or(i32::MAX))
            .execute(&mut *cx.conn)
            .await?;
            entry("expiry_reminder_sent", "remind").details(json!({ "days_before": days_before }))
        }
        CertificateEvent::CertificateExpired { at } => {
            sqlx::query(
                "UPDATE certificates SET status = 'expired', updated_at = $2 WHERE id = $1",
            )
            .bind(id)
            .bind(at)
            .execute(&mut *cx.conn)
            .await?;
            entry("certificate_expired", "expire").severity("warning")
        }
        CertificateEvent::RevocationRequested {
            by,
            reason,
            text,
            at,
        } => {
            ensure_user(cx, &by, at).await?;
            // Not revoked yet: `certificate_revocations` gets its row when it is.
            entry("revocation_requested", "revoke")
                .actor(&by)
                .details(json!({ "reason": reason.as_str(), "reason_text": text, "approval_required": true }))
        }
        CertificateEvent::RevocationRejected {
            by,
            requested_by,
            comment,
            at,
        } => {
            ensure_user(cx, &by, at).await?;
            entry("revocation_rejected", "reject")
                .actor(&by)
                .details(json!({ "comment": comment, "requested_by": requested_by.email }))
        }
        CertificateEvent::PrivateKeyDestroyed { at } => {
            sqlx::query(
                "UPDATE private_keys SET download_allowed = false, deleted_at = $2 \
                  WHERE certificate_id = $1",
            )
            .bind(id)
            .bind(at)
            .execute(&mut *cx.conn)
            .await?;
            entry("private_key_destroyed", "delete").severity("warning")
        }
        CertificateEvent::CaRevocationRecorded {
            ca_status,
            error,
            confirmed_by,
            at,
        } => {
            if let Some(admin) = &confirmed_by {
                ensure_user(cx, admin, at).await?;
            }
            sqlx::query(
                "UPDATE certificate_revocations SET adcs_status = $2, adcs_error_message = $3, \
                     crl_updated_at = CASE WHEN $2 = 'revoked' THEN $4 ELSE crl_updated_at END \
                  WHERE certificate_id = $1",
            )
            .bind(id)
            .bind(&ca_status)
            .bind(&error)
            .bind(at)
            .execute(&mut *cx.conn)
            .await?;
            if ca_status == "revoked" {
                sqlx::query(
                    "UPDATE acm_certificates SET status = 'revoked', updated_at = $2 \
                      WHERE certificate_id = $1",
                )
                .bind(id)
                .bind(at)
                .execute(&mut *cx.conn)
                .await?;
            }
            let mut entry = entry("ca_revocation_recorded", "revoke").details(json!({
                "ca_status": ca_status,
                "confirmed_by": confirmed_by.as_ref().map(|a| a.email.to_string()),
            }));
            if let Some(admin) = &confirmed_by {
                entry = entry.actor(admin);
            }
            match error {
                Some(error) => entry.severity("error").failure(error),
                None => entry,
            }
        }
        CertificateEvent::CertificateRevoked {
            by,
            reason,
            text,
            approval_required,
            approved_by,
            at,
        } => {
            sqlx::query(
                "UPDATE certificates SET status = 'revoked', updated_at = $2 WHERE id = $1",
            )
            .bind(id)
            .bind(at)
            .execute(&mut *cx.conn)
            .await?;
            ensure_user(cx, &by, at).await?;
            if let Some(approver) = &approved_by {
                ensure_user(cx, approver, at).await?;
            }
            sqlx::query(
                "INSERT INTO certificate_revocations (id, certificate_id, request_id, user_id, \
                     reason_code, reason_text, revoked_at, approver_id, approved_at, \
                     approval_required, created_at) \
                 SELECT $1, c.id, c.request_id, $2, $3, $4, $5, $6, $7, $8, $5 \
                   FROM certificates c WHERE c.id = $9 \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(row_id(&[
                "revocation",
                &id.to_string(),
                &stored.sequence.to_string(),
            ]))
            .bind(by.user_id)
            .bind(reason.as_str())
            .bind(&text)
            .bind(at)
            .bind(approved_by.as_ref().map(|a| a.user_id))
            .bind(approved_by.as_ref().map(|_| at))
            .bind(approval_required)
            .bind(id)
            .execute(&mut *cx.conn)
            .await?;
            let severity = match reason {
                RevocationReason::KeyCompromise | RevocationReason::CaCompromise => "critical",
                _ => "warning",
            };
            entry("certificate_revoked", "revoke")
                .actor(&by)
                .severity(severity)
                .details(json!({
                    "reason": reason,
                    "reason_code": reason.code(),
                    "text": text,
                    "approval_required": approval_required,
                }))
        }
    };
    let serial: Option<String> =
        sqlx::query_scalar("SELECT serial_number FROM certificates WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *cx.conn)
            .await?;
    Ok(entry.resource(Some(id), serial))
}

fn refusal(event: RefusalEvent) -> AuditEntry {
    let RefusalEvent::AttemptRefused(attempt) = event;
    let resource_type = match attempt.resource_type.as_str() {
        "certificate" => "certificate",
        "user" => "user",
        "config" => "config",
        _ => "request",
    };
    let mut entry = AuditEntry::new(
        &format!("{}_refused", attempt.action),
        "authorization",
        resource_type,
        &attempt.action,
    )
    .severity("warning")
    .resource(attempt.resource_id, attempt.resource_identifier)
    .failure(attempt.reason);
    if let Some(actor) = &attempt.actor {
        entry = entry.actor(actor);
    }
    entry
}

async fn config(cx: &mut Cx<'_>, event: ConfigEvent) -> anyhow::Result<AuditEntry> {
    let ConfigEvent::ConfigValueSet {
        setting,
        previous_value,
        by,
        at,
    } = event;
    ensure_user(cx, &by, at).await?;
    let sensitive: bool = sqlx::query_scalar(
        "INSERT INTO system_config (id, config_key, config_value, value_type, updated_by, \
             created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) \
         ON CONFLICT (config_key) DO UPDATE SET config_value = EXCLUDED.config_value, \
             value_type = EXCLUDED.value_type, updated_by = EXCLUDED.updated_by, \
             updated_at = EXCLUDED.updated_at \
         RETURNING coalesce(is_sensitive, false)",
    )
    .bind(row_id(&["config", &setting.key]))
    .bind(&setting.key)
    .bind(&setting.value)
    .bind(setting.value_type.as_str())
    .bind(by.user_id)
    .bind(at)
    .fetch_one(&mut *cx.conn)
    .await?;
    // Sensitive values never reach the audit trail.
    let details = if sensitive {
        json!({ "value": "[redacted]" })
    } else {
        json!({ "value": setting.value, "previous_value": previous_value })
    };
    Ok(
        AuditEntry::new("config_changed", "system", "config", "update")
            .actor(&by)
            .severity("warning")
            .resource(None, Some(setting.key))
            .details(details),
    )
}

async fn notifications(
    cx: &mut Cx<'_>,
    stored: &StoredEvent,
    event: NotificationEvent,
) -> anyhow::Result<AuditEntry> {
    let id = aggregate_uuid(stored)?;
    let entry = |event_type: &str, action: &str| {
        AuditEntry::new(event_type, "system", "notification", action)
    };
    let entry = match event {
        NotificationEvent::NotificationQueued { message, at } => {
            ensure_user(cx, &message.recipient, at).await?;
            sqlx::query(
                "INSERT INTO notifications (id, user_id, recipient_email, notification_type, \
                     subject, body, channel, resource_type, resource_id, status, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(id)
            .bind(message.recipient.user_id)
            .bind(message.recipient.email.as_ref())
            .bind(message.notification_type.as_str())
            .bind(&message.subject)
            .bind(&message.body)
            .bind(message.channel.as_str())
            .bind(&message.resource_type)
            .bind(message.resource_id)
            .bind(at)
            .execute(&mut *cx.conn)
            .await?;
            entry("notification_queued", "create")
                .actor(&message.recipient)
                .details(json!({
                    "notification_type": message.notification_type,
                    "channel": message.channel,
                    "resource_type": message.resource_type,
                    "resource_id": message.resource_id,
                }))
        }
        NotificationEvent::NotificationSent {
            external_message_id,
            at,
        } => {
            sqlx::query(
                "UPDATE notifications SET status = 'sent', sent_at = $2, external_message_id = $3 \
                  WHERE id = $1",
            )
            .bind(id)
            .bind(at)
            .bind(&external_message_id)
            .execute(&mut *cx.conn)
            .await?;
            entry("notification_sent", "send")
        }
        NotificationEvent::NotificationDeliveryFailed {
            error,
            retry_count,
            gave_up,
            ..
        } => {
            sqlx::query(
                "UPDATE notifications SET retry_count = $2, error_message = $3, \
                     status = CASE WHEN $4 THEN 'failed' ELSE status END WHERE id = $1",
            )
            .bind(id)
            .bind(i32::try_from(retry_count).unwrap_or(i32::MAX))
            .bind(&error)
            .bind(gave_up)
            .execute(&mut *cx.conn)
            .await?;
            let e = entry("notification_failed", "send")
                .severity(if gave_up { "error" } else { "warning" })
                .details(json!({ "retry_count": retry_count, "gave_up": gave_up }));
            e.failure(error)
        }
        NotificationEvent::NotificationBounced { .. } => {
            sqlx::query("UPDATE notifications SET status = 'bounced' WHERE id = $1")
                .bind(id)
                .execute(&mut *cx.conn)
                .await?;
            entry("notification_bounced", "send").severity("warning")
        }
    };
    Ok(entry.resource(Some(id), None))
}
