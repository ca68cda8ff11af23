//! Time travel: a request or a certificate as it was at any past instant, folded from its
//! events up to then, with its whole story (who did what, when, from where) to show what
//! changed since. What the dashboard, `cert-assistant audit as-of` and `/cert audit as-of`
//! show.

use chrono::{DateTime, Utc};

use super::{CommandError, Commands, RequestView};
use crate::domain::certificate::{Certificate, CertificateStatus};
use crate::domain::values::{RequestNumber, SerialNumber, ValueError};
use crate::eventstore::{RequestState, StoryEntry};

/// A certificate as it was at an instant.
#[derive(Debug, Clone)]
pub struct CertificateAsOf {
    /// The request it was issued for, as it was then (its approvals with it).
    pub request: RequestView,
    /// The certificate as its events up to then left it (`None`: not issued yet).
    pub certificate: Option<Certificate>,
    /// The whole story of the request, its approval and the certificate.
    pub story: Vec<StoryEntry>,
}

impl CertificateAsOf {
    /// What the certificate was at `at`, as labels and values (none before it was issued).
    pub fn facts(&self, at: DateTime<Utc>) -> Vec<(&'static str, String)> {
        let Some(certificate) = &self.certificate else {
            return Vec::new();
        };
        let (Some(serial), Some(status), Some(valid_to)) = (
            certificate.serial(),
            certificate.status(),
            certificate.valid_to(),
        ) else {
            return Vec::new();
        };
        let day = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
        let status = if status == CertificateStatus::Active && valid_to <= at {
            "expired (its validity had ended)".to_owned()
        } else {
            status.as_str().to_owned()
        };
        let mut facts = vec![
            ("Serial", serial.to_string()),
            ("Status", status),
            ("Valid to", day(valid_to)),
        ];
        if let Some(owner) = certificate.owner() {
            facts.push(("Owner", owner.email.to_string()));
        }
        facts.push(("Downloads", certificate.download_count().to_string()));
        let reminders = certificate.reminders();
        facts.push((
            "Expiry reminders sent",
            if reminders.is_empty() {
                "none".to_owned()
            } else {
                let days: Vec<String> = reminders.iter().map(u32::to_string).collect();
                format!("{} days before", days.join(", "))
            },
        ));
        if let Some(pending) = certificate.pending_revocation() {
            facts.push((
                "Revocation waiting for approval",
                format!(
                    "{} (asked by {} at {})",
                    pending.reason,
                    pending.by.email,
                    day(pending.at)
                ),
            ));
        }
        if let Some(revoked) = certificate.revoked_at() {
            let at_ca = if certificate.revoked_at_ca() {
                "the CA has revoked it"
            } else {
                "the CA not yet told"
            };
            facts.push(("Revoked", format!("{} ({at_ca})", day(revoked))));
        }
        facts
    }
}

impl Commands {
    /// The request as it was at `as_of` (folded from its events up to then; `None`: now),
    /// and its whole story, for the dashboard's time travel.
    pub async fn request_as_of(
        &self,
        number: &RequestNumber,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<(RequestView, Vec<StoryEntry>), CommandError> {
        let (state, story) = self.story_of(number, as_of).await?;
        Ok((viewed(number, state)?, story))
    }

    /// The certificate with `serial` as it was at `as_of` (`None`: now): its own events and
    /// its request's and approval's up to then, folded.
    pub async fn certificate_as_of(
        &self,
        serial: &SerialNumber,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<CertificateAsOf, CommandError> {
        let certificate_id =
            crate::eventstore::certificate_with_serial(self.pool(), serial.as_ref())
                .await?
                .ok_or_else(|| {
                    CommandError::NotFound(format!("there is no certificate with serial {serial}"))
                })?;
        let number = self.issued(certificate_id).await?.request_number;
        let (state, story) = self.story_of(&number, as_of).await?;
        let certificate = state
            .certificate
            .as_ref()
            .filter(|(id, _)| *id == certificate_id)
            .map(|(_, certificate)| certificate.clone());
        Ok(CertificateAsOf {
            request: viewed(&number, state)?,
            certificate,
            story,
        })
    }

    async fn story_of(
        &self,
        number: &RequestNumber,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<(RequestState, Vec<StoryEntry>), CommandError> {
        crate::eventstore::request_story(self.pool(), number.as_ref(), as_of)
            .await?
            .ok_or_else(|| CommandError::NotFound(format!("there is no request {number}")))
    }
}

/// The view of request `number` from its state at an instant.
fn viewed(number: &RequestNumber, state: RequestState) -> Result<RequestView, CommandError> {
    RequestView::from_state(number, state)
        .ok_or_else(|| CommandError::NotFound(format!("{number} did not exist yet at that time")))
}

/// A request or a certificate as it was at an instant, told in words: what `cert-assistant
/// audit as-of` prints and `/cert audit as-of` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recalled {
    /// What it is: `REQ-…` or `certificate 0A1B…`.
    pub what: String,
    /// How it stood, as labels and values.
    pub facts: Vec<(String, String)>,
    /// What happened to it since, a line each (when, what, by whom).
    pub since: Vec<String>,
}

impl Commands {
    /// `resource` (a request number, or a certificate's serial) as it was at `at`.
    pub async fn recall(
        &self,
        resource: &str,
        at: DateTime<Utc>,
    ) -> Result<Recalled, CommandError> {
        let resource = resource.trim();
        let (what, mut facts, story, request) = if let Ok(number) = RequestNumber::parse(resource) {
            let (view, story) = self.request_as_of(&number, Some(at)).await?;
            let mut facts = vec![
                ("Status".to_owned(), view.status.as_str().replace('_', " ")),
                ("Requester".to_owned(), view.requester.email.to_string()),
            ];
            if let Some(certificate) = &view.certificate {
                facts.push(("Certificate".to_owned(), certificate.serial.to_string()));
            }
            (number.to_string(), facts, story, view)
        } else {
            let serial = SerialNumber::parse(resource).map_err(|_| {
                ValueError::new(
                    "resource",
                    "give a request number (REQ-YYYYMMDD-XXXXX) or a certificate's serial",
                )
            })?;
            let then = self.certificate_as_of(&serial, Some(at)).await?;
            let mut facts: Vec<(String, String)> = then
                .facts(at)
                .into_iter()
                .map(|(label, value)| (label.to_owned(), value))
                .collect();
            if facts.is_empty() {
                facts.push(("Status".to_owned(), "not issued yet".to_owned()));
            }
            let number = then.request.request_number.to_string();
            facts.push(("Request".to_owned(), number));
            (
                format!("certificate {serial}"),
                facts,
                then.story,
                then.request,
            )
        };
        for (who, part) in request.approval_lines() {
            facts.push(("Approver".to_owned(), format!("{}: {part}", who.email)));
        }
        let since = story
            .iter()
            .filter(|entry| entry.at > at)
            .map(|entry| {
                format!(
                    "{}  {} {}{}",
                    entry.at.format("%Y-%m-%d %H:%M:%S"),
                    entry.aggregate_type,
                    entry.event_type,
                    entry
                        .by
                        .as_deref()
                        .map_or_else(String::new, |by| format!(" by {by}"))
                )
            })
            .collect();
        Ok(Recalled { what, facts, since })
    }
}
