//! `cert-assistant request ...` and `cert-assistant user ...`: the domain without chat, for
//! operators, scripts and tests.

use std::io::Write as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::commands::{CommandContext, CommandError, Commands, Decision, RequestForm};
use crate::domain::actor::{Platform, Role};
use crate::domain::approval::Outcome;
use crate::domain::values::{Email, RequestNumber};

/// `request` subcommands.
#[derive(Debug, Subcommand)]
pub enum RequestCommand {
    /// Submit a certificate request (the key and CSR are generated unless --csr is given).
    Create(Box<CreateArgs>),
    /// Show a request's status and its approvals.
    Show {
        /// The request number, REQ-YYYYMMDD-XXXXX.
        number: String,
    },
    /// Approve a request.
    Approve {
        /// The request number.
        number: String,
        /// Who approves (e-mail).
        #[arg(long = "as", value_name = "EMAIL")]
        actor: String,
        /// A comment.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Reject a request (a reason is required).
    Reject {
        /// The request number.
        number: String,
        /// Who rejects (e-mail).
        #[arg(long = "as", value_name = "EMAIL")]
        actor: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Hand your decision on a request to someone else.
    Delegate {
        /// The request number.
        number: String,
        /// Who delegates (e-mail).
        #[arg(long = "as", value_name = "EMAIL")]
        actor: String,
        /// To whom (e-mail).
        #[arg(long)]
        to: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Cancel a request (its requester or an admin, before issuance).
    Cancel {
        /// The request number.
        number: String,
        /// Who cancels (e-mail).
        #[arg(long = "as", value_name = "EMAIL")]
        actor: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
}

/// The fields of a new request.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Who requests (e-mail).
    #[arg(long = "as", value_name = "EMAIL")]
    pub actor: String,
    /// Common name, e.g. app.example.com.
    #[arg(long)]
    pub cn: String,
    /// Subject alternative names (repeat or comma-separate).
    #[arg(long = "san")]
    pub sans: Vec<String>,
    /// web_server, email, code_signing, vpn, database, user_auth or other.
    #[arg(long = "type", default_value = "web_server")]
    pub certificate_type: String,
    /// RSA_2048, RSA_4096, ECC_P256 or ECC_P384.
    #[arg(long = "key")]
    pub key_algorithm: Option<String>,
    /// 90, 365 or 730.
    #[arg(long)]
    pub days: Option<String>,
    /// Business justification.
    #[arg(long = "why")]
    pub justification: String,
    /// A CSR file (PEM) instead of a generated key.
    #[arg(long)]
    pub csr: Option<PathBuf>,
    /// Organisation (O).
    #[arg(long)]
    pub org: Option<String>,
    /// Organisational unit (OU).
    #[arg(long)]
    pub ou: Option<String>,
    /// Country (C), two letters.
    #[arg(long)]
    pub country: Option<String>,
    /// Subject e-mail address (for e-mail certificates).
    #[arg(long)]
    pub email: Option<String>,
    /// Department.
    #[arg(long)]
    pub department: Option<String>,
    /// Cost centre.
    #[arg(long)]
    pub cost_center: Option<String>,
    /// Project code.
    #[arg(long)]
    pub project: Option<String>,
    /// Notes.
    #[arg(long)]
    pub notes: Option<String>,
    /// public or internal (default: internal).
    #[arg(long)]
    pub ca: Option<String>,
    /// A public certificate stays in ACM, for AWS load balancers, CloudFront and API
    /// Gateway: not exported, nothing to download (default: exported, for servers anywhere).
    #[arg(long)]
    pub stays_in_acm: bool,
}

/// `user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Give a user a role: user, approver, admin or auditor (admins only).
    Grant {
        /// The user's e-mail.
        email: String,
        /// The role.
        role: String,
        /// Who grants (an admin's e-mail).
        #[arg(long = "as", value_name = "EMAIL")]
        actor: String,
    },
}

fn context(email: &str) -> Result<CommandContext, CommandError> {
    Ok(CommandContext::new(Email::parse(email)?, Platform::Cli))
}

fn number(text: &str) -> Result<RequestNumber, CommandError> {
    Ok(RequestNumber::parse(text)?)
}

fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    // A closed stdout (e.g. piped into `head`) is not an error worth failing for.
    let _ = writeln!(out, "{text}");
}

/// Runs a `request` subcommand.
pub async fn run_request(commands: &Commands, command: RequestCommand) -> Result<(), CommandError> {
    match command {
        RequestCommand::Create(args) => {
            let csr_pem = match &args.csr {
                Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                    CommandError::Invalid(vec![crate::domain::values::ValueError::new(
                        "csr",
                        format!("could not read {}: {e}", path.display()),
                    )])
                })?),
                None => None,
            };
            let form = RequestForm {
                common_name: args.cn,
                subject_alternative_names: args.sans,
                organization: args.org,
                organizational_unit: args.ou,
                country: args.country,
                email_address: args.email,
                certificate_type: args.certificate_type,
                key_algorithm: args.key_algorithm,
                validity_days: args.days,
                csr_pem,
                justification: args.justification,
                department: args.department,
                cost_center: args.cost_center,
                project_code: args.project,
                notes: args.notes,
                requested_ca_type: args.ca,
                export: args.stays_in_acm.then(|| "no".to_owned()),
                ..RequestForm::default()
            };
            let submitted = commands
                .submit_request(&context(&args.actor)?, form)
                .await?;
            say(&submitted.confirmation());
        }
        RequestCommand::Show { number: text } => {
            show(&commands.request(&number(&text)?).await?);
        }
        RequestCommand::Approve {
            number: text,
            actor,
            comment,
        } => {
            let n = number(&text)?;
            let decision = commands
                .approve(&context(&actor)?, &n, comment.as_deref())
                .await?;
            say(&describe(&n, &decision));
        }
        RequestCommand::Reject {
            number: text,
            actor,
            reason,
        } => {
            let n = number(&text)?;
            let decision = commands.reject(&context(&actor)?, &n, &reason).await?;
            say(&describe(&n, &decision));
        }
        RequestCommand::Delegate {
            number: text,
            actor,
            to,
            reason,
        } => {
            let n = number(&text)?;
            let to = Email::parse(&to)?;
            let decision = commands
                .delegate(&context(&actor)?, &n, &to, &reason)
                .await?;
            say(&describe(&n, &decision));
        }
        RequestCommand::Cancel {
            number: text,
            actor,
            reason,
        } => {
            let n = number(&text)?;
            commands
                .cancel_request(&context(&actor)?, &n, reason.as_deref())
                .await?;
            say(&format!("{n} cancelled."));
        }
    }
    Ok(())
}

