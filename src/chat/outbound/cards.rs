//! One renderer for what people see of a request and of a revocation: the approval message
//! (everything the approvers decide on), and what every copy of it becomes once decided.
//! The notifier's updates of every copy and a click's own reply to the person who clicked
//! are both made here, from the same recorded facts (who, when, why), so they say the same
//! on every platform and every copy.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::{Decision, RevocationDecision};
use crate::chat::reply::{Block, Reply};
use crate::domain::actor::Actor;
use crate::domain::approval::Outcome;
use crate::domain::request::{CsrType, RequestEvent, Subject};
use crate::domain::values::{
    CaType, CertificateType, Email, KeyAlgorithm, RequestNumber, SerialNumber, ValidityDays,
};

/// What an approval message shows of a request, from its creation event.
#[derive(Debug, Clone)]
pub struct RequestCard {
    pub(crate) number: RequestNumber,
    pub(crate) requester: Actor,
    pub(crate) subject: Subject,
    pub(crate) certificate_type: CertificateType,
    pub(crate) key_algorithm: KeyAlgorithm,
    pub(crate) validity_days: ValidityDays,
    pub(crate) csr_type: CsrType,
    pub(crate) ca_type: CaType,
    /// What the questionnaire recommended, when the requester chose otherwise.
    pub(crate) against: Option<CaType>,
    /// Why this CA (against the recommendation, or by an admin's policy), if said.
    pub(crate) override_reason: Option<String>,
    pub(crate) justification: String,
    pub(crate) renews: Option<SerialNumber>,
    pub(crate) stays_in_acm: bool,
}

impl RequestCard {
    /// The request as its creation event recorded it.
    pub async fn load(pool: &PgPool, request_id: Uuid) -> anyhow::Result<Self> {
        let Some(RequestEvent::RequestCreated {
            request_number,
            requester,
            subject,
            certificate_type,
            key_algorithm,
            validity_days,
            csr_type,
            business,
            recommendation,
            requested_ca_type,
            override_requested,
            override_reason,
            renews,
            stays_in_acm,
            ..
        }) = crate::eventstore::request_creation(pool, request_id).await?
        else {
            anyhow::bail!("there is no request {request_id}");
        };
        Ok(Self {
            number: request_number,
            requester,
            subject,
            certificate_type,
            key_algorithm,
            validity_days,
            csr_type,
            ca_type: requested_ca_type,
            against: recommendation
                .filter(|_| override_requested)
                .map(|r| r.ca_type),
            override_reason,
            justification: business.justification.to_string(),
            renews,
            stays_in_acm,
        })
    }

    /// A card with every field filled, for tests of what platforms make of it.
    #[cfg(test)]
    pub(crate) fn example() -> Self {
        use crate::domain::actor::Role;
        use crate::domain::testing::{actor, host_subject};
        let mut subject = host_subject(
            "shop.example.com",
            &["shop.example.com", "www.shop.example.com"],
        );
        subject.organization =
            crate::domain::text::Text::optional("organization", Some("Example Ltd"), 64)
                .expect("an organization");
        Self {
            number: RequestNumber::parse("REQ-20261202-00001").expect("number"),
            requester: actor("john", Role::User),
            subject,
            certificate_type: CertificateType::WebServer,
            key_algorithm: KeyAlgorithm::EccP256,
            validity_days: ValidityDays::parse("90").expect("days"),
            csr_type: CsrType::Generated,
            ca_type: CaType::Internal,
            against: Some(CaType::Public),
            override_reason: Some("only the intranet uses it".to_owned()),
            justification: "the web shop <!channel> & more".to_owned(),
            renews: None,
            stays_in_acm: false,
        }
    }

    /// An approval message: `intro`, every field, and the decision buttons. What is
    /// certified is what an approver saw here.
    pub fn approval_message(&self, intro: &str) -> Reply {
        Reply::text(intro)
            .with(Block::Fields(self.fields()))
            .with(Block::Decisions {
                request_number: self.number.to_string(),
            })
    }

    /// What an approval message becomes once `line` settled it: the same fields, without
    /// the buttons, and the line that says who decided.
    pub fn decided(&self, line: String) -> Reply {
        Reply::text(format!("*{}*", self.number))
            .with(Block::Fields(self.fields()))
            .with(Block::Text(line))
    }

