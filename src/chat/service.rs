//! What every platform does with a parsed command: check the role, call the application
//! layer or read the read model, and answer in platform-neutral form.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::command::{self, ChatCommand};
use super::reply::{Block, Reply, Visibility};
use crate::commands::{
    CommandContext, CommandError, Commands, Decision as Outcome, RequestForm, Revocation,
    RevocationForm,
};
use crate::domain::actor::{Actor, Role};
use crate::domain::certificate::Artifact;
use crate::domain::names_policy;
use crate::domain::recommendation::{self, Answers, Recommendation};
use crate::domain::values::{Email, RequestNumber, ValueError};
use crate::projections::catalog;

/// Rows of an audit query shown inline; longer results are cut with a note.
const MAX_INLINE_ROWS: usize = 25;

/// The platform-neutral chat service.
#[derive(Debug, Clone)]
pub struct ChatService {
    commands: Commands,
    /// Where download links point (`http.public_url`).
    public_url: String,
    /// How many commands are taken on at once.
    admission: super::admission::Admission,
    /// Chat accounts looked up lately.
    identities: super::identities::Remembered,
}

impl ChatService {
    /// A service over the application layer.
    pub fn new(commands: Commands) -> Self {
        Self {
            commands,
            public_url: "http://127.0.0.1:8080".to_owned(),
            admission: super::admission::Admission::default(),
            identities: super::identities::Remembered::default(),
        }
    }

    /// Who chat accounts are, as looked up lately (every platform of the process).
    pub fn identities(&self) -> &super::identities::Remembered {
        &self.identities
    }

    /// Commands pass `admission` (shared by every platform of the process).
    #[must_use]
    pub fn with_admission(mut self, admission: super::admission::Admission) -> Self {
        self.admission = admission;
        self
    }

    /// The gate every platform's commands pass before any work is done for them.
    pub fn admission(&self) -> &super::admission::Admission {
        &self.admission
    }

    /// Download links point at `url` (the service as people reach it).
    #[must_use]
    pub fn with_public_url(mut self, url: &str) -> Self {
        url.trim_end_matches('/').clone_into(&mut self.public_url);
        self
    }

    /// The application layer.
    pub fn commands(&self) -> &Commands {
        &self.commands
    }

    /// Runs `command` for the person in `ctx` and answers. Never fails: errors become replies
    /// a person understands (internal ones are logged and answered with a fixed message).
    pub async fn handle(&self, ctx: &CommandContext, command: ChatCommand) -> Reply {
        match self.run(ctx, command).await {
            Ok(reply) => reply,
            Err(error) => error_reply(&error),
        }
    }

    /// What anyone is answered without knowing who they are (help, and a recommendation from
    /// the questionnaire's answers), so these answer even while the platform cannot say who
    /// is asking; `None` for every command that needs the person.
    pub async fn answer_anyone(&self, command: &ChatCommand) -> Option<Reply> {
        Some(match command {
            ChatCommand::Help => {
                let names = match self.commands.names_policy().await {
                    Ok(policy) => policy.describe(),
                    Err(error) => error.to_string(),
                };
                Reply::text(command::help()).with(Block::Text(format!(
                    "*Names you may request* (`{}`):\n{names}",
                    names_policy::KEY
                )))
            }
            ChatCommand::Recommend(fields) => match answers_from(fields) {
                Ok(answers) => recommendation_reply(&recommendation::recommend(
                    &answers,
                    Utc::now().date_naive(),
                )),
                Err(error) => error_reply(&error),
            },
            _ => return None,
        })
    }

