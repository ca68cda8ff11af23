//! The policy rows of `system_config` that commands read: approvals needed, the names
//! policy, default validity, and which revocation reasons need an approver.

use sqlx::PgPool;

use super::CommandError;
use crate::domain::names_policy::{self, NamesPolicy};
use crate::domain::values::{CertificateType, RevocationReason, ValueError};

/// Approvals a request needs under `approval.required_approvals`: the largest of the
/// default, the entry for its certificate type, and the entry for its criticality.
pub async fn required_approvals(
    pool: &PgPool,
    certificate_type: CertificateType,
    criticality: Option<&str>,
) -> Result<u8, CommandError> {
    let policy = crate::db::setting(pool, "approval.required_approvals").await?;
    let policy: serde_json::Value = policy
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(CommandError::internal)?
        .unwrap_or_default();
    let read = |key: &str| policy.get(key).and_then(serde_json::Value::as_u64);
    let mut required = read("default").unwrap_or(1);
    for key in [Some(certificate_type.as_str()), criticality]
        .into_iter()
        .flatten()
    {
        required = required.max(read(key).unwrap_or(0));
    }
    u8::try_from(required.clamp(1, 5)).map_err(|_| {
        CommandError::Invalid(vec![ValueError::new(
            "approval.required_approvals",
            "the approval policy is out of range",
        )])
    })
}

/// The names policy (`certificate.names_policy`); unset: the default (any DNS name, no
/// IP addresses, wildcards for public certificates only). A value that no longer parses
/// (set before a check existed) refuses requests rather than letting every name through.
pub async fn names_policy(pool: &PgPool) -> Result<NamesPolicy, CommandError> {
    match crate::db::setting(pool, names_policy::KEY).await? {
        None => Ok(NamesPolicy::default()),
        Some(value) => NamesPolicy::parse(&value).map_err(|why| {
            CommandError::Invalid(vec![ValueError::new(
                names_policy::KEY,
                format!("the names policy cannot be applied ({why}); an admin must fix it"),
            )])
        }),
    }
}

/// What becomes of a request for the public CA while none is configured
/// (`certificate.public_requests`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicRequests {
    /// Refused when submitted, saying what to configure (the default).
    Refuse,
    /// Sent to the internal CA, which requester and approvers are told.
    Internal,
}

/// `certificate.public_requests`; unset or unreadable: refuse.
pub async fn public_requests(pool: &PgPool) -> Result<PublicRequests, CommandError> {
    Ok(
        match crate::db::setting(pool, "certificate.public_requests")
            .await?
            .as_deref()
        {
            Some("internal") => PublicRequests::Internal,
            _ => PublicRequests::Refuse,
        },
    )
}

/// `certificate.default_validity_days`, if set.
pub async fn default_validity_days(pool: &PgPool) -> Result<Option<String>, CommandError> {
    Ok(crate::db::setting(pool, "certificate.default_validity_days").await?)
}

/// Whether revoking for `reason` needs an approver first
/// (`revocation.approval_required_reasons`, a JSON list of reason codes; none by default).
pub async fn revocation_needs_approval(
    pool: &PgPool,
    reason: RevocationReason,
) -> Result<bool, CommandError> {
    let Some(value) = crate::db::setting(pool, "revocation.approval_required_reasons").await?
    else {
        return Ok(false);
    };
    match serde_json::from_str::<Vec<String>>(&value) {
        Ok(reasons) => Ok(reasons
            .iter()
            .any(|r| RevocationReason::parse(r).is_ok_and(|r| r == reason))),
        Err(_) => {
            tracing::warn!(
                "revocation.approval_required_reasons is not a list of reason codes; \
                 requiring approval for every reason until it is fixed"
            );
            Ok(true)
        }
    }
}

impl super::Commands {
    /// The names policy in force, for help and configuration answers.
    pub async fn names_policy(&self) -> Result<NamesPolicy, CommandError> {
        names_policy(self.pool()).await
    }
}
