//! Given / when / then: every rule of the request life cycle, each refusal included.

use cqrs_es::test::TestFramework;

use super::*;
use crate::domain::actor::Role;
use crate::domain::recommendation::{Confidence, Recommendation, Rule};
use crate::domain::testing::{actor, at, new_request, requester, text};
use crate::domain::values::{CaType, RevocationReason, SerialNumber};

type Framework = TestFramework<CertificateRequest>;

fn created() -> RequestEvent {
    CertificateRequest::create(new_request(), at(0)).expect("valid request")
}

fn submitted() -> RequestEvent {
    RequestEvent::RequestSubmitted {
        by: requester(),
        at: at(0),
    }
}

fn approved() -> RequestEvent {
    RequestEvent::RequestApproved {
        approvers: vec![actor("jane", Role::Approver)],
        at: at(5),
    }
}

fn certificate_id() -> Uuid {
    Uuid::from_u128(0xCE27)
}

fn serial() -> SerialNumber {
    SerialNumber::parse("0A1B").expect("serial")
}

fn create(submit: bool) -> RequestCommand {
    RequestCommand::Create {
        request: Box::new(new_request()),
        submit,
        at: at(0),
    }
}

async fn refusal(events: Vec<RequestEvent>, command: RequestCommand) -> String {
    Framework::with(())
        .given(events)
        .when_async(command)
        .await
        .inspect_result()
        .expect_err("the command is refused")
        .to_string()
}

#[tokio::test]
async fn creating_and_submitting_records_both_events() {
    Framework::with(())
        .given_no_previous_events()
        .when_async(create(true))
        .await
        .then_expect_events(vec![created(), submitted()]);
}

#[tokio::test]
async fn a_host_certificate_always_names_its_common_name_among_the_sans() {
    let RequestEvent::RequestCreated { subject, .. } = created() else {
        panic!("not a creation");
    };
    let sans: Vec<&str> = subject
        .subject_alternative_names
        .iter()
        .map(AsRef::as_ref)
        .collect();
    assert_eq!(sans, ["app.example.com", "www.example.com"]);
}

#[tokio::test]
async fn a_draft_can_be_submitted_by_its_requester() {
    Framework::with(())
        .given(vec![created()])
        .when_async(RequestCommand::Submit {
            by: requester(),
            at: at(0),
        })
        .await
        .then_expect_events(vec![submitted()]);
}

#[tokio::test]
async fn the_same_request_cannot_be_created_twice() {
    assert_eq!(
        refusal(vec![created()], create(false)).await,
        "request REQ-20261127-00001 already exists"
    );
}

#[tokio::test]
async fn someone_else_cannot_submit_or_cancel_a_request() {
    let other = actor("mallory", Role::Approver);
    assert!(
        refusal(
            vec![created()],
            RequestCommand::Submit {
                by: other.clone(),
                at: at(1)
            }
        )
        .await
        .contains("only the requester or an admin")
    );
    assert!(
        refusal(
            vec![created(), submitted()],
            RequestCommand::Cancel {
                by: other,
                reason: None,
                at: at(1)
            }
        )
        .await
        .contains("only the requester or an admin")
    );
}

#[tokio::test]
async fn an_admin_can_cancel_someone_elses_pending_request() {
    let admin = actor("root", Role::Admin);
    Framework::with(())
        .given(vec![created(), submitted()])
        .when_async(RequestCommand::Cancel {
            by: admin.clone(),
            reason: Some(text("duplicate")),
            at: at(3),
        })
        .await
        .then_expect_events(vec![RequestEvent::RequestCancelled {
            by: admin,
            reason: Some("duplicate".to_owned()),
            at: at(3),
        }]);
}

#[tokio::test]
async fn a_request_nobody_decided_on_expires_as_cancelled_but_a_decided_one_does_not() {
    Framework::with(())
        .given(vec![created(), submitted()])
        .when_async(RequestCommand::Expire {
            waited_days: 14,
            at: at(3),
        })
        .await
        .then_expect_events(vec![RequestEvent::RequestExpired {
            waited_days: 14,
            at: at(3),
        }]);
    let message = refusal(
        vec![
            created(),
            submitted(),
            RequestEvent::RequestExpired {
                waited_days: 14,
                at: at(3),
            },
        ],
        RequestCommand::Expire {
            waited_days: 15,
            at: at(4),
        },
    )
    .await;
    assert!(message.contains("cancelled"), "{message}");
}

#[tokio::test]
async fn a_request_cannot_be_cancelled_once_issuance_started() {
    let message = refusal(
        vec![
            created(),
            submitted(),
            approved(),
            RequestEvent::IssuanceStarted { at: at(6) },
        ],
        RequestCommand::Cancel {
            by: requester(),
            reason: None,
            at: at(7),
        },
    )
    .await;
    assert_eq!(
        message,
        "request REQ-20261127-00001 is in_progress; cancelling is only possible when it is \
         draft or pending_approval or approved"
    );
}

