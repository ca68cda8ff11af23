//! Who a Discord user is. Discord does not tell bots e-mail addresses, so a person links
//! their account to their work e-mail once: `/cert link you@example.com` mails a one-time
//! code to that address, `/cert link you@example.com CODE` proves they read it. One address
//! is one identity on every platform, so a Discord approver and a Slack requester see the
//! same story. Codes have eight digits, live 15 minutes and are kept only as hashes. An
//! address takes at most [`MAX_CODES_PER_HOUR`] codes and [`MAX_FAILURES_PER_HOUR`] wrong
//! answers an hour, counted across codes and Discord accounts and one at a time per address
//! (parallel guesses wait for each other), then it is locked until the hour has passed.
//! Every link and every wrong code is in the audit trail.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool, Row};

use crate::adapters::mail::{Mail, Mailer};
use crate::commands::{Attempt, CommandContext, CommandError, Commands};
use crate::domain::actor::{Platform, user_id_for};
use crate::domain::values::Email;

/// `chat_identities.platform` and `workspace_id` of Discord users (their ids are global).
pub const PLATFORM: &str = "discord";
const CODE_TTL_MINUTES: i64 = 15;
/// Codes mailed to one address in an hour.
pub const MAX_CODES_PER_HOUR: i64 = 3;
/// Wrong codes for one address in an hour before it is locked for the rest of the hour.
pub const MAX_FAILURES_PER_HOUR: i64 = 5;

/// The linked e-mail of a Discord user, if any.
pub async fn linked(pool: &PgPool, user_id: &str) -> anyhow::Result<Option<Email>> {
    let email: Option<String> = sqlx::query_scalar(
        "SELECT email FROM chat_identities WHERE platform = $1 AND workspace_id = $1 AND user_id = $2",
    )
    .bind(PLATFORM)
    .bind(user_id)
    .fetch_optional(pool)
    .await?;
    Ok(email.and_then(|e| Email::parse(&e).ok()))
}

fn code_hash(user_id: &str, email: &Email, code: &str) -> Vec<u8> {
    Sha256::digest(format!(
        "{PLATFORM}\0{user_id}\0{}\0{code}",
        email.normalized()
    ))
    .to_vec()
}

/// Takes the per-address lock for the rest of `tx` (attempts for one address run one at a
/// time) and says until when the address is locked, if it is: `counted` outcomes in the
/// last hour reached `max`.
async fn locked_until(
    tx: &mut PgConnection,
    email: &Email,
    counted: &str,
    max: i64,
) -> Result<Option<DateTime<Utc>>, String> {
    let target = email.identity();
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("chat-link:{PLATFORM}:{target}"))
        .execute(&mut *tx)
        .await
        .map_err(internal)?;
    // Only the last hour counts; the audit trail keeps every attempt, so older rows go.
    sqlx::query(
        "DELETE FROM chat_link_attempts \
          WHERE platform = $1 AND target = $2 AND at < now() - interval '1 day'",
    )
    .bind(PLATFORM)
    .bind(&target)
    .execute(&mut *tx)
    .await
    .map_err(internal)?;
    let (count, oldest): (i64, Option<DateTime<Utc>>) = sqlx::query_as(
        "SELECT count(*), min(at) FROM chat_link_attempts \
          WHERE platform = $1 AND target = $2 AND outcome = $3 AND at > now() - interval '1 hour'",
    )
    .bind(PLATFORM)
    .bind(&target)
    .bind(counted)
    .fetch_one(&mut *tx)
    .await
    .map_err(internal)?;
    Ok((count >= max).then(|| oldest.unwrap_or_else(Utc::now) + chrono::Duration::hours(1)))
}

async fn record(
    tx: &mut PgConnection,
    user_id: &str,
    email: &Email,
    outcome: &str,
) -> Result<(), String> {
    sqlx::query(
        "INSERT INTO chat_link_attempts (platform, target, user_id, outcome) VALUES ($1, $2, $3, $4)",
    )
    .bind(PLATFORM)
    .bind(email.identity())
    .bind(user_id)
    .bind(outcome)
    .execute(&mut *tx)
    .await
    .map_err(internal)?;
    Ok(())
}

