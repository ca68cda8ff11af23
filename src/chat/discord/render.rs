//! Replies as Discord messages (content, action rows of buttons) and the modals we open.

use serde_json::{Value, json};

use crate::chat::reply::{Action, Block, Decision, Reply, Visibility};

/// The message flag that shows an answer only to the person who asked.
pub const EPHEMERAL: u64 = 1 << 6;
/// Discord's limit on a message's content.
const MAX_CONTENT: usize = 2000;
/// Discord's limit on a message's rows of buttons.
const MAX_ROWS: usize = 5;

const STYLE_PRIMARY: u8 = 1;
const STYLE_SECONDARY: u8 = 2;
const STYLE_SUCCESS: u8 = 3;
const STYLE_DANGER: u8 = 4;

/// Our light markdown (Slack's `*bold*`) in Discord's (`**bold**`).
fn markdown(text: &str) -> String {
    text.replace('*', "**")
}

fn button(custom_id: String, label: &str, style: u8) -> Value {
    json!({ "type": 2, "style": style, "label": label, "custom_id": custom_id })
}

fn row(buttons: Vec<Value>) -> Value {
    json!({ "type": 1, "components": buttons })
}

/// The buttons of a decision on `subject` (a request number or a serial).
fn decisions(subject: &str, which: &[Decision]) -> Value {
    row(which
        .iter()
        .map(|decision| {
            let (label, style) = match decision {
                Decision::Approve => ("Approve", STYLE_SUCCESS),
                Decision::Reject => ("Reject", STYLE_DANGER),
                Decision::Delegate => ("Delegate", STYLE_SECONDARY),
            };
            button(format!("{}:{subject}", decision.action_id()), label, style)
        })
        .collect())
}

fn actions(actions: &[Action]) -> Value {
    row(actions
        .iter()
        .map(|action| {
            let style = if action.confirmation().is_some() {
                STYLE_DANGER
            } else {
                STYLE_PRIMARY
            };
            button(
                format!("{}:{}", action.action_id(), action.value()),
                action.label(),
                style,
            )
        })
        .collect())
}

/// A reply as a message body: content, buttons, no pings, and the ephemeral flag when only
/// the asker should see it (ignored where it does not apply, e.g. in DMs we post).
pub fn message(reply: &Reply) -> Value {
    let mut lines = Vec::new();
    let mut components = Vec::new();
    for block in &reply.blocks {
        match block {
            Block::Text(text) => lines.push(markdown(text)),
            Block::Code(text) => lines.push(format!("```\n{}\n```", text.trim_end())),
            Block::Fields(fields) => {
                for (label, value) in fields {
                    lines.push(format!("**{label}:** {value}"));
                }
            }
            Block::Decisions { request_number } => components.push(decisions(
                request_number,
                &[Decision::Approve, Decision::Reject, Decision::Delegate],
            )),
            Block::RevocationDecisions { serial } => {
                components.push(decisions(serial, &[Decision::Approve, Decision::Reject]));
            }
            Block::Actions(list) => components.push(actions(list)),
        }
    }
    if components.len() > MAX_ROWS {
        components.truncate(MAX_ROWS);
        lines.push(format!(
            "_Buttons for the first {MAX_ROWS}; decide the others with `/cert approve` or \
             `/cert reject`._"
        ));
    }
    let mut content = lines.join("\n");
    if content.chars().count() > MAX_CONTENT {
        content = content.chars().take(MAX_CONTENT - 1).collect::<String>() + "…";
    }
    let mut body = json!({
        "content": content,
        "components": components,
        "allowed_mentions": { "parse": [] },
    });
    if reply.visibility == Visibility::Ephemeral {
        body["flags"] = json!(EPHEMERAL);
    }
    body
}

/// A message without flags, for posting to a channel or DM and for edits.
pub fn posted(reply: &Reply) -> Value {
    let mut body = message(reply);
    if let Some(fields) = body.as_object_mut() {
        fields.remove("flags");
    }
    body
}

/// A modal's text field, in its own row.
pub(super) fn text_input(
    custom_id: &str,
    label: &str,
    paragraph: bool,
    required: bool,
    placeholder: &str,
) -> Value {
    row(vec![json!({
        "type": 4,
        "custom_id": custom_id,
        "label": label,
        "style": if paragraph { 2 } else { 1 },
        "required": required,
        "placeholder": placeholder,
        "max_length": if paragraph { 2000 } else { 255 },
    })])
}

/// The modal asking why (and, to delegate, to whom) — `subject` is a request number or a
/// serial.
pub fn reason_modal(kind: Decision, subject: &str) -> Value {
    let (title, mut components) = match kind {
        Decision::Delegate => (
            "Delegate",
            vec![text_input(
                "to",
                "Delegate to (e-mail)",
                false,
                true,
                "jane@example.com",
            )],
        ),
        _ => ("Reject", Vec::new()),
    };
    components.push(text_input(
        "reason",
        "Reason (the requester sees it)",
        true,
        true,
        "",
    ));
    json!({
        "custom_id": format!("{}:{subject}", kind.action_id()),
        "title": format!("{title} {subject}").chars().take(45).collect::<String>(),
        "components": components,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_become_content_and_buttons() {
        let reply = Reply::text("*REQ-1* needs your approval.")
            .with(Block::Fields(vec![(
                "Type".to_owned(),
                "web_server".to_owned(),
            )]))
            .with(Block::Decisions {
                request_number: "REQ-1".to_owned(),
            });
        let body = message(&reply);
        assert_eq!(
            body["content"],
            "**REQ-1** needs your approval.\n**Type:** web_server"
        );
        assert_eq!(body["flags"], EPHEMERAL);
        let buttons = &body["components"][0]["components"];
        assert_eq!(buttons[0]["custom_id"], "approve:REQ-1");
        assert_eq!(buttons[1]["custom_id"], "reject:REQ-1");
        assert_eq!(buttons[2]["custom_id"], "delegate:REQ-1");
        assert!(posted(&reply).get("flags").is_none());
        let long = message(&Reply::text("x".repeat(3000)));
        assert_eq!(
            long["content"].as_str().map(|c| c.chars().count()),
            Some(2000)
        );
    }
}
