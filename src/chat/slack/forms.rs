//! The `/cert request` modal: the questionnaire, then the recommendation with the choice to
//! follow or override it, then the certificate details. Invalid fields come back next to the
//! field (`response_action: errors`).

use serde_json::{Value, json};

use crate::commands::RequestForm;
use crate::domain::recommendation::{
    Answers, BrowserTrust, CertificateCount, Compliance, Criticality, DomainType, Environment,
    Exposure, Lifespan, Recommendation, RenewalPreference, ServiceType,
};
use crate::domain::values::{CaType, CertificateType, KeyAlgorithm, ValueError};

/// `callback_id` of the questionnaire view.
pub const QUESTIONNAIRE: &str = "request_questionnaire";
/// `callback_id` of the details view.
pub const DETAILS: &str = "request_details";

fn text(t: &str) -> Value {
    json!({ "type": "plain_text", "text": t })
}

fn option(value: &str, label: &str) -> Value {
    json!({ "text": text(label), "value": value })
}

fn options(values: &[&str]) -> Vec<Value> {
    values
        .iter()
        .map(|v| option(v, &v.replace('_', " ")))
        .collect()
}

fn select(block_id: &str, label: &str, values: &[&str], initial: Option<&str>) -> Value {
    let mut element =
        json!({ "type": "static_select", "action_id": "value", "options": options(values) });
    if let Some(initial) = initial {
        element["initial_option"] = option(initial, &initial.replace('_', " "));
    }
    json!({ "type": "input", "block_id": block_id, "label": text(label), "element": element })
}

fn input(
    block_id: &str,
    label: &str,
    multiline: bool,
    optional: bool,
    hint: Option<&str>,
) -> Value {
    let mut block = json!({
        "type": "input",
        "block_id": block_id,
        "optional": optional,
        "label": text(label),
        "element": { "type": "plain_text_input", "action_id": "value", "multiline": multiline },
    });
    if let Some(hint) = hint {
        block["hint"] = text(hint);
    }
    block
}

fn all<T: Copy>(values: &[T], as_str: fn(T) -> &'static str) -> Vec<&'static str> {
    values.iter().map(|v| as_str(*v)).collect()
}

/// Step 1: the ten questions.
pub fn questionnaire_view() -> Value {
    json!({
        "type": "modal",
        "callback_id": QUESTIONNAIRE,
        "title": text("Request a certificate"),
        "submit": text("Next"),
        "close": text("Cancel"),
        "blocks": [
            { "type": "section", "text": { "type": "mrkdwn", "text": "A few questions first, so we can recommend the right CA." } },
            select("service_type", "What is it for?", &all(ServiceType::ALL, ServiceType::as_str), None),
            select("publicly_accessible", "Reachable from the internet?", &all(Exposure::ALL, Exposure::as_str), None),
            select("browser_trust_required", "Must every browser trust it without setup?", &all(BrowserTrust::ALL, BrowserTrust::as_str), None),
            select("expected_lifespan", "How long will it be needed?", &all(Lifespan::ALL, Lifespan::as_str), None),
            select("environment_type", "Environment", &all(Environment::ALL, Environment::as_str), Some("production")),
            select("certificate_count", "How many certificates like this?", &all(CertificateCount::ALL, CertificateCount::as_str), Some("single")),
            select("domain_type", "Names on it", &all(DomainType::ALL, DomainType::as_str), Some("single")),
            select("criticality_level", "How critical is the service?", &all(Criticality::ALL, Criticality::as_str), Some("medium")),
            {
                "type": "input",
                "block_id": "compliance_requirements",
                "optional": true,
                "label": text("Compliance"),
                "element": { "type": "multi_static_select", "action_id": "value", "options": options(&all(Compliance::ALL, Compliance::as_str)) },
            },
            select("renewal_preference", "Renewal", &all(RenewalPreference::ALL, RenewalPreference::as_str), Some("notification")),
        ],
    })
}

/// The selected value of a static select, the text of an input.
fn value<'a>(values: &'a Value, block: &str) -> Option<&'a str> {
    let element = &values[block]["value"];
    element["selected_option"]["value"]
        .as_str()
        .or_else(|| element["value"].as_str())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The questionnaire's answers, or the fields to complain about.
pub fn answers(values: &Value) -> Result<Answers, Vec<ValueError>> {
    Answers::parse_with(|question| {
        if question == "compliance_requirements" {
            let selected = values[question]["value"]["selected_options"].as_array()?;
            let chosen: Vec<&str> = selected
                .iter()
                .filter_map(|o| o["value"].as_str())
                .collect();
            return Some(chosen.join(","));
        }
        value(values, question).map(str::to_owned)
    })
}

