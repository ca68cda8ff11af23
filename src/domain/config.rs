//! System configuration (`system_config`) as an aggregate per key: admins change values,
//! every change is an event with who, when and the previous value.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use super::actor::{Actor, Role};
use super::values::{ValueError, closed_set};

closed_set! {
    /// How a value is interpreted (`system_config.value_type`).
    ValueType, "value_type", "value type" {
        /// Text.
        String = "string" | "text",
        /// A whole number.
        Integer = "integer" | "int",
        /// true or false.
        Boolean = "boolean" | "bool",
        /// A JSON document.
        Json = "json",
    }
}

/// A checked configuration entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    /// `approval.escalation.hours`, ...
    pub key: String,
    /// The value as stored (`config_value`).
    pub value: String,
    /// Its type.
    pub value_type: ValueType,
}

impl Setting {
    /// Parses a key, a value and its type, with extra checks for the keys the service reads.
    pub fn parse(key: &str, value: &str, value_type: ValueType) -> Result<Self, ValueError> {
        let key = key.trim();
        if key.is_empty()
            || key.len() > 100
            || !key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_'))
        {
            return Err(ValueError::new(
                "config_key",
                format!(
                    "{key:?} is not a configuration key; keys look like approval.escalation.hours"
                ),
            ));
        }
        let value = value.trim();
        let bad = |why: String| Err(ValueError::new("config_value", format!("{key}: {why}")));
        match value_type {
            ValueType::String => {}
            ValueType::Integer => {
                if value.parse::<i64>().is_err() {
                    return bad(format!("{value:?} is not a whole number"));
                }
            }
            ValueType::Boolean => {
                if !matches!(value, "true" | "false") {
                    return bad(format!("{value:?} is not true or false"));
                }
            }
            ValueType::Json => {
                if serde_json::from_str::<serde_json::Value>(value).is_err() {
                    return bad(format!("{value:?} is not valid JSON"));
                }
            }
        }
        let positive = |v: &str| v.parse::<i64>().is_ok_and(|n| n > 0);
        match key {
            "expiry.notification.days" => {
                let days: Option<Vec<i64>> = serde_json::from_str(value).ok();
                if !days.is_some_and(|d| !d.is_empty() && d.iter().all(|n| (1..=3650).contains(n)))
                {
                    return bad("expected a JSON list of days such as [90,60,30,14,7]".to_owned());
                }
            }
            "approval.required_approvals" => {
                let policy: Option<std::collections::BTreeMap<String, u8>> =
                    serde_json::from_str(value).ok();
                if !policy.is_some_and(|p| p.values().all(|n| (1..=5).contains(n))) {
                    return bad(
                        "expected a JSON object of counts 1-5, such as {\"default\": 1, \"code_signing\": 2}"
                            .to_owned(),
                    );
                }
            }
            "certificate.public_requests" if !matches!(value, "refuse" | "internal") => {
                return bad(
                    "expected refuse (a request for the public CA is refused while no \
                     public CA is configured) or internal (it goes to the internal CA, and \
                     requester and approvers are told)"
                        .to_owned(),
                );
            }
            super::names_policy::KEY => {
                if let Err(why) = super::names_policy::NamesPolicy::parse(value) {
                    return bad(why);
                }
            }
            "adcs.polling.interval_seconds"
            | "approval.escalation.hours"
            | "audit.retention.days"
            | "issuance.max_retries"
            | "certificate.default_validity_days"
            | "session.timeout.minutes"
                if value_type != ValueType::Integer || !positive(value) =>
            {
                return bad("expected a positive whole number".to_owned());
            }
            _ => {}
        }
        Ok(Self {
            key: key.to_owned(),
            value: value.to_owned(),
            value_type,
        })
    }
}

/// Change a setting.
#[derive(Debug, Clone, PartialEq)]
pub struct SetConfig {
    /// The new value.
    pub setting: Setting,
    /// Who (an admin).
    pub by: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// What happened to a setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ConfigEvent {
    /// A value was set.
    ConfigValueSet {
        /// The new value.
        setting: Setting,
        /// The value before, if this aggregate knew one.
        previous_value: Option<String>,
        /// Who.
        by: Actor,
        /// When.
        at: DateTime<Utc>,
    },
}

impl DomainEvent for ConfigEvent {
    fn event_type(&self) -> String {
        "ConfigValueSet".to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// Why a change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("only admins can change the configuration")]
pub struct NotAnAdmin;

/// One setting's history.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    value: Option<String>,
}

impl Aggregate for Config {
    const TYPE: &'static str = "Config";
    type Command = SetConfig;
    type Event = ConfigEvent;
    type Error = NotAnAdmin;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        if command.by.role != Role::Admin {
            return Err(NotAnAdmin);
        }
        let event = ConfigEvent::ConfigValueSet {
            previous_value: self.value.clone(),
            setting: command.setting,
            by: command.by,
            at: command.at,
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        let ConfigEvent::ConfigValueSet { setting, .. } = event;
        self.value = Some(setting.value);
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::domain::testing::{actor, at};

    #[test]
    fn values_are_checked_against_their_type_and_known_keys() {
        assert!(Setting::parse("approval.escalation.hours", "24", ValueType::Integer).is_ok());
        assert!(Setting::parse("approval.escalation.hours", "-1", ValueType::Integer).is_err());
        assert!(Setting::parse("approval.escalation.hours", "soon", ValueType::Integer).is_err());
        assert!(Setting::parse("expiry.notification.days", "[30,7]", ValueType::Json).is_ok());
        assert!(Setting::parse("expiry.notification.days", "[]", ValueType::Json).is_err());
        assert!(Setting::parse("expiry.notification.days", "{", ValueType::Json).is_err());
        assert!(
            Setting::parse(
                "approval.required_approvals",
                "{\"default\": 9}",
                ValueType::Json
            )
            .is_err()
        );
        assert!(Setting::parse("feature.flag", "yes", ValueType::Boolean).is_err());
        assert!(Setting::parse("Bad Key", "x", ValueType::String).is_err());
    }

    #[tokio::test]
    async fn only_admins_change_settings_and_the_previous_value_is_kept() {
        let setting =
            Setting::parse("approval.escalation.hours", "24", ValueType::Integer).expect("valid");
        let admin = actor("root", Role::Admin);
        let first = ConfigEvent::ConfigValueSet {
            setting: setting.clone(),
            previous_value: None,
            by: admin.clone(),
            at: at(0),
        };
        let next =
            Setting::parse("approval.escalation.hours", "12", ValueType::Integer).expect("valid");
        TestFramework::<Config>::with(())
            .given(vec![first])
            .when_async(SetConfig {
                setting: next.clone(),
                by: admin.clone(),
                at: at(1),
            })
            .await
            .then_expect_events(vec![ConfigEvent::ConfigValueSet {
                setting: next,
                previous_value: Some("24".to_owned()),
                by: admin,
                at: at(1),
            }]);
        let refused = TestFramework::<Config>::with(())
            .given_no_previous_events()
            .when_async(SetConfig {
                setting,
                by: actor("jane", Role::Approver),
                at: at(1),
            })
            .await
            .inspect_result();
        assert_eq!(refused, Err(NotAnAdmin));
    }
}