#[tokio::test]
async fn transitions_out_of_order_are_refused() {
    let cases: Vec<(Vec<RequestEvent>, RequestCommand, &str)> = vec![
        (
            vec![created()],
            RequestCommand::Approve {
                approvers: vec![],
                at: at(1),
            },
            "is draft; approving",
        ),
        (
            vec![created(), submitted()],
            RequestCommand::StartIssuance { at: at(1) },
            "is pending_approval; starting issuance",
        ),
        (
            vec![created(), submitted(), approved()],
            RequestCommand::MarkIssued {
                certificate_id: certificate_id(),
                serial_number: serial(),
                at: at(1),
            },
            "is approved; marking issued",
        ),
        (
            vec![
                created(),
                submitted(),
                RequestEvent::RequestRejected {
                    by: actor("jane", Role::Approver),
                    reason: "no".to_owned(),
                    at: at(1),
                },
            ],
            RequestCommand::Approve {
                approvers: vec![],
                at: at(2),
            },
            "is rejected; approving",
        ),
        (
            vec![created(), submitted(), approved()],
            RequestCommand::Submit {
                by: requester(),
                at: at(2),
            },
            "is approved; submitting",
        ),
    ];
    for (given, command, expected) in cases {
        let message = refusal(given, command).await;
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    }
}

#[tokio::test]
async fn the_happy_path_to_issued_and_revoked() {
    let history = vec![
        created(),
        submitted(),
        approved(),
        RequestEvent::IssuanceStarted { at: at(6) },
        RequestEvent::CaRequestRecorded {
            ca_request_id: "17".to_owned(),
            ca_status: "pending".to_owned(),
            ca_type: None,
            at: at(7),
        },
        RequestEvent::IssuanceRetryScheduled {
            retry_count: 1,
            error: "timeout".to_owned(),
            at: at(8),
        },
    ];
    Framework::with(())
        .given(history.clone())
        .when_async(RequestCommand::ScheduleRetry {
            error: "timeout again".to_owned(),
            at: at(9),
        })
        .await
        .then_expect_events(vec![RequestEvent::IssuanceRetryScheduled {
            retry_count: 2,
            error: "timeout again".to_owned(),
            at: at(9),
        }]);
    let mut issued = history;
    issued.push(RequestEvent::RequestIssued {
        certificate_id: certificate_id(),
        serial_number: serial(),
        at: at(10),
    });
    Framework::with(())
        .given(issued.clone())
        .when_async(RequestCommand::MarkRevoked {
            certificate_id: certificate_id(),
            reason: RevocationReason::Superseded,
            at: at(11),
        })
        .await
        .then_expect_events(vec![RequestEvent::RequestRevoked {
            certificate_id: certificate_id(),
            reason: RevocationReason::Superseded,
            at: at(11),
        }]);
    let message = refusal(
        issued,
        RequestCommand::MarkRevoked {
            certificate_id: Uuid::from_u128(1),
            reason: RevocationReason::Superseded,
            at: at(11),
        },
    )
    .await;
    assert!(
        message.contains("not issued from this request"),
        "{message}"
    );
}

#[tokio::test]
async fn auditors_cannot_request_certificates() {
    let mut request = new_request();
    request.requester = actor("audrey", Role::Auditor);
    let message = refusal(
        vec![],
        RequestCommand::Create {
            request: Box::new(request),
            submit: true,
            at: at(0),
        },
    )
    .await;
    assert!(message.contains("read-only"), "{message}");
}

#[tokio::test]
async fn a_server_certificate_needs_a_host_name_as_common_name() {
    let mut request = new_request();
    request.subject.common_name = CommonName::parse("John Doe").expect("cn");
    let message = refusal(
        vec![],
        RequestCommand::Create {
            request: Box::new(request),
            submit: false,
            at: at(0),
        },
    )
    .await;
    assert!(message.contains("must be a host name"), "{message}");
}

#[tokio::test]
async fn an_email_certificate_needs_an_email_address() {
    let mut request = new_request();
    request.certificate_type = CertificateType::Email;
    request.subject.common_name = CommonName::parse("John Doe").expect("cn");
    let message = refusal(
        vec![],
        RequestCommand::Create {
            request: Box::new(request),
            submit: false,
            at: at(0),
        },
    )
    .await;
    assert!(message.contains("e-mail address"), "{message}");
}

#[tokio::test]
async fn an_email_certificate_is_for_the_requesters_own_address_unless_an_admin_asks() {
    let email_request = |requester: Actor, address: &str| {
        let mut request = new_request();
        request.certificate_type = CertificateType::Email;
        request.subject.common_name = CommonName::parse("John Doe").expect("cn");
        request.subject.subject_alternative_names.clear();
        request.subject.email_address = Some(Email::parse(address).expect("email"));
        request.requester = requester;
        request
    };
    // Someone else's address: refused, and the message says whose it must be.
    let error = CertificateRequest::create(email_request(requester(), "ceo@example.com"), at(0))
        .expect_err("another person's address");
    assert!(
        error
            .to_string()
            .contains("the e-mail address must be your own (john@example.com)"),
        "{error}"
    );
    // The same for any type that would carry the address.
    let mut web = new_request();
    web.subject.email_address = Some(Email::parse("ceo@example.com").expect("email"));
    assert!(CertificateRequest::create(web, at(0)).is_err());
    // Their own, in any case or with a sub-address tag: accepted.
    for own in ["john@example.com", "John+smime@Example.com"] {
        CertificateRequest::create(email_request(requester(), own), at(0)).expect(own);
    }
    // An admin may ask for another address.
    CertificateRequest::create(
        email_request(actor("root", Role::Admin), "ceo@example.com"),
        at(0),
    )
    .expect("an admin asks for another");
}