/// Step 2: the recommendation, the choice to follow or override it, and the details.
/// `public_note` says what becomes of a request for the public CA, when none is configured.
pub fn details_view(
    answers: &Answers,
    recommendation: &Recommendation,
    public_note: Option<&str>,
) -> Value {
    let ca = match recommendation.ca_type {
        CaType::Public => "a *public* CA (AWS Certificate Manager)",
        CaType::Internal => "the *internal* CA",
    };
    let mut intro = format!(
        "*Recommended:* {ca} — confidence {}.\n{}",
        recommendation.confidence, recommendation.reason
    );
    for note in &recommendation.notes {
        intro.push_str(&format!("\n_Note:_ {note}"));
    }
    if let Some(note) = public_note {
        intro.push_str(&format!("\n_Note:_ {note}"));
    }
    let follow = recommendation.ca_type.as_str();
    let other = match recommendation.ca_type {
        CaType::Public => "internal",
        CaType::Internal => "public",
    };
    let metadata = serde_json::to_string(answers).unwrap_or_default();
    json!({
        "type": "modal",
        "callback_id": DETAILS,
        "private_metadata": metadata,
        "title": text("Request a certificate"),
        "submit": text("Submit"),
        "close": text("Cancel"),
        "blocks": [
            { "type": "section", "text": { "type": "mrkdwn", "text": intro } },
            {
                "type": "input",
                "block_id": "requested_ca_type",
                "label": text("Which CA?"),
                "element": {
                    "type": "radio_buttons",
                    "action_id": "value",
                    "initial_option": option(follow, &format!("Follow the recommendation ({follow})")),
                    "options": [
                        option(follow, &format!("Follow the recommendation ({follow})")),
                        option(other, &format!("Use the {other} CA instead")),
                    ],
                },
            },
            input("override_reason", "Why not the recommended CA?", true, true, Some("Required when you do not follow the recommendation.")),
            { "type": "divider" },
            input("common_name", "Common name (CN)", false, false, Some("For servers, the host name, e.g. app.example.com")),
            input("subject_alternative_names", "Other names (SANs)", true, true, Some("One per line or comma-separated")),
            select("certificate_type", "Certificate type", &all(CertificateType::ALL, CertificateType::as_str), Some(answers.service_type.certificate_type().as_str())),
            select("key_algorithm", "Key algorithm", &all(KeyAlgorithm::ALL, KeyAlgorithm::as_str), Some("ECC_P256")),
            select("validity_days", "Validity (days)", &["90", "365", "730"], Some("365")),
            input("csr", "Your CSR (optional)", true, true, Some("Paste a PEM CSR to keep your own key; leave empty and we generate the key.")),
            input("business_justification", "Business justification", true, false, None),
            input("department", "Department", false, true, None),
            input("cost_center", "Cost centre", false, true, None),
            input("project_code", "Project code", false, true, None),
            input("notes", "Notes", true, true, None),
        ],
    })
}

/// The details view's values as a request form (answers from the metadata).
pub fn request_form(values: &Value, answers: Answers) -> RequestForm {
    let get = |block: &str| value(values, block).map(str::to_owned);
    RequestForm {
        common_name: get("common_name").unwrap_or_default(),
        subject_alternative_names: get("subject_alternative_names")
            .map(|s| s.split(['\n', ',']).map(str::to_owned).collect())
            .unwrap_or_default(),
        certificate_type: get("certificate_type").unwrap_or_default(),
        key_algorithm: get("key_algorithm"),
        validity_days: get("validity_days"),
        csr_pem: get("csr"),
        justification: get("business_justification").unwrap_or_default(),
        department: get("department"),
        cost_center: get("cost_center"),
        project_code: get("project_code"),
        notes: get("notes"),
        answers: Some(answers),
        requested_ca_type: get("requested_ca_type"),
        override_reason: get("override_reason"),
        ..RequestForm::default()
    }
}

/// The blocks of the details view, where a field error can be shown.
const DETAIL_BLOCKS: &[&str] = &[
    "requested_ca_type",
    "override_reason",
    "common_name",
    "subject_alternative_names",
    "certificate_type",
    "key_algorithm",
    "validity_days",
    "csr",
    "business_justification",
    "department",
    "cost_center",
    "project_code",
    "notes",
];

/// Slack's `response_action: errors` for field errors; errors about fields the view does not
/// show are attached to the common name.
pub fn field_errors(errors: &[ValueError], blocks: &[&str]) -> Value {
    let mut map = serde_json::Map::new();
    for error in errors {
        let block = if blocks.contains(&error.field) {
            error.field
        } else if error.field == "email_address" || error.field == "country" {
            "common_name"
        } else {
            blocks.first().copied().unwrap_or("common_name")
        };
        let entry = map.entry(block.to_owned()).or_insert_with(|| json!(""));
        let joined = match entry.as_str() {
            Some("") | None => error.message.clone(),
            Some(existing) => format!("{existing} {}", error.message),
        };
        *entry = json!(joined);
    }
    json!({ "response_action": "errors", "errors": map })
}

/// Field errors of the details view.
pub fn detail_errors(errors: &[ValueError]) -> Value {
    field_errors(errors, DETAIL_BLOCKS)
}
