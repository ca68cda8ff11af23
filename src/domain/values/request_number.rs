use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{ValueError, string_value};

/// A request number, `REQ-YYYYMMDD-XXXXX`: the day the request was created and a five-digit
/// counter of that day (allocated by the store, unique across replicas).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RequestNumber(String);

string_value!(RequestNumber);

/// The largest counter a day can hold.
pub const MAX_DAILY_COUNTER: u32 = 99_999;

impl RequestNumber {
    /// Parses `REQ-20261127-00042` (case-insensitive).
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        let text = input.trim().to_ascii_uppercase();
        let err = || {
            Err(ValueError::new(
                "request_number",
                format!(
                    "{:?} is not a request number; they look like REQ-20261127-00042",
                    input.trim()
                ),
            ))
        };
        let mut parts = text.split('-');
        let (Some("REQ"), Some(date), Some(counter), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return err();
        };
        if date.len() != 8
            || counter.len() != 5
            || !counter.chars().all(|c| c.is_ascii_digit())
            || NaiveDate::parse_from_str(date, "%Y%m%d").is_err()
        {
            return err();
        }
        Ok(Self(text))
    }

    /// Builds the number of the `counter`th request of `day` (1-based).
    pub fn new(day: NaiveDate, counter: u32) -> Result<Self, ValueError> {
        if counter == 0 || counter > MAX_DAILY_COUNTER {
            return Err(ValueError::new(
                "request_number",
                format!("no request numbers left for {day}: at most {MAX_DAILY_COUNTER} a day"),
            ));
        }
        Ok(Self(format!("REQ-{}-{counter:05}", day.format("%Y%m%d"))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 27).expect("date");
        let number = RequestNumber::new(day, 42).expect("valid");
        assert_eq!(number.as_ref(), "REQ-20261127-00042");
        assert_eq!(RequestNumber::parse("req-20261127-00042"), Ok(number));
    }

    #[test]
    fn malformed_numbers_are_refused() {
        for input in [
            "",
            "REQ-20261127",
            "REQ-20261127-0042",
            "REQ-20261127-000421",
            "REQ-20261327-00042",
            "RQ-20261127-00042",
            "REQ-20261127-00042-1",
            "REQ-2026112a-00042",
        ] {
            assert!(RequestNumber::parse(input).is_err(), "{input:?}");
        }
        let day = NaiveDate::from_ymd_opt(2026, 11, 27).expect("date");
        assert!(RequestNumber::new(day, 0).is_err());
        assert!(RequestNumber::new(day, 100_000).is_err());
    }
}
