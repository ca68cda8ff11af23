use serde::{Deserialize, Serialize};

use super::{DnsName, ValueError, string_value};

/// An e-mail address as people use them at work: `local@domain`, the local part 1–64
/// characters of letters, digits and ``!#$%&'*+/=?^_`{|}~.-`` (no leading, trailing or double
/// dot), the domain a DNS name of at least two labels. The domain is lower-cased; the whole
/// address is compared case-insensitively through [`Email::normalized`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

string_value!(Email);

const LOCAL_SPECIALS: &str = "!#$%&'*+/=?^_`{|}~.-";

impl Email {
    /// Parses an e-mail address. Slack-style `<mailto:a@b|a@b>` wrappers are not accepted
    /// here; chat surfaces unwrap them first.
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        let address = input.trim();
        let err = |message: String| Err(ValueError::new("email", message));
        if address.is_empty() {
            return err("an e-mail address is required".to_owned());
        }
        if address.len() > 254 {
            return err("the e-mail address is longer than 254 characters".to_owned());
        }
        let Some((local, domain)) = address.rsplit_once('@') else {
            return err(format!("{address:?} is not an e-mail address (no @)"));
        };
        if local.is_empty() || local.len() > 64 {
            return err(format!(
                "{address:?}: the part before @ must be 1 to 64 characters"
            ));
        }
        if let Some(bad) = local
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || LOCAL_SPECIALS.contains(*c)))
        {
            return err(format!("{address:?}: {bad:?} is not allowed before the @"));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return err(format!(
                "{address:?}: the part before @ must not start or end with a dot or have two in a row"
            ));
        }
        let domain = DnsName::parse_field(domain, "email")
            .map_err(|e| ValueError::new("email", format!("{address:?}: {}", e.message)))?;
        if domain.is_wildcard() || !domain.as_ref().contains('.') {
            return err(format!(
                "{address:?}: the domain must be a full name such as example.com"
            ));
        }
        Ok(Self(format!("{local}@{domain}")))
    }

    /// The address lower-cased.
    pub fn normalized(&self) -> String {
        self.0.to_ascii_lowercase()
    }

    /// The person the address stands for: lower-cased, and without the tag of a
    /// sub-address (RFC 5233: everything from the first `+` of the part before the `@`).
    /// Exchange Online, Google Workspace and most mail servers deliver `john+req@corp.com`
    /// to john's mailbox, so it is john: one person, one identity, whichever form they
    /// use. Mail still goes to the address as given.
    pub fn identity(&self) -> String {
        let lower = self.normalized();
        match lower.rsplit_once('@') {
            Some((local, domain)) => {
                let person = local.split_once('+').map_or(local, |(person, _)| person);
                // `+tag@corp.com` has no person before the tag: it stays as it is.
                if person.is_empty() {
                    lower
                } else {
                    format!("{person}@{domain}")
                }
            }
            None => lower,
        }
    }

    /// Whether two addresses stand for the same person ([`Email::identity`]).
    pub fn same_person(&self, other: &Email) -> bool {
        self.identity() == other.identity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_parsed_and_domains_lowercased() {
        assert_eq!(
            Email::parse("Jane.Smith+certs@Example.COM").map(String::from),
            Ok("Jane.Smith+certs@example.com".to_owned())
        );
        assert_eq!(
            Email::parse("Jane@Example.com").map(|e| e.normalized()),
            Ok("jane@example.com".to_owned())
        );
    }

    #[test]
    fn a_sub_address_is_the_same_person() {
        let plain = Email::parse("john@example.com").expect("email");
        for other in [
            "John+req@Example.com",
            "john+a+b@example.com",
            "JOHN@example.com",
        ] {
            let other = Email::parse(other).expect("email");
            assert!(other.same_person(&plain), "{other}");
            assert_eq!(other.identity(), "john@example.com");
        }
        assert!(
            !Email::parse("johnny@example.com")
                .expect("email")
                .same_person(&plain)
        );
        assert!(
            !Email::parse("john@example.org")
                .expect("email")
                .same_person(&plain)
        );
        assert_eq!(
            Email::parse("+tag@example.com").expect("email").identity(),
            "+tag@example.com"
        );
    }

    #[test]
    fn bad_addresses_are_refused() {
        for input in [
            "",
            "jane",
            "@example.com",
            "jane@",
            "jane@localhost",
            "ja ne@example.com",
            ".jane@example.com",
            "ja..ne@example.com",
            "jane@exa_mple.com",
            "jane@10.0.0.1",
        ] {
            assert!(Email::parse(input).is_err(), "{input:?} accepted");
        }
    }
}
