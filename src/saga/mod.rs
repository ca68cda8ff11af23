//! Background work driven by the event feed: today the issuance saga.

pub mod issuance;
pub mod mail;
pub mod revocation;
