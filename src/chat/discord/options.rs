//! `/cert` as Discord registers it: one subcommand per chat command with typed options
//! (request numbers and serials autocompleted from the person's own, RFC 5280 reasons,
//! validities, roles and artifacts as choices, a person as a user option), and those options
//! read back into the same [`ChatCommand`]s every platform runs. A subcommand registered by
//! an earlier version (one free `text` option) is still read as typed.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::chat::command::{self, COMMANDS, ChatCommand, UsageError};
use crate::chat::suggestions::Suggest;
use crate::domain::values::{CertificateType, KeyAlgorithm, RevocationReason, ValidityDays};

/// Option types.
const STRING: u64 = 3;
const INTEGER: u64 = 4;
const USER: u64 = 6;

/// One option of a subcommand.
struct Opt {
    name: &'static str,
    description: &'static str,
    kind: u64,
    required: bool,
    choices: Vec<(String, Value)>,
    suggest: Option<Suggest>,
}

fn text(name: &'static str, description: &'static str, required: bool) -> Opt {
    Opt {
        name,
        description,
        kind: STRING,
        required,
        choices: Vec::new(),
        suggest: None,
    }
}

fn suggested(name: &'static str, description: &'static str, suggest: Suggest) -> Opt {
    Opt {
        suggest: Some(suggest),
        ..text(name, description, true)
    }
}

fn choice(
    name: &'static str,
    description: &'static str,
    required: bool,
    values: impl IntoIterator<Item = &'static str>,
) -> Opt {
    Opt {
        choices: values
            .into_iter()
            .map(|v| (v.replace('_', " "), json!(v)))
            .collect(),
        ..text(name, description, required)
    }
}

/// The typed options of each subcommand (none: it takes none, or only the legacy text).
fn options_of(name: &str) -> Vec<Opt> {
    let revocation_reasons = RevocationReason::ALL
        .iter()
        .filter(|r| RevocationReason::parse_for_revocation(r.as_str()).is_ok())
        .map(|r| r.as_str());
    match name {
        "request" => vec![
            text(
                "cn",
                "the common name, e.g. app.example.com (none: the questionnaire)",
                false,
            ),
            text("why", "why it is needed: what uses it, and for whom", false),
            text("san", "other names, comma-separated", false),
            choice(
                "type",
                "the certificate type",
                false,
                CertificateType::ALL.iter().map(|t| t.as_str()),
            ),
            choice(
                "key",
                "the key algorithm",
                false,
                KeyAlgorithm::ALL.iter().map(|k| k.as_str()),
            ),
            Opt {
                kind: INTEGER,
                choices: ValidityDays::ALLOWED
                    .iter()
                    .map(|days| (format!("{days} days"), json!(days)))
                    .collect(),
                ..text("days", "how long it is valid", false)
            },
            choice(
                "ca",
                "the CA, against the recommendation",
                false,
                ["public", "internal"],
            ),
            text("override", "why not the recommended CA", false),
        ],
        "status" => vec![suggested("request", "the request number", Suggest::Request)],
        "approve" => vec![
            suggested(
                "subject",
                "a request number, or a serial waiting for revocation",
                Suggest::Decision,
            ),
            text("comment", "a comment for the record", false),
        ],
        "reject" => vec![
            suggested(
                "subject",
                "a request number, or a serial waiting for revocation",
                Suggest::Decision,
            ),
            text("reason", "why (the requester sees it)", true),
        ],
        "cancel" => vec![
            suggested("request", "your request's number", Suggest::Request),
            text("reason", "why", false),
        ],
        "revoke" => vec![
            suggested("serial", "the certificate's serial", Suggest::Certificate),
            choice("reason", "the RFC 5280 reason", true, revocation_reasons),
            text("details", "more words for the record", false),
        ],
        "download" => vec![
            suggested("serial", "the certificate's serial", Suggest::Certificate),
            choice(
                "artifact",
                "what to download (default: the certificate)",
                false,
                ["certificate", "chain", "private_key"],
            ),
        ],
        "renew" => vec![suggested(
            "serial",
            "the certificate's serial",
            Suggest::Certificate,
        )],
        "confirm-revocation" => vec![text(
            "serial",
            "the serial you revoked at the CA by hand",
            true,
        )],
        "audit" => vec![
            text("query", "the named query (none: list them)", false),
            text("params", "its parameters: name=value …", false),
        ],
        "config" => vec![
            text("key", "the setting, e.g. approval.required_approvers", true),
            text("value", "a new value (none: show the current one)", false),
        ],
        "grant" => vec![
            Opt {
                kind: USER,
                ..text(
                    "user",
                    "the person (they must have linked their account)",
                    true,
                )
            },
            choice(
                "role",
                "their role",
                true,
                ["user", "approver", "admin", "auditor"],
            ),
        ],
        "recommend" => vec![text(
            "answers",
            "service=… public=yes|no|hybrid browser=yes|no|partial … (none: the questionnaire)",
            false,
        )],
        _ => Vec::new(),
    }
}

