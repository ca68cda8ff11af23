//! An instant as people type it: RFC 3339 (`2026-03-01T10:30:00+01:00`), or a date and time
//! in UTC as a browser's date-time control gives it (`2026-03-01T09:30`, with or without
//! seconds, `T` or a space), or a day alone (its midnight, UTC).

use chrono::{DateTime, NaiveDateTime, Utc};

use super::ValueError;

/// Parses an instant (see the module); the error names `field`.
pub fn parse_instant(field: &'static str, text: &str) -> Result<DateTime<Utc>, ValueError> {
    let text = text.trim();
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            [
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%dT%H:%M",
                "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%d %H:%M",
            ]
            .iter()
            .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
            .map(|t| t.and_utc())
        })
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .map(|day| day.and_time(chrono::NaiveTime::MIN).and_utc())
        })
        .ok_or_else(|| {
            ValueError::new(
                field,
                "give the time as 2026-03-01T09:30 (UTC) or 2026-03-01T10:30:00+01:00",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_travel_control_and_rfc_3339_both_name_an_instant() {
        let at = parse_instant("as_of", "2026-03-01T09:30").expect("minutes");
        assert_eq!(at.to_rfc3339(), "2026-03-01T09:30:00+00:00");
        assert_eq!(
            parse_instant("as_of", "2026-03-01 09:30:15"),
            Ok(at + chrono::Duration::seconds(15))
        );
        assert_eq!(
            parse_instant("as_of", "2026-03-01T10:30:00+01:00"),
            Ok(at),
            "an offset is honoured"
        );
        assert_eq!(
            parse_instant("as_of", "2026-03-01").map(|t| t.to_rfc3339()),
            Ok("2026-03-01T00:00:00+00:00".to_owned()),
            "a day is its midnight"
        );
        assert!(parse_instant("as_of", "yesterday").is_err_and(|e| e.field == "as_of"));
    }
}
