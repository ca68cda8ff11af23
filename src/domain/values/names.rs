use serde::{Deserialize, Serialize};

use super::{ValueError, string_value};

/// A DNS name for a certificate: RFC 1123 labels (letters, digits, hyphens; 1–63 characters,
/// not starting or ending with a hyphen), at most 253 characters, lower-cased, no trailing dot.
/// A wildcard is allowed only as the whole left-most label (`*.example.com`), over at least
/// two more labels. IP addresses are refused: they belong in IP SANs, not DNS SANs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DnsName(String);

string_value!(DnsName);

impl DnsName {
    /// Parses a DNS name (see the type's rules).
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        Self::parse_field(input, "dns_name")
    }

    pub(crate) fn parse_field(input: &str, field: &'static str) -> Result<Self, ValueError> {
        let err = |message: String| Err(ValueError::new(field, message));
        let trimmed = input.trim();
        let name = trimmed
            .strip_suffix('.')
            .unwrap_or(trimmed)
            .to_ascii_lowercase();
        if name.is_empty() {
            return err("a DNS name is required".to_owned());
        }
        if !name.is_ascii() {
            return err(format!(
                "{trimmed:?} has non-ASCII characters; use its punycode form (xn--...)"
            ));
        }
        if name.len() > 253 {
            return err(format!(
                "{name:?} is {} characters long; a DNS name has at most 253",
                name.len()
            ));
        }
        if name.parse::<std::net::IpAddr>().is_ok() {
            return err(format!(
                "{name} is an IP address, not a DNS name; IP addresses cannot be DNS SANs"
            ));
        }
        let labels: Vec<&str> = name.split('.').collect();
        for (index, label) in labels.iter().enumerate() {
            if *label == "*" {
                if index != 0 {
                    return err(format!(
                        "{name}: a wildcard may only be the whole left-most label, as in *.example.com"
                    ));
                }
                if labels.len() < 3 {
                    return err(format!(
                        "{name}: a wildcard needs at least two labels after it, as in *.example.com"
                    ));
                }
                continue;
            }
            if label.contains('*') {
                return err(format!(
                    "{name}: a wildcard may only be the whole left-most label, as in *.example.com"
                ));
            }
            if label.is_empty() {
                return err(format!("{name} has an empty label (two dots in a row?)"));
            }
            if label.len() > 63 {
                return err(format!(
                    "{name}: the label {label:?} is {} characters long; at most 63 are allowed",
                    label.len()
                ));
            }
            if let Some(bad) = label
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
            {
                return err(format!(
                    "{name}: {bad:?} is not allowed; use letters, digits and hyphens"
                ));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return err(format!(
                    "{name}: the label {label:?} must not start or end with a hyphen"
                ));
            }
        }
        if labels.len() > 1
            && labels
                .last()
                .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
        {
            return err(format!(
                "{name} looks like an IP address; DNS names do not end in a number"
            ));
        }
        Ok(Self(name))
    }

    /// Whether this is a wildcard name.
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }
}

/// The subject common name: 1–64 characters (the X.520 upper bound), no control characters,
/// no leading or trailing space. For server certificates it must also be a [`DnsName`]; that
/// rule belongs to the request, which knows the certificate type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CommonName(String);

string_value!(CommonName);

impl CommonName {
    /// Parses a common name.
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        let name = input.trim();
        let err = |message: String| Err(ValueError::new("common_name", message));
        if name.is_empty() {
            return err("a common name (CN) is required".to_owned());
        }
        let length = name.chars().count();
        if length > 64 {
            return err(format!(
                "the common name is {length} characters long; at most 64 are allowed"
            ));
        }
        if name.chars().any(char::is_control) {
            return err("the common name must not contain control characters".to_owned());
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as a DNS name, if it is one.
    pub fn as_dns_name(&self) -> Option<DnsName> {
        DnsName::parse(&self.0).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_are_normalised() {
        assert_eq!(
            DnsName::parse(" App.Example.COM. ").map(String::from),
            Ok("app.example.com".to_owned())
        );
        assert_eq!(
            DnsName::parse("xn--bcher-kva.example").map(String::from),
            Ok("xn--bcher-kva.example".to_owned())
        );
        assert!(DnsName::parse("intranet").is_ok());
        assert!(DnsName::parse("*.apps.example.com").is_ok_and(|n| n.is_wildcard()));
    }

    #[test]
    fn bad_dns_names_are_refused_with_a_reason() {
        let cases = [
            ("", "required"),
            ("bücher.example", "punycode"),
            ("a..example.com", "empty label"),
            ("-a.example.com", "hyphen"),
            ("a-.example.com", "hyphen"),
            ("under_score.example.com", "'_'"),
            ("app.*.example.com", "left-most"),
            ("ap*.example.com", "left-most"),
            ("*.com", "two labels"),
            ("10.0.0.1", "IP address"),
            ("::1", "IP address"),
            ("1.2.3.4.5", "IP address"),
        ];
        for (input, expected) in cases {
            let err = DnsName::parse(input).expect_err(input);
            assert!(
                err.message.contains(expected),
                "{input:?}: {:?} lacks {expected:?}",
                err.message
            );
        }
        let long_label = format!("{}.example.com", "a".repeat(64));
        assert!(DnsName::parse(&long_label).is_err_and(|e| e.message.contains("63")));
        let long_name = vec!["abcdefghi"; 26].join(".");
        assert!(DnsName::parse(&long_name).is_err_and(|e| e.message.contains("253")));
    }

    #[test]
    fn common_names_are_bounded_and_printable() {
        assert!(CommonName::parse("Jane Smith").is_ok());
        assert!(CommonName::parse("  ").is_err());
        assert!(CommonName::parse(&"x".repeat(65)).is_err_and(|e| e.message.contains("64")));
        assert!(CommonName::parse("a\u{0007}b").is_err());
        assert_eq!(
            CommonName::parse("app.example.com")
                .ok()
                .and_then(|cn| cn.as_dns_name())
                .map(String::from),
            Some("app.example.com".to_owned())
        );
    }

    #[test]
    fn stored_values_are_parsed_again_on_the_way_in() {
        let parsed: Result<DnsName, _> = serde_json::from_str("\"bad name\"");
        assert!(parsed.is_err());
        let parsed: DnsName = serde_json::from_str("\"ok.example.com\"").expect("valid");
        assert_eq!(parsed.as_ref(), "ok.example.com");
    }
}
