//! Given / when / then for certificates.

use chrono::Duration;
use cqrs_es::test::TestFramework;

use super::*;
use crate::domain::testing::{actor, at, request_id, requester, text};

type Framework = TestFramework<Certificate>;

fn issued_with_key(private_key: Option<EncryptedPrivateKey>) -> CertificateEvent {
    CertificateEvent::CertificateIssued {
        certificate: Box::new(IssuedCertificate {
            certificate_id: Uuid::from_u128(0xCE27),
            request_id: request_id(),
            request_number: RequestNumber::parse("REQ-20261127-00001").expect("number"),
            owner: requester(),
            serial_number: SerialNumber::parse("0A1B").expect("serial"),
            thumbprint_sha1: "aa".repeat(20),
            thumbprint_sha256: "bb".repeat(32),
            common_name: CommonName::parse("app.example.com").expect("cn"),
            subject_dn: "CN=app.example.com".to_owned(),
            issuer_dn: "CN=Issuing CA".to_owned(),
            subject_alternative_names: vec![DnsName::parse("app.example.com").expect("san")],
            valid_from: at(0),
            valid_to: at(0) + Duration::days(90),
            key_algorithm: KeyAlgorithm::EccP256,
            key_size: 256,
            signature_algorithm: "ecdsa-with-SHA256".to_owned(),
            storage: StorageKeys {
                bucket: "local".to_owned(),
                certificate: "certs/0A1B.pem".to_owned(),
                chain: Some("certs/0A1B.chain.pem".to_owned()),
                private_key: private_key.as_ref().map(|_| "keys/0A1B.enc".to_owned()),
            },
            private_key,
            acm: None,
        }),
        at: at(0),
    }
}

/// Issued by ACM, exported, with its key.
fn issued_by_acm() -> CertificateEvent {
    let CertificateEvent::CertificateIssued {
        mut certificate,
        at,
    } = issued()
    else {
        unreachable!()
    };
    certificate.acm = Some(AcmCertificate {
        arn: "arn:aws:acm:us-east-1:123456789012:certificate/1".to_owned(),
        exported: true,
    });
    CertificateEvent::CertificateIssued { certificate, at }
}

fn renewal(serial: &str, days: i64) -> Box<CaRenewal> {
    Box::new(CaRenewal {
        serial_number: SerialNumber::parse(serial).expect("serial"),
        thumbprint_sha1: "cc".repeat(20),
        thumbprint_sha256: "dd".repeat(32),
        valid_from: at(0) + Duration::days(days - 90),
        valid_to: at(0) + Duration::days(days),
        storage: StorageKeys {
            bucket: "local".to_owned(),
            certificate: format!("certs/{serial}.pem"),
            chain: None,
            private_key: Some(format!("keys/{serial}.enc")),
        },
        private_key: Some(EncryptedPrivateKey {
            data_key_id: Uuid::from_u128(10),
            algorithm: "AES-256-GCM".to_owned(),
            ciphertext: "def".to_owned(),
        }),
    })
}

fn issued() -> CertificateEvent {
    issued_with_key(Some(EncryptedPrivateKey {
        data_key_id: Uuid::from_u128(9),
        algorithm: "AES-256-GCM".to_owned(),
        ciphertext: "abc".to_owned(),
    }))
}

fn revoke(by: Actor, minute: u32) -> CertificateCommand {
    CertificateCommand::Revoke {
        by,
        reason: RevocationReason::KeyCompromise,
        text: Some(text("laptop stolen")),
        approval_required: false,
        approved_by: None,
        at: at(minute),
    }
}

fn revoked(minute: u32) -> CertificateEvent {
    CertificateEvent::CertificateRevoked {
        by: requester(),
        reason: RevocationReason::KeyCompromise,
        text: Some("laptop stolen".to_owned()),
        approval_required: false,
        approved_by: None,
        at: at(minute),
    }
}

async fn refused(given: Vec<CertificateEvent>, command: CertificateCommand) -> CertificateError {
    Framework::with(())
        .given(given)
        .when_async(command)
        .await
        .inspect_result()
        .expect_err("refused")
}

#[tokio::test]
async fn the_owner_revokes_with_a_reason() {
    Framework::with(())
        .given(vec![issued()])
        .when_async(revoke(requester(), 5))
        .await
        .then_expect_events(vec![revoked(5)]);
}

