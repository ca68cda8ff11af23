//! Notifications (`notifications`): queued when something happens that a person must know,
//! then sent, failed or bounced. The outbox of the chat and mail senders.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::actor::Actor;
use super::values::closed_set;

/// Delivery attempts before a notification counts as failed for good.
pub const MAX_ATTEMPTS: u32 = 5;

closed_set! {
    /// Why someone is notified (`notifications.notification_type`).
    NotificationType, "notification_type", "notification type" {
        /// An approver is asked to decide.
        ApprovalRequested = "approval_requested",
        /// The requester's request went to the approvers.
        RequestSubmitted = "request_submitted",
        /// The request was approved.
        RequestApproved = "request_approved",
        /// The request was rejected.
        RequestRejected = "request_rejected",
        /// The certificate is ready.
        CertificateIssued = "certificate_issued",
        /// The CA refused, or issuance gave up.
        IssuanceFailed = "issuance_failed",
        /// The certificate expires soon.
        CertificateExpiring = "certificate_expiring",
        /// The certificate was revoked.
        CertificateRevoked = "certificate_revoked",
        /// A pending approval is overdue.
        ApprovalReminder = "approval_reminder",
        /// The CA waits for DNS records the requester must create (ACM's DNS validation).
        ValidationRequired = "dns_validation_required",
    }
}

closed_set! {
    /// How it is delivered (`notifications.channel`).
    Channel, "channel", "channel" {
        /// E-mail (SES, or the local outbox).
        Email = "email",
        /// Slack.
        Slack = "slack",
        /// Microsoft Teams.
        Teams = "teams",
        /// Text message.
        Sms = "sms",
    }
}

/// What to send to whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The recipient.
    pub recipient: Actor,
    /// Why.
    pub notification_type: NotificationType,
    /// Subject line (at most 255 characters).
    pub subject: String,
    /// The text.
    pub body: String,
    /// How.
    pub channel: Channel,
    /// `request` or `certificate`.
    pub resource_type: Option<String>,
    /// Its id.
    pub resource_id: Option<Uuid>,
}

