//! The questionnaire and the recommendation: public CA (AWS Certificate Manager) or the
//! internal CA (ADCS), with a reason a requester understands and a confidence.
//!
//! [`recommend`] is a pure function of the ten answers of `recommendation_answers` and today's
//! date (the public-validity cap depends on it).
//!
//! # Decision table
//!
//! The first row that matches decides the CA and the base confidence:
//!
//! | row | when | CA | confidence | why |
//! |-----|------|----|-----------:|-----|
//! | R1 | service is code signing | internal | 0.80 | ACM issues TLS certificates only; the internal CA signs code for machines that trust it |
//! | R2 | service is e-mail (S/MIME) | internal | 0.75 | ACM issues no S/MIME certificates; company mail clients trust the internal CA |
//! | R3 | service is VPN and browser trust is not required | internal | 0.90 | VPN gateways and clients are configured with the CA they trust |
//! | R4 | publicly reachable and browser trust required | public | 0.95 | browsers everywhere must trust it without setup: only a public CA does that |
//! | R5 | publicly reachable, browser trust not (fully) required | public | 0.80 | clients on the internet are not managed by you and trust public CAs by default |
//! | R6 | reachable inside and outside (hybrid), browser trust yes or partial | public | 0.75 | browsers outside the company only trust public CAs |
//! | R7 | not publicly reachable, browser trust required | internal | 0.65 | company-managed browsers trust the internal CA; public CAs cannot validate internal-only names |
//! | R8 | hybrid, no browser trust needed | internal | 0.70 | the clients are yours and can be given the internal CA |
//! | R9 | otherwise: not publicly reachable, no or partial browser trust | internal | 0.90 | nothing outside needs to trust it; internal certificates stay out of public CT logs |
//!
//! Then the environment adjusts the confidence: a non-production service adds 0.05 to an
//! internal recommendation and takes 0.05 from a public one. Confidence stays within
//! 0.50–0.99: the questionnaire never knows everything.
//!
//! Notes are added independently of the row:
//! - public and an expected lifespan longer than the CA/Browser Forum cap in force today
//!   (398 days until 15 March 2026, 200 from then, 100 from 15 March 2027, 47 from
//!   15 March 2029): the requester is told the cap and that ACM renews automatically;
//! - compliance answers (PCI DSS, HIPAA, SOC 2, ISO 27001) raise the stakes (key custody,
//!   approvals, rotation) but do not by themselves force public trust;
//! - a public wildcard: every host shares one key;
//! - bulk certificates on the public CA: ACM's account quotas;
//! - automatic renewal on the internal CA: needs autoenrollment or an agent.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::values::{CaType, ValueError, closed_set};

closed_set! {
    /// What kind of service the certificate is for.
    ServiceType, "service_type", "service type" {
        /// A website or web application.
        WebServer = "web_server" | "web" | "website",
        /// A database server.
        Database = "database" | "db",
        /// An API endpoint.
        Api = "api",
        /// E-mail signing or encryption (S/MIME).
        Email = "email" | "smime",
        /// Signing code or packages.
        CodeSigning = "code_signing" | "code",
        /// A VPN gateway or client.
        Vpn = "vpn",
        /// Anything else.
        Other = "other",
    }
}

impl ServiceType {
    /// The certificate type that fits the service (a request form's default).
    pub fn certificate_type(self) -> crate::domain::values::CertificateType {
        use crate::domain::values::CertificateType;
        match self {
            Self::WebServer | Self::Api => CertificateType::WebServer,
            Self::Database => CertificateType::Database,
            Self::Email => CertificateType::Email,
            Self::CodeSigning => CertificateType::CodeSigning,
            Self::Vpn => CertificateType::Vpn,
            Self::Other => CertificateType::Other,
        }
    }
}

closed_set! {
    /// Whether the service is reachable from the internet.
    Exposure, "publicly_accessible", "answer (yes, no or hybrid)" {
        /// Reachable from the internet.
        Yes = "yes" | "public" | "true",
        /// Reachable only inside the company network.
        No = "no" | "internal" | "false",
        /// Reachable from both.
        Hybrid = "hybrid" | "both",
    }
}

closed_set! {
    /// How long the service will need the certificate.
    Lifespan, "expected_lifespan", "lifespan" {
        /// Less than 90 days.
        Under90 = "under_90" | "short",
        /// 90 days to a year.
        From90To365 = "90_to_365" | "year",
        /// One to two years.
        OneToTwoYears = "1_to_2_years" | "2_years",
        /// More than two years.
        OverTwoYears = "over_2_years" | "long",
    }
}

