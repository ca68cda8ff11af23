//! Refused attempts (a denied approval, an unauthorized command) change no aggregate, yet the
//! audit trail must show them. Each is recorded as an event of its own small aggregate, so it
//! is as durable as any other fact and reaches `audit_logs` through the same projector.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::actor::Actor;

/// What was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedAttempt {
    /// Who tried, if known.
    pub actor: Option<Actor>,
    /// What they tried (`approve`, `reject`, `revoke`, `grant_role`, ...).
    pub action: String,
    /// `request`, `certificate`, `user` or `config`.
    pub resource_type: String,
    /// The resource's id, if known.
    pub resource_id: Option<Uuid>,
    /// Its human identifier (request number, serial, e-mail), if known.
    pub resource_identifier: Option<String>,
    /// Why it was refused.
    pub reason: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// Record a refusal.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordRefusal(pub RefusedAttempt);

/// A refusal was recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RefusalEvent {
    /// Someone tried something they may not do.
    AttemptRefused(RefusedAttempt),
}

impl DomainEvent for RefusalEvent {
    fn event_type(&self) -> String {
        "AttemptRefused".to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// Why recording failed (only if recorded twice under one id).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this refusal is already recorded")]
pub struct AlreadyRecorded;

/// One refusal per aggregate id.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    recorded: bool,
}

impl Aggregate for Refusal {
    const TYPE: &'static str = "Refusal";
    type Command = RecordRefusal;
    type Event = RefusalEvent;
    type Error = AlreadyRecorded;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        if self.recorded {
            return Err(AlreadyRecorded);
        }
        sink.write(RefusalEvent::AttemptRefused(command.0), self)
            .await;
        Ok(())
    }

    fn apply(&mut self, _event: Self::Event) {
        self.recorded = true;
    }
}
