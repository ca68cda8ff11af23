//! `cert-assistant certificate ...`: issued certificates without chat.

use std::io::Write as _;

use clap::Subcommand;

use crate::adapters::artifacts::ArtifactStore;
use crate::commands::{CommandContext, CommandError, Commands, Revocation, RevocationForm};
use crate::domain::actor::Platform;
use crate::domain::certificate::Artifact;
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
    /// Approve a revocation that waits for an approver (its reason is listed in
    /// `revocation.approval_required_reasons`); the certificate is revoked at once.
    ApproveRevocation {
        /// The serial number or the certificate id.
        certificate: String,
        /// Who approves (e-mail of an approver or admin other than the one who asked).
        #[arg(long = "as", value_name = "EMAIL")]
        actor: String,
        /// A comment for the record.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Reject a revocation that waits for an approver; the certificate stays valid.
    RejectRevocation {
        /// The serial number or the certificate id.
        certificate: String,
        /// Who rejects (e-mail of an approver or admin).
        #[arg(long = "as", value_name = "EMAIL")]
        actor: String,
        /// Why (required).
        #[arg(long)]
        reason: String,
    },
    /// Confirm that you revoked a certificate at the CA by hand (the operator task left when
    /// the CA could not be told, e.g. ADCS without `adcs.revoke_command`). Admins only.
    ConfirmRevocation {
        /// The serial number or the certificate id.
        certificate: String,
        /// The admin confirming (e-mail).
        #[arg(long = "as", value_name = "EMAIL")]
        actor: String,
    },
    /// Download a certificate (PEM), its chain, or — once, to its owner, when the service
    /// generated it — its private key. Every download is recorded and audited.
    Download {
        /// The serial number or the certificate id.
        certificate: String,
        /// Who downloads (e-mail).
        #[arg(long = "as", value_name = "EMAIL")]
        actor: String,
        /// What: certificate, chain or private_key.
        #[arg(long, default_value = "certificate")]
        artifact: String,
        /// Write it to this file (created; never overwritten). Required for the private key,
        /// which is written readable by you only; otherwise PEM goes to stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
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
pub async fn run(
    commands: &Commands,
    artifacts: &dyn ArtifactStore,
    command: CertificateCommand,
) -> Result<(), CommandError> {
    match command {
        CertificateCommand::Download {
            certificate,
            actor,
            artifact,
            out,
        } => {
            let artifact = Artifact::parse(&artifact)?;
            if artifact == Artifact::PrivateKey && out.is_none() {
                return Err(CommandError::Refused(
                    "the private key is handed out once; give --out FILE to save it (it is \
                     not printed to the terminal)"
                        .to_owned(),
                ));
            }
            if let Some(path) = &out
                && path.exists()
            {
                return Err(CommandError::Refused(format!(
                    "{} exists; it is not overwritten",
                    path.display()
                )));
            }
            let ctx = CommandContext::new(Email::parse(&actor)?, Platform::Cli);
            let prepared = commands
                .prepare_download(&ctx, &certificate, artifact, artifacts)
                .await?;
            // The file is written (beside its final name) before the download is recorded,
            // and takes its name only after: a missing directory, a full disk or a refused
            // record never uses up the key's one download or leaves a partial file.
            let staged = match &out {
                Some(path) => Some(stage(path, prepared.download().pem.as_bytes()).map_err(
                    |e| CommandError::Refused(format!("could not write {}: {e}", path.display())),
                )?),
                None => None,
            };
            let download = match commands.record_download(prepared).await {
                Ok(download) => download,
                Err(error) => {
                    if let Some(staged) = &staged {
                        let _ = std::fs::remove_file(staged);
                    }
                    return Err(error);
                }
            };
            let mut stdout = std::io::stdout().lock();
            match out {
                Some(path) => {
                    let staged = staged.unwrap_or_default();
                    place(&staged, &path).map_err(|e| {
                        CommandError::Refused(format!(
                            "the download is recorded and saved as {}, but could not be \
                             named {}: {e}",
                            staged.display(),
                            path.display()
                        ))
                    })?;
                    let what = match download.artifact {
                        Artifact::Certificate => "the certificate",
                        Artifact::Chain => "the chain",
                        Artifact::PrivateKey => "the private key (this was its one download)",
                    };
                    let _ = writeln!(
                        stdout,
                        "Saved {what} to {} (suggested name {}).",
                        path.display(),
                        download.filename
                    );
                }
                None => {
                    let _ = stdout.write_all(download.pem.as_bytes());
                }
            }
        }
        CertificateCommand::Revoke {
            certificate,
            actor,
            reason,
            text,
        } => {
            let ctx = CommandContext::new(Email::parse(&actor)?, Platform::Cli);
            let revocation = commands
                .revoke(
                    &ctx,
                    RevocationForm {
                        certificate: certificate.clone(),
                        reason,
                        text,
                    },
                )
                .await?;
            say_revocation(&certificate, revocation);
        }
        CertificateCommand::ApproveRevocation {
            certificate,
            actor,
            comment,
        } => {
            let ctx = CommandContext::new(Email::parse(&actor)?, Platform::Cli);
            let decided = commands
                .decide_revocation(&ctx, &certificate, true, comment.as_deref())
                .await?;
            say_revocation(&certificate, decided);
        }
        CertificateCommand::ConfirmRevocation { certificate, actor } => {
            let ctx = CommandContext::new(Email::parse(&actor)?, Platform::Cli);
            let id = commands.confirm_ca_revocation(&ctx, &certificate).await?;
            let _ = writeln!(
                std::io::stdout().lock(),
                "Recorded: certificate {id} is revoked at the CA (confirmed by {actor})."
            );
        }
        CertificateCommand::RejectRevocation {
            certificate,
            actor,
            reason,
        } => {
            let ctx = CommandContext::new(Email::parse(&actor)?, Platform::Cli);
            let decided = commands
                .decide_revocation(&ctx, &certificate, false, Some(&reason))
                .await?;
            say_revocation(&certificate, decided);
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

/// Creates `path` (never overwriting) readable and writable by the owner only.
/// Writes `bytes` (owner-only, synced) to a new file beside `path`; returns its name.
fn stage(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the path names no file"))?;
    let mut staged_name = std::ffi::OsString::from(".");
    staged_name.push(name);
    staged_name.push(format!(".{}.partial", uuid::Uuid::new_v4().simple()));
    let staged = path.with_file_name(staged_name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&staged)?;
    if let Err(error) = file.write_all(bytes).and_then(|()| file.sync_all()) {
        let _ = std::fs::remove_file(&staged);
        return Err(error);
    }
    Ok(staged)
}

/// Gives the staged file its name, never over an existing file, and syncs the directory.
fn place(staged: &std::path::Path, path: &std::path::Path) -> std::io::Result<()> {
    std::fs::hard_link(staged, path)?;
    std::fs::remove_file(staged)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn say_revocation(certificate: &str, revocation: Revocation) {
    let mut out = std::io::stdout().lock();
    // A closed stdout (e.g. piped into `head`) is not an error worth failing for.
    let _ = match revocation {
        Revocation::Revoked { reason, .. } => writeln!(
            out,
            "Certificate {certificate} revoked ({reason}); the CA is told in the background."
        ),
        Revocation::AwaitingApproval { reason, .. } => writeln!(
            out,
            "Revoking certificate {certificate} for {reason} needs an approver: they are \
             asked in chat, or run `cert-assistant certificate approve-revocation \
             {certificate} --as APPROVER`. It stays valid until then."
        ),
        Revocation::Rejected { .. } => writeln!(
            out,
            "The revocation of certificate {certificate} is rejected; it stays valid."
        ),
    };
}
