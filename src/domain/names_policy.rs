//! Which names may be requested, per certificate type (`certificate.names_policy` in
//! `system_config`, set by admins like every setting, so every change is an audited event).
//!
//! The value is a JSON object keyed by certificate type, with a `default` entry that the
//! types inherit from:
//!
//! ```json
//! {"default": {"domains": ["example.com"], "max_validity_days": 365},
//!  "web_server": {"wildcards": true}}
//! ```
//!
//! - `domains`: the DNS suffixes a name must end in (the suffix itself included); empty or
//!   absent: any DNS name.
//! - `wildcards`: whether `*.…` names are allowed; absent: for public certificates only.
//! - `ip_addresses`: only `false`: requests name hosts by DNS name.
//! - `max_validity_days`: the longest validity a request may ask for; absent: any of the
//!   lengths a request allows.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::values::{CaType, CertificateType, DnsName, ValidityDays, ValueError};

/// The setting's key.
pub const KEY: &str = "certificate.names_policy";

/// One entry of the policy, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    domains: Option<Vec<String>>,
    wildcards: Option<bool>,
    ip_addresses: Option<bool>,
    max_validity_days: Option<u32>,
}

/// The names policy: the default entry and the entries per certificate type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamesPolicy {
    entries: BTreeMap<String, Entry>,
}

/// The rule for one certificate type: its entry over the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameRule {
    certificate_type: CertificateType,
    /// DNS suffixes (normalised); empty: any name.
    pub domains: Vec<DnsName>,
    /// Wildcards allowed, if the policy says; `None`: for public certificates only.
    pub wildcards: Option<bool>,
    /// The longest validity, if limited.
    pub max_validity_days: Option<u32>,
}

impl NamesPolicy {
    /// Parses and checks the setting's value; the error says what is wrong, for an admin.
    pub fn parse(value: &str) -> Result<Self, String> {
        let entries: BTreeMap<String, Entry> = serde_json::from_str(value).map_err(|e| {
            format!(
                "expected a JSON object of rules per certificate type, such as \
                 {{\"default\": {{\"domains\": [\"example.com\"]}}, \"web_server\": \
                 {{\"wildcards\": true}}}}: {e}"
            )
        })?;
        for (name, entry) in &entries {
            if name != "default" && CertificateType::parse(name).is_err() {
                return Err(format!(
                    "{name:?} is not a certificate type (or \"default\"); the types are {}",
                    type_names()
                ));
            }
            for domain in entry.domains.iter().flatten() {
                let parsed = DnsName::parse(domain)
                    .map_err(|e| format!("{name}: domain {domain:?}: {}", e.message))?;
                if parsed.is_wildcard() {
                    return Err(format!(
                        "{name}: domain {domain:?}: give the suffix (example.com), not a wildcard"
                    ));
                }
            }
            if entry.ip_addresses == Some(true) {
                return Err(format!(
                    "{name}: ip_addresses can only be false: requests name hosts by DNS name, \
                     and IP address names are not supported"
                ));
            }
            if let Some(days) = entry.max_validity_days
                && days < ValidityDays::ALLOWED[0]
            {
                return Err(format!(
                    "{name}: max_validity_days {days} allows no request; the shortest \
                     validity is {} days",
                    ValidityDays::ALLOWED[0]
                ));
            }
        }
        Ok(Self { entries })
    }

    /// The rule for `certificate_type`.
    pub fn rule_for(&self, certificate_type: CertificateType) -> NameRule {
        let default = self.entries.get("default").cloned().unwrap_or_default();
        let own = self
            .entries
            .get(certificate_type.as_str())
            .cloned()
            .unwrap_or_default();
        let domains = own
            .domains
            .or(default.domains)
            .unwrap_or_default()
            .iter()
            .filter_map(|d| DnsName::parse(d).ok())
            .collect();
        NameRule {
            certificate_type,
            domains,
            wildcards: own.wildcards.or(default.wildcards),
            max_validity_days: own.max_validity_days.or(default.max_validity_days),
        }
    }