#[tokio::test]
async fn revoking_twice_is_refused_with_when_it_happened() {
    let error = refused(vec![issued(), revoked(5)], revoke(requester(), 6)).await;
    assert_eq!(
        error.to_string(),
        "certificate 0A1B was already revoked at 2026-11-27 10:05 UTC"
    );
}

#[tokio::test]
async fn an_expired_certificate_is_not_revoked() {
    let error = refused(
        vec![
            issued(),
            CertificateEvent::CertificateExpired {
                at: at(0) + Duration::days(91),
            },
        ],
        revoke(requester(), 6),
    )
    .await;
    assert_eq!(error, CertificateError::Expired("0A1B".to_owned()));
    // Past valid_to counts as expired even before the expiry job marked it.
    let late = CertificateCommand::Revoke {
        by: requester(),
        reason: RevocationReason::Superseded,
        text: None,
        approval_required: false,
        approved_by: None,
        at: at(0) + Duration::days(90),
    };
    assert_eq!(
        refused(vec![issued()], late).await,
        CertificateError::Expired("0A1B".to_owned())
    );
}

#[tokio::test]
async fn only_the_owner_or_an_admin_revokes() {
    let error = refused(vec![issued()], revoke(actor("jane", Role::Approver), 5)).await;
    assert!(matches!(error, CertificateError::NotAllowed(_)));
    Framework::with(())
        .given(vec![issued()])
        .when_async(revoke(actor("root", Role::Admin), 5))
        .await
        .inspect_result()
        .expect("admins may revoke");
}

#[tokio::test]
async fn a_reason_that_needs_approval_needs_an_approver() {
    let command = CertificateCommand::Revoke {
        by: requester(),
        reason: RevocationReason::CessationOfOperation,
        text: None,
        approval_required: true,
        approved_by: None,
        at: at(3),
    };
    assert_eq!(
        refused(vec![issued()], command).await,
        CertificateError::ApprovalMissing(RevocationReason::CessationOfOperation)
    );
}

fn revocation_requested(minute: u32) -> CertificateEvent {
    CertificateEvent::RevocationRequested {
        by: requester(),
        reason: RevocationReason::CessationOfOperation,
        text: Some("service retired".to_owned()),
        at: at(minute),
    }
}

fn decide(by: Actor, approve: bool, comment: Option<&str>, minute: u32) -> CertificateCommand {
    CertificateCommand::DecideRevocation {
        by,
        approve,
        comment: comment.map(text),
        at: at(minute),
    }
}

#[tokio::test]
async fn a_revocation_that_needs_approval_waits_then_an_approver_revokes() {
    Framework::with(())
        .given(vec![issued()])
        .when_async(CertificateCommand::RequestRevocation {
            by: requester(),
            reason: RevocationReason::CessationOfOperation,
            text: Some(text("service retired")),
            at: at(3),
        })
        .await
        .then_expect_events(vec![revocation_requested(3)]);
    let jane = actor("jane", Role::Approver);
    Framework::with(())
        .given(vec![issued(), revocation_requested(3)])
        .when_async(decide(jane.clone(), true, None, 4))
        .await
        .then_expect_events(vec![CertificateEvent::CertificateRevoked {
            by: requester(),
            reason: RevocationReason::CessationOfOperation,
            text: Some("service retired".to_owned()),
            approval_required: true,
            approved_by: Some(jane),
            at: at(4),
        }]);
}

#[tokio::test]
async fn a_pending_revocation_is_asked_once_and_decided_by_someone_else() {
    let again = CertificateCommand::RequestRevocation {
        by: requester(),
        reason: RevocationReason::AffiliationChanged,
        text: None,
        at: at(4),
    };
    assert!(matches!(
        refused(vec![issued(), revocation_requested(3)], again).await,
        CertificateError::RevocationPending { .. }
    ));
    // The requester cannot approve it, even as an admin; a plain user cannot decide.
    let own = refused(
        vec![issued(), revocation_requested(3)],
        decide(requester(), true, None, 4),
    )
    .await;
    assert!(own.to_string().contains("your own revocation"), "{own}");
    let user = refused(
        vec![issued(), revocation_requested(3)],
        decide(actor("bob", Role::User), true, None, 4),
    )
    .await;
    assert!(matches!(user, CertificateError::NotAllowed(_)));
    // Nothing to decide on.
    assert_eq!(
        refused(
            vec![issued()],
            decide(actor("jane", Role::Approver), true, None, 4)
        )
        .await,
        CertificateError::NoPendingRevocation("0A1B".to_owned())
    );
}

