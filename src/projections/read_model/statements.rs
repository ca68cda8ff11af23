//! Writes to the read model's rare tables (`acm_certificates`, `certificate_revocations`),
//! statement by statement in event order, after the batch's rows: a handful per year per
//! certificate, where one statement each costs nothing worth a set-based writer.

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// One write to a rare table.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Statement {
    /// ACM accepted a request: its ARN.
    AcmRequested {
        arn: String,
        request_id: Uuid,
        at: DateTime<Utc>,
    },
    /// ACM issued it.
    AcmIssued {
        arn: String,
        certificate_id: Uuid,
        exported: bool,
        serial_number: String,
        not_after: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// ACM renewed it.
    AcmRenewed {
        certificate_id: Uuid,
        serial_number: String,
        not_after: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// A certificate was revoked.
    Revoked {
        id: Uuid,
        certificate_id: Uuid,
        by: Uuid,
        reason_code: String,
        text: Option<String>,
        approver: Option<Uuid>,
        approval_required: bool,
        at: DateTime<Utc>,
    },
    /// The CA's answer to a revocation.
    CaRevocationRecorded {
        certificate_id: Uuid,
        ca_status: String,
        error: Option<String>,
        at: DateTime<Utc>,
    },
}

impl Statement {
    pub(super) async fn execute(&self, conn: &mut PgConnection) -> anyhow::Result<()> {
        match self {
            Self::AcmRequested {
                arn,
                request_id,
                at,
            } => sqlx::query(
                "INSERT INTO acm_certificates (arn, request_id, status, requested_at, updated_at) \
                     VALUES ($1, $2, 'pending', $3, $3) \
                     ON CONFLICT (arn) DO UPDATE SET updated_at = EXCLUDED.updated_at",
            )
            .bind(arn)
            .bind(request_id)
            .bind(at)
            .execute(&mut *conn)
            .await,
            Self::AcmIssued {
                arn,
                certificate_id,
                exported,
                serial_number,
                not_after,
                at,
            } => {
                sqlx::query(
                    "UPDATE acm_certificates SET certificate_id = $2, status = 'issued', \
                         exported = $3, serial_number = $4, not_after = $5, issued_at = $6, \
                         updated_at = $6 \
                      WHERE arn = $1",
                )
                .bind(arn)
                .bind(certificate_id)
                .bind(exported)
                .bind(serial_number)
                .bind(not_after)
                .bind(at)
                .execute(&mut *conn)
                .await
            }
            Self::AcmRenewed {
                certificate_id,
                serial_number,
                not_after,
                at,
            } => {
                sqlx::query(
                    "UPDATE acm_certificates SET serial_number = $2, not_after = $3, \
                         renewed_at = $4, renewals = renewals + 1, updated_at = $4 \
                      WHERE certificate_id = $1",
                )
                .bind(certificate_id)
                .bind(serial_number)
                .bind(not_after)
                .bind(at)
                .execute(&mut *conn)
                .await
            }
            Self::Revoked {
                id,
                certificate_id,
                by,
                reason_code,
                text,
                approver,
                approval_required,
                at,
            } => {
                sqlx::query(
                    "INSERT INTO certificate_revocations (id, certificate_id, request_id, user_id, \
                         reason_code, reason_text, revoked_at, approver_id, approved_at, \
                         approval_required, created_at) \
                     SELECT $1, c.id, c.request_id, $2, $3, $4, $5, $6, $7, $8, $5 \
                       FROM certificates c WHERE c.id = $9 \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(id)
                .bind(by)
                .bind(reason_code)
                .bind(text)
                .bind(at)
                .bind(approver)
                .bind(approver.map(|_| *at))
                .bind(approval_required)
                .bind(certificate_id)
                .execute(&mut *conn)
                .await
            }
            Self::CaRevocationRecorded {
                certificate_id,
                ca_status,
                error,
                at,
            } => {
                sqlx::query(
                    "UPDATE certificate_revocations SET adcs_status = $2, adcs_error_message = $3, \
                         crl_updated_at = CASE WHEN $2 = 'revoked' THEN $4 ELSE crl_updated_at END \
                      WHERE certificate_id = $1",
                )
                .bind(certificate_id)
                .bind(ca_status)
                .bind(error)
                .bind(at)
                .execute(&mut *conn)
                .await?;
                if ca_status != "revoked" {
                    return Ok(());
                }
                sqlx::query(
                    "UPDATE acm_certificates SET status = 'revoked', updated_at = $2 \
                      WHERE certificate_id = $1",
                )
                .bind(certificate_id)
                .bind(at)
                .execute(&mut *conn)
                .await
            }
        }
        .map(|_| ())
        .with_context(|| format!("writing {self:?}"))
    }
}
