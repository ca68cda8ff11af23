//! The policy rows of `system_config` that commands read: approvals needed, the names
//! policy, default validity, and which revocation reasons need an approver.

use std::collections::HashMap;

use sqlx::PgPool;

use super::CommandError;
use crate::domain::names_policy::{self, NamesPolicy};
use crate::domain::values::{CertificateType, RevocationReason, ValueError};

/// The settings in force: `system_config`'s seeded defaults, under every value an admin set
/// (the latest `ConfigValueSet` of each key).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings(HashMap<String, String>);

impl Settings {
    /// Reads them: the seeded rows, then the events over them (the events win, so a value
    /// set a moment ago counts before its projection ran).
    pub async fn load(pool: &PgPool) -> Result<Self, CommandError> {
        let mut values: HashMap<String, String> =
            sqlx::query_as("SELECT config_key, config_value FROM system_config")
                .fetch_all(pool)
                .await?
                .into_iter()
                .collect();
        values.extend(
            crate::eventstore::settings_set(pool)
                .await
                .map_err(CommandError::internal)?,
        );
        Ok(Self(values))
    }

    /// One value as stored, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Approvals a request needs under `approval.required_approvals`: the largest of the
    /// default, the entry for its certificate type, and the entry for its criticality.
    pub fn required_approvals(
        &self,
        certificate_type: CertificateType,
        criticality: Option<&str>,
    ) -> Result<u8, CommandError> {
        let policy: serde_json::Value = self
            .get("approval.required_approvals")
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
    pub fn names_policy(&self) -> Result<NamesPolicy, CommandError> {
        match self.get(names_policy::KEY) {
            None => Ok(NamesPolicy::default()),
            Some(value) => NamesPolicy::parse(value).map_err(|why| {
                CommandError::Invalid(vec![ValueError::new(
                    names_policy::KEY,
                    format!("the names policy cannot be applied ({why}); an admin must fix it"),
                )])
            }),
        }
    }

    /// `certificate.public_requests`; unset or unreadable: refuse.
    pub fn public_requests(&self) -> PublicRequests {
        match self.get("certificate.public_requests") {
            Some("internal") => PublicRequests::Internal,
            _ => PublicRequests::Refuse,
        }
    }

    /// `certificate.default_validity_days`, if set.
    pub fn default_validity_days(&self) -> Option<&str> {
        self.get("certificate.default_validity_days")
    }

    /// Whether revoking for `reason` needs an approver first
    /// (`revocation.approval_required_reasons`, a JSON list of reason codes; none by default).
    pub fn revocation_needs_approval(&self, reason: RevocationReason) -> bool {
        let Some(value) = self.get("revocation.approval_required_reasons") else {
            return false;
        };
        match serde_json::from_str::<Vec<String>>(value) {
            Ok(reasons) => reasons
                .iter()
                .any(|r| RevocationReason::parse(r).is_ok_and(|r| r == reason)),
            Err(_) => {
                tracing::warn!(
                    "revocation.approval_required_reasons is not a list of reason codes; \
                     requiring approval for every reason until it is fixed"
                );
                true
            }
        }
    }
}

impl FromIterator<(String, String)> for Settings {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(values: I) -> Self {
        Self(values.into_iter().collect())
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

impl super::Commands {
    /// The names policy in force, for help and configuration answers.
    pub async fn names_policy(&self) -> Result<NamesPolicy, CommandError> {
        self.settings().await?.names_policy()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(values: &[(&str, &str)]) -> Settings {
        values
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_largest_of_default_type_and_criticality_is_required() {
        let policy = settings(&[(
            "approval.required_approvals",
            r#"{"default": 1, "code_signing": 2, "critical": 3}"#,
        )]);
        let web = CertificateType::parse("web_server").expect("type");
        let code = CertificateType::parse("code_signing").expect("type");
        assert_eq!(policy.required_approvals(web, None).expect("policy"), 1);
        assert_eq!(policy.required_approvals(code, None).expect("policy"), 2);
        assert_eq!(
            policy
                .required_approvals(code, Some("critical"))
                .expect("policy"),
            3
        );
        assert_eq!(
            Settings::default()
                .required_approvals(code, None)
                .expect("policy"),
            1
        );
    }

    #[test]
    fn unreadable_policies_refuse_rather_than_allow() {
        let broken = settings(&[
            ("revocation.approval_required_reasons", "keyCompromise"),
            ("certificate.public_requests", "maybe"),
            (names_policy::KEY, "{not json"),
        ]);
        assert!(
            broken
                .revocation_needs_approval(RevocationReason::parse("superseded").expect("reason"))
        );
        assert_eq!(broken.public_requests(), PublicRequests::Refuse);
        assert!(broken.names_policy().is_err());
        let unset = Settings::default();
        assert!(
            !unset
                .revocation_needs_approval(RevocationReason::parse("superseded").expect("reason"))
        );
        assert_eq!(
            unset.names_policy().expect("default"),
            NamesPolicy::default()
        );
    }
}
