//! The mapping from events to rows, without a database: rows the batch knows, events
//! applied in memory, and what the writer would be handed.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::approvals::{ApprovalRow, RequestApprovals};
use super::table::Table;
use super::users::UserRow;
use super::{Rows, apply_one, row_id};
use crate::domain::actor::{Actor, Platform, Role};
use crate::domain::approval::ApprovalEvent;
use crate::domain::testing::{actor, at};
use crate::domain::user::UserEvent;
use crate::feed::{DomainEvent, StoredEvent};

fn stored(
    aggregate_type: &str,
    aggregate_id: Uuid,
    sequence: i64,
    at: DateTime<Utc>,
) -> StoredEvent {
    StoredEvent {
        aggregate_type: aggregate_type.to_owned(),
        aggregate_id: aggregate_id.to_string(),
        sequence,
        event_type: "Test".to_owned(),
        event_version: "1.0".to_owned(),
        payload: json!({ "Test": { "at": at } }),
        metadata: json!({}),
        global_seq: sequence,
        tx_id: "1".to_owned(),
        recorded_at: at,
    }
}

fn user_row(person: &Actor) -> UserRow {
    UserRow {
        id: person.user_id,
        email: person.email.to_string(),
        display_name: Some("Jane".to_owned()),
        role: person.role.as_str().to_owned(),
        created_at: at(0),
        updated_at: at(0),
    }
}

fn pending(request_id: Uuid, approver: &Actor) -> ApprovalRow {
    ApprovalRow {
        id: row_id(&[
            "approval",
            &request_id.to_string(),
            &approver.user_id.to_string(),
        ]),
        request_id,
        approver_id: approver.user_id,
        status: "pending".to_owned(),
        decision: None,
        comments: None,
        decided_at: None,
        delegated_to_id: None,
        delegation_reason: None,
        notified_at: Some(at(1)),
        reminder_count: Some(0),
        last_reminder_at: None,
        created_at: at(1),
        updated_at: at(1),
    }
}

/// Rows where everything is known: `people` and the approvals of `request_id`.
fn known(people: &[&Actor], request_id: Uuid, approvals: Vec<ApprovalRow>) -> Rows {
    Rows {
        users: Table::known(people.iter().map(|p| user_row(p))),
        requests: Table::known([]),
        approvals: Table::known([RequestApprovals {
            request_id,
            rows: approvals,
        }]),
        certificates: Table::known([]),
        private_keys: Table::known([]),
        notifications: Table::known([]),
        config: Table::known([]),
        ..Rows::default()
    }
}

#[test]
fn a_grant_that_satisfies_the_policy_decides_its_row_and_drops_the_other_pending_ones() {
    let (jane, ops) = (actor("jane", Role::Approver), actor("ops", Role::Approver));
    let request_id = Uuid::from_u128(7);
    let mut rows = known(
        &[&jane, &ops],
        request_id,
        vec![pending(request_id, &jane), pending(request_id, &ops)],
    );
    let granted = DomainEvent::Approval(ApprovalEvent::ApprovalGranted {
        by: jane.clone(),
        comment: Some("fine".to_owned()),
        approvals: 1,
        required_approvals: 1,
        at: at(5),
    });
    let satisfied = DomainEvent::Approval(ApprovalEvent::ApprovalPolicySatisfied {
        approvers: vec![jane.clone()],
        at: at(5),
    });
    let audit = [
        apply_one(
            &mut rows,
            &stored("Approval", request_id, 2, at(5)),
            &granted,
        )
        .expect("granted"),
        apply_one(
            &mut rows,
            &stored("Approval", request_id, 3, at(5)),
            &satisfied,
        )
        .expect("satisfied"),
    ];
    assert!(!rows.has_misses());
    let group = rows.approvals.rows();
    let [group] = group.as_slice() else {
        panic!("one request's approvals: {group:?}")
    };
    let [row] = group.rows.as_slice() else {
        panic!("only the decided row is left: {:?}", group.rows)
    };
    assert_eq!(row.approver_id, jane.user_id);
    assert_eq!(row.status, "approved");
    assert_eq!(row.decision.as_deref(), Some("approve"));
    assert_eq!(row.comments.as_deref(), Some("fine"));
    assert_eq!(row.decided_at, Some(at(5)));
    assert_eq!(
        row.notified_at,
        Some(at(1)),
        "asked when the approval opened"
    );
    assert_eq!(row.updated_at, at(5));
    // Both events have their audit row; nobody new had to be added to `users`.
    assert_eq!(audit.len(), 2);
    assert_eq!(rows.users.rows().len(), 2);
}

#[test]
fn rows_a_batch_has_not_loaded_are_misses_and_change_nothing() {
    let jane = actor("jane", Role::Approver);
    let request_id = Uuid::from_u128(8);
    let mut rows = Rows::default();
    let granted = DomainEvent::Approval(ApprovalEvent::ApprovalGranted {
        by: jane,
        comment: None,
        approvals: 1,
        required_approvals: 1,
        at: at(5),
    });
    apply_one(
        &mut rows,
        &stored("Approval", request_id, 2, at(5)),
        &granted,
    )
    .expect("applied");
    assert!(rows.approvals.has_misses(), "its approvals must be loaded");
    assert!(
        rows.users.has_misses(),
        "the approver's user row must be looked up"
    );
    assert!(
        rows.requests.has_misses(),
        "the request number names the audit row"
    );
    assert!(rows.approvals.rows().is_empty());
}

#[test]
fn a_registration_keeps_a_known_display_name_when_the_platform_gives_none() {
    let jane = actor("jane", Role::Approver);
    let mut rows = known(&[&jane], Uuid::from_u128(9), Vec::new());
    let registered = DomainEvent::User(UserEvent::UserRegistered {
        user: jane.clone(),
        display_name: None,
        platform: Platform::Slack,
        at: at(9),
    });
    apply_one(
        &mut rows,
        &stored("User", jane.user_id, 1, at(9)),
        &registered,
    )
    .expect("applied");
    let users = rows.users.rows();
    let [user] = users.as_slice() else {
        panic!("one user: {users:?}")
    };
    assert_eq!(user.display_name.as_deref(), Some("Jane"));
    assert_eq!(user.created_at, at(9));
    assert_eq!(user.role, "approver");
}
