//! The certificate aggregate: an issued certificate, its downloads, its expiry reminders,
//! its expiry and its revocation.
//!
//! Rules:
//! - revocation needs an RFC 5280 reason, is done by the owner or an admin, happens once, and
//!   is refused for an expired certificate (it no longer needs revoking);
//! - an expiry reminder is recorded once per threshold (days before `valid_to`);
//! - the generated private key is downloaded once, by the owner, and only if the system
//!   generated it; certificate and chain downloads are unlimited but all counted.

pub mod expiry;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::actor::{Actor, Role};
use super::key_material::EncryptedPrivateKey;
use super::text::Text;
use super::values::{
    CommonName, DnsName, KeyAlgorithm, RequestNumber, RevocationReason, SerialNumber, closed_set,
};

closed_set! {
    /// A certificate's status (`certificates.status`).
    CertificateStatus, "status", "certificate status" {
        /// In use.
        Active = "active",
        /// Revoked.
        Revoked = "revoked",
        /// Past `valid_to`.
        Expired = "expired",
        /// On hold.
        Suspended = "suspended",
    }
}

closed_set! {
    /// What can be downloaded.
    Artifact, "artifact", "artifact" {
        /// The certificate, PEM.
        Certificate = "certificate" | "cert",
        /// The issuing chain, PEM.
        Chain = "chain",
        /// The generated private key, encrypted.
        PrivateKey = "private_key" | "key",
    }
}

/// Where the artifacts are stored (`certificates.s3_*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageKeys {
    /// Bucket (or `local` for the local store).
    pub bucket: String,
    /// Object key of the certificate.
    pub certificate: String,
    /// Object key of the chain.
    pub chain: Option<String>,
    /// Object key of the encrypted private key.
    pub private_key: Option<String>,
}

/// A certificate of the public CA, AWS Certificate Manager, which knows it by its ARN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmCertificate {
    /// Its ARN.
    pub arn: String,
    /// Whether it was exported (certificate, chain and key held here too) rather than left in
    /// ACM for AWS services only.
    pub exported: bool,
}

/// A certificate the CA renewed by itself under the same identity (ACM's managed renewal):
/// the new X.509's details and where its artifacts are stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaRenewal {
    /// The new serial.
    pub serial_number: SerialNumber,
    /// SHA-1 thumbprint, hex.
    pub thumbprint_sha1: String,
    /// SHA-256 thumbprint, hex.
    pub thumbprint_sha256: String,
    /// notBefore.
    pub valid_from: DateTime<Utc>,
    /// notAfter.
    pub valid_to: DateTime<Utc>,
    /// Where the new certificate, chain and key are stored.
    pub storage: StorageKeys,
    /// The new private key, encrypted, when it was exported with the certificate.
    pub private_key: Option<EncryptedPrivateKey>,
}

/// Everything known about an issued certificate (copied from the X.509 by the saga).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCertificate {
    /// The aggregate id (`certificates.id`).
    pub certificate_id: Uuid,
    /// The request it came from.
    pub request_id: Uuid,
    /// Its number.
    pub request_number: RequestNumber,
    /// The owner (the requester).
    pub owner: Actor,
    /// Serial.
    pub serial_number: SerialNumber,
    /// SHA-1 thumbprint, hex.
    pub thumbprint_sha1: String,
    /// SHA-256 thumbprint, hex.
    pub thumbprint_sha256: String,
    /// CN.
    pub common_name: CommonName,
    /// Subject DN.
    pub subject_dn: String,
    /// Issuer DN.
    pub issuer_dn: String,
    /// DNS SANs.
    pub subject_alternative_names: Vec<DnsName>,
    /// notBefore.
    pub valid_from: DateTime<Utc>,
    /// notAfter.
    pub valid_to: DateTime<Utc>,
    /// Key algorithm.
    pub key_algorithm: KeyAlgorithm,
    /// Key size in bits.
    pub key_size: u32,
    /// Signature algorithm, e.g. `ecdsa-with-SHA256`.
    pub signature_algorithm: String,
    /// Where it is stored.
    pub storage: StorageKeys,
    /// The generated private key, encrypted, if the system generated it.
    pub private_key: Option<EncryptedPrivateKey>,
    /// The public CA's record of it, when ACM issued it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acm: Option<AcmCertificate>,
}

