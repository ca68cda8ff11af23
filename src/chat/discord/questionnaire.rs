//! The questionnaire in Discord: one select menu per question in a private message that is
//! replaced at each answer, then the recommendation, with a button to fill in the
//! certificate's details (a modal) from the recommended CA or, with a reason, the other one.
//! The answers so far ride in the components' ids (one character each), so nothing is kept
//! between the clicks.

use serde_json::{Value, json};

use super::render::text_input;
use crate::chat::reply::Block;
use crate::commands::RequestForm;
use crate::domain::recommendation::{
    Answers, BrowserTrust, CertificateCount, Compliance, Criticality, DomainType, Environment,
    Exposure, Lifespan, Recommendation, RenewalPreference, ServiceType,
};
use crate::domain::values::CaType;

/// A question: its name in [`Answers`], how it is asked, its answers, and whether several
/// may be chosen.
struct Question {
    id: &'static str,
    label: &'static str,
    values: fn() -> Vec<&'static str>,
    many: bool,
}

fn all<T: Copy>(values: &[T], as_str: fn(T) -> &'static str) -> Vec<&'static str> {
    values.iter().map(|v| as_str(*v)).collect()
}

const QUESTIONS: [Question; 10] = [
    Question {
        id: "service_type",
        label: "What is it for?",
        values: || all(ServiceType::ALL, ServiceType::as_str),
        many: false,
    },
    Question {
        id: "publicly_accessible",
        label: "Reachable from the internet?",
        values: || all(Exposure::ALL, Exposure::as_str),
        many: false,
    },
    Question {
        id: "browser_trust_required",
        label: "Must every browser trust it without setup?",
        values: || all(BrowserTrust::ALL, BrowserTrust::as_str),
        many: false,
    },
    Question {
        id: "expected_lifespan",
        label: "How long will it be needed?",
        values: || all(Lifespan::ALL, Lifespan::as_str),
        many: false,
    },
    Question {
        id: "environment_type",
        label: "Which environment?",
        values: || all(Environment::ALL, Environment::as_str),
        many: false,
    },
    Question {
        id: "certificate_count",
        label: "How many certificates like this?",
        values: || all(CertificateCount::ALL, CertificateCount::as_str),
        many: false,
    },
    Question {
        id: "domain_type",
        label: "Which names on it?",
        values: || all(DomainType::ALL, DomainType::as_str),
        many: false,
    },
    Question {
        id: "criticality_level",
        label: "How critical is the service?",
        values: || all(Criticality::ALL, Criticality::as_str),
        many: false,
    },
    Question {
        id: "compliance_requirements",
        label: "Which compliance regimes apply?",
        values: || all(Compliance::ALL, Compliance::as_str),
        many: true,
    },
    Question {
        id: "renewal_preference",
        label: "How should it be renewed?",
        values: || all(RenewalPreference::ALL, RenewalPreference::as_str),
        many: false,
    },
];

/// Custom id prefixes: an answer (`qa:PURPOSE:ANSWERS`), the request buttons (`qr:…`), the
/// details modal (`request:ANSWERS:follow|other`).
pub const ANSWER: &str = "qa";
/// The request buttons after the recommendation.
pub const REQUEST: &str = "qr";
/// The details modal.
pub const DETAILS: &str = "request";

/// What the questionnaire is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Ends in a request (`/cert request`).
    Request,
    /// Ends in the recommendation (`/cert recommend`).
    Recommend,
}

impl Purpose {
    fn code(self) -> char {
        match self {
            Self::Request => 'r',
            Self::Recommend => 'm',
        }
    }
}

/// One answer as one character: an index (or, for several, a set of them as bits) in base 36.
fn encode(answers: &[u32]) -> String {
    answers
        .iter()
        .filter_map(|a| char::from_digit(*a, 36))
        .collect()
}

fn decode(encoded: &str) -> Option<Vec<u32>> {
    let answers: Option<Vec<u32>> = encoded.chars().map(|c| c.to_digit(36)).collect();
    answers.filter(|a| a.len() <= QUESTIONS.len())
}

/// The answers as the names [`Answers::parse_with`] reads.
fn answers(encoded: &[u32]) -> Option<Answers> {
    if encoded.len() != QUESTIONS.len() {
        return None;
    }
    Answers::parse_with(|id| {
        let at = QUESTIONS.iter().position(|q| q.id == id)?;
        let question = &QUESTIONS[at];
        let values = (question.values)();
        let answer = encoded[at];
        if question.many {
            let chosen: Vec<&str> = (0..values.len())
                .filter(|bit| answer & (1 << bit) != 0)
                .map(|bit| values[bit])
                .collect();
            Some(chosen.join(","))
        } else {
            values.get(answer as usize).map(|v| (*v).to_owned())
        }
    })
    .ok()
}

