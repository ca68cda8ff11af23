//! Every message shape the service sends, rendered on every platform: what a person needs
//! survives (each field's label and value, the decision buttons with their subject, the
//! confirmation of an irreversible action), and what the platform would refuse does not get
//! out (Slack's block and text limits, Discord's content, rows and ids, Teams' card shape).

use serde_json::Value;

use super::outbound::cards::{self, RequestCard};
use super::outbound::{Decision as Ended, RevocationDecision};
use super::reply::{Action, Block, Reply};
use super::{discord, slack, teams};
use crate::domain::values::Email;

/// Every shape, by name.
fn shapes() -> Vec<(&'static str, Reply)> {
    let card = RequestCard::example();
    let at = "2026-12-07T14:02:00Z".parse().expect("time");
    let jane = Email::parse("jane@example.com").expect("email");
    let serial = "7D2A0F3C9B11".to_owned();
    let mut queue = Reply::text("*25 request(s) waiting for a decision*");
    for n in 1..=25 {
        let number = format!("REQ-20261207-{n:05}");
        queue = queue
            .with(Block::Fields(vec![
                ("Request".to_owned(), number.clone()),
                ("Common name".to_owned(), format!("host{n}.example.com")),
            ]))
            .with(Block::Decisions {
                request_number: number,
            });
    }
    vec![
        (
            "approval ask",
            card.approval_message("*REQ-20261202-00001* needs your approval."),
        ),
        (
            "decided approval",
            card.decided(cards::decision_line(
                Ended::Rejected,
                "jane@example.com",
                "wrong <b>host</b>",
                Some(at),
            )),
        ),
        (
            "revocation ask",
            Reply::text(format!(
                "john@example.com asks to revoke certificate `{serial}` for *superseded*."
            ))
            .with(Block::Fields(vec![(
                "Common name".to_owned(),
                "shop.example.com".to_owned(),
            )]))
            .with(Block::RevocationDecisions {
                serial: serial.clone(),
            }),
        ),
        (
            "revocation decided",
            cards::revocation_decided(
                &serial,
                RevocationDecision::Rejected,
                &jane,
                Some("still used"),
                at,
            ),
        ),
        (
            "operator task",
            Reply::text(format!(
                "Certificate `{serial}` is revoked here, but the CA could not be told."
            ))
            .with(Block::Actions(vec![Action::ConfirmRevocation {
                certificate: serial.clone(),
            }])),
        ),
        (
            "expiry reminder",
            Reply::text("Your certificate *shop.example.com* expires in 14 days.").with(
                Block::Actions(vec![Action::Renew {
                    certificate: serial.clone(),
                }]),
            ),
        ),
        (
            "issued renewal",
            Reply::text("Your certificate is issued.")
                .with(Block::Text("It renews the old one.".to_owned()))
                .with(Block::Actions(vec![Action::RevokeSuperseded {
                    certificate: serial.clone(),
                }])),
        ),
        ("approvals queue", queue),
        (
            "audit extract",
            Reply::text("*certificates_expiring*")
                .with(Block::Code("serial | cn\n7D2A | shop".repeat(40))),
        ),
        (
            "long text",
            Reply::text("a long line of words ".repeat(300)),
        ),
    ]
}

/// The facts a person must see in a reply: every field's label and value, and each text
/// and code block's first words.
fn facts(reply: &Reply) -> Vec<String> {
    let mut facts = Vec::new();
    for block in &reply.blocks {
        match block {
            Block::Fields(fields) => {
                for (label, value) in fields {
                    facts.push(label.clone());
                    facts.push(value.clone());
                }
            }
            Block::Text(text) | Block::Code(text) => {
                facts.push(
                    text.split_whitespace()
                        .take(3)
                        .collect::<Vec<_>>()
                        .join(" "),
                );
            }
            _ => {}
        }
    }
    facts
}

/// The subjects of the decisions a reply asks for, and its actions.
fn asks(reply: &Reply) -> (Vec<String>, Vec<Action>) {
    let mut subjects = Vec::new();
    let mut actions = Vec::new();
    for block in &reply.blocks {
        match block {
            Block::Decisions { request_number } => subjects.push(request_number.clone()),
            Block::RevocationDecisions { serial } => subjects.push(serial.clone()),
            Block::Actions(list) => actions.extend(list.iter().cloned()),
            _ => {}
        }
    }
    (subjects, actions)
}

/// The text a platform shows, undoing its escapes and markup enough to find the facts.
fn shown(rendered: &Value) -> String {
    rendered
        .to_string()
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
        .replace("**", "*")
        .replace("\\n", "\n")
}

fn assert_facts(platform: &str, name: &str, reply: &Reply, rendered: &Value, cut: bool) {
    let text = shown(rendered);
    for fact in facts(reply) {
        let fact = fact.replace("**", "*");
        let fact: String = fact.chars().take(40).collect();
        if cut && !text.contains(&fact) {
            continue;
        }
        assert!(
            text.contains(fact.trim_end()),
            "{platform} {name}: {fact:?} is not shown: {text}"
        );
    }
}

