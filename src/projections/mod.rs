//! The read side: the documented tables and views, built from the event feed.
//!
//! The read model is one durable consumer of the event feed ([`crate::feed`]): it applies
//! each event to the tables in the same transaction that moves its checkpoint, so a crash
//! loses nothing and nothing is applied twice. [`replay`] rebuilds everything from
//! the events; [`audit`] writes the tamper-evident audit trail; [`catalog`] holds the
//! auditors' named queries from `projections/`.

pub mod audit;
pub mod catalog;
pub mod gauges;
pub mod projector;
mod read_model;
pub mod replay;
pub mod reports;
pub mod retention;
