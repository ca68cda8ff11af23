//! Given / when / then for approvals: every rule, every refusal.

use cqrs_es::test::TestFramework;

use super::*;
use crate::domain::actor::Role;
use crate::domain::testing::{actor, at, request_id, requester, text};

type Framework = TestFramework<Approval>;

fn jane() -> Actor {
    actor("jane", Role::Approver)
}

fn admin() -> Actor {
    actor("root", Role::Admin)
}

fn number() -> RequestNumber {
    RequestNumber::parse("REQ-20261127-00001").expect("number")
}

fn opened(required: u8) -> ApprovalEvent {
    ApprovalEvent::ApprovalOpened {
        request_id: request_id(),
        request_number: number(),
        requester: requester(),
        certificate_type: CertificateType::WebServer,
        required_approvals: required,
        approvers: vec![jane(), admin()],
        at: at(0),
    }
}

fn granted(by: Actor, approvals: u8, required: u8, minute: u32) -> ApprovalEvent {
    ApprovalEvent::ApprovalGranted {
        by,
        comment: None,
        approvals,
        required_approvals: required,
        at: at(minute),
    }
}

fn approve(by: Actor, minute: u32) -> ApprovalCommand {
    ApprovalCommand::Approve {
        by,
        comment: None,
        at: at(minute),
    }
}

async fn refused(given: Vec<ApprovalEvent>, command: ApprovalCommand) -> ApprovalError {
    Framework::with(())
        .given(given)
        .when_async(command)
        .await
        .inspect_result()
        .expect_err("refused")
}

#[tokio::test]
async fn opening_leaves_out_the_requester_and_duplicates() {
    let mut approver_requester = requester();
    approver_requester.role = Role::Approver;
    Framework::with(())
        .given_no_previous_events()
        .when_async(ApprovalCommand::Open {
            request_id: request_id(),
            request_number: number(),
            requester: requester(),
            certificate_type: CertificateType::WebServer,
            required_approvals: 1,
            approvers: vec![jane(), approver_requester, admin(), jane()],
            at: at(0),
        })
        .await
        .then_expect_events(vec![opened(1)]);
}

#[tokio::test]
async fn a_policy_needs_one_to_five_approvals() {
    for required in [0, 6] {
        let error = refused(
            vec![],
            ApprovalCommand::Open {
                request_id: request_id(),
                request_number: number(),
                requester: requester(),
                certificate_type: CertificateType::WebServer,
                required_approvals: required,
                approvers: vec![],
                at: at(0),
            },
        )
        .await;
        assert_eq!(error, ApprovalError::BadPolicy(required));
    }
    assert!(matches!(
        refused(
            vec![opened(1)],
            ApprovalCommand::Open {
                request_id: request_id(),
                request_number: number(),
                requester: requester(),
                certificate_type: CertificateType::WebServer,
                required_approvals: 1,
                approvers: vec![],
                at: at(0),
            }
        )
        .await,
        ApprovalError::AlreadyOpen(_)
    ));
}

#[tokio::test]
async fn one_approval_meets_a_single_approval_policy() {
    Framework::with(())
        .given(vec![opened(1)])
        .when_async(approve(jane(), 2))
        .await
        .then_expect_events(vec![
            granted(jane(), 1, 1, 2),
            ApprovalEvent::ApprovalPolicySatisfied {
                approvers: vec![jane()],
                at: at(2),
            },
        ]);
}

#[tokio::test]
async fn a_two_approval_policy_waits_for_a_second_person() {
    Framework::with(())
        .given(vec![opened(2)])
        .when_async(approve(jane(), 2))
        .await
        .then_expect_events(vec![granted(jane(), 1, 2, 2)]);
    Framework::with(())
        .given(vec![opened(2), granted(jane(), 1, 2, 2)])
        .when_async(approve(admin(), 3))
        .await
        .then_expect_events(vec![
            granted(admin(), 2, 2, 3),
            ApprovalEvent::ApprovalPolicySatisfied {
                approvers: vec![jane(), admin()],
                at: at(3),
            },
        ]);
    // The same person twice does not count twice.
    assert_eq!(
        refused(
            vec![opened(2), granted(jane(), 1, 2, 2)],
            approve(jane(), 3)
        )
        .await,
        ApprovalError::AlreadyActed("approved")
    );
}

#[tokio::test]
async fn nobody_approves_their_own_request() {
    let mut me = requester();
    me.role = Role::Admin;
    assert_eq!(
        refused(vec![opened(1)], approve(me, 1)).await,
        ApprovalError::OwnRequest
    );
}

#[tokio::test]
async fn plain_users_and_auditors_cannot_decide() {
    for role in [Role::User, Role::Auditor] {
        assert_eq!(
            refused(vec![opened(1)], approve(actor("eve", role), 1)).await,
            ApprovalError::NotAnApprover
        );
    }
}

#[tokio::test]
async fn any_approver_may_decide_even_if_not_asked() {
    let other = actor("olga", Role::Approver);
    Framework::with(())
        .given(vec![opened(1)])
        .when_async(approve(other.clone(), 1))
        .await
        .then_expect_events(vec![
            granted(other.clone(), 1, 1, 1),
            ApprovalEvent::ApprovalPolicySatisfied {
                approvers: vec![other],
                at: at(1),
            },
        ]);
}

