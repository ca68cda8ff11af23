//! Who acts: people with a role, from some platform.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::values::{Email, closed_set};

closed_set! {
    /// A user's role (`users.role`).
    Role, "role", "role" {
        /// Requests certificates.
        User = "user" | "requester",
        /// Decides on requests, and requests.
        Approver = "approver",
        /// Everything, including roles and configuration.
        Admin = "admin" | "administrator",
        /// Reads the audit trail and the read model; changes nothing.
        Auditor = "auditor",
    }
}

impl Role {
    /// Whether this role may decide on approvals.
    pub fn may_approve(self) -> bool {
        matches!(self, Self::Approver | Self::Admin)
    }
}

closed_set! {
    /// Where a command came from.
    Platform, "platform", "platform" {
        /// Slack.
        Slack = "slack",
        /// Microsoft Teams.
        Teams = "teams",
        /// Discord.
        Discord = "discord",
        /// The command line.
        Cli = "cli",
        /// The read-only dashboard in a browser.
        Web = "web",
        /// The service itself (sagas, schedules).
        System = "system",
    }
}

/// A person acting, as recorded in events: enough for projections and the audit log to copy
/// without looking anything up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The user's id (`users.id`; derived from the e-mail, see [`user_id_for`]).
    pub user_id: Uuid,
    /// The user's e-mail address.
    pub email: Email,
    /// The role the user had when acting.
    pub role: Role,
}

impl Actor {
    /// Builds an actor from an e-mail and role, with the id derived from the e-mail.
    pub fn new(email: Email, role: Role) -> Self {
        Self {
            user_id: user_id_for(&email),
            email,
            role,
        }
    }

    /// Whether `other` is the same person.
    pub fn is(&self, other: &Actor) -> bool {
        self.user_id == other.user_id
    }
}

/// The namespace of user ids (a fixed, random UUID).
const USER_NAMESPACE: Uuid = Uuid::from_u128(0x8d4c_3f3e_6a0b_4a5e_9a51_2f0c_6b1d_7e22);

/// A user's id: a UUIDv5 of the person the e-mail address stands for
/// ([`Email::identity`]: lower-cased, sub-address tag removed). One person is one identity
/// on every platform and under every form of their address, and every replica computes the
/// same id without a lookup.
pub fn user_id_for(email: &Email) -> Uuid {
    Uuid::new_v5(&USER_NAMESPACE, email.identity().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_is_one_identity_whatever_its_case() {
        let a = Email::parse("Jane@Example.com").expect("email");
        let b = Email::parse("jane@example.COM").expect("email");
        assert_eq!(user_id_for(&a), user_id_for(&b));
        let c = Email::parse("john@example.com").expect("email");
        assert_ne!(user_id_for(&a), user_id_for(&c));
        let tagged = Email::parse("jane+certs@example.com").expect("email");
        assert_eq!(
            user_id_for(&a),
            user_id_for(&tagged),
            "a sub-address is the person"
        );
    }

    #[test]
    fn only_approvers_and_admins_approve() {
        assert!(Role::Approver.may_approve());
        assert!(Role::Admin.may_approve());
        assert!(!Role::User.may_approve());
        assert!(!Role::Auditor.may_approve());
    }
}
