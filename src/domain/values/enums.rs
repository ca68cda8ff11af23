//! The closed sets of the schema's CHECK constraints, as enums. Each has the exact database
//! spelling (`as_str`, serde) and a forgiving parser for people typing in chat.

use serde::{Deserialize, Serialize};

use super::ValueError;

/// Declares an enum over a closed set of database spellings, with aliases for chat input.
macro_rules! closed_set {
    (
        $(#[$meta:meta])*
        $type:ident, $field:literal, $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $db:literal $(| $alias:literal)* ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $type {
            $( $(#[$vmeta])* #[serde(rename = $db)] $variant, )+
        }

        impl $type {
            /// Every value, in documented order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The spelling stored in the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $db,)+
                }
            }

            /// Parses the database spelling, case-insensitively, or a common alias.
            pub fn parse(input: &str) -> Result<Self, $crate::domain::values::ValueError> {
                use $crate::domain::values::normalize_choice as key;
                let wanted = key(input);
                $(
                    if wanted == key($db) $(|| wanted == key($alias))* {
                        return Ok(Self::$variant);
                    }
                )+
                Err($crate::domain::values::ValueError::new(
                    $field,
                    format!(
                        "{:?} is not a {}; choose one of: {}",
                        input.trim(),
                        $what,
                        Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                ))
            }
        }

        impl std::fmt::Display for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $type {
            type Err = $crate::domain::values::ValueError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

pub(crate) use closed_set;

closed_set! {
    /// Key algorithm and size (`certificate_requests.key_algorithm`).
    KeyAlgorithm, "key_algorithm", "key algorithm" {
        /// RSA, 2048-bit modulus.
        Rsa2048 = "RSA_2048" | "rsa2048" | "rsa",
        /// RSA, 4096-bit modulus.
        Rsa4096 = "RSA_4096" | "rsa4096",
        /// ECDSA on NIST P-256.
        EccP256 = "ECC_P256" | "p256" | "ec_p256" | "ecdsa_p256" | "ecc" | "ec",
        /// ECDSA on NIST P-384.
        EccP384 = "ECC_P384" | "p384" | "ec_p384" | "ecdsa_p384",
    }
}

impl KeyAlgorithm {
    /// Key size in bits, as `certificates.key_size` records it.
    pub fn key_size(self) -> u32 {
        match self {
            Self::Rsa2048 => 2048,
            Self::Rsa4096 => 4096,
            Self::EccP256 => 256,
            Self::EccP384 => 384,
        }
    }
}

closed_set! {
    /// What the certificate is for (`certificate_requests.certificate_type`).
    CertificateType, "certificate_type", "certificate type" {
        /// TLS server (HTTPS, APIs).
        WebServer = "web_server" | "server" | "tls" | "web",
        /// S/MIME e-mail signing and encryption.
        Email = "email" | "smime",
        /// Code signing.
        CodeSigning = "code_signing" | "codesigning" | "code",
        /// VPN gateway or client.
        Vpn = "vpn",
        /// Database server.
        Database = "database" | "db",
        /// Client authentication of a user or machine.
        UserAuth = "user_auth" | "client" | "client_auth",
        /// Anything else.
        Other = "other",
    }
}

impl CertificateType {
    /// Whether the subject is a host, so the CN and SANs must be DNS names.
    pub fn names_hosts(self) -> bool {
        matches!(self, Self::WebServer | Self::Database | Self::Vpn)
    }
}

closed_set! {
    /// RFC 5280 revocation reasons (`certificate_revocations.reason_code`).
    RevocationReason, "reason", "revocation reason" {
        /// 0: no reason given.
        Unspecified = "unspecified",
        /// 1: the private key is known or suspected to be compromised.
        KeyCompromise = "key_compromise" | "keycompromise",
        /// 2: the CA's key is compromised.
        CaCompromise = "ca_compromise" | "cacompromise",
        /// 3: the subject's name or affiliation changed.
        AffiliationChanged = "affiliation_changed" | "affiliationchanged",
        /// 4: replaced by another certificate.
        Superseded = "superseded",
        /// 5: no longer needed.
        CessationOfOperation = "cessation_of_operation" | "cessationofoperation" | "decommissioned",
        /// 6: temporarily on hold.
        CertificateHold = "certificate_hold" | "certificatehold" | "hold",
        /// 8: taken off hold.
        RemoveFromCrl = "remove_from_crl" | "removefromcrl",
    }
}

impl RevocationReason {
    /// A reason a person may revoke for: every one but `remove_from_crl`, which RFC 5280
    /// allows only in delta CRLs to take a held certificate off hold (holds are final
    /// here, and some validators read reason 8 in a base CRL as "not revoked").
    pub fn parse_for_revocation(input: &str) -> Result<Self, ValueError> {
        match Self::parse(input)? {
            Self::RemoveFromCrl => Err(ValueError::new(
                "reason",
                "remove_from_crl is not a reason to revoke: it takes a certificate off hold, \
                 and a hold is final here; use unspecified, key_compromise, ca_compromise, \
                 affiliation_changed, superseded, cessation_of_operation or certificate_hold",
            )),
            reason => Ok(reason),
        }
    }

    /// The RFC 5280 `CRLReason` code (7 is unused).
    pub fn code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::KeyCompromise => 1,
            Self::CaCompromise => 2,
            Self::AffiliationChanged => 3,
            Self::Superseded => 4,
            Self::CessationOfOperation => 5,
            Self::CertificateHold => 6,
            Self::RemoveFromCrl => 8,
        }
    }
}

closed_set! {
    /// Which kind of CA a certificate should come from.
    CaType, "ca_type", "CA type" {
        /// A publicly trusted CA (AWS Certificate Manager).
        Public = "public" | "acm",
        /// The organisation's own CA (ADCS or the embedded CA).
        Internal = "internal" | "private" | "adcs",
    }
}

/// Validity of a requested certificate: 90, 365 or 730 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct ValidityDays(u32);

impl ValidityDays {
    /// The lengths a request may ask for.
    pub const ALLOWED: [u32; 3] = [90, 365, 730];

    /// Parses `90`, `365`, `730` (also `90d`, `1y`, `2y`).
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        let text = input.trim().to_ascii_lowercase();
        let days = match text.as_str() {
            "1y" | "1year" => Some(365),
            "2y" | "2years" => Some(730),
            other => other.trim_end_matches('d').parse::<u32>().ok(),
        };
        days.map_or_else(|| Err(Self::refusal(input.trim())), Self::try_from)
    }

    /// The number of days.
    pub fn days(self) -> u32 {
        self.0
    }

    fn refusal(input: impl std::fmt::Display) -> ValueError {
        ValueError::new(
            "validity_days",
            format!("{input} is not an allowed validity; choose 90, 365 or 730 days"),
        )
    }
}

impl TryFrom<u32> for ValidityDays {
    type Error = ValueError;
    fn try_from(days: u32) -> Result<Self, Self::Error> {
        if Self::ALLOWED.contains(&days) {
            Ok(Self(days))
        } else {
            Err(Self::refusal(days))
        }
    }
}

impl From<ValidityDays> for u32 {
    fn from(value: ValidityDays) -> u32 {
        value.0
    }
}

impl std::fmt::Display for ValidityDays {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} days", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_spellings_round_trip() {
        for algorithm in KeyAlgorithm::ALL {
            assert_eq!(KeyAlgorithm::parse(algorithm.as_str()), Ok(*algorithm));
            let json = serde_json::to_string(algorithm).expect("json");
            assert_eq!(json, format!("\"{}\"", algorithm.as_str()));
        }
        for kind in CertificateType::ALL {
            assert_eq!(CertificateType::parse(kind.as_str()), Ok(*kind));
        }
        for reason in RevocationReason::ALL {
            assert_eq!(RevocationReason::parse(reason.as_str()), Ok(*reason));
        }
    }

    #[test]
    fn people_can_type_aliases() {
        assert_eq!(KeyAlgorithm::parse("rsa-4096"), Ok(KeyAlgorithm::Rsa4096));
        assert_eq!(KeyAlgorithm::parse("P256"), Ok(KeyAlgorithm::EccP256));
        assert_eq!(
            CertificateType::parse("Web Server"),
            Ok(CertificateType::WebServer)
        );
        assert_eq!(
            RevocationReason::parse("keyCompromise"),
            Ok(RevocationReason::KeyCompromise)
        );
    }

    #[test]
    fn unknown_values_list_the_choices() {
        let err = KeyAlgorithm::parse("DSA_1024").expect_err("refused");
        assert_eq!(err.field, "key_algorithm");
        assert!(
            err.message
                .contains("RSA_2048, RSA_4096, ECC_P256, ECC_P384"),
            "{}",
            err.message
        );
        assert!(RevocationReason::parse("privilege_withdrawn").is_err());
        assert!(
            RevocationReason::parse_for_revocation("remove_from_crl")
                .is_err_and(|e| e.message.contains("not a reason to revoke"))
        );
        assert_eq!(
            RevocationReason::parse_for_revocation("superseded"),
            Ok(RevocationReason::Superseded)
        );
    }

    #[test]
    fn rfc_5280_codes_skip_seven() {
        let codes: Vec<u8> = RevocationReason::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5, 6, 8]);
    }

    #[test]
    fn validity_is_one_of_three_lengths() {
        assert_eq!(ValidityDays::parse("90").map(ValidityDays::days), Ok(90));
        assert_eq!(ValidityDays::parse("1y").map(ValidityDays::days), Ok(365));
        assert_eq!(ValidityDays::parse("730d").map(ValidityDays::days), Ok(730));
        assert!(ValidityDays::parse("400").is_err_and(|e| e.message.contains("90, 365 or 730")));
        assert!(serde_json::from_str::<ValidityDays>("100").is_err());
    }
}
