//! Replies in platform-neutral form; each platform renders them its own way.

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
            }
        }
        out.join("\n")
    }
}