closed_set! {
    /// Whether browsers must trust the certificate without any setup.
    BrowserTrust, "browser_trust_required", "answer (yes, no or partial)" {
        /// All browsers, including unmanaged ones.
        Yes = "yes" | "true",
        /// No browser involved.
        No = "no" | "false",
        /// Some browsers (for example company-managed ones).
        Partial = "partial" | "some",
    }
}

closed_set! {
    /// The environment the service runs in.
    Environment, "environment_type", "environment" {
        /// Production.
        Production = "production" | "prod",
        /// Development.
        Development = "development" | "dev",
        /// Testing or staging.
        Testing = "testing" | "test" | "staging",
        /// A sandbox.
        Sandbox = "sandbox",
    }
}

closed_set! {
    /// How many certificates of this kind are needed.
    CertificateCount, "certificate_count", "certificate count" {
        /// One.
        Single = "single" | "one",
        /// A few.
        Multiple = "multiple" | "few",
        /// Many (automation).
        Bulk = "bulk" | "many",
    }
}

closed_set! {
    /// The shape of the names on the certificate.
    DomainType, "domain_type", "domain type" {
        /// One name.
        Single = "single",
        /// A wildcard (`*.example.com`).
        Wildcard = "wildcard",
        /// Several names (SANs).
        San = "san" | "multi",
    }
}

closed_set! {
    /// How critical the service is.
    Criticality, "criticality_level", "criticality" {
        /// Business-critical.
        Critical = "critical",
        /// High.
        High = "high",
        /// Medium.
        Medium = "medium",
        /// Low.
        Low = "low",
    }
}

closed_set! {
    /// A compliance regime the service falls under.
    Compliance, "compliance_requirements", "compliance requirement" {
        /// PCI DSS.
        PciDss = "PCI_DSS" | "pci",
        /// HIPAA.
        Hipaa = "HIPAA",
        /// SOC 2.
        Soc2 = "SOC2" | "soc_2",
        /// ISO/IEC 27001.
        Iso27001 = "ISO27001" | "iso_27001",
        /// None.
        None = "none",
    }
}

closed_set! {
    /// How the owner wants to renew.
    RenewalPreference, "renewal_preference", "renewal preference" {
        /// Renewed without anyone acting.
        Automatic = "automatic" | "auto",
        /// Renewed by hand.
        Manual = "manual",
        /// Reminded, then renewed by hand.
        Notification = "notification" | "notify",
    }
}

impl PartialOrd for Compliance {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Compliance {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

/// The ten answers, as stored in `recommendation_answers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answers {
    /// What kind of service.
    pub service_type: ServiceType,
    /// Reachable from the internet?
    pub publicly_accessible: Exposure,
    /// How long it will be needed.
    pub expected_lifespan: Lifespan,
    /// Must browsers trust it without setup?
    pub browser_trust_required: BrowserTrust,
    /// Production or not.
    pub environment_type: Environment,
    /// How many certificates.
    pub certificate_count: CertificateCount,
    /// Single name, wildcard or several names.
    pub domain_type: DomainType,
    /// How critical.
    pub criticality_level: Criticality,
    /// Compliance regimes (may be empty or `none`).
    pub compliance_requirements: BTreeSet<Compliance>,
    /// How it should be renewed.
    pub renewal_preference: RenewalPreference,
}

impl Answers {
    /// The questions, by their column names in `recommendation_answers`.
    pub const QUESTIONS: [&'static str; 10] = [
        "service_type",
        "publicly_accessible",
        "expected_lifespan",
        "browser_trust_required",
        "environment_type",
        "certificate_count",
        "domain_type",
        "criticality_level",
        "compliance_requirements",
        "renewal_preference",
    ];

