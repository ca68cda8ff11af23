//! Background work: the issuance saga, mail delivery, revocation at the CA (driven by the
//! event feed), and the scheduled expiry (with the public CA's own renewals) and escalation
//! jobs.

pub mod ca_renewal;
pub mod escalation;
pub mod expiry;
pub mod issuance;
pub mod mail;
pub mod revocation;
