//! What a person may mean while they type a request number or a serial (Discord's
//! autocomplete): their own requests and certificates and, for approvers, what waits for a
//! decision. At most 25, newest or soonest first, matching what was typed anywhere in the
//! number, serial or common name; read from the read model, by the person's own rows.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::service::ChatService;
use crate::commands::{CommandContext, CommandError};

/// What an option suggests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suggest {
    /// The person's own requests (and, for approvers, those waiting for a decision).
    Request,
    /// What waits for the person's decision (approvers).
    Decision,
    /// The person's own active certificates.
    Certificate,
}

/// How many a platform shows (Discord's limit).
const MOST: i64 = 25;

/// `typed` as a `LIKE` pattern matching it anywhere, its wildcards taken literally.
fn anywhere(typed: &str) -> String {
    let typed: String = typed.trim().chars().take(100).collect();
    let escaped = typed
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// A suggestion's label, cut to what a platform shows (100 characters).
fn label(parts: &[&str]) -> String {
    parts.join(" · ").chars().take(100).collect()
}

impl ChatService {
    /// Up to 25 (label, value) suggestions of `kind` for the person in `ctx`, given `typed`.
    pub async fn suggestions(
        &self,
        ctx: &CommandContext,
        kind: Suggest,
        typed: &str,
    ) -> Result<Vec<(String, String)>, CommandError> {
        let actor = self.commands().actor(ctx).await?;
        let approver = actor.role.may_approve();
        let pattern = anywhere(typed);
        let pool = self.commands().pool();
        match kind {
            Suggest::Request | Suggest::Decision => {
                let rows = sqlx::query(
                    "SELECT request_number, common_name, status FROM certificate_requests \
                      WHERE deleted_at IS NULL \
                        AND (($4 AND user_id = $1) OR ($3 AND status = 'pending_approval')) \
                        AND (request_number ILIKE $2 OR common_name ILIKE $2) \
                      ORDER BY created_at DESC LIMIT $5",
                )
                .bind(actor.user_id)
                .bind(&pattern)
                .bind(approver)
                .bind(kind == Suggest::Request)
                .bind(MOST)
                .fetch_all(pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        let number: String = row.try_get("request_number")?;
                        let cn: String = row.try_get("common_name")?;
                        let status: String = row.try_get("status")?;
                        Ok((label(&[&number, &cn, &status.replace('_', " ")]), number))
                    })
                    .collect()
            }
            Suggest::Certificate => {
                let rows = sqlx::query(
                    "SELECT serial_number, common_name, valid_to FROM certificates \
                      WHERE user_id = $1 AND status = 'active' AND deleted_at IS NULL \
                        AND (serial_number ILIKE $2 OR common_name ILIKE $2) \
                      ORDER BY valid_to LIMIT $3",
                )
                .bind(actor.user_id)
                .bind(&pattern)
                .bind(MOST)
                .fetch_all(pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        let serial: String = row.try_get("serial_number")?;
                        let cn: String = row.try_get("common_name")?;
                        let valid_to: DateTime<Utc> = row.try_get("valid_to")?;
                        let until = format!("until {}", valid_to.format("%Y-%m-%d"));
                        // Discord's choice values hold at most 100 characters.
                        let value: String = serial.chars().take(100).collect();
                        Ok((label(&[&cn, &serial, &until]), value))
                    })
                    .collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_was_typed_matches_literally_anywhere() {
        assert_eq!(anywhere(" 0a_1 "), "%0a\\_1%");
        assert_eq!(anywhere("100%"), "%100\\%%");
        assert_eq!(anywhere(&"x".repeat(500)).len(), 102);
        assert!(label(&[&"n".repeat(80), &"c".repeat(80)]).chars().count() <= 100);
    }
}
