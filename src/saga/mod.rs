//! Background work: the issuance saga, mail delivery, revocation at the CA (driven by the
//! event feed), and the scheduled expiry and escalation jobs.

pub mod escalation;
pub mod expiry;
pub mod issuance;
pub mod mail;
pub mod revocation;