    /// Parses the answers, each looked up by its column name; `compliance_requirements` is a
    /// comma-separated list (empty means none). A question without an answer is an error
    /// naming it. All errors are returned at once.
    pub fn parse_with(answer: impl Fn(&str) -> Option<String>) -> Result<Self, Vec<ValueError>> {
        let mut errors = Vec::new();
        fn one<T>(
            errors: &mut Vec<ValueError>,
            answer: &impl Fn(&str) -> Option<String>,
            question: &'static str,
            parse: fn(&str) -> Result<T, ValueError>,
        ) -> Option<T> {
            match answer(question).filter(|a| !a.trim().is_empty()) {
                None => {
                    errors.push(ValueError::new(question, "please choose one"));
                    None
                }
                Some(value) => parse(&value)
                    .map_err(|e| errors.push(ValueError::new(question, e.message)))
                    .ok(),
            }
        }
        let service_type = one(&mut errors, &answer, "service_type", ServiceType::parse);
        let publicly_accessible = one(&mut errors, &answer, "publicly_accessible", Exposure::parse);
        let expected_lifespan = one(&mut errors, &answer, "expected_lifespan", Lifespan::parse);
        let browser_trust_required = one(
            &mut errors,
            &answer,
            "browser_trust_required",
            BrowserTrust::parse,
        );
        let environment_type = one(&mut errors, &answer, "environment_type", Environment::parse);
        let certificate_count = one(
            &mut errors,
            &answer,
            "certificate_count",
            CertificateCount::parse,
        );
        let domain_type = one(&mut errors, &answer, "domain_type", DomainType::parse);
        let criticality_level = one(
            &mut errors,
            &answer,
            "criticality_level",
            Criticality::parse,
        );
        let renewal_preference = one(
            &mut errors,
            &answer,
            "renewal_preference",
            RenewalPreference::parse,
        );
        let mut compliance_requirements = BTreeSet::new();
        for item in answer("compliance_requirements")
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.trim().is_empty())
        {
            match Compliance::parse(item) {
                Ok(c) => {
                    compliance_requirements.insert(c);
                }
                Err(e) => errors.push(ValueError::new("compliance_requirements", e.message)),
            }
        }
        match (
            service_type,
            publicly_accessible,
            expected_lifespan,
            browser_trust_required,
            environment_type,
            certificate_count,
            domain_type,
            criticality_level,
            renewal_preference,
        ) {
            (
                Some(service_type),
                Some(publicly_accessible),
                Some(expected_lifespan),
                Some(browser_trust_required),
                Some(environment_type),
                Some(certificate_count),
                Some(domain_type),
                Some(criticality_level),
                Some(renewal_preference),
            ) if errors.is_empty() => Ok(Self {
                service_type,
                publicly_accessible,
                expected_lifespan,
                browser_trust_required,
                environment_type,
                certificate_count,
                domain_type,
                criticality_level,
                compliance_requirements,
                renewal_preference,
            }),
            _ => Err(errors),
        }
    }
}

/// A confidence between 0.00 and 1.00, kept in hundredths (`DECIMAL(3,2)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Confidence(u8);

impl Confidence {
    /// From hundredths (0–100).
    pub fn from_hundredths(hundredths: u8) -> Result<Self, ValueError> {
        if hundredths > 100 {
            return Err(ValueError::new(
                "confidence",
                "a confidence is between 0.00 and 1.00",
            ));
        }
        Ok(Self(hundredths))
    }

    /// The confidence in hundredths.
    pub fn hundredths(self) -> u8 {
        self.0
    }

    /// As a fraction, e.g. 0.85.
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 100.0
    }
}

impl TryFrom<u8> for Confidence {
    type Error = ValueError;
    fn try_from(value: u8) -> Result<Self, Self::Error> {
        Self::from_hundredths(value)
    }
}

impl From<Confidence> for u8 {
    fn from(value: Confidence) -> u8 {
        value.0
    }
}

impl std::fmt::Display for Confidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

/// Which row of the decision table decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rule {
    /// Code signing.
    R1,
    /// E-mail.
    R2,
    /// VPN.
    R3,
    /// Public, browser trust.
    R4,
    /// Public, no browser trust.
    R5,
    /// Hybrid with browsers.
    R6,
    /// Internal with managed browsers.
    R7,
    /// Hybrid without browsers.
    R8,
    /// Internal.
    R9,
}

/// The recommendation shown to the requester and stored with the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recommendation {
    /// Public or internal CA.
    pub ca_type: CaType,
    /// Why, in a sentence or two.
    pub reason: String,
    /// How sure the table is.
    pub confidence: Confidence,
    /// The row that decided.
    pub rule: Rule,
    /// Things the requester should know either way.
    pub notes: Vec<String>,
}