#[tokio::test]
async fn generated_and_uploaded_csrs_carry_keys_accordingly() {
    let mut request = new_request();
    request.csr.private_key = None;
    assert!(
        refusal(
            vec![],
            RequestCommand::Create {
                request: Box::new(request),
                submit: false,
                at: at(0)
            }
        )
        .await
        .contains("encrypted private key")
    );
    let mut request = new_request();
    request.csr.csr_type = CsrType::Uploaded;
    assert!(
        refusal(
            vec![],
            RequestCommand::Create {
                request: Box::new(request),
                submit: false,
                at: at(0)
            }
        )
        .await
        .contains("no private key")
    );
}

fn recommended(ca_type: CaType) -> Recommendation {
    Recommendation {
        ca_type,
        reason: "because".to_owned(),
        confidence: Confidence::from_hundredths(90).expect("confidence"),
        rule: Rule::R4,
        notes: vec![],
    }
}

#[tokio::test]
async fn going_against_the_recommendation_needs_a_reason() {
    let mut request = new_request();
    request.recommendation = Some(recommended(CaType::Public));
    request.requested_ca_type = CaType::Internal;
    let message = refusal(
        vec![],
        RequestCommand::Create {
            request: Box::new(request),
            submit: false,
            at: at(0),
        },
    )
    .await;
    assert!(
        message.contains("the public CA was recommended; say why"),
        "{message}"
    );
}

#[tokio::test]
async fn an_override_with_a_reason_is_recorded_and_a_follower_records_none() {
    let mut request = new_request();
    request.recommendation = Some(recommended(CaType::Public));
    request.override_reason = Some(text("internal clients only"));
    let event = CertificateRequest::create(request, at(0)).expect("valid");
    let RequestEvent::RequestCreated {
        override_requested,
        override_reason,
        ..
    } = event
    else {
        panic!("not a creation");
    };
    assert!(override_requested);
    assert_eq!(override_reason.as_deref(), Some("internal clients only"));

    let mut request = new_request();
    request.recommendation = Some(recommended(CaType::Internal));
    request.override_reason = Some(text("not needed"));
    let RequestEvent::RequestCreated {
        override_requested,
        override_reason,
        ..
    } = CertificateRequest::create(request, at(0)).expect("valid")
    else {
        panic!("not a creation");
    };
    assert!(!override_requested);
    assert_eq!(override_reason, None);
}

#[tokio::test]
async fn commands_on_a_request_that_does_not_exist_are_refused() {
    assert_eq!(
        refusal(vec![], RequestCommand::StartIssuance { at: at(0) }).await,
        "there is no such request"
    );
}

#[tokio::test]
async fn events_carry_a_type_and_a_version() {
    use cqrs_es::DomainEvent;
    assert_eq!(created().event_type(), "RequestCreated");
    assert_eq!(created().event_version(), "1.0");
}

#[tokio::test]
async fn the_dns_records_a_ca_waits_for_are_recorded_within_bounds() {
    let in_progress = || {
        vec![
            created(),
            submitted(),
            approved(),
            RequestEvent::IssuanceStarted { at: at(6) },
        ]
    };
    let record = |value: &str| ValidationRecord {
        domain: "app.example.com".to_owned(),
        name: "_x.app.example.com.".to_owned(),
        record_type: "CNAME".to_owned(),
        value: value.to_owned(),
        created_in: None,
    };
    Framework::with(())
        .given(in_progress())
        .when_async(RequestCommand::RecordValidationRecords {
            records: vec![record("_y.acm-validations.aws.")],
            at: at(7),
        })
        .await
        .then_expect_events(vec![RequestEvent::ValidationRecordsRequired {
            records: vec![record("_y.acm-validations.aws.")],
            at: at(7),
        }]);
    for records in [
        Vec::new(),
        vec![record("_y.acm-validations.aws."); MAX_VALIDATION_RECORDS + 1],
        vec![record(&"y".repeat(MAX_RECORD_FIELD + 1))],
    ] {
        let refused = refusal(
            in_progress(),
            RequestCommand::RecordValidationRecords { records, at: at(7) },
        )
        .await;
        assert!(refused.contains("DNS records"), "{refused}");
    }
    let early = refusal(
        vec![created(), submitted()],
        RequestCommand::RecordValidationRecords {
            records: vec![record("_y.acm-validations.aws.")],
            at: at(7),
        },
    )
    .await;
    assert!(early.contains("pending_approval"), "{early}");
}
