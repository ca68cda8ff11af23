//! Free text from people (justifications, reasons, subject fields), bounded to the column
//! widths of the schema so a projection can always store what the domain accepted.

use serde::{Deserialize, Serialize};

use super::values::ValueError;

/// The longest display name the schema keeps (`users.display_name`,
/// `chat_identities.display_name`).
pub const DISPLAY_NAME_MAX: usize = 200;

/// A person's name as a chat platform reports it, as it is kept: without control
/// characters, trimmed, at most [`DISPLAY_NAME_MAX`] characters (cut rather than refused:
/// nobody typed it here); `None` when nothing is left.
pub fn display_name(reported: &str) -> Option<String> {
    let clean: String = reported.chars().filter(|c| !c.is_control()).collect();
    let name: String = clean.trim().chars().take(DISPLAY_NAME_MAX).collect();
    let name = name.trim_end();
    (!name.is_empty()).then(|| name.to_owned())
}

/// Trimmed, non-empty text of at most `max` characters, without control characters other
/// than line breaks and tabs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Text(String);

impl Text {
    /// Parses required text for `field`.
    pub fn parse(field: &'static str, input: &str, max: usize) -> Result<Self, ValueError> {
        let text = input.trim();
        if text.is_empty() {
            return Err(ValueError::new(
                field,
                format!("{} is required", human(field)),
            ));
        }
        let length = text.chars().count();
        if length > max {
            return Err(ValueError::new(
                field,
                format!(
                    "{} is {length} characters long; at most {max} are allowed",
                    human(field)
                ),
            ));
        }
        if text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(ValueError::new(
                field,
                format!("{} must not contain control characters", human(field)),
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// Parses optional text: empty input is `None`.
    pub fn optional(
        field: &'static str,
        input: Option<&str>,
        max: usize,
    ) -> Result<Option<Self>, ValueError> {
        match input.map(str::trim) {
            None | Some("") => Ok(None),
            Some(text) => Self::parse(field, text, max).map(Some),
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `business_justification` → "the business justification".
fn human(field: &str) -> String {
    let words = field.replace('_', " ");
    format!("the {words}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_required_and_bounded() {
        assert_eq!(
            Text::parse("reason", "  because  ", 10).map(|t| t.to_string()),
            Ok("because".to_owned())
        );
        assert!(
            Text::parse("business_justification", " ", 10)
                .is_err_and(|e| e.message == "the business justification is required")
        );
        assert!(Text::parse("reason", "abcdef", 5).is_err_and(|e| e.message.contains("at most 5")));
        assert!(Text::parse("reason", "a\u{0000}b", 5).is_err());
        assert_eq!(Text::optional("notes", Some("   "), 5), Ok(None));
    }

    #[test]
    fn display_names_are_cleaned_and_cut_to_the_column() {
        assert_eq!(
            display_name("  Jane\u{0} Doe\n "),
            Some("Jane Doe".to_owned())
        );
        assert_eq!(display_name("\u{7}\t "), None);
        let long = "é".repeat(300);
        assert_eq!(
            display_name(&long).map(|n| n.chars().count()),
            Some(DISPLAY_NAME_MAX)
        );
    }
}