impl IssuedCertificate {
    /// The certificate as its CA renewed it: the new X.509's serial, validity and artifacts,
    /// and its new key when one came with it.
    pub fn renew(&mut self, renewal: CaRenewal) {
        self.serial_number = renewal.serial_number;
        self.thumbprint_sha1 = renewal.thumbprint_sha1;
        self.thumbprint_sha256 = renewal.thumbprint_sha256;
        self.valid_from = renewal.valid_from;
        self.valid_to = renewal.valid_to;
        self.storage = renewal.storage;
        if renewal.private_key.is_some() {
            self.private_key = renewal.private_key;
        }
    }
}

/// What can be asked of a certificate.
#[derive(Debug, Clone, PartialEq)]
pub enum CertificateCommand {
    /// Record an issued certificate.
    Issue {
        /// Its details.
        certificate: Box<IssuedCertificate>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Record a download.
    RecordDownload {
        /// Who.
        by: Actor,
        /// What.
        artifact: Artifact,
        /// When.
        at: DateTime<Utc>,
    },
    /// Record an expiry reminder for a threshold.
    RecordExpiryReminder {
        /// The threshold, in days before expiry.
        days_before: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// Mark it expired (at or after `valid_to`).
    MarkExpired {
        /// When.
        at: DateTime<Utc>,
    },
    /// Record that the CA renewed it by itself (ACM).
    RecordCaRenewal {
        /// The renewed certificate.
        renewal: Box<CaRenewal>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Record that the generated private key was destroyed (its data key deleted).
    RecordKeyDestroyed {
        /// When.
        at: DateTime<Utc>,
    },
    /// Record what the CA did with the revocation.
    RecordCaRevocation {
        /// `revoked` when the CA revoked it (its CRL now lists it), else what went wrong.
        ca_status: String,
        /// The CA's or the operator's words, when it did not.
        error: Option<String>,
        /// The admin who confirms having revoked it at the CA by hand (operator task).
        confirmed_by: Option<Actor>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Ask for a revocation whose reason needs an approver's consent first.
    RequestRevocation {
        /// Who asks (the owner or an admin).
        by: Actor,
        /// RFC 5280 reason.
        reason: RevocationReason,
        /// Free text.
        text: Option<Text>,
        /// When.
        at: DateTime<Utc>,
    },
    /// An approver decides on the pending revocation: approved revokes it.
    DecideRevocation {
        /// The approver.
        by: Actor,
        /// Whether it is approved.
        approve: bool,
        /// Why (required when rejecting).
        comment: Option<Text>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Revoke it.
    Revoke {
        /// Who asked.
        by: Actor,
        /// RFC 5280 reason.
        reason: RevocationReason,
        /// Free text.
        text: Option<Text>,
        /// Whether the reason needed an approval.
        approval_required: bool,
        /// Who approved, when it was needed.
        approved_by: Option<Actor>,
        /// When.
        at: DateTime<Utc>,
    },
}

/// What happened to a certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CertificateEvent {
    /// It was issued.
    CertificateIssued {
        /// Its details.
        certificate: Box<IssuedCertificate>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Someone downloaded an artifact.
    CertificateDownloaded {
        /// Who.
        by: Actor,
        /// What.
        artifact: Artifact,
        /// Downloads of the certificate so far, this one included.
        download_count: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// The owner was reminded of the expiry.
    ExpiryReminderSent {
        /// Threshold in days.
        days_before: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// It expired.
    CertificateExpired {
        /// When.
        at: DateTime<Utc>,
    },
    /// The generated private key was destroyed: its data key is gone, so the encrypted key
    /// in the events can never be decrypted again (crypto-shredding).
    PrivateKeyDestroyed {
        /// When.
        at: DateTime<Utc>,
    },
    /// The CA acted on the revocation (or could not).
    CaRevocationRecorded {
        /// `revoked`, or `failed`.
        ca_status: String,
        /// Why not, when it failed.
        error: Option<String>,
        /// The admin who confirmed a revocation done by hand.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        confirmed_by: Option<Actor>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A revocation waits for an approver (its reason needs one).
    RevocationRequested {
        /// Who asked.
        by: Actor,
        /// RFC 5280 reason.
        reason: RevocationReason,
        /// Free text.
        text: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// An approver turned the pending revocation down.
    RevocationRejected {
        /// The approver.
        by: Actor,
        /// Who had asked for it.
        requested_by: Actor,
        /// Why.
        comment: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The CA renewed it by itself under the same identity (ACM's managed renewal): a new
    /// serial and validity, the same names; earlier expiry reminders no longer apply.
    CertificateRenewedAtCa {
        /// The serial it had until now.
        previous_serial: SerialNumber,
        /// The renewed certificate.
        renewal: Box<CaRenewal>,
        /// When it was noticed.
        at: DateTime<Utc>,
    },
    /// It was revoked.
    CertificateRevoked {
        /// Who asked.
        by: Actor,
        /// RFC 5280 reason.
        reason: RevocationReason,
        /// Free text.
        text: Option<String>,
        /// Whether the reason needed an approval.
        approval_required: bool,
        /// Who approved.
        approved_by: Option<Actor>,
        /// When.
        at: DateTime<Utc>,
    },
}

impl DomainEvent for CertificateEvent {
    fn event_type(&self) -> String {
        match self {
            Self::CertificateIssued { .. } => "CertificateIssued",
            Self::CertificateDownloaded { .. } => "CertificateDownloaded",
            Self::ExpiryReminderSent { .. } => "ExpiryReminderSent",
            Self::CertificateExpired { .. } => "CertificateExpired",
            Self::CertificateRevoked { .. } => "CertificateRevoked",
            Self::RevocationRequested { .. } => "RevocationRequested",
            Self::RevocationRejected { .. } => "RevocationRejected",
            Self::CaRevocationRecorded { .. } => "CaRevocationRecorded",
            Self::PrivateKeyDestroyed { .. } => "PrivateKeyDestroyed",
            Self::CertificateRenewedAtCa { .. } => "CertificateRenewedAtCa",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// Why a certificate command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// Already recorded.
    #[error("certificate {0} is already recorded")]
    AlreadyIssued(String),
    /// Unknown certificate.
    #[error("there is no such certificate")]
    NotFound,
    /// Revoked already.
    #[error("certificate {serial} was already revoked at {at}")]
    AlreadyRevoked {
        /// Serial.
        serial: String,
        /// When.
        at: String,
    },
    /// Expired.
    #[error("certificate {0} has expired; an expired certificate is not revoked")]
    Expired(String),
    /// Not the owner or an admin.
    #[error("{0}")]
    NotAllowed(String),
    /// A reminder for that threshold was already sent.
    #[error("the {0}-day expiry reminder was already sent")]
    AlreadyReminded(u32),
    /// Not active.
    #[error("certificate {serial} is {status}")]
    NotActive {
        /// Serial.
        serial: String,
        /// Status.
        status: CertificateStatus,
    },
    /// Not yet at `valid_to`.
    #[error("certificate {0} is still valid")]
    NotYetExpired(String),
    /// The private key is gone or never existed.
    #[error("{0}")]
    NoPrivateKey(String),
    /// A reason that needs approval came without one.
    #[error("revoking for {0} needs an approval first")]
    ApprovalMissing(RevocationReason),
    /// A revocation already waits for an approver.
    #[error("a revocation of {serial} for {reason} already waits for an approver")]
    RevocationPending {
        /// Serial.
        serial: String,
        /// Its reason.
        reason: RevocationReason,
    },
    /// Not a certificate the CA renews itself, or not a newer one.
    #[error("{0}")]
    NotARenewal(String),
    /// No revocation waits for a decision.
    #[error("no revocation of {0} waits for a decision")]
    NoPendingRevocation(String),
}

/// The state rebuilt from events.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Certificate {
    state: Option<CertificateState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CertificateState {
    serial: SerialNumber,
    owner: Actor,
    valid_to: DateTime<Utc>,
    status: CertificateStatus,
    has_private_key: bool,
    private_key_downloaded: bool,
    download_count: u32,
    reminders: Vec<u32>,
    revoked_at: Option<DateTime<Utc>>,
    #[serde(default)]
    ca_revoked: bool,
    #[serde(default)]
    private_key_destroyed: bool,
    #[serde(default)]
    pending_revocation: Option<PendingRevocation>,
    #[serde(default)]
    acm: Option<AcmCertificate>,
}

/// A revocation waiting for an approver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingRevocation {
    /// Who asked.
    pub by: Actor,
    /// RFC 5280 reason.
    pub reason: RevocationReason,
    /// Free text.
    pub text: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

impl Certificate {
    /// The status, once issued.
    pub fn status(&self) -> Option<CertificateStatus> {
        self.state.as_ref().map(|s| s.status)
    }

    /// The serial number, once issued.
    pub fn serial(&self) -> Option<&SerialNumber> {
        self.state.as_ref().map(|s| &s.serial)
    }

    /// The end of validity, once issued.
    pub fn valid_to(&self) -> Option<DateTime<Utc>> {
        self.state.as_ref().map(|s| s.valid_to)
    }

    /// Whether a generated private key exists and was not destroyed.
    pub fn has_private_key_left(&self) -> bool {
        self.state
            .as_ref()
            .is_some_and(|s| s.has_private_key && !s.private_key_destroyed)
    }

    /// Whether `by` may download `artifact` now: the private key only by its owner, only
    /// if it was generated here, once, while the certificate is active and the key not
    /// destroyed; the certificate and chain by the owner, admins and auditors. Asked before
    /// any expensive work (decrypting and re-encrypting the key), and again when the
    /// download is recorded.
    pub fn may_download(&self, by: &Actor, artifact: Artifact) -> Result<(), CertificateError> {
        let state = self.existing()?;
        let owner_or_admin = by.is(&state.owner) || by.role == Role::Admin;
        if artifact == Artifact::PrivateKey {
            if !by.is(&state.owner) {
                return Err(CertificateError::NotAllowed(
                    "only the owner can download the private key".to_owned(),
                ));
            }
            if let Some(acm) = state.acm.as_ref().filter(|acm| !acm.exported) {
                return Err(CertificateError::NoPrivateKey(format!(
                    "this certificate stays in AWS Certificate Manager and its key never \
                     leaves it: use it by its ARN ({}) on the load balancer, CloudFront \
                     distribution or API Gateway",
                    acm.arn
                )));
            }
            if !state.has_private_key {
                return Err(CertificateError::NoPrivateKey(
                    "this certificate's key was not generated here, so there is no private \
                     key to download"
                        .to_owned(),
                ));
            }
            if state.private_key_destroyed {
                return Err(CertificateError::NoPrivateKey(
                    "the private key was destroyed when the certificate was revoked; it \
                     cannot be recovered"
                        .to_owned(),
                ));
            }
            if state.private_key_downloaded {
                return Err(CertificateError::NoPrivateKey(
                    "the private key was already downloaded once; it is not handed out again"
                        .to_owned(),
                ));
            }
            if state.status != CertificateStatus::Active {
                return Err(CertificateError::NoPrivateKey(format!(
                    "the certificate is {}; its private key is no longer handed out",
                    state.status
                )));
            }
        } else if !owner_or_admin && by.role != Role::Auditor {
            return Err(CertificateError::NotAllowed(
                "only the owner, admins and auditors can download this certificate".to_owned(),
            ));
        }
        Ok(())
    }

    /// The owner, once issued.
    pub fn owner(&self) -> Option<&Actor> {
        self.state.as_ref().map(|s| &s.owner)
    }

    /// Downloads so far.
    pub fn download_count(&self) -> u32 {
        self.state.as_ref().map_or(0, |s| s.download_count)
    }

    /// When it was revoked, if it was.
    pub fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.state.as_ref().and_then(|s| s.revoked_at)
    }

    /// Thresholds already reminded of.
    pub fn reminders(&self) -> Vec<u32> {
        self.state
            .as_ref()
            .map(|s| s.reminders.clone())
            .unwrap_or_default()
    }

    /// The public CA's record of it, when ACM issued it.
    pub fn acm(&self) -> Option<&AcmCertificate> {
        self.state.as_ref().and_then(|s| s.acm.as_ref())
    }

    /// Whether the CA revoked it (or an admin confirmed doing so by hand).
    pub fn revoked_at_ca(&self) -> bool {
        self.state.as_ref().is_some_and(|s| s.ca_revoked)
    }

    /// The revocation waiting for an approver, if any.
    pub fn pending_revocation(&self) -> Option<&PendingRevocation> {
        self.state
            .as_ref()
            .and_then(|s| s.pending_revocation.as_ref())
    }

    fn existing(&self) -> Result<&CertificateState, CertificateError> {
        self.state.as_ref().ok_or(CertificateError::NotFound)
    }
}

impl CertificateState {
    /// What every revocation checks: not revoked yet, not expired, asked by its owner or an
    /// admin.
    fn expect_revocable(&self, by: &Actor, at: DateTime<Utc>) -> Result<(), CertificateError> {
        if let Some(revoked_at) = self.revoked_at {
            return Err(CertificateError::AlreadyRevoked {
                serial: self.serial.to_string(),
                at: revoked_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            });
        }
        if self.status == CertificateStatus::Expired || at >= self.valid_to {
            return Err(CertificateError::Expired(self.serial.to_string()));
        }
        if !by.is(&self.owner) && by.role != Role::Admin {
            return Err(CertificateError::NotAllowed(
                "only the certificate's owner or an admin can revoke it".to_owned(),
            ));
        }
        if let Some(acm) = self.acm.as_ref().filter(|acm| !acm.exported) {
            return Err(CertificateError::NotAllowed(format!(
                "certificate {} stays in AWS Certificate Manager, which revokes only exported \
                 certificates: remove it from the AWS services that use it, then delete it \
                 in ACM (aws acm delete-certificate --certificate-arn {})",
                self.serial, acm.arn
            )));
        }
        Ok(())
    }

    fn expect_active(&self) -> Result<(), CertificateError> {
        if self.status == CertificateStatus::Active {
            Ok(())
        } else {
            Err(CertificateError::NotActive {
                serial: self.serial.to_string(),
                status: self.status,
            })
        }
    }
}

impl Aggregate for Certificate {
    const TYPE: &'static str = "Certificate";
    type Command = CertificateCommand;
    type Event = CertificateEvent;
    type Error = CertificateError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = match command {
            CertificateCommand::Issue { certificate, at } => {
                if let Some(state) = &self.state {
                    return Err(CertificateError::AlreadyIssued(state.serial.to_string()));
                }
                CertificateEvent::CertificateIssued { certificate, at }
            }
            CertificateCommand::RecordDownload { by, artifact, at } => {
                self.may_download(&by, artifact)?;
                let state = self.existing()?;
                let download_count = if artifact == Artifact::Certificate {
                    state.download_count + 1
                } else {
                    state.download_count
                };
                CertificateEvent::CertificateDownloaded {
                    by,
                    artifact,
                    download_count,
                    at,
                }
            }
            CertificateCommand::RecordExpiryReminder { days_before, at } => {
                let state = self.existing()?;
                state.expect_active()?;
                if state.reminders.contains(&days_before) {
                    return Err(CertificateError::AlreadyReminded(days_before));
                }
                CertificateEvent::ExpiryReminderSent { days_before, at }
            }
            CertificateCommand::RecordCaRenewal { renewal, at } => {
                let state = self.existing()?;
                if state.acm.is_none() {
                    return Err(CertificateError::NotARenewal(format!(
                        "certificate {} is not renewed by its CA",
                        state.serial
                    )));
                }
                if state.revoked_at.is_some() {
                    return Err(CertificateError::NotActive {
                        serial: state.serial.to_string(),
                        status: state.status,
                    });
                }
                if renewal.valid_to <= state.valid_to || renewal.serial_number == state.serial {
                    return Err(CertificateError::NotARenewal(format!(
                        "certificate {} valid to {} is not a renewal of {} valid to {}",
                        renewal.serial_number,
                        renewal.valid_to.format("%Y-%m-%d %H:%M UTC"),
                        state.serial,
                        state.valid_to.format("%Y-%m-%d %H:%M UTC"),
                    )));
                }
                CertificateEvent::CertificateRenewedAtCa {
                    previous_serial: state.serial.clone(),
                    renewal,
                    at,
                }
            }
            CertificateCommand::RecordKeyDestroyed { at } => {
                let state = self.existing()?;
                if !state.has_private_key || state.private_key_destroyed {
                    return Err(CertificateError::NoPrivateKey(format!(
                        "certificate {} has no private key left to destroy",
                        state.serial
                    )));
                }
                CertificateEvent::PrivateKeyDestroyed { at }
            }
            CertificateCommand::RecordCaRevocation {
                ca_status,
                error,
                confirmed_by,
                at,
            } => {
                let state = self.existing()?;
                if confirmed_by
                    .as_ref()
                    .is_some_and(|by| by.role != Role::Admin)
                {
                    return Err(CertificateError::NotAllowed(
                        "only an admin confirms a revocation done at the CA".to_owned(),
                    ));
                }
                if state.revoked_at.is_none() {
                    return Err(CertificateError::NotActive {
                        serial: state.serial.to_string(),
                        status: state.status,
                    });
                }
                if state.ca_revoked {
                    return Err(CertificateError::AlreadyRevoked {
                        serial: state.serial.to_string(),
                        at: "the CA".to_owned(),
                    });
                }
                CertificateEvent::CaRevocationRecorded {
                    ca_status,
                    error,
                    confirmed_by,
                    at,
                }
            }
            CertificateCommand::MarkExpired { at } => {
                let state = self.existing()?;
                state.expect_active()?;
                if at < state.valid_to {
                    return Err(CertificateError::NotYetExpired(state.serial.to_string()));
                }
                CertificateEvent::CertificateExpired { at }
            }
            CertificateCommand::RequestRevocation {
                by,
                reason,
                text,
                at,
            } => {
                let state = self.existing()?;
                state.expect_revocable(&by, at)?;
                if let Some(pending) = &state.pending_revocation {
                    return Err(CertificateError::RevocationPending {
                        serial: state.serial.to_string(),
                        reason: pending.reason,
                    });
                }
                CertificateEvent::RevocationRequested {
                    by,
                    reason,
                    text: text.map(|t| t.to_string()),
                    at,
                }
            }
            CertificateCommand::DecideRevocation {
                by,
                approve,
                comment,
                at,
            } => {
                let state = self.existing()?;
                let Some(pending) = state.pending_revocation.clone() else {
                    return Err(CertificateError::NoPendingRevocation(
                        state.serial.to_string(),
                    ));
                };
                if by.is(&pending.by) {
                    return Err(CertificateError::NotAllowed(
                        "you cannot approve your own revocation; another approver must".to_owned(),
                    ));
                }
                if !by.role.may_approve() {
                    return Err(CertificateError::NotAllowed(
                        "only approvers and admins decide on revocations".to_owned(),
                    ));
                }
                if approve {
                    // Still revocable now (it may have expired meanwhile).
                    state.expect_revocable(&pending.by, at)?;
                    CertificateEvent::CertificateRevoked {
                        by: pending.by,
                        reason: pending.reason,
                        text: pending.text,
                        approval_required: true,
                        approved_by: Some(by),
                        at,
                    }
                } else {
                    let Some(comment) = comment else {
                        return Err(CertificateError::NotAllowed(
                            "a rejected revocation needs a reason".to_owned(),
                        ));
                    };
                    CertificateEvent::RevocationRejected {
                        by,
                        requested_by: pending.by,
                        comment: comment.to_string(),
                        at,
                    }
                }
            }
            CertificateCommand::Revoke {
                by,
                reason,
                text,
                approval_required,
                approved_by,
                at,
            } => {
                let state = self.existing()?;
                state.expect_revocable(&by, at)?;
                if approval_required && approved_by.is_none() {
                    return Err(CertificateError::ApprovalMissing(reason));
                }
                CertificateEvent::CertificateRevoked {
                    by,
                    reason,
                    text: text.map(|t| t.to_string()),
                    approval_required,
                    approved_by,
                    at,
                }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        if let CertificateEvent::CertificateIssued { certificate, .. } = &event {
            self.state = Some(CertificateState {
                serial: certificate.serial_number.clone(),
                owner: certificate.owner.clone(),
                valid_to: certificate.valid_to,
                status: CertificateStatus::Active,
                has_private_key: certificate.private_key.is_some(),
                private_key_downloaded: false,
                download_count: 0,
                reminders: Vec::new(),
                revoked_at: None,
                ca_revoked: false,
                private_key_destroyed: false,
                pending_revocation: None,
                acm: certificate.acm.clone(),
            });
            return;
        }
        let Some(state) = self.state.as_mut() else {
            return;
        };
        match event {
            CertificateEvent::CertificateIssued { .. } => {}
            CertificateEvent::CertificateDownloaded {
                artifact,
                download_count,
                ..
            } => {
                state.download_count = download_count;
                if artifact == Artifact::PrivateKey {
                    state.private_key_downloaded = true;
                }
            }
            CertificateEvent::ExpiryReminderSent { days_before, .. } => {
                state.reminders.push(days_before);
            }
            CertificateEvent::CertificateExpired { .. } => {
                state.status = CertificateStatus::Expired;
            }
            CertificateEvent::CertificateRevoked { at, .. } => {
                state.status = CertificateStatus::Revoked;
                state.revoked_at = Some(at);
                state.pending_revocation = None;
            }
            CertificateEvent::RevocationRequested {
                by,
                reason,
                text,
                at,
            } => {
                state.pending_revocation = Some(PendingRevocation {
                    by,
                    reason,
                    text,
                    at,
                });
            }
            CertificateEvent::RevocationRejected { .. } => state.pending_revocation = None,
            CertificateEvent::CaRevocationRecorded { ca_status, .. } => {
                state.ca_revoked = ca_status == "revoked";
            }
            CertificateEvent::PrivateKeyDestroyed { .. } => {
                state.private_key_destroyed = true;
            }
            CertificateEvent::CertificateRenewedAtCa { renewal, .. } => {
                // A new certificate under the same identity: active, reminders anew, and
                // its own key (when exported) to download once.
                state.serial = renewal.serial_number;
                state.valid_to = renewal.valid_to;
                state.status = CertificateStatus::Active;
                state.reminders.clear();
                if renewal.private_key.is_some() {
                    state.has_private_key = true;
                    state.private_key_downloaded = false;
                    state.private_key_destroyed = false;
                }
            }
        }
    }
}
