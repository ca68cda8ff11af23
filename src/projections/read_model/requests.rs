//! `certificate_requests` and `recommendation_answers`: a request from its creation to its
//! end, and the questionnaire behind it.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::table::{Record, text_array};
use super::{Rows, row_id, statements::Statement, users};
use crate::domain::request::RequestEvent;
use crate::domain::values::CaType;
use crate::feed::StoredEvent;
use crate::projections::audit::AuditEntry;

/// A `certificate_requests` row, as far as the projector writes it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub(super) struct RequestRow {
    pub id: Uuid,
    pub request_number: String,
    pub user_id: Uuid,
    pub approver_id: Option<Uuid>,
    pub common_name: String,
    pub organization: Option<String>,
    pub organizational_unit: Option<String>,
    pub locality: Option<String>,
    pub state_province: Option<String>,
    pub country: Option<String>,
    pub email_address: Option<String>,
    pub subject_alternative_names: Option<Vec<String>>,
    pub certificate_type: String,
    pub key_algorithm: String,
    pub validity_period_days: i32,
    pub csr_type: String,
    pub csr_content: String,
    pub business_justification: String,
    pub department: Option<String>,
    pub cost_center: Option<String>,
    pub project_code: Option<String>,
    pub additional_notes: Option<String>,
    pub status: String,
    pub submitted_at: Option<DateTime<Utc>>,
    pub approved_at: Option<DateTime<Utc>>,
    pub rejected_at: Option<DateTime<Utc>>,
    pub issued_at: Option<DateTime<Utc>>,
    pub adcs_request_id: Option<String>,
    pub adcs_status: Option<String>,
    pub adcs_error_message: Option<String>,
    pub retry_count: Option<i32>,
    pub recommended_ca_type: Option<String>,
    pub override_requested: Option<bool>,
    pub override_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Record for RequestRow {
    type Key = Uuid;

    fn key(&self) -> Uuid {
        self.id
    }

    async fn load(conn: &mut PgConnection, keys: &[Uuid]) -> anyhow::Result<Vec<Self>> {
        Ok(sqlx::query_as(
            "SELECT id, request_number, user_id, approver_id, common_name, organization, \
                    organizational_unit, locality, state_province, country::text AS country, \
                    email_address, subject_alternative_names, certificate_type, \
                    key_algorithm, validity_period_days, csr_type, csr_content, \
                    business_justification, department, cost_center, project_code, \
                    additional_notes, status, submitted_at, approved_at, rejected_at, \
                    issued_at, adcs_request_id, adcs_status, adcs_error_message, \
                    retry_count, recommended_ca_type, override_requested, override_reason, \
                    created_at, updated_at \
               FROM certificate_requests WHERE id = ANY($1)",
        )
        .bind(keys)
        .fetch_all(conn)
        .await?)
    }

    async fn write(
        conn: &mut PgConnection,
        changed: &[(Option<&Self>, &Self)],
    ) -> anyhow::Result<()> {
        super::bind_columns!(
            sqlx::query(
                "INSERT INTO certificate_requests (id, request_number, user_id, approver_id, \
                     common_name, organization, organizational_unit, locality, \
                     state_province, country, email_address, certificate_type, \
                     key_algorithm, validity_period_days, csr_type, csr_content, \
                     business_justification, department, cost_center, project_code, \
                     additional_notes, status, submitted_at, approved_at, rejected_at, \
                     issued_at, adcs_request_id, adcs_status, adcs_error_message, \
                     retry_count, recommended_ca_type, override_requested, override_reason, \
                     created_at, updated_at, subject_alternative_names) \
                 SELECT r.id, r.request_number, r.user_id, r.approver_id, r.common_name, \
                        r.organization, r.organizational_unit, r.locality, r.state_province, \
                        r.country, r.email_address, r.certificate_type, r.key_algorithm, \
                        r.validity_period_days, r.csr_type, r.csr_content, \
                        r.business_justification, r.department, r.cost_center, \
                        r.project_code, r.additional_notes, r.status, r.submitted_at, \
                        r.approved_at, r.rejected_at, r.issued_at, r.adcs_request_id, \
                        r.adcs_status, r.adcs_error_message, r.retry_count, \
                        r.recommended_ca_type, r.override_requested, r.override_reason, \
                        r.created_at, r.updated_at, \
                        CASE WHEN r.sans IS NULL THEN NULL \
                             ELSE ARRAY(SELECT jsonb_array_elements_text(r.sans)) END \
                   FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::text[], \
                               $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], \
                               $11::text[], $12::text[], $13::text[], $14::int[], \
                               $15::text[], $16::text[], $17::text[], $18::text[], \
                               $19::text[], $20::text[], $21::text[], $22::text[], \
                               $23::timestamptz[], $24::timestamptz[], $25::timestamptz[], \
                               $26::timestamptz[], $27::text[], $28::text[], $29::text[], \
                               $30::int[], $31::text[], $32::bool[], $33::text[], \
                               $34::timestamptz[], $35::timestamptz[], $36::jsonb[]) \
                     AS r(id, request_number, user_id, approver_id, common_name, \
                          organization, organizational_unit, locality, state_province, \
                          country, email_address, certificate_type, key_algorithm, \
                          validity_period_days, csr_type, csr_content, \
                          business_justification, department, cost_center, project_code, \
                          additional_notes, status, submitted_at, approved_at, rejected_at, \
                          issued_at, adcs_request_id, adcs_status, adcs_error_message, \
                          retry_count, recommended_ca_type, override_requested, \
                          override_reason, created_at, updated_at, sans) \
                 ON CONFLICT (id) DO UPDATE SET approver_id = EXCLUDED.approver_id, \
                     status = EXCLUDED.status, submitted_at = EXCLUDED.submitted_at, \
                     approved_at = EXCLUDED.approved_at, rejected_at = EXCLUDED.rejected_at, \
                     issued_at = EXCLUDED.issued_at, \
                     adcs_request_id = EXCLUDED.adcs_request_id, \
                     adcs_status = EXCLUDED.adcs_status, \
                     adcs_error_message = EXCLUDED.adcs_error_message, \
                     retry_count = EXCLUDED.retry_count, updated_at = EXCLUDED.updated_at",
            ),
            changed,
            id,
            request_number,
            user_id,
            approver_id,
            common_name,
            organization,
            organizational_unit,
            locality,
            state_province,
            country,
            email_address,
            certificate_type,
            key_algorithm,
            validity_period_days,
            csr_type,
            csr_content,
            business_justification,
            department,
            cost_center,
            project_code,
            additional_notes,
            status,
            submitted_at,
            approved_at,
            rejected_at,
            issued_at,
            adcs_request_id,
            adcs_status,
            adcs_error_message,
            retry_count,
            recommended_ca_type,
            override_requested,
            override_reason,
            created_at,
            updated_at
        )
        .bind(
            changed
                .iter()
                .map(|(_, row)| text_array(&row.subject_alternative_names))
                .collect::<Vec<_>>(),
        )
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// A `recommendation_answers` row: written with its request, never changed.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct AnswersRow {
    pub id: Uuid,
    pub request_id: Uuid,
    pub service_type: String,
    pub publicly_accessible: String,
    pub expected_lifespan: String,
    pub browser_trust_required: String,
    pub environment_type: String,
    pub certificate_count: String,
    pub domain_type: String,
    pub criticality_level: String,
    pub compliance_requirements: Option<Vec<String>>,
    pub renewal_preference: String,
    pub recommended_ca_type: String,
    pub recommendation_reason: String,
    pub recommendation_confidence: String,
    pub created_at: DateTime<Utc>,
}

/// Inserts the answers of the batch's new requests (those already there are kept).
pub(super) async fn insert_answers(
    conn: &mut PgConnection,
    answers: &[AnswersRow],
) -> anyhow::Result<()> {
    if answers.is_empty() {
        return Ok(());
    }
    let changed: Vec<((), &AnswersRow)> = answers.iter().map(|row| ((), row)).collect();
    super::bind_columns!(
        sqlx::query(
            "INSERT INTO recommendation_answers (id, request_id, service_type, \
                 publicly_accessible, expected_lifespan, browser_trust_required, \
                 environment_type, certificate_count, domain_type, criticality_level, \
                 renewal_preference, recommended_ca_type, recommendation_reason, \
                 recommendation_confidence, created_at, compliance_requirements) \
             SELECT a.id, a.request_id, a.service_type, a.publicly_accessible, \
                    a.expected_lifespan, a.browser_trust_required, a.environment_type, \
                    a.certificate_count, a.domain_type, a.criticality_level, \
                    a.renewal_preference, a.recommended_ca_type, a.recommendation_reason, \
                    a.confidence::numeric, a.created_at, \
                    CASE WHEN a.compliance IS NULL THEN NULL \
                         ELSE ARRAY(SELECT jsonb_array_elements_text(a.compliance)) END \
               FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], \
                           $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], \
                           $11::text[], $12::text[], $13::text[], $14::text[], \
                           $15::timestamptz[], $16::jsonb[]) \
                 AS a(id, request_id, service_type, publicly_accessible, expected_lifespan, \
                      browser_trust_required, environment_type, certificate_count, \
                      domain_type, criticality_level, renewal_preference, \
                      recommended_ca_type, recommendation_reason, confidence, created_at, \
                      compliance) \
             ON CONFLICT (id) DO NOTHING",
        ),
        changed,
        id,
        request_id,
        service_type,
        publicly_accessible,
        expected_lifespan,
        browser_trust_required,
        environment_type,
        certificate_count,
        domain_type,
        criticality_level,
        renewal_preference,
        recommended_ca_type,
        recommendation_reason,
        recommendation_confidence,
        created_at
    )
    .bind(
        answers
            .iter()
            .map(|row| text_array(&row.compliance_requirements))
            .collect::<Vec<_>>(),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The request's row, to change it as of `at` (`updated_at` moves with every change).
fn touch(rows: &mut Rows, id: Uuid, at: DateTime<Utc>) -> Option<&mut RequestRow> {
    let row = rows.requests.get_mut(&id)?;
    row.updated_at = at;
    Some(row)
}

fn set_status(rows: &mut Rows, id: Uuid, status: &str, at: DateTime<Utc>) {
    if let Some(row) = touch(rows, id, at) {
        status.clone_into(&mut row.status);
    }
}

/// The number of request `id`, as the batch knows it.
pub(super) fn number(rows: &mut Rows, id: Uuid) -> Option<String> {
    rows.requests.get(&id).map(|row| row.request_number.clone())
}

pub(super) fn apply(
    rows: &mut Rows,
    stored: &StoredEvent,
    event: &RequestEvent,
) -> anyhow::Result<AuditEntry> {
    let id = stored.aggregate_uuid()?;
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
            users::ensure_actor(rows, requester, *at);
            let text =
                |t: &Option<crate::domain::text::Text>| t.as_ref().map(|t| t.as_str().to_owned());
            rows.requests.insert_if_absent(RequestRow {
                id: *request_id,
                request_number: request_number.to_string(),
                user_id: requester.user_id,
                approver_id: None,
                common_name: subject.common_name.to_string(),
                organization: text(&subject.organization),
                organizational_unit: text(&subject.organizational_unit),
                locality: text(&subject.locality),
                state_province: text(&subject.state_province),
                country: subject.country.as_ref().map(|c| c.as_ref().to_owned()),
                email_address: subject
                    .email_address
                    .as_ref()
                    .map(|e| e.as_ref().to_owned()),
                subject_alternative_names: Some(
                    subject
                        .subject_alternative_names
                        .iter()
                        .map(|n| n.as_ref().to_owned())
                        .collect(),
                ),
                certificate_type: certificate_type.as_str().to_owned(),
                key_algorithm: key_algorithm.as_str().to_owned(),
                validity_period_days: i32::try_from(validity_days.days()).unwrap_or(i32::MAX),
                csr_type: csr_type.as_str().to_owned(),
                csr_content: csr_pem.clone(),
                business_justification: business.justification.as_str().to_owned(),
                department: text(&business.department),
                cost_center: text(&business.cost_center),
                project_code: text(&business.project_code),
                additional_notes: text(&business.notes),
                status: "draft".to_owned(),
                submitted_at: None,
                approved_at: None,
                rejected_at: None,
                issued_at: None,
                adcs_request_id: None,
                adcs_status: None,
                adcs_error_message: None,
                retry_count: Some(0),
                recommended_ca_type: recommendation
                    .as_ref()
                    .map(|r| r.ca_type.as_str().to_owned()),
                override_requested: Some(*override_requested),
                override_reason: override_reason.clone(),
                created_at: *at,
                updated_at: *at,
            });
            if let (Some(answers), Some(recommendation)) = (answers, recommendation) {
                rows.answers.push(AnswersRow {
                    id: row_id(&["answers", &request_id.to_string()]),
                    request_id: *request_id,
                    service_type: answers.service_type.as_str().to_owned(),
                    publicly_accessible: answers.publicly_accessible.as_str().to_owned(),
                    expected_lifespan: answers.expected_lifespan.as_str().to_owned(),
                    browser_trust_required: answers.browser_trust_required.as_str().to_owned(),
                    environment_type: answers.environment_type.as_str().to_owned(),
                    certificate_count: answers.certificate_count.as_str().to_owned(),
                    domain_type: answers.domain_type.as_str().to_owned(),
                    criticality_level: answers.criticality_level.as_str().to_owned(),
                    compliance_requirements: Some(
                        answers
                            .compliance_requirements
                            .iter()
                            .map(|c| c.as_str().to_owned())
                            .collect(),
                    ),
                    renewal_preference: answers.renewal_preference.as_str().to_owned(),
                    recommended_ca_type: recommendation.ca_type.as_str().to_owned(),
                    recommendation_reason: recommendation.reason.clone(),
                    recommendation_confidence: recommendation.confidence.to_string(),
                    created_at: *at,
                });
            }
            entry("request_created", "create")
                .actor(requester)
                .resource(Some(*request_id), Some(request_number.to_string()))
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
            if let Some(row) = touch(rows, id, *at) {
                "pending_approval".clone_into(&mut row.status);
                row.submitted_at = Some(*at);
            }
            entry("request_submitted", "submit").actor(by)
        }
        RequestEvent::RequestApproved { approvers, at } => {
            if let Some(row) = touch(rows, id, *at) {
                "approved".clone_into(&mut row.status);
                row.approved_at = Some(*at);
                if let Some(last) = approvers.last() {
                    row.approver_id = Some(last.user_id);
                }
            }
            let mut e = entry("request_approved", "approve").details(json!({
                "approvers": approvers.iter().map(|a| a.email.to_string()).collect::<Vec<_>>()
            }));
            if let Some(last) = approvers.last() {
                e = e.actor(last);
            }
            e
        }
        RequestEvent::RequestRejected { by, reason, at } => {
            if let Some(row) = touch(rows, id, *at) {
                "rejected".clone_into(&mut row.status);
                row.rejected_at = Some(*at);
                row.approver_id = Some(by.user_id);
            }
            entry("request_rejected", "reject")
                .actor(by)
                .details(json!({ "reason": reason }))
        }
        RequestEvent::IssuanceStarted { at } => {
            set_status(rows, id, "in_progress", *at);
            entry("issuance_started", "issue")
        }
        RequestEvent::CaRequestRecorded {
            ca_request_id,
            ca_status,
            ca_type,
            at,
        } => {
            let row = touch(rows, id, *at);
            if *ca_type == Some(CaType::Public) {
                // An ACM ARN, in ACM's own table; the request row just moves on.
                if row.is_some() {
                    rows.statements.push(Statement::AcmRequested {
                        arn: ca_request_id.clone(),
                        request_id: id,
                        at: *at,
                    });
                }
            } else if let Some(row) = row {
                row.adcs_request_id = Some(ca_request_id.clone());
                row.adcs_status = Some(ca_status.clone());
            }
            entry("ca_request_recorded", "update")
                .details(json!({ "ca_request_id": ca_request_id, "ca_status": ca_status }))
        }
        RequestEvent::ValidationRecordsRequired { records, at } => {
            let _ = touch(rows, id, *at);
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
            if let Some(row) = touch(rows, id, *at) {
                row.retry_count = Some(i32::try_from(*retry_count).unwrap_or(i32::MAX));
                row.adcs_error_message = Some(error.clone());
            }
            entry("issuance_retry_scheduled", "issue")
                .severity("warning")
                .details(json!({ "retry_count": retry_count, "error": error }))
        }
        RequestEvent::RequestIssued {
            certificate_id,
            serial_number,
            at,
        } => {
            if let Some(row) = touch(rows, id, *at) {
                "issued".clone_into(&mut row.status);
                row.issued_at = Some(*at);
            }
            entry("request_issued", "issue").details(json!({
                "certificate_id": certificate_id,
                "serial_number": serial_number,
            }))
        }
        RequestEvent::IssuanceFailed { error, at } => {
            if let Some(row) = touch(rows, id, *at) {
                "failed".clone_into(&mut row.status);
                row.adcs_error_message = Some(error.clone());
            }
            entry("issuance_failed", "issue")
                .severity("error")
                .failure(error.clone())
        }
        RequestEvent::RequestCancelled { by, reason, at } => {
            set_status(rows, id, "cancelled", *at);
            entry("request_cancelled", "cancel")
                .actor(by)
                .details(json!({ "reason": reason }))
        }
        RequestEvent::RequestExpired { waited_days, at } => {
            set_status(rows, id, "cancelled", *at);
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
            set_status(rows, id, "revoked", *at);
            entry("request_revoked", "revoke")
                .details(json!({ "certificate_id": certificate_id, "reason": reason }))
        }
    };
    Ok(if entry.resource_id.is_none() {
        let number = number(rows, id);
        entry.resource(Some(id), number)
    } else {
        entry
    })
}