    /// Everything the certificate will say and how it comes to be: every subject field,
    /// every name, the key's origin, the CA.
    pub fn fields(&self) -> Vec<(String, String)> {
        let request = self;
        let subject = &request.subject;
        let mut fields = vec![
            ("Requester".to_owned(), request.requester.email.to_string()),
            ("Common name".to_owned(), subject.common_name.to_string()),
            (
                "Type".to_owned(),
                request.certificate_type.as_str().to_owned(),
            ),
            ("Validity".to_owned(), request.validity_days.to_string()),
            (
                "CA".to_owned(),
                match (request.against, &request.override_reason) {
                    (Some(recommended), Some(why)) => format!(
                        "{}, not the {recommended} CA the questionnaire recommended: {why}",
                        request.ca_type
                    ),
                    (Some(recommended), None) => format!(
                        "{}, the requester's choice; the questionnaire recommended {}",
                        request.ca_type, recommended
                    ),
                    (None, Some(why)) => format!("{}: {why}", request.ca_type),
                    (None, None) => request.ca_type.to_string(),
                },
            ),
            (
                "Key".to_owned(),
                match (request.ca_type, request.csr_type) {
                    // Public requests go to ACM only (never to the internal CA), which makes
                    // the key and hands it over with the certificate.
                    (CaType::Public, _) if request.stays_in_acm => format!(
                        "{}, made by AWS Certificate Manager; the certificate stays in ACM for \
                         AWS load balancers, CloudFront and API Gateway (nothing to download)",
                        request.key_algorithm
                    ),
                    (CaType::Public, _) => format!(
                        "{}, made by AWS Certificate Manager and exported with the certificate",
                        request.key_algorithm
                    ),
                    (_, CsrType::Uploaded) => format!(
                        "{}, the requester's own (uploaded CSR): the key never passes here",
                        request.key_algorithm
                    ),
                    _ => format!("{}, generated here", request.key_algorithm),
                },
            ),
        ];
        let sans: Vec<String> = subject
            .subject_alternative_names
            .iter()
            .map(ToString::to_string)
            .collect();
        fields.push((
            "DNS names".to_owned(),
            if sans.is_empty() {
                "—".to_owned()
            } else {
                sans.join(", ")
            },
        ));
        if let Some(email) = &subject.email_address {
            let whose = if email.same_person(&request.requester.email) {
                String::new()
            } else {
                " (not the requester's own: asked for by an admin)".to_owned()
            };
            fields.push(("E-mail".to_owned(), format!("{email}{whose}")));
        }
        for (label, value) in [
            (
                "Organization (O)",
                subject.organization.as_ref().map(|t| t.as_str()),
            ),
            (
                "Unit (OU)",
                subject.organizational_unit.as_ref().map(|t| t.as_str()),
            ),
            (
                "Locality (L)",
                subject.locality.as_ref().map(|t| t.as_str()),
            ),
            (
                "State (ST)",
                subject.state_province.as_ref().map(|t| t.as_str()),
            ),
            ("Country (C)", subject.country.as_ref().map(|c| c.as_ref())),
        ] {
            if let Some(value) = value {
                fields.push((label.to_owned(), value.to_owned()));
            }
        }
        fields.push(("Why".to_owned(), request.justification.clone()));
        fields
    }
}

/// How an approval ended, in the words every copy of it shows: who decided, when, and why.
/// `by` names the approvers by e-mail (several, comma-separated).
pub fn decision_line(
    outcome: Decision,
    by: &str,
    reason: &str,
    at: Option<DateTime<Utc>>,
) -> String {
    let at = at.map_or_else(String::new, |at| format!(" at {} UTC", at.format("%H:%M")));
    match outcome {
        Decision::Approved => format!("Approved by {by}{at}"),
        Decision::Withdrawn => format!("Withdrawn{at}: {reason}"),
        Decision::Rejected => format!("Rejected by {by}{at}: {reason}"),
    }
}

/// The same line from the approval's recorded outcome (what a click reads back after its
/// decision), as the notifier's line from the event that recorded it.
pub fn outcome_line(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Approved { approvers, at } => {
            decision_line(Decision::Approved, &emails(approvers), "", Some(*at))
        }
        Outcome::Rejected { by, reason, at } => {
            decision_line(Decision::Rejected, by.email.as_ref(), reason, Some(*at))
        }
        Outcome::Withdrawn { at } => decision_line(Decision::Withdrawn, "", "", Some(*at)),
    }
}

