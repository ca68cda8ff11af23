use serde::{Deserialize, Serialize};

use super::{ValueError, string_value};

/// An ISO 3166-1 alpha-2 country code (officially assigned codes only), upper-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Country(String);

string_value!(Country);

/// The 249 officially assigned ISO 3166-1 alpha-2 codes.
const ASSIGNED: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ \
BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ \
DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT \
GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY \
KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX \
MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS \
RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN \
TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

impl Country {
    /// Parses a two-letter country code such as `US` or `de`.
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        let code = input.trim().to_ascii_uppercase();
        if code.len() != 2 || !code.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(ValueError::new(
                "country",
                format!(
                    "{:?} is not a two-letter country code such as US, DE or GB",
                    input.trim()
                ),
            ));
        }
        if code == "UK" {
            return Err(ValueError::new(
                "country",
                "UK is not an ISO 3166 code; the United Kingdom is GB",
            ));
        }
        if !ASSIGNED.split_ascii_whitespace().any(|c| c == code) {
            return Err(ValueError::new(
                "country",
                format!("{code} is not an assigned ISO 3166 country code"),
            ));
        }
        Ok(Self(code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_holds_every_assigned_code_once() {
        let codes: Vec<&str> = ASSIGNED.split_ascii_whitespace().collect();
        assert_eq!(codes.len(), 249);
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 249);
    }

    #[test]
    fn codes_are_checked_against_the_list() {
        assert_eq!(
            Country::parse(" de ").map(String::from),
            Ok("DE".to_owned())
        );
        assert!(Country::parse("GB").is_ok());
        assert!(Country::parse("UK").is_err_and(|e| e.message.contains("GB")));
        assert!(Country::parse("XX").is_err_and(|e| e.message.contains("assigned")));
        assert!(Country::parse("USA").is_err_and(|e| e.message.contains("two-letter")));
        assert!(Country::parse("1A").is_err());
    }
}