/// The CA/Browser Forum's maximum validity of a publicly trusted TLS certificate issued on
/// `day` (ballot SC-081): 398 days until 15 March 2026, then 200, 100 from 15 March 2027,
/// 47 from 15 March 2029.
pub fn public_tls_max_validity_days(day: NaiveDate) -> u32 {
    const STEPS: [((i32, u32, u32), u32); 3] = [
        ((2029, 3, 15), 47),
        ((2027, 3, 15), 100),
        ((2026, 3, 15), 200),
    ];
    for ((year, month, dom), days) in STEPS {
        if NaiveDate::from_ymd_opt(year, month, dom).is_some_and(|from| day >= from) {
            return days;
        }
    }
    398
}

/// The next change of the public cap after `day`, if one is scheduled.
fn next_cap_change(day: NaiveDate) -> Option<(NaiveDate, u32)> {
    [
        ((2026, 3, 15), 200),
        ((2027, 3, 15), 100),
        ((2029, 3, 15), 47),
    ]
    .into_iter()
    .filter_map(|((y, m, d), days)| NaiveDate::from_ymd_opt(y, m, d).map(|at| (at, days)))
    .find(|(at, _)| *at > day)
}

/// Recommends a CA for `answers`, as of `today`. See the module's decision table.
pub fn recommend(answers: &Answers, today: NaiveDate) -> Recommendation {
    let (rule, ca_type, base, reason) = decide(answers);
    let adjusted = match (answers.environment_type, ca_type) {
        (Environment::Production, _) => i16::from(base),
        (_, CaType::Internal) => i16::from(base) + 5,
        (_, CaType::Public) => i16::from(base) - 5,
    };
    let confidence = Confidence(u8::try_from(adjusted.clamp(50, 99)).unwrap_or(50));
    Recommendation {
        ca_type,
        reason: reason.to_owned(),
        confidence,
        rule,
        notes: notes(answers, ca_type, today),
    }
}

fn decide(a: &Answers) -> (Rule, CaType, u8, &'static str) {
    use BrowserTrust as B;
    use Exposure as E;
    match (
        a.service_type,
        a.publicly_accessible,
        a.browser_trust_required,
    ) {
        (ServiceType::CodeSigning, _, _) => (
            Rule::R1,
            CaType::Internal,
            80,
            "AWS Certificate Manager issues TLS certificates only. The internal CA signs code \
             for the machines that trust it; software shipped to the public needs a commercial \
             code-signing certificate instead.",
        ),
        (ServiceType::Email, _, _) => (
            Rule::R2,
            CaType::Internal,
            75,
            "AWS Certificate Manager issues no e-mail (S/MIME) certificates; company mail \
             clients already trust the internal CA.",
        ),
        (ServiceType::Vpn, _, B::No | B::Partial) => (
            Rule::R3,
            CaType::Internal,
            90,
            "VPN gateways and clients are configured with the CA they trust, so public trust \
             adds nothing; the internal CA keeps the VPN's certificates under your control.",
        ),
        (_, E::Yes, B::Yes) => (
            Rule::R4,
            CaType::Public,
            95,
            "It is reachable from the internet and browsers must trust it without any setup: \
             only a publicly trusted CA does that. ACM certificates are free and renew \
             automatically.",
        ),
        (_, E::Yes, _) => (
            Rule::R5,
            CaType::Public,
            80,
            "It is reachable from the internet by clients you do not manage, and those trust \
             public CAs by default.",
        ),
        (_, E::Hybrid, B::Yes | B::Partial) => (
            Rule::R6,
            CaType::Public,
            75,
            "It is also reached from outside the company, where browsers trust only public \
             CAs.",
        ),
        (_, E::No, B::Yes) => (
            Rule::R7,
            CaType::Internal,
            65,
            "It is only reachable inside the company: company-managed browsers trust the \
             internal CA, and public CAs cannot validate internal-only names. Devices that are \
             not company-managed will show a warning.",
        ),
        (_, E::Hybrid, B::No) => (
            Rule::R8,
            CaType::Internal,
            70,
            "No browser needs to trust it and its clients are yours, so they can be given the \
             internal CA.",
        ),
        (_, E::No, B::No | B::Partial) => (
            Rule::R9,
            CaType::Internal,
            90,
            "It is not reachable from the internet and needs no public browser trust: the \
             internal CA fits, and its certificates stay out of public Certificate \
             Transparency logs.",
        ),
    }
}

