//! `certificates` and `private_keys`: what was issued, renewed, downloaded, reminded of,
//! expired and revoked. ACM's own records and the revocations go through
//! [`super::statements`].

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use super::statements::Statement;
use super::table::{Record, text_array};
use super::{Rows, row_id, users};
use crate::domain::certificate::{Artifact, CertificateEvent};
use crate::domain::values::RevocationReason;
use crate::feed::StoredEvent;
use crate::projections::audit::AuditEntry;

/// A `certificates` row, as far as the projector writes it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub(super) struct CertificateRow {
    pub id: Uuid,
    pub request_id: Uuid,
    pub user_id: Uuid,
    pub serial_number: String,
    pub thumbprint_sha1: Option<String>,
    pub thumbprint_sha256: Option<String>,
    pub common_name: String,
    pub subject_dn: String,
    pub issuer_dn: String,
    pub subject_alternative_names: Option<Vec<String>>,
    pub valid_from: DateTime<Utc>,
    pub valid_to: DateTime<Utc>,
    pub key_algorithm: String,
    pub key_size: i32,
    pub signature_algorithm: Option<String>,
    pub s3_bucket: String,
    pub s3_key_certificate: String,
    pub s3_key_chain: Option<String>,
    pub s3_key_private_key: Option<String>,
    pub status: String,
    pub download_count: Option<i32>,
    pub first_downloaded_at: Option<DateTime<Utc>>,
    pub last_downloaded_at: Option<DateTime<Utc>>,
    pub expiry_notification_sent: Option<bool>,
    pub expiry_notifications: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Record for CertificateRow {
    type Key = Uuid;

    fn key(&self) -> Uuid {
        self.id
    }

    async fn load(conn: &mut PgConnection, keys: &[Uuid]) -> anyhow::Result<Vec<Self>> {
        Ok(sqlx::query_as(
            "SELECT id, request_id, user_id, serial_number, thumbprint_sha1, \
                    thumbprint_sha256, common_name, subject_dn, issuer_dn, \
                    subject_alternative_names, valid_from, valid_to, key_algorithm, key_size, \
                    signature_algorithm, s3_bucket, s3_key_certificate, s3_key_chain, \
                    s3_key_private_key, status, download_count, first_downloaded_at, \
                    last_downloaded_at, expiry_notification_sent, expiry_notifications, \
                    created_at, updated_at \
               FROM certificates WHERE id = ANY($1)",
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
                "INSERT INTO certificates (id, request_id, user_id, serial_number, \
                     thumbprint_sha1, thumbprint_sha256, common_name, subject_dn, issuer_dn, \
                     valid_from, valid_to, key_algorithm, key_size, signature_algorithm, \
                     s3_bucket, s3_key_certificate, s3_key_chain, s3_key_private_key, status, \
                     download_count, first_downloaded_at, last_downloaded_at, \
                     expiry_notification_sent, expiry_notifications, created_at, updated_at, \
                     subject_alternative_names) \
                 SELECT c.id, c.request_id, c.user_id, c.serial_number, c.thumbprint_sha1, \
                        c.thumbprint_sha256, c.common_name, c.subject_dn, c.issuer_dn, \
                        c.valid_from, c.valid_to, c.key_algorithm, c.key_size, \
                        c.signature_algorithm, c.s3_bucket, c.s3_key_certificate, \
                        c.s3_key_chain, c.s3_key_private_key, c.status, c.download_count, \
                        c.first_downloaded_at, c.last_downloaded_at, \
                        c.expiry_notification_sent, c.expiry_notifications, c.created_at, \
                        c.updated_at, \
                        CASE WHEN c.sans IS NULL THEN NULL \
                             ELSE ARRAY(SELECT jsonb_array_elements_text(c.sans)) END \
                   FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], \
                               $6::text[], $7::text[], $8::text[], $9::text[], \
                               $10::timestamptz[], $11::timestamptz[], $12::text[], \
                               $13::int[], $14::text[], $15::text[], $16::text[], \
                               $17::text[], $18::text[], $19::text[], $20::int[], \
                               $21::timestamptz[], $22::timestamptz[], $23::bool[], \
                               $24::jsonb[], $25::timestamptz[], $26::timestamptz[], \
                               $27::jsonb[]) \
                     AS c(id, request_id, user_id, serial_number, thumbprint_sha1, \
                          thumbprint_sha256, common_name, subject_dn, issuer_dn, valid_from, \
                          valid_to, key_algorithm, key_size, signature_algorithm, s3_bucket, \
                          s3_key_certificate, s3_key_chain, s3_key_private_key, status, \
                          download_count, first_downloaded_at, last_downloaded_at, \
                          expiry_notification_sent, expiry_notifications, created_at, \
                          updated_at, sans) \
                 ON CONFLICT (id) DO UPDATE SET serial_number = EXCLUDED.serial_number, \
                     thumbprint_sha1 = EXCLUDED.thumbprint_sha1, \
                     thumbprint_sha256 = EXCLUDED.thumbprint_sha256, \
                     valid_from = EXCLUDED.valid_from, valid_to = EXCLUDED.valid_to, \
                     s3_bucket = EXCLUDED.s3_bucket, \
                     s3_key_certificate = EXCLUDED.s3_key_certificate, \
                     s3_key_chain = EXCLUDED.s3_key_chain, \
                     s3_key_private_key = EXCLUDED.s3_key_private_key, \
                     status = EXCLUDED.status, download_count = EXCLUDED.download_count, \
                     first_downloaded_at = EXCLUDED.first_downloaded_at, \
                     last_downloaded_at = EXCLUDED.last_downloaded_at, \
                     expiry_notification_sent = EXCLUDED.expiry_notification_sent, \
                     expiry_notifications = EXCLUDED.expiry_notifications, \
                     updated_at = EXCLUDED.updated_at",
            ),
            changed,
            id,
            request_id,
            user_id,
            serial_number,
            thumbprint_sha1,
            thumbprint_sha256,
            common_name,
            subject_dn,
            issuer_dn,
            valid_from,
            valid_to,
            key_algorithm,
            key_size,
            signature_algorithm,
            s3_bucket,
            s3_key_certificate,
            s3_key_chain,
            s3_key_private_key,
            status,
            download_count,
            first_downloaded_at,
            last_downloaded_at,
            expiry_notification_sent,
            expiry_notifications,
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

/// A `private_keys` row: the certificate's encrypted key, one per certificate.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub(super) struct PrivateKeyRow {
    pub id: Uuid,
    pub certificate_id: Uuid,
    pub request_id: Uuid,
    pub user_id: Uuid,
    pub encrypted_key: String,
    pub encryption_algorithm: String,
    pub encryption_key_id: Option<String>,
    pub download_allowed: Option<bool>,
    pub downloaded: Option<bool>,
    pub download_count: Option<i32>,
    pub first_downloaded_at: Option<DateTime<Utc>>,
    pub last_downloaded_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl Record for PrivateKeyRow {
    type Key = Uuid;

    /// Looked up by its certificate.
    fn key(&self) -> Uuid {
        self.certificate_id
    }

    async fn load(conn: &mut PgConnection, keys: &[Uuid]) -> anyhow::Result<Vec<Self>> {
        Ok(sqlx::query_as(
            "SELECT id, certificate_id, request_id, user_id, encrypted_key, \
                    encryption_algorithm, encryption_key_id, download_allowed, downloaded, \
                    download_count, first_downloaded_at, last_downloaded_at, created_at, \
                    deleted_at \
               FROM private_keys WHERE certificate_id = ANY($1)",
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
                "INSERT INTO private_keys (id, certificate_id, request_id, user_id, \
                     encrypted_key, encryption_algorithm, encryption_key_id, \
                     download_allowed, downloaded, download_count, first_downloaded_at, \
                     last_downloaded_at, created_at, deleted_at) \
                 SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], \
                     $5::text[], $6::text[], $7::text[], $8::bool[], $9::bool[], $10::int[], \
                     $11::timestamptz[], $12::timestamptz[], $13::timestamptz[], \
                     $14::timestamptz[]) \
                 ON CONFLICT (id) DO UPDATE SET encrypted_key = EXCLUDED.encrypted_key, \
                     encryption_algorithm = EXCLUDED.encryption_algorithm, \
                     encryption_key_id = EXCLUDED.encryption_key_id, \
                     download_allowed = EXCLUDED.download_allowed, \
                     downloaded = EXCLUDED.downloaded, \
                     download_count = EXCLUDED.download_count, \
                     first_downloaded_at = EXCLUDED.first_downloaded_at, \
                     last_downloaded_at = EXCLUDED.last_downloaded_at, \
                     deleted_at = EXCLUDED.deleted_at",
            ),
            changed,
            id,
            certificate_id,
            request_id,
            user_id,
            encrypted_key,
            encryption_algorithm,
            encryption_key_id,
            download_allowed,
            downloaded,
            download_count,
            first_downloaded_at,
            last_downloaded_at,
            created_at,
            deleted_at
        )
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// The certificate's row, to change it as of `at`.
fn touch(rows: &mut Rows, id: Uuid, at: DateTime<Utc>) -> Option<&mut CertificateRow> {
    let row = rows.certificates.get_mut(&id)?;
    row.updated_at = at;
    Some(row)
}

/// A time as PostgreSQL writes a `timestamptz` into JSON in a UTC session.
fn json_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

#[expect(
    clippy::too_many_lines,
    reason = "one arm per event, each short; splitting would scatter the mapping"
)]
pub(super) fn apply(
    rows: &mut Rows,
    stored: &StoredEvent,
    event: &CertificateEvent,
) -> anyhow::Result<AuditEntry> {
    let id = stored.aggregate_uuid()?;
    let entry = |event_type: &str, action: &str| {
        AuditEntry::new(event_type, "certificate", "certificate", action)
    };
    let entry = match event {
        CertificateEvent::CertificateIssued { certificate: c, at } => {
            users::ensure_actor(rows, &c.owner, *at);
            rows.certificates.insert_if_absent(CertificateRow {
                id: c.certificate_id,
                request_id: c.request_id,
                user_id: c.owner.user_id,
                serial_number: c.serial_number.to_string(),
                thumbprint_sha1: Some(c.thumbprint_sha1.clone()),
                thumbprint_sha256: Some(c.thumbprint_sha256.clone()),
                common_name: c.common_name.to_string(),
                subject_dn: c.subject_dn.clone(),
                issuer_dn: c.issuer_dn.clone(),
                subject_alternative_names: Some(
                    c.subject_alternative_names
                        .iter()
                        .map(|n| n.as_ref().to_owned())
                        .collect(),
                ),
                valid_from: c.valid_from,
                valid_to: c.valid_to,
                key_algorithm: c.key_algorithm.as_str().to_owned(),
                key_size: i32::try_from(c.key_size).unwrap_or(i32::MAX),
                signature_algorithm: Some(c.signature_algorithm.clone()),
                s3_bucket: c.storage.bucket.clone(),
                s3_key_certificate: c.storage.certificate.clone(),
                s3_key_chain: c.storage.chain.clone(),
                s3_key_private_key: c.storage.private_key.clone(),
                status: "active".to_owned(),
                download_count: Some(0),
                first_downloaded_at: None,
                last_downloaded_at: None,
                expiry_notification_sent: Some(false),
                expiry_notifications: Some(json!([])),
                created_at: *at,
                updated_at: *at,
            });
            if let Some(key) = &c.private_key {
                rows.private_keys.insert_if_absent(PrivateKeyRow {
                    id: row_id(&["private_key", &c.certificate_id.to_string()]),
                    certificate_id: c.certificate_id,
                    request_id: c.request_id,
                    user_id: c.owner.user_id,
                    encrypted_key: key.ciphertext.clone(),
                    encryption_algorithm: key.algorithm.clone(),
                    encryption_key_id: Some(key.data_key_id.to_string()),
                    download_allowed: Some(true),
                    downloaded: Some(false),
                    download_count: Some(0),
                    first_downloaded_at: None,
                    last_downloaded_at: None,
                    created_at: *at,
                    deleted_at: None,
                });
            }
            if let Some(acm) = &c.acm {
                rows.statements.push(Statement::AcmIssued {
                    arn: acm.arn.clone(),
                    certificate_id: c.certificate_id,
                    exported: acm.exported,
                    serial_number: c.serial_number.to_string(),
                    not_after: c.valid_to,
                    at: *at,
                });
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
            if let Some(row) = touch(rows, id, *at) {
                row.serial_number = r.serial_number.to_string();
                row.thumbprint_sha1 = Some(r.thumbprint_sha1.clone());
                row.thumbprint_sha256 = Some(r.thumbprint_sha256.clone());
                row.valid_from = r.valid_from;
                row.valid_to = r.valid_to;
                row.s3_bucket.clone_from(&r.storage.bucket);
                row.s3_key_certificate.clone_from(&r.storage.certificate);
                row.s3_key_chain.clone_from(&r.storage.chain);
                if r.storage.private_key.is_some() {
                    row.s3_key_private_key.clone_from(&r.storage.private_key);
                }
                "active".clone_into(&mut row.status);
                row.expiry_notification_sent = Some(false);
                row.expiry_notifications = Some(json!([]));
            }
            if let Some(key) = &r.private_key
                && let Some(row) = rows.private_keys.get_mut(&id)
            {
                row.encrypted_key.clone_from(&key.ciphertext);
                row.encryption_algorithm.clone_from(&key.algorithm);
                row.encryption_key_id = Some(key.data_key_id.to_string());
                row.download_allowed = Some(true);
                row.downloaded = Some(false);
                row.download_count = Some(0);
                row.first_downloaded_at = None;
                row.last_downloaded_at = None;
                row.deleted_at = None;
            }
            rows.statements.push(Statement::AcmRenewed {
                certificate_id: id,
                serial_number: r.serial_number.to_string(),
                not_after: r.valid_to,
                at: *at,
            });
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
                    if let Some(row) = touch(rows, id, *at) {
                        row.download_count =
                            Some(i32::try_from(*download_count).unwrap_or(i32::MAX));
                        row.first_downloaded_at = row.first_downloaded_at.or(Some(*at));
                        row.last_downloaded_at = Some(*at);
                    }
                }
                Artifact::PrivateKey => {
                    if let Some(row) = rows.private_keys.get_mut(&id) {
                        row.downloaded = Some(true);
                        row.download_count =
                            Some(row.download_count.unwrap_or(0).saturating_add(1));
                        row.first_downloaded_at = row.first_downloaded_at.or(Some(*at));
                        row.last_downloaded_at = Some(*at);
                    }
                }
                Artifact::Chain => {}
            }
            entry("certificate_downloaded", "download")
                .actor(by)
                .details(json!({ "artifact": artifact }))
        }
        CertificateEvent::ExpiryReminderSent { days_before, at } => {
            if let Some(row) = touch(rows, id, *at) {
                row.expiry_notification_sent = Some(true);
                let sent = json!({
                    "sent_at": json_time(*at),
                    "days_before": i32::try_from(*days_before).unwrap_or(i32::MAX),
                });
                match &mut row.expiry_notifications {
                    Some(Value::Array(sent_before)) => sent_before.push(sent),
                    other => *other = Some(json!([sent])),
                }
            }
            entry("expiry_reminder_sent", "remind").details(json!({ "days_before": days_before }))
        }
        CertificateEvent::CertificateExpired { at } => {
            if let Some(row) = touch(rows, id, *at) {
                "expired".clone_into(&mut row.status);
            }
            entry("certificate_expired", "expire").severity("warning")
        }
        CertificateEvent::RevocationRequested {
            by,
            reason,
            text,
            at,
        } => {
            users::ensure_actor(rows, by, *at);
            // Not revoked yet: `certificate_revocations` gets its row when it is.
            entry("revocation_requested", "revoke")
                .actor(by)
                .details(json!({ "reason": reason.as_str(), "reason_text": text, "approval_required": true }))
        }
        CertificateEvent::RevocationRejected {
            by,
            requested_by,
            comment,
            at,
        } => {
            users::ensure_actor(rows, by, *at);
            entry("revocation_rejected", "reject")
                .actor(by)
                .details(json!({ "comment": comment, "requested_by": requested_by.email }))
        }
        CertificateEvent::PrivateKeyDestroyed { at } => {
            if let Some(row) = rows.private_keys.get_mut(&id) {
                row.download_allowed = Some(false);
                row.deleted_at = Some(*at);
            }
            entry("private_key_destroyed", "delete").severity("warning")
        }
        CertificateEvent::CaRevocationRecorded {
            ca_status,
            error,
            confirmed_by,
            at,
        } => {
            if let Some(admin) = confirmed_by {
                users::ensure_actor(rows, admin, *at);
            }
            rows.statements.push(Statement::CaRevocationRecorded {
                certificate_id: id,
                ca_status: ca_status.clone(),
                error: error.clone(),
                at: *at,
            });
            let mut entry = entry("ca_revocation_recorded", "revoke").details(json!({
                "ca_status": ca_status,
                "confirmed_by": confirmed_by.as_ref().map(|a| a.email.to_string()),
            }));
            if let Some(admin) = confirmed_by {
                entry = entry.actor(admin);
            }
            match error {
                Some(error) => entry.severity("error").failure(error.clone()),
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
            if let Some(row) = touch(rows, id, *at) {
                "revoked".clone_into(&mut row.status);
            }
            users::ensure_actor(rows, by, *at);
            if let Some(approver) = approved_by {
                users::ensure_actor(rows, approver, *at);
            }
            rows.statements.push(Statement::Revoked {
                id: row_id(&["revocation", &id.to_string(), &stored.sequence.to_string()]),
                certificate_id: id,
                by: by.user_id,
                reason_code: reason.as_str().to_owned(),
                text: text.clone(),
                approver: approved_by.as_ref().map(|a| a.user_id),
                approval_required: *approval_required,
                at: *at,
            });
            let severity = match reason {
                RevocationReason::KeyCompromise | RevocationReason::CaCompromise => "critical",
                _ => "warning",
            };
            entry("certificate_revoked", "revoke")
                .actor(by)
                .severity(severity)
                .details(json!({
                    "reason": reason,
                    "reason_code": reason.code(),
                    "text": text,
                    "approval_required": approval_required,
                }))
        }
    };
    let serial = rows
        .certificates
        .get(&id)
        .map(|row| row.serial_number.clone());
    Ok(entry.resource(Some(id), serial))
}
