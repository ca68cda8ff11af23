//! Who is acting: users are registered on first contact and keep one identity per e-mail.

use chrono::Utc;
use cqrs_es::AggregateError;

use super::{Attempt, CommandContext, CommandError, Commands};
use crate::domain::actor::{Actor, Platform, Role, user_id_for};
use crate::domain::user::{UserCommand, UserError};
use crate::domain::values::Email;

impl Commands {
    /// The acting user with their current role, registering them on first contact (as an
    /// admin if configured as one, otherwise as a plain user).
    pub async fn actor(&self, ctx: &CommandContext) -> Result<Actor, CommandError> {
        let id = user_id_for(&ctx.email);
        if let Some(actor) = self.inner.directory.remembered_person(id) {
            return Ok(actor);
        }
        if let Some(actor) = self.user(id).await? {
            return Ok(actor);
        }
        let role = if self.inner.admins.contains(&ctx.email.identity()) {
            Role::Admin
        } else {
            Role::User
        };
        let register = || UserCommand::Register {
            email: ctx.email.clone(),
            display_name: ctx
                .display_name
                .as_deref()
                .and_then(crate::domain::text::display_name),
            role,
            platform: ctx.platform,
            at: Utc::now(),
        };
        match self
            .inner
            .users
            .execute(id, &ctx.metadata(None), register)
            .await
        {
            // Another request registered them at the same moment: fine.
            Ok(()) | Err(AggregateError::UserError(UserError::AlreadyRegistered(_))) => {}
            Err(e) => return Err(CommandError::from_aggregate("the user", e)),
        }
        let actor = self
            .user(id)
            .await?
            .ok_or_else(|| CommandError::internal(anyhow::anyhow!("a registered user vanished")))?;
        self.inner.directory.changed_person(actor.clone()).await;
        Ok(actor)
    }

    /// Records that `account` on `platform` proved it is `ctx`'s person (registering them
    /// first if needed), for the audit trail.
    pub async fn link_chat_account(
        &self,
        ctx: &CommandContext,
        platform: Platform,
        account: &str,
    ) -> Result<(), CommandError> {
        let actor = self.actor(ctx).await?;
        self.inner
            .users
            .execute(actor.user_id, &ctx.metadata(Some(&actor)), || {
                UserCommand::LinkChatAccount {
                    platform,
                    account: account.to_owned(),
                    at: Utc::now(),
                }
            })
            .await
            .map_err(|e| CommandError::from_aggregate("the user", e))
    }

    /// Sets `email`'s role (admins only); registers the user first if needed.
    pub async fn grant_role(
        &self,
        ctx: &CommandContext,
        email: &Email,
        role: Role,
    ) -> Result<Actor, CommandError> {
        let by = self.actor(ctx).await?;
        // Refused before the target is looked up, so a refused grant creates no user.
        if by.role != Role::Admin {
            let attempt = Attempt {
                action: "grant_role",
                resource_type: "user",
                resource_id: Some(user_id_for(email)),
                resource_identifier: Some(email.as_ref()),
            };
            let refused = Err(CommandError::from(UserError::NotAnAdmin));
            return self.audit_refusal(ctx, Some(&by), attempt, refused).await;
        }
        let target_ctx = CommandContext {
            email: email.clone(),
            display_name: None,
            ..ctx.clone()
        };
        let target = self.actor(&target_ctx).await?;
        // Granting a role someone already has changes nothing, but only for those who may
        // grant at all: everyone else is refused (and audited) like any other attempt.
        if target.role == role && by.role == Role::Admin {
            return Ok(target);
        }
        let at = Utc::now();
        let granted = self
            .inner
            .users
            .execute(target.user_id, &ctx.metadata(Some(&by)), || {
                UserCommand::GrantRole {
                    role,
                    by: by.clone(),
                    at,
                }
            })
            .await
            .map_err(|e| CommandError::from_aggregate("the user", e));
        let attempt = Attempt {
            action: "grant_role",
            resource_type: "user",
            resource_id: Some(target.user_id),
            resource_identifier: Some(target.email.as_ref()),
        };
        self.audit_refusal(ctx, Some(&by), attempt, granted).await?;
        let granted = Actor { role, ..target };
        self.inner.directory.changed_person(granted.clone()).await;
        Ok(granted)
    }

    async fn user(&self, id: uuid::Uuid) -> Result<Option<Actor>, CommandError> {
        let user = self
            .inner
            .users
            .load(id)
            .await
            .map_err(|e| CommandError::from_aggregate("the user", e))?;
        Ok(user.actor().cloned())
    }
}