fn locked_message(email: &Email, until: DateTime<Utc>) -> String {
    format!(
        "{email} is locked for linking until {} UTC: too many codes were asked for or wrong \
         codes given in the last hour. If that was not you, tell an admin.",
        until.format("%H:%M")
    )
}

/// Puts a refused link into the audit trail (who tried from which account, for which
/// address); a failure to record is logged, never shown.
async fn audit(commands: &Commands, user_id: &str, email: &Email, reason: String) {
    let ctx = CommandContext::new(email.clone(), Platform::Discord);
    let attempt = Attempt {
        action: "link_chat_account",
        resource_type: "user",
        resource_id: Some(user_id_for(email)),
        resource_identifier: Some(email.as_ref()),
    };
    let refused: Result<(), CommandError> = Err(CommandError::Refused(format!(
        "Discord account {user_id}: {reason}"
    )));
    let _ = commands.audit_refusal(&ctx, None, attempt, refused).await;
}

/// Mails a one-time code to `email` for `user_id`; the answer says what to do next.
pub async fn start(
    commands: &Commands,
    mailer: &Arc<dyn Mailer>,
    user_id: &str,
    email: &Email,
) -> Result<String, String> {
    let pool = commands.pool();
    let recent: Option<bool> = sqlx::query_scalar(
        "SELECT created_at > now() - interval '1 minute' FROM chat_link_codes \
          WHERE platform = $1 AND user_id = $2",
    )
    .bind(PLATFORM)
    .bind(user_id)
    .fetch_optional(pool)
    .await
    .map_err(internal)?;
    if recent == Some(true) {
        return Err("A code was sent less than a minute ago; check your mail.".to_owned());
    }
    let mut tx = pool.begin().await.map_err(internal)?;
    let locked = match locked_until(&mut tx, email, "wrong_code", MAX_FAILURES_PER_HOUR).await? {
        Some(until) => Some(until),
        None => locked_until(&mut tx, email, "code_sent", MAX_CODES_PER_HOUR).await?,
    };
    if let Some(until) = locked {
        tx.rollback().await.map_err(internal)?;
        audit(
            commands,
            user_id,
            email,
            "asked for a code while locked".to_owned(),
        )
        .await;
        return Err(locked_message(email, until));
    }
    let mut bytes = [0u8; 4];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| "no randomness".to_owned())?;
    let code = format!("{:08}", u32::from_le_bytes(bytes) % 100_000_000);
    sqlx::query(
        "INSERT INTO chat_link_codes (platform, user_id, email, code_hash, expires_at) \
         VALUES ($1, $2, $3, $4, now() + make_interval(mins => $5)) \
         ON CONFLICT (platform, user_id) DO UPDATE SET email = EXCLUDED.email, \
             code_hash = EXCLUDED.code_hash, expires_at = EXCLUDED.expires_at, \
             created_at = now()",
    )
    .bind(PLATFORM)
    .bind(user_id)
    .bind(email.to_string())
    .bind(code_hash(user_id, email, &code))
    .bind(i32::try_from(CODE_TTL_MINUTES).unwrap_or(15))
    .execute(&mut *tx)
    .await
    .map_err(internal)?;
    record(&mut tx, user_id, email, "code_sent").await?;
    tx.commit().await.map_err(internal)?;
    let from = crate::db::setting(pool, "notification.email.from")
        .await
        .map_err(internal)?
        .unwrap_or_else(|| "cert-assistant@example.com".to_owned());
    let text = format!(
        "Your code is {code}.\n\nIt links a Discord account to {email} in cert-assistant and \
         works for {CODE_TTL_MINUTES} minutes: type /cert link {email} {code} in Discord.\n\n\
         If you did not ask for it, ignore this mail; nothing is linked without the code. \
         If such mails keep coming, tell an admin.\n"
    );
    let mail = Mail {
        from,
        to: email.to_string(),
        subject: "Your cert-assistant link code".to_owned(),
        html: format!("<p>{}</p>", text.replace('\n', "<br>")),
        text,
    };
    mailer.send(&mail).await.map_err(|e| {
        tracing::warn!(error = %e, "could not send a link code");
        "The code could not be mailed; try again later.".to_owned()
    })?;
    tracing::info!(discord_user = user_id, "link code sent");
    Ok(format!(
        "A code is on its way to {email}. Type `/cert link {email} CODE` within \
         {CODE_TTL_MINUTES} minutes."
    ))
}