/// Runs a `user` subcommand.
pub async fn run_user(commands: &Commands, command: UserCommand) -> Result<(), CommandError> {
    match command {
        UserCommand::Grant { email, role, actor } => {
            let email = Email::parse(&email)?;
            let role = Role::parse(&role)?;
            let user = commands.grant_role(&context(&actor)?, &email, role).await?;
            say(&format!("{} is now {}.", user.email, user.role));
        }
    }
    Ok(())
}

fn describe(number: &RequestNumber, decision: &Decision) -> String {
    match decision {
        Decision::Approved => format!("{number} approved."),
        Decision::Rejected => format!("{number} rejected."),
        Decision::Recorded {
            approvals,
            required,
        } => format!("{number}: approval recorded ({approvals} of {required})."),
        Decision::Delegated { to } => format!("{number} delegated to {to}."),
    }
}

/// A request as `request show` (and `audit as-of`) prints it.
pub(super) fn show(view: &crate::commands::RequestView) {
    say(&format!("{}  {}", view.request_number, view.status));
    say(&format!(
        "requester: {} ({})",
        view.requester.email, view.requester.role
    ));
    for (actor, part) in view.approval_lines() {
        say(&format!("approval: {} {part}", actor.email));
    }
    match &view.approval_outcome {
        Some(Outcome::Approved { approvers, at }) => say(&format!(
            "approved at {} by {}",
            at.format("%Y-%m-%d %H:%M UTC"),
            approvers
                .iter()
                .map(|a| a.email.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Some(Outcome::Rejected { by, reason, at }) => say(&format!(
            "rejected at {} by {}: {reason}",
            at.format("%Y-%m-%d %H:%M UTC"),
            by.email
        )),
        Some(Outcome::Withdrawn { at }) => {
            say(&format!("withdrawn at {}", at.format("%Y-%m-%d %H:%M UTC")));
        }
        None => {}
    }
    if let Some((id, status)) = &view.at_ca {
        say(&format!("at the CA: {id} ({status})"));
    }
    for record in &view.validation_records {
        let created = record.created_in.as_ref().map_or_else(String::new, |zone| {
            format!("  (created in Route 53 zone {zone})")
        });
        say(&format!(
            "DNS record to create for {}: {} {} {}{created}",
            record.domain, record.name, record.record_type, record.value
        ));
    }
    if let Some(failure) = &view.failure {
        say(&format!("failed: {failure}"));
    }
    if let Some(certificate) = &view.certificate {
        say(&format!(
            "certificate: serial {} {}, valid until {}",
            certificate.serial,
            certificate.status,
            certificate.valid_to.format("%Y-%m-%d %H:%M UTC")
        ));
    }
}