    async fn run(&self, ctx: &CommandContext, command: ChatCommand) -> Result<Reply, CommandError> {
        if let Some(reply) = self.answer_anyone(&command).await {
            return Ok(reply);
        }
        let actor = self.commands.actor(ctx).await?;
        match command {
            // Answered above, before anyone was looked up; here only to keep the match whole.
            ChatCommand::Help | ChatCommand::Recommend(_) => Ok(Reply::text(command::help())),
            ChatCommand::RequestForm => Ok(Reply::text(
                "Fill in the request in one line, for example: `/cert request cn=app.example.com \
                 san=www.example.com type=web_server days=90 why=\"Customer portal\"`",
            )),
            ChatCommand::Request(fields) => self.request(ctx, fields).await,
            ChatCommand::Status(number) => {
                self.status(ctx, &actor, &RequestNumber::parse(&number)?)
                    .await
            }
            ChatCommand::List => self.list(&actor).await,
            ChatCommand::Approvals => {
                self.require(ctx, &actor, Role::Approver, "approvals")
                    .await?;
                self.approvals().await
            }
            ChatCommand::Approve { number, comment } if command::names_certificate(&number) => {
                let decided = self
                    .commands
                    .decide_revocation(ctx, &number, true, comment.as_deref())
                    .await?;
                Ok(Reply::text(describe_revocation(&number, decided)))
            }
            ChatCommand::Reject { number, reason } if command::names_certificate(&number) => {
                let decided = self
                    .commands
                    .decide_revocation(ctx, &number, false, Some(&reason))
                    .await?;
                Ok(Reply::text(describe_revocation(&number, decided)))
            }
            ChatCommand::Approve { number, comment } => {
                let number = RequestNumber::parse(&number)?;
                let outcome = self
                    .commands
                    .approve(ctx, &number, comment.as_deref())
                    .await?;
                Ok(Reply::text(describe(&number, &outcome)))
            }
            ChatCommand::Reject { number, reason } => {
                let number = RequestNumber::parse(&number)?;
                let outcome = self.commands.reject(ctx, &number, &reason).await?;
                Ok(Reply::text(describe(&number, &outcome)))
            }
            ChatCommand::Cancel { number, reason } => {
                let number = RequestNumber::parse(&number)?;
                self.commands
                    .cancel_request(ctx, &number, reason.as_deref())
                    .await?;
                Ok(Reply::text(format!("{number} is cancelled.")))
            }
            ChatCommand::Revoke {
                certificate,
                reason,
                text,
            } => {
                let revocation = self
                    .commands
                    .revoke(
                        ctx,
                        RevocationForm {
                            certificate: certificate.clone(),
                            reason,
                            text,
                        },
                    )
                    .await?;
                Ok(Reply::text(describe_revocation(&certificate, revocation)))
            }
            ChatCommand::Dashboard => {
                let token = self.commands.dashboard_link(ctx).await?;
                Ok(Reply::text(format!(
                    "Your sign-in link to the dashboard, for you only: {}/dashboard/sign-in/{token}\n\
                     It works once, within {} minutes; the session it opens lasts {} hours.",
                    self.public_url,
                    crate::commands::dashboard::LINK_MINUTES,
                    crate::commands::dashboard::SESSION_HOURS,
                )))
            }
            ChatCommand::Download {
                certificate,
                artifact,
            } => {
                let artifact = match artifact {
                    Some(text) => Artifact::parse(&text)?,
                    None => Artifact::Certificate,
                };
                let link = self
                    .commands
                    .download_link(ctx, &certificate, artifact)
                    .await?;
                let mut reply = Reply::text(format!(
                    "Download the {} of {}: {}/downloads/{} (valid until {} UTC, for you only).",
                    artifact.as_str().replace('_', " "),
                    certificate.trim(),
                    self.public_url,
                    link.token,
                    link.expires.format("%H:%M")
                ));
                if let Some(passphrase) = &link.passphrase {
                    reply = reply.with(Block::Text(format!(
                        "It works once: the key is handed out a single time, encrypted \
                         (PKCS#8, AES-256) under this one-time passphrase, shown only here: \
                         `{passphrase}`\nDecrypt it where it will be used: `openssl pkey -in \
                         FILE -out key.pem` (it asks for the passphrase), or make a PKCS#12 for \
                         Windows: `openssl pkcs12 -export -inkey FILE -in CERT.pem -out \
                         cert.pfx`."
                    )));
                }
                Ok(reply)
            }
            ChatCommand::ConfirmRevocation { certificate } => {
                self.commands
                    .confirm_ca_revocation(ctx, &certificate)
                    .await?;
                Ok(Reply::text(format!(
                    "Recorded: certificate {} is revoked at the CA (confirmed by you).",
                    certificate.trim()
                )))
            }
            ChatCommand::Renew { certificate } => {
                let submitted = self.commands.renew(ctx, &certificate).await?;
                Ok(Reply::text(format!(
                    "*{}* is submitted: it renews {} with a fresh key and needs {} approval(s). \
                     Once it is issued, revoke the old one with `/cert revoke {} superseded`.",
                    submitted.request_number,
                    certificate.trim(),
                    submitted.required_approvals,
                    certificate.trim()
                )))
            }
            ChatCommand::AuditAsOf { time, resource } => {
                self.require(ctx, &actor, Role::Auditor, "audit").await?;
                let at = crate::domain::values::parse_instant("time", &time)?;
                let recalled = self.commands.recall(&resource, at).await?;
                let since = if recalled.since.is_empty() {
                    "Nothing happened to it since.".to_owned()
                } else {
                    format!("Since then:\n{}", recalled.since.join("\n"))
                };
                Ok(Reply::text(format!(
                    "*{}* as it was at {}",
                    recalled.what,
                    at.format("%Y-%m-%d %H:%M:%S UTC")
                ))
                .with(Block::Fields(recalled.facts))
                .with(Block::Code(since)))
            }
            ChatCommand::Audit { query, params } => {
                self.require(ctx, &actor, Role::Auditor, "audit").await?;
                self.audit(query, params).await
            }
            ChatCommand::ConfigGet(key) => {
                self.require(ctx, &actor, Role::Admin, "configure").await?;
                let value: Option<String> = sqlx::query_scalar(
                    "SELECT CASE WHEN coalesce(is_sensitive, false) THEN '[hidden]' \
                            ELSE config_value END FROM system_config WHERE config_key = $1",
                )
                .bind(key.trim())
                .fetch_optional(self.commands.pool())
                .await?;
                if key.trim() == names_policy::KEY {
                    // Shown as it applies, set or not: the rule for every certificate type.
                    let set = value.map_or_else(
                        || "not set: the default".to_owned(),
                        |value| format!("`{value}`"),
                    );
                    let policy = self.commands.names_policy().await?;
                    return Ok(Reply::text(format!("`{key}` = {set}"))
                        .with(Block::Text(policy.describe())));
                }
                match value {
                    Some(value) => Ok(Reply::text(format!("`{key}` = `{value}`"))),
                    None => Err(CommandError::NotFound(format!("there is no setting {key}"))),
                }
            }
            ChatCommand::ConfigSet { key, value } => {
                let setting = self.commands.set_config(ctx, &key, &value, None).await?;
                Ok(Reply::text(format!(
                    "`{}` is now `{}`.",
                    setting.key, setting.value
                )))
            }
            ChatCommand::Grant { user, role } => {
                let email = Email::parse(&user).map_err(|_| {
                    CommandError::Invalid(vec![ValueError::new(
                        "user",
                        format!("{user} is not a person this workspace knows by e-mail"),
                    )])
                })?;
                let role = Role::parse(&role)?;
                let granted = self.commands.grant_role(ctx, &email, role).await?;
                Ok(Reply::text(format!(
                    "{} is now {}.",
                    granted.email, granted.role
                )))
            }
        }
    }

