//! Value types: each one is parsed once from untrusted input and cannot hold a bad value
//! afterwards. Every refusal is a [`ValueError`] whose message a requester can act on.

mod country;
mod email;
mod enums;
mod instant;
mod names;
mod request_number;
mod serial;

pub use country::Country;
pub use email::Email;
pub(crate) use enums::closed_set;
pub use enums::{CaType, CertificateType, KeyAlgorithm, RevocationReason, ValidityDays};
pub use instant::parse_instant;
pub use names::{CommonName, DnsName};
pub use request_number::RequestNumber;
pub use serial::SerialNumber;

/// Why a value was refused. `field` names the input (for per-field errors in chat forms).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValueError {
    /// The input the value came from, e.g. `common_name`.
    pub field: &'static str,
    /// What is wrong and how to fix it, for a person.
    pub message: String,
}

impl ValueError {
    pub(crate) fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Normalises a choice typed by a person for matching: lower case, `-` and spaces as `_`.
pub(crate) fn normalize_choice(input: &str) -> String {
    input.trim().to_ascii_lowercase().replace(['-', ' '], "_")
}

/// Implements `Display`, `AsRef<str>`, and serde as a string that is parsed again on the way
/// in, so even stored events cannot smuggle in an invalid value.
macro_rules! string_value {
    ($type:ident) => {
        impl std::fmt::Display for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $type {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $type {
            type Err = $crate::domain::values::ValueError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $type {
            type Error = $crate::domain::values::ValueError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl From<$type> for String {
            fn from(value: $type) -> String {
                value.0
            }
        }
    };
}
pub(crate) use string_value;

#[cfg(test)]
mod robustness {
    use super::*;

    #[test]
    fn no_text_makes_a_value_parser_panic() {
        let mut inputs = crate::fuzz::Inputs::new(0x5eed_0005);
        for _ in 0..20_000 {
            let text = inputs.text(8);
            let _ = Email::parse(&text);
            let _ = RequestNumber::parse(&text);
            let _ = SerialNumber::parse(&text);
            let _ = CommonName::parse(&text);
            let _ = DnsName::parse(&text);
            let _ = Country::parse(&text);
            let _ = RevocationReason::parse(&text);
            let _ = ValidityDays::parse(&text);
            let _ = RequestNumber::parse(&inputs.mutate("REQ-20261127-00001"));
            let _ = SerialNumber::parse(&inputs.mutate("0a:1b:2c"));
            let _ = Email::parse(&inputs.mutate("jane.doe@example.com"));
        }
    }
}
