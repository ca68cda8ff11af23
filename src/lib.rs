//! cert-assistant: certificates on request from chat, every change an event.
//!
//! The map of the crate (data flows top to bottom):
//!
//! - [`cli`] — the `cert-assistant` commands; `main.rs` only parses and calls it.
//! - [`config`] — one typed configuration, from defaults, an optional file and the environment.
//! - [`app`] — the running service: listener, graceful shutdown.
//! - [`http`] — the HTTP surface: health probes, later the chat platforms' webhooks.
//! - [`db`] — PostgreSQL: connecting (to `DATABASE_URL` or a private cluster the service runs
//!   itself) and the migrations, which hold the event store and the documented read model.
//! - [`telemetry`] — logging.
//!
//! Coming with later work, each in its own module: `domain` (aggregates, commands, events,
//! value types; no I/O crates), `projections` (the read model built from the event feed),
//! `chat` (Slack, Teams, Discord over one platform-neutral core), `saga` (issuance and
//! lifecycle jobs) and `adapters` (CA, artifact store, mail).

#![forbid(unsafe_code)]

pub mod adapters;
pub mod app;
pub mod chat;
pub mod cli;
pub mod commands;
pub mod config;
pub mod db;
pub mod dev;
pub mod domain;
pub mod http;
pub mod pki;
pub mod projections;
pub mod saga;
pub mod telemetry;
