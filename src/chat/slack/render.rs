//! Replies as Slack Block Kit messages.

use serde_json::{Value, json};

use crate::chat::reply::{Action, Block, Decision, Reply, Visibility};

/// Slack allows at most 10 fields per section.
const FIELDS_PER_SECTION: usize = 10;
/// Slack allows at most 50 blocks in a message.
const BLOCKS_PER_MESSAGE: usize = 50;

/// A reply as a message body (`text` is the notification fallback).
pub fn message(reply: &Reply) -> Value {
    let mut blocks = Vec::new();
    for block in &reply.blocks {
        match block {
            Block::Text(text) => blocks.push(section(&escape(text))),
            Block::Code(text) => {
                blocks.push(section(&format!("```{}```", escape(text.trim_end()))));
            }
            Block::Fields(fields) => {
                for chunk in fields.chunks(FIELDS_PER_SECTION) {
                    let fields: Vec<Value> = chunk
                        .iter()
                        .map(|(label, value)| {
                            let text = format!("*{}*\n{}", escape(label), escape(value));
                            json!({ "type": "mrkdwn", "text": text })
                        })
                        .collect();
                    blocks.push(json!({ "type": "section", "fields": fields }));
                }
            }
            Block::Decisions { request_number } => blocks.push(decisions(request_number)),
            Block::RevocationDecisions { serial } => blocks.push(revocation_decisions(serial)),
            Block::Actions(actions) => blocks.push(buttons(actions)),
        }
    }
    if blocks.len() > BLOCKS_PER_MESSAGE {
        blocks.truncate(BLOCKS_PER_MESSAGE - 1);
        blocks.push(section(
            "…and more than a message holds: `/cert list` and `/cert approvals` show the rest.",
        ));
    }
    json!({
        "response_type": match reply.visibility {
            Visibility::Ephemeral => "ephemeral",
            Visibility::InChannel => "in_channel",
        },
        "text": fallback(reply),
        "blocks": blocks,
    })
}

fn section(text: &str) -> Value {
    // Section text is limited to 3000 characters.
    let text: String = text.chars().take(3000).collect();
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": text } })
}

fn fallback(reply: &Reply) -> String {
    escape(&reply.plain_text().chars().take(300).collect::<String>())
}

/// Text as Slack shows it literally: `&`, `<` and `>` are control characters in mrkdwn
/// (`<!channel>` pings a channel, `<https://…|label>` masks a link), so replies, which carry
/// names, justifications and reasons people typed, escape them. Replies hold no Slack
/// markup of their own; mentions are added by the Slack surface around escaped text.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Approve / Reject / Delegate buttons for a request.
pub fn decisions(request_number: &str) -> Value {
    decision_buttons(
        request_number,
        &[Decision::Approve, Decision::Reject, Decision::Delegate],
    )
}

/// Approve / Reject buttons for a revocation waiting for an approver (its value is the
/// certificate's serial; revocations are not delegated).
pub fn revocation_decisions(serial: &str) -> Value {
    decision_buttons(serial, &[Decision::Approve, Decision::Reject])
}

fn decision_buttons(value: &str, decisions: &[Decision]) -> Value {
    let elements: Vec<Value> = decisions
        .iter()
        .map(|decision| {
            let (label, style) = match decision {
                Decision::Approve => ("Approve", Some("primary")),
                Decision::Reject => ("Reject", Some("danger")),
                Decision::Delegate => ("Delegate", None),
            };
            let mut button = json!({
                "type": "button",
                "action_id": decision.action_id(),
                "text": { "type": "plain_text", "text": label },
                "value": value,
            });
            if let Some(style) = style {
                button["style"] = json!(style);
            }
            button
        })
        .collect();
    json!({
        "type": "actions",
        "block_id": format!("decide:{value}"),
        "elements": elements,
    })
}

/// Buttons that run commands; irreversible ones ask for confirmation first.
pub fn buttons(actions: &[Action]) -> Value {
    let elements: Vec<Value> = actions
        .iter()
        .map(|action| {
            let mut button = json!({
                "type": "button",
                "action_id": action.action_id(),
                "text": { "type": "plain_text", "text": action.label() },
                "value": action.value(),
            });
            if let Some(question) = action.confirmation() {
                button["style"] = json!("danger");
                button["confirm"] = json!({
                    "title": { "type": "plain_text", "text": "Are you sure?" },
                    "text": { "type": "mrkdwn", "text": question },
                    "confirm": { "type": "plain_text", "text": action.label() },
                    "deny": { "type": "plain_text", "text": "Not now" },
                    "style": "danger",
                });
            } else {
                button["style"] = json!("primary");
            }
            button
        })
        .collect();
    json!({ "type": "actions", "elements": elements })
}