    /// Refuses (and audits the refusal) unless `actor` has `role` or is an admin.
    async fn require(
        &self,
        ctx: &CommandContext,
        actor: &Actor,
        role: Role,
        action: &str,
    ) -> Result<(), CommandError> {
        let allowed = actor.role == Role::Admin
            || actor.role == role
            || (role == Role::Auditor && actor.role == Role::Auditor);
        let result = if allowed {
            Ok(())
        } else {
            let who = match role {
                Role::Approver => "approvers",
                Role::Auditor => "auditors",
                Role::Admin => "admins",
                Role::User => "users",
            };
            Err(CommandError::Refused(format!(
                "only {who} and admins can do that"
            )))
        };
        self.commands
            .audit_refusal(
                ctx,
                Some(actor),
                crate::commands::Attempt {
                    action,
                    resource_type: "request",
                    resource_id: None,
                    resource_identifier: None,
                },
                result,
            )
            .await
    }

    async fn request(
        &self,
        ctx: &CommandContext,
        fields: BTreeMap<String, String>,
    ) -> Result<Reply, CommandError> {
        let known = [
            "cn", "san", "type", "key", "days", "why", "dept", "cost", "project", "notes", "ca",
            "override", "org", "ou", "l", "st", "c", "email", "export",
        ];
        if let Some(unknown) = fields.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(CommandError::Invalid(vec![ValueError::new(
                "request",
                format!(
                    "`{unknown}` is not a request field; use {}",
                    known.join(", ")
                ),
            )]));
        }
        let get = |key: &str| fields.get(key).cloned();
        let form = RequestForm {
            common_name: get("cn").unwrap_or_default(),
            subject_alternative_names: get("san").into_iter().collect(),
            organization: get("org"),
            organizational_unit: get("ou"),
            locality: get("l"),
            state_province: get("st"),
            country: get("c"),
            email_address: get("email"),
            certificate_type: get("type").unwrap_or_else(|| "web_server".to_owned()),
            key_algorithm: get("key"),
            validity_days: get("days"),
            csr_pem: None,
            justification: get("why").unwrap_or_default(),
            department: get("dept"),
            cost_center: get("cost"),
            project_code: get("project"),
            notes: get("notes"),
            answers: None,
            requested_ca_type: get("ca"),
            override_reason: get("override"),
            export: get("export"),
        };
        let submitted = self.commands.submit_request(ctx, form).await?;
        Ok(Reply::text(format!(
            "{} You will hear back here.",
            submitted.confirmation()
        )))
    }

    async fn status(
        &self,
        ctx: &CommandContext,
        actor: &Actor,
        number: &RequestNumber,
    ) -> Result<Reply, CommandError> {
        let view = self.commands.request_seen_by(ctx, actor, number).await?;
        let mut fields = vec![
            ("Status".to_owned(), view.status.to_string()),
            ("Requester".to_owned(), view.requester.email.to_string()),
        ];
        for (actor, part) in view.approval_lines() {
            fields.push(("Approval".to_owned(), format!("{} — {part}", actor.email)));
        }
        if let Some((id, status)) = &view.at_ca
            && view.certificate.is_none()
        {
            let waiting = if id.starts_with("arn:aws:acm:") && status == "pending" {
                " — AWS Certificate Manager waits for the DNS validation records (they were \
                 e-mailed to the requester)"
            } else {
                ""
            };
            fields.push(("At the CA".to_owned(), format!("{id}: {status}{waiting}")));
            for record in &view.validation_records {
                let created = record.created_in.as_ref().map_or_else(String::new, |zone| {
                    format!(" (created in Route 53 zone {zone})")
                });
                fields.push((
                    format!("DNS record for {}{created}", record.domain),
                    format!("`{} {} {}`", record.name, record.record_type, record.value),
                ));
            }
        }
        if let Some(failure) = &view.failure {
            fields.push(("Why it failed".to_owned(), failure.clone()));
        }
        if let Some(certificate) = &view.certificate {
            fields.push((
                "Certificate".to_owned(),
                format!(
                    "{} — {}, valid until {}",
                    certificate.serial,
                    certificate.status,
                    certificate.valid_to.format("%Y-%m-%d")
                ),
            ));
        }
        Ok(Reply::text(format!("*{number}*")).with(Block::Fields(fields)))
    }

    /// The person's own page (Slack's App Home): their open requests, their certificates
    /// with expiry, and, for approvers, what waits for a decision, with its buttons.
    pub async fn home(&self, ctx: &CommandContext) -> Result<Reply, CommandError> {
        let actor = self.commands.actor(ctx).await?;
        let pool = self.commands.pool();
        let open = sqlx::query(
            "SELECT request_number, common_name, status FROM certificate_requests \
              WHERE user_id = $1 AND deleted_at IS NULL \
                AND status IN ('draft', 'pending_approval', 'approved', 'in_progress') \
              ORDER BY created_at DESC LIMIT 20",
        )
        .bind(actor.user_id)
        .fetch_all(pool)
        .await?;
        let mut reply = Reply::text(format!("*Your requests* ({} open)", open.len()));
        if open.is_empty() {
            reply = reply.with(Block::Text(
                "Nothing open. Start one with `/cert request`.".to_owned(),
            ));
        }
        for row in &open {
            let number: String = row.try_get("request_number")?;
            let cn: String = row.try_get("common_name")?;
            let status: String = row.try_get("status")?;
            reply = reply.with(Block::Text(format!("• *{number}* `{cn}` {status}")));
        }
        let certificates = sqlx::query(
            "SELECT serial_number, common_name, valid_to FROM certificates \
              WHERE user_id = $1 AND status = 'active' AND deleted_at IS NULL \
              ORDER BY valid_to LIMIT 20",
        )
        .bind(actor.user_id)
        .fetch_all(pool)
        .await?;
        reply = reply.with(Block::Text(format!(
            "*Your certificates* ({} active)",
            certificates.len()
        )));
        if certificates.is_empty() {
            reply = reply.with(Block::Text("None yet.".to_owned()));
        }
        let now = Utc::now();
        for row in &certificates {
            let serial: String = row.try_get("serial_number")?;
            let cn: String = row.try_get("common_name")?;
            let valid_to: DateTime<Utc> = row.try_get("valid_to")?;
            let days = (valid_to - now).num_days().max(0);
            reply = reply.with(Block::Text(format!(
                "• `{cn}` (serial `{serial}`) expires {} — in {days} days",
                valid_to.format("%Y-%m-%d")
            )));
        }
        if actor.role.may_approve() {
            let waiting = self.approvals().await?;
            reply.blocks.extend(waiting.blocks);
        }
        Ok(reply)
    }

    async fn list(&self, actor: &Actor) -> Result<Reply, CommandError> {
        let rows = sqlx::query(
            "SELECT cr.request_number, cr.common_name, cr.status, c.serial_number, c.valid_to \
               FROM certificate_requests cr \
               LEFT JOIN certificates c ON c.request_id = cr.id AND c.deleted_at IS NULL \
              WHERE cr.user_id = $1 AND cr.deleted_at IS NULL \
              ORDER BY cr.created_at DESC LIMIT 20",
        )
        .bind(actor.user_id)
        .fetch_all(self.commands.pool())
        .await?;
        if rows.is_empty() {
            return Ok(Reply::text(
                "You have no requests yet. Start one with `/cert request`.",
            ));
        }
        let mut lines = Vec::new();
        for row in rows {
            let number: String = row.try_get("request_number")?;
            let cn: String = row.try_get("common_name")?;
            let status: String = row.try_get("status")?;
            let serial: Option<String> = row.try_get("serial_number")?;
            let valid_to: Option<DateTime<Utc>> = row.try_get("valid_to")?;
            let certificate = match (serial, valid_to) {
                (Some(serial), Some(to)) => {
                    format!(
                        " — certificate {serial}, valid to {}",
                        to.format("%Y-%m-%d")
                    )
                }
                _ => String::new(),
            };
            lines.push(format!("• *{number}* `{cn}` {status}{certificate}"));
        }
        Ok(Reply::text(lines.join("\n")))
    }

    async fn approvals(&self) -> Result<Reply, CommandError> {
        let rows = sqlx::query(
            // Every request waiting for approval: any approver may decide, asked or not.
            "SELECT cr.request_number, cr.common_name, cr.certificate_type, \
                    u.email AS requester_email, \
                    floor(extract(epoch FROM now() - cr.submitted_at) / 3600)::float8 AS hours \
               FROM certificate_requests cr JOIN users u ON u.id = cr.user_id \
              WHERE cr.status = 'pending_approval' AND cr.deleted_at IS NULL \
              ORDER BY cr.submitted_at LIMIT 20",
        )
        .fetch_all(self.commands.pool())
        .await?;
        if rows.is_empty() {
            return Ok(Reply::text("Nothing is waiting for a decision."));
        }
        let mut reply = Reply::text(format!(
            "*{} request(s) waiting for a decision*",
            rows.len()
        ));
        for row in rows {
            let number: String = row.try_get("request_number")?;
            let cn: String = row.try_get("common_name")?;
            let kind: String = row.try_get("certificate_type")?;
            let requester: String = row.try_get("requester_email")?;
            let hours: Option<f64> = row.try_get("hours")?;
            reply = reply
                .with(Block::Fields(vec![
                    ("Request".to_owned(), number.clone()),
                    ("Common name".to_owned(), cn),
                    ("Type".to_owned(), kind),
                    ("Requester".to_owned(), requester),
                    (
                        "Waiting".to_owned(),
                        format!("{} h", hours.unwrap_or_default()),
                    ),
                ]))
                .with(Block::Decisions {
                    request_number: number,
                });
        }
        Ok(reply)
    }

    async fn audit(
        &self,
        query: Option<String>,
        params: BTreeMap<String, String>,
    ) -> Result<Reply, CommandError> {
        let Some(name) = query else {
            let list: Vec<String> = catalog::catalog()
                .iter()
                .map(|q| format!("• `{}` — {}", q.name, q.purpose))
                .collect();
            return Ok(Reply::text(format!("*Named queries*\n{}", list.join("\n"))));
        };
        let query = catalog::find(&name).map_err(|e| CommandError::NotFound(e.to_string()))?;
        let result = query
            .run(self.commands.pool(), &params)
            .await
            .map_err(|e| match e {
                catalog::QueryError::Database(e) => CommandError::Internal(e.into()),
                other => CommandError::Invalid(vec![ValueError::new("query", other.to_string())]),
            })?;
        let total = result.rows.len();
        let mut shown = result.clone();
        shown.rows.truncate(MAX_INLINE_ROWS);
        let mut reply = Reply::text(format!("*{name}* — {total} row(s)"))
            .with(Block::Code(shown.render(catalog::Format::Table)));
        if total > MAX_INLINE_ROWS {
            reply = reply.with(Block::Text(format!(
                "Showing {MAX_INLINE_ROWS} of {total} rows; run `cert-assistant query {name} \
                 --format csv` for all of them."
            )));
        }
        Ok(reply)
    }
}

