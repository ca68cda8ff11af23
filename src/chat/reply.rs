//! Replies in platform-neutral form; each platform renders them its own way.

use super::command::ChatCommand;

/// Who sees a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Only the person who asked.
    Ephemeral,
    /// Everyone in the channel.
    InChannel,
}

/// A decision button on an approval message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Approve.
    Approve,
    /// Reject (asks for a reason).
    Reject,
    /// Delegate (asks for a person and a reason).
    Delegate,
}

impl Decision {
    /// The action id platforms send back.
    pub fn action_id(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Reject => "reject",
            Self::Delegate => "delegate",
        }
    }

    /// From an action id.
    pub fn from_action_id(id: &str) -> Option<Self> {
        match id {
            "approve" => Some(Self::Approve),
            "reject" => Some(Self::Reject),
            "delegate" => Some(Self::Delegate),
            _ => None,
        }
    }
}

/// A button that runs a chat command for whoever clicks it, as if they had typed it: the
/// same role checks, the same audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Renew a certificate (`/cert renew SERIAL`).
    Renew {
        /// Its serial.
        certificate: String,
    },
    /// Revoke a certificate that a renewal replaced (`/cert revoke SERIAL superseded`).
    RevokeSuperseded {
        /// Its serial.
        certificate: String,
    },
    /// Confirm a revocation done at the CA by hand (`/cert confirm-revocation SERIAL`).
    ConfirmRevocation {
        /// Its serial.
        certificate: String,
    },
}

impl Action {
    /// The action id platforms send back.
    pub fn action_id(&self) -> &'static str {
        match self {
            Self::Renew { .. } => "renew",
            Self::RevokeSuperseded { .. } => "revoke_superseded",
            Self::ConfirmRevocation { .. } => "confirm_revocation",
        }
    }

    /// The button's label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Renew { .. } => "Renew",
            Self::RevokeSuperseded { .. } => "Revoke the old certificate",
            Self::ConfirmRevocation { .. } => "Done: revoked at the CA",
        }
    }

    /// The value the button carries back.
    pub fn value(&self) -> &str {
        match self {
            Self::Renew { certificate }
            | Self::RevokeSuperseded { certificate }
            | Self::ConfirmRevocation { certificate } => certificate,
        }
    }

    /// What a person is asked before the click counts, for actions that cannot be undone.
    pub fn confirmation(&self) -> Option<String> {
        match self {
            Self::Renew { .. } => None,
            Self::RevokeSuperseded { certificate } => Some(format!(
                "Revoke certificate {certificate} as superseded? Anything still using it \
                 stops trusting it once the CRL is published."
            )),
            Self::ConfirmRevocation { certificate } => Some(format!(
                "Certificate {certificate} is revoked at the CA and its CRL is published? \
                 The revocation is then recorded as done."
            )),
        }
    }

    /// From what a platform sent back.
    pub fn from_parts(action_id: &str, value: &str) -> Option<Self> {
        let certificate = value.trim().to_owned();
        if certificate.is_empty() {
            return None;
        }
        match action_id {
            "renew" => Some(Self::Renew { certificate }),
            "revoke_superseded" => Some(Self::RevokeSuperseded { certificate }),
            "confirm_revocation" => Some(Self::ConfirmRevocation { certificate }),
            _ => None,
        }
    }

    /// The command a click runs.
    pub fn command(&self) -> ChatCommand {
        match self {
            Self::Renew { certificate } => ChatCommand::Renew {
                certificate: certificate.clone(),
            },
            Self::RevokeSuperseded { certificate } => ChatCommand::Revoke {
                certificate: certificate.clone(),
                reason: "superseded".to_owned(),
                text: Some("replaced by its renewal".to_owned()),
            },
            Self::ConfirmRevocation { certificate } => ChatCommand::ConfirmRevocation {
                certificate: certificate.clone(),
            },
        }
    }
}

/// A part of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// Text with light markdown (`*bold*`, `_italic_`, `` `code` ``).
    Text(String),
    /// Label/value pairs.
    Fields(Vec<(String, String)>),
    /// Preformatted text (tables).
    Code(String),
    /// Approve / Reject / Delegate buttons for a request.
    Decisions {
        /// The request number the buttons act on.
        request_number: String,
    },
    /// Approve / Reject buttons for a revocation waiting for an approver.
    RevocationDecisions {
        /// The certificate's serial the buttons act on.
        serial: String,
    },
    /// Buttons that run commands.
    Actions(Vec<Action>),
}

/// A reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Who sees it.
    pub visibility: Visibility,
    /// What it says.
    pub blocks: Vec<Block>,
}

impl Reply {
    /// A private text reply.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            visibility: Visibility::Ephemeral,
            blocks: vec![Block::Text(text.into())],
        }
    }

    /// Adds a block.
    pub fn with(mut self, block: Block) -> Self {
        self.blocks.push(block);
        self
    }

    /// All text of the reply, for platforms (and tests) without rich layouts.
    pub fn plain_text(&self) -> String {
        let mut out = Vec::new();
        for block in &self.blocks {
            match block {
                Block::Text(text) | Block::Code(text) => out.push(text.clone()),
                Block::Fields(fields) => {
                    for (label, value) in fields {
                        out.push(format!("{label}: {value}"));
                    }
                }
                Block::Decisions { request_number } => {
                    out.push(format!("[Approve] [Reject] [Delegate] {request_number}"));
                }
                Block::RevocationDecisions { serial } => {
                    out.push(format!("[Approve] [Reject] revocation of {serial}"));
                }
                Block::Actions(actions) => {
                    for action in actions {
                        out.push(format!("[{}] {}", action.label(), action.value()));
                    }
                }
            }
        }
        out.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_button_runs_the_command_a_person_would_type() {
        let renew = Action::from_parts("renew", " 0A1B ").expect("renew");
        assert_eq!(
            renew.command(),
            ChatCommand::Renew {
                certificate: "0A1B".to_owned()
            }
        );
        assert!(renew.confirmation().is_none());
        let revoke = Action::from_parts("revoke_superseded", "0A1B").expect("revoke");
        assert!(matches!(
            revoke.command(),
            ChatCommand::Revoke { ref reason, .. } if reason == "superseded"
        ));
        assert!(revoke.confirmation().is_some(), "revoking asks first");
        assert_eq!(Action::from_parts("renew", "  "), None);
        assert_eq!(Action::from_parts("approve", "REQ-1"), None);
    }
}
