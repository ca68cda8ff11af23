//! The names a certificate carries, from a request's validated subject: the one place they
//! are written into X.509 (the CSRs generated here and the certificates the embedded CA
//! signs), so what is certified is what was checked and shown.

use rcgen::{CertificateParams, DistinguishedName, DnType, DnValue, SanType};

use crate::domain::request::Subject;

/// The PKCS#9 emailAddress attribute (1.2.840.113549.1.9.1).
const EMAIL_ADDRESS_OID: [u64; 7] = [1, 2, 840, 113549, 1, 9, 1];

/// Parameters naming `subject`: its CN, O, OU, L, ST, C and e-mail address, each once, its
/// DNS names as DNS SANs and its e-mail address as an rfc822Name SAN. Nothing else.
pub fn params(subject: &Subject) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, subject.common_name.as_ref());
    if let Some(o) = &subject.organization {
        dn.push(DnType::OrganizationName, o.as_str());
    }
    if let Some(ou) = &subject.organizational_unit {
        dn.push(DnType::OrganizationalUnitName, ou.as_str());
    }
    if let Some(l) = &subject.locality {
        dn.push(DnType::LocalityName, l.as_str());
    }
    if let Some(st) = &subject.state_province {
        dn.push(DnType::StateOrProvinceName, st.as_str());
    }
    if let Some(c) = &subject.country {
        dn.push(DnType::CountryName, c.as_ref());
    }
    if let Some(email) = &subject.email_address {
        let value = rcgen::string::Ia5String::try_from(email.as_ref())?;
        dn.push(
            DnType::CustomDnType(EMAIL_ADDRESS_OID.to_vec()),
            DnValue::Ia5String(value.clone()),
        );
        params.subject_alt_names.push(SanType::Rfc822Name(value));
    }
    params.distinguished_name = dn;
    for name in &subject.subject_alternative_names {
        let value = rcgen::string::Ia5String::try_from(name.as_ref())?;
        params.subject_alt_names.push(SanType::DnsName(value));
    }
    Ok(params)
}