#[tokio::test]
async fn a_decision_is_final_and_later_clicks_learn_who_decided() {
    let decided = vec![
        opened(1),
        granted(jane(), 1, 1, 2),
        ApprovalEvent::ApprovalPolicySatisfied {
            approvers: vec![jane()],
            at: at(2),
        },
    ];
    let error = refused(decided.clone(), approve(admin(), 3)).await;
    assert_eq!(
        error.to_string(),
        "REQ-20261127-00001 was already approved by jane@example.com at 10:02 UTC on 2026-11-27"
    );
    let error = refused(
        decided,
        ApprovalCommand::Reject {
            by: admin(),
            reason: text("late"),
            at: at(4),
        },
    )
    .await;
    assert!(matches!(
        error,
        ApprovalError::AlreadyDecided {
            outcome: "approved",
            ..
        }
    ));
}

#[tokio::test]
async fn the_first_rejection_decides() {
    Framework::with(())
        .given(vec![opened(2), granted(jane(), 1, 2, 1)])
        .when_async(ApprovalCommand::Reject {
            by: admin(),
            reason: text("wrong team"),
            at: at(2),
        })
        .await
        .then_expect_events(vec![ApprovalEvent::ApprovalRejected {
            by: admin(),
            reason: "wrong team".to_owned(),
            at: at(2),
        }]);
    let rejected = vec![
        opened(1),
        ApprovalEvent::ApprovalRejected {
            by: admin(),
            reason: "no".to_owned(),
            at: at(2),
        },
    ];
    let error = refused(rejected, approve(jane(), 3)).await;
    assert!(
        error
            .to_string()
            .contains("already rejected by root@example.com")
    );
}

#[tokio::test]
async fn delegation_moves_the_decision_to_the_delegate() {
    let delegate = actor("dave", Role::User);
    let delegated = vec![
        opened(1),
        ApprovalEvent::ApprovalDelegated {
            by: jane(),
            to: delegate.clone(),
            reason: "on leave".to_owned(),
            at: at(1),
        },
    ];
    Framework::with(())
        .given(vec![opened(1)])
        .when_async(ApprovalCommand::Delegate {
            by: jane(),
            to: delegate.clone(),
            reason: text("on leave"),
            at: at(1),
        })
        .await
        .then_expect_events(delegated[1..].to_vec());
    // The delegate decides although a plain user; the delegator no longer can.
    Framework::with(())
        .given(delegated.clone())
        .when_async(approve(delegate.clone(), 2))
        .await
        .then_expect_events(vec![
            granted(delegate.clone(), 1, 1, 2),
            ApprovalEvent::ApprovalPolicySatisfied {
                approvers: vec![delegate],
                at: at(2),
            },
        ]);
    assert_eq!(
        refused(delegated, approve(jane(), 3)).await,
        ApprovalError::AlreadyActed("delegated")
    );
}

#[tokio::test]
async fn delegation_refusals() {
    let delegate = |to: Actor| ApprovalCommand::Delegate {
        by: jane(),
        to,
        reason: text("away"),
        at: at(1),
    };
    assert_eq!(
        refused(vec![opened(1)], delegate(requester())).await,
        ApprovalError::DelegateIsRequester
    );
    assert_eq!(
        refused(vec![opened(1)], delegate(jane())).await,
        ApprovalError::DelegateIsSelf
    );
    assert_eq!(
        refused(
            vec![opened(2), granted(admin(), 1, 2, 1)],
            delegate(admin())
        )
        .await,
        ApprovalError::DelegateAlreadyActed("root@example.com".to_owned())
    );
    assert_eq!(
        refused(
            vec![opened(1)],
            ApprovalCommand::Delegate {
                by: actor("eve", Role::User),
                to: admin(),
                reason: text("x"),
                at: at(1),
            }
        )
        .await,
        ApprovalError::NotAnApprover
    );
}

#[tokio::test]
async fn reminders_count_up_and_name_who_is_still_pending() {
    Framework::with(())
        .given(vec![
            opened(2),
            granted(jane(), 1, 2, 1),
            ApprovalEvent::ApprovalReminderSent {
                approvers: vec![admin()],
                reminder_count: 1,
                escalated_to: vec![],
                at: at(2),
            },
        ])
        .when_async(ApprovalCommand::RecordReminder {
            escalated_to: vec![admin()],
            at: at(3),
        })
        .await
        .then_expect_events(vec![ApprovalEvent::ApprovalReminderSent {
            approvers: vec![admin()],
            reminder_count: 2,
            escalated_to: vec![admin()],
            at: at(3),
        }]);
}

#[tokio::test]
async fn nothing_happens_to_an_approval_that_was_never_opened() {
    assert_eq!(
        refused(vec![], approve(jane(), 1)).await,
        ApprovalError::NotFound
    );
}

#[tokio::test]
async fn a_withdrawn_approval_takes_no_decisions() {
    let error = refused(
        vec![
            opened(1),
            ApprovalEvent::ApprovalWithdrawn {
                reason: "cancelled".to_owned(),
                at: at(1),
            },
        ],
        approve(jane(), 2),
    )
    .await;
    assert!(matches!(
        error,
        ApprovalError::AlreadyDecided {
            outcome: "withdrawn",
            ..
        }
    ));
}
