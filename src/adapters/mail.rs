//! Sending e-mail: SES in AWS, or a local directory of `.eml` files (the default), which a
//! person can open in any mail client.

use std::path::PathBuf;

use anyhow::Context;
use lettre::message::{Mailbox, MultiPart};

use crate::ports::BoxFuture;

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// Sender (`notification.email.from`).
    pub from: String,
    /// Recipient.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain text body.
    pub text: String,
    /// HTML body.
    pub html: String,
}

impl Mail {
    /// The message in RFC 5322 form (multipart/alternative: text and HTML).
    pub fn to_rfc5322(&self) -> anyhow::Result<Vec<u8>> {
        let from: Mailbox = self
            .from
            .parse()
            .context("the sender address is not usable")?;
        let to: Mailbox = self
            .to
            .parse()
            .context("the recipient address is not usable")?;
        let message = lettre::Message::builder()
            .from(from)
            .to(to)
            .subject(&self.subject)
            .multipart(MultiPart::alternative_plain_html(
                self.text.clone(),
                self.html.clone(),
            ))?;
        Ok(message.formatted())
    }
}

/// Why sending failed; `Transient` is worth retrying.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// Try again later.
    #[error("mail could not be sent now: {0}")]
    Transient(String),
    /// Will not work.
    #[error("mail was refused: {0}")]
    Permanent(String),
}

/// A way to send mail.
pub trait Mailer: Send + Sync + std::fmt::Debug {
    /// Sends `mail`; returns the provider's message id.
    fn send<'a>(&'a self, mail: &'a Mail) -> BoxFuture<'a, Result<String, MailError>>;
}

/// Writes each message as an `.eml` file into a directory.
#[derive(Debug, Clone)]
pub struct LocalMailer {
    dir: PathBuf,
}

impl LocalMailer {
    /// A mailer writing into `dir` (created on first use).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

impl Mailer for LocalMailer {
    fn send<'a>(&'a self, mail: &'a Mail) -> BoxFuture<'a, Result<String, MailError>> {
        Box::pin(async move {
            let bytes = mail
                .to_rfc5322()
                .map_err(|e| MailError::Permanent(format!("{e:#}")))?;
            let id = uuid::Uuid::new_v4().to_string();
            let dir = self.dir.clone();
            let path = dir.join(format!(
                "{}-{id}.eml",
                chrono::Utc::now().format("%Y%m%dT%H%M%S")
            ));
            // Mails can carry download links: the drop is the service user's alone.
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                use std::io::Write as _;
                use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&dir)?;
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)?
                    .write_all(&bytes)
            })
            .await
            .map_err(|e| MailError::Transient(e.to_string()))?
            .map_err(|e| MailError::Transient(format!("could not write the mail file: {e}")))?;
            Ok(id)
        })
    }
}

/// Amazon SES.
#[derive(Debug, Clone)]
pub struct SesMailer {
    client: aws_sdk_ses::Client,
}

impl SesMailer {
    /// A mailer using the default AWS configuration (region and credentials from the
    /// environment, profile or instance), optionally at another endpoint.
    pub async fn new(region: Option<String>, endpoint: Option<String>) -> Self {
        let config = super::aws::sdk_config(region.as_deref(), endpoint.as_deref()).await;
        Self::from_client(aws_sdk_ses::Client::new(&config))
    }

    /// A mailer over a client configured elsewhere (tests, custom credentials).
    pub fn from_client(client: aws_sdk_ses::Client) -> Self {
        Self { client }
    }
}

impl Mailer for SesMailer {
    fn send<'a>(&'a self, mail: &'a Mail) -> BoxFuture<'a, Result<String, MailError>> {
        use aws_sdk_ses::types::{Body, Content, Destination, Message};
        Box::pin(async move {
            let content = |text: &str| {
                Content::builder()
                    .data(text)
                    .charset("UTF-8")
                    .build()
                    .map_err(|e| MailError::Permanent(e.to_string()))
            };
            let message = Message::builder()
                .subject(content(&mail.subject)?)
                .body(
                    Body::builder()
                        .text(content(&mail.text)?)
                        .html(content(&mail.html)?)
                        .build(),
                )
                .build();
            let sent = self
                .client
                .send_email()
                .source(&mail.from)
                .destination(Destination::builder().to_addresses(&mail.to).build())
                .message(message)
                .send()
                .await
                .map_err(|e| {
                    let text = format!("{}", aws_sdk_ses::error::DisplayErrorContext(&e));
                    match e.raw_response().map(|r| r.status().as_u16()) {
                        Some(status) if (400..500).contains(&status) && status != 429 => {
                            MailError::Permanent(text)
                        }
                        _ => MailError::Transient(text),
                    }
                })?;
            Ok(sent.message_id().to_owned())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_local_mailer_writes_a_readable_message() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mailer = LocalMailer::new(dir.path().join("outbox"));
        let mail = Mail {
            from: "cert-assistant@example.com".to_owned(),
            to: "john@example.com".to_owned(),
            subject: "REQ-20261127-00001 is issued".to_owned(),
            text: "Your certificate is ready.".to_owned(),
            html: "<p>Your certificate is ready.</p>".to_owned(),
        };
        mailer.send(&mail).await.expect("sent");
        let files: Vec<_> = std::fs::read_dir(dir.path().join("outbox"))
            .expect("dir")
            .filter_map(Result::ok)
            .collect();
        assert_eq!(files.len(), 1);
        let text = std::fs::read_to_string(files[0].path()).expect("read");
        assert!(text.contains("To: john@example.com"), "{text}");
        assert!(
            text.contains("Subject: REQ-20261127-00001 is issued"),
            "{text}"
        );
        assert!(text.contains("multipart/alternative"), "{text}");
    }
}
