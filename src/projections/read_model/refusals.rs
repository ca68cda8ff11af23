//! Refused attempts: no table of their own, an audit row each.

use crate::domain::refusal::RefusalEvent;
use crate::projections::audit::AuditEntry;

pub(super) fn apply(event: &RefusalEvent) -> AuditEntry {
    let RefusalEvent::AttemptRefused(attempt) = event;
    let resource_type = match attempt.resource_type.as_str() {
        "certificate" => "certificate",
        "user" => "user",
        "config" => "config",
        _ => "request",
    };
    let mut entry = AuditEntry::new(
        &format!("{}_refused", attempt.action),
        "authorization",
        resource_type,
        &attempt.action,
    )
    .severity("warning")
    .resource(attempt.resource_id, attempt.resource_identifier.clone())
    .failure(attempt.reason.clone());
    if let Some(actor) = &attempt.actor {
        entry = entry.actor(actor);
    }
    entry
}