#[test]
fn slack_shows_every_shape_within_block_kit_limits() {
    for (name, reply) in shapes() {
        let message = slack::render::message(&reply);
        let blocks = message["blocks"].as_array().expect("blocks");
        assert!(blocks.len() <= 50, "{name}: {} blocks", blocks.len());
        for block in blocks {
            if let Some(text) = block["text"]["text"].as_str() {
                assert!(text.chars().count() <= 3000, "{name}");
                assert!(!text.contains("<!channel>"), "{name}: {text}");
            }
            if let Some(fields) = block["fields"].as_array() {
                assert!(fields.len() <= 10, "{name}");
            }
        }
        assert!(
            message["text"]
                .as_str()
                .is_some_and(|t| t.chars().count() <= 3000)
        );
        let cut = blocks.len() == 50;
        assert_facts(
            "slack",
            name,
            &reply,
            &message,
            cut || name.starts_with("long") || name.starts_with("audit"),
        );
        if cut {
            assert!(
                shown(&message).contains("…and more"),
                "{name}: the cut is said"
            );
        }
        let (subjects, actions) = asks(&reply);
        let buttons: Vec<&Value> = blocks
            .iter()
            .filter(|b| b["type"] == "actions")
            .flat_map(|b| b["elements"].as_array().into_iter().flatten())
            .collect();
        for subject in &subjects {
            assert!(
                cut || buttons
                    .iter()
                    .any(|b| b["action_id"] == "approve" && b["value"] == subject.as_str()),
                "{name}: no Approve for {subject}"
            );
        }
        for action in &actions {
            let button = buttons
                .iter()
                .find(|b| b["action_id"] == action.action_id())
                .unwrap_or_else(|| panic!("{name}: no {} button", action.action_id()));
            assert_eq!(button["value"], action.value());
            assert_eq!(
                button["confirm"].is_object(),
                action.confirmation().is_some(),
                "{name}"
            );
        }
        // The same reply as the Home tab stays within a view's 100 blocks.
        let home = slack::render::home(&reply);
        assert!(
            home["blocks"].as_array().expect("blocks").len() <= 100,
            "{name}"
        );
    }
}

#[test]
fn discord_shows_every_shape_within_message_limits() {
    for (name, reply) in shapes() {
        let message = discord::render::posted(&reply);
        let content = message["content"].as_str().expect("content");
        assert!(content.chars().count() <= 2000, "{name}");
        assert_eq!(
            message["allowed_mentions"]["parse"],
            serde_json::json!([]),
            "{name}"
        );
        let rows = message["components"].as_array().expect("rows");
        assert!(rows.len() <= 5, "{name}: {} rows", rows.len());
        let buttons: Vec<&Value> = rows
            .iter()
            .inspect(|row| {
                assert!(
                    row["components"].as_array().is_some_and(|b| b.len() <= 5),
                    "{name}"
                );
            })
            .flat_map(|row| row["components"].as_array().into_iter().flatten())
            .collect();
        for button in &buttons {
            let id = button["custom_id"].as_str().expect("custom id");
            assert!(id.len() <= 100, "{name}: {id}");
            assert!(
                button["label"]
                    .as_str()
                    .is_some_and(|l| l.chars().count() <= 80)
            );
        }
        assert_facts("discord", name, &reply, &message, true);
        let (subjects, actions) = asks(&reply);
        // Discord takes five rows of buttons: the first subjects get theirs, the rest are
        // named as decided with the command.
        for (n, subject) in subjects.iter().enumerate() {
            let has = buttons
                .iter()
                .any(|b| b["custom_id"] == format!("approve:{subject}"));
            assert_eq!(has, n < 5, "{name}: {subject}");
        }
        if subjects.len() > 5 {
            assert!(content.contains("/cert approve"), "{name}: {content}");
        }
        for action in &actions {
            let id = format!("{}:{}", action.action_id(), action.value());
            assert!(
                buttons.iter().any(|b| b["custom_id"] == id),
                "{name}: no {id}"
            );
        }
    }
}

#[test]
fn teams_shows_every_shape_as_an_adaptive_card() {
    for (name, reply) in shapes() {
        let activity = teams::render::activity(&reply);
        assert_eq!(activity["type"], "message");
        let card = &activity["attachments"][0]["content"];
        assert_eq!(card["type"], "AdaptiveCard", "{name}");
        assert!(
            card["body"].as_array().is_some_and(|b| !b.is_empty()),
            "{name}"
        );
        assert!(
            activity["summary"]
                .as_str()
                .is_some_and(|s| s.chars().count() <= 200)
        );
        assert_facts("teams", name, &reply, card, false);
        let (subjects, actions) = asks(&reply);
        let executes: Vec<&Value> = card["actions"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|a| {
                let shown_card = a["card"]["actions"].as_array().into_iter().flatten();
                std::iter::once(a).chain(shown_card)
            })
            .filter(|a| a["type"] == "Action.Execute")
            .collect();
        for subject in &subjects {
            for verb in ["approve", "reject"] {
                assert!(
                    executes
                        .iter()
                        .any(|a| a["verb"] == verb && a["data"]["subject"] == subject.as_str()),
                    "{name}: no {verb} for {subject}"
                );
            }
        }
        for action in &actions {
            assert!(
                executes
                    .iter()
                    .any(|a| a["verb"] == action.action_id()
                        && a["data"]["subject"] == action.value()),
                "{name}: no {}",
                action.action_id()
            );
        }
    }
}
