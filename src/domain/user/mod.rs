//! The user aggregate: one per e-mail address (id = [`user_id_for`]), with a role that admins
//! change. The write side of `users`.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use super::actor::{Actor, Platform, Role, user_id_for};
use super::values::Email;

/// What can be asked of a user record.
#[derive(Debug, Clone, PartialEq)]
pub enum UserCommand {
    /// First contact: record the user with a role.
    Register {
        /// The address.
        email: Email,
        /// A name to show, if known.
        display_name: Option<String>,
        /// The starting role.
        role: Role,
        /// Where they first appeared.
        platform: Platform,
        /// When.
        at: DateTime<Utc>,
    },
    /// Change the role (admins only).
    GrantRole {
        /// The new role.
        role: Role,
        /// Who grants it.
        by: Actor,
        /// When.
        at: DateTime<Utc>,
    },
    /// The person signed in to the dashboard, or viewed one of its pages there (auditors'
    /// views are part of the audit trail). Only approvers, admins and auditors see it.
    ViewDashboard {
        /// What: `sign-in`, or the page's path and query (at most 200 characters).
        page: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// A chat account proved it is this person (a code mailed to the address came back).
    LinkChatAccount {
        /// The platform.
        platform: Platform,
        /// The account's id there (at most 100 characters).
        account: String,
        /// When.
        at: DateTime<Utc>,
    },
}

/// What happened to a user record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum UserEvent {
    /// The user was recorded.
    UserRegistered {
        /// The user.
        user: Actor,
        /// A name to show.
        display_name: Option<String>,
        /// Where they first appeared.
        platform: Platform,
        /// When.
        at: DateTime<Utc>,
    },
    /// The role changed.
    RoleGranted {
        /// The user.
        user: Actor,
        /// The role before.
        previous_role: Role,
        /// Who granted it.
        by: Actor,
        /// When.
        at: DateTime<Utc>,
    },
    /// The user signed in to the dashboard or viewed a page of it.
    DashboardViewed {
        /// The user, with the role they viewed it as.
        user: Actor,
        /// `sign-in`, or the page's path and query.
        page: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// A chat account acts as this user from now on.
    ChatAccountLinked {
        /// The user.
        user: Actor,
        /// The platform.
        platform: Platform,
        /// The account's id there.
        account: String,
        /// When.
        at: DateTime<Utc>,
    },
}

/// The longest page recorded of a dashboard view.
pub const MAX_PAGE: usize = 200;

/// The longest chat account id (`chat_identities.user_id`).
pub const MAX_ACCOUNT_ID: usize = 100;

impl DomainEvent for UserEvent {
    fn event_type(&self) -> String {
        match self {
            Self::UserRegistered { .. } => "UserRegistered",
            Self::RoleGranted { .. } => "RoleGranted",
            Self::ChatAccountLinked { .. } => "ChatAccountLinked",
            Self::DashboardViewed { .. } => "DashboardViewed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// Why a user command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// Registered already.
    #[error("{0} is already registered")]
    AlreadyRegistered(String),
    /// Unknown user.
    #[error("there is no such user")]
    NotFound,
    /// Only admins grant roles.
    #[error("only admins can grant roles")]
    NotAnAdmin,
    /// Admins cannot demote themselves (someone must stay admin).
    #[error("you cannot change your own role")]
    OwnRole,
    /// A chat account id that no platform gives.
    #[error("a chat account id is 1 to 100 characters")]
    BadAccount,
    /// The dashboard is for approvers, admins and auditors.
    #[error("the dashboard is for approvers, admins and auditors")]
    NotForDashboard,
}

/// The state rebuilt from events.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    actor: Option<Actor>,
}

impl User {
    /// The user as an actor (with the current role), once registered.
    pub fn actor(&self) -> Option<&Actor> {
        self.actor.as_ref()
    }
}

impl Aggregate for User {
    const TYPE: &'static str = "User";
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = match command {
            UserCommand::Register {
                email,
                display_name,
                role,
                platform,
                at,
            } => {
                if let Some(actor) = &self.actor {
                    return Err(UserError::AlreadyRegistered(actor.email.to_string()));
                }
                UserEvent::UserRegistered {
                    user: Actor {
                        user_id: user_id_for(&email),
                        email,
                        role,
                    },
                    display_name,
                    platform,
                    at,
                }
            }
            UserCommand::GrantRole { role, by, at } => {
                let current = self.actor.as_ref().ok_or(UserError::NotFound)?;
                if by.role != Role::Admin {
                    return Err(UserError::NotAnAdmin);
                }
                if by.is(current) {
                    return Err(UserError::OwnRole);
                }
                UserEvent::RoleGranted {
                    user: Actor {
                        role,
                        ..current.clone()
                    },
                    previous_role: current.role,
                    by,
                    at,
                }
            }
            UserCommand::ViewDashboard { page, at } => {
                let user = self.actor.clone().ok_or(UserError::NotFound)?;
                if user.role == Role::User {
                    return Err(UserError::NotForDashboard);
                }
                UserEvent::DashboardViewed {
                    user,
                    page: page.chars().take(MAX_PAGE).collect(),
                    at,
                }
            }
            UserCommand::LinkChatAccount {
                platform,
                account,
                at,
            } => {
                let user = self.actor.clone().ok_or(UserError::NotFound)?;
                let account = account.trim();
                if account.is_empty() || account.chars().count() > MAX_ACCOUNT_ID {
                    return Err(UserError::BadAccount);
                }
                UserEvent::ChatAccountLinked {
                    user,
                    platform,
                    account: account.to_owned(),
                    at,
                }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            UserEvent::UserRegistered { user, .. } | UserEvent::RoleGranted { user, .. } => {
                self.actor = Some(user);
            }
            UserEvent::ChatAccountLinked { .. } | UserEvent::DashboardViewed { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::domain::testing::{actor, at};

    fn registered() -> UserEvent {
        UserEvent::UserRegistered {
            user: actor("john", Role::User),
            display_name: None,
            platform: Platform::Cli,
            at: at(0),
        }
    }

    #[tokio::test]
    async fn admins_grant_roles() {
        let admin = actor("root", Role::Admin);
        TestFramework::<User>::with(())
            .given(vec![registered()])
            .when_async(UserCommand::GrantRole {
                role: Role::Approver,
                by: admin.clone(),
                at: at(1),
            })
            .await
            .then_expect_events(vec![UserEvent::RoleGranted {
                user: actor("john", Role::Approver),
                previous_role: Role::User,
                by: admin,
                at: at(1),
            }]);
    }

    #[tokio::test]
    async fn a_dashboard_view_is_recorded_bounded_and_only_for_those_it_is_for() {
        let auditor = UserEvent::UserRegistered {
            user: actor("audrey", Role::Auditor),
            display_name: None,
            platform: Platform::Cli,
            at: at(0),
        };
        // A page as long as anyone types it is kept to its first 200 characters.
        let typed = format!("/dashboard/requests?q={}", "é".repeat(10_000));
        TestFramework::<User>::with(())
            .given(vec![auditor])
            .when_async(UserCommand::ViewDashboard {
                page: typed.clone(),
                at: at(1),
            })
            .await
            .then_expect_events(vec![UserEvent::DashboardViewed {
                user: actor("audrey", Role::Auditor),
                page: typed.chars().take(MAX_PAGE).collect(),
                at: at(1),
            }]);
        let requester = TestFramework::<User>::with(())
            .given(vec![registered()])
            .when_async(UserCommand::ViewDashboard {
                page: "/dashboard".to_owned(),
                at: at(1),
            })
            .await
            .inspect_result();
        assert_eq!(requester, Err(UserError::NotForDashboard));
    }

    #[tokio::test]
    async fn only_admins_grant_and_not_to_themselves() {
        let result = TestFramework::<User>::with(())
            .given(vec![registered()])
            .when_async(UserCommand::GrantRole {
                role: Role::Admin,
                by: actor("jane", Role::Approver),
                at: at(1),
            })
            .await
            .inspect_result();
        assert_eq!(result, Err(UserError::NotAnAdmin));
        let me = actor("john", Role::Admin);
        let result = TestFramework::<User>::with(())
            .given(vec![UserEvent::UserRegistered {
                user: me.clone(),
                display_name: None,
                platform: Platform::Cli,
                at: at(0),
            }])
            .when_async(UserCommand::GrantRole {
                role: Role::User,
                by: me,
                at: at(1),
            })
            .await
            .inspect_result();
        assert_eq!(result, Err(UserError::OwnRole));
    }

    #[tokio::test]
    async fn a_user_registers_once() {
        let result = TestFramework::<User>::with(())
            .given(vec![registered()])
            .when_async(UserCommand::Register {
                email: Email::parse("john@example.com").expect("email"),
                display_name: None,
                role: Role::User,
                platform: Platform::Slack,
                at: at(1),
            })
            .await
            .inspect_result();
        assert_eq!(
            result,
            Err(UserError::AlreadyRegistered("john@example.com".to_owned()))
        );
    }
}