#[tokio::test]
async fn a_rejected_revocation_needs_a_reason_and_leaves_the_certificate_active() {
    let jane = actor("jane", Role::Approver);
    let bare = refused(
        vec![issued(), revocation_requested(3)],
        decide(jane.clone(), false, None, 4),
    )
    .await;
    assert!(bare.to_string().contains("needs a reason"), "{bare}");
    Framework::with(())
        .given(vec![issued(), revocation_requested(3)])
        .when_async(decide(
            jane.clone(),
            false,
            Some("still serving traffic"),
            4,
        ))
        .await
        .then_expect_events(vec![CertificateEvent::RevocationRejected {
            by: jane.clone(),
            requested_by: requester(),
            comment: "still serving traffic".to_owned(),
            at: at(4),
        }]);
    // After the rejection a new request may be made.
    Framework::with(())
        .given(vec![
            issued(),
            revocation_requested(3),
            CertificateEvent::RevocationRejected {
                by: jane,
                requested_by: requester(),
                comment: "still serving traffic".to_owned(),
                at: at(4),
            },
        ])
        .when_async(CertificateCommand::RequestRevocation {
            by: requester(),
            reason: RevocationReason::CessationOfOperation,
            text: None,
            at: at(5),
        })
        .await
        .inspect_result()
        .expect("asked again");
}

#[tokio::test]
async fn each_expiry_threshold_is_reminded_once() {
    Framework::with(())
        .given(vec![issued()])
        .when_async(CertificateCommand::RecordExpiryReminder {
            days_before: 30,
            at: at(1),
        })
        .await
        .then_expect_events(vec![CertificateEvent::ExpiryReminderSent {
            days_before: 30,
            at: at(1),
        }]);
    let error = refused(
        vec![
            issued(),
            CertificateEvent::ExpiryReminderSent {
                days_before: 30,
                at: at(1),
            },
        ],
        CertificateCommand::RecordExpiryReminder {
            days_before: 30,
            at: at(2),
        },
    )
    .await;
    assert_eq!(error, CertificateError::AlreadyReminded(30));
    // Revoked certificates get no reminders.
    let error = refused(
        vec![issued(), revoked(1)],
        CertificateCommand::RecordExpiryReminder {
            days_before: 7,
            at: at(2),
        },
    )
    .await;
    assert!(matches!(error, CertificateError::NotActive { .. }));
}

#[tokio::test]
async fn expiry_is_recorded_only_once_valid_to_has_passed() {
    assert_eq!(
        refused(
            vec![issued()],
            CertificateCommand::MarkExpired { at: at(1) }
        )
        .await,
        CertificateError::NotYetExpired("0A1B".to_owned())
    );
    let when = at(0) + Duration::days(90);
    Framework::with(())
        .given(vec![issued()])
        .when_async(CertificateCommand::MarkExpired { at: when })
        .await
        .then_expect_events(vec![CertificateEvent::CertificateExpired { at: when }]);
}

#[tokio::test]
async fn downloads_are_counted() {
    Framework::with(())
        .given(vec![
            issued(),
            CertificateEvent::CertificateDownloaded {
                by: requester(),
                artifact: Artifact::Certificate,
                download_count: 1,
                at: at(1),
            },
        ])
        .when_async(CertificateCommand::RecordDownload {
            by: requester(),
            artifact: Artifact::Certificate,
            at: at(2),
        })
        .await
        .then_expect_events(vec![CertificateEvent::CertificateDownloaded {
            by: requester(),
            artifact: Artifact::Certificate,
            download_count: 2,
            at: at(2),
        }]);
}

#[tokio::test]
async fn the_private_key_goes_once_to_the_owner_only() {
    let key = |by: Actor| CertificateCommand::RecordDownload {
        by,
        artifact: Artifact::PrivateKey,
        at: at(3),
    };
    let error = refused(vec![issued()], key(actor("root", Role::Admin))).await;
    assert!(matches!(error, CertificateError::NotAllowed(_)));
    let once = vec![
        issued(),
        CertificateEvent::CertificateDownloaded {
            by: requester(),
            artifact: Artifact::PrivateKey,
            download_count: 0,
            at: at(2),
        },
    ];
    let error = refused(once, key(requester())).await;
    assert!(
        error.to_string().contains("already downloaded once"),
        "{error}"
    );
    let error = refused(vec![issued_with_key(None)], key(requester())).await;
    assert!(error.to_string().contains("not generated here"), "{error}");
}