/// Approvers by e-mail, as an approval's copies name them.
pub fn emails(actors: &[Actor]) -> String {
    actors
        .iter()
        .map(|actor| actor.email.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What every copy of a revocation ask becomes once decided.
pub fn revocation_decided(
    serial: &str,
    outcome: RevocationDecision,
    by: &Email,
    comment: Option<&str>,
    at: DateTime<Utc>,
) -> Reply {
    let at = at.format("%H:%M");
    let line = match outcome {
        RevocationDecision::Confirmed => {
            format!("Revoked at the CA — confirmed by {by} at {at} UTC")
        }
        RevocationDecision::Overtaken => {
            format!("Revoked by {by} at {at} UTC; no decision is needed any more")
        }
        RevocationDecision::Approved => format!("Revocation approved by {by} at {at} UTC"),
        RevocationDecision::Rejected => format!(
            "Revocation rejected by {by} at {at} UTC: {}",
            comment.unwrap_or_default()
        ),
    };
    Reply::text(format!("Revocation of `{serial}`")).with(Block::Text(line))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::actor::Role;
    use crate::domain::testing::{actor, host_subject};

    fn card(ca_type: CaType, csr_type: CsrType) -> RequestCard {
        RequestCard {
            number: RequestNumber::parse("REQ-20261202-00001").expect("number"),
            requester: actor("john", Role::User),
            subject: host_subject("shop.example.com", &["shop.example.com"]),
            certificate_type: CertificateType::WebServer,
            key_algorithm: KeyAlgorithm::EccP256,
            validity_days: ValidityDays::parse("90").expect("days"),
            csr_type,
            ca_type,
            against: None,
            override_reason: None,
            justification: "web shop".to_owned(),
            renews: None,
            stays_in_acm: false,
        }
    }

    fn key_of(card: &RequestCard) -> String {
        card.fields()
            .into_iter()
            .find(|(label, _)| label == "Key")
            .map(|(_, value)| value)
            .expect("a key field")
    }

    #[test]
    fn a_click_reads_back_the_line_the_notifier_writes_from_the_event() {
        let at = "2026-12-07T14:02:30Z".parse().expect("time");
        let jane = actor("jane", Role::Approver);
        let root = actor("root", Role::Admin);
        let approved = Outcome::Approved {
            approvers: vec![jane.clone(), root.clone()],
            at,
        };
        assert_eq!(
            outcome_line(&approved),
            decision_line(
                Decision::Approved,
                &emails(&[jane.clone(), root]),
                "",
                Some(at)
            )
        );
        assert!(outcome_line(&approved).ends_with(" at 14:02 UTC"));
        let rejected = Outcome::Rejected {
            by: jane.clone(),
            reason: "wrong host".to_owned(),
            at,
        };
        assert_eq!(
            outcome_line(&rejected),
            format!("Rejected by {} at 14:02 UTC: wrong host", jane.email)
        );
    }

    #[test]
    fn a_decided_copy_keeps_every_field_and_loses_the_buttons() {
        let card = card(CaType::Internal, CsrType::Generated);
        let asked = card.approval_message("needs you");
        let decided = card.decided("Approved by jane@example.com".to_owned());
        let fields = |reply: &Reply| {
            reply
                .blocks
                .iter()
                .find_map(|b| match b {
                    Block::Fields(f) => Some(f.clone()),
                    _ => None,
                })
                .expect("fields")
        };
        assert_eq!(fields(&asked), fields(&decided));
        assert!(
            decided
                .blocks
                .iter()
                .all(|b| !matches!(b, Block::Decisions { .. }))
        );
        assert!(
            matches!(decided.blocks.last(), Some(Block::Text(line)) if line.starts_with("Approved by"))
        );
    }

    #[test]
    fn the_approver_is_told_who_makes_the_key() {
        assert!(
            key_of(&card(CaType::Public, CsrType::Generated)).contains("AWS Certificate Manager")
        );
        assert!(key_of(&card(CaType::Internal, CsrType::Generated)).contains("generated here"));
        assert!(key_of(&card(CaType::Internal, CsrType::Uploaded)).contains("uploaded CSR"));
        let stays = RequestCard {
            stays_in_acm: true,
            ..card(CaType::Public, CsrType::Generated)
        };
        assert!(
            key_of(&stays).contains("stays in ACM"),
            "{}",
            key_of(&stays)
        );
        assert!(key_of(&card(CaType::Public, CsrType::Generated)).contains("exported"));
    }
}