/// The message asking the next question after `so_far`.
pub fn step(purpose: Purpose, so_far: &[u32]) -> Value {
    let Some(question) = QUESTIONS.get(so_far.len()) else {
        return json!({ "content": "The questionnaire is complete.", "components": [] });
    };
    let values = (question.values)();
    let options: Vec<Value> = values
        .iter()
        .map(|v| json!({ "label": v.replace('_', " "), "value": v }))
        .collect();
    let mut content = format!(
        "**Question {} of {}:** {}",
        so_far.len() + 1,
        QUESTIONS.len(),
        question.label
    );
    if so_far.is_empty() {
        content.insert_str(
            0,
            "A few questions first, so we can recommend the right CA.\n",
        );
    }
    json!({
        "content": content,
        "flags": super::render::EPHEMERAL,
        "components": [{
            "type": 1,
            "components": [{
                "type": 3,
                "custom_id": format!("{ANSWER}:{}:{}", purpose.code(), encode(so_far)),
                "placeholder": question.label,
                "options": options,
                "min_values": 1,
                "max_values": if question.many { values.len() } else { 1 },
            }],
        }],
    })
}

/// The values chosen in a select menu interaction.
pub fn selected(body: &Value) -> Vec<&str> {
    body["data"]["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// What an answer (a select menu's `values`, custom id `qa:…`) leads to: the next question,
/// or, after the last, the recommendation (made with `recommend`); `None` for an id that is
/// not the questionnaire's.
pub fn answered(
    custom_id: &str,
    selected: &[&str],
    recommend: impl Fn(&Answers) -> (Recommendation, Option<&'static str>),
) -> Option<Value> {
    let mut parts = custom_id.splitn(3, ':');
    let (Some(ANSWER), Some(purpose), Some(encoded)) = (parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let purpose = match purpose {
        "r" => Purpose::Request,
        "m" => Purpose::Recommend,
        _ => return None,
    };
    let mut so_far = decode(encoded)?;
    let question = QUESTIONS.get(so_far.len())?;
    let values = (question.values)();
    let index = |value: &str| values.iter().position(|v| *v == value);
    let answer = if question.many {
        let mut bits = 0;
        for value in selected {
            bits |= 1 << index(value)?;
        }
        bits
    } else {
        u32::try_from(index(selected.first()?)?).ok()?
    };
    so_far.push(answer);
    if so_far.len() < QUESTIONS.len() {
        return Some(step(purpose, &so_far));
    }
    let answers = answers(&so_far)?;
    let (recommendation, public_note) = recommend(&answers);
    let mut reply = crate::chat::service::recommendation_reply(&recommendation);
    if let Some(note) = public_note {
        reply = reply.with(Block::Text(format!("_Note:_ {note}")));
    }
    let mut message = super::render::posted(&reply);
    message["flags"] = json!(super::render::EPHEMERAL);
    message["components"] = match purpose {
        Purpose::Recommend => json!([]),
        Purpose::Request => {
            let (follow, other) = match recommendation.ca_type {
                CaType::Public => ("public", "internal"),
                CaType::Internal => ("internal", "public"),
            };
            let encoded = encode(&so_far);
            json!([{
                "type": 1,
                "components": [
                    { "type": 2, "style": 1, "label": format!("Request it from the {follow} CA"), "custom_id": format!("{REQUEST}:{encoded}:follow") },
                    { "type": 2, "style": 2, "label": format!("Use the {other} CA instead"), "custom_id": format!("{REQUEST}:{encoded}:other") },
                ],
            }])
        }
    };
    Some(message)
}

/// The details modal a request button (`qr:ANSWERS:follow|other`) opens; `None` for an id
/// that is not one.
pub fn details_modal(custom_id: &str) -> Option<Value> {
    let (encoded, choice) = custom_id
        .strip_prefix(REQUEST)?
        .strip_prefix(':')?
        .split_once(':')?;
    answers(&decode(encoded)?)?;
    let mut components = vec![
        text_input("common_name", "Common name", false, true, "app.example.com"),
        text_input(
            "subject_alternative_names",
            "Other names (comma-separated)",
            false,
            false,
            "www.app.example.com",
        ),
        text_input(
            "validity_days",
            "Validity in days: 90, 365 or 730",
            false,
            false,
            "365",
        ),
        text_input(
            "justification",
            "Why is it needed?",
            true,
            true,
            "What uses it, and for whom",
        ),
    ];
    let title = match choice {
        "follow" => "Request: the recommended CA",
        "other" => {
            components.push(text_input(
                "override_reason",
                "Why not the recommended CA?",
                true,
                true,
                "The approvers see this",
            ));
            "Request: the other CA"
        }
        _ => return None,
    };
    Some(json!({
        "custom_id": format!("{DETAILS}:{encoded}:{choice}"),
        "title": title,
        "components": components,
    }))
}

/// The request the details modal (`request:ANSWERS:follow|other`) describes, with the
/// questionnaire's answers and the CA chosen (`recommended` is what they recommend);
/// `None` for an id that is not one.
pub fn request_form(
    custom_id: &str,
    field: impl Fn(&str) -> Option<String>,
    recommended: impl Fn(&Answers) -> CaType,
) -> Option<RequestForm> {
    let (encoded, choice) = custom_id
        .strip_prefix(DETAILS)?
        .strip_prefix(':')?
        .split_once(':')?;
    let answers = answers(&decode(encoded)?)?;
    let ca = recommended(&answers);
    let (ca, override_reason) = match choice {
        "follow" => (ca, None),
        "other" => (
            match ca {
                CaType::Public => CaType::Internal,
                CaType::Internal => CaType::Public,
            },
            field("override_reason"),
        ),
        _ => return None,
    };
    let mut form = crate::chat::short_form::request_form(&field);
    form.certificate_type = answers.service_type.certificate_type().as_str().to_owned();
    form.answers = Some(answers);
    form.requested_ca_type = Some(ca.as_str().to_owned());
    form.override_reason = override_reason;
    Some(form)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::recommendation::recommend;

    fn today() -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(2026, 12, 7).expect("date")
    }

    fn rec(answers: &Answers) -> (Recommendation, Option<&'static str>) {
        (recommend(answers, today()), None)
    }

    /// Answers every question with its first option (the compliance with `none`), reading
    /// each next custom id from the message.
    fn walk(purpose: Purpose, picks: &[&[&str]]) -> Value {
        let mut message = step(purpose, &[]);
        for pick in picks {
            let id = message["components"][0]["components"][0]["custom_id"]
                .as_str()
                .expect("a select")
                .to_owned();
            message = answered(&id, pick, rec).expect("next");
        }
        message
    }

    const PUBLIC_WEB: [&[&str]; 10] = [
        &["web_server"],
        &["yes"],
        &["yes"],
        &["90_to_365"],
        &["production"],
        &["single"],
        &["single"],
        &["high"],
        &["PCI_DSS", "SOC2"],
        &["automatic"],
    ];

    #[test]
    fn ten_answers_lead_to_the_recommendation_and_the_request_buttons() {
        let done = walk(Purpose::Request, &PUBLIC_WEB);
        assert!(
            done["content"]
                .as_str()
                .expect("content")
                .contains("Recommended"),
            "{done}"
        );
        let buttons = &done["components"][0]["components"];
        let follow = buttons[0]["custom_id"].as_str().expect("id");
        assert!(follow.ends_with(":follow"), "{follow}");
        assert!(
            buttons[0]["label"]
                .as_str()
                .expect("label")
                .contains("public")
        );
        let modal = details_modal(buttons[1]["custom_id"].as_str().expect("id")).expect("modal");
        assert_eq!(modal["components"].as_array().expect("fields").len(), 5);
        let form = request_form(
            modal["custom_id"].as_str().expect("id"),
            |id| match id {
                "common_name" => Some("shop.example.com".to_owned()),
                "justification" => Some("the shop".to_owned()),
                "override_reason" => Some("internal only for now".to_owned()),
                _ => None,
            },
            |a| recommend(a, today()).ca_type,
        )
        .expect("form");
        assert_eq!(form.requested_ca_type.as_deref(), Some("internal"));
        assert_eq!(
            form.override_reason.as_deref(),
            Some("internal only for now")
        );
        let answers = form.answers.expect("answers");
        assert_eq!(answers.compliance_requirements.len(), 2);
        assert_eq!(answers.service_type, ServiceType::WebServer);
    }

    #[test]
    fn recommending_only_ends_without_buttons() {
        let done = walk(Purpose::Recommend, &PUBLIC_WEB);
        assert_eq!(done["components"], json!([]));
    }

    #[test]
    fn forged_ids_and_answers_lead_nowhere() {
        assert!(answered("qa:r:zzzzzzzzzzzz", &["yes"], rec).is_none());
        assert!(answered("qa:x:", &["web_server"], rec).is_none());
        assert!(answered("qa:r:", &["not_an_answer"], rec).is_none());
        assert!(answered("qa:r:", &[], rec).is_none());
        assert!(
            details_modal("qr:01:follow").is_none(),
            "incomplete answers"
        );
        assert!(details_modal("qr:0000000000:maybe").is_none());
        assert!(request_form("request:01:follow", |_| None, |_| CaType::Internal).is_none());
    }
}