fn describe(number: &RequestNumber, outcome: &Outcome) -> String {
    match outcome {
        Outcome::Approved => format!("{number} is approved."),
        Outcome::Rejected => format!("{number} is rejected."),
        Outcome::Recorded {
            approvals,
            required,
        } => format!("Your approval of {number} is recorded ({approvals} of {required})."),
        Outcome::Delegated { to } => format!("{number} is delegated to {to}."),
    }
}

fn error_reply(error: &CommandError) -> Reply {
    if let CommandError::Internal(cause) = error {
        tracing::error!(error = format!("{cause:#}"), "chat command failed");
    }
    Reply {
        visibility: Visibility::Ephemeral,
        blocks: vec![Block::Text(format!(":warning: {error}"))],
    }
}

/// The questionnaire from `key=value` words (short names such as `public=yes` or the column
/// names); unanswered questions other than exposure and browser trust take the common answer.
pub fn answers_from(fields: &BTreeMap<String, String>) -> Result<Answers, CommandError> {
    const SHORT: [(&str, &str, Option<&str>); 10] = [
        ("service_type", "service", Some("web_server")),
        ("publicly_accessible", "public", None),
        ("expected_lifespan", "lifespan", Some("90_to_365")),
        ("browser_trust_required", "browser", None),
        ("environment_type", "env", Some("production")),
        ("certificate_count", "count", Some("single")),
        ("domain_type", "domain", Some("single")),
        ("criticality_level", "criticality", Some("medium")),
        ("compliance_requirements", "compliance", Some("")),
        ("renewal_preference", "renewal", Some("notification")),
    ];
    Answers::parse_with(|question| {
        let (_, short, default) = SHORT.iter().find(|(q, _, _)| *q == question)?;
        fields
            .get(*short)
            .or_else(|| fields.get(question))
            .cloned()
            .or_else(|| default.map(str::to_owned))
    })
    .map_err(|errors| {
        CommandError::Invalid(
            errors
                .into_iter()
                .map(|e| {
                    let short = SHORT
                        .iter()
                        .find(|(q, _, _)| *q == e.field)
                        .map_or(e.field, |(_, short, _)| short);
                    ValueError::new(e.field, format!("{short}=…: {}", e.message))
                })
                .collect(),
        )
    })
}

/// The recommendation as a reply.
pub fn recommendation_reply(r: &Recommendation) -> Reply {
    let ca = match r.ca_type {
        crate::domain::values::CaType::Public => "a *public* CA (AWS Certificate Manager)",
        crate::domain::values::CaType::Internal => "the *internal* CA",
    };
    let mut reply = Reply::text(format!(
        "Recommended: {ca} — confidence {}.\n{}",
        r.confidence, r.reason
    ));
    for note in &r.notes {
        reply = reply.with(Block::Text(format!("_Note:_ {note}")));
    }
    reply
}

fn describe_revocation(certificate: &str, revocation: Revocation) -> String {
    match revocation {
        Revocation::Revoked { reason, .. } => {
            format!("Certificate {certificate} is revoked ({reason}).")
        }
        Revocation::AwaitingApproval { reason, .. } => format!(
            "Revoking certificate {certificate} for {reason} needs an approver's consent; the \
             approvers are asked, and the certificate stays valid until one approves."
        ),
        Revocation::Rejected { reason, .. } => format!(
            "The revocation of certificate {certificate} ({reason}) is rejected; the \
             certificate stays valid."
        ),
    }
}
