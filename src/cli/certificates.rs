//! `cert-assistant certificate ...`: issued certificates without chat.

use std::io::Write as _;

use clap::Subcommand;

use crate::commands::{CommandContext, CommandError, Commands, RevocationForm};
use crate::domain::actor::Platform;
use crate::domain::values::Email;

/// `certificate` subcommands.
#[derive(Debug, Subcommand)]
pub enum CertificateCommand {
    /// Revoke a certificate (its owner or an admin). The CA is told in the background.
    Revoke {
        /// The serial number (hex, as `/cert status` shows it) or the certificate id.
        certificate: String,
        /// Who revokes (e-mail).
        #[arg(long = "as", value_name = "EMAIL")]
        actor: String,
        /// The RFC 5280 reason: unspecified, key_compromise, ca_compromise,
        /// affiliation_changed, superseded, cessation_of_operation, certificate_hold.
        #[arg(long)]
        reason: String,
        /// Free text for the record.
        #[arg(long)]
        text: Option<String>,
    },
    /// Renew a certificate (its owner or an admin): submit a new request like the original,
    /// with a fresh key. Revoke the old one as `superseded` once the new one is issued.
    Renew {
        /// The serial number or the certificate id.
        certificate: String,
        /// Who renews (e-mail).
        #[arg(long = "as", value_name = "EMAIL")]
        actor: String,
    },
}

/// Runs a `certificate` subcommand.
pub async fn run(commands: &Commands, command: CertificateCommand) -> Result<(), CommandError> {
    match command {
        CertificateCommand::Revoke {
            certificate,
            actor,
            reason,
            text,
        } => {
            let ctx = CommandContext::new(Email::parse(&actor)?, Platform::Cli);
            let (id, reason) = commands
                .revoke(
                    &ctx,
                    RevocationForm {
                        certificate,
                        reason,
                        text,
                    },
                )
                .await?;
            let mut out = std::io::stdout().lock();
            // A closed stdout (e.g. piped into `head`) is not an error worth failing for.
            let _ = writeln!(
                out,
                "Certificate {id} revoked ({}); the CA is told in the background.",
                reason.as_str()
            );
        }
        CertificateCommand::Renew { certificate, actor } => {
            let ctx = CommandContext::new(Email::parse(&actor)?, Platform::Cli);
            let submitted = commands.renew(&ctx, &certificate).await?;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "{} submitted: renews {}; it needs {} approval(s).",
                submitted.request_number,
                certificate.trim(),
                submitted.required_approvals
            );
        }
    }
    Ok(())
}