#[tokio::test]
async fn strangers_cannot_download() {
    let error = refused(
        vec![issued()],
        CertificateCommand::RecordDownload {
            by: actor("eve", Role::User),
            artifact: Artifact::Chain,
            at: at(1),
        },
    )
    .await;
    assert!(matches!(error, CertificateError::NotAllowed(_)));
}

#[tokio::test]
async fn a_certificate_is_recorded_once() {
    let error = refused(
        vec![issued()],
        CertificateCommand::Issue {
            certificate: match issued() {
                CertificateEvent::CertificateIssued { certificate, .. } => certificate,
                _ => unreachable!(),
            },
            at: at(1),
        },
    )
    .await;
    assert_eq!(error, CertificateError::AlreadyIssued("0A1B".to_owned()));
}

#[tokio::test]
async fn a_destroyed_key_is_destroyed_once_and_never_handed_out() {
    let destroyed = vec![
        issued(),
        revoked(1),
        CertificateEvent::PrivateKeyDestroyed { at: at(2) },
    ];
    let error = refused(
        destroyed.clone(),
        CertificateCommand::RecordKeyDestroyed { at: at(3) },
    )
    .await;
    assert!(error.to_string().contains("no private key left"), "{error}");
    let error = refused(
        destroyed,
        CertificateCommand::RecordDownload {
            by: requester(),
            artifact: Artifact::PrivateKey,
            at: at(3),
        },
    )
    .await;
    assert!(error.to_string().contains("destroyed"), "{error}");
    let error = refused(
        vec![issued_with_key(None)],
        CertificateCommand::RecordKeyDestroyed { at: at(3) },
    )
    .await;
    assert!(matches!(error, CertificateError::NoPrivateKey(_)));
}

#[tokio::test]
async fn a_renewal_at_the_ca_is_a_new_serial_and_validity_with_reminders_and_key_anew() {
    let renewed = CertificateEvent::CertificateRenewedAtCa {
        previous_serial: SerialNumber::parse("0A1B").expect("serial"),
        renewal: renewal("0C2D", 150),
        at: at(30),
    };
    Framework::with(())
        .given(vec![issued_by_acm()])
        .when_async(CertificateCommand::RecordCaRenewal {
            renewal: renewal("0C2D", 150),
            at: at(30),
        })
        .await
        .then_expect_events(vec![renewed.clone()]);
    let mut certificate = Certificate::default();
    for event in [
        issued_by_acm(),
        CertificateEvent::ExpiryReminderSent {
            days_before: 30,
            at: at(20),
        },
        CertificateEvent::CertificateDownloaded {
            by: requester(),
            artifact: Artifact::PrivateKey,
            download_count: 0,
            at: at(21),
        },
        renewed,
    ] {
        certificate.apply(event);
    }
    assert_eq!(certificate.serial().map(AsRef::as_ref), Some("0C2D"));
    assert_eq!(certificate.valid_to(), Some(at(0) + Duration::days(150)));
    assert!(certificate.reminders().is_empty(), "reminders start anew");
    certificate
        .may_download(&requester(), Artifact::PrivateKey)
        .expect("the renewed key is downloaded once, too");
}

#[tokio::test]
async fn only_a_newer_certificate_of_a_ca_that_renews_is_a_renewal() {
    let internal = refused(
        vec![issued()],
        CertificateCommand::RecordCaRenewal {
            renewal: renewal("0C2D", 150),
            at: at(30),
        },
    )
    .await;
    assert_eq!(
        internal.to_string(),
        "certificate 0A1B is not renewed by its CA"
    );
    let older = refused(
        vec![issued_by_acm()],
        CertificateCommand::RecordCaRenewal {
            renewal: renewal("0C2D", 60),
            at: at(30),
        },
    )
    .await;
    assert!(matches!(older, CertificateError::NotARenewal(_)), "{older}");
    let same = refused(
        vec![issued_by_acm()],
        CertificateCommand::RecordCaRenewal {
            renewal: renewal("0A1B", 150),
            at: at(30),
        },
    )
    .await;
    assert!(matches!(same, CertificateError::NotARenewal(_)), "{same}");
}
