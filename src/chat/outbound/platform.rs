//! The port the notifier delivers through: find a person, message them privately, post to
//! a channel, replace a message posted before. Slack, Discord and Teams each implement it.

use crate::chat::reply::Reply;
use crate::domain::values::Email;
use crate::ports::BoxFuture;

/// Where a message went, so it can be updated later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// The conversation (Slack channel, Discord channel, Teams conversation).
    pub channel: String,
    /// The message in it (Slack `ts`, Discord message id, Teams activity id).
    pub message_id: String,
}

/// Whether a person can be messaged privately on a platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Their user id there.
    At(String),
    /// Not here. `why`, when said, is something the admins can fix (a permission the
    /// platform lacks): they are told. Without it, the person is simply not on it.
    Unreachable {
        /// What stands in the way.
        why: Option<String>,
    },
}

impl From<Option<String>> for Reach {
    fn from(user: Option<String>) -> Self {
        user.map_or(Self::Unreachable { why: None }, Self::At)
    }
}

/// What the notifier needs of a chat platform.
pub trait ChatPlatform: Send + Sync + std::fmt::Debug {
    /// Its name in job kinds, `chat_messages` and `chat_identities` (`slack`, ...).
    fn name(&self) -> &'static str;
    /// Where the person with `email` can be reached privately, or why not.
    fn reach<'a>(&'a self, email: &'a str) -> BoxFuture<'a, anyhow::Result<Reach>>;
    /// Sends `reply` to `user` privately.
    fn send_direct<'a>(
        &'a self,
        user: &'a str,
        reply: &'a Reply,
    ) -> BoxFuture<'a, anyhow::Result<Posted>>;
    /// Posts `reply` to a channel.
    fn post<'a>(
        &'a self,
        channel: &'a str,
        reply: &'a Reply,
    ) -> BoxFuture<'a, anyhow::Result<Posted>>;
    /// Whether people have a page of their own here (Slack's App Home) that deliveries
    /// change.
    fn has_pages(&self) -> bool {
        false
    }
    /// Publishes again the pages of `people` and, when `approvers`, of every approver (their
    /// queue changed).
    fn refresh_pages<'a>(
        &'a self,
        _people: &'a [Email],
        _approvers: bool,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }
    /// Replaces a message posted before.
    fn update<'a>(
        &'a self,
        posted: &'a Posted,
        reply: &'a Reply,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
}