fn notes(a: &Answers, ca_type: CaType, today: NaiveDate) -> Vec<String> {
    let mut notes = Vec::new();
    if ca_type == CaType::Public {
        let cap = public_tls_max_validity_days(today);
        let needed_days = match a.expected_lifespan {
            Lifespan::Under90 => 0,
            Lifespan::From90To365 => 365,
            Lifespan::OneToTwoYears => 730,
            Lifespan::OverTwoYears => 731,
        };
        if needed_days > cap {
            let mut note = format!(
                "Publicly trusted TLS certificates issued today are valid for at most {cap} days \
                 (CA/Browser Forum), so a 365- or 730-day certificate is not possible; ACM \
                 renews its certificates automatically before they expire."
            );
            if let Some((at, days)) = next_cap_change(today) {
                note.push_str(&format!(
                    " From {} the limit is {days} days.",
                    at.format("%-d %B %Y")
                ));
            }
            notes.push(note);
        }
        if a.domain_type == DomainType::Wildcard {
            notes.push(
                "ACM issues wildcard certificates (validated through DNS), but every host that \
                 uses one shares its private key: a compromise affects all of them."
                    .to_owned(),
            );
        }
        if a.certificate_count == CertificateCount::Bulk {
            notes.push(
                "ACM limits how many certificates an account holds (2,500 by default); plan \
                 quota increases for bulk issuance."
                    .to_owned(),
            );
        }
    } else if a.renewal_preference == RenewalPreference::Automatic {
        notes.push(
            "Automatic renewal from the internal CA needs autoenrollment or an agent on the \
             host; this service reminds the owner before expiry either way."
                .to_owned(),
        );
    }
    let regimes: Vec<&str> = a
        .compliance_requirements
        .iter()
        .filter(|c| **c != Compliance::None)
        .map(|c| match c {
            Compliance::PciDss => "PCI DSS",
            Compliance::Hipaa => "HIPAA",
            Compliance::Soc2 => "SOC 2",
            Compliance::Iso27001 => "ISO 27001",
            Compliance::None => "",
        })
        .collect();
    if !regimes.is_empty() {
        notes.push(format!(
            "{} raise the stakes: strong keys, recorded approvals and timely rotation matter. \
             Either CA can meet them; they do not by themselves require public trust.",
            regimes.join(", ")
        ));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("date")
    }

    fn base() -> Answers {
        Answers {
            service_type: ServiceType::WebServer,
            publicly_accessible: Exposure::No,
            expected_lifespan: Lifespan::Under90,
            browser_trust_required: BrowserTrust::No,
            environment_type: Environment::Production,
            certificate_count: CertificateCount::Single,
            domain_type: DomainType::Single,
            criticality_level: Criticality::Medium,
            compliance_requirements: BTreeSet::new(),
            renewal_preference: RenewalPreference::Notification,
        }
    }

    fn with(change: impl FnOnce(&mut Answers)) -> Answers {
        let mut answers = base();
        change(&mut answers);
        answers
    }

    const TODAY: (i32, u32, u32) = (2026, 11, 27);

    fn run(answers: &Answers) -> Recommendation {
        recommend(answers, day(TODAY.0, TODAY.1, TODAY.2))
    }

    #[test]
    fn every_row_of_the_decision_table() {
        use BrowserTrust as B;
        use Exposure as E;
        let rows: [(Answers, Rule, CaType, u8); 9] = [
            (
                with(|a| {
                    a.service_type = ServiceType::CodeSigning;
                    a.publicly_accessible = E::Yes;
                    a.browser_trust_required = B::Yes;
                }),
                Rule::R1,
                CaType::Internal,
                80,
            ),
            (
                with(|a| a.service_type = ServiceType::Email),
                Rule::R2,
                CaType::Internal,
                75,
            ),
            (
                with(|a| {
                    a.service_type = ServiceType::Vpn;
                    a.publicly_accessible = E::Yes;
                }),
                Rule::R3,
                CaType::Internal,
                90,
            ),
            (
                with(|a| {
                    a.publicly_accessible = E::Yes;
                    a.browser_trust_required = B::Yes;
                }),
                Rule::R4,
                CaType::Public,
                95,
            ),
            (
                with(|a| {
                    a.service_type = ServiceType::Api;
                    a.publicly_accessible = E::Yes;
                    a.browser_trust_required = B::No;
                }),
                Rule::R5,
                CaType::Public,
                80,
            ),
            (
                with(|a| {
                    a.publicly_accessible = E::Hybrid;
                    a.browser_trust_required = B::Partial;
                }),
                Rule::R6,
                CaType::Public,
                75,
            ),
            (
                with(|a| a.browser_trust_required = B::Yes),
                Rule::R7,
                CaType::Internal,
                65,
            ),
            (
                with(|a| a.publicly_accessible = E::Hybrid),
                Rule::R8,
                CaType::Internal,
                70,
            ),
            (
                with(|a| a.service_type = ServiceType::Database),
                Rule::R9,
                CaType::Internal,
                90,
            ),
        ];
        for (answers, rule, ca_type, confidence) in rows {
            let r = run(&answers);
            assert_eq!(
                (r.rule, r.ca_type, r.confidence.hundredths()),
                (rule, ca_type, confidence)
            );
            assert!(!r.reason.is_empty());
        }
        // A VPN that browsers must trust is decided by the exposure rows instead.
        let vpn = run(&with(|a| {
            a.service_type = ServiceType::Vpn;
            a.publicly_accessible = E::Yes;
            a.browser_trust_required = B::Yes;
        }));
        assert_eq!(vpn.rule, Rule::R4);
    }

    #[test]
    fn non_production_raises_internal_and_lowers_public_confidence() {
        let internal = run(&with(|a| a.environment_type = Environment::Testing));
        assert_eq!(internal.confidence.hundredths(), 95);
        let public = run(&with(|a| {
            a.environment_type = Environment::Sandbox;
            a.publicly_accessible = Exposure::Yes;
            a.browser_trust_required = BrowserTrust::Yes;
        }));
        assert_eq!(public.confidence.hundredths(), 90);
        assert_eq!(public.confidence.to_string(), "0.90");
    }

    #[test]
    fn the_public_validity_cap_follows_the_cab_forum_schedule() {
        assert_eq!(public_tls_max_validity_days(day(2026, 3, 14)), 398);
        assert_eq!(public_tls_max_validity_days(day(2026, 3, 15)), 200);
        assert_eq!(public_tls_max_validity_days(day(2027, 3, 14)), 200);
        assert_eq!(public_tls_max_validity_days(day(2027, 3, 15)), 100);
        assert_eq!(public_tls_max_validity_days(day(2029, 3, 14)), 100);
        assert_eq!(public_tls_max_validity_days(day(2029, 3, 15)), 47);
    }

    #[test]
    fn a_public_service_wanting_a_year_is_told_the_cap() {
        let answers = with(|a| {
            a.publicly_accessible = Exposure::Yes;
            a.browser_trust_required = BrowserTrust::Yes;
            a.expected_lifespan = Lifespan::From90To365;
        });
        let r = run(&answers);
        let note = r.notes.iter().find(|n| n.contains("at most 200 days"));
        assert!(
            note.is_some_and(|n| n.contains("15 March 2027") && n.contains("100 days")),
            "{:?}",
            r.notes
        );
        // Before the first step a year still fits.
        let early = recommend(&answers, day(2026, 1, 10));
        assert!(
            !early.notes.iter().any(|n| n.contains("at most")),
            "{:?}",
            early.notes
        );
        // Short-lived certificates need no warning.
        let short = run(&with(|a| {
            a.publicly_accessible = Exposure::Yes;
            a.browser_trust_required = BrowserTrust::Yes;
        }));
        assert!(!short.notes.iter().any(|n| n.contains("at most")));
    }

    #[test]
    fn compliance_raises_the_stakes_but_does_not_force_public_trust() {
        let r = run(&with(|a| {
            a.compliance_requirements = [Compliance::PciDss, Compliance::Hipaa].into();
        }));
        assert_eq!(r.ca_type, CaType::Internal);
        assert!(
            r.notes
                .iter()
                .any(|n| n.contains("HIPAA, PCI DSS") && n.contains("do not by themselves"))
        );
        let none = run(&with(|a| {
            a.compliance_requirements = [Compliance::None].into()
        }));
        assert!(none.notes.is_empty(), "{:?}", none.notes);
    }

    #[test]
    fn other_notes() {
        let wildcard = run(&with(|a| {
            a.publicly_accessible = Exposure::Yes;
            a.domain_type = DomainType::Wildcard;
            a.certificate_count = CertificateCount::Bulk;
        }));
        assert!(wildcard.notes.iter().any(|n| n.contains("wildcard")));
        assert!(wildcard.notes.iter().any(|n| n.contains("2,500")));
        let auto = run(&with(|a| {
            a.renewal_preference = RenewalPreference::Automatic
        }));
        assert!(auto.notes.iter().any(|n| n.contains("autoenrollment")));
    }
}