fn registered(option: &Opt) -> Value {
    let mut registered = json!({
        "type": option.kind,
        "name": option.name,
        "description": option.description,
        "required": option.required,
    });
    if !option.choices.is_empty() {
        registered["choices"] = option
            .choices
            .iter()
            .map(|(name, value)| json!({ "name": name, "value": value }))
            .collect();
    }
    if option.suggest.is_some() {
        registered["autocomplete"] = json!(true);
    }
    registered
}

/// The `/cert` command as Discord registers it, with `link` for the account link.
pub fn application_commands() -> Value {
    let mut subcommands: Vec<Value> = COMMANDS
        .iter()
        .map(|spec| {
            let mut description: String = spec.summary.chars().take(100).collect();
            if description.is_empty() {
                description = spec.name.to_owned();
            }
            let mut sub = json!({ "type": 1, "name": spec.name, "description": description });
            let options: Vec<Value> = options_of(spec.name).iter().map(registered).collect();
            if !options.is_empty() {
                sub["options"] = json!(options);
            }
            sub
        })
        .collect();
    subcommands.push(json!({
        "type": 1,
        "name": "link",
        "description": "link this Discord account to your work e-mail (a code is mailed to it)",
        "options": [
            { "type": STRING, "name": "email", "description": "your work e-mail", "required": true },
            { "type": STRING, "name": "code", "description": "the code mailed to you", "required": false },
        ],
    }));
    json!([{
        "name": "cert",
        "type": 1,
        "description": "Certificates: request, approve, download, renew, revoke",
        "options": subcommands,
    }])
}

/// The subcommand of an interaction and its options by name (numbers as their text).
pub fn subcommand(body: &Value) -> (&str, BTreeMap<String, String>) {
    let sub = &body["data"]["options"][0];
    let name = sub["name"].as_str().unwrap_or("help");
    let options = sub["options"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|option| {
            let value = match &option["value"] {
                Value::String(text) => text.trim().to_owned(),
                Value::Number(number) => number.to_string(),
                _ => return None,
            };
            Some((option["name"].as_str()?.to_owned(), value))
        })
        .filter(|(_, value)| !value.is_empty())
        .collect();
    (name, options)
}

/// The option being typed in an autocomplete interaction: what it suggests, and the text
/// so far.
pub fn focused(body: &Value) -> Option<(Suggest, String)> {
    let sub = &body["data"]["options"][0];
    let name = sub["name"].as_str()?;
    let option = sub["options"]
        .as_array()?
        .iter()
        .find(|option| option["focused"] == true)?;
    let suggest = options_of(name)
        .into_iter()
        .find(|o| option["name"] == o.name)?
        .suggest?;
    Some((
        suggest,
        option["value"].as_str().unwrap_or_default().to_owned(),
    ))
}

