//! The text an audit row's hash is taken over, computed in Rust exactly as PostgreSQL's
//! `audit_log_content(audit_logs)` renders it (`jsonb_build_array(…)::text`), so the chain of
//! a whole batch is hashed here and `audit verify` (which recomputes it in SQL) agrees.
//!
//! jsonb's text form: arrays `[a, b]`, objects `{"k": v}` with keys ordered shortest first
//! and then bytewise, strings escaped as `escape_json` does, numbers as `numeric` prints them.

use std::fmt::Write as _;

use serde_json::{Number, Value};

/// Appends the jsonb text of `value` to `out`.
pub(super) fn write_jsonb(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => write_number(number, out),
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_jsonb(item, out);
            }
            out.push(']');
        }
        Value::Object(fields) => {
            let mut keys: Vec<&String> = fields.keys().collect();
            keys.sort_by(|a, b| {
                a.len()
                    .cmp(&b.len())
                    .then_with(|| a.as_bytes().cmp(b.as_bytes()))
            });
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_string(key, out);
                out.push_str(": ");
                write_jsonb(&fields[key], out);
            }
            out.push('}');
        }
    }
}

/// A string as PostgreSQL's `escape_json` writes it. Runs of characters that need no escape
/// (every one but ASCII controls, `"` and `\`) are copied whole.
pub(super) fn write_string(text: &str, out: &mut String) {
    out.reserve(text.len() + 2);
    out.push('"');
    let mut copied = 0;
    for (at, byte) in text.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0c => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            byte if byte < 0x20 => "",
            _ => continue,
        };
        // `at` is an ASCII byte, so a character boundary.
        out.push_str(&text[copied..at]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            out.push_str(escape);
        }
        copied = at + 1;
    }
    out.push_str(&text[copied..]);
    out.push('"');
}

/// A number as `numeric` prints it: integers as they are, serde's shortest float form with
/// its exponent (if any) written out, keeping the digits after the point it shows.
fn write_number(number: &Number, out: &mut String) {
    if number.is_i64() || number.is_u64() {
        let _ = write!(out, "{number}");
        return;
    }
    let text = number.to_string();
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, exponent.parse::<i64>().unwrap_or(0)),
        None => (text.as_str(), 0),
    };
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: String = format!("{whole}{fraction}");
    // The value is digits × 10^(point − len(digits)); `point` is where the point goes.
    let point = i64::try_from(whole.len()).unwrap_or(0) + exponent;
    let scale = (i64::try_from(fraction.len()).unwrap_or(0) - exponent).max(0);
    let mut plain = String::new();
    let len = i64::try_from(digits.len()).unwrap_or(0);
    if point <= 0 {
        plain.push('0');
        plain.push('.');
        plain.extend(std::iter::repeat_n(
            '0',
            usize::try_from(-point).unwrap_or(0),
        ));
        plain.push_str(&digits);
    } else if point >= len {
        plain.push_str(&digits);
        plain.extend(std::iter::repeat_n(
            '0',
            usize::try_from(point - len).unwrap_or(0),
        ));
    } else {
        let (int, frac) = digits.split_at(usize::try_from(point).unwrap_or(0));
        plain.push_str(int);
        plain.push('.');
        plain.push_str(frac);
    }
    // Normalise to `scale` digits after the point and strip leading zeros of the whole part.
    let (int, frac) = plain.split_once('.').unwrap_or((plain.as_str(), ""));
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let mut frac: String = frac
        .chars()
        .take(usize::try_from(scale).unwrap_or(0))
        .collect();
    while frac.len() < usize::try_from(scale).unwrap_or(0) {
        frac.push('0');
    }
    let zero = int == "0" && frac.chars().all(|c| c == '0');
    if negative && !zero {
        out.push('-');
    }
    out.push_str(int);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(&frac);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn text(value: Value) -> String {
        let mut out = String::new();
        write_jsonb(&value, &mut out);
        out
    }

    #[test]
    fn objects_order_their_keys_shortest_first_then_bytewise() {
        assert_eq!(
            text(json!({ "event": 1, "a": [true, null], "zz": {}, "ab": "x" })),
            r#"{"a": [true, null], "ab": "x", "zz": {}, "event": 1}"#
        );
    }

    #[test]
    fn strings_are_escaped_as_postgres_escapes_them() {
        assert_eq!(
            text(json!("a\"b\\c\n\t\u{1}é\u{7f}")),
            "\"a\\\"b\\\\c\\n\\t\\u0001é\u{7f}\""
        );
    }

    #[test]
    fn numbers_print_as_numeric_does() {
        assert_eq!(text(json!(-42)), "-42");
        assert_eq!(text(json!(u64::MAX)), "18446744073709551615");
        assert_eq!(text(json!(0.85)), "0.85");
        assert_eq!(text(json!(1.0)), "1.0");
        assert_eq!(text(json!(1e-7)), "0.0000001");
        assert_eq!(text(json!(1.5e20)), "150000000000000000000");
        assert_eq!(text(json!(-0.0)), "0.0");
    }
}
