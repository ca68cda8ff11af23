use serde::{Deserialize, Serialize};

use super::{ValueError, string_value};

/// A certificate serial number as upper-case hexadecimal without separators. RFC 5280 allows
/// at most 20 octets (40 hex digits). Accepts `0a:1b:...`, `0A 1B`, and `0x0a1b` input.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SerialNumber(String);

string_value!(SerialNumber);

/// The longest serial number text accepted, separators included.
const MAX_INPUT: usize = 100;

impl SerialNumber {
    /// Parses a serial number.
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        let trimmed = input.trim();
        // 40 digits with a separator after every two, and a prefix, fit easily.
        if trimmed.chars().count() > MAX_INPUT {
            return Err(ValueError::new(
                "serial_number",
                format!("a serial number is at most {MAX_INPUT} characters long"),
            ));
        }
        let body = trimmed
            .strip_prefix("0x")
            .or_else(|| trimmed.strip_prefix("0X"))
            .unwrap_or(trimmed);
        let hex: String = body
            .chars()
            .filter(|c| !matches!(c, ':' | ' ' | '-'))
            .collect::<String>()
            .to_ascii_uppercase();
        if hex.is_empty() {
            return Err(ValueError::new(
                "serial_number",
                "a serial number is required",
            ));
        }
        if let Some(bad) = hex.chars().find(|c| !c.is_ascii_hexdigit()) {
            return Err(ValueError::new(
                "serial_number",
                format!("{trimmed:?} is not a serial number: {bad:?} is not a hexadecimal digit"),
            ));
        }
        if hex.len() > 40 {
            return Err(ValueError::new(
                "serial_number",
                "a serial number has at most 20 octets (40 hexadecimal digits)",
            ));
        }
        Ok(Self(hex))
    }

    /// From the big-endian bytes of a certificate's serial.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ValueError> {
        let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
        Self::parse(&hex)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_serial_padded_with_separators_is_refused_with_the_limit() {
        let padded = format!("0A{}1B", ":".repeat(300));
        let error = SerialNumber::parse(&padded).expect_err("padded");
        assert!(
            error.message.contains("at most 100 characters"),
            "{}",
            error.message
        );
        assert!(SerialNumber::parse(&format!("0A{}1B", ":".repeat(50))).is_ok());
    }

    #[test]
    fn serials_are_normalised() {
        assert_eq!(
            SerialNumber::parse("0a:1b:2c").map(String::from),
            Ok("0A1B2C".to_owned())
        );
        assert_eq!(
            SerialNumber::parse("0x0A1B").map(String::from),
            Ok("0A1B".to_owned())
        );
        assert_eq!(
            SerialNumber::from_bytes(&[0x01, 0xff]).map(String::from),
            Ok("01FF".to_owned())
        );
    }

    #[test]
    fn bad_serials_are_refused() {
        assert!(SerialNumber::parse("").is_err());
        assert!(SerialNumber::parse("xyz").is_err_and(|e| e.message.contains("hexadecimal")));
        assert!(
            SerialNumber::parse(&"A".repeat(41)).is_err_and(|e| e.message.contains("20 octets"))
        );
    }
}