/// The chat command the typed options of `name` ask for.
pub fn command(name: &str, options: &BTreeMap<String, String>) -> Result<ChatCommand, UsageError> {
    if let Some(text) = options.get("text") {
        // Registered by an earlier version: the arguments as typed in Slack.
        return command::parse(&format!("{name} {text}"));
    }
    let get = |key: &str| options.get(key).cloned();
    let required = |key: &str| {
        get(key).ok_or_else(|| UsageError {
            message: format!("`/cert {name}` needs its `{key}` option."),
        })
    };
    Ok(match name {
        "request" if options.is_empty() => ChatCommand::RequestForm,
        "request" => ChatCommand::Request(options.clone()),
        "recommend" => match get("answers") {
            Some(answers) => command::parse(&format!("recommend {answers}"))?,
            // No answers: the questionnaire asks them.
            None => ChatCommand::Recommend(BTreeMap::new()),
        },
        "status" => ChatCommand::Status(required("request")?),
        "approve" => ChatCommand::Approve {
            number: required("subject")?,
            comment: get("comment"),
        },
        "reject" => ChatCommand::Reject {
            number: required("subject")?,
            reason: required("reason")?,
        },
        "cancel" => ChatCommand::Cancel {
            number: required("request")?,
            reason: get("reason"),
        },
        "revoke" => ChatCommand::Revoke {
            certificate: required("serial")?,
            reason: required("reason")?,
            text: get("details"),
        },
        "download" => ChatCommand::Download {
            certificate: required("serial")?,
            artifact: get("artifact"),
        },
        "renew" => ChatCommand::Renew {
            certificate: required("serial")?,
        },
        "confirm-revocation" => ChatCommand::ConfirmRevocation {
            certificate: required("serial")?,
        },
        "audit" => match get("query") {
            None => ChatCommand::Audit {
                query: None,
                params: BTreeMap::new(),
            },
            Some(query) => command::parse(&format!(
                "audit {query} {}",
                get("params").unwrap_or_default()
            ))?,
        },
        "config" => match get("value") {
            None => ChatCommand::ConfigGet(required("key")?),
            Some(value) => ChatCommand::ConfigSet {
                key: required("key")?,
                value,
            },
        },
        "grant" => ChatCommand::Grant {
            user: format!("<@{}>", required("user")?),
            role: required("role")?,
        },
        other => command::parse(other)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(name: &str, options: Value) -> Value {
        json!({ "data": { "name": "cert", "options": [{ "type": 1, "name": name, "options": options }] } })
    }

    fn parsed(body: &Value) -> Result<ChatCommand, UsageError> {
        let (name, options) = subcommand(body);
        command(name, &options)
    }

    #[test]
    fn typed_options_become_the_commands_every_platform_runs() {
        let revoke = typed(
            "revoke",
            json!([
                { "name": "serial", "type": 3, "value": "0A1B" },
                { "name": "reason", "type": 3, "value": "key_compromise" },
                { "name": "details", "type": 3, "value": "laptop \"lost\" at the airport" },
            ]),
        );
        assert_eq!(
            parsed(&revoke),
            Ok(ChatCommand::Revoke {
                certificate: "0A1B".to_owned(),
                reason: "key_compromise".to_owned(),
                text: Some("laptop \"lost\" at the airport".to_owned()),
            })
        );
        let request = typed(
            "request",
            json!([
                { "name": "cn", "type": 3, "value": "app.example.com" },
                { "name": "days", "type": 4, "value": 90 },
                { "name": "why", "type": 3, "value": "the shop" },
            ]),
        );
        let Ok(ChatCommand::Request(fields)) = parsed(&request) else {
            panic!("{:?}", parsed(&request));
        };
        assert_eq!(fields["days"], "90");
        assert_eq!(fields["cn"], "app.example.com");
        assert_eq!(
            parsed(&typed("request", json!([]))),
            Ok(ChatCommand::RequestForm)
        );
        let grant = typed(
            "grant",
            json!([{ "name": "user", "type": 6, "value": "123" }, { "name": "role", "type": 3, "value": "approver" }]),
        );
        assert_eq!(
            parsed(&grant),
            Ok(ChatCommand::Grant {
                user: "<@123>".to_owned(),
                role: "approver".to_owned()
            })
        );
        let missing = parsed(&typed(
            "reject",
            json!([{ "name": "subject", "type": 3, "value": "REQ-1" }]),
        ));
        assert!(missing.is_err_and(|e| e.message.contains("`reason`")));
    }

    #[test]
    fn a_subcommand_registered_with_one_text_option_still_works() {
        let old = typed(
            "status",
            json!([{ "name": "text", "type": 3, "value": "REQ-20261201-00001" }]),
        );
        assert_eq!(
            parsed(&old),
            Ok(ChatCommand::Status("REQ-20261201-00001".to_owned()))
        );
    }

    #[test]
    fn every_registered_option_fits_discord_limits_and_reasons_are_choices() {
        let commands = application_commands();
        let subcommands = commands[0]["options"].as_array().expect("subcommands");
        assert!(subcommands.len() <= 25);
        for sub in subcommands {
            let options = sub["options"].as_array().cloned().unwrap_or_default();
            assert!(options.len() <= 25, "{sub}");
            let mut optional_seen = false;
            for option in &options {
                let description = option["description"].as_str().expect("description");
                assert!(
                    !description.is_empty() && description.chars().count() <= 100,
                    "{option}"
                );
                assert!(
                    option["choices"].as_array().is_none_or(|c| c.len() <= 25),
                    "{option}"
                );
                // Discord wants the required options first.
                if option["required"] == true {
                    assert!(!optional_seen, "{sub}");
                } else {
                    optional_seen = true;
                }
            }
        }
        let revoke = subcommands
            .iter()
            .find(|s| s["name"] == "revoke")
            .expect("revoke");
        let reasons: Vec<&str> = revoke["options"][1]["choices"]
            .as_array()
            .expect("choices")
            .iter()
            .filter_map(|c| c["value"].as_str())
            .collect();
        assert!(reasons.contains(&"key_compromise") && !reasons.contains(&"remove_from_crl"));
        let status = subcommands
            .iter()
            .find(|s| s["name"] == "status")
            .expect("status");
        assert_eq!(status["options"][0]["autocomplete"], true);
    }

    #[test]
    fn the_focused_option_says_what_to_suggest() {
        let body = typed(
            "revoke",
            json!([{ "name": "serial", "type": 3, "value": "0a", "focused": true }]),
        );
        assert_eq!(
            focused(&body),
            Some((Suggest::Certificate, "0a".to_owned()))
        );
        let body = typed(
            "approve",
            json!([{ "name": "subject", "type": 3, "value": "", "focused": true }]),
        );
        assert_eq!(focused(&body), Some((Suggest::Decision, String::new())));
    }
}
