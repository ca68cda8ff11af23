//! The domain: aggregates, their commands and events, value types and the recommendation
//! policy. Nothing here does I/O or knows about HTTP, SQL, AWS or chat platforms; the
//! application layer (`crate::commands`) loads, authorizes and executes.

pub mod actor;
pub mod approval;
pub mod certificate;
pub mod config;
pub mod key_material;
pub mod names_policy;
pub mod notification;
pub mod public_ca;
pub mod recommendation;
pub mod refusal;
pub mod request;
pub mod text;
pub mod user;
pub mod values;

#[cfg(test)]
pub(crate) mod testing;
