//! Who a Discord user is. Discord does not tell bots e-mail addresses, so a person links
//! their account to their work e-mail once: `/cert link you@example.com` mails a one-time
//! code to that address, `/cert link you@example.com CODE` proves they read it. One address
//! is one identity on every platform, so a Discord approver and a Slack requester see the
//! same story. Codes live 15 minutes, are kept only as hashes, allow five tries and one new
//! code a minute.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row};

use crate::adapters::mail::{Mail, Mailer};
use crate::domain::values::Email;

/// `chat_identities.platform` and `workspace_id` of Discord users (their ids are global).
pub const PLATFORM: &str = "discord";
const CODE_TTL_MINUTES: i64 = 15;
const MAX_TRIES: i32 = 5;

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

/// Mails a one-time code to `email` for `user_id`; the answer says what to do next.
pub async fn start(
    pool: &PgPool,
    mailer: &Arc<dyn Mailer>,
    user_id: &str,
    email: &Email,
) -> Result<String, String> {
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
    let mut bytes = [0u8; 4];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| "no randomness".to_owned())?;
    let code = format!("{:06}", u32::from_le_bytes(bytes) % 1_000_000);
    sqlx::query(
        "INSERT INTO chat_link_codes (platform, user_id, email, code_hash, expires_at) \
         VALUES ($1, $2, $3, $4, now() + make_interval(mins => $5)) \
         ON CONFLICT (platform, user_id) DO UPDATE SET email = EXCLUDED.email, \
             code_hash = EXCLUDED.code_hash, expires_at = EXCLUDED.expires_at, attempts = 0, \
             created_at = now()",
    )
    .bind(PLATFORM)
    .bind(user_id)
    .bind(email.to_string())
    .bind(code_hash(user_id, email, &code))
    .bind(i32::try_from(CODE_TTL_MINUTES).unwrap_or(15))
    .execute(pool)
    .await
    .map_err(internal)?;
    let from = crate::db::setting(pool, "notification.email.from")
        .await
        .map_err(internal)?
        .unwrap_or_else(|| "cert-assistant@example.com".to_owned());
    let text = format!(
        "Your code is {code}.\n\nIt links a Discord account to {email} in cert-assistant and \
         works for {CODE_TTL_MINUTES} minutes: type /cert link {email} {code} in Discord.\n\n\
         If you did not ask for it, ignore this mail; nothing is linked without the code.\n"
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

/// Checks the code and links the account.
pub async fn finish(
    pool: &PgPool,
    user_id: &str,
    email: &Email,
    code: &str,
    display_name: Option<&str>,
) -> Result<String, String> {
    let row = sqlx::query(
        "SELECT email, code_hash, expires_at > now() AS fresh, attempts FROM chat_link_codes \
          WHERE platform = $1 AND user_id = $2",
    )
    .bind(PLATFORM)
    .bind(user_id)
    .fetch_optional(pool)
    .await
    .map_err(internal)?;
    let Some(row) = row else {
        return Err(format!("Ask for a code first: `/cert link {email}`."));
    };
    let stored_email: String = row.try_get("email").map_err(internal)?;
    let stored: Vec<u8> = row.try_get("code_hash").map_err(internal)?;
    let fresh: bool = row.try_get("fresh").map_err(internal)?;
    let attempts: i32 = row.try_get("attempts").map_err(internal)?;
    if !fresh || attempts >= MAX_TRIES {
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
        .execute(pool)
        .await
        .map_err(internal)?;
        return Err("That code is not right.".to_owned());
    }
    let mut tx = pool.begin().await.map_err(internal)?;
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
    tx.commit().await.map_err(internal)?;
    tracing::info!(discord_user = user_id, "discord account linked");
    Ok(format!(
        "Linked: this Discord account is {email} in cert-assistant."
    ))
}

fn internal(error: impl std::fmt::Display) -> String {
    tracing::error!(%error, "discord identity");
    "Something went wrong on our side; the details are in the service log.".to_owned()
}
