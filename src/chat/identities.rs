//! Who a chat account is: `chat_identities` maps a platform's user (in its workspace, team or
//! tenant) to the e-mail that identifies the person everywhere. Every platform reads and
//! writes it through here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::{PgExecutor, PgPool};

/// How long a looked-up e-mail is trusted before the platform is asked again.
pub const FRESH_FOR_HOURS: i32 = 24;

/// The account (workspace id, user id) most recently seen with `email` on `platform`.
pub async fn account_of(
    pool: &PgPool,
    platform: &str,
    email: &str,
) -> sqlx::Result<Option<(String, String)>> {
    sqlx::query_as(
        "SELECT workspace_id, user_id FROM chat_identities \
          WHERE platform = $1 AND lower(email) = lower($2) \
          ORDER BY refreshed_at DESC LIMIT 1",
    )
    .bind(platform)
    .bind(email)
    .fetch_optional(pool)
    .await
}

/// Remembers that `user_id` is `email` (and, when known, `display_name`) as of now; the
/// display name now stored (the new one, or the one known before when none came).
pub async fn remember<'e>(
    executor: impl PgExecutor<'e>,
    platform: &str,
    workspace_id: &str,
    user_id: &str,
    email: &str,
    display_name: Option<&str>,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "INSERT INTO chat_identities (platform, workspace_id, user_id, email, display_name, \
             refreshed_at) \
         VALUES ($1, $2, $3, $4, $5, now()) \
         ON CONFLICT (platform, workspace_id, user_id) DO UPDATE \
            SET email = EXCLUDED.email, \
                display_name = coalesce(EXCLUDED.display_name, chat_identities.display_name), \
                refreshed_at = now() \
         RETURNING display_name",
    )
    .bind(platform)
    .bind(workspace_id)
    .bind(user_id)
    .bind(email)
    .bind(display_name.and_then(crate::domain::text::display_name))
    .fetch_one(executor)
    .await
}

/// Most accounts [`Remembered`] keeps; past that it starts again from empty.
const REMEMBERED_AT_MOST: usize = 10_000;

/// (platform, workspace id, user id).
type Account = (String, String, String);
fn account(platform: &str, workspace_id: &str, user_id: &str) -> Account {
    (
        platform.to_owned(),
        workspace_id.to_owned(),
        user_id.to_owned(),
    )
}

/// (e-mail, display name, trusted until).
type Known = (String, Option<String>, Instant);

/// The e-mail and display name remembered for a chat account, if looked up within
/// [`FRESH_FOR_HOURS`], and [`remember`], with this process's memory in front: an account
/// looked up once is answered without a statement until its row would stop being fresh, and
/// no longer. The rows are themselves a copy of the platform's directory trusted for
/// [`FRESH_FOR_HOURS`]; the memory is trusted no longer (a change another replica remembers
/// meanwhile is seen here when the memory expires, within the same bound). Who may do what
/// is not in it: roles come from the command service's directory, which follows every
/// change to a user. One per service (not global: each test's service has its own database).
#[derive(Debug, Clone, Default)]
pub struct Remembered {
    accounts: Arc<Mutex<HashMap<Account, Known>>>,
}

impl Remembered {
    /// The account's e-mail and display name if its row is fresh, from memory while it is.
    pub async fn fresh(
        &self,
        pool: &PgPool,
        platform: &str,
        workspace_id: &str,
        user_id: &str,
    ) -> sqlx::Result<Option<(String, Option<String>)>> {
        let key = account(platform, workspace_id, user_id);
        if let Some((email, name, until)) = self.lock().get(&key)
            && Instant::now() < *until
        {
            return Ok(Some((email.clone(), name.clone())));
        }
        let row: Option<(String, Option<String>, f64)> = sqlx::query_as(
            "SELECT email, display_name, \
                    extract(epoch FROM refreshed_at + make_interval(hours => $4) - now())::float8 \
               FROM chat_identities \
              WHERE platform = $1 AND workspace_id = $2 AND user_id = $3 \
                AND refreshed_at > now() - make_interval(hours => $4)",
        )
        .bind(platform)
        .bind(workspace_id)
        .bind(user_id)
        .bind(FRESH_FOR_HOURS)
        .fetch_optional(pool)
        .await?;
        Ok(row.map(|(email, name, seconds_left)| {
            let until = Instant::now() + Duration::from_secs_f64(seconds_left.max(0.0));
            self.keep(key, &email, name.as_deref(), until);
            (email, name)
        }))
    }

    /// [`remember`], and keeps it in memory too.
    pub async fn remember<'e>(
        &self,
        executor: impl PgExecutor<'e>,
        platform: &str,
        workspace_id: &str,
        user_id: &str,
        email: &str,
        display_name: Option<&str>,
    ) -> sqlx::Result<()> {
        let name = remember(
            executor,
            platform,
            workspace_id,
            user_id,
            email,
            display_name,
        )
        .await?;
        let key = account(platform, workspace_id, user_id);
        let until =
            Instant::now() + Duration::from_secs(u64::from(FRESH_FOR_HOURS.unsigned_abs()) * 3600);
        self.keep(key, email, name.as_deref(), until);
        Ok(())
    }

    fn keep(&self, key: Account, email: &str, name: Option<&str>, until: Instant) {
        let mut accounts = self.lock();
        if accounts.len() >= REMEMBERED_AT_MOST && !accounts.contains_key(&key) {
            accounts.clear();
        }
        accounts.insert(key, (email.to_owned(), name.map(str::to_owned), until));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Account, Known>> {
        self.accounts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