/// The modal asking why a request is rejected.
pub fn reject_modal(request_number: &str, private_metadata: &str) -> Value {
    let (title, subject) = if crate::chat::command::names_certificate(request_number) {
        (
            "Reject revocation",
            format!("the revocation of certificate `{request_number}`"),
        )
    } else {
        ("Reject request", format!("*{request_number}*"))
    };
    json!({
        "type": "modal",
        "callback_id": "reject",
        "private_metadata": private_metadata,
        "title": { "type": "plain_text", "text": title },
        "submit": { "type": "plain_text", "text": "Reject" },
        "close": { "type": "plain_text", "text": "Cancel" },
        "blocks": [
            section(&format!("Why is {subject} rejected? The requester will see this.")),
            {
                "type": "input",
                "block_id": "reason",
                "label": { "type": "plain_text", "text": "Reason" },
                "element": { "type": "plain_text_input", "action_id": "value", "multiline": true, "max_length": 2000 },
            },
        ],
    })
}

/// The modal asking to whom a request is delegated, and why.
pub fn delegate_modal(request_number: &str, private_metadata: &str) -> Value {
    json!({
        "type": "modal",
        "callback_id": "delegate",
        "private_metadata": private_metadata,
        "title": { "type": "plain_text", "text": "Delegate request" },
        "submit": { "type": "plain_text", "text": "Delegate" },
        "close": { "type": "plain_text", "text": "Cancel" },
        "blocks": [
            section(&format!("Who should decide on *{request_number}* instead of you?")),
            {
                "type": "input",
                "block_id": "delegate",
                "label": { "type": "plain_text", "text": "Delegate to" },
                "element": { "type": "users_select", "action_id": "value" },
            },
            {
                "type": "input",
                "block_id": "reason",
                "label": { "type": "plain_text", "text": "Reason" },
                "element": { "type": "plain_text_input", "action_id": "value", "max_length": 2000 },
            },
        ],
    })
}

/// Slack allows at most 100 blocks in a view.
const BLOCKS_PER_VIEW: usize = 100;

/// A reply as the App Home tab (`views.publish`), cut to what a view may hold.
pub fn home(reply: &Reply) -> Value {
    let message = message(reply);
    let mut blocks: Vec<Value> = message["blocks"].as_array().cloned().unwrap_or_default();
    if blocks.len() > BLOCKS_PER_VIEW {
        blocks.truncate(BLOCKS_PER_VIEW - 1);
        blocks.push(section(
            "…and more: `/cert list` and `/cert approvals` show everything.",
        ));
    }
    json!({ "type": "home", "blocks": blocks })
}

/// A message that replaces the one clicked (through the click's `response_url`).
pub fn replacing(reply: &Reply) -> Value {
    let mut message = message(reply);
    message["replace_original"] = json!(true);
    if let Some(message) = message.as_object_mut() {
        message.remove("response_type");
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_become_block_kit() {
        let reply = Reply::text("*REQ-1*")
            .with(Block::Fields(vec![(
                "Status".to_owned(),
                "approved".to_owned(),
            )]))
            .with(Block::Decisions {
                request_number: "REQ-1".to_owned(),
            });
        let message = message(&reply);
        assert_eq!(message["response_type"], "ephemeral");
        assert_eq!(message["blocks"][0]["text"]["text"], "*REQ-1*");
        assert_eq!(
            message["blocks"][1]["fields"][0]["text"],
            "*Status*\napproved"
        );
        let buttons = &message["blocks"][2]["elements"];
        assert_eq!(buttons[0]["action_id"], "approve");
        assert_eq!(buttons[0]["value"], "REQ-1");
        assert_eq!(buttons[1]["style"], "danger");
    }

    #[test]
    fn what_people_typed_cannot_ping_a_channel_or_mask_a_link() {
        let typed = "<!channel> see <https://evil.example|https://cert-assistant> & more";
        let reply = Reply::text(typed)
            .with(Block::Fields(vec![("Why".to_owned(), typed.to_owned())]))
            .with(Block::Code(typed.to_owned()));
        let message = message(&reply);
        let shown = [
            &message["text"],
            &message["blocks"][0]["text"]["text"],
            &message["blocks"][1]["fields"][0]["text"],
            &message["blocks"][2]["text"]["text"],
        ];
        for text in shown {
            let text = text.as_str().expect("text");
            assert!(!text.contains('<') && !text.contains('>'), "{text}");
            assert!(text.contains("&lt;!channel&gt;"), "{text}");
            assert!(text.contains("&amp; more"), "{text}");
        }
    }

    #[test]
    fn a_message_that_replaces_the_clicked_one_says_so() {
        let reply = Reply::text("*REQ-1*").with(Block::Text("Approved by jane@example.com".into()));
        let updated = replacing(&reply);
        let blocks = updated["blocks"].as_array().expect("blocks");
        assert_eq!(blocks.len(), 2);
        assert!(blocks.iter().all(|b| b["type"] != "actions"));
        assert_eq!(updated["replace_original"], true);
        assert!(updated.get("response_type").is_none());
    }
}