    /// The policy in a few lines, one per certificate type, for `/cert help`.
    pub fn describe(&self) -> String {
        CertificateType::ALL
            .iter()
            .map(|kind| format!("• {kind}: {}", self.rule_for(*kind).describe()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl NameRule {
    /// Whether `name`, in `field`, may be requested from a CA of `ca_type`; the error names
    /// the rule.
    pub fn check_name(
        &self,
        field: &'static str,
        name: &DnsName,
        ca_type: CaType,
    ) -> Result<(), ValueError> {
        let kind = self.certificate_type;
        if name.is_wildcard() && !self.wildcards_allowed(ca_type) {
            let why = match self.wildcards {
                Some(false) => format!("the names policy allows no wildcards for {kind}"),
                _ => format!(
                    "wildcards are for public certificates unless the names policy allows them \
                     for {kind}"
                ),
            };
            return Err(ValueError::new(field, format!("{name}: {why}")));
        }
        if self.domains.is_empty() {
            return Ok(());
        }
        let host = name.as_ref().strip_prefix("*.").unwrap_or(name.as_ref());
        let inside = self.domains.iter().any(|domain| {
            let domain = domain.as_ref();
            host == domain
                || host
                    .strip_suffix(domain)
                    .is_some_and(|rest| rest.ends_with('.'))
        });
        if inside {
            Ok(())
        } else {
            Err(ValueError::new(
                field,
                format!(
                    "{name} is outside the domains the names policy allows for {kind} ({})",
                    self.domain_list()
                ),
            ))
        }
    }

    /// Whether `days` is within the longest validity allowed.
    pub fn check_validity(&self, days: ValidityDays) -> Result<(), ValueError> {
        match self.max_validity_days {
            Some(max) if days.days() > max => Err(ValueError::new(
                "validity_days",
                format!(
                    "{} days is longer than the names policy allows for {} (at most {max})",
                    days.days(),
                    self.certificate_type
                ),
            )),
            _ => Ok(()),
        }
    }

    fn wildcards_allowed(&self, ca_type: CaType) -> bool {
        self.wildcards.unwrap_or(ca_type == CaType::Public)
    }

    fn domain_list(&self) -> String {
        self.domains
            .iter()
            .map(|d| d.as_ref().to_owned())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The rule in words.
    pub fn describe(&self) -> String {
        let domains = if self.domains.is_empty() {
            "any DNS name".to_owned()
        } else {
            format!("names in {}", self.domain_list())
        };
        let wildcards = match self.wildcards {
            Some(true) => "wildcards allowed",
            Some(false) => "no wildcards",
            None => "wildcards for public certificates only",
        };
        let validity = self.max_validity_days.map_or_else(
            || "any validity".to_owned(),
            |max| format!("at most {max} days"),
        );
        format!("{domains}, {wildcards}, no IP addresses, {validity}")
    }
}

fn type_names() -> String {
    CertificateType::ALL
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns(name: &str) -> DnsName {
        DnsName::parse(name).expect("a DNS name")
    }

    #[test]
    fn the_default_allows_any_name_and_wildcards_only_publicly() {
        let rule = NamesPolicy::default().rule_for(CertificateType::WebServer);
        let field = "subject_alternative_names";
        assert!(
            rule.check_name(field, &dns("anything.example.org"), CaType::Internal)
                .is_ok()
        );
        let refused = rule
            .check_name(field, &dns("*.corp.example.com"), CaType::Internal)
            .expect_err("no internal wildcards");
        assert_eq!(refused.field, field);
        assert!(
            refused.message.contains("wildcards are for public"),
            "{refused:?}"
        );
        assert!(
            rule.check_name(field, &dns("*.example.com"), CaType::Public)
                .is_ok()
        );
        assert!(
            rule.check_validity(ValidityDays::parse("730").expect("days"))
                .is_ok()
        );
    }

    #[test]
    fn types_inherit_the_default_and_override_it() {
        let policy = NamesPolicy::parse(
            r#"{"default": {"domains": ["example.com"], "max_validity_days": 365},
                "web_server": {"wildcards": true}, "vpn": {"domains": ["vpn.example.net"]}}"#,
        )
        .expect("a policy");
        let web = policy.rule_for(CertificateType::WebServer);
        let internal = CaType::Internal;
        assert!(
            web.check_name("common_name", &dns("example.com"), internal)
                .is_ok()
        );
        assert!(
            web.check_name("common_name", &dns("a.b.example.com"), internal)
                .is_ok()
        );
        assert!(
            web.check_name("common_name", &dns("*.example.com"), internal)
                .is_ok()
        );
        let outside = web
            .check_name("common_name", &dns("badexample.com"), internal)
            .expect_err("not a subdomain");
        assert!(
            outside.message.contains("outside the domains")
                && outside.message.contains("example.com"),
            "{outside:?}"
        );
        let long = web
            .check_validity(ValidityDays::parse("730").expect("days"))
            .expect_err("too long");
        assert!(long.message.contains("at most 365"), "{long:?}");
        let vpn = policy.rule_for(CertificateType::Vpn);
        assert!(
            vpn.check_name("common_name", &dns("gw.vpn.example.net"), internal)
                .is_ok()
        );
        assert!(
            vpn.check_name("common_name", &dns("app.example.com"), internal)
                .is_err()
        );
        assert!(
            vpn.check_name("common_name", &dns("*.vpn.example.net"), CaType::Public)
                .is_ok(),
            "unset: wildcards for public certificates"
        );
        assert!(
            policy
                .describe()
                .contains("web_server: names in example.com, wildcards allowed")
        );
    }

    #[test]
    fn a_policy_that_cannot_be_applied_is_refused_with_the_reason() {
        for (value, says) in [
            ("[1]", "expected a JSON object"),
            (r#"{"webserver": {}}"#, "is not a certificate type"),
            (r#"{"default": {"domains": ["exa mple.com"]}}"#, "domain"),
            (
                r#"{"default": {"domains": ["*.example.com"]}}"#,
                "not a wildcard",
            ),
            (r#"{"default": {"ip_addresses": true}}"#, "not supported"),
            (
                r#"{"default": {"max_validity_days": 30}}"#,
                "allows no request",
            ),
            (r#"{"default": {"wildcard": true}}"#, "unknown field"),
        ] {
            let error = NamesPolicy::parse(value).expect_err(value);
            assert!(error.contains(says), "{value}: {error}");
        }
    }
}
