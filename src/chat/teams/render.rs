//! Replies as Adaptive Cards (text, facts, `Action.Execute` buttons; a rejection asks its
//! reason in a card of its own), wrapped in message activities; and the request dialog.

use serde_json::{Value, json};

use crate::chat::reply::{Action, Block, Decision, Reply};

/// The content type of an Adaptive Card attachment.
pub const CARD: &str = "application/vnd.microsoft.card.adaptive";

/// Our light markdown (Slack's `*bold*`) in Adaptive Card markdown (`**bold**`).
fn markdown(text: &str) -> String {
    text.replace('*', "**")
}

fn execute(title: &str, verb: &str, subject: &str) -> Value {
    json!({ "type": "Action.Execute", "title": title, "verb": verb, "data": { "subject": subject } })
}

/// Approve / Reject (with a reason) / Delegate (to an e-mail, with a reason).
fn decisions(subject: &str, which: &[Decision]) -> Vec<Value> {
    which
        .iter()
        .map(|decision| match decision {
            Decision::Approve => execute("Approve", "approve", subject),
            Decision::Reject => json!({
                "type": "Action.ShowCard",
                "title": "Reject",
                "card": {
                    "type": "AdaptiveCard",
                    "body": [{ "type": "Input.Text", "id": "reason", "isMultiline": true,
                               "isRequired": true, "label": "Reason (the requester sees it)",
                               "errorMessage": "A rejection needs a reason." }],
                    "actions": [execute("Reject", "reject", subject)],
                },
            }),
            Decision::Delegate => json!({
                "type": "Action.ShowCard",
                "title": "Delegate",
                "card": {
                    "type": "AdaptiveCard",
                    "body": [
                        { "type": "Input.Text", "id": "to", "isRequired": true, "label": "Delegate to (e-mail)" },
                        { "type": "Input.Text", "id": "reason", "isRequired": true, "label": "Reason" },
                    ],
                    "actions": [execute("Delegate", "delegate", subject)],
                },
            }),
        })
        .collect()
}

fn action(action: &Action) -> Value {
    execute(action.label(), action.action_id(), action.value())
}

/// A reply as an Adaptive Card.
pub fn card(reply: &Reply) -> Value {
    let mut body = Vec::new();
    let mut actions = Vec::new();
    for block in &reply.blocks {
        match block {
            Block::Text(text) => body.push(json!({ "type": "TextBlock", "text": markdown(text), "wrap": true })),
            Block::Code(text) => body.push(json!({
                "type": "TextBlock", "text": text, "wrap": true, "fontType": "Monospace",
            })),
            Block::Fields(fields) => body.push(json!({
                "type": "FactSet",
                "facts": fields.iter().map(|(title, value)| json!({ "title": title, "value": value })).collect::<Vec<_>>(),
            })),
            Block::Decisions { request_number } => actions.extend(decisions(
                request_number,
                &[Decision::Approve, Decision::Reject, Decision::Delegate],
            )),
            Block::RevocationDecisions { serial } => {
                actions.extend(decisions(serial, &[Decision::Approve, Decision::Reject]));
            }
            Block::Actions(list) => actions.extend(list.iter().map(action)),
        }
    }
    json!({
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.4",
        "body": body,
        "actions": actions,
    })
}

/// A reply as a message activity carrying its card.
pub fn activity(reply: &Reply) -> Value {
    json!({
        "type": "message",
        "summary": reply.plain_text().chars().take(200).collect::<String>(),
        "attachments": [{ "contentType": CARD, "content": card(reply) }],
    })
}

/// The answer to a card action: the card that replaces the clicked one.
pub fn card_response(reply: &Reply) -> Value {
    json!({ "statusCode": 200, "type": CARD, "value": card(reply) })
}

/// The answer to a card action that changes nothing: a message only the clicker sees.
pub fn message_response(text: &str) -> Value {
    json!({ "statusCode": 200, "type": "application/vnd.microsoft.activity.message", "value": text })
}

/// The request form, for `task/fetch`.
pub fn request_dialog() -> Value {
    let input = |id: &str, label: &str, required: bool, placeholder: &str| json!({ "type": "Input.Text", "id": id, "label": label, "isRequired": required, "placeholder": placeholder });
    json!({
        "task": {
            "type": "continue",
            "value": {
                "title": "Request a certificate",
                "card": {
                    "contentType": CARD,
                    "content": {
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": [
                            input("common_name", "Common name", true, "app.example.com"),
                            input("subject_alternative_names", "Other names (comma-separated)", false, ""),
                            input("certificate_type", "Type", false, "web_server"),
                            input("validity_days", "Validity in days", false, "365"),
                            { "type": "Input.Text", "id": "justification", "label": "Why is it needed?", "isMultiline": true, "isRequired": true },
                        ],
                        "actions": [{ "type": "Action.Submit", "title": "Request" }],
                    },
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approvals_become_cards_with_execute_actions() {
        let reply = Reply::text("*REQ-1* needs your approval.")
            .with(Block::Fields(vec![(
                "Type".to_owned(),
                "web_server".to_owned(),
            )]))
            .with(Block::Decisions {
                request_number: "REQ-1".to_owned(),
            });
        let card = card(&reply);
        assert_eq!(card["body"][0]["text"], "**REQ-1** needs your approval.");
        assert_eq!(card["body"][1]["facts"][0]["title"], "Type");
        assert_eq!(card["actions"][0]["verb"], "approve");
        assert_eq!(card["actions"][0]["data"]["subject"], "REQ-1");
        assert_eq!(card["actions"][1]["card"]["actions"][0]["verb"], "reject");
        assert_eq!(activity(&reply)["attachments"][0]["contentType"], CARD);
    }
}