/// Checks the code and links the account. Attempts for one address run one at a time, so
/// parallel guesses count one by one.
pub async fn finish(
    commands: &Commands,
    user_id: &str,
    email: &Email,
    code: &str,
    display_name: Option<&str>,
) -> Result<String, String> {
    let pool = commands.pool();
    let mut tx = pool.begin().await.map_err(internal)?;
    if let Some(until) = locked_until(&mut tx, email, "wrong_code", MAX_FAILURES_PER_HOUR).await? {
        tx.rollback().await.map_err(internal)?;
        audit(
            commands,
            user_id,
            email,
            "gave a code while locked".to_owned(),
        )
        .await;
        return Err(locked_message(email, until));
    }
    let row = sqlx::query(
        "SELECT email, code_hash, expires_at > now() AS fresh FROM chat_link_codes \
          WHERE platform = $1 AND user_id = $2 FOR UPDATE",
    )
    .bind(PLATFORM)
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(internal)?;
    let Some(row) = row else {
        tx.rollback().await.map_err(internal)?;
        return Err(format!("Ask for a code first: `/cert link {email}`."));
    };
    let stored_email: String = row.try_get("email").map_err(internal)?;
    let stored: Vec<u8> = row.try_get("code_hash").map_err(internal)?;
    let fresh: bool = row.try_get("fresh").map_err(internal)?;
    if !fresh {
        tx.rollback().await.map_err(internal)?;
        return Err(format!(
            "That code is no longer valid; ask for a new one with `/cert link {email}`."
        ));
    }
    let same_address = Email::parse(&stored_email).is_ok_and(|e| e.same_person(email));
    let matches = same_address
        && aws_lc_rs::constant_time::verify_slices_are_equal(
            &stored,
            &code_hash(user_id, email, code.trim()),
        )
        .is_ok();
    if !matches {
        sqlx::query(
            "UPDATE chat_link_codes SET attempts = attempts + 1 WHERE platform = $1 AND user_id = $2",
        )
        .bind(PLATFORM)
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .map_err(internal)?;
        record(&mut tx, user_id, email, "wrong_code").await?;
        tx.commit().await.map_err(internal)?;
        audit(commands, user_id, email, "gave a wrong code".to_owned()).await;
        return Err("That code is not right.".to_owned());
    }
    crate::chat::identities::remember(
        &mut *tx,
        PLATFORM,
        PLATFORM,
        user_id,
        email.as_ref(),
        display_name,
    )
    .await
    .map_err(internal)?;
    sqlx::query("DELETE FROM chat_link_codes WHERE platform = $1 AND user_id = $2")
        .bind(PLATFORM)
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .map_err(internal)?;
    record(&mut tx, user_id, email, "linked").await?;
    tx.commit().await.map_err(internal)?;
    tracing::info!(discord_user = user_id, "discord account linked");
    let mut ctx = CommandContext::new(email.clone(), Platform::Discord);
    ctx.display_name = display_name.map(str::to_owned);
    if let Err(error) = commands
        .link_chat_account(&ctx, Platform::Discord, user_id)
        .await
    {
        tracing::error!(%error, "a discord link is not in the audit trail");
    }
    Ok(format!(
        "Linked: this Discord account is {email} in cert-assistant."
    ))
}

fn internal(error: impl std::fmt::Display) -> String {
    tracing::error!(%error, "discord identity");
    "Something went wrong on our side; the details are in the service log.".to_owned()
}