/// What can be asked of a notification.
#[derive(Debug, Clone, PartialEq)]
pub enum NotificationCommand {
    /// Put it in the outbox.
    Queue {
        /// The message.
        message: Box<Message>,
        /// When.
        at: DateTime<Utc>,
    },
    /// It was delivered.
    MarkSent {
        /// The provider's message id (SES, Slack ts, ...).
        external_message_id: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Delivery failed this time.
    MarkFailed {
        /// The provider's error.
        error: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The mail bounced after it was sent.
    MarkBounced {
        /// When.
        at: DateTime<Utc>,
    },
}

/// What happened to a notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NotificationEvent {
    /// Queued.
    NotificationQueued {
        /// The message.
        message: Box<Message>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Delivered.
    NotificationSent {
        /// The provider's id.
        external_message_id: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A delivery attempt failed.
    NotificationDeliveryFailed {
        /// The provider's error.
        error: String,
        /// Attempts failed so far.
        retry_count: u32,
        /// Whether it is given up.
        gave_up: bool,
        /// When.
        at: DateTime<Utc>,
    },
    /// Bounced.
    NotificationBounced {
        /// When.
        at: DateTime<Utc>,
    },
}

impl DomainEvent for NotificationEvent {
    fn event_type(&self) -> String {
        match self {
            Self::NotificationQueued { .. } => "NotificationQueued",
            Self::NotificationSent { .. } => "NotificationSent",
            Self::NotificationDeliveryFailed { .. } => "NotificationDeliveryFailed",
            Self::NotificationBounced { .. } => "NotificationBounced",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// Why a notification command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    /// Queued twice.
    #[error("this notification is already queued")]
    AlreadyQueued,
    /// Unknown.
    #[error("there is no such notification")]
    NotFound,
    /// Already delivered, failed for good, or bounced.
    #[error("this notification is already {0}")]
    Finished(&'static str),
    /// Bounce before send.
    #[error("only a sent notification can bounce")]
    NotSent,
    /// Subject too long.
    #[error("a notification subject has at most 255 characters")]
    SubjectTooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Status {
    Pending,
    Sent,
    Failed,
    Bounced,
}

/// The state rebuilt from events.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    status: Option<Status>,
    retry_count: u32,
}

impl Aggregate for Notification {
    const TYPE: &'static str = "Notification";
    type Command = NotificationCommand;
    type Event = NotificationEvent;
    type Error = NotificationError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let pending = || match self.status {
            None => Err(NotificationError::NotFound),
            Some(Status::Pending) => Ok(()),
            Some(Status::Sent) => Err(NotificationError::Finished("sent")),
            Some(Status::Failed) => Err(NotificationError::Finished("failed")),
            Some(Status::Bounced) => Err(NotificationError::Finished("bounced")),
        };
        let event = match command {
            NotificationCommand::Queue { message, at } => {
                if self.status.is_some() {
                    return Err(NotificationError::AlreadyQueued);
                }
                if message.subject.chars().count() > 255 {
                    return Err(NotificationError::SubjectTooLong);
                }
                NotificationEvent::NotificationQueued { message, at }
            }
            NotificationCommand::MarkSent {
                external_message_id,
                at,
            } => {
                pending()?;
                NotificationEvent::NotificationSent {
                    external_message_id,
                    at,
                }
            }
            NotificationCommand::MarkFailed { error, at } => {
                pending()?;
                let retry_count = self.retry_count + 1;
                NotificationEvent::NotificationDeliveryFailed {
                    error,
                    retry_count,
                    gave_up: retry_count >= MAX_ATTEMPTS,
                    at,
                }
            }
            NotificationCommand::MarkBounced { at } => {
                if self.status != Some(Status::Sent) {
                    return Err(NotificationError::NotSent);
                }
                NotificationEvent::NotificationBounced { at }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            NotificationEvent::NotificationQueued { .. } => self.status = Some(Status::Pending),
            NotificationEvent::NotificationSent { .. } => self.status = Some(Status::Sent),
            NotificationEvent::NotificationDeliveryFailed {
                retry_count,
                gave_up,
                ..
            } => {
                self.retry_count = retry_count;
                if gave_up {
                    self.status = Some(Status::Failed);
                }
            }
            NotificationEvent::NotificationBounced { .. } => self.status = Some(Status::Bounced),
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::domain::actor::Role;
    use crate::domain::testing::{actor, at};

    fn queued() -> NotificationEvent {
        NotificationEvent::NotificationQueued {
            message: Box::new(Message {
                recipient: actor("jane", Role::Approver),
                notification_type: NotificationType::ApprovalRequested,
                subject: "REQ-20261127-00001 needs your approval".to_owned(),
                body: "app.example.com".to_owned(),
                channel: Channel::Email,
                resource_type: Some("request".to_owned()),
                resource_id: None,
            }),
            at: at(0),
        }
    }

    #[tokio::test]
    async fn failures_count_up_and_the_fifth_gives_up() {
        let mut history = vec![queued()];
        for n in 1..MAX_ATTEMPTS {
            history.push(NotificationEvent::NotificationDeliveryFailed {
                error: "timeout".to_owned(),
                retry_count: n,
                gave_up: false,
                at: at(n),
            });
        }
        TestFramework::<Notification>::with(())
            .given(history)
            .when_async(NotificationCommand::MarkFailed {
                error: "timeout".to_owned(),
                at: at(9),
            })
            .await
            .then_expect_events(vec![NotificationEvent::NotificationDeliveryFailed {
                error: "timeout".to_owned(),
                retry_count: MAX_ATTEMPTS,
                gave_up: true,
                at: at(9),
            }]);
    }

    #[tokio::test]
    async fn a_sent_notification_is_not_sent_again_and_only_it_can_bounce() {
        let sent = vec![
            queued(),
            NotificationEvent::NotificationSent {
                external_message_id: Some("ses-1".to_owned()),
                at: at(1),
            },
        ];
        let again = TestFramework::<Notification>::with(())
            .given(sent.clone())
            .when_async(NotificationCommand::MarkSent {
                external_message_id: None,
                at: at(2),
            })
            .await
            .inspect_result();
        assert_eq!(again, Err(NotificationError::Finished("sent")));
        let early = TestFramework::<Notification>::with(())
            .given(vec![queued()])
            .when_async(NotificationCommand::MarkBounced { at: at(2) })
            .await
            .inspect_result();
        assert_eq!(early, Err(NotificationError::NotSent));
        TestFramework::<Notification>::with(())
            .given(sent)
            .when_async(NotificationCommand::MarkBounced { at: at(3) })
            .await
            .then_expect_events(vec![NotificationEvent::NotificationBounced { at: at(3) }]);
    }
}
